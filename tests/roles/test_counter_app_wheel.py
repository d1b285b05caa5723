"""The counter_app_wheel module: builds a real (tiny) wheel offline with the
controller's setuptools, once per cache directory, atomically."""

from __future__ import annotations

import hashlib
import zipfile
from functools import partial
from pathlib import Path

import pytest

import ansible_plugin
from ansible_plugin import PLUGINS, load

LIBRARY = PLUGINS / "modules"
LOOKUPS = PLUGINS / "lookup"


wheel_module = load(LIBRARY / "counter_app_wheel.py")
app_source = load(LOOKUPS / "counter_app_source.py")


run_module = partial(ansible_plugin.run_module, LIBRARY / "counter_app_wheel.py")


PYPROJECT = """\
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "counter-app"
version = "0.1"

[tool.setuptools]
packages = ["counter_app"]
"""


@pytest.fixture
def source(tmp_path: Path) -> Path:
    root = tmp_path / "app"
    (root / "counter_app").mkdir(parents=True)
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / "counter_app" / "__init__.py").write_text("VERSION = '0.1'\n")
    # What an in-place build would have left: never in the wheel.
    (root / "build" / "lib" / "counter_app").mkdir(parents=True)
    (root / "build" / "lib" / "counter_app" / "removed.py").write_text("")
    return root


def args_for(source: Path, dest: Path) -> dict:
    return {"source": str(source), "files": app_source.app_files(str(source)), "dest": str(dest)}


def test_builds_the_wheel_of_exactly_the_files(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "cache" / "app-key"
    result = run_module(args_for(source, dest))
    assert result["changed"] is True, result
    assert result["built"] is True
    wheel = Path(result["wheel"])
    assert wheel.parent == dest
    assert wheel.name.startswith("counter_app-0.1-")
    assert sorted(p.name for p in dest.iterdir()) == [wheel.name]  # no source/ left
    names = zipfile.ZipFile(wheel).namelist()
    assert "counter_app/__init__.py" in names
    assert "counter_app/removed.py" not in names
    assert [p.name for p in dest.parent.iterdir()] == ["app-key"]  # no .part- left


def test_a_cached_wheel_is_kept(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "app-key"
    dest.mkdir()
    (dest / "counter_app-0.1-py3-none-any.whl").write_text("cached")
    result = run_module(args_for(source, dest))
    assert (result["changed"], result["built"]) == (False, False)
    assert (dest / "counter_app-0.1-py3-none-any.whl").read_text() == "cached"


def test_two_wheels_in_one_key_are_refused(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "app-key"
    dest.mkdir()
    for version in ("0.1", "0.2"):
        (dest / f"counter_app-{version}-py3-none-any.whl").write_text("cached")
    result = run_module(args_for(source, dest))
    assert result.get("failed") is True
    assert "Expected one counter_app wheel" in result["msg"], result
    assert "remove that directory" in result["msg"]


def test_check_mode_reports_the_build_and_builds_nothing(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "cache" / "app-key"
    result = run_module(args_for(source, dest), check_mode=True)
    assert (result["changed"], result["built"], result["wheel"]) == (True, True, "")
    assert not dest.parent.exists()


def test_same_source_same_bytes(source: Path, tmp_path: Path) -> None:
    digests = set()
    for n in range(2):
        dest = tmp_path / f"app-{n}"
        wheel_module.build_wheel(str(source), app_source.app_files(str(source)), str(dest))
        digests.add(
            hashlib.sha256(Path(wheel_module.cached_wheel(str(dest))).read_bytes()).digest()
        )
    assert len(digests) == 1


def test_a_failed_build_leaves_nothing(source: Path, tmp_path: Path) -> None:
    (source / "pyproject.toml").write_text("not toml [")
    dest = tmp_path / "cache" / "app-key"
    result = run_module(args_for(source, dest))
    assert result.get("failed") is True
    assert "pip wheel failed" in result["msg"]
    assert list(dest.parent.iterdir()) == []


def test_a_wheel_built_meanwhile_is_kept(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "app-key"
    dest.mkdir()
    (dest / "other").write_text("built by another play")
    wheel_module.build_wheel(str(source), app_source.app_files(str(source)), str(dest))
    assert [p.name for p in dest.iterdir()] == ["other"]
    assert [p.name for p in tmp_path.iterdir() if ".part-" in p.name] == []
