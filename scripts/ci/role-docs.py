#!/usr/bin/env python3
"""Render each role's variables from meta/argument_specs.yml into its README.md.

Reads the `main` entry point of roles/<role>/meta/argument_specs.yml and
renders a Markdown table (Variable | Default | Description) into
roles/<role>/README.md, between the role-variables markers. Options of a
`dict` (or a `list` of dicts) with `options:` get their own rows, named
`parent.child` (`parent[].child` for list elements). Options with
`no_log: true` are marked secret. A role without a README gets one: its
title, the description from meta/main.yml, and the markers when it has
argument specs (a role without them gets the description only). Everything
outside the markers is written by hand and kept.

    scripts/ci/role-docs.py            print the tables
    scripts/ci/role-docs.py --write    put them into each roles/<role>/README.md
    scripts/ci/role-docs.py --check    exit 1 when a README is missing or stale (make lint)
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
BEGIN = "<!-- role-variables:begin -->"
END = "<!-- role-variables:end -->"
NOTE = (
    "<!-- Generated from roles/*/meta/argument_specs.yml by scripts/ci/role-docs.py --write;"
    " edit the specs, not this block. -->"
)
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
# Ansible's documentation markup: C(code), V(value), O(option), I(italic), B(bold), ...
MARKUP = re.compile(r"\b(C|V|O|E|M|RV|I|B|U)\(([^)]*)\)|\bL\(([^,)]*),\s*([^)]*)\)")


def code(text: str, cell: bool = True) -> str:
    """Inline code, with a longer fence when the text holds backticks (`|` escaped in a cell)."""
    fence = "`"
    while fence in text:
        fence += "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    span = f"{fence}{pad}{text}{pad}{fence}"
    return span.replace("|", r"\|") if cell else span


def markup(match: re.Match[str]) -> str:
    kind, value = match.group(1), match.group(2)
    if kind is None:
        return f"[{match.group(3)}]({match.group(4)})"
    if kind == "I":
        return f"*{value}*"
    if kind == "B":
        return f"**{value}**"
    if kind == "U":
        return value
    return code(value, cell=False)


def prose(text: str) -> str:
    """Description text for a table cell: one line, `<` and `|` escaped outside code."""
    text = MARKUP.sub(markup, " ".join(text.split()).replace("HORIZONTALLINE", ""))
    out, pos = [], 0
    for match in CODE_SPAN.finditer(text):
        out.append(text[pos : match.start()].replace("<", r"\<"))
        out.append(match.group(0))
        pos = match.end()
    out.append(text[pos:].replace("<", r"\<"))
    return "".join(out).replace("|", r"\|")


def value_code(value: Any) -> str:
    """A default or a choice as inline code: YAML's true/false, compact JSON for dicts and lists."""
    if isinstance(value, bool):
        return code("true" if value else "false")
    if isinstance(value, dict | list):
        return code(json.dumps(value, separators=(", ", ": ")))
    if value == "":
        return code('""')
    return code(str(value))


# Pins (versions and their checksums) are shown where they live, so that a
# version bump is one edit there and the role README does not change with it.
PINNED = ("_version", "_sha256")


def default_cell(name: str, defaults: dict[str, Any], role: str) -> str:
    if name.endswith(PINNED):
        return f"pinned in `roles/{role}/defaults/main.yml`"
    if name not in defaults:
        return ""
    return value_code(defaults[name])


def description_cell(option: dict[str, Any]) -> str:
    description = option.get("description", "")
    if isinstance(description, list):
        description = " ".join(str(line) for line in description)
    text = prose(str(description))
    if text and text[-1] not in ".!?:":
        text += "."
    if option.get("choices"):
        choices = ", ".join(value_code(choice) for choice in option["choices"])
        text += f" One of {choices}."
    if option.get("no_log"):
        text = "**Secret** (`no_log`). " + text
    return text.strip()


def rows(
    options: dict[str, Any], defaults: dict[str, Any], role: str, prefix: str = ""
) -> list[str]:
    """One row per option; defaults come from the role's defaults/main.yml
    (the one place they are written), nested options have none."""
    lines = []
    for name, option in options.items():
        option = option or {}
        full = f"{prefix}{name}"
        default = default_cell(name, defaults, role) if not prefix else ""
        lines.append(f"| {code(full)} | {default} | {description_cell(option)} |")
        if option.get("options"):
            child = f"{full}[]." if option.get("type") == "list" else f"{full}."
            lines += rows(option["options"], {}, role, child)
    return lines


def role_table(spec_file: Path) -> str:
    role = spec_file.parent.parent.name
    specs = yaml.safe_load(spec_file.read_text()) or {}
    main = (specs.get("argument_specs") or {}).get("main") or {}
    defaults_file = spec_file.parent.parent / "defaults" / "main.yml"
    defaults = (yaml.safe_load(defaults_file.read_text()) or {}) if defaults_file.exists() else {}
    lines = []
    if main.get("short_description"):
        lines += [prose(str(main["short_description"])) + ".", ""]
    lines += ["| Variable | Default | Description |", "|---|---|---|"]
    lines += rows(main.get("options") or {}, defaults, role)
    return "\n".join(lines)


def render(spec_file: Path) -> str:
    """The generated block of one role's README."""
    return "\n\n".join([NOTE, role_table(spec_file)]) + "\n"


def description(role_dir: Path) -> str:
    """meta/main.yml's galaxy_info.description, as one sentence."""
    meta_file = role_dir / "meta" / "main.yml"
    meta = (yaml.safe_load(meta_file.read_text()) or {}) if meta_file.exists() else {}
    text = prose(str((meta.get("galaxy_info") or {}).get("description", "")))
    return text if not text or text[-1] in ".!?" else text + "."


def new_readme(role_dir: Path, has_specs: bool) -> str:
    """A README for a role that has none: title, description, markers."""
    lines = [f"# Role `{role_dir.name}`", "", description(role_dir), ""]
    if has_specs:
        lines += ["## Role variables", "", BEGIN, END, ""]
    return "\n".join(lines)


def split(readme: str) -> tuple[str, str, str]:
    """README as (before and BEGIN line, generated block, END line and after)."""
    if readme.count(BEGIN) != 1 or readme.count(END) != 1:
        raise ValueError(f"must hold exactly one {BEGIN} and one {END} line")
    head, rest = readme.split(BEGIN + "\n", 1)
    block, tail = rest.split(END, 1)
    return head + BEGIN + "\n", block, END + tail


def shown(path: Path) -> Path:
    """A path as messages show it: relative to the repository when inside it."""
    try:
        return path.resolve().relative_to(ROOT)
    except ValueError:
        return path


def update(role_dir: Path, write: bool) -> bool:
    """Check (or write) one role's README; True when it is as it should be."""
    readme_file = role_dir / "README.md"
    spec_file = role_dir / "meta" / "argument_specs.yml"
    has_specs = spec_file.exists()
    name = shown(readme_file)
    if not readme_file.exists():
        if not write:
            print(f"{name}: missing; run scripts/ci/role-docs.py --write", file=sys.stderr)
            return False
        readme_file.write_text(new_readme(role_dir, has_specs))
        print(f"{name}: created")
    if not has_specs:
        return True
    readme = readme_file.read_text()
    try:
        head, block, tail = split(readme)
    except ValueError as error:
        print(f"{name}: {error}", file=sys.stderr)
        return False
    tables = render(spec_file)
    block = block.strip("\n") + "\n" if block.strip() else ""
    if block == tables:
        return True
    if write:
        readme_file.write_text(head + "\n" + tables + "\n" + tail)
        print(f"{name}: role variables updated from the argument specs")
        return True
    diff = difflib.unified_diff(
        block.splitlines(keepends=True),
        tables.splitlines(keepends=True),
        f"{name} (role variables)",
        str(shown(spec_file)),
    )
    sys.stderr.writelines(diff)
    print(
        f"{name}: the table differs from the argument specs; run scripts/ci/role-docs.py --write",
        file=sys.stderr,
    )
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="update each role's README.md")
    mode.add_argument("--check", action="store_true", help="exit 1 when a role's README is stale")
    parser.add_argument("--roles", type=Path, default=ROOT / "roles")
    args = parser.parse_args()

    roles = sorted(path.parent.parent for path in args.roles.glob("*/meta/main.yml"))
    if not (args.write or args.check):
        for role_dir in roles:
            spec_file = role_dir / "meta" / "argument_specs.yml"
            if spec_file.exists():
                sys.stdout.write(f"## `{role_dir.name}`\n\n{render(spec_file)}\n")
        return 0
    ok = [update(role_dir, args.write) for role_dir in roles]
    if all(ok):
        print(f"role variables: {len(roles)} role READMEs match the argument specs")
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
