#!/usr/bin/env python3
"""Fail when a role's defaults and its meta/argument_specs.yml disagree.

Every variable in defaults/main.yml must be described in the argument spec of
the role's main entry point, and every option there must have a default in
defaults/main.yml, written there only (the spec does not restate it).
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

ROLES = Path(__file__).resolve().parents[2] / "roles"


def check(role: Path) -> list[str]:
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text()) or {}
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())
    options = specs["argument_specs"]["main"].get("options", {})
    problems = [
        f"{role.name}: {name} has a default but no argument spec"
        for name in sorted(defaults.keys() - options.keys())
    ]
    problems += [
        f"{role.name}: {name} is specified but has no default"
        for name in sorted(options.keys() - defaults.keys())
    ]
    for name, option in sorted(options.items()):
        if "default" in option:
            problems.append(
                f"{role.name}: {name} restates its default in the spec"
                " (keep it in defaults/main.yml only)"
            )
        if not option.get("description"):
            problems.append(f"{role.name}: {name} has no description")
        if not name.startswith(role.name + "_"):
            problems.append(f"{role.name}: {name} is not prefixed with the role name")
    return problems


def main() -> int:
    problems = [
        p
        for role in sorted(ROLES.iterdir())
        if (role / "meta" / "argument_specs.yml").exists()
        for p in check(role)
    ]
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"argument specs: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
