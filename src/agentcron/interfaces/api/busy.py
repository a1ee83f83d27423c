"""Is the database's write lock free? Asked before a change made from the dashboard.

The web app's SQLite connection waits up to 30 s (its busy timeout) for a write lock
another process holds, and while it waits its other calls (the dashboard's polls)
wait behind it. A browser gives up on an action after 10 s, so a click during a lock
held by another process (a ``sqlite3`` shell left in a transaction, a backup) ended
with no answer at all. Before changing anything the interface asks here, on a
connection of its own with a short wait, whether a write could start now; when
another process holds the lock the change is not attempted, and the answer says so
at once: nothing was changed. A lock taken after this look is still waited for (the
store's wait): the dashboard then says it does not know yet, never "not done".
"""

from __future__ import annotations

import sqlite3
from typing import Any

from agentcron.store.sqlite import SQLiteStore

# A write of the daemon's own lasts milliseconds: this long a wait tells those apart
# from a lock held by someone else, and leaves an answer well inside the browser's 10 s.
PROBE_WAIT_S = 2.0

BUSY = (
    "the database is busy: another process holds it locked (a sqlite3 shell left in a "
    "transaction, a backup or a copy of the file), so nothing was changed; try again "
    "once it is released"
)


def write_blocked(store: Any) -> bool:
    """True when another process holds ``store``'s SQLite database locked for writing
    (nothing waits for it longer than :data:`PROBE_WAIT_S`). False when a write could
    start, when the store is not a SQLite file (PostgreSQL locks rows, not the
    database), or when the look itself fails: the change is then tried as before."""
    if not isinstance(store, SQLiteStore) or store.path.startswith((":memory:", "file:")):
        return False
    try:
        # SQLite's own locking keeps this second connection's close from dropping the
        # locks the store's connection holds in this process (it defers the close)
        db = sqlite3.connect(store.path, timeout=PROBE_WAIT_S, isolation_level=None)
    except sqlite3.Error:
        return False
    try:
        db.execute("BEGIN IMMEDIATE")
        db.execute("ROLLBACK")
    except sqlite3.OperationalError as exc:
        said = str(exc).lower()
        return "locked" in said or "busy" in said
    except sqlite3.Error:
        return False
    finally:
        db.close()
    return False
