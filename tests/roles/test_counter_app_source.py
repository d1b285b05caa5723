"""The counter_app_source lookup: which files go into the app's wheel, and their key."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible.errors import AnsibleLookupError
from ansible.plugins.loader import lookup_loader

from ansible_plugin import PLUGINS, load

PLUGIN = PLUGINS / "lookup" / "counter_app_source.py"


source = load(PLUGIN)


def _write(root: Path, name: str, text: str = "x") -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def app(tmp_path: Path) -> Path:
    for name in (
        "pyproject.toml",
        "requirements.txt",
        "counter_app/__init__.py",
        "counter_app/web.py",
    ):
        _write(tmp_path, name, name)
    return tmp_path


def test_files_are_the_sources_sorted(app: Path) -> None:
    assert source.app_files(str(app)) == [
        "counter_app/__init__.py",
        "counter_app/web.py",
        "pyproject.toml",
        "requirements.txt",
    ]


@pytest.mark.parametrize(
    "name",
    [
        "tests/test_web.py",
        "build/lib/counter_app/old.py",
        "dist/counter_app-1.0-py3-none-any.whl",
        "counter_app/__pycache__/web.cpython-311.pyc",
        "counter_app/web.pyc",
        "counter_app/web.pyo",
        "counter_app.egg-info/PKG-INFO",
        ".git/HEAD",
        ".coverage",
        "counter_app/.hidden",
    ],
)
def test_files_leave_out_tests_builds_caches_and_hidden_files(app: Path, name: str) -> None:
    before = source.app_files(str(app))
    key = source.app_key(str(app))
    _write(app, name)
    assert source.app_files(str(app)) == before
    assert source.app_key(str(app)) == key


def test_tests_build_dist_are_left_out_only_at_the_top(app: Path) -> None:
    _write(app, "counter_app/tests/helper.py")
    assert "counter_app/tests/helper.py" in source.app_files(str(app))


def test_key_is_16_hex_digits_and_stable(app: Path) -> None:
    key = source.app_key(str(app))
    assert len(key) == 16
    int(key, 16)
    assert source.app_key(str(app)) == key


@pytest.mark.parametrize(
    "change",
    [
        lambda root: _write(root, "counter_app/web.py", "changed"),
        lambda root: _write(root, "counter_app/new.py"),
        lambda root: (root / "counter_app/web.py").unlink(),
        lambda root: (root / "counter_app/web.py").rename(root / "counter_app/www.py"),
    ],
    ids=["content", "added", "removed", "renamed"],
)
def test_key_changes_with_the_source(app: Path, change) -> None:
    key = source.app_key(str(app))
    change(app)
    assert source.app_key(str(app)) != key


def test_key_is_the_documented_hash(app: Path) -> None:
    """Caches made before the plugin (<cache>/app-<key>/) stay valid: same formula."""
    import hashlib

    digest = hashlib.sha256()
    for name in source.app_files(str(app)):
        content = (app / name).read_bytes()
        digest.update(name.encode() + b"\0" + hashlib.sha256(content).digest())
    assert source.app_key(str(app)) == digest.hexdigest()[:16]


def _lookup():
    """The plugin as Ansible loads it from the role (its options from DOCUMENTATION)."""
    lookup_loader.add_directory(str(PLUGIN.parent))
    return lookup_loader.get("counter_app_source")


def test_lookup_returns_the_key_or_the_files(app: Path) -> None:
    lookup = _lookup()
    assert lookup.run([str(app)], variables={}) == [source.app_key(str(app))]
    assert lookup.run([str(app)], variables={}, want="files") == source.app_files(str(app))


def test_lookup_refuses_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(AnsibleLookupError, match="is not a directory"):
        _lookup().run([str(tmp_path / "nowhere")], variables={})
