#!/usr/bin/python
"""Module litestream_settings_files: Litestream's settings files, compared, staged, put in place."""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import shutil
import subprocess
import tempfile

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: litestream_settings_files
short_description: Compare, stage and put in place Litestream's settings files
description:
  - >-
    The settings of one host's Litestream (its configuration, the guard's
    settings, the replica's secrets, the SFTP key) go live only once the
    replica store has accepted them: they are staged, checked by the role,
    then put in place. This module does the file work of both ends in one
    call each, so that a deploy that changes nothing makes one call.
  - >-
    With O(state=staged), compares each file's wanted content, owner, group
    and mode with the live file (a content of V(null): the file must not
    exist). When any content differs, writes every file of the set (those
    with a content) into O(stage_dir) (root only), so that the role can check
    the whole new set against the store, after running its O(files[].validate)
    command on the staged copy. Files whose only difference is their owner,
    group or mode are reported apart: they need no check.
  - >-
    With O(state=placed), writes O(names) in place with their wanted content
    (the bytes that were staged and checked; owner, group, mode as wanted;
    atomically, the directory synced), or removes the live file of one whose
    content is V(null); a file whose content matches already gets its owner,
    group and mode set. Secrets first. Then removes the stage.
  - >-
    O(secret_files) are like O(files), but their content comes from
    O(secrets), a dict that is never logged, returned nor shown in a diff.
options:
  state:
    description: V(staged) to compare and stage, V(placed) to put in place.
    type: str
    choices: [staged, placed]
    required: true
  stage_dir:
    description: The staging directory (created root only, mode 0700).
    type: path
    required: true
  files:
    description: The files.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The staged file's name (unique in the set).
        type: str
        required: true
      path:
        description: The live path (empty for a file that is only staged).
        type: str
        default: ""
      content:
        description: What the file holds; V(null) when it must not exist.
        type: str
      owner:
        description: The live file's owner.
        type: str
      group:
        description: The live file's group.
        type: str
      mode:
        description: The live file's mode, octal, as a string.
        type: str
      validate:
        description: A command (argv) run on the staged copy; an argument
          C(%s) stands for its path. A failure fails the module.
        type: list
        elements: str
  secret_files:
    description: Like O(files), without C(content) (it is in O(secrets)).
    type: list
    elements: dict
    default: []
  secrets:
    description: The secret files' contents, by name (no_log); a name that
      is not there, or V(null), means the file must not exist.
    type: dict
    default: {}
  names:
    description: With O(state=placed), the names of the files to put in place.
    type: list
    elements: str
    default: []
notes:
  - >-
    Supports check mode and diff mode (compares, writes nothing; the diff of
    each non-secret file whose content would change).
"""

EXAMPLES = r"""
- name: Compare the settings with the live ones and stage them when they differ
  litestream_settings_files:
    state: staged
    stage_dir: /etc/litestream/staged
    files:
      - name: litestream.yml
        path: /etc/litestream.yml
        content: "{{ lookup('ansible.builtin.template', 'etc/litestream.yml.j2') }}"
        owner: root
        group: litestream
        mode: "0640"
        validate: [/usr/local/bin/litestream, databases, -config, "%s"]
  register: __litestream_settings_files
"""

RETURN = r"""
content_changed:
  description: The names of the files whose content differs from the live one (or is to be removed).
  type: list
  elements: str
  returned: always
attributes_changed:
  description: The names of the files whose content matches but owner, group or mode do not.
  type: list
  elements: str
  returned: always
"""


def _uid(name: str) -> int:
    return pwd.getpwnam(name).pw_uid


def _gid(name: str) -> int:
    return grp.getgrnam(name).gr_gid


def _digest(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def compare(item: dict) -> tuple[bool, bool]:
    """(content differs, owner/group/mode differ) for one file."""
    if not item.get("path"):
        return False, False
    live = _read(item["path"])
    wanted = item.get("content")
    if wanted is None:
        return live is not None, False
    if live is None or _digest(live) != _digest(wanted.encode()):
        return True, False
    st = os.stat(item["path"])
    return False, (st.st_uid, st.st_gid, st.st_mode & 0o7777) != item["ids"]


def write(path: str, data: bytes, uid: int, gid: int, mode: int) -> None:
    """data at path, atomically, with its owner and mode before it appears."""
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chown(tmp, uid, gid)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fd = os.open(directory, os.O_RDONLY)  # the rename itself on disk
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def staged_path(stage_dir: str, item: dict) -> str:
    return os.path.join(stage_dir, item["name"])


def stage(module: AnsibleModule, stage_dir: str, items: list[dict]) -> None:
    os.makedirs(stage_dir, mode=0o700, exist_ok=True)
    os.chown(stage_dir, 0, 0)
    os.chmod(stage_dir, 0o700)
    # What an earlier set staged and this one does not name (a key no
    # longer given) goes: the stage holds exactly the set being checked.
    names = {item["name"] for item in items}
    for name in os.listdir(stage_dir):
        if name not in names:
            os.unlink(os.path.join(stage_dir, name))
    for item in items:
        target = staged_path(stage_dir, item)
        if item.get("content") is None:
            if os.path.exists(target):
                os.unlink(target)
            continue
        write(target, item["content"].encode(), 0, 0, 0o600)
        if item.get("validate"):
            argv = [target if arg == "%s" else arg for arg in item["validate"]]
            done = subprocess.run(argv, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                module.fail_json(
                    msg=f"{item['name']} was refused by `{' '.join(item['validate'])}`: "
                    f"{(done.stderr or done.stdout).strip()[-1000:]}"
                )


def place(item: dict) -> None:
    """The live file as wanted, or removed. Written from the wanted content:
    the same bytes the stage held when the store check accepted them (the
    controller renders the same settings the same way)."""
    path = item["path"]
    if item.get("content") is None:
        if os.path.exists(path):
            os.unlink(path)
        return
    uid, gid, mode = item["ids"]
    wanted = item["content"].encode()
    if _read(path) == wanted:
        os.chown(path, uid, gid)
        os.chmod(path, mode)
        return
    write(path, wanted, uid, gid, mode)


def main() -> None:
    def spec_files(content: bool) -> dict:
        options = {
            "name": {"type": "str", "required": True},
            "path": {"type": "str", "default": ""},
            "owner": {"type": "str"},
            "group": {"type": "str"},
            "mode": {"type": "str"},
            "validate": {"type": "list", "elements": "str"},
        }
        if content:
            options["content"] = {"type": "str"}
        return {"type": "list", "elements": "dict", "default": [], "options": options}

    module = AnsibleModule(
        argument_spec={
            "state": {"type": "str", "choices": ["staged", "placed"], "required": True},
            "stage_dir": {"type": "path", "required": True},
            "files": spec_files(content=True),
            "secret_files": spec_files(content=False),
            # Top-level and no_log as a whole: Ansible's logging of a
            # module's arguments (the host's journal) masks it entirely.
            "secrets": {"type": "dict", "default": {}, "no_log": True},
            "names": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    p = module.params
    secret_names = {item["name"] for item in p["secret_files"]}
    secrets = [dict(item, content=p["secrets"].get(item["name"])) for item in p["secret_files"]]
    # Secrets first: a placement that stops midway leaves no new
    # configuration beside old secrets.
    items = [*secrets, *p["files"]]
    by_name = {item["name"]: item for item in items}
    if len(by_name) != len(items):
        module.fail_json(msg="two files with one name")
    unknown = sorted(set(p["secrets"]) - secret_names)
    if unknown:
        module.fail_json(msg=f"secrets for no file of secret_files: {', '.join(unknown)}")
    for item in items:
        if item.get("path") and item.get("content") is not None:
            missing = [k for k in ("owner", "group", "mode") if not item.get(k)]
            if missing:
                module.fail_json(msg=f"{item['name']}: no {', '.join(missing)}")
            try:
                item["ids"] = (_uid(item["owner"]), _gid(item["group"]), int(item["mode"], 8))
            except (KeyError, ValueError) as error:
                module.fail_json(msg=f"{item['name']}: {error}")

    if p["state"] == "placed":
        unknown = sorted(set(p["names"]) - set(by_name))
        if unknown:
            module.fail_json(msg=f"no such file in the set: {', '.join(unknown)}")
        chosen = [item for item in items if item["name"] in p["names"] and item.get("path")]
        if not module.check_mode:
            for item in chosen:
                place(item)
            # Nothing reads the stage once its files are live: no copy of
            # a secret stays there.
            shutil.rmtree(p["stage_dir"], ignore_errors=True)
        module.exit_json(changed=bool(chosen), content_changed=[], attributes_changed=[])

    content_changed, attributes_changed, diffs = [], [], []
    for item in items:
        content, attrs = compare(item)
        if content:
            content_changed.append(item["name"])
            if item["name"] not in secret_names and item.get("path"):
                before = _read(item["path"])
                diffs.append(
                    {
                        "before_header": item["path"],
                        "after_header": item["path"],
                        "before": "" if before is None else before.decode(errors="replace"),
                        "after": item.get("content") or "",
                    }
                )
        elif attrs:
            attributes_changed.append(item["name"])
    if content_changed and not module.check_mode:
        stage(module, p["stage_dir"], items)
    module.exit_json(
        changed=bool(content_changed or attributes_changed),
        content_changed=content_changed,
        attributes_changed=attributes_changed,
        diff=diffs,
    )


if __name__ == "__main__":
    main()
