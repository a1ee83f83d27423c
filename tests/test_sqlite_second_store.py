"""A second store on the daemon's SQLite file, in the daemon's own process (the HTTP API
opens one): it must not take away the locks the daemon's connection holds.

POSIX record locks belong to a process, not to a file descriptor: closing any
descriptor of the file drops them all. Opening a store read the file's header with a
plain open and close, so with the API on, the daemon's connection lost its locks; the
next CLI command, closing its own connection, found itself the last user of the file,
checkpointed it and deleted its write-ahead log under the daemon (outside-in probe). The
CLI and the daemon then each wrote where the other could not see: a pause and a trigger
the CLI confirmed were lost, `list` showed old runs as `ok`.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from agentcron.model import TaskSource, TaskSpec
from agentcron.store.sqlite import SQLiteStore

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)

# What a CLI command does to the file: open it, read, close (another process).
_CLI = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
print(db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0])
db.close()
"""


def _cli_reads(path: Path) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _CLI, str(path)], capture_output=True, text=True, check=True
    )
    return int(out.stdout)


def test_a_second_store_in_the_process_leaves_the_first_ones_log_in_place(tmp_path: Path) -> None:
    path = tmp_path / "agentcron.db"
    daemon = SQLiteStore(path)
    try:
        daemon.upsert_task(TaskSpec(name="a", every="1h", command=["true"]), TaskSource.API, T0, T0)
        api = SQLiteStore(path)  # the API's store, opened by the daemon's process
        try:
            wal = Path(f"{path}-wal")
            assert wal.exists()
            assert _cli_reads(path) == 1
            assert wal.exists(), "a CLI command deleted the daemon's write-ahead log"
            # and what either writes next is seen by the other, and by the next command
            daemon.upsert_task(
                TaskSpec(name="b", every="1h", command=["true"]), TaskSource.API, T0, T0
            )
            assert _cli_reads(path) == 2
            assert {t.name for t in api.list_tasks()} == {"a", "b"}
        finally:
            api.close()
        assert wal.exists()  # the daemon's connection is still open
        assert _cli_reads(path) == 2
    finally:
        daemon.close()
