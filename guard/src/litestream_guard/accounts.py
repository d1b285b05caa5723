"""Who owns what the guard makes: root's operator commands hand their files
to Litestream's account and the group that shares the database directory."""

from __future__ import annotations

import grp
import os
import pwd
from pathlib import Path

from .errors import EXIT_USAGE, Refused
from .settings import Settings


def require_root() -> None:
    if os.geteuid() != 0:
        raise Refused("run this as root", EXIT_USAGE)


def db_gid(settings: Settings) -> int:
    """The group that shares the database directory (the app's)."""
    if settings.group:
        return grp.getgrnam(settings.group).gr_gid
    return pwd.getpwnam(settings.user).pw_gid


def own(path: Path, settings: Settings) -> None:
    """Files the guard makes as root (operator commands) go to Litestream's
    account and the group it shares the database directory with."""
    if os.geteuid() == 0:
        os.chown(path, pwd.getpwnam(settings.user).pw_uid, db_gid(settings))


def share(path: Path) -> None:
    """The app opens the database read-write through the shared group."""
    mode = path.stat().st_mode
    if mode & 0o060 != 0o060:
        os.chmod(path, (mode | 0o060) & 0o7770)
