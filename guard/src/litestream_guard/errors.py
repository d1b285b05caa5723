"""Exit codes and the errors an operator is told about in one sentence."""

from __future__ import annotations

EXIT_OK = 0
EXIT_RETRY = 1  # the store is unreachable or a restore failed: try again
EXIT_USAGE = 2  # bad arguments or input
EXIT_REFUSED = 3  # starting would roll the replica back: the operator decides


class Refused(Exception):
    """What the guard will not do, and why: printed on stderr, exit `code`."""

    def __init__(self, message: str, code: int = EXIT_RETRY) -> None:
        super().__init__(message)
        self.code = code


class StoreUnreachable(Exception):
    """The replica store did not answer (or not within its timeout)."""
