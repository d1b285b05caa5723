"""playbooks/uninstall.yml: units, binaries, configuration, secrets and
accounts go; the database and the replica stay (owned by root alone) unless
uninstall_delete_data_and_replicas; a second run changes nothing.

It removes what every other test needs: this module sorts last, and the
scenario is destroyed after verify."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest

from deployment import (
    APP_SOCKET,
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
    VENV_PY,
)
from faults import docker
from hosts import app_name, db_count, get, healthy, recap_changed, run_site, visit, wait_until
from stores import sftp_account, sftp_upload_path

PLAYBOOK = "playbooks/uninstall.yml"
INSTALL_DIR = str(Path(VENV_PY).parents[2])  # <install dir>/venv/bin/python
DRILL_UNITS = [
    "litestream-restore-drill.timer",
    "litestream-restore-drill.service",
    "litestream-replica-check.timer",
    "litestream-replica-check.service",
]
APP_GONE = [
    f"/etc/systemd/system/{APP_UNIT}",
    f"/etc/systemd/system/{APP_SOCKET}",
    f"/etc/systemd/system/{LITESTREAM_UNIT}",
    *(f"/etc/systemd/system/{unit}" for unit in DRILL_UNITS),
    str(Path(SETTINGS["litestream_published"]["restore_drill_result"]).parent),
    LITESTREAM,
    GUARD,
    CONFIG,
    ENV_FILE,
    SETTINGS["litestream_config_dir"],
    INSTALL_DIR,
    str(Path(SETTINGS["counter_env_file"]).parent),
]
# A copy of the app's Litestream binary kept on the controller, to restore
# the kept replica once the host's binary is gone.
SAVED_LITESTREAM = "/var/tmp/uninstall-test-litestream"  # noqa: S108 - on the test host, root only


_STATE = {"uninstalled": False}


@pytest.fixture(autouse=True)
def serving(apps):
    """Replaces conftest's: each host serving and ready until the uninstall,
    then none is brought back."""
    if _STATE["uninstalled"]:
        return
    for host in apps:
        if get(host, "/healthz")["status"] != 200:
            host.run("systemctl start %s", APP_UNIT)
            wait_until(lambda host=host: healthy(host), 180, f"{app_name(host)} ready")


def uninstall(extra: dict | None = None) -> subprocess.CompletedProcess:
    return run_site({"uninstall_storage": True, **(extra or {})}, playbook=PLAYBOOK)


def kept_count(host, directory: str) -> int:
    """The count in a kept database directory, read from a copy (its WAL
    applied) with the host's Python: the app's virtualenv is gone."""
    scratch = "/var/tmp/uninstall-test-db"  # noqa: S108 - on the test host, root only
    host.check_output("rm -rf %s && cp -a %s %s", scratch, directory, scratch)
    count = db_count(host, f"{scratch}/{Path(DB).name}")
    host.run("rm -rf %s", scratch)
    return count


def account_exists(host, name: str, database: str = "passwd") -> bool:
    return host.run("getent %s %s", database, name).rc == 0


def test_unknown_or_unclear_settings_are_refused_before_any_host_changes(apps):
    before = visit(apps[0])
    for extra in ({"uninstall_delete_data_and_replicas": "yes"}, {"uninstall_delete_data": True}):
        result = uninstall(extra)
        assert result.returncode != 0
        assert (
            "playbooks/uninstall.yml knows uninstall_storage and" in result.stdout + result.stderr
        )
        assert set(recap_changed(result.stdout).values()) == {0}, result.stdout[-2000:]
    assert visit(apps[0]) == before + 1


@pytest.fixture(scope="module")
def uninstalled(apps, storage, replica_kind):
    """The last counts, then the uninstall (app hosts and store), run twice."""
    counts = {}
    for app in apps:
        counts[app_name(app)] = visit(app)
        app.check_output("install -m 0700 %s %s", LITESTREAM, SAVED_LITESTREAM)
    store_files = (
        sorted(storage.check_output("find %s -type f", STORE["s3_data_dir"]).split())
        if replica_kind == "s3"
        else []
    )
    _STATE["uninstalled"] = True
    first = uninstall()
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    second = uninstall()
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-2000:]
    return {"counts": counts, "store_files": store_files, "first": first, "second": second}


def test_a_second_run_changes_nothing(uninstalled):
    first = recap_changed(uninstalled["first"].stdout)
    assert first and any(first.values()), uninstalled["first"].stdout[-3000:]
    assert set(recap_changed(uninstalled["second"].stdout).values()) == {0}, uninstalled[
        "second"
    ].stdout[-3000:]


def test_units_binaries_configuration_and_accounts_are_gone(apps, uninstalled):
    for app in apps:
        for unit in (APP_UNIT, APP_SOCKET, LITESTREAM_UNIT, *DRILL_UNITS):
            assert app.run("systemctl cat %s", unit).rc != 0, unit
            assert app.run("systemctl is-active %s", unit).stdout.strip() in ("inactive", "unknown")
        for path in APP_GONE:
            assert not app.file(path).exists, path
        for user in (USER, LITESTREAM_USER):
            assert not account_exists(app, user), user
        for group in (GROUP, LITESTREAM_GROUP):
            assert not account_exists(app, group, "group"), group


def test_the_host_firewall_rules_of_the_removed_roles_are_gone(
    apps, storage, replica_kind, uninstalled
):
    """Each removed role's table leaves the ruleset and its rules file goes;
    a role still installed (the monitoring) keeps its own."""
    gone = {app: ("counter", "litestream") for app in apps}
    if replica_kind == "s3":
        gone[storage] = ("s3_storage",)
    for host, owners in gone.items():
        tables = host.check_output("nft list tables")
        for owner in owners:
            assert f"inet {owner}_ports" not in tables, (app_name(host), tables)
            assert not host.file(f"/etc/host-firewall/{owner}.nft").exists, (app_name(host), owner)
            assert host.run("systemctl is-active host-firewall@%s.service", owner).rc != 0, owner


def test_the_database_is_kept_with_the_last_count_for_root_alone(apps, uninstalled):
    for app in apps:
        data = app.file(DATA)
        assert data.is_directory
        assert (data.user, data.group, data.mode) == ("root", "root", 0o700)
        assert app.file(DB).user == "root"
        assert kept_count(app, DATA) == uninstalled["counts"][app_name(app)]


@pytest.mark.sftp
def test_the_sftp_store_keeps_the_replica_and_loses_the_accounts(app, storage, uninstalled):
    name = app_name(app)
    assert storage.service("ssh.service").is_running  # the host's own sshd stays
    assert not account_exists(storage, sftp_account(name))
    assert not account_exists(storage, STORE["sftp_group"], "group")
    assert not storage.file(STORE["sftp_client_keys_dir"]).exists
    assert not storage.file("/etc/systemd/system/ssh.service.d/sftp-storage.conf").exists
    root = storage.file(STORE["sftp_root"])
    assert (root.user, root.mode) == ("root", 0o700)
    # The kept replica restores to the last count: copied to the app host
    # (through the controller) and restored with the saved binary.
    with_replica = f"/var/tmp/uninstall-test-replica-{name}"  # noqa: S108 - scratch on the test hosts
    app.run("rm -rf %s", with_replica)
    app.check_output("mkdir -p %s", with_replica)
    with tempfile.TemporaryDirectory() as scratch:
        docker("cp", f"{storage.backend.name}:{sftp_upload_path(name)}/{name}", scratch)
        docker("cp", f"{scratch}/{name}", f"{name}:{with_replica}/")
    restored = f"{with_replica}/restored.db"
    app.check_output(
        "%s restore -o %s file://%s/%s", SAVED_LITESTREAM, restored, with_replica, name
    )
    count = db_count(app, restored)
    assert int(count) == uninstalled["counts"][name]
    app.run("rm -rf %s", with_replica)


@pytest.mark.s3
def test_the_s3_store_is_gone_but_its_data(storage, uninstalled):
    assert storage.run("systemctl cat seaweedfs.service").rc != 0
    assert not storage.file(STORE["s3_config_dir"]).exists
    assert not account_exists(storage, STORE["s3_user"])
    data = storage.file(STORE["s3_data_dir"])
    assert (data.user, data.mode) == ("root", 0o700)
    files = sorted(storage.check_output("find %s -type f", STORE["s3_data_dir"]).split())
    assert set(uninstalled["store_files"]) <= set(files)


def test_asked_to_delete_it_deletes_the_database_and_the_replicas(
    apps, storage, replica_kind, uninstalled
):
    result = uninstall({"uninstall_delete_data_and_replicas": True})
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    for app in apps:
        assert not app.file(DATA).exists
    kept = STORE["sftp_root"] if replica_kind == "sftp" else STORE["s3_data_dir"]
    assert not storage.file(kept).exists
    again = uninstall({"uninstall_delete_data_and_replicas": True})
    assert set(recap_changed(again.stdout).values()) == {0}, again.stdout[-3000:]
    for app in apps:
        app.run("rm -f %s", SAVED_LITESTREAM)
