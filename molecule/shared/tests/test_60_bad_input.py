"""Bad input gets a clear error and loses nothing."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from deployment import APP_UNIT, CONFIG, DB, ENV_FILE, GROUP, LITESTREAM_UNIT, USER
from hosts import (
    app_name,
    deployed_replica,
    healthy,
    recap_changed,
    run_site,
    stop_app,
    visit,
    wait_until,
)


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


def test_a_database_group_the_app_does_not_run_with_is_refused_before_any_host_changes(app):
    """What Litestream needs from the app's unit: its files in the group the
    database directory is shared through."""
    result = run_site({"litestream_db_group": LITESTREAM_GROUP_OTHER})
    assert result.returncode != 0
    said = result.stdout + result.stderr
    assert f"{APP_UNIT} runs as {USER} with group {GROUP}, but the database is shared" in said
    assert f"Set litestream_db_group to {GROUP}" in said
    assert set(recap_changed(result.stdout).values()) == {0}, result.stdout[-2000:]


# A group every Debian host has, which the app does not run with.
LITESTREAM_GROUP_OTHER = "daemon"


def _journal_mode(app, mode: str) -> str:
    """Set the database's journal mode as the app's account; the mode it has."""
    query = f"PRAGMA journal_mode={mode}"
    code = f"import sqlite3; print(sqlite3.connect({DB!r}).execute({query!r}).fetchone()[0])"
    return app.check_output("runuser -u %s -- python3 -c %s", USER, code)


@pytest.mark.once
def test_a_database_in_rollback_journal_mode_is_refused_with_how_to_switch(app):
    """What Litestream needs from the app's database: WAL mode (an app that
    switched its file to another journal mode is refused before any change,
    with the command that switches it back)."""
    count = visit(app)
    stop_app(app)
    try:
        assert _journal_mode(app, "DELETE") == "delete"
        result = run_site({})
        assert result.returncode != 0
        said = result.stdout + result.stderr
        assert f"{DB} is in rollback-journal mode" in said
        assert "PRAGMA journal_mode=WAL" in said
        assert set(recap_changed(result.stdout).values()) == {0}, result.stdout[-2000:]
    finally:
        _journal_mode(app, "WAL")
        app.check_output("systemctl start %s", APP_UNIT)
        wait_until(lambda: healthy(app), 180, f"{app_name(app)} ready")
    assert visit(app) == count + 1


@pytest.mark.sftp
def test_wrong_host_key_fails_loudly_and_keeps_the_running_config(app):
    config_before = app.file(CONFIG).sha256sum
    before = visit(app)
    replica = {**deployed_replica(app), "host-key": some_other_ecdsa_key()}
    result = run_site({"litestream_replica": replica})
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "The new Litestream settings were refused" in output
    assert "host key mismatch" in output
    assert app.file(CONFIG).sha256sum == config_before
    assert app.service(LITESTREAM_UNIT).is_running
    assert visit(app) == before + 1


WRONG_SECRET = "WrongSecretKey0123456789abcdef"  # noqa: S105 - a deliberately wrong test secret


@pytest.mark.s3
@pytest.mark.parametrize(
    ("override", "problem"),
    [
        ({"secret-access-key": WRONG_SECRET}, "secret key is wrong"),
        # A deploy each: the second in `make drills`, for make test's time.
        pytest.param(
            {"bucket": "no-such-bucket"},
            "bucket no-such-bucket does not exist",
            marks=pytest.mark.drill,
        ),
    ],
    ids=["wrong-secret", "unknown-bucket"],
)
def test_wrong_s3_settings_fail_loudly_and_keep_the_running_config(
    apps, storage, override, problem
):
    app = apps[0]
    config_before = app.file(CONFIG).sha256sum
    env_before = app.file(ENV_FILE).sha256sum
    before = visit(app)
    # This host's replica, as its user would edit it, with one thing wrong.
    replica = {**deployed_replica(app), **override}
    # The storage host stays in --limit: the CA the app host trusts comes
    # from what it publishes.
    limit = f"{app_name(app)},{app_name(storage)}"
    result = run_site({"litestream_replica": replica, "ansible_verbosity": 1}, limit=limit)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "The new Litestream settings were refused" in output
    assert problem in output
    # The wrong secret is not echoed, even with -v.
    assert WRONG_SECRET not in output
    # The running settings stay.
    assert app.file(CONFIG).sha256sum == config_before
    assert app.service(LITESTREAM_UNIT).is_running
    assert visit(app) == before + 1
    assert app.file(ENV_FILE).sha256sum == env_before
