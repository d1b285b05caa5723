"""Bad input gets a clear error and loses nothing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from conftest import app_name, visit

PROJECT = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])


def run_site(extra_vars: dict) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        ANSIBLE_ROLES_PATH=str(PROJECT / "roles"),
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_CALLBACK_RESULT_FORMAT="json",
    )
    return subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible-playbook")),
            "-i",
            os.environ["MOLECULE_INVENTORY_FILE"],
            str(PROJECT / "site.yml"),
            "-e",
            json.dumps(extra_vars),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        check=False,
    )


def recap_changed(output: str) -> dict[str, int]:
    return {m[0]: int(m[1]) for m in re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", output, re.M)}


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
