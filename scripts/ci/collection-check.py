#!/usr/bin/env python3
"""Build the collection, install the tarball offline, use its roles by FQCN.

What a user of `ansible-galaxy collection install` gets, checked without
the source tree on any search path:

1. `ansible-galaxy collection build` of the repository (galaxy.yml) into
   build/collection/;
2. `ansible-galaxy collection install --offline` of that tarball into
   build/collection/installed (its dependencies from the collections the
   pinned `ansible` package ships);
3. every tracked file the roles use (roles/, plugins/, the guard's and the
   app's sources) is in the tarball;
4. every role's argument specs and every module's and lookup's
   documentation load by FQCN (`ansible-doc`), and every playbook of the
   READMEs marked `<!-- collection-example -->` passes `ansible-playbook
   --syntax-check`, with only the installed collection to find roles in (no
   roles_path, no ansible.cfg of this repository). A syntax check renders no
   template: the filters are exercised by the Molecule scenarios.

    scripts/ci/collection-check.py     (make lint)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "build" / "collection"
MARK = "<!-- collection-example -->"
# The hosts and groups the README's plays name.
INVENTORY = "[myapp]\nweb1\n[storage]\nbackup1\nobjects1\nmonitor1\n"


def run(*args: str, env: dict | None = None, cwd: Path | None = None) -> str:
    done = subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd)
    if done.returncode != 0:
        sys.exit(f"collection-check: {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def examples(readme: str) -> list[str]:
    """The YAML blocks that follow the marker in the README."""
    return re.findall(re.escape(MARK) + r"\s*```yaml\n(.*?)```", readme, re.S)


def main() -> int:
    bin_dir = Path(sys.executable).parent
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    fqcn = f"{galaxy['namespace']}.{galaxy['name']}"
    tarball = OUT / f"{galaxy['namespace']}-{galaxy['name']}-{galaxy['version']}.tar.gz"
    installed = OUT / "installed"
    OUT.mkdir(parents=True, exist_ok=True)
    run(str(bin_dir / "ansible-galaxy"), "collection", "build", "--force",
        "--output-path", str(OUT), str(ROOT))  # fmt: skip
    listing = run("tar", "-tzf", str(tarball)).split()
    for needed in ("MANIFEST.json", "meta/runtime.yml", "guard/pyproject.toml",
                   "app/pyproject.toml", "roles/litestream/meta/argument_specs.yml"):  # fmt: skip
        if needed not in listing:
            sys.exit(f"collection-check: {tarball.name} lacks {needed}")
    # Everything the roles read at run time travels (a build_ignore slip, a
    # file moved out of the collection's tree, fails here).
    tracked = run("git", "-C", str(ROOT), "ls-files", "roles", "plugins", "guard/src", "app/src",
                  "app/requirements.txt", "app/pyproject.toml", "guard/pyproject.toml",
                  "guard/build.py").split()  # fmt: skip
    missing = [f for f in tracked if f not in listing and not f.startswith("plugins/strategy/")]
    if missing:
        sys.exit(f"collection-check: {tarball.name} lacks {', '.join(missing[:10])}")
    for unwanted in (".venv/", ".git/", ".cache/", "molecule/"):
        if any(name.startswith(unwanted) for name in listing):
            sys.exit(f"collection-check: {tarball.name} holds {unwanted} (galaxy.yml build_ignore)")

    # A clean Ansible: none of this repository's configuration or paths.
    with tempfile.TemporaryDirectory() as empty:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
        (Path(empty) / "ansible.cfg").write_text("[defaults]\n")
        env |= {
            "ANSIBLE_CONFIG": str(Path(empty) / "ansible.cfg"),  # empty: the defaults
            "ANSIBLE_ROLES_PATH": empty,
            # Only the installed tarball, and what the ansible package ships
            # (sys.path's ansible_collections, scanned by default).
            "ANSIBLE_COLLECTIONS_PATH": str(installed),
            "ANSIBLE_LOCAL_TEMP": empty,
        }
        run(str(bin_dir / "ansible-galaxy"), "collection", "install", "--offline", "--force",
            "-p", str(installed), str(tarball), env=env, cwd=Path(empty))  # fmt: skip
        roles = sorted(p.name for p in (ROOT / "roles").iterdir() if p.is_dir())
        for role in roles:
            run(str(bin_dir / "ansible-doc"), "-t", "role", f"{fqcn}.{role}", env=env,
                cwd=Path(empty))  # fmt: skip
        readmes = [ROOT / "README.md", *sorted((ROOT / "roles").glob("*/README.md"))]
        for kind, folder in (("module", "modules"), ("lookup", "lookup")):
            for plugin in sorted((ROOT / "plugins" / folder).glob("*.py")):
                run(str(bin_dir / "ansible-doc"), "-t", kind, f"{fqcn}.{plugin.stem}", env=env,
                    cwd=Path(empty))  # fmt: skip
        plays = [play for readme in readmes for play in examples(readme.read_text())]
        if not examples((ROOT / "README.md").read_text()):
            sys.exit(f"collection-check: README.md has no {MARK} playbook")
        for n, play in enumerate(plays):
            path = Path(empty) / f"example{n}.yml"
            path.write_text(play)
            inventory = Path(empty) / "hosts"
            inventory.write_text(INVENTORY)
            run(str(bin_dir / "ansible-playbook"), "--syntax-check", "-i", str(inventory),
                str(path), env=env, cwd=Path(empty))  # fmt: skip
    print(
        f"collection-check: {tarball.relative_to(ROOT)} built, installed offline; "
        f"{len(roles)} roles, its modules and lookup by FQCN ({fqcn}.*), "
        f"{len(plays)} README playbooks pass"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
