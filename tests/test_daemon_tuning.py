"""The daemon's garbage-collector set-up, and the way to opt out of it."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from agentcron import Scheduler
from agentcron.daemon import tune_gc


@pytest.fixture
def gc_state() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_tune_gc_freezes_start_up_objects_and_collects_less_often(gc_state: None) -> None:
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    kept = [object() for _ in range(10)]  # noqa: F841 - alive across the freeze
    tune_gc()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (7000, 10, 10)
    gc.set_threshold(20000, 5, 5)  # a process that asked for more keeps it
    tune_gc()
    assert gc.get_threshold() == (20000, 5, 5)


def test_the_python_api_can_leave_the_collector_alone(tmp_path) -> None:
    assert Scheduler(home=tmp_path)._options().tune_gc is True
    assert Scheduler(home=tmp_path, tune_gc=False)._options().tune_gc is False
