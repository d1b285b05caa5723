#!/usr/bin/python
"""Module counter_venv_lock: compare the app's virtualenv with its lock, remove the rest."""

from __future__ import annotations

import json
import os
import re
import subprocess

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: counter_venv_lock
short_description: Compare a virtualenv with a pip lock and remove the packages it does not list
description:
  - >-
    Runs with the host's Python and asks the virtualenv's own Python (O(venv)
    C(/bin/python)) which distributions it holds, so it works when the
    virtualenv does not exist yet, or its Python fails (nothing found,
    nothing removed, no match).
  - >-
    Removes, with the virtualenv's pip, every distribution that neither the
    lock nor O(keep) names, then reports whether what is left holds exactly
    the lock's pins (names and versions; O(keep) aside). A virtualenv that
    does is one pip would install nothing into.
  - >-
    Names are compared normalised (PEP 503: runs of C(-_.) as C(-), lower case).
options:
  venv:
    description: The virtualenv's directory.
    type: path
    required: true
  lock:
    description: The lock's content (pip-compile's requirements.txt), read on
      the controller; its C(name==version) lines are the pins.
    type: str
    required: true
  keep:
    description: Distributions kept although the lock does not list them, and
      left out of the comparison.
    type: list
    elements: str
    default: [counter-app, pip, setuptools, wheel]
notes:
  - >-
    Supports check mode (reports what it would remove, and the match after it).
"""

EXAMPLES = r"""
- name: Compare the app's virtualenv with the lock, remove what it does not list
  counter_venv_lock:
    venv: /opt/counter/venv
    lock: "{{ lookup('ansible.builtin.file', __counter_requirements, rstrip=false) }}"
  register: __counter_venv_compared
"""

RETURN = r"""
match:
  description: Whether the virtualenv holds exactly the lock's pins, after the removal.
  type: bool
  returned: always
exists:
  description: Whether the virtualenv's Python was there and listed its distributions.
  type: bool
  returned: always
installed:
  description: The distributions found (normalised name to version), before the removal.
  type: dict
  returned: always
removed:
  description: The distributions removed (or, in check mode, to remove).
  type: list
  elements: str
  returned: always
"""

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*\\?$", re.M)
_PINNED_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", re.M)
# Run by the virtualenv's Python: its distributions as JSON [[name, version], ...].
_LIST_DISTRIBUTIONS = (
    "import importlib.metadata as m, json; "
    "print(json.dumps([[d.metadata['Name'], d.version] for d in m.distributions()]))"
)
DEFAULT_KEEP = ["counter-app", "pip", "setuptools", "wheel"]


def norm(name: str) -> str:
    """A distribution's name normalised as PEP 503 does."""
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_pins(lock: str) -> dict[str, str]:
    """The lock's pins, normalised name to version."""
    return {norm(n): v for n, v in _PIN.findall(lock)}


def lock_names(lock: str) -> set[str]:
    """Every name the lock pins (a pin with any version form)."""
    return {norm(n) for n in _PINNED_NAME.findall(lock)}


def venv_python(venv: str) -> str:
    return os.path.join(venv, "bin", "python")


def installed(venv: str) -> dict[str, str] | None:
    """The virtualenv's distributions (normalised name to version); None without a working one."""
    python = venv_python(venv)
    if not os.access(python, os.X_OK):
        return None
    done = subprocess.run(
        [python, "-c", _LIST_DISTRIBUTIONS], capture_output=True, text=True, check=False
    )
    if done.returncode:
        return None  # a virtualenv that cannot list itself: pip will have to repair it
    return {norm(n): v for n, v in json.loads(done.stdout) if n}


def plan(have: dict[str, str] | None, lock: str, keep: list[str]) -> tuple[list[str], bool]:
    """What to remove, and whether what is left matches the lock's pins."""
    if have is None:
        return [], False
    kept = {norm(k) for k in keep}
    extra = sorted(set(have) - lock_names(lock) - kept)
    left = {n: v for n, v in have.items() if n not in kept and n not in extra}
    pins = lock_pins(lock)
    return extra, bool(pins) and left == pins


def uninstall(venv: str, names: list[str]) -> None:
    """Remove names from the virtualenv with its own pip."""
    subprocess.run(
        [venv_python(venv), "-m", "pip", "uninstall", "--yes", "--quiet", *names],
        capture_output=True,
        text=True,
        check=True,
    )


def converge(venv: str, lock: str, keep: list[str], check_mode: bool = False) -> dict:
    """Compare, remove the extra distributions unless in check mode; the module's result."""
    have = installed(venv)
    extra, match = plan(have, lock, keep)
    if extra and not check_mode:
        uninstall(venv, extra)
    return {
        "changed": bool(extra),
        "match": match,
        "exists": have is not None,
        "installed": have or {},
        "removed": extra,
    }


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "venv": {"type": "path", "required": True},
            "lock": {"type": "str", "required": True},
            "keep": {"type": "list", "elements": "str", "default": DEFAULT_KEEP},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        result = converge(p["venv"], p["lock"], p["keep"], module.check_mode)
    except subprocess.CalledProcessError as e:
        module.fail_json(
            msg=f"{' '.join(e.cmd[:4])}... failed (exit {e.returncode}) in {p['venv']}",
            stdout=e.stdout,
            stderr=e.stderr,
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
