"""Bad input gets a clear error and loses nothing."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from conftest import app_name, recap_changed, run_site, visit


def some_other_ecdsa_key() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()


def test_invalid_variable_is_refused_before_any_host_changes(app):
    before = visit(app)
    result = run_site({"counter_port": 70000})
    assert result.returncode != 0
    assert "counter_port must be 1-65535 (got 70000)" in result.stdout + result.stderr
    assert set(recap_changed(result.stdout).values()) == {0}, result.stdout[-2000:]
    assert visit(app) == before + 1


def test_wrong_host_key_fails_loudly_and_keeps_the_running_config(app, storage):
    config_before = app.file("/etc/litestream.yml").sha256sum
    before = visit(app)
    result = run_site(
        {
            "litestream_sftp_inventory_host": "",
            "litestream_sftp_host": app_name(storage),
            "litestream_sftp_host_key": some_other_ecdsa_key(),
        }
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "The new Litestream configuration was refused" in output
    assert "host key mismatch" in output
    assert app.file("/etc/litestream.yml").sha256sum == config_before
    assert app.service("litestream.service").is_running
    assert visit(app) == before + 1
