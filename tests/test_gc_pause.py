"""The garbage collector held off during a large read (agentcron.gc_pause): on while
nothing holds it, off while anything does, back on when the last holder ends (also by
an exception, also across threads), and left off when it was off before."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentcron.clock import FakeClock
from agentcron.gc_pause import gc_paused
from agentcron.service import Service
from agentcron.store.sqlite import SQLiteStore


@pytest.fixture(autouse=True)
def gc_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


def test_off_while_held_and_on_again_after_an_exception() -> None:
    with pytest.raises(RuntimeError), gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer hold still holds
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_left_off_when_it_was_off_before() -> None:
    gc.disable()
    with gc_paused():
        pass
    assert not gc.isenabled()


def test_overlapping_holds_on_threads_end_with_the_last() -> None:
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: list[bool] = []

    def first() -> None:
        with gc_paused():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second() -> None:
        first_in.wait(5)
        with gc_paused():
            second_in.set()
            first_out.wait(5)
            seen.append(gc.isenabled())  # the first ended; this one still holds

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == [False]
    assert gc.isenabled()


def test_a_task_list_holds_it_while_it_reads(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "agentcron.db")
    seen: list[bool] = []
    read = store.task_listing

    def listing():  # type: ignore[no-untyped-def]
        seen.append(gc.isenabled())
        return read()

    store.task_listing = listing  # type: ignore[method-assign]
    try:
        Service(store, tmp_path, clock=FakeClock()).list_tasks()
    finally:
        store.close()
    assert seen == [False] and gc.isenabled()
