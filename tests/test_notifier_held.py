"""Notices whose working out or writing fails are kept and told later, never lost.

The notifier reads and writes the database for each ended run, each report of missed
runs and each provider's news. With the database away for a moment, a batch of ended
runs was dropped whole (a failed run's incident and message with it), a report of
missed runs was dropped, and a provider's "answering again" was lost, which left its
incident open for good (every later outage of that provider then went untold)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agentcron.clock import FakeClock
from agentcron.model import IncidentKind, Slot, SlotStatus
from agentcron.model.provider import ProviderNews, ProviderState
from agentcron.notify.notifier import Notifier
from agentcron.store.sqlite import SQLiteStore
from faulty_store import FaultyStore
from harness import Harness

T0 = datetime(2026, 6, 1, tzinfo=UTC)
URL = "json://localhost/x"


def ok() -> str:
    return "fine"


def boom() -> None:
    raise RuntimeError("broken")


class Rig:
    def __init__(self, tmp_path: Path) -> None:
        self.clock = FakeClock(T0)
        self.store = FaultyStore(SQLiteStore(tmp_path / "agentcron.db"))
        self.h = Harness(self.store, self.clock, tmp_path)  # type: ignore[arg-type]
        self.notifier = Notifier(self.store, self.clock, [URL])  # type: ignore[arg-type]
        self.notifier.attach(self.h.engine)
        self.titles: list[str] = []
        self.bodies: list[str] = []
        save = self.store._inner.save_incidents

        def spy(changed: Any, messages: Any, now: Any) -> Any:
            result = save(changed, messages, now)
            self.titles.extend(m[2].title for m in messages)
            self.bodies.extend(m[2].body for m in messages)
            return result

        self.store._inner.save_incidents = spy  # type: ignore[method-assign]

    def tick(self) -> None:
        asyncio.run(self.h.tick())

    def by_hand(self) -> Rig:
        """Held ends worked out only when the test says (housekeeping at the next tick
        would otherwise get to them first)."""
        self.h.engine.housekeeping.remove(self.notifier.retry_held)
        return self

    def failed_run_held(self, task: str, *methods: str, **fault: Any) -> None:
        """A run of ``task`` (added, failing) ends while ``methods`` of the store fail."""
        self.h.add(task, boom, every="1m", retries=0)
        self.clock.advance(timedelta(minutes=1))
        self.store.fail(*methods, **fault)
        self.tick()


def test_a_batch_whose_reads_fail_is_told_at_the_next_housekeeping(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.h.add("good", ok, every="1m")
    rig.h.add("bad", boom, every="1m", retries=0)
    rig.clock.advance(timedelta(minutes=1))
    # every read and write of the notifier fails for the first pass
    rig.store.fail("tasks_with_open_incidents", "open_incidents", times=2)
    rig.tick()
    assert [s.status for s in rig.h.slots("bad")] == [SlotStatus.FAILED]
    rig.store.clear("tasks_with_open_incidents", "open_incidents")
    assert rig.notifier._held  # kept, not dropped
    rig.notifier.retry_held(rig.clock.now())
    assert IncidentKind.FAILURE in rig.store.open_incidents("bad")
    assert any(t.startswith("✖ bad failed") for t in rig.titles), rig.titles
    assert not rig.notifier._held


def test_a_held_end_superseded_by_a_later_told_one_is_dropped_and_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Told after the task's next success, an old failure would reopen what is over."""
    rig = Rig(tmp_path).by_hand()  # worked out after the next run's end was told
    rig.failed_run_held("flaky", "open_incidents", times=1)
    assert len(rig.notifier._held) == 1
    rig.h.registry.register_callable("tests:flaky", ok)  # the task works again
    rig.clock.advance(timedelta(minutes=1))
    rig.tick()
    with caplog.at_level(logging.WARNING):
        rig.notifier.retry_held(rig.clock.now())
    assert "1 held run end(s) not told: a later run of the same task came first" in caplog.text
    assert rig.store.open_incidents("flaky") == {}
    assert not rig.notifier._held


def test_a_report_of_missed_runs_that_cannot_be_written_is_kept(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    spec = rig.h.add("nightly", ok, cron="0 3 * * *")
    missed = Slot(
        id=1, task="nightly", scheduled_for=T0, status=SlotStatus.MISSED, reason="daemon down"
    )
    rig.notifier.on_recorded_slot(spec, missed)
    rig.clock.advance(timedelta(seconds=5))
    rig.store.fail("save_incidents", times=1)
    with pytest.raises(Exception, match="database is locked"):
        rig.notifier.report_missed(rig.clock.now())
    rig.notifier.report_missed(rig.clock.now())
    assert any("did not run" in t for t in rig.titles), rig.titles


def test_a_provider_answering_again_is_told_when_its_first_write_fails(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    clock, notifier = rig.clock, rig.notifier
    state = ProviderState("api.x", "api.x", clock.now() + timedelta(minutes=5), "429", clock.now())

    def news(what: str) -> None:
        notifier.on_provider(ProviderNews(what, state, "t1", clock.now()))
        clock.advance(timedelta(seconds=2))

    news("refused")
    notifier.report_providers(clock.now())
    news("answered")
    rig.store.fail("save_incidents", times=1)
    with pytest.raises(Exception, match="database is locked"):
        notifier.report_providers(clock.now())
    notifier.report_providers(clock.now())
    assert rig.titles == ["⚠ api.x is refusing calls", "✔ api.x is answering again"]
    assert IncidentKind.PROVIDER not in rig.store.open_incidents("provider:api.x")


def test_a_providers_refusal_lasted_until_it_answered_not_until_the_report(
    tmp_path: Path,
) -> None:
    """Outside-in probe: a refusal of 15 s was told "answering again after 22s", the
    time counted to when the report was written."""
    rig = Rig(tmp_path)
    clock, notifier = rig.clock, rig.notifier
    began = clock.now()
    state = ProviderState("api.x", "api.x", began + timedelta(seconds=10), "429", began)
    notifier.on_provider(ProviderNews("refused", state, "t1", began))
    clock.advance(timedelta(seconds=2))
    notifier.report_providers(clock.now())
    clock.set(began + timedelta(seconds=15))
    notifier.on_provider(ProviderNews("answered", state, "t1", clock.now()))
    clock.set(began + timedelta(seconds=22))  # the report comes later than the answer
    notifier.report_providers(clock.now())
    assert rig.bodies[-1].startswith("✔ api.x is answering again after 15s;"), rig.bodies


def test_a_stop_writes_what_the_notifier_still_gathers(tmp_path: Path) -> None:
    """Missed runs wait a second or two to settle into one message; a stop within
    that wait writes them for its final drain (they are not reported again)."""
    from agentcron.daemon import Daemon, DaemonOptions

    rig = Rig(tmp_path)
    spec = rig.h.add("nightly", ok, cron="0 3 * * *")
    missed = Slot(
        id=1, task="nightly", scheduled_for=T0, status=SlotStatus.MISSED, reason="daemon down"
    )
    rig.notifier.on_recorded_slot(spec, missed)
    state = ProviderState("api.x", "api.x", T0 + timedelta(minutes=5), "429", T0)
    rig.notifier.on_provider(ProviderNews("refused", state, "t1", T0))
    daemon = Daemon(DaemonOptions(config_path=None, home=tmp_path / "home"), clock=rig.clock)
    daemon.notifier = rig.notifier
    daemon._settle_notices()  # no time has passed: nothing had settled
    assert any("did not run" in t for t in rig.titles), rig.titles
    # a provider's state is in the database, learnt again by the next node to run; news
    # told at a stop may be older than what another node told since
    assert "⚠ api.x is refusing calls" not in rig.titles


def test_a_notice_that_always_fails_is_given_up_after_its_tries_and_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug (not an outage: housekeeping runs only while ticks work) must not be
    retried for ever with a traceback each time."""
    from agentcron.notify.notifier import MAX_TRIES

    rig = Rig(tmp_path).by_hand()
    rig.failed_run_held("bad", "open_incidents", error=lambda: KeyError("a bug of ours"))
    for _ in range(MAX_TRIES + 2):
        rig.notifier.retry_held(rig.clock.now())
    assert not rig.notifier._held and not rig.notifier._told_end
    assert caplog.text.count("Traceback") == 2  # the first try's, the retries' first
    assert f"gave up telling the end of bad (slot 1, failed) after {MAX_TRIES} tries" in (
        caplog.text
    )


def test_a_stop_names_each_end_it_could_not_tell(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from agentcron.daemon import Daemon, DaemonOptions

    rig = Rig(tmp_path).by_hand()
    rig.failed_run_held("bad", "open_incidents")
    daemon = Daemon(DaemonOptions(config_path=None, home=tmp_path / "home"), clock=rig.clock)
    daemon.notifier = rig.notifier
    daemon._settle_notices()
    assert "stopping without telling the end of bad (slot 1, failed at" in caplog.text


def test_a_notice_the_database_refuses_is_not_given_up_however_long_it_lasts(
    tmp_path: Path,
) -> None:
    """A full disk lets ticks' reads through (housekeeping runs) and refuses writes:
    not a bug to give up on, or the failure would never be told."""
    from agentcron.notify.notifier import MAX_TRIES

    rig = Rig(tmp_path).by_hand()
    rig.failed_run_held(
        "bad", "save_incidents", error=lambda: sqlite3.OperationalError("disk is full")
    )
    for _ in range(MAX_TRIES * 2):
        rig.notifier.retry_held(rig.clock.now())
    assert len(rig.notifier._held) == 1
    rig.store.clear("save_incidents")
    rig.notifier.retry_held(rig.clock.now())
    assert any(t.startswith("✖ bad failed") for t in rig.titles), rig.titles


def test_held_ends_are_told_newest_per_task_so_a_held_success_cannot_hide_a_later_failure(
    tmp_path: Path,
) -> None:
    """A success held longer than a later failure of the same task must not be told
    after it ("recovered" while it fails); of a task's held ends only the newest is
    worked out."""
    rig = Rig(tmp_path).by_hand()
    rig.failed_run_held("flaky")  # 00:01 fails: told (no fault), incident open
    (flaky,) = [t.spec for t in rig.store.list_tasks() if t.name == "flaky"]
    assert IncidentKind.FAILURE in rig.store.open_incidents("flaky")
    rig.h.registry.register_callable(str(flaky.python), ok)
    rig.store.fail("tasks_with_open_incidents", "open_incidents")
    rig.clock.advance(timedelta(minutes=1))
    rig.tick()  # 00:02 succeeds: held
    rig.notifier.retry_held(rig.clock.now())  # still refused: held again
    rig.h.registry.register_callable(str(flaky.python), boom)
    rig.clock.advance(timedelta(minutes=1))
    rig.tick()  # 00:03 fails: held
    rig.store.clear("tasks_with_open_incidents", "open_incidents")
    rig.notifier.retry_held(rig.clock.now())
    assert [s.status for s in rig.h.slots("flaky")] == [
        SlotStatus.FAILED,
        SlotStatus.SUCCEEDED,
        SlotStatus.FAILED,
    ]
    assert IncidentKind.FAILURE in rig.store.open_incidents("flaky")
    assert not any("recovered" in t or "running again" in t for t in rig.titles), rig.titles


def test_a_provider_incident_ends_once_every_task_that_waited_is_paused_or_removed(
    tmp_path: Path,
) -> None:
    """Outside-in probe: a provider refused a task, the task was paused and then removed,
    and the provider's incident stayed open for good: `health` counted it, and nothing
    would ever call the provider to end it. Ended without a word once no task of it is
    left to wait (a task still scheduled keeps it open: its next call tells)."""
    rig = Rig(tmp_path)
    clock, notifier = rig.clock, rig.notifier
    rig.h.add("t1", ok, every="1h")
    rig.h.add("t2", ok, every="1h")
    state = ProviderState("api.x", "api.x", clock.now() + timedelta(minutes=5), "429", clock.now())
    for task in ("t1", "t2"):
        notifier.on_provider(ProviderNews("refused", state, task, clock.now()))
    clock.advance(timedelta(seconds=2))
    notifier.report_providers(clock.now())
    assert rig.titles == ["⚠ api.x is refusing calls"]
    rig.h.service.pause("t1")
    clock.advance(timedelta(minutes=2))
    notifier.report_providers(clock.now())
    assert IncidentKind.PROVIDER in rig.store.open_incidents("provider:api.x")  # t2 waits
    rig.h.service.remove("t2")
    clock.advance(timedelta(minutes=2))
    notifier.report_providers(clock.now())
    assert IncidentKind.PROVIDER not in rig.store.open_incidents("provider:api.x")
    assert rig.titles == ["⚠ api.x is refusing calls"]  # without a word
