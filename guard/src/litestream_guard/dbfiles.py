"""The database's files: its side files, setting them aside (never deleted),
swapping a staged file in, SQLite's integrity check."""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import sqlite3
from pathlib import Path

from .accounts import db_gid, own
from .settings import Settings
from .state import stamp

# What sits beside a database file or a restored copy: SQLite's (a hot
# rollback journal belongs to its file as much as a WAL does), and the
# `<db>.tmp` Litestream's restore writes before renaming it into place.
SIDECARS = ("-wal", "-shm", "-journal", ".tmp", ".tmp-wal", ".tmp-shm")


def side_files(path: Path) -> list[Path]:
    """The path's side files (SIDECARS), not the path itself."""
    return [path.with_name(path.name + suffix) for suffix in SIDECARS]


def metadata_dir(db: Path) -> Path:
    """Litestream's local state of the database (`.<db>-litestream`)."""
    return db.with_name(f".{db.name}-litestream")


def stage_dir(db: Path) -> Path:
    """Where a restore into `db` fetches its plan's files (`.<db>.stage`,
    staging.py): on its disk, removed after the restore."""
    return db.with_name(f".{db.name}.stage")


def stale_files(db: Path) -> list[Path]:
    """What belongs to a database besides its file: side files, Litestream's
    local state, the stages of restores a crash left (its own, and those of
    copies restored beside it: `.<db>.restore-<time>.stage`)."""
    stages = sorted(db.parent.glob(f".{db.name}*.stage")) if db.parent.is_dir() else []
    return [*side_files(db), metadata_dir(db), *stages]


def remove_stale(db: Path) -> None:
    """Litestream's restore does not look at these when the database is
    missing; an old WAL applied to a restored file would corrupt it."""
    for path in stale_files(db):
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def remove(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def aside_dir(db: Path, settings: Settings) -> Path:
    """A new directory beside the database for what is set aside."""
    path = db.with_name(f"{db.name}.aside-{stamp()}")
    path.mkdir(mode=0o750)
    own(path, settings)
    return path


def move_aside(db: Path, aside: Path) -> None:
    """The database, its side files and Litestream state into `aside`."""
    for path in [db, *stale_files(db)]:
        if path.exists():
            shutil.move(str(path), aside / path.name)


def swap(staged: Path, db: Path, settings: Settings) -> Path:
    """The live database, its -wal, -shm and Litestream state into an
    aside directory (never deleted), the staged file in its place."""
    aside = aside_dir(db, settings)
    owner = (pwd.getpwnam(settings.user).pw_uid, db_gid(settings), 0o660)
    if db.exists():
        st = db.stat()
        owner = (st.st_uid, st.st_gid, (st.st_mode & 0o777) | 0o060)
    move_aside(db, aside)
    os.chown(staged, owner[0], owner[1])
    os.chmod(staged, owner[2])
    os.replace(staged, db)
    fd = os.open(db.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return aside


def integrity_errors(uri: str) -> list[str]:
    """What SQLite's PRAGMA integrity_check finds in the database at an URI
    ([] when it says ok; an unreadable file is a finding too)."""
    conn = sqlite3.connect(uri, uri=True)
    try:
        found = [row[0] for row in conn.execute("PRAGMA integrity_check")]
    except sqlite3.DatabaseError as error:
        found = [str(error)]
    finally:
        conn.close()
    return [] if found == ["ok"] else found


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
