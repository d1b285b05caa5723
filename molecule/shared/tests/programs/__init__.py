"""Programs the tests run on the lab's hosts (python3 -c / bash -c of a
file's text: nothing is left on a host). Standard library only."""

from pathlib import Path

HERE = Path(__file__).parent


def text(name: str) -> str:
    """The source of one program, to pass as `python3 -c` / `bash -c`."""
    return (HERE / name).read_text()
