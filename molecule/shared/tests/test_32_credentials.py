"""Per-host credentials: one host's credential opens its own replica and no
other host's; the credentials of hosts no longer in the inventory are revoked
by the next storage deploy (their replicas are kept)."""

from __future__ import annotations

import pytest

from conftest import (
    SETTINGS,
    STORE,
    app_name,
    run_site,
    sftp_account,
)

# A client that is not an app host of the scenario: the "other host" whose
# replica this scenario's app host must not reach, then a removed host.
OTHER = "other-host"

_SFTP_OPTIONS = (
    "-o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
    "-o ConnectTimeout=10"
)


def sftp(host, key: str, user: str, server: str, commands: str):
    """One SFTP session in batch mode: stops at the first failing command."""
    return host.run(
        f"printf '%%s\\n' %s | sftp {_SFTP_OPTIONS} -b - -i %s %s@%s",
        commands,
        key,
        user,
        server,
    )


def storage_deploy(clients: list[str]) -> None:
    result = run_site({"sftp_storage_clients": clients}, playbook="playbooks/storage.yml")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


@pytest.mark.sftp
def test_a_hosts_sftp_key_reaches_only_its_own_replica(apps, app, storage):
    names = [app_name(a) for a in apps]
    server = app_name(storage)
    own_key = SETTINGS["litestream_sftp_key_path"]
    own_user = sftp_account(app_name(app))
    other_user = STORE["sftp_account_prefix"] + OTHER
    other_key = "/root/other-host-sftp-key"
    upload = STORE["sftp_upload_dir"]
    kept = f"{STORE['sftp_root']}/{other_user}/{upload}/{OTHER}/replica.ltx"
    storage_deploy([*names, OTHER])
    try:
        key = storage.check_output("cat %s/%s", STORE["sftp_client_keys_dir"], OTHER)
        app.run("install -m 0600 /dev/null %s", other_key)
        app.run("printf '%%s\\n' %s > %s", key, other_key)

        # The other host writes its replica.
        written = sftp(
            app,
            other_key,
            other_user,
            server,
            f"-mkdir {upload}/{OTHER}\nput /etc/hostname {upload}/{OTHER}/replica.ltx",
        )
        assert written.rc == 0, written.stderr

        # This host's key, with its own account: its chroot shows only its own
        # files; the other's replica cannot be listed, read, written or deleted.
        listed = sftp(app, own_key, own_user, server, "ls -1 /")
        assert listed.rc == 0 and listed.stdout.split()[-1] == f"/{upload}", listed.stdout
        theirs = f"/../{other_user}/{upload}/{OTHER}"
        for command in (
            f"ls {theirs}",
            f"get {theirs}/replica.ltx /tmp/stolen",
            f"put /etc/hostname {theirs}/planted.ltx",
            f"rm {theirs}/replica.ltx",
        ):
            attempt = sftp(app, own_key, own_user, server, command)
            assert attempt.rc != 0, f"{command!r} succeeded: {attempt.stdout}"

        # This host's key does not open the other's account, nor the other's
        # key this host's.
        for key_path, user in ((own_key, other_user), (other_key, own_user)):
            refused = sftp(app, key_path, user, server, "ls")
            assert refused.rc != 0 and "Permission denied" in refused.stderr, refused.stderr
        assert storage.file(kept).exists
    finally:
        # The other host leaves the inventory: the next storage deploy revokes it.
        storage_deploy(names)
    assert storage.run("getent passwd %s", other_user).rc != 0
    assert not storage.file(f"{STORE['sftp_authorized_keys_dir']}/{other_user}").exists
    assert not storage.file(f"{STORE['sftp_client_keys_dir']}/{OTHER}").exists
    revoked = sftp(app, other_key, other_user, server, "ls")
    assert revoked.rc != 0 and "Permission denied" in revoked.stderr, revoked.stderr
    # Its replica is kept (removing data is the operator's decision).
    assert storage.file(kept).exists
    app.run("rm -f %s", other_key)
    storage.run("rm -rf %s/%s", STORE["sftp_root"], other_user)
    # This host still replicates with its own account.
    assert sftp(app, own_key, own_user, server, "ls").rc == 0
