"""The sftp_storage_read_files module: each file's content, a missing one as null."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

MODULE = Path(__file__).resolve().parents[1] / "library" / "sftp_storage_read_files.py"


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


read_files = _load(MODULE)


def run_module(args: dict, check_mode: bool = False) -> dict:
    """The module run as Ansible runs it (its arguments in a JSON file): its result."""
    args = dict(args, _ansible_check_mode=check_mode)
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, f)
        f.flush()
        done = subprocess.run(
            [sys.executable, str(MODULE), f.name], capture_output=True, text=True, check=False
        )
    return json.loads(done.stdout)


@pytest.mark.parametrize("check_mode", [False, True])
def test_reads_each_file_a_missing_one_as_null(tmp_path: Path, check_mode: bool) -> None:
    key = tmp_path / "ssh_host_ecdsa_key.pub"
    key.write_text("ecdsa-sha2-nistp256 AAAA host\n")
    paths = [str(key), str(tmp_path / "keys" / "app1")]
    result = run_module({"paths": paths}, check_mode=check_mode)
    assert result["changed"] is False
    assert result["files"] == {paths[0]: "ecdsa-sha2-nistp256 AAAA host\n", paths[1]: None}


def test_no_paths_no_files() -> None:
    assert read_files.read_files([]) == {}


def test_a_directory_fails(tmp_path: Path) -> None:
    result = run_module({"paths": [str(tmp_path)]})
    assert result["failed"] is True
    assert result["msg"].startswith(f"reading {tmp_path}:")
