"""A python-action worker process: ``python -u -m agentcron.actions._worker``.

The pool keeps a few of these running so a ``python:`` task starts without paying
for an interpreter, and so a call that hangs can be ended by killing its process,
which a thread in the daemon could never be.

Protocol (one JSON object per line): on start the worker writes ``{"ready": true,
"pid": N}``. Each request ``{"id", "target", "args", "kwargs", "output", "cwd",
"env"}`` gets ``{"id", "started": true}`` just before the user's code runs (so the
pool knows whether a worker that vanished took a call down with it), then one
response: ``{"id", "ok": true}``, ``{"id", "ok": false, "failure":
{...FailureInfo fields}}``, or ``{"id", "stale": "reason"}`` after which the worker
exits because it cannot run the target faithfully (its module changed on disk or
was imported for another directory). The protocol runs on private duplicates of
the original stdin/stdout; fds 0 and 1 are /dev/null between calls, and during a
call fds 1 and 2 are the run's output file, so prints and subprocesses the
function starts are captured too. The worker exits at EOF on its input.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import importlib
import inspect
import json
import os
import queue
import signal
import site
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from agentcron.actions.output import open_output
from agentcron.model.failure import FailureInfo

# The longest line the pool reads (its stream's limit): a longer answer could not be
# read, and took the worker out of the pool for good (probe).
LINE_LIMIT = 16 * 1024 * 1024
# Characters of one text of a failure sent to the pool (a message, a traceback, a
# body), and headers at most: what the pool reads stays far below LINE_LIMIT.
FIELD_LIMIT = 16 * 1024
HEADERS_LIMIT = 50


def _runs_on_import(module_name: str) -> str:
    return (
        f"importing {module_name} started its agentcron.Scheduler again (the module runs "
        "sched.run() when it is imported): put sched.run() under "
        '`if __name__ == "__main__":`, or name a target in a module of its own'
    )


def _missing(module_name: str, attr_path: str) -> str:
    """Why ``module:attr`` names nothing. A ``__main__`` target is a task registered
    from a program's own script (its agentcron.Scheduler): only that program can call
    it, and a daemon started another way (`agentcron run` on the program's home) failed
    its runs "'__main__' has no attribute", naming no wrong daemon (outside-in probe)."""
    if module_name == "__main__":
        return (
            f"__main__:{attr_path} names a function of a program's own script, which only "
            "that program (its agentcron.Scheduler) can call; this process is not that "
            "program: run the program that registers it, not `agentcron run`"
        )
    return f"{module_name} has no function {attr_path}"


class TargetNotLoaded(Exception):
    """A task's target could not be loaded: its module failed to import, or has no
    such function. The function never ran; ``failure`` says what failed instead."""

    def __init__(self, failure: FailureInfo) -> None:
        super().__init__(failure.message)
        self.failure = failure


def resolve_target(target: str) -> Callable[..., Any]:
    """Import ``module:attr.path`` and return the callable it names; TargetNotLoaded
    when that fails."""
    from agentcron.classify.extract import import_failure, target_failure

    module_name, _, attr_path = target.partition(":")
    if not module_name or not attr_path:
        raise ValueError(f"python target must be 'module:function', got {target!r}")
    try:
        obj: Any = importlib.import_module(module_name)
    except BaseException as exc:  # whatever its code raised at import is data too
        exc.__traceback__ = _from_user_code(exc.__traceback__)
        if type(exc).__name__ == "DaemonAlreadyRunning":
            # the module runs its program when imported: the README's example of a
            # python= target in the program's own file failed every run with this
            # (outside-in probe), and the words did not say what to change
            raise TargetNotLoaded(target_failure(_runs_on_import(module_name))) from exc
        raise TargetNotLoaded(import_failure(exc, module_name)) from exc
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise TargetNotLoaded(target_failure(_missing(module_name, attr_path))) from None
    if not callable(obj):
        what = f"{target} is not a function (its type is {type(obj).__name__})"
        raise TargetNotLoaded(target_failure(what))
    return obj  # type: ignore[no-any-return]


def call_target(func: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]) -> Any:
    """Call ``func``; an async function (or one returning an awaitable) runs to completion."""
    try:
        result = func(*args, **kwargs)
        if inspect.isawaitable(result):
            return asyncio.run(_await(result))
        return result
    except SystemExit as exc:
        if exited_well(exc):
            return None
        raise


def exited_well(exc: SystemExit) -> bool:
    """Whether ``exc`` is ``sys.exit()`` or ``sys.exit(0)``: a script's ``main()`` made a
    task says "done, all well" so, as its exit 0 says it run as a command. It failed
    the run as a ``code_error`` (outside-in probe)."""
    return exc.code is None or exc.code == 0


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def result_text(value: Any) -> str:
    """The output text of a return value: a string as is, anything else as JSON. A
    generator is refused: calling a generator function runs none of its body, and the
    run "succeeded" with "<generator object …>" as its output (probe)."""
    if value is None:
        return ""
    if inspect.isgenerator(value) or inspect.isasyncgen(value):
        raise TypeError(
            "the function is a generator (it uses yield): calling it ran none of its body; "
            "return a value instead, or consume it (return list(...))"
        )
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):  # circular structures
        return repr(value)


def append_result(fd: int, text: str) -> None:
    """Append a return value's text to an output file, on a line of its own."""
    if not text:
        return
    data = text.encode("utf-8", errors="replace")
    size = os.fstat(fd).st_size
    if size and os.pread(fd, 1, size - 1) != b"\n":
        data = b"\n" + data
    while data:
        data = data[os.write(fd, data) :]


def failure_of(exc: BaseException) -> FailureInfo:
    """The FailureInfo of what a call raised (a target that did not load says so)."""
    if isinstance(exc, TargetNotLoaded):
        return exc.failure
    from agentcron.classify.extract import failure_from_exception

    return failure_from_exception(exc, action="python")


def failure_dict(exc: BaseException) -> dict[str, Any]:
    """A JSON-ready FailureInfo for an exception raised by the user's function."""
    return dataclasses.asdict(failure_of(exc))


def _system_dirs() -> tuple[str, ...]:
    """Where modules that are not the user's code live (stdlib, site-packages, agentcron)."""
    dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    with contextlib.suppress(AttributeError):  # virtualenv's old site.py lacks these
        dirs.update(site.getsitepackages())
        dirs.add(site.getusersitepackages())
    dirs.add(str(Path(__file__).resolve().parents[1]))
    return tuple(os.path.join(os.path.realpath(d), "") for d in dirs if d)


class Worker:
    """The state a worker keeps between calls: which user code it has loaded."""

    def __init__(self) -> None:
        self._home = os.getcwd()
        self._system = _system_dirs()
        self._mtimes: dict[str, float] = {}  # user module file -> mtime when imported
        # The task directory the user modules were imported for: a task in another
        # directory may have modules of the same names, which sys.modules would hide.
        self._bound: str | None = None

    def handle(self, req: dict[str, Any], started: Callable[[], None]) -> dict[str, Any]:
        rid = req.get("id")
        target: str = req["target"]
        cwd: str = req.get("cwd") or self._home
        stale = self._stale_reason(cwd)
        if stale:
            return {"id": rid, "stale": stale}
        before = set(sys.modules)
        try:
            fd = open_output(Path(req["output"]))
        except OSError as exc:  # agentcron's own file: the home's storage, not the call's
            return {"id": rid, "storage": _storage(exc)}
        started()
        try:
            failure, text = _call(fd, target, req, cwd)
            if failure is None:
                try:
                    append_result(fd, text)
                except OSError as exc:
                    # The call succeeded; agentcron could not keep what it returned (a
                    # full disk): told as the function's own permanent error, never
                    # retried, and not counted in the home's alarm (outside-in probe).
                    return {"id": rid, "storage": _storage(exc)}
                return {"id": rid, "ok": True}
            keep_traceback(fd, str(failure.get("output_tail") or ""))
            return {"id": rid, "ok": False, "failure": failure}
        finally:
            os.close(fd)
            self._remember(set(sys.modules) - before, cwd)

    def _stale_reason(self, cwd: str) -> str | None:
        if self._bound is not None and self._bound != cwd:
            return f"it holds modules imported for {self._bound}, not {cwd}"
        for path, mtime in self._mtimes.items():
            try:
                changed = os.stat(path).st_mtime != mtime
            except OSError:
                changed = True
            if changed:
                return f"{path} changed on disk"
        return None

    def _remember(self, new_modules: set[str], cwd: str) -> None:
        for name in new_modules:
            module = sys.modules.get(name)
            path = getattr(module, "__file__", None)
            if not isinstance(path, str):
                continue
            real = os.path.realpath(path)
            if real.startswith(self._system):
                continue
            with contextlib.suppress(OSError):
                self._mtimes[real] = os.stat(real).st_mtime
            if self._bound is None:
                self._bound = cwd


def _call(fd: int, target: str, req: dict[str, Any], cwd: str) -> tuple[dict[str, Any] | None, str]:
    """Make the call with its output going to ``fd``: its failure described, or None
    and the text of what it returned (kept by the caller: see :meth:`Worker.handle`)."""
    me = os.getpid()
    try:
        with _redirected(fd), _call_environment(cwd, req.get("env") or {}):
            try:
                func = resolve_target(target)
                value = call_target(func, req.get("args") or [], req.get("kwargs") or {})
                _only_the_worker(me)
                return None, result_text(value)
            except BaseException as exc:  # the user's failure, whatever it is, is data
                _only_the_worker(me, exc)
                return _describe(exc), ""
    except Exception as exc:  # setting the call up failed (its cwd vanished): still an answer
        return _describe(exc), ""


def _only_the_worker(me: int, exc: BaseException | None = None) -> None:
    """End a copy of the worker the call made with ``os.fork()`` and returned from (or
    raised in): it went on as a second worker on the same pipe, answering the next
    requests with its own results, so one task's failure was recorded as another's and
    a failed run as a success (outside-in probe). It exits as the call ended there: 0
    for a return, a ``sys.exit`` code, else 1 with its traceback in the run's output,
    so a parent that waits for it sees a failure as one (review)."""
    if os.getpid() == me:
        return
    code = 0
    if isinstance(exc, SystemExit):
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    elif exc is not None:
        import traceback

        # fd 2 is the run's output. A copy that cannot write it still exits 1 below, and
        # that status is what its parent reads: there is no one else to tell
        with contextlib.suppress(Exception):
            traceback.print_exception(exc, file=sys.stderr)
            sys.stderr.flush()
        code = 1
    os._exit(code)


def _storage(exc: OSError) -> dict[str, Any]:
    """An error of agentcron's own write of the run's output, for the pool to raise."""
    return {"errno": exc.errno, "strerror": exc.strerror or str(exc), "filename": exc.filename}


def keep_traceback(fd: int, traceback: str) -> None:
    """Append a failure's traceback (its last lines, bounded by the extractor) to the
    run's output, where a program's stderr would have put it: ``agentcron logs``, the
    API and the owner's "Last lines of output" show it. Not writing it loses nothing
    the failure itself does not carry."""
    if traceback:
        with contextlib.suppress(OSError):
            append_result(fd, traceback + "\n")


def _from_user_code(tb: TracebackType | None) -> TracebackType | None:
    """The traceback from its first frame of the user's code on: the frames of this
    module and of the import machinery before it tell the owner nothing."""
    while tb is not None and tb.tb_next is not None and _machinery(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    return tb


def _machinery(filename: str) -> bool:
    return filename in (__file__, importlib.__file__) or filename.startswith("<frozen importlib")


def _describe(exc: BaseException) -> dict[str, Any]:
    exc.__traceback__ = _from_user_code(exc.__traceback__)
    try:
        return _bounded(failure_dict(exc))
    except Exception as bug:  # never let describing a failure kill the worker
        names = tuple(c.__name__ for c in type(exc).__mro__ if c is not object)
        info = FailureInfo(
            message=f"{type(exc).__name__}: {_text_of(exc)} (describing it failed: {bug!r})",
            exception_types=names,
            exception_module=type(exc).__module__,
            action="python",
        )
        return _bounded(dataclasses.asdict(info))


def _text_of(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return "?"


def _bounded(failure: dict[str, Any]) -> dict[str, Any]:
    """``failure`` with each text cut to FIELD_LIMIT (saying so) and at most
    HEADERS_LIMIT headers: an answer the pool can always read."""
    from agentcron.classify.extract import cut

    out = {k: cut(v, FIELD_LIMIT) if isinstance(v, str) else v for k, v in failure.items()}
    headers: dict[str, Any] = failure.get("headers") or {}
    out["headers"] = {
        cut(str(k), 200): cut(str(v), 2000) for k, v in list(headers.items())[:HEADERS_LIMIT]
    }
    return out


@contextlib.contextmanager
def _redirected(fd: int) -> Iterator[None]:
    """Point fds 1 and 2 (and so sys.stdout/sys.stderr) at the output file for a call."""
    _flush_std()
    saved = os.dup(1), os.dup(2)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    try:
        yield
    finally:
        _flush_std()
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__  # undo a user's swap
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(Exception):
            if stream is not None:
                stream.flush()


@contextlib.contextmanager
def _call_environment(cwd: str, env: dict[str, str]) -> Iterator[None]:
    """The task's cwd (also first on sys.path, so its modules import) and env, for one call."""
    old_cwd = os.getcwd()
    old_env = dict(os.environ)
    try:
        os.chdir(cwd)
        sys.path.insert(0, cwd)
        os.environ.update(env)
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(cwd)
        os.chdir(old_cwd)
        if dict(os.environ) != old_env:
            os.environ.clear()
            os.environ.update(old_env)


def _send(out: BinaryIO, message: dict[str, Any]) -> None:
    line = json.dumps(message).encode()
    if len(line) >= LINE_LIMIT:  # a last resort: failures are bounded before this
        line = json.dumps(_too_long(message, len(line))).encode()
    out.write(line + b"\n")
    out.flush()


def _too_long(message: dict[str, Any], size: int) -> dict[str, Any]:
    failure = FailureInfo(
        message=f"the function's failure could not be told: its description is {size} bytes",
        action="python",
    )
    return {"id": message.get("id"), "ok": False, "failure": dataclasses.asdict(failure)}


def main() -> None:
    proto_in = os.fdopen(os.dup(0), "rb")
    proto_out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    worker = Worker()
    busy = threading.Event()
    requests: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()

    def read() -> None:
        """The input is read on a thread of its own, so its end is seen during a call
        too: the daemon closed it, or died (``kill -9``). A busy worker went on alone,
        its call and the processes it started with it, while the next daemon ran the
        slot again beside it (outside-in probe). So a call in progress at the end is
        stopped with its process group."""
        for line in proto_in:
            requests.put(line)
        if busy.is_set():
            # its group when it leads one (the pool starts it so); else only itself,
            # never a group of its parent's
            me = os.getpid()
            if os.getpgid(0) == me:
                os.killpg(me, signal.SIGKILL)
            else:
                os.kill(me, signal.SIGKILL)
        requests.put(None)

    threading.Thread(target=read, name="agentcron-worker-input", daemon=True).start()
    _send(proto_out, {"ready": True, "pid": os.getpid()})
    while (line := requests.get()) is not None:
        if not line.strip():
            continue
        request = json.loads(line)
        started = {"id": request.get("id"), "started": True}
        busy.set()
        try:
            response = worker.handle(request, functools.partial(_send, proto_out, started))
        finally:
            busy.clear()
        _send(proto_out, response)
        if "stale" in response:
            return


if __name__ == "__main__":
    main()
