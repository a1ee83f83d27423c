"""`doctor`'s tasks line is not ✔ while a full disk fails every run (outside-in probe:
"✔ tasks: 2 task(s), none failing" beside the open storage incident: the runs fail
under the home's incident, and no task has one of its own)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from agentcron.clock import FakeClock
from agentcron.home import hostname
from agentcron.interfaces.doctor import diagnose
from agentcron.model import Incident, IncidentKind
from agentcron.store.sqlite import SQLiteStore
from harness import Harness


def _home(tmp_path: Path, storage_open: bool) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    store = SQLiteStore(home / "agentcron.db")
    h = Harness(store, clock, home)
    h.add("a", command=["echo", "a"], every="1h")
    h.add("b", command=["echo", "b"], every="1h")
    if storage_open:
        incident = Incident(
            task=f"home:{hostname()}",
            kind=IncidentKind.STORAGE,
            opened_at=clock.now(),
            escalated=True,
            failed_runs=4,
            summary="a, b",
        )
        store.save_incidents([incident], [], clock.now())
    store.close()
    return home


def _tasks_check(tmp_path: Path, storage_open: bool) -> dict[str, str]:
    home = _home(tmp_path, storage_open)
    report = diagnose(tmp_path / "agentcron.yaml", home, None)
    [check] = [c for c in report["checks"] if c["name"] == "tasks"]
    return check


def test_the_tasks_line_names_the_open_storage_incident(tmp_path: Path) -> None:
    check = _tasks_check(tmp_path, storage_open=True)
    assert check["status"] == "warn", check
    assert "none failing" not in check["message"]
    assert "runs of 2 task(s) (a, b) fail: agentcron cannot write runs' files" in check["message"]


def test_without_it_the_tasks_line_is_still_ok(tmp_path: Path) -> None:
    check = _tasks_check(tmp_path, storage_open=False)
    assert check["status"] == "ok" and "none failing" in check["message"], check
