"""The counter_venv_lock module against real virtualenvs (python -m venv, nothing
downloaded: distributions are faked as *.dist-info directories)."""

from __future__ import annotations

import glob
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest

import ansible_plugin
from ansible_plugin import PLUGINS, load

MODULE = PLUGINS / "modules" / "counter_venv_lock.py"


venv_lock = load(MODULE)

LOCK = """\
#    make lock
bottle==0.13.4 \\
    --hash=sha256:aaaa
    # via counter-app (pyproject.toml)
waitress==3.0.2 \\
    --hash=sha256:bbbb
Prometheus_Client==0.21.1 \\
    --hash=sha256:cccc
"""
PINS = {"bottle": "0.13.4", "waitress": "3.0.2", "prometheus-client": "0.21.1"}


run_module = partial(ansible_plugin.run_module, MODULE)


def make_venv(path: Path, with_pip: bool = False) -> Path:
    argv = [sys.executable, "-m", "venv", str(path)]
    subprocess.run(argv if with_pip else [*argv, "--without-pip"], check=True)
    return path


def site_packages(venv: Path) -> Path:
    (found,) = glob.glob(str(venv / "lib" / "python*" / "site-packages"))
    return Path(found)


def fake_dist(venv: Path, name: str, version: str) -> None:
    """A distribution pip can list and uninstall: METADATA, RECORD and one module."""
    site = site_packages(venv)
    module = name.lower().replace("-", "_")
    info = site / f"{module}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "INSTALLER").write_text("pip\n")
    (site / f"{module}.py").write_text("")
    record = [
        f"{module}.py,,",
        *(f"{info.name}/{f},," for f in ("METADATA", "INSTALLER", "RECORD")),
    ]
    (info / "RECORD").write_text("\n".join(record) + "\n")


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    """A virtualenv without pip holding exactly the lock's pins, and the app."""
    path = make_venv(tmp_path / "venv")
    for name, version in [*PINS.items(), ("counter-app", "1.0")]:
        fake_dist(path, name, version)
    return path


@pytest.fixture(scope="module")
def venv_with_pip(tmp_path_factory) -> Path:
    return make_venv(tmp_path_factory.mktemp("pip") / "venv", with_pip=True)


def test_lock_pins_and_names_are_normalised() -> None:
    assert venv_lock.lock_pins(LOCK) == PINS
    assert venv_lock.lock_names(LOCK) == set(PINS)
    assert venv_lock.norm("Zope.Interface_x") == "zope-interface-x"


def test_a_lock_without_pins_never_matches(venv: Path) -> None:
    have = venv_lock.installed(str(venv))
    assert venv_lock.plan(have, "# nothing pinned\n", venv_lock.DEFAULT_KEEP) == (
        sorted(PINS),
        False,
    )


def test_no_virtualenv_yet_differs_and_changes_nothing(tmp_path: Path) -> None:
    result = run_module({"venv": str(tmp_path / "none"), "lock": LOCK})
    assert result["changed"] is False
    assert result["match"] is False
    assert result["exists"] is False
    assert result["installed"] == {}
    assert result["removed"] == []


def test_the_lock_exactly_matches(venv: Path) -> None:
    result = run_module({"venv": str(venv), "lock": LOCK})
    assert result["changed"] is False
    assert result["match"] is True
    assert result["installed"] == {**PINS, "counter-app": "1.0"}


def test_another_version_differs(venv: Path) -> None:
    result = run_module({"venv": str(venv), "lock": LOCK.replace("3.0.2", "3.0.3")})
    assert (result["changed"], result["match"], result["removed"]) == (False, False, [])


def test_a_missing_pin_differs(venv: Path) -> None:
    lock = LOCK + "zipp==3.20.0 \\\n    --hash=sha256:dddd\n"
    result = run_module({"venv": str(venv), "lock": lock})
    assert (result["changed"], result["match"]) == (False, False)


def test_the_tools_are_kept_and_left_out(venv: Path) -> None:
    for name in ("pip", "setuptools", "wheel"):
        fake_dist(venv, name, "1.0")
    result = run_module({"venv": str(venv), "lock": LOCK})
    assert (result["changed"], result["match"], result["removed"]) == (False, True, [])


def test_a_broken_virtualenv_differs(venv: Path) -> None:
    python = venv / "bin" / "python"
    python.unlink()
    python.write_text("#!/bin/sh\nexit 1\n")
    python.chmod(0o755)
    result = run_module({"venv": str(venv), "lock": LOCK})
    assert (result["changed"], result["match"], result["exists"]) == (False, False, False)


def test_check_mode_reports_the_removal_and_removes_nothing(venv: Path) -> None:
    fake_dist(venv, "Left_Over", "2.0")
    result = run_module({"venv": str(venv), "lock": LOCK}, check_mode=True)
    assert result["changed"] is True
    assert result["removed"] == ["left-over"]
    assert result["match"] is True  # once it is removed
    assert "left-over" in venv_lock.installed(str(venv))


def test_removes_what_the_lock_does_not_list(venv_with_pip: Path) -> None:
    for name, version in [*PINS.items(), ("counter-app", "1.0"), ("Left_Over", "2.0")]:
        fake_dist(venv_with_pip, name, version)
    lock = LOCK.replace("waitress==3.0.2", "waitress==3.0.3")
    result = run_module({"venv": str(venv_with_pip), "lock": lock})
    assert result["changed"] is True
    assert result["removed"] == ["left-over"]
    assert result["match"] is False  # waitress still differs: pip has work to do
    left = venv_lock.installed(str(venv_with_pip))
    assert "left-over" not in left
    assert {"counter-app", "pip", *PINS} <= set(left)
    again = run_module({"venv": str(venv_with_pip), "lock": lock})
    assert (again["changed"], again["removed"]) == (False, [])
