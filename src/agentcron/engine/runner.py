"""One attempt of one slot, from claim to recorded outcome.

The runner never lets a failure escape as an exception: whatever the action,
the precheck or the classifier do, the attempt ends with a row that says what
happened, and the slot moves to ``succeeded``, ``retrying`` (with the stored time
of the next attempt), ``failed``, ``skipped`` or ``cancelled``.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agentcron.actions.base import Action, ActionContext, ActionResult
from agentcron.actions.output import output_file_name, tail_lines
from agentcron.clock import Clock
from agentcron.durations import format_duration
from agentcron.faultlog import FaultLog
from agentcron.model import (
    AttemptOutcome,
    Claim,
    Classification,
    ErrorClass,
    FailureInfo,
    Finish,
    Finished,
    Slot,
    SlotStatus,
    TaskSpec,
)
from agentcron.model.failure import DAEMON_STOPPED, STORAGE_FAULT
from agentcron.redact import redact
from agentcron.store.base import Store

from .diskroom import DiskRoom
from .finisher import Finisher, RecordRefused
from .redaction import keep_output_private, task_secrets

log = logging.getLogger("agentcron.runner")


@dataclass
class RunnerDeps:
    store: Store
    clock: Clock
    home: Path
    owner: str
    actions: Callable[[TaskSpec], Action]
    rand: Callable[[], float]
    cancel_reason: Callable[[int], str | None] = lambda _slot_id: None
    overran: Callable[[int], bool] = lambda _slot_id: False
    # stopped before its task took a first step: recorded as stopped, the action not run
    stopped_before_start: Callable[[int], bool] = lambda _slot_id: False
    finisher: Finisher | None = None  # group commit; None writes each end at once
    stopping: Callable[[], bool] = lambda: False  # the daemon is shutting down
    finishing: Callable[[int], None] = lambda _slot_id: None  # an end is being recorded
    # what an ended attempt spent against daily budgets, written with its end
    spend: Callable[[TaskSpec, AttemptOutcome, datetime], tuple[tuple[str, str, int], ...]] = (
        lambda _spec, _outcome, _at: ()
    )
    fence: timedelta = timedelta(0)  # see EngineSettings.fence

    async def finish(self, item: Finish) -> Slot | None:
        self.finishing(item.slot_id)
        if self.finisher is not None:
            return await self.finisher.finish(item)
        return self.store.finish_many([item])[0]


# Bookkeeping for crash recovery (the launcher's marker file covers it too): a run must
# not fail for it, and through a database cut every run's failure was an ERROR with a
# traceback (117 of them in one chaos soak scenario). Logged as one streak instead.
_PGID_FAULTS = FaultLog(log, "recording commands' process groups (the runs' marker files stand in)")


def _recorder(store: Store, attempt_id: int) -> Callable[[int], None]:
    def record(pgid: int) -> None:
        from agentcron.home import hostname
        from agentcron.orphans import start_time

        try:
            store.note_attempt_process(
                attempt_id, {"host": hostname(), "pgid": pgid, "pgid_start": start_time(pgid)}
            )
        except Exception as exc:  # bookkeeping for crash recovery must not fail the run
            _PGID_FAULTS.failed(exc)
        else:
            _PGID_FAULTS.ok()

    return record


def _context_from_previous(store: Store, spec: TaskSpec) -> str | None:
    if spec.context != "previous":
        return None
    last = store.last_success(spec.name)
    if last is None or not last.output_path:
        return None
    from agentcron.actions.output import read_output

    try:
        return read_output(Path(last.output_path))
    except OSError:
        return None


def classify_failure(failure: FailureInfo, spec: TaskSpec, now: datetime) -> Classification:
    from agentcron.classify.classifier import classify

    try:
        return classify(failure, spec.classify, now=now)
    except Exception as exc:  # a classifier bug must not lose the run's record
        log.exception("classifier failed")
        return Classification(
            ErrorClass.CODE_ERROR, f"unclassified failure ({type(exc).__name__} in classifier)"
        )


def outcome_for_failure(
    spec: TaskSpec,
    attempt: int,
    failure: FailureInfo,
    now: datetime,
    rand: float,
    output_path: str | None,
    exit_code: int | None = None,
) -> tuple[AttemptOutcome, Classification]:
    """Classify a failure and decide between ``retrying`` and ``failed``.

    The stored ``error`` is the owner's sentence (the explanation with its decisive
    line, as the owner's message starts), redacted here with the secrets of the
    daemon that ran the task: a later reader's environment may lack them. The
    action's own terse words ("exited with code 1") stay in the attempt's
    ``detail`` when the sentence does not already hold them.
    """
    from agentcron.policies.retry import decide_retry

    secrets = task_secrets(spec)
    found = classify_failure(failure, spec, now)
    classification = replace(
        found,
        explanation=redact(found.explanation, secrets),
        fix=redact(found.fix, secrets) if found.fix else None,
    )
    decision = decide_retry(classification, attempt, spec.retries, spec.retry_backoff, rand)
    sentence = classification.explanation
    extra: dict[str, object] = {"decision": decision.reason}
    detail = redact(" ".join(failure.message.split()), secrets)
    if detail and detail.lower() not in sentence.lower():
        extra["detail"] = detail
    retry = decision.retry and decision.delay is not None
    if not retry:
        extra["fix"] = classification.fix
    return (
        AttemptOutcome(
            ok=False,
            slot_status=SlotStatus.RETRYING if retry else SlotStatus.FAILED,
            error_class=classification.error_class,
            error=sentence,
            explanation=sentence,
            exit_code=exit_code if exit_code is not None else failure.exit_code,
            next_attempt_at=now + decision.delay if retry and decision.delay is not None else None,
            output_path=output_path,
            extra=extra,
        ),
        classification,
    )


_STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGKILL})


def interrupted_failure(spec: TaskSpec) -> FailureInfo:
    """The attempt did not finish through no fault of its own: the daemon stopped."""
    return FailureInfo(
        message=DAEMON_STOPPED,
        known_class=ErrorClass.WORKER_LOST,
        action=spec.action_kind,
    )


def killed_by_stop(failure: FailureInfo, exit_code: int | None) -> bool:
    """Whether a failed run died of a stop signal (directly, or as a shell's 128 + n).

    Asked only while the daemon is stopping: a service manager that signals the whole
    group (systemd's default ``KillMode=control-group``) kills the task's processes
    with the daemon, and that is an interruption to retry, not the task's error.
    """
    if failure.signal is not None and failure.signal in _STOP_SIGNALS:
        return True
    code = exit_code if exit_code is not None else failure.exit_code
    return code is not None and (code - 128 in _STOP_SIGNALS or -code in _STOP_SIGNALS)


def _interrupted(
    deps: RunnerDeps, spec: TaskSpec, number: int, kept: str | None, now: datetime
) -> tuple[AttemptOutcome, Classification]:
    """How an interrupted attempt is recorded: lost, to be retried at once (at the next
    start) while attempts are left, else failed; it takes the same finish path as any
    other end, so listeners and the owner hear of it."""
    outcome, classification = outcome_for_failure(
        spec, number, interrupted_failure(spec), now, deps.rand(), kept
    )
    if outcome.slot_status is SlotStatus.RETRYING:
        outcome = replace(outcome, next_attempt_at=now)
    return outcome, classification


# The home's storage, not the task: full, read-only, not allowed, broken, or a file
# where one of its folders belongs (ENOTDIR, EEXIST, EISDIR: something put in the way)
_STORAGE_ERRNOS = frozenset(
    {
        errno.ENOSPC,
        errno.EROFS,
        errno.EACCES,
        errno.EPERM,  # an immutable file or folder (chattr +i), a security module's refusal
        errno.EDQUOT,
        errno.EIO,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.EEXIST,
    }
)


def _crashed_or_short(
    spec: TaskSpec, number: int, exc: Exception, deps: RunnerDeps
) -> tuple[AttemptOutcome, Classification | None]:
    """A failure of agentcron's own during a run: its process out of open files, memory
    or threads (retried: :mod:`agentcron.classify.resources`), else a bug (recorded)."""
    from agentcron.classify.resources import out_of_resources, resource_words

    what = out_of_resources(exc)
    if what is None:
        return _crashed(spec, exc), None
    log.error("run of %s: agentcron ran out of %s: %s", spec.name, what, exc)
    short = FailureInfo(
        message=resource_words(what, exc, "running this task"),
        known_class=ErrorClass.WORKER_LOST,
        action=spec.action_kind,
    )
    return outcome_for_failure(spec, number, short, deps.clock.now(), deps.rand(), None)


def _crashed(spec: TaskSpec, exc: Exception) -> AttemptOutcome:
    """A bug in agentcron's own code during a run: still a record, which says so."""
    log.error("run of %s crashed inside agentcron", spec.name, exc_info=exc)
    sentence = redact(
        f"agentcron itself failed while running this task ({type(exc).__name__}: {exc}); "
        "see the daemon log",
        task_secrets(spec),
    )
    return AttemptOutcome(
        ok=False,
        slot_status=SlotStatus.FAILED,
        error_class=ErrorClass.CODE_ERROR,
        error=sentence,
        explanation=sentence,
    )


_ROOM = DiskRoom()


def _disk_full(path: str) -> bool:
    """Whether the filesystem holding ``path`` has no room left for ordinary writes
    (asked of the kernel at most once a second while it has plenty: :mod:`.diskroom`)."""
    return _ROOM.full(path)


NEARLY_FULL = 16 * 1024 * 1024  # bytes free below which a failure's own words suffice
_NO_SPACE = ("no space left on device", "disk quota exceeded", "[errno 28]", "enospc")


def _lost_to_full_disk(path: str, failure: FailureInfo, exit_code: int | None) -> bool:
    """Whether a command failed because the disk holding its output is full: full now,
    or all but full while the failure itself says so (Python's exit 120, its stdout not
    flushed; "No space left on device" in what it wrote). A moment after the command
    met the full disk another run's file may have gone, freeing a few blocks: judged
    by the room alone, 38 such runs of a chaos soak failed for good as code errors,
    "Retrying will not help"."""
    if _disk_full(path):
        return True
    said = f"{failure.message}\n{failure.output_tail}".lower()
    if exit_code != 120 and not any(words in said for words in _NO_SPACE):
        return False
    free = _ROOM.free(path)
    return free is not None and free < NEARLY_FULL


def _overran(spec: TaskSpec, started: datetime, ended: datetime, abandoned: bool) -> bool:
    """Whether a run that reported success went past its bounds: the engine gave up
    on it, or it is an inline python call that took longer than its timeout (other
    actions stop their work at the timeout themselves)."""
    if abandoned:
        return True
    inline = spec.python is not None and spec.isolation == "inline"
    return inline and ended - started > action_limit(spec)


_OUTER_MARGIN = timedelta(seconds=10)


def action_limit(spec: TaskSpec) -> timedelta:
    """How long the action may take by its spec: the task's ``timeout``, or an llm
    call's own shorter bound. The task's is the run's limit whatever the call's says
    (it took the longer of the two: a 5 s task waited 60 s on a call, while the
    "taking long" warning said it would be stopped at 5 s)."""
    if spec.llm is not None and spec.llm.timeout is not None:
        return min(spec.timeout, spec.llm.timeout)
    return spec.timeout


def outer_limit(spec: TaskSpec) -> timedelta:
    """When the engine stops waiting for a run whatever its action does.

    Actions enforce their own timeout (and kill what they started); this bound only
    guards against a bug in one. It is checked by the engine's periodic sweep rather
    than a timer per run, which a burst of thousands of runs would pay for.
    """
    limit = action_limit(spec) + spec.kill_grace + _OUTER_MARGIN
    if spec.precheck is None:
        return limit
    from agentcron.actions.precheck import precheck_timeout

    return limit + precheck_timeout(spec.timeout)


async def execute(claim: Claim, deps: RunnerDeps) -> Finished | None:
    """Run one claimed attempt and record it. Returns None when the slot was lost to
    another node meanwhile (its record is theirs to write)."""
    spec, slot, attempt = claim.spec, claim.slot, claim.attempt
    started = deps.clock.now()
    suffix = ".md" if spec.llm is not None else ".log"
    out_path = output_file_name(
        deps.home, spec.name, slot.scheduled_for, attempt.number, suffix=suffix, slot_id=slot.id
    )
    ctx = ActionContext(
        task=spec.name,
        spec=spec,
        slot_id=slot.id,
        attempt=attempt.number,
        scheduled_for=slot.scheduled_for,
        output_path=out_path,
        timeout=spec.timeout,
        kill_grace=spec.kill_grace,
        context_text=None,
        on_started=_recorder(deps.store, attempt.id),
        fence=deps.fence,
    )
    classification: Classification | None = None
    has_file: bool | None = None  # whether the output file exists, when the attempt knows
    try:
        if deps.stopped_before_start(slot.id):
            raise asyncio.CancelledError  # handled below as any stop is
        outcome, classification, has_file = await _attempt(
            ctx, spec, attempt.number, deps, out_path
        )
        if outcome.ok and _overran(spec, started, deps.clock.now(), deps.overran(slot.id)):
            # An inline call cannot be stopped: one that returned after its timeout (or
            # after the engine gave up on it) still ran too long, whatever it returned.
            log.error("run of %s returned after its timeout; recorded as timed out", spec.name)
            overrun = FailureInfo(
                message=(
                    f"timed out after {format_duration(action_limit(spec))}; the inline "
                    "call returned only later and its result was discarded"
                ),
                known_class=ErrorClass.TIMEOUT,
                action=spec.action_kind,
            )
            outcome, classification = outcome_for_failure(
                spec, attempt.number, overrun, deps.clock.now(), deps.rand(), outcome.output_path
            )
    except asyncio.CancelledError:
        now = deps.clock.now()
        kept = out_path if os.path.exists(out_path) else None  # noqa: ASYNC240 - one stat
        if deps.overran(slot.id):
            # The engine's sweep gave up on a run whose action failed to end: a timeout.
            overrun = FailureInfo(
                message=f"timed out after {format_duration(action_limit(spec))}",
                known_class=ErrorClass.TIMEOUT,
                action=spec.action_kind,
            )
            outcome, classification = outcome_for_failure(
                spec, attempt.number, overrun, now, deps.rand(), kept
            )
        else:
            reason = deps.cancel_reason(slot.id)
            if reason is None:  # the daemon is stopping (or lost the slot: see below)
                outcome, classification = _interrupted(deps, spec, attempt.number, kept, now)
            else:
                # Stopped on purpose (overlap: replace, an operator's cancel, the slot
                # taken over by another node): recorded as such, if still ours.
                outcome = AttemptOutcome(
                    ok=False,
                    slot_status=SlotStatus.CANCELLED,
                    error=reason,
                    explanation=reason,
                    output_path=kept,
                )
        # The cancellation is handled: the record below is written and awaited like
        # any other end (a later timeout in this task must not see it as pending).
        current = asyncio.current_task()
        if current is not None:
            current.uncancel()
    except OSError as exc:
        if exc.errno not in _STORAGE_ERRNOS:
            outcome, classification = _crashed_or_short(spec, attempt.number, exc, deps)
        else:
            # The home could not be written (disk full, read-only, no permission): a
            # problem of this machine's storage, to retry, not an error of the task.
            log.error("run of %s could not write its files: %s", spec.name, exc)
            storage = FailureInfo(
                message=(
                    f"agentcron could not write the run's files in its home "
                    f"({exc.strerror or exc}: {exc.filename or deps.home})"
                ),
                known_class=ErrorClass.WORKER_LOST,
                action=spec.action_kind,
            )
            outcome, classification = outcome_for_failure(
                spec, attempt.number, storage, deps.clock.now(), deps.rand(), None
            )
            outcome = _storage_fault(outcome, storage.message)
    except Exception as exc:  # defensive: a bug in our code must still leave a record
        outcome, classification = _crashed_or_short(spec, attempt.number, exc, deps)
    finished = _ended(outcome, started, deps.clock.now())
    # The action has ended: from here on the run is only being recorded, and the engine
    # no longer stops it (a stop, the overrun sweep, a replace), or a succeeded run
    # cancelled while its output was redacted would be taken for lost and run again.
    deps.finishing(slot.id)
    await keep_output_private(deps.home, out_path, spec, has_file)
    if outcome.ok and outcome.slot_status is SlotStatus.SUCCEEDED and spec.deliver:
        from agentcron.notify.channels import channel_key

        outcome = replace(outcome, deliver_to=tuple((u, channel_key(u)) for u in spec.deliver))
    end = Finish(
        slot.id,
        attempt.id,
        deps.owner,
        outcome,
        finished,
        claimed=slot,
        spend=deps.spend(spec, outcome, finished),
    )
    try:
        fresh = await deps.finish(end)
    except RecordRefused as refused:
        # Something in this end's record (a value in its error or output tail) is
        # refused: a failure that says so is recorded in its place, and retried as a
        # lost run would be. Refused too, the error goes on: recorded lost at lease end.
        outcome, classification = outcome_for_failure(
            spec,
            attempt.number,
            FailureInfo(
                message=f"agentcron could not record how this run ended: {refused}",
                known_class=ErrorClass.WORKER_LOST,
                action=spec.action_kind,
            ),
            finished,
            deps.rand(),
            outcome.output_path,
        )
        fresh = await deps.finish(replace(end, outcome=outcome))
    if spec.command is not None:  # recorded: its launcher's marker has told all it can
        from agentcron.orphans import forget_run

        forget_run(deps.home, slot.id, attempt.number)
    if fresh is None:
        log.warning(
            "slot %s of %s was taken over before it finished; result dropped", slot.id, spec.name
        )
        return None
    if fresh.status is not outcome.slot_status:  # its task was removed: no retry follows
        outcome = replace(
            outcome, slot_status=fresh.status, next_attempt_at=None, reason=fresh.reason
        )
    details = ""
    if not outcome.ok and os.path.exists(out_path):  # noqa: ASYNC240 - failures only
        try:
            details = redact(tail_lines(Path(out_path)), task_secrets(spec))
        except OSError:
            details = ""
    return Finished(
        slot=fresh,
        spec=spec,
        attempt=attempt.number,
        outcome=outcome,
        classification=classification,
        details=details,
        started_at=started,
        finished_at=finished,
    )


async def _attempt(
    ctx: ActionContext, spec: TaskSpec, number: int, deps: RunnerDeps, out_path: str
) -> tuple[AttemptOutcome, Classification | None, bool | None]:
    """The attempt's outcome, its classification, and whether its output file exists
    once the action has returned (None when no action ran: a precheck may have
    written it)."""
    context_text = _context_from_previous(deps.store, spec)
    if spec.precheck is not None:
        from agentcron.actions.precheck import run_precheck
        from agentcron.config._env import MissingVariableError, PlaceholderError, expand_spec

        try:  # the precheck's command and env see ${NAME} filled, as the action does
            checked = expand_spec(spec)
        except (MissingVariableError, PlaceholderError) as exc:
            failure = FailureInfo(
                message=f"cannot run the precheck of {spec.name}: {exc}",
                known_class=ErrorClass.CONFIG_ERROR,
                action="precheck",
            )
            now = deps.clock.now()
            return (*outcome_for_failure(spec, number, failure, now, deps.rand(), None), None)
        pre = await run_precheck(checked, replace(ctx, spec=checked))
        if pre.failure is not None:
            now = deps.clock.now()
            return (*outcome_for_failure(spec, number, pre.failure, now, deps.rand(), None), None)
        if not pre.run:
            # The precheck's own words, stored and shown: redacted like any error.
            reason = redact(pre.reason or "precheck said not to run", task_secrets(spec))
            return (
                AttemptOutcome(
                    ok=True,
                    slot_status=SlotStatus.SKIPPED,
                    explanation=reason,
                    reason=f"precheck: {reason}",
                ),
                None,
                None,
            )
        if pre.context:
            context_text = f"{context_text}\n\n{pre.context}" if context_text else pre.context
    if context_text is not None:
        ctx = replace(
            ctx,
            context_text=context_text,
            env={**ctx.env, "AGENTCRON_CONTEXT": context_text[:100_000]},
        )
    action = deps.actions(spec)
    result: ActionResult = await action.run(ctx)
    outcome, classification, kept = _outcome_of(result, spec, number, deps, out_path)
    if result.ended_at is not None:
        outcome = replace(outcome, ended_at=datetime.fromtimestamp(result.ended_at, UTC))
    return outcome, classification, kept


def _ended(outcome: AttemptOutcome, started: datetime, seen: datetime) -> datetime:
    """When the attempt ended: when its action said, if that lies between its start
    and when the run saw the end; else when it was seen."""
    at = outcome.ended_at
    return at if at is not None and started <= at <= seen else seen


def _outcome_of(
    result: ActionResult,
    spec: TaskSpec,
    number: int,
    deps: RunnerDeps,
    out_path: str,
) -> tuple[AttemptOutcome, Classification | None, bool | None]:
    """What the action's ``result`` makes of the attempt (see :func:`_attempt`)."""
    now = deps.clock.now()
    kept = result.kept if result.kept is not None else os.path.exists(out_path)
    path = out_path if kept else None
    if result.ok:
        # a model that reported 0 completion tokens counts as empty even with text: the
        # record says which, so the owner is not told it "produced nothing" (probe)
        no_text = not result.output.strip()
        zero_tokens = spec.llm is not None and result.tokens.get("completion", 1) == 0
        empty = no_text or zero_tokens
        if empty and spec.llm is None and _disk_full(out_path):
            # The output may have been lost to a full disk: that is not the task
            # producing nothing, and must not open a "suspicious" incident.
            log.error(
                "%s ran while the disk of %s is full; its output may be lost", spec.name, out_path
            )
            empty = False
        return (
            AttemptOutcome(
                ok=True,
                slot_status=SlotStatus.SUCCEEDED,
                exit_code=result.exit_code,
                output_path=path,
                tokens=result.tokens,
                empty_output=empty,
                extra={"zero_tokens_with_text": True} if zero_tokens and not no_text else {},
            ),
            None,
            kept,
        )
    failure = result.failure or FailureInfo(
        message="the action failed without saying why", action=spec.action_kind
    )
    storage = spec.command is not None and _lost_to_full_disk(out_path, failure, result.exit_code)
    if storage:
        # A command that failed while its output had nowhere to go (Python exits 120
        # when it cannot flush stdout) failed because of this machine's disk.
        failure = FailureInfo(
            message=(
                f"failed while the disk holding its output is full ({failure.message}); "
                "agentcron could not write the run's files in its home"
            ),
            exit_code=result.exit_code,
            known_class=ErrorClass.WORKER_LOST,
            action=spec.action_kind,
        )
    if deps.stopping() and killed_by_stop(failure, result.exit_code):
        outcome, classification = _interrupted(deps, spec, number, path, now)
        return replace(outcome, exit_code=result.exit_code), classification, kept
    outcome, classification = outcome_for_failure(
        spec, number, failure, now, deps.rand(), path, result.exit_code
    )
    if result.tokens:
        outcome = replace(outcome, tokens=result.tokens)
    if storage:
        outputs = os.path.dirname(os.path.dirname(out_path))  # HOME/outputs
        outcome = _storage_fault(outcome, f"the disk holding {outputs} is full")
    return outcome, classification, kept


def _storage_fault(outcome: AttemptOutcome, what: str) -> AttemptOutcome:
    """Mark a run that failed because the home could not be written (:data:`STORAGE_FAULT`):
    the notifier tells it once for the home, not once per task."""
    return replace(outcome, extra={**outcome.extra, STORAGE_FAULT: what})
