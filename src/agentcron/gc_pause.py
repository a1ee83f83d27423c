"""Python's cyclic garbage collector held off while a read builds a large result.

Listing 100,000 tasks builds hundreds of thousands of small objects (rows, records,
one dict per task), none of them in a cycle. Each allocation past a threshold starts a
collection that walks every object still alive, and the result being built is alive:
about a third of ``agentcron list --json``'s time over 100,000 tasks went to
collections that freed nothing. Reference counting still frees everything as usual;
only cycles wait until the read ends.

The switch is the whole process's, so holds are counted: overlapping reads on several
threads (the API server) turn it back on when the last one ends, and only if it was on
before the first began.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_holds = 0
_was_enabled = False


@contextmanager
def gc_paused() -> Iterator[None]:
    global _holds, _was_enabled
    with _lock:
        if _holds == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _holds += 1
    try:
        yield
    finally:
        with _lock:
            _holds -= 1
            if _holds == 0 and _was_enabled:
                gc.enable()
