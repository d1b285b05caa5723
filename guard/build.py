#!/usr/bin/env python3
"""Build litestream-guard as ONE file for the hosts: a zipapp of
src/litestream_guard and of the control-socket client it shares with the app
(app/src/litestream_control), run by the host's /usr/bin/python3.

Deterministic: the same sources give the same bytes (files in sorted order,
a fixed timestamp and mode, stored uncompressed so no zlib version changes
them), so Ansible's copy of it changes nothing when nothing changed.

    python3 guard/build.py OUTPUT

writes OUTPUT only when its bytes differ, and prints
{"path": ..., "sha256": ..., "changed": true|false} on stdout.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import zipfile
from pathlib import Path

SOURCE = Path(__file__).resolve().parent / "src" / "litestream_guard"
# Packages of this repository the guard imports, put beside it in the file.
SHARED = (Path(__file__).resolve().parents[1] / "app" / "src" / "litestream_control",)
SHEBANG = b"#!/usr/bin/python3\n"
EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can hold
MAIN = b"from litestream_guard.cli import run\n\nrun()\n"


def sources(root: Path = SOURCE) -> list[Path]:
    """The package's Python files, in a fixed order."""
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def _entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=EPOCH)
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o100644 << 16
    info.create_system = 3  # Unix, whatever the controller
    return info


def build(root: Path = SOURCE, shared: tuple[Path, ...] = SHARED) -> bytes:
    """The zipapp's bytes: shebang, then the archive."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(_entry("__main__.py"), MAIN)
        for package in (root, *shared):
            for path in sources(package):
                name = f"{package.name}/{path.relative_to(package).as_posix()}"
                zf.writestr(_entry(name), path.read_bytes())
    return SHEBANG + archive.getvalue()


def write(output: Path, data: bytes) -> bool:
    """Put data at output, unless it already holds them; True when written."""
    try:
        if output.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    output.parent.mkdir(parents=True, exist_ok=True)
    # Its own temporary name: two plays may build at once (same bytes).
    tmp = output.with_name(f"{output.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o755)
    os.replace(tmp, output)
    return True


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    output = Path(argv[1])
    data = build()
    changed = write(output, data)
    digest = hashlib.sha256(data).hexdigest()
    print(json.dumps({"path": str(output), "sha256": digest, "changed": changed}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
