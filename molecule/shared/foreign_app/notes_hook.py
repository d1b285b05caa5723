"""sqlite-web's startup hook (`--startup-hook notes_hook.prepare`), called
with the database before each request: what a user adds to an app so that
Litestream can replicate its database.

- WAL mode (Litestream replicates the WAL; the litestream role refuses a
  database in another journal mode). Set in the file, so it stays.
- No checkpoint of the app's own (`wal_autocheckpoint=0`, a setting of each
  connection): Litestream checkpoints. This app uses Python's sqlite3, that
  is Debian's SQLite (3.40 on Debian 12, 3.46 on 13), which has the
  WAL-reset bug of two processes that write and checkpoint one file (fixed
  in 3.51.3); leaving every checkpoint to Litestream keeps the app out of it.
- A database file Litestream's account can write (through the group the
  unit runs with): SQLite creates a missing file 0644 less the umask, so
  never group-writable, and its -wal and -shm files take that mode; made
  first with 0666 less the umask (the unit's UMask=0007: 0660).
- Its one table, made when missing: after the restore (the database is
  restored from its replica before the app starts), never instead of it.
"""

from __future__ import annotations

import contextlib
import os


def prepare(db) -> None:
    with contextlib.suppress(FileExistsError):
        os.close(os.open(db.database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    db.pragma("journal_mode", "wal")
    db.pragma("wal_autocheckpoint", 0)
    db.execute_sql("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
