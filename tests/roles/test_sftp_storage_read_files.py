"""The sftp_storage_read_files module: each file's content, a missing one as null."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest

import ansible_plugin
from ansible_plugin import PLUGINS, load

MODULE = PLUGINS / "modules" / "sftp_storage_read_files.py"


read_files = load(MODULE)


run_module = partial(ansible_plugin.run_module, MODULE)


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
