"""Load a role's module or plugin for its unit tests, and run a module as
Ansible runs it (its arguments in a JSON file, its result on stdout)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
ROLES = ROOT / "roles"
# The roles' modules and plugins (the collection's plugins/ tree).
PLUGINS = ROOT / "plugins"


def load(path: Path) -> ModuleType:
    """A module or plugin file of a role, imported under its file's name."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_module(path: Path, args: dict, check_mode: bool = False) -> dict:
    """The module run as Ansible runs it: its result."""
    args = dict(args, _ansible_check_mode=check_mode)
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, f)
        f.flush()
        done = subprocess.run(
            [sys.executable, str(path), f.name], capture_output=True, text=True, check=False
        )
    return json.loads(done.stdout)
