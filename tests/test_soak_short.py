"""The chaos soak's CI-sized SQLite run: kill -9 of a real daemon, checked from outside.

``bench/soak.py --short --scenario sqlite-kill`` starts ``agentcron run`` as a user would,
kills it with SIGKILL at random intervals and restarts it, then proves from the database
and the tasks' own traces that no slot was lost, none ran twice at once, no finished run
was redone, none is left unfinished and no message was sent twice. The PostgreSQL
scenario runs too when the test database answers (``AGENTCRON_TEST_PG``, as the other
PostgreSQL tests; with ``AGENTCRON_REQUIRE_PG=1`` an unreachable server fails the test).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import pg_available, require_pg

SOAK = Path(__file__).resolve().parent.parent / "bench" / "soak.py"


@pytest.mark.slow
@pytest.mark.serial
@pytest.mark.timeout(260)
def test_soak_short() -> None:
    """One soak process, about 60-130 s: sqlite-kill alone (40 s of faults), or with
    PostgreSQL reachable sqlite-kill and pg-nodes (16 s of faults each); its end waits up
    to 75 s more for the messages a channel's posts-a-minute bound held back."""
    scenarios = "sqlite-kill"
    if pg_available() is None:
        scenarios += ",pg-nodes"
    elif os.environ.get("AGENTCRON_REQUIRE_PG") == "1":
        require_pg()  # fails the test with the reason
    res = subprocess.run(
        [sys.executable, str(SOAK), "--short", "--scenario", scenarios],
        capture_output=True,
        text=True,
        timeout=250,
    )
    assert res.returncode == 0, f"{res.stdout}\n{res.stderr[-4000:]}"
    for name in scenarios.split(","):
        assert f"\n{name} " in res.stdout, res.stdout
