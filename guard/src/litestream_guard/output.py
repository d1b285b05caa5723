"""Progress on stdout, warnings on stderr, flushed at once (the journal)."""

from __future__ import annotations

import sys


def say(message: str) -> None:
    print(message, flush=True)


def warn(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
