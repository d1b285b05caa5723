#!/usr/bin/python
"""Module counter_deps_download: download the app's locked dependencies into a cache, once."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: counter_deps_download
short_description: Download the app's locked dependencies for one host platform into a cache
description:
  - >-
    Run on the controller (C(delegate_to=localhost), the interpreter being
    C(ansible_playbook_python), which must have pip).
  - >-
    Nothing is done when O(dest) is a directory: it is named by the lock's
    content and the platform, so a cached one holds those files.
  - >-
    Otherwise C(pip download --require-hashes --only-binary=:all:) fetches
    exactly what the lock pins for CPython O(python_version) on O(platforms),
    each file checked against its sha256s there (a pin without hashes, or a
    file whose sha256 is not listed, fails). The files are downloaded into
    C(<dest>.part-<pid>) and renamed to O(dest) only when complete: a failed
    download leaves nothing that a re-run would take. When another play
    renamed its own first, that one is kept.
options:
  dest:
    description: The cache directory for this lock and platform.
    type: path
    required: true
  requirements:
    description: The lock (pip-compile's requirements.txt, with hashes).
    type: path
    required: true
  python_version:
    description: The hosts' Python version, as C(3.11).
    type: str
    required: true
  platforms:
    description: The platform tags to accept, as C(manylinux_2_28_x86_64).
    type: list
    elements: str
    required: true
notes:
  - >-
    Supports check mode (reports whether it would download, downloads nothing).
"""

EXAMPLES = r"""
- name: Download the app's locked dependencies (controller)
  counter_deps_download:
    dest: "{{ __counter_controller_deps_dir }}/py3.11-x86_64"
    requirements: "{{ __counter_requirements }}"
    python_version: "3.11"
    platforms: [manylinux_2_28_x86_64, manylinux2014_x86_64]
  delegate_to: localhost
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
"""

RETURN = r"""
downloaded:
  description: Whether the files were (or, in check mode, would be) downloaded.
  type: bool
  returned: always
files:
  description: The file names in O(dest) (empty in check mode when it would download).
  type: list
  elements: str
  returned: always
"""


def pip_download_argv(
    part: str, requirements: str, python_version: str, platforms: list[str], python: str
) -> list[str]:
    """pip download's command line: wheels only, CPython, hash checked."""
    argv = [python, "-m", "pip", "download", "--dest", part, "--quiet", "--require-hashes"]
    argv += ["--only-binary=:all:", "--implementation", "cp", "--python-version", python_version]
    for platform in platforms:
        argv += ["--platform", platform]
    return [*argv, "--requirement", requirements]


def download(
    dest: str,
    requirements: str,
    python_version: str,
    platforms: list[str],
    python: str = sys.executable,
    run=subprocess.run,
) -> subprocess.CompletedProcess:
    """Download into dest.part-<pid> and rename it to dest when pip succeeded."""
    part = f"{dest}.part-{os.getpid()}"
    try:
        done = run(
            pip_download_argv(part, requirements, python_version, platforms, python),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode == 0:
            # Downloaded meanwhile by another play: keep that one.
            with contextlib.suppress(OSError):
                os.rename(part, dest)
        return done
    finally:
        shutil.rmtree(part, ignore_errors=True)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "dest": {"type": "path", "required": True},
            "requirements": {"type": "path", "required": True},
            "python_version": {"type": "str", "required": True},
            "platforms": {"type": "list", "elements": "str", "required": True},
        },
        supports_check_mode=True,
    )
    p = module.params
    if os.path.isdir(p["dest"]):
        module.exit_json(changed=False, downloaded=False, files=sorted(os.listdir(p["dest"])))
    if module.check_mode:
        module.exit_json(changed=True, downloaded=True, files=[])
    os.makedirs(os.path.dirname(p["dest"]), exist_ok=True)
    done = download(p["dest"], p["requirements"], p["python_version"], p["platforms"])
    if done.returncode:
        module.fail_json(
            msg=f"pip download failed (exit {done.returncode}) for {p['requirements']}",
            rc=done.returncode,
            stdout=done.stdout,
            stderr=done.stderr,
        )
    module.exit_json(changed=True, downloaded=True, files=sorted(os.listdir(p["dest"])))


if __name__ == "__main__":
    main()
