"""The counter_deps_download module: pip's command line, and the cache filled
only by a complete download (pip itself is stood in for: no network)."""

from __future__ import annotations

import os
import subprocess
from functools import partial
from pathlib import Path

import ansible_plugin
from ansible_plugin import PLUGINS, load

LIBRARY = PLUGINS / "modules"


deps = load(LIBRARY / "counter_deps_download.py")


run_module = partial(ansible_plugin.run_module, LIBRARY / "counter_deps_download.py")


PLATFORMS = ["manylinux_2_28_x86_64", "manylinux2014_x86_64"]


def test_pip_download_argv() -> None:
    argv = deps.pip_download_argv("/c/d.part-1", "/src/requirements.txt", "3.11", PLATFORMS, "py")
    assert argv == [
        *("py", "-m", "pip", "download", "--dest", "/c/d.part-1", "--quiet", "--require-hashes"),
        *("--only-binary=:all:", "--implementation", "cp", "--python-version", "3.11"),
        *("--platform", "manylinux_2_28_x86_64", "--platform", "manylinux2014_x86_64"),
        *("--requirement", "/src/requirements.txt"),
    ]


def fake_pip(returncode: int, calls: list):
    def run(argv, **_):
        calls.append(argv)
        part = argv[argv.index("--dest") + 1]
        os.makedirs(part)
        Path(part, "bottle-0.13.4-py3-none-any.whl").write_text("wheel")
        return subprocess.CompletedProcess(
            argv, returncode, "", "pip said no" if returncode else ""
        )

    return run


def test_a_complete_download_becomes_the_cache(tmp_path: Path) -> None:
    dest = tmp_path / "py3.11-x86_64"
    calls: list = []
    done = deps.download(str(dest), "req.txt", "3.11", PLATFORMS, run=fake_pip(0, calls))
    assert done.returncode == 0
    assert [p.name for p in dest.iterdir()] == ["bottle-0.13.4-py3-none-any.whl"]
    assert [p.name for p in tmp_path.iterdir()] == ["py3.11-x86_64"]
    assert calls[0][calls[0].index("--dest") + 1] == f"{dest}.part-{os.getpid()}"


def test_a_failed_download_leaves_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "py3.11-x86_64"
    done = deps.download(str(dest), "req.txt", "3.11", PLATFORMS, run=fake_pip(1, []))
    assert done.returncode == 1
    assert list(tmp_path.iterdir()) == []


def test_a_download_made_meanwhile_is_kept(tmp_path: Path) -> None:
    dest = tmp_path / "py3.11-x86_64"
    dest.mkdir()
    (dest / "other.whl").write_text("kept")
    deps.download(str(dest), "req.txt", "3.11", PLATFORMS, run=fake_pip(0, []))
    assert [p.name for p in dest.iterdir()] == ["other.whl"]
    assert [p.name for p in tmp_path.iterdir()] == ["py3.11-x86_64"]


def module_args(dest: Path) -> dict:
    return {
        "dest": str(dest),
        "requirements": str(dest.parent / "requirements.txt"),
        "python_version": "3.11",
        "platforms": PLATFORMS,
    }


def test_a_cached_directory_is_kept(tmp_path: Path) -> None:
    dest = tmp_path / "deps-key" / "py3.11-x86_64"
    dest.mkdir(parents=True)
    (dest / "bottle-0.13.4-py3-none-any.whl").write_text("cached")
    result = run_module(module_args(dest))
    assert (result["changed"], result["downloaded"]) == (False, False)
    assert result["files"] == ["bottle-0.13.4-py3-none-any.whl"]


def test_check_mode_reports_the_download_and_downloads_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "deps-key" / "py3.11-x86_64"
    result = run_module(module_args(dest), check_mode=True)
    assert (result["changed"], result["downloaded"], result["files"]) == (True, True, [])
    assert not dest.parent.exists()


def test_pip_failing_fails_the_module_and_leaves_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "deps-key" / "py3.11-x86_64"
    # A lock pip refuses without the network: a pin without a hash.
    dest.parent.mkdir()
    (dest.parent / "requirements.txt").write_text("bottle==0.13.4\n")
    result = run_module(module_args(dest))
    assert result.get("failed") is True, result
    assert "pip download failed" in result["msg"]
    assert [p.name for p in dest.parent.iterdir()] == ["requirements.txt"]
