#!/usr/bin/env python3
"""Render the figures the drills recorded (JSON) as a markdown table.

scripts/ci/drill-report.py docs/drills.json docs/drills.md
"""

from __future__ import annotations

import datetime
import json
import platform
import sys
from pathlib import Path


def main(source: str, target: str) -> int:
    data = json.loads(Path(source).read_text())
    runs = sorted(data)
    drills = sorted({name for figures in data.values() for name in figures})
    lines = [
        "# Fault drills: figures as measured",
        "",
        f"`make drills` on {platform.node() or 'this machine'} ({platform.machine()}, "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d}); one column per scenario/Debian release.",
        "",
        "| drill | " + " | ".join(runs) + " |",
        "|---|" + "---|" * len(runs),
    ]
    for drill in drills:
        cells = [str(data[run].get(drill, "")) for run in runs]
        lines.append(f"| {drill} | " + " | ".join(cells) + " |")
    Path(target).write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
