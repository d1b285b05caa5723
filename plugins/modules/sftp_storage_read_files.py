#!/usr/bin/python
"""Module sftp_storage_read_files: read text files on the host in one round trip."""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: sftp_storage_read_files
short_description: Read a few text files on the host, a missing one as null
description:
  - >-
    Reads each of O(paths) and returns their content by path, C(null) for a
    file that does not exist; any other error (a directory, no permission)
    fails. Changes nothing, so it runs in check mode as in a real run.
options:
  paths:
    description: The files to read.
    type: list
    elements: str
    required: true
notes:
  - >-
    Supports check mode.
"""

EXAMPLES = r"""
- name: Read the host key
  sftp_storage_read_files:
    paths: [/etc/ssh/ssh_host_ecdsa_key.pub]
  register: __sftp_storage_read
  no_log: true
"""

RETURN = r"""
files:
  description: Each path's content, or null when the file does not exist.
  type: dict
  returned: success
"""


def read_files(paths: list[str]) -> dict[str, str | None]:
    """{path: content, or None for a missing file}."""
    out: dict[str, str | None] = {}
    for path in paths:
        try:
            with open(path) as f:
                out[path] = f.read()
        except FileNotFoundError:
            out[path] = None
    return out


def main() -> None:
    module = AnsibleModule(
        argument_spec={"paths": {"type": "list", "elements": "str", "required": True}},
        supports_check_mode=True,
    )
    try:
        files = read_files(module.params["paths"])
    except OSError as e:
        module.fail_json(msg=f"reading {e.filename}: {e.strerror}")
    module.exit_json(changed=False, files=files)


if __name__ == "__main__":
    main()
