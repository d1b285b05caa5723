"""The replica's store, for the one thing Litestream has no command for:
moving a path's LTX files aside when a new history must begin there (a
foreign or unrestorable history). Nothing is ever deleted that was not
copied."""

from __future__ import annotations

import re
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from .errors import EXIT_USAGE, Refused, StoreUnreachable
from .litestream import said
from .sigv4 import signed


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
    pinned host key: one rename of `<path>/ltx` (atomic on the server)."""

    def move_aside(self, stamp: str) -> str:
        host, _, port = str(self.replica["host"]).partition(":")
        aside = f"{self.path}/aside-{stamp}"
        if str(self.replica.get("path", "")).startswith("/"):
            aside = "/" + aside
        source = aside.rsplit("/aside-", 1)[0] + "/ltx"
        port = port or "22"
        # OpenSSH names a host on port 22 without brackets; and it must be
        # told to ask for the pinned key's type (it prefers Ed25519).
        name = host if port == "22" else f"[{host}]:{port}"
        key_type = str(self.replica["host-key"]).split()[0]
        if key_type == "ssh-rsa":  # SHA-1 signatures are refused by OpenSSH >= 8.8
            key_type = "rsa-sha2-512,rsa-sha2-256"
        with tempfile.NamedTemporaryFile("w", suffix=".known_hosts") as known:
            known.write(f"{name} {self.replica['host-key']}\n")
            known.flush()
            batch = f"mkdir {aside}\nrename {source} {aside}/ltx\n"
            args = [
                "sftp",
                "-b",
                "-",
                "-q",
                "-P",
                port,
                "-o",
                f"HostKeyAlgorithms={key_type}",
                "-i",
                self.replica["key-path"],
                "-o",
                f"UserKnownHostsFile={known.name}",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                f"ConnectTimeout={int(self.timeout)}",
                f"{self.replica['user']}@{host}",
            ]
            try:
                out = subprocess.run(
                    args, input=batch, capture_output=True, text=True, timeout=self.timeout * 6
                )
            except subprocess.TimeoutExpired:
                raise StoreUnreachable(f"sftp did not finish within {self.timeout * 6} s") from None
        if out.returncode != 0:
            raise StoreUnreachable(f"sftp could not move {source} aside: {said(out)}")
        return aside


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
        except OSError as error:
            raise StoreUnreachable(f"S3 {method} {path}: {error}") from None

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


def html_unescape(text: str) -> str:
    return (
        text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", '"')
        .replace("&apos;", "'")
        .replace("&amp;", "&")
    )
