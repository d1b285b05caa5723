"""build.py: one file for the hosts, the same bytes for the same sources."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

BUILD = Path(__file__).resolve().parents[1] / "build.py"


def _builder():
    spec = importlib.util.spec_from_file_location("guard_build", BUILD)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


builder = _builder()


def build(output: Path) -> dict:
    out = subprocess.run(
        [sys.executable, str(BUILD), str(output)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def test_the_same_sources_give_the_same_bytes(tmp_path):
    first = build(tmp_path / "a" / "litestream-guard")
    again = build(tmp_path / "a" / "litestream-guard")
    other = build(tmp_path / "b" / "litestream-guard")
    assert first["changed"] is True and again["changed"] is False
    assert first["sha256"] == again["sha256"] == other["sha256"]
    assert (tmp_path / "a" / "litestream-guard").read_bytes() == (
        tmp_path / "b" / "litestream-guard"
    ).read_bytes()
    assert os.access(tmp_path / "a" / "litestream-guard", os.X_OK)


def test_a_changed_source_changes_the_file(tmp_path):
    copy = tmp_path / "litestream_guard"
    shutil.copytree(builder.SOURCE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = builder.build(copy)
    assert builder.build(copy) == before
    (copy / "output.py").write_text((copy / "output.py").read_text() + "\n# changed\n")
    assert builder.build(copy) != before


def test_the_built_file_runs_with_the_system_python(tmp_path):
    output = tmp_path / "litestream-guard"
    build(output)
    assert output.read_bytes().startswith(b"#!/usr/bin/python3\n")
    # As the units run it (its shebang), else with this interpreter.
    argv = [str(output)] if Path("/usr/bin/python3").exists() else [sys.executable, str(output)]
    out = subprocess.run([*argv, "--help"], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert "restore-from-replica" in out.stdout and "adopt-local" in out.stdout
    out = subprocess.run([*argv, "nonsense"], capture_output=True, text=True, check=False)
    assert out.returncode == 2 and "Traceback" not in out.stderr


def test_the_file_carries_the_control_socket_client_it_shares_with_the_app(tmp_path):
    (shared,) = builder.SHARED
    assert shared.name == "litestream_control" and (shared / "__init__.py").is_file()
    output = tmp_path / "litestream-guard"
    build(output)
    names = zipfile.ZipFile(output).namelist()
    assert "litestream_control/__init__.py" in names
    copy = tmp_path / "litestream_control"
    shutil.copytree(shared, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = builder.build(shared=(copy,))
    (copy / "__init__.py").write_text((copy / "__init__.py").read_text() + "\n# changed\n")
    assert builder.build(shared=(copy,)) != before
