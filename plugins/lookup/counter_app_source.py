"""Lookup plugin counter_app_source: the app's source files and their content key."""

from __future__ import annotations

import hashlib
import os

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

DOCUMENTATION = r"""
name: counter_app_source
short_description: The files that go into the app's wheel, or a key hashed over them
description:
  - >-
    Walks the app's source directory on the controller and lists, sorted, the
    paths (relative to it) of what goes into the app's wheel. Tests and build
    output at the top (C(tests/), C(build/), C(dist/)), caches
    (C(__pycache__), C(*.egg-info), C(*.pyc), C(*.pyo)) and hidden files and
    directories are left out: they never change the key.
  - >-
    With O(want=key), the content key instead, 16 hex digits of a sha256 over
    each file's relative path and the sha256 of its content: the same source
    gives the same key, any change to a file that goes into the wheel another.
options:
  _terms:
    description: The app's source directory (one or more).
    required: true
  want:
    description: C(key) for the content key, C(files) for the list of files.
    type: str
    default: key
    choices: [key, files]
"""

EXAMPLES = r"""
- name: The content key of the app's source
  ansible.builtin.set_fact:
    __counter_app_key: "{{ lookup('counter.litestream.counter_app_source', counter_app_source) }}"

- name: The files of the app's wheel
  ansible.builtin.debug:
    msg: "{{ query('counter.litestream.counter_app_source', counter_app_source, want='files') }}"
"""

RETURN = r"""
_raw:
  description:
    - With O(want=key), the key of each source directory (16 hex digits).
    - With O(want=files), the relative paths of the files of each, in one list.
  type: list
  elements: str
"""

_SKIPPED_TOP_DIRS = ("tests", "build", "dist")


def app_files(root: str) -> list[str]:
    """The sorted paths, relative to root, of the files that go into the wheel."""
    files = []
    for top, dirs, names in os.walk(root):
        rel = os.path.relpath(top, root)
        dirs[:] = [
            d
            for d in dirs
            if not (
                d.startswith(".")
                or d == "__pycache__"
                or d.endswith(".egg-info")
                or (rel == "." and d in _SKIPPED_TOP_DIRS)
            )
        ]
        files += [
            os.path.normpath(os.path.join(rel, n))
            for n in names
            if not (n.startswith(".") or n.endswith((".pyc", ".pyo")))
        ]
    return sorted(files)


def app_key(root: str, files: list[str] | None = None) -> str:
    """16 hex digits of a sha256 over each file's path and content's sha256."""
    key = hashlib.sha256()
    for name in app_files(root) if files is None else files:
        with open(os.path.join(root, name), "rb") as f:
            key.update(name.encode() + b"\0" + hashlib.sha256(f.read()).digest())
    return key.hexdigest()[:16]


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        want = self.get_option("want")
        out = []
        for term in terms:
            root = str(term)
            if not os.path.isdir(root):
                raise AnsibleLookupError(f"counter_app_source: {root!r} is not a directory")
            if want == "files":
                out += app_files(root)
            else:
                out.append(app_key(root))
        return out
