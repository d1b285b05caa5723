"""A new version of the app deploys with no step by hand, and keeps the count;
a changed lock (here a downgrade) reaches the host exactly."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import programs
from deployment import PROJECT, SETTINGS
from faults import Load
from hosts import run_site, visit

# Where the deploy is drilled once per Debian release (scenario default).
pytestmark = pytest.mark.install

# The lock of the new version moves one pin down (pip-compile -P), an older
# release inside the app's range: a downgrade must reach the host as surely as
# an upgrade.
DOWNGRADE = ("bottle", "0.13.3")
# pip-compile of the toolchain (requirements-dev.txt), as `make lock` runs it.
PIP_COMPILE = Path(sys.executable).with_name("pip-compile")


def _installed(app) -> dict[str, str]:
    """Every distribution in the app's virtualenv: normalized name -> version."""
    return json.loads(
        app.check_output(
            "%s -c %s", SETTINGS["counter_venv_python"], programs.text("distributions.py")
        )
    )


def _pins(lock: str) -> dict[str, str]:
    return {
        re.sub(r"[-_.]+", "-", name).lower(): version
        for name, version in re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", lock, re.M)
    }


def test_a_new_app_version_and_lock_deploy_and_keep_the_count(app, tmp_path, figures):
    source = tmp_path / "app"
    shutil.copytree(
        PROJECT / "app",
        source,
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache"),
    )
    pyproject = source / "pyproject.toml"
    current = re.search(r'^version = "([^"]+)"$', pyproject.read_text(), re.M).group(1)
    installed = _installed(app)
    assert installed["counter-app"] == current
    project_pins = _pins((source / "requirements.txt").read_text())
    assert {name: installed.get(name) for name in project_pins} == project_pins

    newer = f"{current}.post1"
    pyproject.write_text(
        pyproject.read_text().replace(f'version = "{current}"', f'version = "{newer}"')
    )
    # The new lock, made as `make lock` makes it, with one pin moved.
    name, version = DOWNGRADE
    assert project_pins[name] != version
    subprocess.run(
        [str(PIP_COMPILE), "--quiet", "-P", f"{name}=={version}", "pyproject.toml"],
        cwd=source,
        check=True,
        timeout=300,
    )
    locked = _pins((source / "requirements.txt").read_text())
    assert locked == {**project_pins, name: version}
    assert f"{name}=={version} \\\n    --hash=sha256:" in (source / "requirements.txt").read_text()

    before = visit(app)
    # The next deploy of the project's own source puts its version and its
    # lock back the same way (the wheel and the lock changed: reinstalled).
    # Under load: the app's restart refuses no connection (systemd's socket
    # holds the listener, the old process drains).
    with Load(app, rate=100, threads=4, seconds=600) as load:
        result = run_site({"counter_app_source": str(source)})
        seen = load.stop()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    figures["deploy of a new app version under ~100 req/s: failed requests"] = (
        f"{seen['failed']} of {seen['ok'] + seen['failed']}"
    )
    assert seen["failed"] == 0, seen
    installed = _installed(app)
    assert installed["counter-app"] == newer
    # Exactly the lock: each pin at its version, and nothing else but the app
    # and the virtualenv's own tools.
    assert {name: installed.get(name) for name in locked} == locked
    assert set(installed) - set(locked) <= {"counter-app", "pip", "setuptools", "wheel"}
    assert visit(app) >= before + seen["ok"] + 1
