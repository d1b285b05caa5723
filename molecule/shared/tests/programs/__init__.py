"""Programs the tests run on the lab's hosts (python3 -c / bash -c of a
file's text: nothing is left on a host). Standard library only.

A program may import a module of this project that it needs on the host
(s3.py: the guard's SigV4 signer): its text comes first, installed in
sys.modules, so the test and the guard sign with one function."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent
GUARD = HERE.parents[3] / "guard" / "src" / "litestream_guard"
# What each program imports from the project, by the name it imports.
NEEDS = {"s3.py": {"sigv4": GUARD / "sigv4.py"}}


def text(name: str) -> str:
    """The source of one program, to pass as `python3 -c` / `bash -c`."""
    source = (HERE / name).read_text()
    modules = NEEDS.get(name, {})
    if not modules:
        return source
    prelude = ["import sys as _sys, types as _types"]
    for module, path in modules.items():
        prelude += [
            f"_module = _types.ModuleType({module!r})",
            f"exec({path.read_text()!r}, _module.__dict__)",
            f"_sys.modules[{module!r}] = _module",
        ]
    return "\n".join(prelude) + "\n" + source
