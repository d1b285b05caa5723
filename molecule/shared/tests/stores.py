"""The replica stores as the tests see them: what a store holds for an app
host (the SFTP server's files, or keys listed through the S3 API from the
app host), damage done through the store, and the store's accounts."""

from __future__ import annotations

import json
from typing import Any

import programs
from deployment import ENV_FILE, STORE
from hosts import app_name, deployed_replica


def sftp_account(name: str) -> str:
    """The SFTP account of an app host (one per client)."""
    return STORE["sftp_accounts"][name]


def sftp_upload_path(name: str) -> str:
    """Where the SFTP store keeps an app host's replicas, on the storage host."""
    return f"{STORE['sftp_root']}/{sftp_account(name)}/{STORE['sftp_upload_dir']}"


def s3_keys(host, prefix: str, delete: str | None = None) -> list[str]:
    """The bucket's keys under a prefix, listed from an app host with the
    keys in its environment file; with `delete` (a regex), those matching
    it are deleted through the API, and listed."""
    args = [
        ENV_FILE,
        STORE["s3_endpoint"],
        STORE["s3_bucket"],
        prefix,
        *([delete] if delete else []),
    ]
    return host.check_output(
        "python3 -c %s" + " %s" * len(args), programs.text("s3.py"), *args
    ).split()


def objects_under(app, storage, replica: dict[str, Any]) -> list[str]:
    """Every object under a replica path of an app host: the SFTP server's
    files (named from the account's root), or the keys an S3 listing gives
    (named from the bucket)."""
    path = replica["path"].strip("/")
    if replica["type"] == "sftp":
        root = f"{STORE['sftp_root']}/{sftp_account(app_name(app))}"
        found = storage.check_output("find %s -type f", f"{root}/{path}").split()
        return [f[len(root) + 1 :] for f in found]
    return s3_keys(app, f"{path}/")


def replica_objects(app, storage) -> list[str]:
    """What the store holds under the app host's deployed replica path."""
    return objects_under(app, storage, deployed_replica(app))


def delete_replica_objects(app, storage, replica_kind, pattern: str) -> list[str]:
    """Delete this app host's replica files whose name matches the regex
    (damage the replica as a faulty store or a careless hand would)."""
    name = app_name(app)
    if replica_kind == "sftp":
        path = f"{sftp_upload_path(name)}/{name}"
        return storage.check_output(
            "find %s -type f -regextype posix-extended -regex %s -print -delete",
            path,
            f".*{pattern}.*",
        ).split()
    return s3_keys(app, f"{name}/", pattern)


def damage_replica_objects(app, storage, replica_kind, pattern: str, how: str) -> list[str]:
    """Damage this app host's replica files whose path matches the regex,
    as a faulty disk or a cut upload would: `truncate` cuts their last 64
    bytes, `flip` inverts one byte in their middle. Returns what it damaged."""
    name = app_name(app)
    if replica_kind == "sftp":
        path = f"{sftp_upload_path(name)}/{name}"
        found = storage.check_output(
            "find %s -type f -regextype posix-extended -regex %s", path, f".*{pattern}.*"
        ).split()
        for file in found:
            if how == "truncate":
                storage.check_output("truncate -s -64 %s", file)
            else:
                storage.check_output(
                    "python3 -c %s %s",
                    "import sys; f = open(sys.argv[1], 'r+b'); n = f.seek(0, 2) // 2; "
                    "f.seek(n); b = f.read(1); f.seek(n); f.write(bytes([b[0] ^ 255]))",
                    file,
                )
        return found
    args = [ENV_FILE, STORE["s3_endpoint"], STORE["s3_bucket"], f"{name}/", pattern, how]
    return app.check_output(
        "python3 -c %s damage" + " %s" * len(args), programs.text("s3.py"), *args
    ).split()


def s3_request(
    host, env_file: str, method: str, path: str, query: dict | None = None, body: str = ""
) -> dict[str, Any]:
    """One signed S3 request from an app host, with the keys in env_file
    (Litestream's environment-file shape), over HTTPS checked against the
    host's trust store: {status, code (the S3 error code), body}."""
    out = host.check_output(
        "python3 -c %s request %s %s %s %s %s %s",
        programs.text("s3.py"),
        env_file,
        STORE["s3_endpoint"],
        method,
        path,
        json.dumps(query or {}),
        body,
    )
    return json.loads(out)


def write_s3_env_file(host, path: str, access_key_id: str, secret_access_key: str) -> None:
    """Keys in Litestream's environment-file shape, root only, on a host."""
    host.check_output("install -m 0600 /dev/null %s", path)
    host.check_output(
        "printf '%%s\\n' %s %s > %s",
        f"LITESTREAM_ACCESS_KEY_ID='{access_key_id}'",
        f"LITESTREAM_SECRET_ACCESS_KEY='{secret_access_key}'",
        path,
    )


def s3_identities(storage) -> dict[str, dict[str, Any]]:
    """The store's identities by name, as its identities file holds them."""
    data = json.loads(storage.check_output("cat %s", STORE["s3_identities_file"]))
    return {identity["name"]: identity for identity in data["identities"]}
