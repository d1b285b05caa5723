#!/usr/bin/python
"""Module counter_app_wheel: build the app's wheel into its cache directory, once."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import sys
import tempfile

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: counter_app_wheel
short_description: Build the app's wheel into a cache directory named by its content key
description:
  - >-
    Run on the controller (C(delegate_to=localhost), the interpreter being
    C(ansible_playbook_python), which must have pip and setuptools).
  - >-
    Nothing is done when O(dest) already holds a C(counter_app-*.whl): the
    directory is named by the source's content key, so a cached wheel is the
    wheel of that source.
  - >-
    Otherwise the wheel is built from a clean copy of exactly O(files) (never in
    place: setuptools reuses the source's C(build/) directory, where a module
    since removed from the source would still go into the wheel), with
    C(pip wheel --no-deps --no-build-isolation) and C(SOURCE_DATE_EPOCH) set
    (same source, same bytes). It is built in a directory beside O(dest) and
    renamed to O(dest) whole: two plays building at once, or a failed build,
    never leave a partial directory that a later run would take. When another
    play renamed its own first, that one is kept.
options:
  source:
    description: The app's source directory.
    type: path
    required: true
  files:
    description: The paths, relative to O(source), that go into the wheel
      (the C(counter_app_source) lookup with C(want=files)).
    type: list
    elements: str
    required: true
  dest:
    description: The cache directory of this source's key; its parent is created.
    type: path
    required: true
  source_date_epoch:
    description: C(SOURCE_DATE_EPOCH) for the build (the files' dates in the wheel).
    type: int
    default: 315532800
notes:
  - >-
    Supports check mode (reports whether it would build, builds nothing).
"""

EXAMPLES = r"""
- name: Build the app's wheel unless its key's is cached (controller)
  counter_app_wheel:
    source: "{{ counter_app_source }}"
    files: "{{ query('counter_app_source', counter_app_source, want='files') }}"
    dest: "{{ cache_dir }}/app-{{ lookup('counter_app_source', counter_app_source) }}"
  delegate_to: localhost
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
"""

RETURN = r"""
wheel:
  description: The wheel's path in O(dest) (empty in check mode when it would be built).
  type: str
  returned: always
built:
  description: Whether the wheel was (or, in check mode, would be) built.
  type: bool
  returned: always
"""

WHEEL_GLOB = "counter_app-*.whl"


def cached_wheel(dest: str) -> str:
    """The cached wheel of dest, or '' when there is none."""
    found = sorted(glob.glob(os.path.join(dest, WHEEL_GLOB)))
    return found[0] if found else ""


def build_wheel(
    source: str,
    files: list[str],
    dest: str,
    source_date_epoch: int = 315532800,
    python: str = sys.executable,
) -> None:
    """Copy files from source, build their wheel beside dest and rename it to dest."""
    parent = os.path.dirname(dest)
    os.makedirs(parent, exist_ok=True)
    part = tempfile.mkdtemp(prefix=os.path.basename(dest) + ".part-", dir=parent)
    try:
        for name in files:
            target = os.path.join(part, "source", name)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copy(os.path.join(source, name), target)
        env = dict(os.environ, SOURCE_DATE_EPOCH=str(source_date_epoch))
        subprocess.run(
            [
                *(python, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"),
                *("--wheel-dir", part, os.path.join(part, "source")),
            ],
            check=True,
            env=env,
            capture_output=True,
            text=True,
        )
        shutil.rmtree(os.path.join(part, "source"))
        # Built meanwhile by another play: keep that one.
        with contextlib.suppress(OSError):
            os.rename(part, dest)
    finally:
        shutil.rmtree(part, ignore_errors=True)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "source": {"type": "path", "required": True},
            "files": {"type": "list", "elements": "str", "required": True},
            "dest": {"type": "path", "required": True},
            "source_date_epoch": {"type": "int", "default": 315532800},
        },
        supports_check_mode=True,
    )
    p = module.params
    found = sorted(glob.glob(os.path.join(p["dest"], WHEEL_GLOB)))
    if len(found) > 1:
        module.fail_json(
            msg=f"Expected one counter_app wheel in {p['dest']}, found {found} "
            "(one directory per source key): remove that directory to rebuild it."
        )
    wheel = cached_wheel(p["dest"])
    if wheel:
        module.exit_json(changed=False, built=False, wheel=wheel)
    if not p["files"]:
        module.fail_json(msg=f"no files to build a wheel from in {p['source']}")
    if module.check_mode:
        module.exit_json(changed=True, built=True, wheel="")
    try:
        build_wheel(p["source"], p["files"], p["dest"], p["source_date_epoch"])
    except subprocess.CalledProcessError as e:
        module.fail_json(
            msg=f"pip wheel failed (exit {e.returncode}) for {p['source']}",
            stdout=e.stdout,
            stderr=e.stderr,
        )
    except OSError as e:
        module.fail_json(msg=f"building the app's wheel into {p['dest']}: {e}")
    module.exit_json(changed=True, built=True, wheel=cached_wheel(p["dest"]))


if __name__ == "__main__":
    main()
