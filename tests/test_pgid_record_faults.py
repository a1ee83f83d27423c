"""Recording a command's process group is bookkeeping for crash recovery (the run's
marker file covers it): through a database cut each run's failure to record it was an
ERROR with a full traceback, 117 of them in one chaos soak scenario. It is logged as
one streak: its first failure with the traceback, then its end."""

from __future__ import annotations

import logging
import os
from typing import Any

import pytest

from agentcron.engine import runner
from agentcron.faultlog import FaultLog


class CutStore:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.noted: list[int] = []

    def note_attempt_process(self, attempt_id: int, process: dict[str, Any]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("server closed the connection unexpectedly")
        self.noted.append(attempt_id)


def test_a_cut_is_logged_once_with_its_end(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    faults = FaultLog(logging.getLogger("agentcron.runner"), "recording process groups")
    monkeypatch.setattr(runner, "_PGID_FAULTS", faults)
    caplog.set_level(logging.INFO, logger="agentcron.runner")
    store = CutStore(failures=50)
    for attempt in range(51):
        runner._recorder(store, attempt)(os.getpid())  # type: ignore[arg-type]
    assert store.noted == [50]
    records = [r for r in caplog.records if r.name == "agentcron.runner"]
    assert [r.levelno for r in records] == [logging.ERROR, logging.WARNING]
    assert records[0].exc_info is not None
    assert "works again after 50 failure(s)" in records[1].getMessage()
