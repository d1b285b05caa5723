"""Replication lag: from a write's acknowledgement to the write read back
from the replica, on the store side.

A paced load (10, 100, 1,000 writes/s, DURATION_S each) sends `GET /` over
the app host's loopback and records each answer's time and visit number.
Meanwhile a watcher reads the replica itself: on the storage host's file
system (SFTP: the account's chroot), or through the S3 API with the app
host's own keys (S3). For every new level-0 LTX file it notes when it was
first seen and decodes the file's copy of the `visits` page (LZ4 block,
b-tree leaf, row id 1): the count it holds is the highest visit number the
file brings to the replica. A write's lag is the first sight of a file
holding a count at least its number, minus its answer's time (both clocks
are the one kernel's: the lab's containers share it).

Each setting runs Litestream with a temporary configuration (the deployed
one plus `addr:` for Litestream's Prometheus metrics, and the setting's
replica `sync-interval` and database `monitor-interval`), named by a runtime
drop-in that replaces the unit's ExecStart: the deployed /etc/litestream.yml
stays as Ansible wrote it, so a deploy running meanwhile finds nothing to
change. Afterwards the drop-in and the file go, Litestream is restarted and
/healthz must answer 200. Store requests: Litestream's own counter
`litestream_replica_operation_total` over the run (see per_hour).

Under a steady load Litestream turns the WAL into an LTX file every
`monitor-interval` and uploads at its `sync-interval` ticks, two 1 s tickers
by default whose phase is set at each start: with the defaults a write waits
up to 1 s for the first and then a fixed 0-1 s for the second, so p99 is
between 1 and 2 s and differs from one start of Litestream to the next.

    .venv/bin/python bench/replication.py   # this section alone, JSON
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import time
from bisect import bisect_left

import lab
import yaml
from lab import s3_request  # shipped to the host with `watch`

HOST = lab.APP_HOSTS[0]
RATES = (10, 100, 1000)
DURATION_S = 20
# (replica sync-interval, database monitor-interval), None: as deployed. The
# deployed settings first; then a shorter upload interval; then also a
# shorter WAL-to-LTX interval (the database's monitor, 1 s by default), which
# bounds the lag as much as the upload interval does.
SETTINGS = ((None, None), ("100ms", None), ("100ms", "100ms"))
METRICS_ADDR = "127.0.0.1:9393"
POLL_S = 0.01
DRAIN_S = 30  # after the load, how long the last write may take to show up
ATTEMPTS = 3  # runs of a point, when a deploy restarts Litestream under it
# The temporary configuration, read by Litestream's own account (its group).
BENCH_CONFIG = "/run/litestream-bench.yml"

METHOD = (
    "Each answered GET / (its time and visit number, paced load on the app host's loopback) is "
    "matched to the first new L0 LTX file seen on the store (SFTP: its file system polled every "
    "10 ms; S3: ListObjectsV2 and GET with the host's keys) whose visits page, decoded, holds a "
    "count at least that number. Store requests per hour: Litestream's own PUT and GET counts "
    "(litestream_replica_operation_total) over the run, scaled, plus one DELETE per PUT (every "
    "file is deleted once in a steady state); Litestream 0.5.17 does not count LISTs."
)


# -- On a lab host: the replica watcher (shipped with lab.host_program) -----


def lz4_block(src: bytes) -> bytes:
    """Decompress one LZ4 block (what LTX page frames hold)."""
    out, i = bytearray(), 0
    while True:
        token = src[i]
        i += 1
        literals = token >> 4
        if literals == 15:
            while src[i] == 255:
                literals += 255
                i += 1
            literals += src[i]
            i += 1
        out += src[i : i + literals]
        i += literals
        if i >= len(src):
            return bytes(out)
        offset = src[i] | src[i + 1] << 8
        i += 2
        length = token & 15
        if length == 15:
            while src[i] == 255:
                length += 255
                i += 1
            length += src[i]
            i += 1
        length += 4
        start = len(out) - offset
        while length > 0:  # the match may overlap what it appends
            chunk = out[start : start + min(length, offset)]
            out += chunk
            start += len(chunk)
            length -= len(chunk)


def ltx_page(data: bytes, pgno: int) -> bytes | None:
    """Page `pgno` as an LTX file holds it, or None. LTX (superfly/ltx,
    version 3): a 100-byte header, then frames of page number (u32), flags
    (u16), size (u32) and an LZ4 block; a zero page number ends them."""
    import struct

    if data[:4] != b"LTX1":
        raise ValueError("not an LTX file")
    i = 100
    while i + 6 <= len(data):
        number, flags = struct.unpack_from(">IH", data, i)
        if number == 0:
            return None
        if not flags & 1:
            raise ValueError("LTX page frame without a size (an older format)")
        (size,) = struct.unpack_from(">I", data, i + 6)
        if number == pgno:
            return lz4_block(data[i + 10 : i + 10 + size])
        i += 10 + size
    return None


def leaf_integer(page: bytes, pgno: int, rowid: int, column: int) -> int | None:
    """An integer column of a row on an SQLite table b-tree leaf page."""

    def varint(at: int) -> tuple[int, int]:
        value = 0
        for k in range(8):
            value = value << 7 | page[at + k] & 0x7F
            if page[at + k] < 0x80:
                return value, at + k + 1
        return value << 8 | page[at + 8], at + 9

    base = 100 if pgno == 1 else 0
    if page[base] != 0x0D:
        return None
    sizes = {0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 6, 6: 8, 7: 8, 8: 0, 9: 0}
    for cell in range(int.from_bytes(page[base + 3 : base + 5], "big")):
        at = int.from_bytes(page[base + 8 + 2 * cell : base + 10 + 2 * cell], "big")
        _, at = varint(at)  # payload size
        found, at = varint(at)
        if found != rowid:
            continue
        header_size, cursor = varint(at)
        types = []
        while cursor < at + header_size:
            serial, cursor = varint(cursor)
            types.append(serial)
        position = at + header_size
        for serial in types[:column]:
            position += sizes.get(serial, (serial - 12) // 2)
        serial = types[column]
        if serial in (8, 9):
            return serial - 8
        if not 1 <= serial <= 6:
            return None
        return int.from_bytes(page[position : position + sizes[serial]], "big", signed=True)
    return None


def watch(kind: str, where: str, pgno: str, env_file: str = "", endpoint: str = "") -> None:
    """Print a JSON line per new L0 LTX file of the replica: its name, when
    it was first listed, the visit count it holds (None: no visits page).
    `where`: SFTP the level-0 directory; S3 "BUCKET/PREFIX". Prints
    {"ready": ...} once the files already there are known; reads the last
    acknowledged visit number on stdin, stops once a file holds it (or
    after DRAIN_S)."""
    import json
    import os
    import re
    import select
    import sys
    import time

    page_number, seen, last = int(pgno), set(), ""
    if kind == "sftp":

        def listing() -> list[str]:
            return sorted(n for n in os.listdir(where) if n.endswith(".ltx"))

        def read(name: str) -> bytes:
            with open(os.path.join(where, name), "rb") as f:
                return f.read()

    else:
        bucket, _, prefix = where.partition("/")

        def listing() -> list[str]:
            params = {"list-type": "2", "prefix": prefix, "start-after": last or prefix}
            answer = s3_request(env_file, endpoint, "GET", f"/{bucket}", params).decode()
            return sorted(
                k for k in re.findall(r"<Key>([^<]+)</Key>", answer) if k.endswith(".ltx")
            )

        def read(name: str) -> bytes:
            return s3_request(env_file, endpoint, "GET", f"/{bucket}/{name}", {})

    seen.update(listing())
    last = max(seen, default="")
    print(json.dumps({"ready": len(seen)}), flush=True)
    target, deadline, best = None, 0.0, 0
    while target is None or (best < target and time.time() < deadline):
        if target is None and select.select([sys.stdin], [], [], POLL_S)[0]:
            target, deadline = int(sys.stdin.readline() or 0), time.time() + DRAIN_S
        elif target is not None:
            time.sleep(POLL_S)
        names = [n for n in listing() if n not in seen]
        now = time.time()
        for name in names:
            page = ltx_page(read(name), page_number)
            count = None if page is None else leaf_integer(page, page_number, 1, 1)
            best = max(best, count or 0)
            print(json.dumps({"file": name, "t": now, "count": count}), flush=True)
        seen.update(names)
        last = max(seen, default="")


# -- On the controller, in the app host's network namespace: the load -------


def load(port: str, rate: str, seconds: str, connections: str) -> None:
    """Send GET / at `rate` per second for `seconds` over `connections`
    keep-alive connections, each request at its scheduled time (or as soon
    as a connection is free); print [[answer time, visit number], ...]."""
    import asyncio
    import json
    import re
    import time

    per_s, total = float(rate), int(float(rate) * float(seconds))
    start, acks, slots = time.time() + 0.2, [], iter(range(total))

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", int(port))
        for slot in slots:
            await asyncio.sleep(max(0.0, start + slot / per_s - time.time()))
            writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (ConnectionError, asyncio.IncompleteReadError):  # closed while idle: again
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", int(port))
                writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(head.decode(errors="replace"))
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
            body = await reader.readexactly(length)
            acks.append([time.time(), int(re.search(rb"visited (\d+) times", body).group(1))])
        writer.close()

    async def main() -> None:
        await asyncio.gather(*(client() for _ in range(int(connections))))

    asyncio.run(main())
    print(json.dumps(acks))


# -- On the controller ------------------------------------------------------


class Interrupted(RuntimeError):
    """Litestream restarted, or its configuration changed, during a run."""


def metrics(host: str) -> dict[str, int]:
    """Litestream's replica operations so far, by operation."""
    url = f"http://{METRICS_ADDR}/metrics"
    try:
        out = lab.in_netns(host, ["curl", "-sf", "-m", "5", url]).stdout
    except RuntimeError as error:
        raise Interrupted(f"no metrics on {host}: {error}") from None
    return operations(out)


def operations(metrics_text: str) -> dict[str, int]:
    """litestream_replica_operation_total in Litestream's metrics, by operation."""
    found = re.findall(r"^litestream_replica_operation_total\{([^}]*)\} (\S+)$", metrics_text, re.M)
    counts: dict[str, int] = {}
    for labels, value in found:
        operation = re.search(r'operation="([^"]+)"', labels).group(1)
        counts[operation] = counts.get(operation, 0) + int(float(value))
    return counts


def litestream_pid(host: str, settings: lab.Settings) -> str:
    return lab.sh(host, f"systemctl show -p MainPID --value {settings.litestream_unit}").strip()


def restart(host: str, settings: lab.Settings) -> None:
    """Restart Litestream; wait until the app's /healthz is 200 again."""
    lab.sh(host, f"systemctl daemon-reload && systemctl restart {settings.litestream_unit}")
    lab.wait_until(
        lambda: lab.visit(host, settings.port, "/healthz")[0] == 200,
        timeout=60,
        interval=0.5,
        what=f"{host} /healthz 200 after restarting Litestream",
    )


def drop_in(settings: lab.Settings) -> str:
    return f"/run/systemd/system/{settings.litestream_unit}.d/zz-bench.conf"


def install_config(host: str, settings: lab.Settings, text: str) -> None:
    """Run Litestream with `text` as its configuration: BENCH_CONFIG, named
    by a runtime drop-in replacing the unit's ExecStart; then restart it."""
    group = settings.raw["litestream_group"]
    lab.sh(host, f"install -m 0640 -g {group} /dev/stdin {BENCH_CONFIG}", stdin=text)
    shown = lab.sh(host, f"systemctl show -p ExecStart --value {settings.litestream_unit}")
    argv = re.search(r"argv\[\]=([^;]+) ;", shown).group(1).split()
    argv[argv.index("-config") + 1] = BENCH_CONFIG
    unit = f"[Service]\nExecStart=\nExecStart={' '.join(argv)}\n"
    path = drop_in(settings)
    lab.sh(host, f"mkdir -p {path.rpartition('/')[0]} && cat > {path}", stdin=unit)
    restart(host, settings)


def remove_config(host: str, settings: lab.Settings) -> None:
    path = drop_in(settings)
    folder = path.rpartition("/")[0]
    lab.sh(host, f"rm -f {path} {BENCH_CONFIG} && rmdir --ignore-fail-on-non-empty {folder}")
    restart(host, settings)


def bench_config(original: str, sync: str | None, monitor: str | None) -> tuple[str, str]:
    """The temporary configuration (metrics on, the intervals given) and
    the setting's label."""
    config = yaml.safe_load(original)
    config["addr"] = METRICS_ADDR
    db = config["dbs"][0]
    db["replica"]["sync-interval"] = sync or db["replica"].get("sync-interval", "1s")
    if monitor:
        db["monitor-interval"] = monitor
    label = f"sync {db['replica']['sync-interval']}, monitor {db.get('monitor-interval', '1s')}"
    text = "# bench: temporary (bench/replication.py)\n" + yaml.safe_dump(config)
    return text, label


def visits_page(host: str, settings: lab.Settings) -> int:
    code = (
        "import apsw, sys\n"
        "c = apsw.Connection(sys.argv[1], flags=apsw.SQLITE_OPEN_READONLY)\n"
        "print(c.execute(\"SELECT rootpage FROM sqlite_schema WHERE name = 'visits'\")"
        ".fetchone()[0])\n"
    )
    return int(lab.py(host, code, settings.db, python=settings.venv_python))


def watcher(host: str, settings: lab.Settings, pgno: int) -> list[str]:
    """The command that watches the host's replica from the store's side."""
    replica = lab.replica_config(host, settings)
    code = lab.host_program(
        lz4_block,
        ltx_page,
        leaf_integer,
        lab.s3_request,
        watch,
        call=f"POLL_S, DRAIN_S = {POLL_S}, {DRAIN_S}\nimport sys\nwatch(*sys.argv[1:])",
    )
    if settings.replica_type == "sftp":
        store = settings.raw["store"]
        where = f"{store['sftp_root']}/{replica['user']}/{replica['path'].strip('/')}/ltx/0"
        args = ["sftp", where, str(pgno)]
        return ["docker", "exec", "-i", lab.STORAGE_HOST, "python3", "-c", code, *args]
    # S3: Litestream's keys are <path>/<level as %04x>/<min>-<max>.ltx. Read
    # with the host's own identity (allowed below its prefix only).
    where = f"{replica['bucket']}/{replica['path'].strip('/')}/0000/"
    env_file = settings.raw["litestream_env_file"]
    args = ["s3", where, str(pgno), env_file, replica["endpoint"]]
    return ["docker", "exec", "-i", host, "python3", "-c", code, *args]


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest rank."""
    return sorted_values[max(0, math.ceil(p * len(sorted_values)) - 1)]


def per_hour(requests: dict[str, int], seconds: float) -> int:
    """Store requests an hour of this load costs: the PUTs and GETs counted,
    scaled to an hour, and as many DELETEs as PUTs (in a steady state every
    file put is deleted once, by L0 retention or compaction; the DELETEs
    seen during a run are of files put 5 minutes before, by earlier runs)."""
    puts, gets = requests.get("PUT", 0), requests.get("GET", 0)
    return round((2 * puts + gets) / seconds * 3600)


def point(host: str, settings: lab.Settings, watch_cmd: list[str], rate: int) -> dict:
    """One paced run at `rate` writes/s: the lags of its writes, the store
    requests it cost."""
    pid = litestream_pid(host, settings)
    proc = subprocess.Popen(watch_cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        ready = proc.stdout.readline()
        if '"ready"' not in ready:
            raise RuntimeError(f"replica watcher did not start: {ready!r}")
        before, started = metrics(host), time.monotonic()
        code = lab.host_program(load, call="import sys\nload(*sys.argv[1:])")
        connections = min(32, max(2, rate // 10))
        args = [sys.executable, "-c", code, str(settings.port), str(rate), str(DURATION_S)]
        try:
            out = lab.in_netns(host, [*args, str(connections)], timeout=DURATION_S * 4).stdout
        except RuntimeError as error:  # the app restarted (a deploy?), or refused
            raise Interrupted(f"the load failed: {str(error)[-300:]}") from None
        acks = json.loads(out)
        proc.stdin.write(f"{max(n for _, n in acks)}\n")
        proc.stdin.flush()
        seen = [json.loads(line) for line in proc.communicate(timeout=DRAIN_S + 30)[0].splitlines()]
        after, elapsed = metrics(host), time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
    if litestream_pid(host, settings) != pid:
        raise Interrupted(f"Litestream on {host} restarted during the run (a deploy?)")
    files = sorted((f["count"], f["t"]) for f in seen if f["count"] is not None)
    counts = [count for count, _ in files]
    first_seen = [t for _, t in files]
    for i in range(len(first_seen) - 2, -1, -1):  # earliest sight of a count >= this one
        first_seen[i] = min(first_seen[i], first_seen[i + 1])
    lags = []
    for answered, number in acks:
        at = bisect_left(counts, number)
        if at == len(counts):
            raise RuntimeError(f"visit {number} not in the replica within {DRAIN_S} s")
        lags.append(first_seen[at] - answered)
    lags.sort()
    requests = {op: n - before.get(op, 0) for op, n in sorted(after.items())}
    requests = {op: n for op, n in requests.items() if n}
    return {
        "rate": rate,
        "writes": len(acks),
        "achieved_rate": round(len(acks) / (max(t for t, _ in acks) - min(t for t, _ in acks)), 1),
        "p50_s": round(percentile(lags, 0.50), 3),
        "p99_s": round(percentile(lags, 0.99), 3),
        "max_s": round(lags[-1], 3),
        "store_requests_per_hour": per_hour(requests, elapsed),
        "store_requests": requests,
        "window_s": round(elapsed, 1),
        "files": len(seen),
    }


def measure(settings: lab.Settings) -> dict:
    host, path = HOST, settings.raw["litestream_config_path"]
    lab.wait_until(
        lambda: lab.visit(host, settings.port, "/healthz")[0] == 200,
        timeout=120,
        interval=1,
        what=f"{host} /healthz 200 before the run",
    )
    watch_cmd = watcher(host, settings, visits_page(host, settings))
    rows = []
    try:
        for sync, monitor in SETTINGS:
            for rate in RATES:
                last_error = None
                for _attempt in range(ATTEMPTS):
                    # From the deployed configuration as it is now (a deploy
                    # may change it meanwhile).
                    mine, label = bench_config(lab.sh(host, f"cat {path}"), sync, monitor)
                    if lab.sh(host, f"cat {BENCH_CONFIG}", check=False) != mine:
                        install_config(host, settings, mine)
                        time.sleep(2)  # Litestream opens the database on its first tick
                    try:
                        row = point(host, settings, watch_cmd, rate)
                        break
                    except Interrupted as error:
                        print(f"{error}; again in 10 s", file=sys.stderr, flush=True)
                        last_error = error
                        time.sleep(10)
                        lab.host_pid.cache_clear()  # the host may have been made anew
                else:
                    raise RuntimeError(f"{ATTEMPTS} runs at {rate} writes/s: {last_error}")
                default = sync is None and monitor is None
                rows.append({"sync_interval": label, "default": default} | row)
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    finally:
        remove_config(host, settings)
    return {"lag": rows, "method": METHOD}


if __name__ == "__main__":
    print(json.dumps(measure(lab.read_settings()), indent=2))
