"""The replica's store, for the two things Litestream has no command for:
moving a path's LTX files aside when a new history must begin there (a
foreign or unrestorable history; nothing is ever deleted that was not
copied), and fetching the files of a restore plan several at once
(staging.py: Litestream 0.5 reads them one small request after another)."""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .errors import EXIT_USAGE, Refused, StoreUnreachable
from .litestream import said
from .sigv4 import signed


class FileGone(StoreUnreachable):
    """A file the plan names is no longer in the store (compaction removed
    it meanwhile): plan again."""


@dataclass(frozen=True)
class Wanted:
    """One file of a restore plan: where Litestream keeps it (level, name),
    its size, and the local path it is fetched to."""

    level: int
    name: str
    size: int
    dest: Path


def balanced(wanted: list[Wanted], parts: int) -> list[list[Wanted]]:
    """The files in at most `parts` groups of about the same bytes (the
    largest first, each to the lightest group); no empty group."""
    groups: list[list[Wanted]] = [[] for _ in range(max(1, min(parts, len(wanted))))]
    loads = [0] * len(groups)
    for item in sorted(wanted, key=lambda w: (-w.size, w.level, w.name)):
        i = loads.index(min(loads))
        groups[i].append(item)
        loads[i] += item.size
    return [g for g in groups if g]


class Store:
    """Moves the LTX files of a replica path aside, under a dated prefix
    inside that path (`<path>/aside-<stamp>`), where Litestream no longer
    reads them and from where they stay restorable (a replica whose path is
    `<path>/aside-<stamp>`). Nothing is ever deleted that was not copied."""

    def __init__(self, replica: dict, env: dict[str, str], timeout: float) -> None:
        self.replica = replica
        self.env = env
        self.timeout = timeout
        self.path = str(replica.get("path", "")).strip("/")

    @staticmethod
    def of(replica: dict, env: dict[str, str], timeout: float) -> Store:
        kinds = {"sftp": SftpStore, "s3": S3Store, "file": FileStore}
        kind = kinds.get(replica.get("type", ""))
        if kind is None:
            raise Refused(
                f"cannot move objects aside in a {replica.get('type')!r} store", EXIT_USAGE
            )
        return kind(replica, env, timeout)

    def move_aside(self, stamp: str) -> str:
        raise NotImplementedError

    def fetch(self, wanted: list[Wanted], deadline: float, workers: int = 4) -> None:
        """Each file to its `dest`, complete (its size checked), or an
        exception: StoreUnreachable (FileGone for a file no longer there)."""
        raise NotImplementedError


class FileStore(Store):
    def move_aside(self, stamp: str) -> str:
        root = Path("/" + self.path)
        aside = root / f"aside-{stamp}"
        if (root / "ltx").exists():
            aside.mkdir(mode=0o750)
            (root / "ltx").rename(aside / "ltx")
        return str(aside)


class SftpStore(Store):
    """OpenSSH's sftp in batch mode, with the replica's own key and its
    pinned host key: one rename of `<path>/ltx` (atomic on the server), and
    `get`s in a few sessions at once (each one pipelines its reads)."""

    def remote(self, relative: str) -> str:
        """A path under the replica's path, as the server names it."""
        absolute = str(self.replica.get("path", "")).startswith("/")
        return ("/" if absolute else "") + f"{self.path}/{relative}".lstrip("/")

    def start(self, batch: str, known_hosts: str, log) -> subprocess.Popen:
        """sftp running the batch file; what it says goes to `log`, a file
        (a pipe left unread could fill and stop it while others run)."""
        host, _, port = str(self.replica["host"]).partition(":")
        key_type = str(self.replica["host-key"]).split()[0]
        if key_type == "ssh-rsa":  # SHA-1 signatures are refused by OpenSSH >= 8.8
            key_type = "rsa-sha2-512,rsa-sha2-256"
        args = ["sftp", "-b", batch, "-q", "-P", port or "22", "-i", self.replica["key-path"]]
        options = [
            f"HostKeyAlgorithms={key_type}",
            f"UserKnownHostsFile={known_hosts}",
            "StrictHostKeyChecking=yes",
            "BatchMode=yes",
            f"ConnectTimeout={int(self.timeout)}",
            # A session the network cut is given up within a minute.
            "ServerAliveInterval=15",
            "ServerAliveCountMax=4",
        ]
        args += [arg for option in options for arg in ("-o", option)]
        args.append(f"{self.replica['user']}@{host}")
        return subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, text=True
        )

    @contextlib.contextmanager
    def known_hosts(self):
        """A known-hosts file naming only the pinned key."""
        host, _, port = str(self.replica["host"]).partition(":")
        # OpenSSH names a host on port 22 without brackets.
        name = host if port in ("", "22") else f"[{host}]:{port}"
        with tempfile.NamedTemporaryFile("w", suffix=".known_hosts") as known:
            known.write(f"{name} {self.replica['host-key']}\n")
            known.flush()
            yield known.name

    def run(self, batches: list[str], deadline: float) -> list[subprocess.CompletedProcess]:
        """The batches in sessions at once; each one's outcome, in order.
        The first session to fail ends the others; none outlives the call."""
        running: list[tuple[subprocess.Popen, object]] = []
        with (
            self.known_hosts() as known,
            tempfile.TemporaryDirectory() as tmp,
            contextlib.ExitStack() as files,
        ):
            try:
                for n, batch in enumerate(batches):
                    path = Path(tmp) / f"batch-{n}"
                    path.write_text(batch)
                    log = files.enter_context(tempfile.TemporaryFile("w+"))
                    running.append((self.start(str(path), known, log), log))
                while True:
                    states = [process.poll() for process, _ in running]
                    if all(state is not None for state in states) or any(states):
                        break
                    if time.monotonic() > deadline:
                        raise StoreUnreachable("sftp did not finish in the time left")
                    time.sleep(0.05)
            finally:
                for process, _ in running:
                    if process.poll() is None:
                        process.kill()
                        process.wait()
            done = []
            for process, log in running:
                log.seek(0)
                done.append(
                    subprocess.CompletedProcess(process.args, process.returncode, "", log.read())
                )
            return done

    def move_aside(self, stamp: str) -> str:
        aside = self.remote(f"aside-{stamp}")
        source = self.remote("ltx")
        batch = f"mkdir {aside}\nrename {source} {aside}/ltx\n"
        (out,) = self.run([batch], time.monotonic() + self.timeout * 6)
        if out.returncode != 0:
            raise StoreUnreachable(f"sftp could not move {source} aside: {said(out)}")
        return aside

    def fetch(self, wanted: list[Wanted], deadline: float, workers: int = 4) -> None:
        groups = balanced(wanted, workers)
        batches = [
            "".join(f'get "{self.remote(f"ltx/{w.level}/{w.name}")}" "{w.dest}"\n' for w in group)
            for group in groups
        ]
        outs = self.run(batches, deadline)
        # A session that failed says why; the ones it ended were killed (< 0).
        failed = [o for o in outs if o.returncode > 0] or [o for o in outs if o.returncode]
        if failed:
            text = said(failed[0])
            if "not found" in text or "No such file" in text:
                raise FileGone(f"a file of the plan is gone from the store: {text}")
            raise StoreUnreachable(f"sftp could not fetch the plan's files: {text}")
        check_sizes(wanted)


class S3Store(Store):
    """ListObjectsV2, CopyObject, DeleteObject with SigV4 (standard library;
    HTTPS checked against the host's trust store). A copy is made before its
    original is deleted: an interrupted move leaves both, and the next
    attempt (the request stays until it is done) copies again."""

    def _endpoint(self) -> str:
        endpoint = str(self.replica.get("endpoint") or "")
        if not endpoint:
            region = self.replica.get("region") or "us-east-1"
            return f"https://s3.{region}.amazonaws.com"
        return endpoint if "://" in endpoint else f"https://{endpoint}"

    def request(self, method: str, key: str, params: dict, headers: dict | None = None) -> bytes:
        endpoint = self._endpoint().rstrip("/")
        region = self.replica.get("region") or "us-east-1"
        access = self.env.get("LITESTREAM_ACCESS_KEY_ID", "")
        secret = self.env.get("LITESTREAM_SECRET_ACCESS_KEY", "")
        path = "/" + self.replica["bucket"] + ("/" + key if key else "")
        url, signed_headers = signed(
            method, endpoint, path, params, access, secret, region=region, headers=headers
        )
        req = urllib.request.Request(url, headers=signed_headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as answer:
                return answer.read()
        except urllib.error.HTTPError as error:
            raise StoreUnreachable(
                f"S3 {method} {path}: HTTP {error.code} {error.read()[:300]!r}"
            ) from None
        except (OSError, http.client.HTTPException) as error:
            # A connection closed mid-answer is http.client's IncompleteRead.
            raise StoreUnreachable(f"S3 {method} {path}: {error!r}") from None

    def keys(self, prefix: str) -> list[str]:
        found: list[str] = []
        token = ""
        while True:
            params = {"list-type": "2", "prefix": prefix}
            if token:
                params["continuation-token"] = token
            listing = self.request("GET", "", params).decode()
            found += [html_unescape(k) for k in re.findall(r"<Key>([^<]+)</Key>", listing)]
            more = re.search(r"<NextContinuationToken>([^<]+)</NextContinuationToken>", listing)
            if not more:
                return found
            token = html_unescape(more.group(1))

    def move_aside(self, stamp: str) -> str:
        # Litestream's S3 layout, its path taken exactly as given (c.Path +
        # "/" + <level as %04x>/<min>-<max>.ltx).
        path = str(self.replica.get("path", ""))
        aside = f"{path.rstrip('/')}/aside-{stamp}"
        levels = re.compile(re.escape(path) + r"/[0-9a-f]{4}/[^/]+$")
        for key in [k for k in self.keys(path + "/") if levels.match(k)]:
            target = aside + key[len(path) :]
            source = urllib.parse.quote(f"/{self.replica['bucket']}/{key}")
            answer = self.request("PUT", target, {}, {"x-amz-copy-source": source})
            # A copy can fail after its 200 (an <Error> body): the original
            # is deleted only once the copy says it is complete.
            if b"<CopyObjectResult" not in answer:
                raise StoreUnreachable(f"S3 copy of {key} did not complete: {answer[:300]!r}")
            self.request("DELETE", key, {})
        return aside

    # Ranged GETs of at most this many bytes, several at once, each thread on
    # a connection of its own kept open (no TLS handshake per range).
    CHUNK = 16 << 20
    WORKERS = 4

    def key_of(self, level: int, name: str) -> str:
        # Litestream's S3 layout: its path as given, then the level.
        return f"{self.replica.get('path', '')}/{level:04x}/{name}"

    def connection(self, local: threading.local) -> http.client.HTTPConnection:
        """This thread's connection to the endpoint (made once)."""
        if getattr(local, "conn", None) is None:
            parts = urllib.parse.urlsplit(self._endpoint())
            if parts.scheme == "https":
                local.conn = http.client.HTTPSConnection(
                    parts.hostname,
                    parts.port,
                    timeout=self.timeout,
                    context=ssl.create_default_context(),
                )
            else:
                local.conn = http.client.HTTPConnection(
                    parts.hostname, parts.port, timeout=self.timeout
                )
        return local.conn

    def get_range(self, local: threading.local, key: str, start: int, end: int, fd: int) -> None:
        """Bytes start..end (inclusive) of an object, written at `start` in fd."""
        endpoint = self._endpoint().rstrip("/")
        path = "/" + self.replica["bucket"] + "/" + key
        url, headers = signed(
            "GET",
            endpoint,
            path,
            {},
            self.env.get("LITESTREAM_ACCESS_KEY_ID", ""),
            self.env.get("LITESTREAM_SECRET_ACCESS_KEY", ""),
            region=self.replica.get("region") or "us-east-1",
            headers={"range": f"bytes={start}-{end}"},
        )
        target = url[len(endpoint) :]
        conn = self.connection(local)
        try:
            conn.request("GET", target, headers=headers)
            answer = conn.getresponse()
            if answer.status == 404:
                answer.read()
                raise FileGone(f"{key} is gone from the store")
            if answer.status not in (200, 206):
                raise StoreUnreachable(
                    f"S3 GET {path}: HTTP {answer.status} {answer.read()[:300]!r}"
                )
            offset, want = start, end - start + 1
            while want:
                piece = answer.read(min(want, 1 << 20))
                if not piece:
                    break
                view = memoryview(piece)
                while view:  # a short write (a full disk) is an OSError next round
                    written = os.pwrite(fd, view, offset)
                    view, offset = view[written:], offset + written
                want -= len(piece)
            if want or answer.read(1):
                raise StoreUnreachable(f"S3 GET {path}: not the range {start}-{end} asked")
        except (OSError, http.client.HTTPException) as error:
            # A connection closed mid-answer is http.client's IncompleteRead.
            conn.close()
            local.conn = None
            raise StoreUnreachable(f"S3 GET {path}: {error!r}") from None
        except StoreUnreachable:
            conn.close()
            local.conn = None
            raise

    def fetch(self, wanted: list[Wanted], deadline: float, workers: int = 0) -> None:
        jobs = []
        for w in wanted:
            with open(w.dest, "wb") as f:
                f.truncate(w.size)
            for start in range(0, w.size, self.CHUNK):
                jobs.append((w, start, min(w.size, start + self.CHUNK) - 1))
        local = threading.local()
        opened: list[http.client.HTTPConnection] = []

        def one(job: tuple[Wanted, int, int]) -> None:
            w, start, end = job
            if time.monotonic() > deadline:
                raise StoreUnreachable("the fetch did not finish in the time left")
            if getattr(local, "conn", None) is None:
                opened.append(self.connection(local))
            fd = os.open(w.dest, os.O_WRONLY)
            try:
                self.get_range(local, self.key_of(w.level, w.name), start, end, fd)
            finally:
                os.close(fd)

        try:
            with ThreadPoolExecutor(max_workers=workers or self.WORKERS) as pool:
                for _ in pool.map(one, jobs):
                    pass
        finally:
            for conn in opened:
                conn.close()
        check_sizes(wanted)


def check_sizes(wanted: list[Wanted]) -> None:
    """Every file fetched whole: its size is the plan's."""
    for w in wanted:
        got = w.dest.stat().st_size if w.dest.exists() else None
        if got != w.size:
            raise StoreUnreachable(
                f"{w.name} (level {w.level}): {got} bytes fetched, {w.size} planned"
            )


def html_unescape(text: str) -> str:
    return (
        text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", '"')
        .replace("&apos;", "'")
        .replace("&amp;", "&")
    )
