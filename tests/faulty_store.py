"""A store that fails chosen calls on cue: how the daemon's own faults are tested.

Wraps a real store; every method goes through unless a fault is set for it. A
fault raises (a locked database, an I/O error, a lost connection) a given number
of times or until cleared, or hangs the call until released (a half-open
connection). Calls are counted per method, so a test can tell that a part kept
trying, or that a loop did not spin.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def locked() -> Exception:
    return sqlite3.OperationalError("database is locked")


def io_error() -> Exception:
    return sqlite3.OperationalError("disk I/O error")


def connection_lost() -> Exception:
    from agentcron.store.errors import StoreError

    return StoreError("cannot connect to PostgreSQL at 127.0.0.1:5432: connection refused")


@dataclass
class Fault:
    error: Callable[[], Exception] | None = None
    times: int | None = None  # None: until cleared
    after: int = 0  # let this many calls through first
    hang: threading.Event | None = None  # block the call until the event is set
    delay: float = 0.0  # seconds the call waits before it fails (a statement's timeout)


class FaultyStore:
    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._faults: dict[str, Fault] = {}
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()

    def fail(self, *methods: str, error: Callable[[], Exception] = locked, **kw: Any) -> None:
        with self._lock:
            for method in methods:
                self._faults[method] = Fault(error=error, **kw)

    def hang(self, method: str, release: threading.Event) -> None:
        with self._lock:
            self._faults[method] = Fault(hang=release)

    def clear(self, *methods: str) -> None:
        with self._lock:
            for method in methods or list(self._faults):
                self._faults.pop(method, None)

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)
        if not callable(target) or name.startswith("__"):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.calls[name] += 1
                fault = self._faults.get(name)
                fire = fault is not None and self.calls[name] > fault.after
                if fire and fault is not None and fault.times is not None:
                    fault.times -= 1
                    if fault.times < 0:
                        self._faults.pop(name, None)
                        fire = False
            if fire and fault is not None:
                if fault.hang is not None:
                    fault.hang.wait(60)
                elif fault.error is not None:
                    time.sleep(fault.delay)
                    self.failed[name] += 1
                    raise fault.error()
            return target(*args, **kwargs)

        return call
