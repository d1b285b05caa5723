"""The deployment under test, as Ansible sees it: the roles' defaults and the
inventory (settings.yml), read once by running that playbook against
Molecule's inventory. Paths, ports and accounts come from here, never
restated in a test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

PROJECT = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]


def ansible_env() -> dict[str, str]:
    return dict(
        os.environ,
        ANSIBLE_ROLES_PATH=str(PROJECT / "roles"),
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_NOCOLOR="1",
    )


def ansible_playbook() -> str:
    return str(Path(sys.executable).with_name("ansible-playbook"))


def _read_settings() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch) / "settings.json"
        result = subprocess.run(
            [
                ansible_playbook(),
                "-i",
                INVENTORY,
                str(Path(__file__).with_name("settings.yml")),
                "-e",
                json.dumps({"settings_file": str(target)}),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env=ansible_env(),
            check=False,
        )
        if result.returncode != 0:
            said = result.stdout[-3000:] + result.stderr[-2000:]
            raise RuntimeError(f"settings.yml failed:\n{said}")
        return json.loads(target.read_text())


SETTINGS = _read_settings()
DB = SETTINGS["counter_db_path"]
DATA = str(Path(DB).parent)
CONFIG = SETTINGS["litestream_config_path"]
LITESTREAM = SETTINGS["litestream_binary_path"]
VENV_PY = SETTINGS["counter_venv_python"]
PORT = int(SETTINGS["counter_port"])
METRICS_PORT = int(SETTINGS["counter_metrics_port"])
LITESTREAM_METRICS_PORT = int(SETTINGS["litestream_metrics_port"])
GUARD_METRICS_PORT = int(SETTINGS["litestream_guard_metrics_port"])
IDLE_TIMEOUT = int(SETTINGS["counter_idle_timeout"])
USER = SETTINGS["counter_user"]
GROUP = SETTINGS["counter_group"]
LITESTREAM_USER = SETTINGS["litestream_user"]
LITESTREAM_GROUP = SETTINGS["litestream_group"]
ENV_FILE = SETTINGS["litestream_env_file"]
STORE = SETTINGS["store"]
APP_UNIT = SETTINGS["counter_unit"]
APP_SOCKET = SETTINGS["counter_socket"]
LITESTREAM_UNIT = SETTINGS["litestream_published"]["unit"]
GUARD = SETTINGS["litestream_published"]["guard"]
