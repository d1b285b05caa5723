"""Separate identities: the internet-facing app runs as an account that cannot
reach the replica's credentials, checked as that account."""

from __future__ import annotations

import pytest

from deployment import DB, ENV_FILE, LITESTREAM_UNIT, SETTINGS, USER, VENV_PY
from hosts import main_pid


def as_app(host, command: str, *args: str):
    """Run a command as the app's account (what a compromised app could do)."""
    return host.run("runuser -u %s -- " + command, USER, *args)


def refused(result) -> bool:
    return result.rc != 0 and "Permission denied" in result.stderr


@pytest.mark.sftp
def test_the_app_cannot_read_the_sftp_key(app):
    key = SETTINGS["litestream_sftp_key_path"]
    assert app.run("cat %s", key).rc == 0  # root can: the key is there
    assert refused(as_app(app, "cat %s", key))


@pytest.mark.s3
def test_the_app_cannot_read_the_s3_keys(app):
    assert "LITESTREAM_SECRET_ACCESS_KEY" in app.check_output("cat %s", ENV_FILE)
    assert refused(as_app(app, "cat %s", ENV_FILE))


def test_the_app_cannot_read_litestreams_environment(app):
    # Litestream's process holds the S3 keys in its environment (from the
    # root-only file above): another account cannot read it.
    pid = str(main_pid(app, LITESTREAM_UNIT))
    environ = app.run("cat /proc/%s/environ", pid)
    assert environ.rc == 0 and environ.stdout  # root can
    assert refused(as_app(app, "cat /proc/%s/environ", pid))


def test_the_app_cannot_list_litestreams_secrets_directory(app):
    secrets = SETTINGS["litestream_config_dir"]
    assert refused(as_app(app, "ls %s", secrets))


def test_the_app_reads_and_writes_the_database_through_the_group(app):
    # The same access the app has, from its account: a write transaction
    # (rolled back) on the file Litestream also writes.
    script = (
        "import apsw, sys; c = apsw.Connection(sys.argv[1]); c.set_busy_timeout(5000); "
        "c.execute('BEGIN IMMEDIATE'); c.execute('ROLLBACK'); print('ok')"
    )
    assert as_app(app, "%s -c %s %s", VENV_PY, script, DB).stdout.strip() == "ok"
