"""Restore time vs a raw download of the same bytes from the same store.

On an app host, a scratch database of 100 MiB and of 1 GiB (random blobs,
so LZ4 in the LTX files does not shrink them) is replicated by a one-off
`litestream replicate -once` (it returns once the replica holds the
database) with a temporary configuration: the host's own replica settings
and credentials, at the path "<its path>-bench-restore" (inside the SFTP
account's `upload/`, or the S3 identity's "<host>/" prefix). Then, timed on
the host:

- `litestream restore -integrity-check MODE -o SCRATCH`, MODE as the
  deployed guard restores (guard.json, `quick` by default);
- a raw download of exactly the files that restore reads (its `-dry-run
  -json` plan): SFTP with `sftp -b` (the host's key, the pinned host key),
  S3 with signed GETs (Python's urllib, the host's keys and trust store);
- the guard's own restore path (the start-up restore's: the plan's files
  fetched by the guard into a stage, then Litestream's restore from it),
  run from the deployed guard's file with the scratch settings: its total,
  its fetch and its local restore.

The store has just written the files, so both read from its page cache.
Scratch files are removed on the host and on the store afterwards.

    .venv/bin/python bench/restore.py   # this section alone, JSON
"""

from __future__ import annotations

import json
import shlex
import sys

import lab
import yaml
from lab import s3_request  # shipped to the host with the functions using it

HOST = lab.APP_HOSTS[1]
SIZES_MIB = (100, 1024)
SCRATCH = "/var/tmp/bench-restore"  # noqa: S108 - on the lab host, as root, removed after
SUFFIX = "-bench-restore"

METHOD = (
    "A scratch database (random blobs) replicated once with `litestream replicate -once` to "
    "'<the host's replica path>-bench-restore' on the same store with the host's credentials; "
    "timed on the host: `litestream restore -o` with the deployed integrity check, then a raw "
    "download of exactly the files in the restore's plan (SFTP: `sftp -b` with the host's key "
    "and pinned host key; S3: signed GETs with Python's urllib). One run each, files fresh in "
    "the store's page cache. Then the guard's restore path (staging: the plan's files fetched "
    "by the guard, Litestream's restore from the local stage, the same integrity check): its "
    "total, fetch and local parts; target: total <= 1.5 x (raw download + local restore)."
)


# -- On the app host (shipped with lab.host_program) -------------------------


def make_db(path: str, mib: str) -> None:
    """A database of about `mib` MiB of random blobs, in WAL mode; prints its size."""
    import os

    import apsw

    conn = apsw.Connection(path)
    conn.execute("PRAGMA journal_mode = OFF").fetchall()
    conn.execute("CREATE TABLE chunks (id INTEGER PRIMARY KEY, data BLOB NOT NULL)")
    with conn:
        for _ in range(int(mib) * 16):  # 16 pages of 4 KiB a row
            conn.execute("INSERT INTO chunks (data) VALUES (?)", (os.urandom(16 * 4084),))
    conn.execute("PRAGMA journal_mode = WAL").fetchall()
    conn.close()
    print(os.path.getsize(path))


def timed(env_file: str, command: str) -> None:
    """Run a command (JSON argv) with the replica credentials in its
    environment; print its wall time in seconds."""
    import json
    import os
    import re
    import subprocess
    import time

    env = dict(os.environ)
    if os.path.exists(env_file):
        with open(env_file) as f:
            env |= {k: v.strip("'\"") for k, v in re.findall(r"^(\w+)=(.*)$", f.read(), re.M)}
    start = time.monotonic()
    done = subprocess.run(json.loads(command), env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - start
    if done.returncode != 0:
        raise SystemExit(f"{command} exited {done.returncode}: {done.stderr[-2000:]}")
    print(json.dumps({"seconds": elapsed, "stdout": done.stdout}))


def staged_restore(guard: str, settings: str, output: str, mode: str) -> None:
    """The guard's restore path (the deployed guard's file imported as a
    package), with these settings (JSON): print its wall time and the
    fetch and local-restore parts it reports."""
    import contextlib
    import io
    import json
    import pathlib
    import re
    import sys
    import time

    sys.path.insert(0, guard)
    from litestream_guard.host import Host
    from litestream_guard.settings import Settings

    host = Host(Settings.from_dict(json.loads(settings)))
    said = io.StringIO()
    start = time.monotonic()
    with contextlib.redirect_stdout(said):
        out = host.litestream.restore(
            output=pathlib.Path(output), integrity_check=mode, timeout=3600
        )
    seconds = time.monotonic() - start
    if out.returncode != 0:
        raise SystemExit(f"the staged restore failed: {out.stderr[-2000:]}")
    text = said.getvalue()
    fetch = re.search(r"fetched the plan's \d+ files, [0-9.]+ MiB, in ([0-9.]+) s", text)
    local = re.search(r"restored from the stage in ([0-9.]+) s", text)
    if not fetch or not local:
        raise SystemExit(f"the restore did not go through the stage: {text[-2000:]}")
    print(json.dumps({"seconds": seconds, "fetch": float(fetch[1]), "local": float(local[1])}))


def s3_download(env_file: str, endpoint: str, bucket: str, keys: str, dest: str) -> None:
    """GET each key (JSON list) into `dest`; print the wall time in seconds."""
    import json
    import os
    import time

    start = time.monotonic()
    for number, key in enumerate(json.loads(keys)):
        s3_request(
            env_file, endpoint, "GET", f"/{bucket}/{key}", {}, os.path.join(dest, str(number))
        )
    print(json.dumps({"seconds": time.monotonic() - start}))


def s3_delete(env_file: str, endpoint: str, bucket: str, prefix: str) -> None:
    """Delete every object below `prefix` (ListObjectsV2, DeleteObject)."""
    import re

    while True:
        listing = s3_request(
            env_file, endpoint, "GET", f"/{bucket}", {"list-type": "2", "prefix": prefix}
        )
        keys = re.findall(r"<Key>([^<]+)</Key>", listing.decode())
        if not keys:
            return
        for key in keys:
            s3_request(env_file, endpoint, "DELETE", f"/{bucket}/{key}", {})


# -- On the controller ------------------------------------------------------


def host_json(host: str, *functions, call: str, args: list[str], python: str = "python3") -> dict:
    code = lab.host_program(*functions, call=f"import sys\n{call}(*sys.argv[1:])")
    return json.loads(lab.py(host, code, *args, python=python))


class Scratch:
    """The scratch database, its replica settings and its place on the store."""

    def __init__(self, host: str, settings: lab.Settings) -> None:
        self.host, self.settings = host, settings
        self.replica = lab.replica_config(host, settings)
        self.replica["path"] = self.replica["path"].rstrip("/") + SUFFIX
        self.db, self.config = f"{SCRATCH}/scratch.db", f"{SCRATCH}/litestream.yml"
        self.env_file = settings.raw["litestream_env_file"]

    def write_config(self) -> None:
        config = {"dbs": [{"path": self.db, "replica": self.replica}]}
        text = yaml.safe_dump(config)
        lab.sh(self.host, f"mkdir -p {SCRATCH} && umask 077 && cat > {self.config}", stdin=text)

    def timed(self, command: list[str]) -> dict:
        """Run a command on the host with the replica credentials: its
        wall time ("seconds") and "stdout"."""
        args = [self.env_file, json.dumps(command)]
        return host_json(self.host, timed, call="timed", args=args)

    def litestream(self, *args: str) -> dict:
        """`litestream COMMAND -config SCRATCH_CONFIG ARGS...`, timed."""
        binary = self.settings.raw["litestream_binary_path"]
        return self.timed([binary, args[0], "-config", self.config, *args[1:]])

    def raw_download(self, plan: list[dict], dest: str) -> float:
        lab.sh(self.host, f"mkdir -p {dest}")
        r = self.replica
        if self.settings.replica_type == "sftp":
            files = [f"{r['path']}/ltx/{f['level']}/{f['name']}" for f in plan]
            return self._sftp_get(files, dest)
        keys = [f"{r['path']}/{f['level']:04x}/{f['name']}" for f in plan]
        args = [self.env_file, r["endpoint"], r["bucket"], json.dumps(keys), dest]
        functions = (lab.s3_request, s3_download)
        return host_json(self.host, *functions, call="s3_download", args=args)["seconds"]

    def _sftp_get(self, files: list[str], dest: str) -> float:
        r = self.replica
        host, _, port = r["host"].partition(":")
        port = port or "22"
        known = f"{SCRATCH}/known_hosts"
        pinned = f"{host} {r['host-key']}" if port == "22" else f"[{host}]:{port} {r['host-key']}"
        lab.sh(self.host, f"cat > {known}", stdin=pinned + "\n")
        batch = "".join(f"get {f} {dest}/{n}\n" for n, f in enumerate(files))
        lab.sh(self.host, f"cat > {SCRATCH}/batch", stdin=batch)
        options = [
            f"UserKnownHostsFile={known}",
            "StrictHostKeyChecking=yes",
            f"HostKeyAlgorithms={r['host-key'].split()[0]}",
            "BatchMode=yes",
            "IdentitiesOnly=yes",
        ]
        command = ["sftp", "-q", "-b", f"{SCRATCH}/batch", "-i", r["key-path"], "-P", port]
        command += [x for option in options for x in ("-o", option)]
        command.append(f"{r['user']}@{host}")
        return self.timed(command)["seconds"]

    def staged_restore(self, output: str, mode: str) -> dict:
        """The guard's restore path for the scratch replica: {seconds,
        fetch, local}."""
        deployed = self.settings.raw["litestream_config_dir"] + "/guard.json"
        settings = json.loads(lab.sh(self.host, f"cat {deployed}"))
        settings.update(
            config=self.config,
            db=self.db,
            replica=self.replica,
            state_dir=f"{SCRATCH}/state",
            restore_timeout=3600,
        )
        lab.sh(self.host, f"mkdir -p {SCRATCH}/state")
        guard = self.settings.raw["litestream_published"]["guard"]
        args = [guard, json.dumps(settings), output, mode]
        return host_json(
            self.host, staged_restore, call="staged_restore", args=args, python="/usr/bin/python3"
        )

    def clean_store(self) -> None:
        r = self.replica
        if not r["path"].endswith(SUFFIX):
            raise RuntimeError(f"not a scratch replica path: {r['path']}")
        if self.settings.replica_type == "sftp":
            chroot = f"{self.settings.raw['store']['sftp_root']}/{r['user']}"
            lab.sh(lab.STORAGE_HOST, f"rm -rf {shlex.quote(chroot + '/' + r['path'].strip('/'))}")
        else:
            args = [self.env_file, r["endpoint"], r["bucket"], r["path"].strip("/") + "/"]
            code = lab.host_program(
                lab.s3_request, s3_delete, call="import sys\ns3_delete(*sys.argv[1:])"
            )
            lab.py(self.host, code, *args)

    def clean(self) -> None:
        lab.sh(self.host, f"rm -rf {SCRATCH}")
        self.clean_store()


def integrity_check(host: str, settings: lab.Settings) -> str:
    guard = lab.sh(host, f"cat {settings.raw['litestream_config_dir']}/guard.json", check=False)
    return json.loads(guard or "{}").get("integrity_check", "quick")


def one_size(scratch: Scratch, mib: int, mode: str) -> dict:
    host, settings = scratch.host, scratch.settings
    scratch.write_config()
    code = lab.host_program(make_db, call="import sys\nmake_db(*sys.argv[1:])")
    db_bytes = int(lab.py(host, code, scratch.db, str(mib), python=settings.venv_python))
    scratch.litestream("replicate", "-once")  # returns once the replica holds it all
    lab.sh(host, f"rm -rf {SCRATCH}/.scratch.db-litestream")  # local LTX copy, not needed
    restored = f"{SCRATCH}/restored.db"
    plan = scratch.litestream("restore", "-dry-run", "-json", "-o", restored, scratch.db)
    files = json.loads(plan["stdout"])["files"]
    restore = scratch.litestream("restore", "-integrity-check", mode, "-o", restored, scratch.db)
    restore_s = restore["seconds"]
    raw_s = scratch.raw_download(files, f"{SCRATCH}/raw")
    lab.sh(host, f"rm -rf {SCRATCH}/raw {restored}")
    staged = scratch.staged_restore(restored, mode)
    lab.sh(host, f"rm -rf {SCRATCH}/raw {restored} {scratch.db}*")
    scratch.clean_store()
    return {
        "size_mib": mib,
        "db_bytes": db_bytes,
        "bytes": sum(f["size"] for f in files),
        "files": len(files),
        "restore_s": round(restore_s, 2),
        "raw_download_s": round(raw_s, 2),
        "ratio": round(restore_s / raw_s, 2),
        "staged_s": round(staged["seconds"], 2),
        "staged_fetch_s": round(staged["fetch"], 2),
        "staged_local_s": round(staged["local"], 2),
        # The target: <= 1.5 (issue: restore at the speed of the wire).
        "staged_ratio": round(staged["seconds"] / (raw_s + staged["local"]), 2),
        "speedup": round(restore_s / staged["seconds"], 1),
    }


def measure(settings: lab.Settings) -> dict:
    scratch = Scratch(HOST, settings)
    mode = integrity_check(HOST, settings)
    scratch.clean()  # a run stopped midway
    rows = []
    try:
        for mib in SIZES_MIB:
            rows.append(one_size(scratch, mib, mode))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    finally:
        scratch.clean()
    method = METHOD.replace(
        "the deployed integrity check", f"-integrity-check {mode} (as deployed)"
    )
    return {"restore": rows, "method": method}


if __name__ == "__main__":
    print(json.dumps(measure(lab.read_settings()), indent=2))
