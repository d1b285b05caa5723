"""What every command works with, made once from the settings: the
database, Litestream, its control socket and the guard's state files."""

from __future__ import annotations

import contextlib
import fcntl

from litestream_control import Control

from .errors import EXIT_OK, Refused
from .litestream import Litestream
from .settings import Settings
from .staging import Stager
from .state import State


class Host:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = settings.db
        self.state = State(settings)
        self.litestream = Litestream(settings)
        self.litestream.stager = Stager.of(settings, self.state.restoring_path)
        self.control = Control(settings.socket, str(settings.db))

    @property
    def destination(self) -> str:
        return self.state.destination

    @contextlib.contextmanager
    def exclusive(self, command: str):
        """The start-up guard and the replica check never run at once (both
        read and write the records): a start waits for a check; a check
        that finds a start (or another check) running is skipped."""
        if command not in ("start", "check") or not self.state.dir.is_dir():
            yield
            return
        with self.state.guard_lock.open("ab") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | (fcntl.LOCK_NB if command == "check" else 0))
            except BlockingIOError:
                raise Refused(
                    "the start-up guard is running: this check is skipped", EXIT_OK
                ) from None
            yield
