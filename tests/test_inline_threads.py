"""The thread pool behind inline python calls: bounded for short calls, growing for
stuck ones, so a call that never returns cannot hold up the others."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from agentcron.actions._inline_threads import InlineThreads
from harness import until


def test_a_call_that_never_returns_does_not_hold_up_the_next() -> None:
    pool = InlineThreads(core=2, patience=0.02, idle_exit=5)
    release = threading.Event()
    done = threading.Event()

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        pool.submit(release.wait, loop)
        pool.submit(release.wait, loop)  # both core threads are now stuck
        pool.submit(done.set, loop)
        await until(done.is_set, timeout=10)

    try:
        asyncio.run(scenario())
        assert pool.size == 3
    finally:
        release.set()


def test_blocking_calls_each_get_a_thread_in_the_end() -> None:
    """Fifty calls that can only finish together (a barrier): the pool must reach fifty
    threads from a core of four, or they would wait for ever."""
    pool = InlineThreads(core=4, patience=0.01, idle_exit=5)
    barrier = threading.Barrier(50, timeout=30)
    finished: list[int] = []

    def job(i: int) -> None:
        barrier.wait()
        finished.append(i)

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        for i in range(50):
            pool.submit(lambda i=i: job(i), loop)
        await until(lambda: len(finished) == 50, timeout=30)

    asyncio.run(scenario())
    assert sorted(finished) == list(range(50))


def test_a_burst_of_short_calls_runs_each_once_and_idle_threads_end() -> None:
    pool = InlineThreads(core=3, patience=0.05, idle_exit=0.2)
    calls: Counter[int] = Counter()
    lock = threading.Lock()

    def job(i: int) -> None:
        with lock:
            calls[i] += 1

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        for i in range(2000):
            pool.submit(lambda i=i: job(i), loop)
        await until(lambda: sum(calls.values()) == 2000, timeout=30)
        await until(lambda: pool.size == 0, timeout=30)

    asyncio.run(scenario())
    assert calls == Counter(range(2000))


def test_a_parked_thread_is_reused() -> None:
    pool = InlineThreads(core=4, patience=0.05, idle_exit=5)
    seen: list[int] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        for k in range(5):
            pool.submit(lambda: seen.append(threading.get_ident()), loop)
            await until(lambda k=k: len(seen) == k + 1 and pool.size == 1, timeout=10)
            await until(lambda: pool.idle == 1, timeout=10)

    asyncio.run(scenario())
    assert len(seen) == 5 and len(set(seen)) == 1


def test_a_closed_loop_is_not_kept_alive_by_its_inline_calls() -> None:
    """Inline calls remember their loop's result hand-off; a loop that has been closed
    (each test, each ``asyncio.run``) must still be freed."""
    import gc
    import weakref

    from agentcron.actions.python_action import _in_thread

    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def call() -> int:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        return int(await _in_thread(lambda: 41)) + 1

    assert asyncio.run(call()) == 42
    assert asyncio.run(call()) == 42
    # the pool thread drops its last call just after handing its result over: on a
    # busy machine that can be a moment after the loop has returned
    deadline = time.monotonic() + 10.0
    while True:
        gc.collect()
        alive = [ref() for ref in loops]
        if alive == [None, None] or time.monotonic() > deadline:
            break
        del alive
        time.sleep(0.01)
    assert alive == [None, None]


def test_short_calls_submitted_together_share_one_woken_thread() -> None:
    """A thread woken for a call that has not begun it yet takes the calls submitted
    after it: waking a thread per call made them queue for the GIL (3,700 wake-ups a
    second for 1,000 calls a second on a 2-core machine)."""
    pool = InlineThreads(core=8, patience=60, idle_exit=5)
    threads: list[int] = []

    # submitted in one step of the loop: the woken thread waits for the GIL meanwhile
    _submit_all(pool, lambda: threads.append(threading.get_ident()), threads, 200, timeout=30)
    # one thread, or two or three if the GIL changed hands while the loop submitted
    assert len(set(threads)) <= 3, len(set(threads))


def test_calls_that_take_a_while_still_run_side_by_side() -> None:
    """Calls that sit in a blocking wait each get a thread of their own within the
    spread (the growth check, at a patience of a minute here, plays no part): eight
    calls that can only finish together, twice (the second time on idle threads)."""
    pool = InlineThreads(core=8, patience=60, idle_exit=5, spread=0.005)
    finished: list[int] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        for round_ in range(2):
            barrier = threading.Barrier(8, timeout=20)
            for i in range(8):
                pool.submit(lambda i=i, b=barrier: (b.wait(), finished.append(i)), loop)
            await until(lambda r=round_: len(finished) == 8 * (r + 1), timeout=30)

    asyncio.run(scenario())
    assert sorted(finished) == sorted(list(range(8)) * 2)
    assert pool.size == 8


def test_calls_that_block_a_few_milliseconds_each_are_spread_over_threads() -> None:
    """Calls of a few ms each keep a thread beginning a call more often than the
    spread: one thread took 300 of 4 ms one after the other (1.3 s, an outside-in
    probe). A last call that took ``slow`` or more spreads the backlog all the same."""
    pool = InlineThreads(core=16, patience=60, idle_exit=5, spread=0.005, slow=0.001)
    threads: list[int] = []

    def job() -> None:
        time.sleep(0.002)  # well under the spread, so the old rule never spread them
        threads.append(threading.get_ident())

    _submit_all(pool, job, threads, 200, timeout=30)
    assert len(set(threads)) >= 8, len(set(threads))


def test_a_call_whose_run_ended_while_it_waited_for_a_thread_is_never_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run that timed out (or was stopped) while its call waited for a thread: the
    call is dropped, not made after the run was recorded ended (and, at a stop, made
    again by the retry), and the task is not held behind it as a call left running."""
    from agentcron.actions import python_action
    from agentcron.actions.python_action import _CallWatch, _in_thread

    pool = InlineThreads(core=1, patience=60, idle_exit=5, spread=60)
    monkeypatch.setattr(python_action, "_THREADS", pool)
    release = threading.Event()
    made: list[str] = []

    async def scenario() -> None:
        first = asyncio.ensure_future(_in_thread(lambda: release.wait(30)))
        await until(lambda: pool.size == 1 and not pool.idle, timeout=10)
        watch = _CallWatch("/home", "late", datetime.now(UTC))
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await _in_thread(lambda: made.append("late"), watch)
        watch.left()  # as the action does when its run ends
        assert python_action.still_running_past_its_run("late") is not None
        release.set()
        assert await first is True
        await until(lambda: pool.idle == 1, timeout=10)
        assert python_action.still_running_past_its_run("late") is None

    asyncio.run(scenario())
    assert made == []


# alone, after the parallel part: beside other tests the machine holds the calls off the
# CPU, and the test can only skip
@pytest.mark.serial
def test_calls_that_compute_for_a_millisecond_stay_on_one_thread() -> None:
    """Calls that hold the GIL gain nothing from more threads, which would only queue
    for it: an outside-in probe saw the pool grow to 100 threads for calls of 1-3 ms
    of CPU. What spreads the backlog is time off the CPU, not time taken."""
    pool = InlineThreads(core=16, patience=60, idle_exit=5, spread=0.005, slow=0.0002)
    threads: list[int] = []
    off_cpu: list[float] = []

    def job() -> None:
        began, cpu = time.monotonic(), time.thread_time()
        end = cpu + 0.001
        while time.thread_time() < end:
            pass
        off_cpu.append(time.monotonic() - began - (time.thread_time() - cpu))
        threads.append(threading.get_ident())

    _submit_all(pool, job, threads, 200, timeout=60)
    if sorted(off_cpu)[len(off_cpu) // 2] >= 0.0002 or max(off_cpu) >= 0.004:
        # a machine that kept the calls' thread waiting for a CPU makes them look
        # blocked (or one of them sitting in its call), and the pool rightly spreads
        # them then
        pytest.skip("the machine held the calls off the CPU: cannot tell here")
    # one thread, give or take one the machine held off the CPU a while
    assert len(set(threads)) <= 4, len(set(threads))


def test_a_check_lost_with_its_loop_does_not_leave_later_calls_waiting() -> None:
    """A loop that ends while a spread check is pending on it (a program may run several
    loops in turn; every test does) took that check with it: the pool went on
    believing one pending, and a call waiting behind a blocked one never got a thread
    (seen as a test's inline run timing out before its call began)."""
    pool = InlineThreads(core=8, patience=60, idle_exit=5, spread=0.005)
    release = threading.Event()
    done: list[str] = []

    async def first_loop() -> None:
        loop = asyncio.get_running_loop()
        pool.submit(lambda: release.wait(30), loop)
        pool.submit(lambda: done.append("b"), loop)  # behind it; the check dies with this loop

    async def second_loop() -> None:
        await asyncio.sleep(1.2)  # the lost check is overdue by more than a second
        loop = asyncio.get_running_loop()
        pool.submit(lambda: release.wait(30), loop)
        pool.submit(lambda: done.append("d"), loop)  # behind a blocked call again
        await until(lambda: "d" in done, timeout=10)

    try:
        asyncio.run(first_loop())
        asyncio.run(second_loop())
    finally:
        release.set()
    assert sorted(done) == ["b", "d"]


def test_a_thread_the_system_would_not_start_does_not_wedge_the_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With no thread to be had (a limit of the system's), the call's submit fails,
    saying so; the pool must not go on counting that thread as on its way, or every
    later call would wait behind it for good."""
    pool = InlineThreads(core=4, patience=60, idle_exit=5, spread=0.005)
    release = threading.Event()
    done: list[str] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        began = threading.Event()
        pool.submit(lambda: (began.set(), release.wait(30)), loop)
        await until(began.is_set, timeout=10)
        with _threads_refused(monkeypatch), pytest.raises(RuntimeError, match="can't start"):
            pool.submit(lambda: done.append("refused"), loop)
        pool.submit(lambda: done.append("later"), loop)
        await until(lambda: "later" in done, timeout=10)

    try:
        asyncio.run(scenario())
    finally:
        release.set()
    assert done == ["later"]


def test_calls_a_check_could_not_start_a_thread_for_wait_and_are_not_lost(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The spread check gives a waiting call a thread, and the system will not start
    one: the call goes back to the backlog (said in the log) and runs when a busy
    thread ends its call, instead of being lost with the check."""
    import logging

    pool = InlineThreads(core=4, patience=60, idle_exit=5, spread=0.3)
    release = threading.Event()
    began = threading.Event()
    done: list[str] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        pool.submit(lambda: (began.set(), release.wait(30)), loop)
        pool.submit(lambda: done.append("waiting"), loop)  # behind the woken thread
        await until(began.is_set, timeout=10)
        with _threads_refused(monkeypatch):
            await until(lambda: "could not start a thread" in caplog.text, timeout=10)
        assert done == [] and pool.size == 1
        release.set()
        await until(lambda: done == ["waiting"], timeout=10)

    try:
        with caplog.at_level(logging.ERROR, logger="agentcron.actions"):
            asyncio.run(scenario())
    finally:
        release.set()


def _submit_all(
    pool: InlineThreads, job: Callable[[], None], done: list[int], count: int, timeout: float
) -> None:
    """Submit ``job`` ``count`` times at once from a loop and wait until each call has
    appended to ``done``."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        for _ in range(count):
            pool.submit(job, loop)
        await until(lambda: len(done) == count, timeout=timeout)

    asyncio.run(scenario())


@contextlib.contextmanager
def _threads_refused(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The system starts no thread meanwhile (a limit of its own, as when it is out of
    memory or at its process limit)."""
    from agentcron.actions import _inline_threads

    real = _inline_threads._thread.start_new_thread

    def refuse(*_: object) -> int:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(_inline_threads._thread, "start_new_thread", refuse)
    try:
        yield
    finally:
        monkeypatch.setattr(_inline_threads._thread, "start_new_thread", real)
