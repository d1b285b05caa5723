"""Hold COUNT files open at once in one SFTP session, as Litestream's
compaction does with every pending file of a level: the SFTP protocol (v3)
spoken over `ssh -s sftp` with the host's replica key. The files are made in
DIR (created, then removed with them). Prints JSON: {opened, failed, error}.

    python3 -c "$(cat sftp_open_many.py)" KEY USER HOST HOST_KEY DIR COUNT

HOST_KEY: the store's host key ("type base64"), pinned as Litestream pins it.
"""

import json
import os
import struct
import subprocess
import sys
import tempfile

key, user, host, host_key, directory, count = sys.argv[1:7]
INIT, OPEN, CLOSE, REMOVE, MKDIR, RMDIR = 1, 3, 4, 13, 14, 15
STATUS, HANDLE = 101, 102
WRITE, CREAT, TRUNC = 0x02, 0x08, 0x10

with tempfile.NamedTemporaryFile("w", delete=False) as known:
    known.write(f"{host.split(':')[0]} {host_key}\n")
ssh = subprocess.Popen(
    [
        "/usr/bin/ssh",
        "-i",
        key,
        "-o",
        "BatchMode=yes",
        "-o",
        f"UserKnownHostsFile={known.name}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-s",
        f"{user}@{host.split(':')[0]}",
        "sftp",
    ],
    stdin=subprocess.PIPE,
    stdout=subprocess.PIPE,
)
ids = iter(range(1, 1 << 31))


def string(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


def send(kind: int, payload: bytes) -> None:
    ssh.stdin.write(struct.pack(">IB", len(payload) + 1, kind) + payload)
    ssh.stdin.flush()


def receive() -> tuple[int, bytes]:
    length, kind = struct.unpack(">IB", ssh.stdout.read(5))
    return kind, ssh.stdout.read(length - 1)


def request(kind: int, *fields: bytes) -> tuple[int, bytes]:
    send(kind, struct.pack(">I", next(ids)) + b"".join(fields))
    return receive()


def status(body: bytes) -> tuple[int, str]:
    code, size = struct.unpack(">II", body[4:12])
    return code, body[12 : 12 + size].decode(errors="replace")


no_attrs = struct.pack(">I", 0)
send(INIT, struct.pack(">I", 3))
receive()
base = directory.encode()
request(MKDIR, string(base), no_attrs)
handles, failed, error = [], 0, ""
for n in range(int(count)):
    name = base + b"/%06d" % n
    kind, body = request(OPEN, string(name), struct.pack(">I", WRITE | CREAT | TRUNC), no_attrs)
    if kind == HANDLE:
        size = struct.unpack(">I", body[4:8])[0]
        handles.append(body[8 : 8 + size])
    else:
        failed += 1
        error = error or "{} {}".format(*status(body))
for handle in handles:
    request(CLOSE, string(handle))
for n in range(int(count)):
    request(REMOVE, string(base + b"/%06d" % n))
request(RMDIR, string(base))
ssh.stdin.close()
ssh.wait(timeout=30)
os.unlink(known.name)
print(json.dumps({"opened": len(handles), "failed": failed, "error": error}))
