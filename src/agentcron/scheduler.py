"""The Python API: ``from agentcron import Scheduler``.

Tasks registered here run on the same engine and store as the daemon; the
decorator only builds a :class:`~agentcron.model.TaskSpec` (validated with the
config file's rules) and remembers the function, which runs inline in this
process unless ``isolation="process"`` names an importable target.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from agentcron.config.errors import ConfigError
from agentcron.config.loader import validate_task_mapping
from agentcron.config.schema import ApiConfig, ConfigFile, LoadedConfig
from agentcron.home import resolve_home
from agentcron.model import TaskSpec

F = TypeVar("F", bound=Callable[..., Any])


class Scheduler:
    """Register tasks in code and run them.

    >>> sched = Scheduler(timezone="Europe/Berlin")
    >>> @sched.task(cron="0 2 * * *", retries=3, timeout="20m")
    ... def story() -> str: ...
    >>> sched.run()  # blocks, like `agentcron run`
    """

    def __init__(
        self,
        *,
        home: str | Path | None = None,
        db: str | None = None,
        timezone: str | None = None,
        notify: str | list[str] | None = None,
        max_concurrency: int = 4,
        defaults: dict[str, Any] | None = None,
        heartbeat_url: str | None = None,
        tune_gc: bool = True,
    ) -> None:
        """``tune_gc``: let :meth:`run` set the garbage collector up for a long-running
        scheduler (:func:`agentcron.daemon.tune_gc`); say False when the process has
        other plans for it."""
        _python_argument("home", home, (str, os.PathLike), "a folder, as a str or a Path")
        _python_argument("db", db, (str,), "a postgresql:// URL or a SQLite file path, as a str")
        _python_argument("tune_gc", tune_gc, (bool,), "True or False")
        urls = [notify] if isinstance(notify, str) else notify  # notify[0] names it either way
        top = _top_level(
            {
                "timezone": timezone,
                "notify": urls,
                "max_concurrency": max_concurrency,
                "defaults": defaults,
                "heartbeat_url": heartbeat_url,
            }
        )
        from agentcron.config._placeholders import as_written, urls_as_written

        self.home = resolve_home(home)
        self.db = db
        self.timezone = top.timezone
        self.notify = urls_as_written(urls, list(top.notify))  # placeholders kept
        self.max_concurrency = top.max_concurrency
        self.defaults = dict(top.defaults)
        self.heartbeat_url = as_written(heartbeat_url, top.heartbeat_url)
        self.tune_gc = tune_gc
        self.tasks: dict[str, TaskSpec] = {}
        self.callables: dict[str, Callable[..., Any]] = {}
        # the loop and stop of a run in progress, for stop() from another thread
        self._running: tuple[asyncio.AbstractEventLoop, Callable[[], None]] | None = None

    def add(self, name: str, func: Callable[..., Any] | None = None, **spec: Any) -> TaskSpec:
        """Register a task. With ``func`` it is a python task calling that function;
        otherwise give an action (``command=[...]``, ``http={...}``, ``llm={...}``).
        Raises :class:`ConfigError` naming the field when the spec is invalid, and
        TypeError naming ``name`` or ``func`` when one is not a name or a function."""
        if not isinstance(name, str):
            raise TypeError(
                f"Scheduler.add(): name must be the task's name (a str), got {_shown(name)}"
            )
        if self._running is not None:
            # the daemon took its tasks when it started: one added now was accepted,
            # never ran and was shown nowhere (outside-in probe)
            raise RuntimeError(
                f"Scheduler.add({name!r}): this scheduler is running, and its tasks were "
                "taken when it started: register tasks before run(), or add one to the "
                "running daemon with `agentcron add` or the HTTP API"
            )
        if func is not None and not callable(func):
            raise TypeError(
                f"Scheduler.add(): func must be the function to call, got {_shown(func)}; "
                "for another action leave it out and give command=[...], http={...} or llm={...}"
            )
        raw = dict(spec)
        if self.timezone is not None:
            # stored with the task, so `agentcron list` and `next` (which do not see this
            # object) read its schedule in the zone the daemon does
            raw.setdefault("timezone", self.timezone)
        if func is not None:
            target, own = _python_target(name, func, raw.get("python"))
            raw["python"] = target
            raw.setdefault("isolation", "inline")
            module = str(target).partition(":")[0]
            if raw["isolation"] == "process" and module in ("__main__", "__agentcron__"):
                # a worker process imports the target: it cannot find these, and every
                # run failed as "the function raised AttributeError" (probe)
                raise ConfigError(
                    [
                        _problem(
                            f"tasks.{name}.isolation",
                            f"a worker process cannot import {target} (a function of the "
                            "program's main script, or one defined inside a function): move "
                            'it into a module and give python="module:function", or use '
                            'isolation="inline"',
                        )
                    ],
                    "<python>",
                )
            if own:
                self.callables[target] = func
        if name in self.tasks:
            raise ConfigError(
                [_problem(f"tasks.{name}", f"task {name!r} is registered twice")], "<python>"
            )
        task = self._validate(name, raw)
        self.tasks[name] = task
        return task

    def _validate(self, name: str, raw: dict[str, Any]) -> TaskSpec:
        """The config file's rules; the model alone when it can decide (no defaults to
        merge, no channel URLs to check), which is several times cheaper and matters
        when a program registers 100,000 tasks. Errors always take the full path so
        they read exactly as for the config file."""
        if not self.defaults and not raw.keys() & {"notify", "deliver"}:
            try:
                return TaskSpec.model_validate({**raw, "name": name})
            except ValidationError:
                pass
        return validate_task_mapping(name, raw, self.defaults, location_prefix="tasks")

    def task(self, name: str | None = None, **spec: Any) -> Callable[[F], F]:
        """Decorator form of :meth:`add`; the task is named after the function by default.

        Written bare (``@sched.task``), Python hands the function over as ``name``:
        the function became the inner ``register`` and nothing was registered, with
        no error (probe). A task needs a schedule, so the bare form is refused."""
        if callable(name):
            raise TypeError(
                f"a bare @sched.task above {_function_name(name)} registers no task: a task "
                'needs a schedule, e.g. @sched.task(every="1h") or @sched.task(cron="0 2 * * *")'
            )

        def register(func: F) -> F:
            self.add(name or func.__name__.replace("_", "-"), func, **spec)
            return func

        return register

    def _options(self) -> Any:
        from agentcron.daemon import DaemonOptions

        base = LoadedConfig(
            source="<python>",
            timezone=self.timezone,
            notify=self.notify,
            heartbeat_url=self.heartbeat_url,
            max_concurrency=self.max_concurrency,
            api=ApiConfig(),
            tasks={},
            digest="",
        )
        return DaemonOptions(
            config_path=None,
            home=self.home,
            db_url=self.db,
            base_config=base,
            code_tasks=dict(self.tasks),
            callables=dict(self.callables),
            tune_gc=self.tune_gc,
        )

    async def run_async(self, stop: asyncio.Event | None = None) -> None:
        """Run until ``stop`` is set (or SIGTERM/SIGINT).

        On a SQLite home only one daemon may run at a time, this one or `agentcron run`:
        raises :class:`~agentcron.instance_lock.DaemonAlreadyRunning` naming the other's
        pid when one already does. A damaged SQLite database raises
        :class:`~agentcron.store.StoreError` before anything is written to it."""
        from agentcron.daemon import Daemon
        from agentcron.instance_lock import daemon_lock
        from agentcron.store import check_database

        with daemon_lock(self.home, self.db) as lock:
            check_database(self.db, self.home)  # damage refused before any write
            options = self._options()
            options.lock = lock  # kept at its path while the daemon runs
            daemon = Daemon(options)
            self._running = (asyncio.get_running_loop(), daemon.request_stop)
            try:
                code = await self._run_daemon(daemon, stop)
            finally:
                self._running = None
        if code:
            # a part of the daemon kept failing (told to the owner and logged): end
            # the process non-zero, as `agentcron run` does, so it is restarted
            raise SystemExit(code)

    @staticmethod
    async def _run_daemon(daemon: Any, stop: asyncio.Event | None) -> int:
        if stop is not None:

            async def relay() -> None:
                await stop.wait()
                daemon.stop_event.set()

            relay_task = asyncio.create_task(relay())
            try:
                return int(await daemon.run())
            finally:
                relay_task.cancel()
        return int(await daemon.run())

    def stop(self) -> bool:
        """Ask a running :meth:`run` or :meth:`run_async` to stop, from any thread (a
        signal handler of the program's own, another thread): it stops as on SIGTERM,
        waiting for the runs in progress and recording their ends. A scheduler run in a
        thread other than the main one cannot catch SIGTERM itself. False when it is
        not running."""
        running = self._running
        if running is None:
            return False
        loop, request = running
        try:
            loop.call_soon_threadsafe(request)
        except RuntimeError:  # its loop closed meanwhile: stopped already
            return False
        return True

    def run(self) -> None:
        """Run in the foreground until interrupted."""
        from agentcron.run_loop import run_to_end

        if _in_running_loop():  # it failed deep in asyncio with chained tracebacks (probe)
            raise RuntimeError(
                "Scheduler.run() was called inside a running event loop: there, use "
                "`await sched.run_async()`"
            )
        with contextlib.suppress(KeyboardInterrupt):
            run_to_end(self.run_async())


def _in_running_loop() -> bool:
    """Whether this thread runs an event loop (asyncio says no by raising)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _function_name(func: Callable[..., Any]) -> str:
    return f"def {getattr(func, '__name__', repr(func))}"


def _python_target(name: str, func: Callable[..., Any], named: Any) -> tuple[str, bool]:
    """The task's ``python`` target, and whether it is ``func`` itself.

    ``python="module:function"`` names what runs, inline (imported in this process)
    or in a worker: the decorated function is then only a stub (``def heartbeat():
    ...``), and registering it under the target ran the stub and recorded its
    ``None`` as a success while the named function never ran (probe). Only a target
    that is the function's own path (or none given) calls the function itself."""
    # a functools.partial or a callable object has no __qualname__ (it raised
    # AttributeError from here: probe): it is called as a function of the program
    module, qualname = getattr(func, "__module__", None), getattr(func, "__qualname__", None)
    own = f"{module}:{qualname}" if isinstance(module, str) and isinstance(qualname, str) else ""
    if named is not None:
        return named, named == own
    if not re.match(r"^[\w.]+:[\w.]+$", own):  # e.g. a function defined in a function
        return "__agentcron__:" + re.sub(r"\W", "_", name), True
    return own, True


def _top_level(values: dict[str, Any]) -> ConfigFile:
    """The constructor's settings validated as the config file's top-level keys: the
    same model, the same placeholder rules, the same messages (each naming its key).

    ``notify="json://…"`` was made one channel per character and a URL that was none
    was kept, so nothing ever reached the owner; ``max_concurrency="4"`` failed as
    ``'<' not supported`` (probe). A Python program passes a number as a number:
    the file's lax reading of ``"4"`` is not taken here."""
    from agentcron.config import _env, _placeholders
    from agentcron.config._problems import issues_from

    environ = _env.current_environ()
    problems = _placeholders.top_problems(values, environ, _path_problem)
    count = values.get("max_concurrency")
    if isinstance(count, bool) or not isinstance(count, int):
        message = f"must be a whole number (an int) of at least 1, got {_shown(count)}"
        problems.append(_problem("max_concurrency", message))
    try:
        top = ConfigFile.model_validate(_placeholders.expanded_top(values, environ))
    except ValidationError as exc:
        # a value said wrong above (an unset placeholder, a str count) is said once
        said = {p.location for p in problems}
        for issue in issues_from(exc, ConfigFile, values):
            problem = _path_problem(issue.path, issue.message)
            if not _placeholders.within(problem.location, said):
                problems.append(problem)
    from agentcron.config.loader import defaults_problems

    problems += defaults_problems(values.get("defaults"))
    if problems:
        raise ConfigError(problems, "<python>")
    return top


def _python_argument(name: str, value: Any, kinds: tuple[type, ...], expected: str) -> None:
    """Refuse an argument of the wrong type naming it (no config key, so a TypeError):
    the mistake otherwise surfaced later as another object's missing attribute."""
    if value is not None and not isinstance(value, kinds):
        raise TypeError(f"Scheduler(): {name} must be {expected}, got {_shown(value)}")


def _shown(value: Any) -> str:
    """``'4' (a str)``: the value and its type, what a wrong argument is seen by."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    kind = type(value).__name__
    return f"{text} ({'an' if kind[0] in 'aeiou' else 'a'} {kind})"


def _path_problem(path: tuple[str | int, ...], message: str) -> Any:
    """A problem at ``path`` (``("notify", 0)`` is ``notify[0]``), its message's URLs
    redacted as the loader's are: they may hold a credential."""
    from agentcron.config._urls import redact_urls_in
    from agentcron.config._yaml import format_path

    return _problem(format_path(path), redact_urls_in(message))


def _problem(location: str, message: str) -> Any:
    from agentcron.config.errors import ConfigProblem

    return ConfigProblem(location=location, message=message)
