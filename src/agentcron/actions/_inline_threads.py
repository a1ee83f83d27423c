"""The threads that run inline python calls.

Not the loop's shared executor, whose few threads a call that never returns would
hold forever, and not a thread per call either: in a burst of thousands of short
calls, every extra runnable thread competes with the scheduler loop for the GIL,
and starting one makes the loop wait for it. So:

* up to ``core`` threads start on demand and are reused. A call goes to an idle
  thread, unless a thread woken for an earlier call has not begun it yet: then it
  waits in a backlog that the busy threads drain in order. Short calls submitted
  together are run by one woken thread, one after the other, instead of waking a
  thread each that would then queue for the GIL (on a 2-core machine, 1,000 trivial
  calls a second woke the process 3,700 times a second that way, against 400);
* calls that take a while still run side by side: a check on the loop, ``spread``
  after a call had to wait, gives each waiting call a thread of its own (up to
  ``core``) when no thread has begun a call for ``spread`` (the busy threads sit in
  their calls), or when the recent calls spent ``slow`` or more each off the CPU
  (the median of the last few: calls that block a little each, which one thread
  would take one after the other, 300 calls of 4 ms in 1.3 s as an outside-in probe
  found). Time off the CPU, not time taken: calls that compute for a millisecond
  hold the GIL, so more threads would only queue for it (an outside-in probe saw the
  pool grow to 100 threads for them), and a trivial call now and then held up by
  the GIL must not make the next backlog spread;
* the pool grows past ``core`` when calls are *stuck*, not when they are merely
  many: a check on the loop, ``patience`` after a call had to wait at ``core``, adds
  one thread for every busy thread that has been in the same call for at least
  ``patience``, at most ``core`` per check. A call that never returns therefore
  costs its thread and delays others by about ``patience``; a pool of blocking calls
  grows by ``core`` threads a check until each has a thread. The cap is there
  because "in the same call for a while" also describes a thread that merely waits
  for the GIL while the loop runs a long tick; growing by every such thread at once
  could pile up threads that then keep the loop from the GIL;
* threads are daemon threads (they cannot keep the process alive), and one that
  has been idle for ``idle_exit`` seconds ends.
"""

from __future__ import annotations

import _thread
import asyncio
import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable

Job = Callable[[], None]

log = logging.getLogger("agentcron.actions")


class _Worker:
    __slots__ = ("busy_since", "job", "wake")

    def __init__(self, job: Job) -> None:
        self.job: Job | None = job
        self.busy_since = time.monotonic()
        self.wake = threading.Lock()  # held while parked; released to hand over a job
        self.wake.acquire()


class InlineThreads:
    def __init__(
        self,
        core: int = 32,
        patience: float = 0.1,
        idle_exit: float = 60.0,
        spread: float = 0.005,
        slow: float = 0.0002,
    ) -> None:
        self.core = core
        self.patience = patience
        self.idle_exit = idle_exit
        self.spread = spread
        self.slow = slow
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []  # parked, newest last (reused first: warm)
        self._busy: set[_Worker] = set()
        self._backlog: collections.deque[tuple[float, Job]] = collections.deque()
        # when the pending growth and spread checks are due (monotonic; None: none is).
        # A check that is a second overdue is taken for lost: its loop has ended (a
        # program may run several loops in turn, each test does) or is stuck, and a new
        # one is asked of the loop at hand; a lost check left for pending made every
        # later backlog wait for a busy thread to end its call, for good.
        self._check_due: float | None = None
        self._spread_due: float | None = None
        self._waking = 0  # threads handed a call that have not begun it yet
        self._last_begun = 0.0  # when a thread last began a call (monotonic)
        # seconds the last calls spent off the CPU (blocked, or waiting for the GIL)
        self._off_cpu: collections.deque[float] = collections.deque(maxlen=9)

    @property
    def size(self) -> int:
        with self._lock:
            return len(self._idle) + len(self._busy)

    @property
    def idle(self) -> int:
        with self._lock:
            return len(self._idle)

    def submit(self, job: Job, loop: asyncio.AbstractEventLoop) -> None:
        """Run ``job`` on a pool thread; ``loop`` hosts the spread and growth checks."""
        worker: _Worker | None = None
        spread = check = False
        with self._lock:
            if self._waking:
                # a thread is on its way: it takes this call after its own
                now = time.monotonic()
                self._backlog.append((now, job))
                spread = _lost(self._spread_due, now)
                if spread:
                    self._spread_due = now + self.spread
            elif self._idle:
                worker = self._idle.pop()
                self._hand(worker, job)
                worker.wake.release()
                return
            elif len(self._busy) < self.core:
                worker = _Worker(job)
                self._busy.add(worker)
                self._waking += 1
            else:
                now = time.monotonic()
                self._backlog.append((now, job))
                check = _lost(self._check_due, now)
                if check:
                    self._check_due = now + self.patience
        if worker is not None:
            self._start(worker)
        elif spread:
            loop.call_later(self.spread, self._spread, loop)
        elif check:
            loop.call_later(self.patience, self._grow, loop)

    def _hand(self, worker: _Worker, job: Job) -> None:
        """Give a parked ``worker`` ``job`` (under the lock; the caller wakes it)."""
        worker.job = job
        worker.busy_since = time.monotonic()
        self._busy.add(worker)
        self._waking += 1

    def _start(self, worker: _Worker) -> None:
        """Start ``worker``'s thread. When the system has no thread to give (a limit of
        threads or memory), it is taken back out of the pool, which would otherwise
        count it busy and on its way for good (every later call waiting behind it),
        and the error is raised."""
        # The low-level start does not wait for the new thread to run (threading's
        # does, and under a busy loop that wait is a millisecond or more per thread).
        # These threads are daemonic like threading's daemon threads.
        try:
            _thread.start_new_thread(self._serve, (worker,))
        except RuntimeError:
            with self._lock:
                self._busy.discard(worker)
                self._waking -= 1
            raise

    def _start_all(self, fresh: list[_Worker]) -> None:
        """Start the threads a check made; the calls of those that cannot start go back
        to the front of the backlog, to wait for a thread that ends its call."""
        for k, worker in enumerate(fresh):
            try:
                self._start(worker)
            except RuntimeError as exc:
                left = [w.job for w in fresh[k:] if w.job is not None]
                with self._lock:
                    for later in fresh[k + 1 :]:
                        self._busy.discard(later)
                        self._waking -= 1
                    now = time.monotonic()
                    self._backlog.extendleft((now, job) for job in reversed(left))
                log.error(
                    "could not start a thread for an inline call (%s): %d call(s) wait "
                    "for a thread of the pool to end its call",
                    exc,
                    len(left),
                )
                return

    def _spread(self, loop: asyncio.AbstractEventLoop) -> None:
        """Waiting calls get threads of their own once the busy ones stop taking calls."""
        now = time.monotonic()
        woken: list[_Worker] = []
        fresh: list[_Worker] = []
        grow = False
        with self._lock:
            if not self._backlog:
                self._spread_due = None
                return
            oldest = self._backlog[0][0]
            if self._blocking():  # calls that block: each its own thread
                due = oldest + self.spread
            else:  # short calls: spread only when the busy threads have sat in theirs
                due = max(self._last_begun, oldest) + self.spread
            # a thread still on its way (or waiting for the GIL, which more threads
            # would not get), or short calls begun a moment ago: the backlog is moving
            moving = self._waking > 0 or now < due
            if not moving:
                while self._backlog and (self._idle or len(self._busy) < self.core):
                    _, job = self._backlog.popleft()
                    if self._idle:
                        worker = self._idle.pop()
                        self._hand(worker, job)
                        woken.append(worker)
                    else:
                        worker = _Worker(job)
                        self._busy.add(worker)
                        self._waking += 1
                        fresh.append(worker)
                # at core, what still waits is the growth check's: it starts one
                self._spread_due = None
                grow = bool(self._backlog) and _lost(self._check_due, now)
                if grow:
                    self._check_due = now + self.patience
            else:
                self._spread_due = now + max(due - now, self.spread / 4)
        for worker in woken:
            worker.wake.release()
        self._start_all(fresh)
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            if moving:
                loop.call_later(max(due - now, self.spread / 4), self._spread, loop)
            elif grow:
                loop.call_later(self.patience, self._grow, loop)

    def _grow(self, loop: asyncio.AbstractEventLoop) -> None:
        now = time.monotonic()
        with self._lock:
            if not self._backlog:
                self._check_due = None
                return
            stuck = sum(1 for w in self._busy if now - w.busy_since >= self.patience)
            oldest = self._backlog[0][0]
            fresh: list[_Worker] = []
            if now - oldest >= self.patience:
                for _ in range(min(stuck, len(self._backlog), self.core)):
                    _, job = self._backlog.popleft()
                    worker = _Worker(job)
                    self._busy.add(worker)
                    self._waking += 1
                    fresh.append(worker)
            again = bool(self._backlog)
            self._check_due = now + self.patience if again else None
        self._start_all(fresh)
        if again:
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_later(self.patience, self._grow, loop)

    def _blocking(self) -> bool:
        """Whether the recent calls each spent ``slow`` or more off the CPU (under the
        lock; the median, so one call held up by the GIL does not decide)."""
        if not self._off_cpu:
            return False
        return sorted(self._off_cpu)[len(self._off_cpu) // 2] >= self.slow

    def _begun(self) -> None:
        """A woken thread is running (under the lock)."""
        self._waking -= 1
        self._last_begun = time.monotonic()

    def _serve(self, worker: _Worker) -> None:
        with self._lock:
            self._begun()
        while True:
            job, worker.job = worker.job, None
            off: float | None = None
            if job is not None:
                began, cpu = time.monotonic(), time.thread_time()
                job()
                off = time.monotonic() - began - (time.thread_time() - cpu)
                job = None  # a parked thread must not keep the last call (and its loop) alive
            with self._lock:
                if off is not None:
                    self._off_cpu.append(off)
                if self._backlog:
                    _, worker.job = self._backlog.popleft()
                    worker.busy_since = self._last_begun = time.monotonic()
                    continue
                self._busy.discard(worker)
                self._idle.append(worker)
            if not worker.wake.acquire(timeout=self.idle_exit):
                with self._lock:
                    if worker in self._idle:  # nobody chose it meanwhile: end the thread
                        self._idle.remove(worker)
                        return
                worker.wake.acquire()  # chosen just as it timed out: the job is on its way
            with self._lock:  # handed a job by submit() or the spread check
                self._begun()


LOST_AFTER = 1.0  # seconds a check may be overdue before it is taken for lost


def _lost(due: float | None, now: float) -> bool:
    """Whether no check is pending, or the pending one is overdue enough to be lost."""
    return due is None or now > due + LOST_AFTER
