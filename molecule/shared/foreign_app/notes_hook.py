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
- Its one table, made when missing: after the restore (the database is
  restored from its replica before the app starts), never instead of it.
"""

from __future__ import annotations


def prepare(db) -> None:
    db.pragma("journal_mode", "wal")
    db.pragma("wal_autocheckpoint", 0)
    db.execute_sql("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
