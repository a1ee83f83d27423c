"""Daily budgets (issue 14 §4): a slot over a budget is recorded skipped with the reason,
the owner is told once per budget and day, and usage resets at the owner's midnight.

In-process with the fake clock, on SQLite and on PostgreSQL: the engine, the budget gate,
the notifier and the outbox are the daemon's own, wired as the daemon wires them.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from agentcron.clock import FakeClock
from agentcron.engine.budgets import BudgetGate
from agentcron.model import SlotStatus, TaskSpec
from agentcron.model.budget import Budget, BudgetScope, Usage
from agentcron.notify import OutboxSender
from agentcron.notify.notifier import Notifier
from agentcron.policies.budget import (
    REASON_PREFIX,
    BudgetRules,
    budget_day,
    scopes_for,
    spent_on,
    tokens_of,
)
from agentcron.store.base import Store
from agentcron.store.sqlite import SQLiteStore
from conftest import PG_DSN
from fake_openai import FakeOpenAI, completion
from harness import Harness
from notify_rig import HOOK, RecordingChannel


class Rig:
    """Engine -> budget gate -> notifier -> outbox -> a recording channel."""

    def __init__(
        self, store: Store, clock: FakeClock, home: Path, rules: BudgetRules | None = None
    ) -> None:
        self.h = Harness(store, clock, home)
        self.store, self.clock = store, clock
        self.notifier = Notifier(store, clock, [HOOK], "UTC")
        self.notifier.attach(self.h.engine)
        self.gate = BudgetGate(store, "test-node", rules or BudgetRules(), "UTC")
        self.gate.listeners.append(self.notifier.on_budget)
        self.h.engine.gates.append(self.gate.gate)
        self.h.engine.spenders.append(self.gate.spend)
        self.channel = RecordingChannel()
        self.sender = OutboxSender(store, channel_factory=lambda _url: self.channel, clock=clock)

    async def lines(self) -> list[str]:
        await self.sender.drain_once()
        return [m.body for m in self.channel.sent]

    def statuses(self, task: str) -> list[SlotStatus]:
        return [s.status for s in self.h.slots(task)]


def _ok() -> str:
    return "done"


# ---- the pure parts ----------------------------------------------------------------


def test_scopes_narrowest_first_and_only_those_that_cover_the_task() -> None:
    everything = Budget(runs_per_day=100)
    rules = BudgetRules(
        everything=everything,
        agents=(("planner", "agent.planner.", Budget(tokens_per_day=5000)),),
    )
    own = TaskSpec(
        name="agent.planner.news", every="1h", command=["true"], budget={"runs_per_day": 3}
    )
    keys = [s.key for s in scopes_for(own, rules)]
    assert keys == ["task:agent.planner.news", "agent:planner", "global"]
    other = TaskSpec(name="backup", every="1h", command=["true"])
    assert [s.key for s in scopes_for(other, rules)] == ["global"]
    assert scopes_for(other, BudgetRules()) == []


def test_a_budget_needs_a_limit_and_no_negative_one() -> None:
    with pytest.raises(ValueError, match="runs_per_day, tokens_per_day or both"):
        Budget()
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        Budget(runs_per_day=-1)


def test_the_day_is_the_owners_and_resets_at_its_midnight() -> None:
    paris = ZoneInfo("Europe/Paris")
    # 23:30 UTC on 28 March 2026 is 00:30 on the 29th in Paris (DST starts that night)
    day, resets = budget_day(datetime(2026, 3, 28, 23, 30, tzinfo=UTC), paris)
    assert day == "2026-03-29"
    assert resets == datetime(2026, 3, 30, 0, 0, tzinfo=paris)
    assert resets.astimezone(UTC) == datetime(2026, 3, 29, 22, 0, tzinfo=UTC)


def test_spent_on_names_what_ran_out() -> None:
    both = Budget(runs_per_day=2, tokens_per_day=100)
    assert spent_on(Usage(1, 99), both) is None
    assert spent_on(Usage(2, 0), both) == "runs"
    assert spent_on(Usage(0, 100), both) == "tokens"
    assert tokens_of({"prompt": 12, "completion": 30}) == 42
    assert tokens_of({}) == 0
    assert tokens_of({"total": 500}) == 500  # a provider that reports only a total
    assert tokens_of({"prompt": 12, "total": 500}) == 12  # the split wins when given


# ---- the store ---------------------------------------------------------------------


def test_a_run_is_reserved_from_every_scope_or_from_none(store: Store) -> None:
    task = BudgetScope("task:a", "task a", Budget(runs_per_day=5))
    every = BudgetScope("global", "all tasks together", Budget(runs_per_day=2))
    assert store.reserve_run([task, every], "2026-06-01") is None
    assert store.reserve_run([task, every], "2026-06-01") is None
    over = store.reserve_run([task, every], "2026-06-01")
    assert over == (every, Usage(2, 0))
    # the task's own count did not move for the run that did not happen
    assert store.budget_usage(["task:a", "global"], "2026-06-01") == {
        "task:a": Usage(2, 0),
        "global": Usage(2, 0),
    }
    # another day is another budget
    assert store.reserve_run([task, every], "2026-06-02") is None


def spend(store: Store, *entries: tuple[str, str, int]) -> None:
    """Tokens added as a run's end adds them (finish_many's transaction)."""
    from agentcron.store._budget_sql import add_spend

    with store._tx() as db:  # type: ignore[attr-defined]
        add_spend(db, entries)


def test_tokens_add_up_and_a_token_budget_stops_the_next_run(store: Store) -> None:
    scope = BudgetScope("task:llm", "task llm", Budget(tokens_per_day=1000))
    assert store.reserve_run([scope], "2026-06-01") is None
    spend(store, ("task:llm", "2026-06-01", 600))
    assert store.reserve_run([scope], "2026-06-01") is None
    spend(store, ("task:llm", "2026-06-01", 600))
    assert store.reserve_run([scope], "2026-06-01") == (scope, Usage(2, 1200))


def test_told_once_per_budget_and_day(store: Store) -> None:
    from agentcron.model import Message

    msg = Message("t", "b", "a", "opened", "budget", "warning")
    now = datetime(2026, 6, 1, tzinfo=UTC)
    assert store.tell_budget_spent("global", "2026-06-01", [("k", HOOK, msg)], now)
    assert not store.tell_budget_spent("global", "2026-06-01", [("k", HOOK, msg)], now)
    assert store.tell_budget_spent("global", "2026-06-02", [("k", HOOK, msg)], now)
    assert store._q("SELECT COUNT(*) FROM outbox") == [(2,)]  # type: ignore[attr-defined]
    assert store.prune_budget_usage("2026-06-02") == 1
    assert store.budget_usage(["global"], "2026-06-01") == {}


def test_concurrent_reservations_never_pass_the_budget(store: Store) -> None:
    """Two writers (threads here; nodes on PostgreSQL) race for 20 runs: exactly 20 pass."""
    scope = BudgetScope("global", "all tasks together", Budget(runs_per_day=20))
    other: Store
    if isinstance(store, SQLiteStore):
        other = SQLiteStore(store.path)  # a second connection to the same file
    else:
        from agentcron.store.postgres import PostgresStore

        other = PostgresStore(PG_DSN, schema=store.schema)  # type: ignore[attr-defined]
    passed: list[bool] = []
    lock = threading.Lock()

    def reserve(store: Store) -> None:
        for _ in range(25):
            ok = store.reserve_run([scope], "2026-06-01") is None
            with lock:
                passed.append(ok)

    try:
        threads = [threading.Thread(target=reserve, args=(s,)) for s in (store, other)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        other.close()
    assert sum(passed) == 20 and len(passed) == 50
    assert store.budget_usage(["global"], "2026-06-01")["global"].runs == 20


# ---- the engine, end to end in process -----------------------------------------------


def test_slots_over_a_task_budget_are_skipped_with_the_reason_and_told_once_a_day(
    store: Store, clock: FakeClock, home: Path
) -> None:
    async def scenario() -> tuple[list[str], list[str]]:
        rig = Rig(store, clock, home)
        rig.h.add("ping", _ok, every="10m", timezone="UTC", budget={"runs_per_day": 3})
        await rig.h.run_until(clock.now() + timedelta(hours=1, minutes=5), timedelta(minutes=1))
        first_day = await rig.lines()
        # the next day: three runs again, then skipped again, and told again (once)
        await rig.h.run_until(datetime(2026, 6, 2, 1, 0, tzinfo=UTC), timedelta(minutes=5))
        return first_day, await rig.lines()

    first_day, both_days = asyncio.run(scenario())
    slots = sorted(store.slots("ping", limit=1000), key=lambda s: s.scheduled_for)
    day1 = [s for s in slots if s.scheduled_for < datetime(2026, 6, 2, tzinfo=UTC)]
    assert [s.status for s in day1][:3] == [SlotStatus.SUCCEEDED] * 3
    skipped = day1[3:]
    assert skipped and all(s.status is SlotStatus.SKIPPED for s in skipped)
    assert all(s.attempts == 0 and s.started_at is None for s in skipped)
    reason = skipped[0].reason or ""
    assert reason.startswith(REASON_PREFIX + "task ping used 3/3 runs today"), reason
    assert "resets at 2026-06-02 00:00 UTC" in reason
    assert len(first_day) == 1, first_day
    assert first_day[0].startswith("⏸ Daily budget used up: task ping spent 3/3 runs today"), (
        first_day
    )
    assert (
        "until tomorrow 00:00" in first_day[0]
        and "tasks.ping.budget.runs_per_day" in (first_day[0])
    )
    day2 = [s for s in slots if s.scheduled_for >= datetime(2026, 6, 2, tzinfo=UTC)]
    assert [s.status for s in day2][:3] == [SlotStatus.SUCCEEDED] * 3
    assert day2[3].status is SlotStatus.SKIPPED
    assert len(both_days) == 2, both_days
    # budget skips are told by the budget message only: no skip-streak incident
    assert not store.incidents("ping")


def test_agent_and_global_budgets_and_tokens_from_the_recorded_runs(
    store: Store, clock: FakeClock, home: Path
) -> None:
    """Two agent tasks fire together every 10 minutes, 100 tokens a run, under an agent
    budget of 250 tokens: both runs at 00:10 and both at 00:20 start (200 spent when the
    second pair starts), and from 00:30 the agent's slots are skipped; the owner's own
    task goes on, counted by the global budget."""
    rules = BudgetRules(
        everything=Budget(runs_per_day=100),
        agents=(("planner", "agent.planner.", Budget(tokens_per_day=250)),),
    )
    script = [completion("news", prompt_tokens=10, completion_tokens=90) for _ in range(8)]

    async def scenario(base_url: str) -> list[str]:
        rig = Rig(store, clock, home, rules)
        llm = {"base_url": base_url, "model": "fake-model", "prompt": "go"}
        for name in ("agent.planner.a", "agent.planner.b"):
            rig.h.add(name, every="10m", timezone="UTC", llm=llm, retries=0)
        rig.h.add("mine", _ok, every="10m", timezone="UTC")
        await rig.h.run_until(clock.now() + timedelta(minutes=45), timedelta(minutes=1))
        return await rig.lines()

    with FakeOpenAI(script) as fake:
        lines = asyncio.run(scenario(fake.base_url))
        assert len(fake.requests) == 4
    runs = {
        name: [s.status for s in store.slots(name, limit=100)]
        for name in ("agent.planner.a", "agent.planner.b", "mine")
    }
    ran = sum(st.count(SlotStatus.SUCCEEDED) for n, st in runs.items() if n != "mine")
    assert ran == 4, runs
    assert all(st.count(SlotStatus.SKIPPED) >= 1 for n, st in runs.items() if n != "mine")
    assert set(runs["mine"]) == {SlotStatus.SUCCEEDED}, runs
    usage = store.budget_usage(["agent:planner", "global"], "2026-06-01")
    assert usage["agent:planner"] == Usage(runs=4, tokens=400)
    assert usage["global"] == Usage(runs=4 + len(runs["mine"]), tokens=400)
    assert len(lines) == 1 and "agent planner spent 400/250 tokens today" in lines[0], lines
    assert "agents.clients.planner.budget.tokens_per_day" in lines[0]


def test_retries_belong_to_their_run_and_are_not_stopped(
    store: Store, clock: FakeClock, home: Path
) -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("upstream answered HTTP 503 Service Unavailable")
        return "ok"

    async def scenario() -> None:
        rig = Rig(store, clock, home)
        rig.h.add(
            "once",
            flaky,
            every="10m",
            timezone="UTC",
            budget={"runs_per_day": 1},
            retries=3,
            retry_backoff={"base": "10s", "jitter": 0},
        )
        await rig.h.run_until(clock.now() + timedelta(minutes=25), timedelta(seconds=5))

    asyncio.run(scenario())
    first, *later = sorted(store.slots("once", limit=10), key=lambda s: s.scheduled_for)
    assert first.status is SlotStatus.SUCCEEDED and first.attempts == 3
    assert later and {s.status for s in later} == {SlotStatus.SKIPPED}
    assert store.budget_usage(["task:once"], "2026-06-01")["task:once"].runs == 1


def test_a_reloaded_budget_applies_to_the_next_slot(
    sqlite_store: Store, clock: FakeClock, home: Path
) -> None:
    changed_at = clock.now() + timedelta(minutes=25)

    async def scenario() -> None:
        rig = Rig(sqlite_store, clock, home, BudgetRules(everything=Budget(runs_per_day=1)))
        rig.h.add("t", _ok, every="10m", timezone="UTC")
        await rig.h.run_until(changed_at, timedelta(minutes=1))
        rig.gate.configure(BudgetRules(everything=Budget(runs_per_day=10)), "UTC")
        await rig.h.run_until(changed_at + timedelta(minutes=20), timedelta(minutes=1))

    asyncio.run(scenario())
    slots = sorted(sqlite_store.slots("t", limit=100), key=lambda s: s.scheduled_for)
    before = [s.status for s in slots if s.scheduled_for < changed_at]
    after = [s.status for s in slots if s.scheduled_for >= changed_at]
    assert (
        before[0] is SlotStatus.SUCCEEDED and before[1:] and set(before[1:]) == {SlotStatus.SKIPPED}
    ), before
    assert after and set(after) == {SlotStatus.SUCCEEDED}, after


def test_task_budgets_are_read_from_the_stored_specs(store: Store) -> None:
    from agentcron.model import TaskSource

    now = datetime(2026, 6, 1, tzinfo=UTC)
    specs = [
        TaskSpec(name="own", every="1h", command=["true"], budget={"tokens_per_day": 50}),
        TaskSpec(name="none", every="1h", command=["true"]),
        # the words inside a value are not a budget
        TaskSpec(name="wordy", every="1h", command=["echo", '"budget":{"runs_per_day":1}']),
    ]
    for spec in specs:
        store.upsert_task(spec, TaskSource.API, now, None)
    assert store.task_budgets() == {"own": Budget(tokens_per_day=50)}


def test_tokens_are_counted_in_the_transaction_that_records_the_end(store: Store) -> None:
    """What a run spent is written with its end (a listener adding it afterwards lost it
    to a crash in between); an end that is not ours any more counts nothing."""
    from agentcron.model import AttemptOutcome, Finish, NewSlot, TaskSource

    t0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
    for name in ("llm", "other"):  # one run at a time per task: two tasks, two claims
        spec = TaskSpec(name=name, every="1h", command=["true"], budget={"tokens_per_day": 900})
        store.upsert_task(spec, TaskSource.API, t0, t0 + timedelta(hours=1))
        store.add_slot(name, NewSlot(t0), t0)
    claims = {c.slot.task: c for c in store.claim("node-a", t0, t0 + timedelta(hours=1), 2)}
    first, second = claims["llm"], claims["other"]
    done = AttemptOutcome(ok=True, slot_status=SlotStatus.SUCCEEDED, tokens={"completion": 300})
    spent = (("task:llm", "2026-06-01", 300),)
    ends = store.finish_many(
        [
            Finish(first.slot.id, first.attempt.id, "node-a", done, t0, spend=spent),
            # the second's lease is another node's now: its end is refused, so is its spend
            Finish(second.slot.id, second.attempt.id, "node-b", done, t0, spend=spent),
        ]
    )
    assert ends[0] is not None and ends[1] is None
    assert store.budget_usage(["task:llm"], "2026-06-01")["task:llm"].tokens == 300


def test_a_spend_the_gate_works_out_covers_every_budget_over_the_task() -> None:
    from agentcron.model import AttemptOutcome

    rules = BudgetRules(
        everything=Budget(tokens_per_day=10_000),
        agents=(("planner", "agent.planner.", Budget(tokens_per_day=5000)),),
    )
    gate = BudgetGate.__new__(BudgetGate)
    gate.rules, gate.zone = rules, "Asia/Tokyo"
    spec = TaskSpec(name="agent.planner.news", every="1h", command=["true"])
    used = AttemptOutcome(
        ok=True, slot_status=SlotStatus.SUCCEEDED, tokens={"prompt": 10, "completion": 90}
    )
    at = datetime(2026, 6, 1, 16, 0, tzinfo=UTC)  # 01:00 on 2 June in Tokyo
    assert sorted(gate.spend(spec, used, at)) == [
        ("agent:planner", "2026-06-02", 100),
        ("global", "2026-06-02", 100),
    ]
    nothing = AttemptOutcome(ok=True, slot_status=SlotStatus.SUCCEEDED)
    assert gate.spend(spec, nothing, at) == ()


def test_a_spender_that_fails_is_logged_and_the_end_is_recorded_all_the_same(
    store: Store, clock: FakeClock, home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Working out what a run spent must never keep its end from being recorded."""

    def broken(*_args: object) -> tuple[tuple[str, str, int], ...]:
        raise RuntimeError("rules gone")

    async def scenario() -> None:
        rig = Rig(store, clock, home)
        rig.h.engine.spenders.insert(0, broken)
        rig.h.add("job", _ok, every="10m", timezone="UTC")
        await rig.h.run_until(clock.now() + timedelta(minutes=15), timedelta(minutes=1))

    with caplog.at_level("ERROR", logger="agentcron.engine"):
        asyncio.run(scenario())
    assert {s.status for s in store.slots("job", limit=10)} == {SlotStatus.SUCCEEDED}
    assert "could not count what the run of job spent" in caplog.text


def _health(service: Any, task: str) -> tuple[str, str | None]:
    (row,) = [r for r in service.list_tasks() if r["name"] == task]
    shown = service.show_task(task)
    assert (shown["health"], shown["health_detail"]) == (row["health"], row["health_detail"])
    return row["health"], row["health_detail"]


def test_health_says_over_budget_as_the_budget_stands_now(
    store: Store, clock: FakeClock, home: Path
) -> None:
    """Outside-in probe: after the day's reset, a task whose latest slot had been skipped
    still read `over_budget` ("resets at" a time past) until its next run, hours later;
    under a budget used up by other tasks, a task not yet skipped read `ok`."""
    from agentcron._service.base import Defaults
    from agentcron.service import Service

    rules = BudgetRules(everything=Budget(runs_per_day=3))
    anchor = datetime(2026, 6, 1, 3, 0, tzinfo=UTC)

    async def scenario() -> Any:
        rig = Rig(store, clock, home, rules)
        rig.h.add("six", _ok, every="6h", anchor=anchor, timezone="UTC", budget={"runs_per_day": 1})
        rig.h.add("busy", _ok, every="10m", timezone="UTC")
        rig.h.add("noon", _ok, cron="0 12 * * *", timezone="UTC")
        await rig.h.run_until(datetime(2026, 6, 1, 10, 0, tzinfo=UTC), timedelta(minutes=10))
        return rig.h, Service(store, home, clock, defaults=Defaults("UTC", None, rules))

    h, service = asyncio.run(scenario())
    h.ticking()  # a daemon ticks
    assert _health(service, "six")[0] == "over_budget"  # 09:00 skipped: 1/1 runs
    word, detail = _health(service, "noon")  # not due yet, but all tasks' budget is spent
    assert word == "over_budget", detail
    assert detail == (
        "the daily budget of all tasks together is used up: its next runs are skipped "
        "until it resets at 2026-06-02T00:00:00+00:00"
    ), detail
    clock.set(datetime(2026, 6, 2, 0, 30, tzinfo=UTC))  # reset; "six" next runs at 03:00
    h.ticking()
    assert _health(service, "six") == ("ok", None)
    assert _health(service, "noon") == ("ok", None)
    listed = {r["name"] for r in service.list_tasks(health="over_budget")}
    assert listed == set(), listed
