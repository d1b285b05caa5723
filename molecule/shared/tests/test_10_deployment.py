"""The deployment as a user finds it: units, their ties, files and modes."""

from __future__ import annotations

import re

import pytest

from conftest import main_pid, unit_prop

UNITS = ("litestream.service", "counter.service")


@pytest.mark.parametrize("unit", UNITS)
def test_units_are_active_and_enabled(app, unit):
    service = app.service(unit)
    assert service.is_running, app.run("journalctl --no-pager -n 40 -u %s", unit).stdout
    assert service.is_enabled


@pytest.mark.parametrize("unit", UNITS)
def test_units_run_as_the_service_account(app, unit):
    assert unit_prop(app, unit, "User") == "counter"
    pid = main_pid(app, unit)
    assert app.check_output("ps -o user= -p %s", str(pid)) == "counter"


@pytest.mark.parametrize(
    ("unit", "restart_sec"), [("litestream.service", "2s"), ("counter.service", "1s")]
)
def test_units_restart_always_with_no_start_limit(app, unit, restart_sec):
    # A start limit would leave a unit failed for good after a burst of exits.
    assert unit_prop(app, unit, "Restart") == "always"
    assert unit_prop(app, unit, "RestartUSec") == restart_sec
    assert unit_prop(app, unit, "StartLimitIntervalUSec") == "0"


def test_restore_runs_before_replication(app):
    pre = unit_prop(app, "litestream.service", "ExecStartPre")
    assert "/usr/local/libexec/litestream-guard start" in pre
    start = unit_prop(app, "litestream.service", "ExecStart")
    assert "litestream replicate -config /etc/litestream.yml" in start


def test_app_and_litestream_are_tied_and_ordered(app):
    # Starting the app starts Litestream first and keeps it running (Upholds);
    # a stop of the app stops Litestream after it (ExecStopPost).
    assert "litestream.service" in unit_prop(app, "counter.service", "Wants").split()
    assert "litestream.service" in unit_prop(app, "counter.service", "Upholds").split()
    assert "litestream.service" in unit_prop(app, "counter.service", "After").split()
    assert unit_prop(app, "litestream.service", "BindsTo") == ""
    assert "litestream-guard app-stopped counter.service" in unit_prop(
        app, "counter.service", "ExecStopPost"
    )
    # Ordered after Litestream, the app stops before it: the final sync holds
    # its last writes. Its start is skipped unless Litestream runs, and
    # Litestream starts it once it does.
    assert "systemctl show -p SubState --value litestream.service" in unit_prop(
        app, "counter.service", "ExecCondition"
    )
    assert "litestream-guard started" in unit_prop(app, "litestream.service", "ExecStartPost")
    assert "counter.service" in unit_prop(app, "litestream.service", "Before").split()


def test_stop_timeout_exceeds_the_final_sync_timeout(app):
    config = app.file("/etc/litestream.yml").content_string
    assert "shutdown-sync-timeout: 10s" in config
    # 10 s wait for the replica + 10 s final sync + margin.
    assert unit_prop(app, "litestream.service", "TimeoutStopUSec") == "40s"
    assert "litestream-guard stop" in unit_prop(app, "litestream.service", "ExecStop")


@pytest.mark.parametrize("unit", UNITS)
def test_units_are_hardened(app, unit):
    expected = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "RestrictSUIDSGID": "yes",
        "MemoryDenyWriteExecute": "yes",
        "CapabilityBoundingSet": "",
    }
    for prop, value in expected.items():
        assert unit_prop(app, unit, prop) == value, prop
    assert unit_prop(app, unit, "ReadWritePaths") == "/var/lib/counter"


@pytest.mark.parametrize(
    ("path", "owner", "group", "mode"),
    [
        ("/usr/local/bin/litestream", "root", "root", 0o755),
        ("/etc/litestream.yml", "root", "counter", 0o640),
        ("/etc/litestream", "root", "counter", 0o750),
        ("/etc/counter/counter.env", "root", "counter", 0o640),
        ("/var/lib/counter", "counter", "counter", 0o750),
        ("/var/lib/counter/counter.db", "counter", "counter", None),
        ("/etc/systemd/system/litestream.service", "root", "root", 0o644),
        ("/etc/systemd/system/counter.service", "root", "root", 0o644),
    ],
)
def test_files_owners_and_modes(app, path, owner, group, mode):
    f = app.file(path)
    assert f.exists, path
    assert (f.user, f.group) == (owner, group), path
    if mode is not None:
        assert f.mode == mode, f"{path}: {oct(f.mode)}"


def test_replica_secrets_are_readable_only_by_their_owner(app, replica_kind):
    if replica_kind == "sftp":
        key = app.file("/etc/litestream/sftp_ed25519")
        assert (key.user, key.group, key.mode) == ("counter", "counter", 0o600)
    else:
        env = app.file("/etc/litestream/litestream.env")
        assert (env.user, env.group, env.mode) == ("root", "root", 0o600)


def test_s3_secret_is_nowhere_but_its_file(app, s3_only):
    env = app.file("/etc/litestream/litestream.env").content_string
    secret = re.search(r"^LITESTREAM_SECRET_ACCESS_KEY='(.+)'$", env, re.M).group(1)
    places = {
        "config": app.file("/etc/litestream.yml").content_string,
        "unit": app.file("/etc/systemd/system/litestream.service").content_string,
        "process list": app.check_output("ps -eo args"),
        "journal": app.check_output("journalctl --no-pager -o cat"),
        "unit properties": app.check_output("systemctl show litestream.service"),
    }
    for place, text in places.items():
        assert secret not in text, f"the S3 secret appears in the {place}"


def test_litestream_is_the_pinned_version(app):
    assert app.check_output("/usr/local/bin/litestream version") == "0.5.17"


def test_templates_carry_the_managed_header(app):
    for path in (
        "/etc/litestream.yml",
        "/etc/systemd/system/litestream.service",
        "/etc/counter/counter.env",
    ):
        assert "Ansible managed" in app.file(path).content_string, path


def test_the_storage_host_key_is_pinned(app, storage, sftp_only):
    key = storage.file("/etc/ssh/ssh_host_ecdsa_key.pub").content_string.split()[:2]
    config = app.file("/etc/litestream.yml").content_string
    assert f"host-key: {key[0]} {key[1]}" in config
    # Litestream warns "sftp host key not verified" when it accepts any key.
    assert "host key not verified" not in app.check_output("journalctl --no-pager -u litestream")


def test_sftp_account_is_key_only_chrooted_sftp(storage, sftp_only):
    effective = storage.check_output("sshd -T -C user=litestream,host=client,addr=192.0.2.1")
    settings = dict(line.split(" ", 1) for line in effective.splitlines() if " " in line)
    assert settings["forcecommand"] == "internal-sftp"
    assert settings["chrootdirectory"] == "/srv/sftp/litestream"
    assert settings["passwordauthentication"] == "no"
    assert settings["authenticationmethods"] == "publickey"
    assert settings["authorizedkeysfile"] == "/etc/ssh/authorized_keys/%u"
    assert settings["allowtcpforwarding"] == "no"
    chroot = storage.file("/srv/sftp/litestream")
    assert (chroot.user, chroot.mode) == ("root", 0o755)
    upload = storage.file("/srv/sftp/litestream/upload")
    assert (upload.user, upload.mode) == ("litestream", 0o700)
    keys = storage.file("/etc/ssh/authorized_keys/litestream")
    assert (keys.user, keys.mode) == ("root", 0o644)
    assert "litestream@" in keys.content_string


def test_s3_store_is_hardened_and_needs_credentials(storage, s3_only):
    service = storage.service("seaweedfs.service")
    assert service.is_running and service.is_enabled
    assert unit_prop(storage, "seaweedfs.service", "User") == "seaweedfs"
    assert unit_prop(storage, "seaweedfs.service", "ProtectSystem") == "strict"
    assert unit_prop(storage, "seaweedfs.service", "NoNewPrivileges") == "yes"
    identities = storage.file("/etc/seaweedfs/s3.json")
    assert (identities.user, identities.mode) == ("seaweedfs", 0o600)
    data = storage.file("/var/lib/seaweedfs")
    assert (data.user, data.mode) == ("seaweedfs", 0o700)
    # Nothing listens on all interfaces.
    listening = storage.check_output("ss -Hltn")
    assert not re.search(r"(0\.0\.0\.0|\*|\[::\]):\d+", listening), listening
    # Anonymous requests are refused.
    anonymous = storage.run(
        "python3 -c %s",
        "import urllib.request, urllib.error, socket\n"
        "ip = socket.gethostbyname(socket.gethostname())\n"
        "try:\n    urllib.request.urlopen(f'http://{ip}:8333/litestream?list-type=2', timeout=10)\n"
        "except urllib.error.HTTPError as e:\n    print(e.code)\n",
    )
    assert anonymous.stdout.strip() in ("401", "403"), anonymous.stdout + anonymous.stderr
