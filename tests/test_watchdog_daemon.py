"""The daemon's watchdog end to end, in this process and in a few seconds (issue 12,
findings 4 and 6).

A real :class:`Daemon` runs on a thread of its own with a local webhook as the
owner's channel and a local server as its dead man's switch. It shows, in one run:
a config reload that adds or changes ``heartbeat_url`` applies without a restart;
an inline task that blocks the event loop is a stall told straight away, pinged to
``…/fail`` before the query string, while a 1 s task it keeps from firing is told
overdue from the outbox although the loop is still blocked, once; and the stall's
end is told when the loop moves again.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agentcron.daemon import Daemon, DaemonOptions
from agentcron.model import SlotStatus
from e2e_http import Response, ScriptedServer
from e2e_sink import Sink

pytestmark = pytest.mark.slow

TASKS = """
tasks:
  beat:
    every: 1s
    python: "tests:beat"
    isolation: inline
    overdue_after: 2s
  wedge:
    every: 1d
    python: "tests:wedge"
    isolation: inline
    timeout: 1d
    retries: 0
"""


def _wait(predicate: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.02)


def test_reload_stall_and_overdue_reach_the_owner_while_the_loop_is_blocked(
    tmp_path: Path,
) -> None:
    release, entered = threading.Event(), threading.Event()

    async def wedge() -> str:
        entered.set()
        release.wait(60)  # blocks the daemon's event loop itself
        return "woke"

    config = tmp_path / "agentcron.yaml"
    with Sink() as sink, ScriptedServer([Response(200, body="OK")] * 500) as hc:

        def write_config(heartbeat: str | None) -> None:
            line = f'heartbeat_url: "{heartbeat}"\n' if heartbeat else ""
            config.write_text(f'notify: ["{sink.url("/owner")}"]\n{line}{TASKS}')

        write_config(None)
        d = Daemon(
            DaemonOptions(
                config_path=config,
                home=tmp_path / "home",
                poll_interval=0.2,
                reload_interval=0.2,
                pulse_interval=0.2,
                watchdog_interval=0.2,
                stall_after=1.5,
                shutdown_grace=1.0,
                final_drain=2.0,
                tune_gc=False,
                callables={"tests:beat": lambda: "beat", "tests:wedge": wedge},
            )
        )
        box: dict[str, Any] = {}

        def run() -> None:
            async def main() -> int:
                box["loop"] = asyncio.get_running_loop()
                return await d.run()

            box["code"] = asyncio.run(main())

        thread = threading.Thread(target=run, name="daemon", daemon=True)
        thread.start()

        def said(words: str) -> list[str]:
            return [t for t in sink.texts("/owner") if words in t]

        def paths(method: str) -> list[str]:
            return [r.path for r in hc.requests if r.method == method]

        try:
            _wait(lambda: d.store is not None and d.service is not None, "the daemon started")
            assert d.store is not None and d.service is not None
            store = d.store
            _wait(
                lambda: store.slots("beat", limit=5, statuses=[SlotStatus.SUCCEEDED]), "beat runs"
            )
            # heartbeat_url added by a reload: pinged without a restart; changed: the new one
            write_config(hc.url("/ping/one"))
            _wait(lambda: "/ping/one" in paths("GET"), "the added heartbeat_url pinged")
            write_config(hc.url("/ping/two?create=1"))
            _wait(lambda: "/ping/two?create=1" in paths("GET"), "the changed one pinged")
            switched = len(hc.requests)

            d.service.trigger("wedge")
            _wait(entered.is_set, "the wedge blocks the loop")
            stall = _wait(lambda: said("has not ticked"), "the stall told")
            overdue = _wait(lambda: said("beat has not run since"), "overdue told")
            fail = _wait(lambda: [p for p in paths("POST") if "fail" in p], "a /fail ping")
            assert not release.is_set() and thread.is_alive()  # all while still blocked
        finally:
            release.set()
        try:
            _wait(lambda: said("ticks again after a stall"), "the end of the stall told")
            _wait(lambda: said("beat is running again"), "the overdue incident closed")
        finally:
            box["loop"].call_soon_threadsafe(d.stop_event.set)
            thread.join(60)
    assert box.get("code") == 0
    assert "/ping/one" not in [r.path for r in hc.requests[switched:]]
    assert fail == ["/ping/two/fail?create=1"]
    assert len(stall) == 1
    assert re.search(r"✖ agentcron's scheduler loop has not ticked for \d+s on ", stall[0])
    # the culprit named: an async def that blocks (probe: "an inline call that never
    # yields" left the owner to guess which)
    assert "The async function of wedge runs on the daemon's loop" in stall[0]
    assert len(overdue) == 1 and "although the daemon is alive" in overdue[0]
    # sent once: by the watchdog's thread during the stall, not again by the loop's sender
    assert len(said("beat has not run since")) == 1
    [end] = said("ticks again after a stall")
    assert "Fires that came due meanwhile follow each task's catch-up rules" in end
