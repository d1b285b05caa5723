"""Per-host credentials: one host's credential opens its own replica and no
other host's; the credentials of hosts no longer in the inventory are revoked
by the next storage deploy (their replicas are kept)."""

from __future__ import annotations

import pytest

from deployment import ENV_FILE, SETTINGS, STORE
from hosts import app_name, replica_count, run_site, visit, wait_until
from stores import (
    s3_identities,
    s3_request,
    sftp_account,
    write_s3_env_file,
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


def storage_deploy(clients: list[str], kind: str = "sftp") -> None:
    result = run_site({f"{kind}_storage_clients": clients}, playbook="playbooks/storage.yml")
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


def refused(answer: dict, *codes: str) -> bool:
    return answer["status"] == 403 and answer["code"] in (codes or ("AccessDenied",))


@pytest.mark.s3
def test_a_hosts_s3_keys_reach_only_its_own_prefix(apps, storage):
    assert len(apps) >= 2, "needs two app hosts (scenario s3)"
    own, other = apps[:2]
    mine, theirs = app_name(own), app_name(other)
    bucket = STORE["s3_bucket"]
    visit(other)

    def with_own_keys(method: str, key: str = "", query: dict | None = None, body: str = ""):
        path = f"/{bucket}/{key}" if key else f"/{bucket}"
        return s3_request(own, ENV_FILE, method, path, query, body)

    def with_their_keys(method: str, key: str, body: str = ""):
        return s3_request(other, ENV_FILE, method, f"/{bucket}/{key}", None, body)

    # An object of theirs that stays put while this runs (Litestream's own
    # files come and go with compaction and retention): written with their
    # keys, removed with them after.
    kept = f"{theirs}/kept-{app_name(storage)}.txt"
    assert with_their_keys("PUT", kept, "theirs")["status"] == 200
    try:
        # Everything on the other host's prefix is refused with this host's keys.
        listed = with_own_keys("GET", query={"list-type": "2", "prefix": f"{theirs}/"})
        assert refused(listed), listed
        assert refused(with_own_keys("GET", kept)), kept
        assert refused(with_own_keys("HEAD", kept), "")
        assert refused(with_own_keys("PUT", f"{theirs}/planted.ltx", body="planted"))
        assert refused(with_own_keys("DELETE", kept))
        # A listing of the whole bucket (no prefix) shows nothing of the other's.
        everything = with_own_keys("GET", query={"list-type": "2"})
        assert refused(everything) and theirs not in everything["body"], everything
        # Their objects are untouched, nothing was planted among them.
        assert with_their_keys("GET", kept)["body"] == "theirs"
        assert with_their_keys("GET", f"{theirs}/planted.ltx")["status"] == 404
    finally:
        with_their_keys("DELETE", kept)

    # This host's own prefix works: write, read, list, delete.
    probe = f"{mine}/probe-{app_name(storage)}.txt"
    assert with_own_keys("PUT", probe, body="mine")["status"] == 200
    assert with_own_keys("GET", probe)["body"] == "mine"
    own_list = with_own_keys("GET", query={"list-type": "2", "prefix": f"{mine}/"})
    assert own_list["status"] == 200 and f"<Key>{probe}</Key>" in own_list["body"], own_list
    assert with_own_keys("DELETE", probe)["status"] == 204


# Slow (a whole deploy or two): run by `make drills`, kept out of `make test`'s budget.
@pytest.mark.drill
@pytest.mark.s3
def test_s3_keys_of_a_removed_client_are_revoked(apps, app, storage):
    names = [app_name(a) for a in apps]
    bucket = STORE["s3_bucket"]
    other_env = "/root/other-host-s3.env"
    storage_deploy([*names, OTHER], kind="s3")
    try:
        # The other client's keys, made on the storage host, work on its own
        # prefix only.
        identity = s3_identities(storage)[OTHER]
        scope = f"{bucket}/{OTHER}/*"
        assert sorted(identity["actions"]) == sorted(
            [f"List:{scope}", f"Read:{scope}", f"Write:{scope}"]
        )
        (credentials,) = identity["credentials"]
        write_s3_env_file(app, other_env, credentials["accessKey"], credentials["secretKey"])
        written = s3_request(app, other_env, "PUT", f"/{bucket}/{OTHER}/replica.ltx", body="x")
        assert written["status"] == 200, written
        listed = s3_request(
            app, other_env, "GET", f"/{bucket}", {"list-type": "2", "prefix": f"{OTHER}/"}
        )
        assert f"<Key>{OTHER}/replica.ltx</Key>" in listed["body"], listed
        theirs = s3_request(
            app, other_env, "GET", f"/{bucket}", {"list-type": "2", "prefix": f"{names[0]}/"}
        )
        assert refused(theirs), theirs
    finally:
        # The other client leaves the inventory: the next storage deploy
        # revokes its identity (a restart: SeaweedFS drops none on a reload).
        storage_deploy(names, kind="s3")
    assert OTHER not in s3_identities(storage)
    revoked = s3_request(
        app, other_env, "GET", f"/{bucket}", {"list-type": "2", "prefix": f"{OTHER}/"}
    )
    assert refused(revoked, "InvalidAccessKeyId"), revoked
    app.run("rm -f %s", other_env)
    # The app hosts keep their keys, and replicate with them.
    assert sorted(s3_identities(storage)) == sorted(names)
    count = visit(app)
    wait_until(lambda: replica_count(app) == count, timeout=120, what=f"replica holds {count}")
