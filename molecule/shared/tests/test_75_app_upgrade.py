"""A new version of the app deploys with no step by hand, and keeps the count."""

from __future__ import annotations

import re
import shutil

import pytest

from conftest import PROJECT, SETTINGS, run_site, visit

# Where the deploy is drilled once per Debian release (scenario default).
pytestmark = pytest.mark.install


def _installed_version(app) -> str:
    python = SETTINGS["counter_venv_python"]
    return app.check_output(
        "%s -c %s", python, "import importlib.metadata as m; print(m.version('counter-app'))"
    )


def test_a_new_app_version_deploys_and_keeps_the_count(app, tmp_path):
    source = tmp_path / "app"
    shutil.copytree(
        PROJECT / "app",
        source,
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache"),
    )
    pyproject = source / "pyproject.toml"
    current = re.search(r'^version = "([^"]+)"$', pyproject.read_text(), re.M).group(1)
    assert _installed_version(app) == current
    newer = f"{current}.post1"
    pyproject.write_text(
        pyproject.read_text().replace(f'version = "{current}"', f'version = "{newer}"')
    )
    before = visit(app)
    # The next deploy of the project's own source puts its version back the
    # same way (the wheel changed: reinstalled).
    result = run_site({"counter_app_source": str(source)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert _installed_version(app) == newer
    assert visit(app) == before + 1
