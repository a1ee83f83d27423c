"""Changes of one task made at once, as the HTTP API's pool of threads makes them
(outside-in probe): of three PATCHes of different keys one was lost in half the rounds
(each answered 200, each audited); a PATCH racing a DELETE failed with a 500 or brought
the deleted task back; and two creates of one name were both answered 201."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentcron.clock import FakeClock
from agentcron.service import ConflictError, NotFoundError, Service
from agentcron.store.base import Store

ROUNDS = 15


def _at_once(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run ``calls`` in threads released together; each one's result or exception."""
    gate = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        gate.wait()
        try:
            results[i] = calls[i]()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def _task(command: str = "true") -> dict[str, Any]:
    return {"every": "1h", "command": [command], "paused": True}


def test_patches_of_different_keys_at_once_all_stay(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    service = Service(sqlite_store, home, clock)
    for n in range(ROUNDS):
        name = f"t{n}"
        service.add_task(name, _task())
        patches = [{"retries": 7}, {"description": "set by b"}, {"timeout": "42s"}]
        results = _at_once([lambda p=p, t=name: service.update_task(t, p) for p in patches])
        assert not [r for r in results if isinstance(r, Exception)], results
        spec = service.show_task(name)["spec"]
        assert (spec["retries"], spec.get("description"), spec["timeout"]) == (
            7,
            "set by b",
            42.0,
        ), spec
        updates = [a for a in service.audit(name) if a["action"] == "task.update"]
        assert len(updates) == 3


def test_a_patch_racing_a_delete_leaves_the_task_deleted_and_fails_cleanly(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    service = Service(sqlite_store, home, clock)
    for n in range(ROUNDS):
        name = f"d{n}"
        service.add_task(name, _task())
        calls: list[Callable[[], Any]] = [
            lambda i=i, t=name: service.update_task(t, {"retries": i}) for i in range(5)
        ]
        calls.insert(n % 6, lambda t=name: service.remove(t))
        results = _at_once(calls)
        unexpected = [r for r in results if isinstance(r, Exception)]
        assert all(isinstance(r, NotFoundError) for r in unexpected), unexpected
        assert sqlite_store.get_task(name) is None  # the DELETE answered 200: it is gone
        actions = [a["action"] for a in reversed(service.audit(name))]
        assert actions[-1] == "task.delete", actions  # nothing changed it after


def test_two_creates_of_one_name_at_once_make_one_task(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    service = Service(sqlite_store, home, clock)
    for n in range(ROUNDS):
        name = f"c{n}"
        results = _at_once(
            [lambda i=i, t=name: service.add_task(t, _task(f"c{i}")) for i in range(6)]
        )
        made = [r for r in results if not isinstance(r, Exception)]
        refused = [r for r in results if isinstance(r, Exception)]
        assert len(made) == 1 and all(isinstance(r, ConflictError) for r in refused), results
        creates = [a for a in service.audit(name) if a["action"] == "task.create"]
        assert len(creates) == 1
