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


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        (
            {"max_concurrency": "4"},
            "max_concurrency: must be a whole number (an int) of at least 1, got '4' (a str)",
        ),
        (
            {"max_concurrency": True},
            "max_concurrency: must be a whole number (an int) of at least 1, got True (a bool)",
        ),
        ({"max_concurrency": 0}, "max_concurrency: must be greater than or equal to 1"),
        ({"timezone": 5}, "timezone: must be a string"),
        ({"heartbeat_url": "nope"}, "heartbeat_url: must be an http:// or https:// URL"),
        ({"defaults": [1]}, "defaults: must be a mapping"),
    ],
)
def test_a_wrong_setting_of_the_scheduler_is_a_config_error_naming_it(
    settings: dict[str, object], said: str
) -> None:
    """Probe: ``max_concurrency="4"`` failed as ``'<' not supported between instances
    of 'str' and 'int'``; the settings that are the config file's top-level keys are
    checked by its rules, each problem naming its key."""
    with pytest.raises(ConfigError) as err:
        Scheduler(**settings)  # type: ignore[arg-type]
    assert err.value.lines()[0].startswith(f"<python>: {said}")


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        ({"home": 42}, "Scheduler(): home must be a folder, as a str or a Path, got 42 (an int)"),
        ({"db": Path("x.db")}, "Scheduler(): db must be a postgresql:// URL or a SQLite file"),
        ({"tune_gc": "no"}, "Scheduler(): tune_gc must be True or False, got 'no' (a str)"),
    ],
)
def test_a_wrong_python_argument_of_the_scheduler_is_a_type_error_naming_it(
    settings: dict[str, object], said: str
) -> None:
    with pytest.raises(TypeError) as err:
        Scheduler(**settings)  # type: ignore[arg-type]
    assert str(err.value).startswith(said)


def test_the_settings_are_kept_as_given_once_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PING_HOST", "hc.example")
    sched = Scheduler(
        timezone="Europe/Berlin",
        max_concurrency=2,
        defaults={"retries": 1},
        heartbeat_url="https://${PING_HOST}/ping",
        tune_gc=False,
    )
    assert (sched.timezone, sched.max_concurrency, sched.defaults) == (
        "Europe/Berlin",
        2,
        {"retries": 1},
    )
    assert sched.heartbeat_url == "https://${PING_HOST}/ping"  # expanded when pinged
    assert sched.tune_gc is False


def test_add_refuses_a_name_or_function_that_is_not_one_naming_the_argument() -> None:
    """Probe: ``add("m", 42, every="1m")`` failed as ``'int' object has no attribute
    '__module__'``."""
    sched = Scheduler(timezone="UTC")
    with pytest.raises(TypeError) as err:
        sched.add("m", 42, every="1m")  # type: ignore[arg-type]
    assert str(err.value).startswith(
        "Scheduler.add(): func must be the function to call, got 42 (an int); for another "
        "action leave it out and give command=[...]"
    )
    with pytest.raises(TypeError, match=r"name must be the task's name \(a str\), got 42"):
        sched.add(42, lambda: None, every="1m")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"name must be the task's name \(a str\), got 42"):

        @sched.task(42, every="1m")  # type: ignore[arg-type]
        def job() -> None: ...

    assert sched.tasks == {} and sched.callables == {}
