"""The Python API: decorator registration, validation with the config file's rules,
and the same engine underneath."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agentcron import ConfigError, Scheduler
from agentcron.model import Slot, TaskSource
from agentcron.retention import prune_outputs
from agentcron.store.sqlite import SQLiteStore
from harness import run_scheduler_until, until


def test_decorator_registers_a_validated_task(tmp_path: Path) -> None:
    sched = Scheduler(home=tmp_path, timezone="UTC")

    @sched.task(cron="@daily", retries=2, timeout="20m")
    def nightly_report() -> str:
        return "ok"

    spec = sched.tasks["nightly-report"]
    assert spec.cron == "0 0 * * *" and spec.retries == 2
    assert spec.timeout.total_seconds() == 1200 and spec.isolation == "inline"
    with pytest.raises(ConfigError) as err:
        sched.add("bad", lambda: None, every="5 parsecs")
    assert "tasks.bad.every" in str(err.value)
    with pytest.raises(ConfigError) as err:
        sched.add("nightly-report", lambda: None, every="1h")
    assert "registered twice" in str(err.value)
    with pytest.raises(ConfigError) as err:
        sched.add("chat", lambda: None, every="1h", deliver=["nosuchscheme://x"])
    assert "tasks.chat.deliver" in str(err.value)


@pytest.mark.slow
def test_scheduler_runs_code_tasks_on_the_real_engine(tmp_path: Path) -> None:
    calls: list[float] = []
    sched = Scheduler(home=tmp_path / "home", timezone="UTC")

    @sched.task(every="1s")
    def tick() -> str:
        calls.append(time.monotonic())
        return "tick"

    run_scheduler_until(sched, lambda: len(calls) >= 2)
    store = SQLiteStore(tmp_path / "home" / "agentcron.db")
    try:
        rec = store.get_task("tick")
        assert rec is not None and rec.source.value == "code"
        slots = store.slots("tick", limit=10)
        assert any(s.status.value == "succeeded" for s in slots)
        assert len({s.scheduled_for for s in slots}) == len(slots)
    finally:
        store.close()


def test_retention_prunes_old_outputs_but_keeps_pending_deliveries(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite")
    sched = Scheduler(home=tmp_path)
    spec = sched.add("story", command=["true"], every="1h", keep_outputs="1d")
    store.upsert_task(spec, TaskSource.API, datetime.now(UTC), None)
    folder = tmp_path / "outputs" / "story"
    folder.mkdir(parents=True)
    old, kept, fresh = folder / "old.md", folder / "kept.md", folder / "fresh.md"
    for p in (old, kept, fresh):
        p.write_text("x")
    now = time.time()
    os.utime(old, (now - 3 * 86400, now - 3 * 86400))
    os.utime(kept, (now - 3 * 86400, now - 3 * 86400))
    (tmp_path / "outputs" / "gone-task").mkdir()
    removed = prune_outputs(tmp_path, store.get_task, {str(kept)}, now)
    store.close()
    assert removed == 1
    assert not old.exists() and kept.exists() and fresh.exists()


@pytest.mark.slow
def test_isolation_process_runs_a_decorated_function_in_the_worker_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "isojobs.py").write_text(
        "import os\n\ndef where() -> str:\n    return str(os.getpid())\n"
    )
    monkeypatch.chdir(tmp_path)  # the pool imports targets from the working folder
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "isojobs", raising=False)
    import isojobs  # type: ignore[import-not-found]

    sched = Scheduler(home=tmp_path / "home", timezone="UTC")
    sched.add("where", isojobs.where, every="1s", isolation="process", python="isojobs:where")
    db = tmp_path / "home" / "agentcron.db"

    def succeeded() -> list[Slot]:
        if not db.exists():
            return []
        store = SQLiteStore(db)
        try:
            return [s for s in store.slots("where", limit=5) if s.status.value == "succeeded"]
        finally:
            store.close()

    run_scheduler_until(sched, lambda: bool(succeeded()), timeout=60)
    slot = succeeded()[0]
    assert slot.output_path is not None
    pid = int(Path(slot.output_path).read_text().strip())
    assert pid != os.getpid()  # ran in a pool worker process, not inline


def test_the_schedulers_time_zone_is_kept_with_its_tasks_and_checked_at_once() -> None:
    """`agentcron list` and `next` read a code task's schedule in the Scheduler's zone
    (issue 12 finding 8), and an unknown zone is refused when the Scheduler is made."""
    import pytest

    from agentcron.config import ConfigError
    from agentcron.scheduler import Scheduler

    sched = Scheduler(timezone="Europe/Berlin", home="/tmp/agentcron-unused-home")
    assert sched.add("nightly", lambda: "x", cron="0 2 * * *").timezone == "Europe/Berlin"
    assert sched.add("utc", lambda: "x", cron="0 2 * * *", timezone="UTC").timezone == "UTC"
    with pytest.raises(ConfigError, match="timezone: unknown time zone 'Mars/Base'"):
        Scheduler(timezone="Mars/Base")


def test_a_task_no_longer_registered_in_code_leaves_the_schedule(tmp_path: Path) -> None:
    """Probe: a task taken out of the program (or its function renamed) kept firing and
    failing at every period, told as "the function raised AttributeError"."""

    def run(sched: Scheduler) -> None:
        async def scenario() -> None:
            stop = asyncio.Event()
            runner = asyncio.create_task(sched.run_async(stop))
            try:
                await until(lambda: True, timeout=1)
                await asyncio.sleep(0.5)
            finally:
                stop.set()
                await asyncio.wait_for(runner, 30)

        asyncio.run(scenario())

    first = Scheduler(home=tmp_path / "home", timezone="UTC")
    first.add("keep", lambda: "k", every="1h")
    first.add("dropped", lambda: "d", every="1h")
    run(first)
    second = Scheduler(home=tmp_path / "home", timezone="UTC")
    second.add("keep", lambda: "k", every="1h")
    run(second)
    store = SQLiteStore(tmp_path / "home" / "agentcron.db")
    try:
        assert store.task_names() == ["keep"]
        assert store.task_names(TaskSource.CODE.value) == ["keep"]
    finally:
        store.close()


def test_a_process_isolated_function_a_worker_cannot_import_is_refused_at_once() -> None:
    """Probe: accepted, then every run failed as "the function raised AttributeError"."""
    sched = Scheduler(timezone="UTC")

    def inner() -> str:
        return "x"

    with pytest.raises(ConfigError, match=r"tasks\.inner\.isolation: a worker process cannot"):
        sched.add("inner", inner, every="1h", isolation="process")
    main_like = type(inner)(inner.__code__, {"__name__": "__main__"}, "work")
    main_like.__module__, main_like.__qualname__ = "__main__", "work"
    with pytest.raises(ConfigError, match="__main__:work"):
        sched.add("main", main_like, every="1h", isolation="process")
    sched.add("fine", inner, every="1h")  # inline: called in this process


def test_a_scheduler_in_a_thread_is_stopped_cleanly_by_stop(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A program that runs its Scheduler in a thread: SIGTERM cannot be caught there
    (said once), and ``Scheduler.stop()`` from the main thread stops it as SIGTERM
    would: the run in progress ends recorded, the node is recorded stopped."""
    import threading

    from agentcron.service import Service

    home = tmp_path / "home"
    started = threading.Event()
    sched = Scheduler(home=home, timezone="UTC")

    @sched.task(every="1h", timeout="30s")
    def slow() -> str:
        started.set()
        time.sleep(0.5)
        return "done"

    assert sched.stop() is False  # not running yet
    errors: list[BaseException] = []

    def body() -> None:
        try:
            sched.run()
        except BaseException as exc:  # handed to the test
            errors.append(exc)

    def trigger_once_registered() -> bool:
        if sched._running is None or not (home / "agentcron.db").exists():
            return False
        store = SQLiteStore(home / "agentcron.db")
        try:
            if store.get_task("slow") is None:
                return False
            Service(store, home).trigger("slow")
            return True
        finally:
            store.close()

    caplog.set_level("WARNING")
    runner = threading.Thread(target=body)
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while not trigger_once_registered() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started.wait(30), "the triggered run did not start"
        assert sched.stop() is True
        runner.join(30)
        assert not runner.is_alive()
    finally:
        if runner.is_alive():
            sched.stop()
            runner.join(30)
    assert errors == []
    assert "cannot catch SIGTERM here" in caplog.text
    store = SQLiteStore(home / "agentcron.db")
    try:
        [slot] = store.slots("slow", limit=10)
        assert slot.status.value == "succeeded"  # waited for and recorded
        assert all(n.stopped_at is not None for n in store.nodes())
    finally:
        store.close()
    assert sched.stop() is False  # stopped


def test_a_partial_or_a_callable_object_is_a_task_of_its_own(tmp_path: Path) -> None:
    """Outside-in probe: `sched.add("p", functools.partial(f, 1))` and a callable object
    raised AttributeError ('__qualname__') from inside agentcron."""
    import functools

    class Ping:
        def __call__(self) -> str:
            return "pong"

    sched = Scheduler(home=tmp_path, timezone="UTC")
    part = sched.add("part", functools.partial(str, 1), every="1h")
    obj = sched.add("obj", Ping(), every="1h")
    assert part.python == "__agentcron__:part" and obj.python == "__agentcron__:obj"
    assert sched.callables["__agentcron__:part"]() == "1"


def test_a_task_added_while_it_runs_and_run_inside_a_loop_say_what_to_do(
    tmp_path: Path,
) -> None:
    """Outside-in probe: a task added while the scheduler ran was accepted, never ran
    and was shown nowhere; `sched.run()` inside a running loop failed deep in asyncio
    with a chain of tracebacks and warnings."""
    sched = Scheduler(home=tmp_path / "home", timezone="UTC")
    sched.add("early", lambda: "ok", every="1h")

    async def scenario() -> None:
        with pytest.raises(RuntimeError, match=r"running event loop: there, use `await sched"):
            sched.run()
        stop = asyncio.Event()
        runner = asyncio.create_task(sched.run_async(stop))
        try:
            await until(lambda: sched._running is not None, timeout=30)
            with pytest.raises(RuntimeError, match="this scheduler is running"):
                sched.add("late", lambda: "late", every="2s")
            assert "late" not in sched.tasks
        finally:
            stop.set()
            await asyncio.wait_for(runner, 30)
        sched.add("late", lambda: "late", every="2s")  # stopped: registered for the next run

    asyncio.run(scenario())


def test_bad_defaults_are_refused_where_they_are_given(tmp_path: Path) -> None:
    """Outside-in probe: `Scheduler(defaults={"retrys": 3, "retries": -1})` was taken,
    and its problems came only with the first task, from deep inside `add`."""
    with pytest.raises(ConfigError) as caught:
        Scheduler(home=tmp_path, defaults={"retrys": 3, "retries": -1})
    said = str(caught.value)
    assert "defaults.retrys: unknown key 'retrys' (did you mean 'retries'?)" in said
    assert "defaults.retries: must be greater than or equal to 0" in said
    assert said.count("defaults.retries:") == 1  # once, not once per check
    assert Scheduler(home=tmp_path, defaults={"retries": 5}).defaults == {"retries": 5}
