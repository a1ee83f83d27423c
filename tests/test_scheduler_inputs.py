"""The Python API's inputs, outside in: what a program hands to ``Scheduler``, ``add``
and ``task`` either does what it says or is refused naming the argument, never
accepted to do nothing (or something else) in silence."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from agentcron import ConfigError, Scheduler
from agentcron.store.sqlite import SQLiteStore
from harness import until


@pytest.mark.slow
def test_a_named_python_target_is_what_runs_inline_not_the_decorated_stub(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Probe: the README's example minus ``isolation="process"`` ran the stub body,
    recorded success, and the named function never ran."""
    marker = tmp_path / "ran"
    (tmp_path / "codejobs2.py").write_text(
        f"from pathlib import Path\n\ndef heartbeat() -> str:\n"
        f"    Path({str(marker)!r}).write_text('yes')\n    return 'real'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "codejobs2", raising=False)
    sched = Scheduler(home=tmp_path / "home", timezone="UTC")

    @sched.task(every="1s", python="codejobs2:heartbeat")
    def heartbeat() -> None: ...

    assert sched.tasks["heartbeat"].python == "codejobs2:heartbeat"
    assert sched.tasks["heartbeat"].isolation == "inline"
    assert "codejobs2:heartbeat" not in sched.callables  # the stub is not what runs

    async def scenario() -> None:
        stop = asyncio.Event()
        runner = asyncio.create_task(sched.run_async(stop))
        try:
            await until(marker.exists, timeout=30)
        finally:
            stop.set()
            await asyncio.wait_for(runner, 30)

    asyncio.run(scenario())
    store = SQLiteStore(tmp_path / "home" / "agentcron.db")
    try:
        ran = [s for s in store.slots("heartbeat", limit=5) if s.status.value == "succeeded"]
    finally:
        store.close()
    assert ran and ran[0].output_path is not None
    assert Path(ran[0].output_path).read_text() == "real"


def test_add_with_a_named_target_keeps_it_and_calls_only_the_function_it_names() -> None:
    sched = Scheduler(timezone="UTC")

    def stub() -> None: ...

    sched.add("hb", stub, every="1h", python="codejobs2:heartbeat")
    assert sched.tasks["hb"].python == "codejobs2:heartbeat"
    assert sched.callables == {}
    own = f"{stub.__module__}:{stub.__qualname__}"
    with pytest.raises(ConfigError, match=r"tasks\.bad\.python: .*module:function"):
        # a named target that is no target was replaced by a made-up one in silence
        sched.add("bad", stub, every="1h", python="not a target")
    sched.add("me", run_me, every="1h", python=f"{__name__}:run_me")
    assert sched.callables == {f"{__name__}:run_me": run_me}  # the function itself
    assert own not in sched.callables


def run_me() -> str:
    return "me"


def test_the_schedulers_notify_takes_a_str_as_one_url_and_checks_each_url() -> None:
    """Probe: ``notify="json://…"`` became one channel per character, and a URL that
    is none was accepted here while a task's ``notify=`` refused it."""
    assert Scheduler(notify="json://localhost/hook").notify == ["json://localhost/hook"]
    assert Scheduler(notify=["json://localhost/a", "json://localhost/b"]).notify == [
        "json://localhost/a",
        "json://localhost/b",
    ]
    assert Scheduler().notify == []
    with pytest.raises(ConfigError, match=r"notify\[0\]: not a notification URL"):
        Scheduler(notify=["notaurl"])
    with pytest.raises(ConfigError, match=r"notify\[0\]: not a notification URL"):
        Scheduler(notify="notaurl")
    with pytest.raises(ConfigError, match=r"notify\[1\]: unknown notification service"):
        Scheduler(notify=["json://localhost/a", "nosuchscheme://x"])
    with pytest.raises(ConfigError, match=r"notify: must be a list"):
        Scheduler(notify=5)  # type: ignore[arg-type]


def test_a_placeholder_in_the_schedulers_notify_is_kept_and_must_be_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As in the file: checked expanded, kept as written (the secret stays out of the
    database and of messages); an unset variable is said once, naming the key."""
    monkeypatch.setenv("HOOK_HOST", "localhost")
    assert Scheduler(notify="json://${HOOK_HOST}/hook").notify == ["json://${HOOK_HOST}/hook"]
    monkeypatch.delenv("HOOK_HOST")
    with pytest.raises(ConfigError) as err:
        Scheduler(notify="json://${HOOK_HOST}/hook")
    assert err.value.lines() == [
        "<python>: notify[0]: variable HOOK_HOST is not set (in the environment or the "
        "config's env_file; ${NAME:-default} gives a default)"
    ]


def test_a_bare_task_decorator_is_refused_saying_a_task_needs_a_schedule() -> None:
    """Probe: ``@sched.task`` without parentheses replaced the function by the inner
    ``register`` and registered nothing; the daemon then started with no task."""
    sched = Scheduler(timezone="UTC")
    with pytest.raises(TypeError) as err:

        @sched.task  # type: ignore[arg-type]
        def nightly_report() -> str:
            return "ok"

    assert str(err.value) == (
        "a bare @sched.task above def nightly_report registers no task: a task needs a "
        'schedule, e.g. @sched.task(every="1h") or @sched.task(cron="0 2 * * *")'
    )
    assert sched.tasks == {} and sched.callables == {}
    with pytest.raises(ConfigError, match=r"tasks\.weekly-report: a task needs exactly one"):

        @sched.task()
        def weekly_report() -> str:
            return "ok"
