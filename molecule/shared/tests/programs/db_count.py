"""Print the count a counter database file holds (its WAL applied), with the
host's own Python (the app's virtualenv may be gone).

    python3 -c "$(cat db_count.py)" DATABASE
"""

import sqlite3
import sys

with sqlite3.connect(sys.argv[1]) as db:
    print(db.execute("SELECT count FROM visits").fetchone()[0])
