"""What happened: run history in pages, one run with every attempt, its output,
incidents and their acknowledgement, and the audit trail of changes.

Inputs arrive as people and scripts type them (``status=failed,missed``,
``since=2h`` or an ISO time, an opaque ``cursor``) and are checked here, once, so
the CLI and the API reject a bad value with the same words and the same field.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

from agentcron._service.advice import Act, Advice
from agentcron._service.base import (
    ConflictError,
    NotFoundError,
    ServiceCore,
    ServiceError,
    iso,
)
from agentcron.model import Slot, SlotStatus
from agentcron.model.incident import Incident, IncidentKind
from agentcron.store._api_sql import SlotQuery

MAX_PAGE = 10_000
_STREAM_CHUNK = 64 * 1024
_STREAM_OVERLAP = 512  # longer than any secret shape redaction knows (see agentcron.redact)

log = logging.getLogger("agentcron.service")


def parse_when(value: str | datetime | None, field: str, now: datetime) -> datetime | None:
    """An instant: ISO 8601 (an offset is best; without one it is UTC) or a duration
    meaning that long ago (``90m``, ``2d``)."""
    if value is None or isinstance(value, datetime):
        if isinstance(value, datetime) and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        from agentcron.durations import parse_duration

        try:
            ago = parse_duration(text)
        except (ValueError, OverflowError):
            raise ServiceError(
                f"{field}: {value!r} is neither an ISO time (2026-06-01T08:00+02:00) nor "
                "a duration ago (90m, 2d)",
                field=field,
            ) from None
        try:
            return now - ago
        except OverflowError:  # a duration, but farther back than any date
            raise ServiceError(
                f"{field}: {value!r} is a duration, but reaches back before the year 1; "
                "give a shorter one (90m, 2d) or an ISO time",
                field=field,
            ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def parse_statuses(value: str | Sequence[str] | None) -> list[SlotStatus]:
    """``failed,missed`` (or a list of words) as statuses; an unknown word is named."""
    if value is None:
        return []
    words = value.split(",") if isinstance(value, str) else list(value)
    out = []
    for word in (w.strip() for w in words):
        if not word:
            continue
        try:
            out.append(SlotStatus(word))
        except ValueError:
            raise ServiceError(
                f"status: unknown run status {word!r}; choose from "
                f"{', '.join(s.value for s in SlotStatus)}",
                field="status",
            ) from None
    return out


def encode_cursor(slot: Slot) -> str:
    raw = f"{slot.scheduled_for.timestamp()!r}:{slot.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, slot_id = raw.partition(":")
        return datetime.fromtimestamp(float(at), UTC), int(slot_id)
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError, OSError):
        raise ServiceError(
            f"cursor: {cursor!r} is not a cursor this server gave out; use the "
            "next_cursor of the previous page",
            field="cursor",
        ) from None


def check_limit(limit: int, field: str = "limit", most: int = MAX_PAGE) -> None:
    if limit < 1 or limit > most:
        raise ServiceError(f"{field} must be between 1 and {most}, got {limit}", field=field)


def _tokens(attempts: Sequence[Any]) -> dict[str, int]:
    """Model tokens a slot used, all attempts together (each failed call may cost too)."""
    total: dict[str, int] = {}
    for attempt in attempts:
        for key, value in attempt.tokens.items():
            total[key] = total.get(key, 0) + int(value)
    return total


def _stream(handle: BinaryIO, secrets: list[str]) -> Iterator[str]:
    """Decode and redact ``handle`` piece by piece. The last stretch of each piece
    (longer than any secret shape or known value) waits for the next read: a secret
    cut in two by a read is still found whole."""
    import codecs

    from agentcron.redact import redact

    overlap = max([_STREAM_OVERLAP, *(len(s) for s in secrets)])
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    held = ""
    with handle:
        while True:
            data = handle.read(_STREAM_CHUNK)
            text = held + decoder.decode(data, final=not data)
            if not data:
                if text:
                    yield redact(text, secrets)
                return
            clean = redact(text, secrets)
            if len(clean) > overlap:
                yield clean[:-overlap]
                held = clean[-overlap:]
            else:
                held = clean


def incident_view(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.id,
        "task": incident.task,
        "kind": incident.kind.value,
        "open": incident.is_open,
        "opened_at": iso(incident.opened_at),
        "closed_at": iso(incident.closed_at),
        "escalated": incident.escalated,
        "summary": incident.summary,
        "count": incident.count,
        "failed_runs": incident.failed_runs,
        "retries": incident.retries,
        "first_error_class": incident.first_error_class.value
        if incident.first_error_class
        else None,
        "last_error_class": incident.last_error_class.value if incident.last_error_class else None,
        "slot_id": incident.slot_id,
        "since": iso(incident.since),
        "streak": incident.streak,
        "updated_at": iso(incident.updated_at),
        "reminded_at": iso(incident.reminded_at),
        "acknowledged_at": iso(incident.acknowledged_at),
        "acknowledged_by": incident.acknowledged_by,
    }


class HistoryMixin(ServiceCore):
    # ---- runs --------------------------------------------------------------------
    def slot_view(self, slot: Slot, zone: ZoneInfo | None = None) -> dict[str, Any]:
        if zone is None:
            rec = self.store.get_task(slot.task)
            zone = self._zone(rec.spec) if rec else None
        return {
            "id": slot.id,
            "task": slot.task,
            "scheduled_for": iso(slot.scheduled_for, zone),
            "status": slot.status.value,
            "reason": slot.reason,
            "attempts": slot.attempts,
            "error_class": slot.error_class.value if slot.error_class else None,
            "error": slot.error,
            "started_at": iso(slot.started_at, zone),
            "finished_at": iso(slot.finished_at, zone),
            "next_attempt_at": iso(slot.next_attempt_at, zone),
            "delivery_status": slot.delivery_status.value,
            "output_path": slot.output_path,
            "trigger": slot.trigger,
        }

    def runs(self, task: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """The newest ``limit`` runs (of ``task``), newest first."""
        return self.runs_page(task, limit=limit)[0]

    def runs_page(
        self,
        task: str | None = None,
        *,
        status: str | Sequence[str] | None = None,
        since: str | datetime | None = None,
        before: str | datetime | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of run history, newest first, and the cursor of the next page (None
        when this page is the last one)."""
        check_limit(limit)
        now = self.clock.now()
        query = SlotQuery(
            task=task,
            statuses=parse_statuses(status),
            since=parse_when(since, "since", now),
            before=parse_when(before, "before", now),
            cursor=decode_cursor(cursor) if cursor else None,
            limit=limit + 1,  # one more tells whether another page follows
        )
        if task is not None:
            self._task_or_history(task)
        slots = self.store.slots_page(query)
        more = len(slots) > limit
        slots = slots[:limit]
        zones: dict[str, ZoneInfo | None] = {}
        out = []
        for slot in slots:
            if slot.task not in zones:
                rec = self.store.get_task(slot.task)
                zones[slot.task] = self._zone(rec.spec) if rec else None
            view = self.slot_view(slot, zones[slot.task])
            view["tokens"] = _tokens(self.store.attempts(slot.id)) if slot.attempts else {}
            out.append(view)
        return out, encode_cursor(slots[-1]) if more and slots else None

    def _task_or_history(self, name: str) -> None:
        """Refuse a ``task`` filter that names no task and no history, naming the
        filter: ``runs?task=nope`` said ``field: name``, a parameter it does not have."""
        from agentcron.model.task import TASK_NAME

        try:
            if not TASK_NAME.fullmatch(name):
                self._task(name)  # raises: no task, nor history, can have that name
            if self.store.get_task(name) is None and not self.store.slots(name, limit=1):
                self._task(name)  # raises with a suggestion
        except NotFoundError as exc:
            exc.field = "task"
            raise

    def _slot(self, run_id: int) -> Slot:
        # an id past the database's integers is no run's (it made the driver raise)
        slot = self.store.get_slot(run_id) if _storable(run_id) else None
        if slot is None:
            # a later run exists: this one was recorded, and deleted since (ids are not
            # reused), by keep_history; said, as "no run" reads like a wrong number
            gone = run_id > 0 and _storable(run_id) and self.store.slot_after(run_id)
            raise NotFoundError(
                f"no run with id {run_id}"
                + (
                    " any more: it was deleted with the history past its task's keep_history"
                    if gone
                    else ""
                ),
                field="run_id",
                advice=Advice(Act.LIST_RUNS),
            )
        return slot

    def run_detail(self, run_id: int, with_output: bool = True) -> dict[str, Any]:
        """One run: every attempt (class, explanation, tokens, node), its deliveries
        and, with ``with_output``, its kept output (redacted, the first megabyte)."""
        slot = self._slot(run_id)
        rec = self.store.get_task(slot.task)
        # every time of the run in the task's zone, its attempts' too (they were UTC
        # beside the run's own local times: probe)
        zone = self._zone(rec.spec) if rec else None
        view = self.slot_view(slot, zone)
        attempts = self.store.attempts(run_id)
        view["tokens"] = _tokens(attempts)
        view["attempts_detail"] = [
            {
                "number": a.number,
                "status": a.status,
                "started_at": iso(a.started_at, zone),
                "finished_at": iso(a.finished_at, zone),
                "duration_s": a.duration_s,
                "error_class": a.error_class.value if a.error_class else None,
                "error": a.error,
                "explanation": a.explanation,
                "exit_code": a.exit_code,
                "output_path": a.output_path,
                "tokens": a.tokens,
                "node": a.node,
                "fix": a.extra.get("fix"),
            }
            for a in attempts
        ]
        view["deliveries"] = [
            {
                "target": d.target_key,
                "status": d.status.value,
                "attempts": d.attempts,
                "next_attempt_at": iso(d.next_attempt_at, zone),
                "last_error": d.last_error,
            }
            for d in self.store.deliveries(slot_id=run_id)
        ]
        view["output"] = None
        if with_output:
            from agentcron.actions.output import read_output
            from agentcron.redact import redact

            for path in self._output_paths(slot, view["attempts_detail"]):
                try:
                    view["output"] = redact(read_output(path), self._secrets(slot.task))
                    break
                except FileNotFoundError:
                    continue  # pruned by keep_outputs, or an older attempt's: try the next
                except OSError as exc:
                    _unreadable(path, exc)
        return view

    def _output_paths(self, slot: Slot, attempts: list[dict[str, Any]]) -> list[Path]:
        raw = [slot.output_path] + [a["output_path"] for a in reversed(attempts)]
        return [Path(p) for p in raw if p]

    def _secrets(self, task: str) -> list[str]:
        """The values redaction replaces in the task's output: secret-named variables
        of the daemon's and the task's environment."""
        from agentcron.redact import secret_values_from_env

        rec = self.store.get_task(task)
        env = rec.spec.env if rec is not None else {}
        return secret_values_from_env({**os.environ, **env})

    def output_stream(self, run_id: int) -> Iterator[str]:
        """The run's kept output file, whole, redacted, in pieces (for streaming).

        Raises :class:`NotFoundError` at once, before the first piece, when the run
        or its file is not there. Each piece is redacted with a tail held back until
        the next read, so a secret cut by a read boundary is still found whole."""
        slot = self._slot(run_id)
        attempts = self.run_detail(run_id, with_output=False)["attempts_detail"]
        for path in self._output_paths(slot, attempts):
            try:
                handle = path.open("rb")
            except FileNotFoundError:
                continue  # pruned by keep_outputs, or an older attempt's: try the next
            except OSError as exc:
                _unreadable(path, exc)
                continue
            return _stream(handle, self._secrets(slot.task))
        raise NotFoundError(
            f"run {run_id} has no kept output (it did not run, printed nothing, or its "
            "file was pruned by keep_outputs)",
            field="run_id",
        )

    # ---- incidents ---------------------------------------------------------------
    def incidents(
        self,
        task: str | None = None,
        *,
        open_only: bool = False,
        kind: str | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """Open incidents first, newest first within each group."""
        check_limit(limit)
        if kind is not None and kind not in {k.value for k in IncidentKind}:
            raise ServiceError(
                f"kind: unknown incident kind {kind!r}; choose from "
                f"{', '.join(k.value for k in IncidentKind)}",
                field="kind",
            )
        if task is not None:
            self._task_or_history(task)
        rows = self.store.incidents_page(task, open_only=open_only, kind=kind, limit=limit)
        return [incident_view(i) for i in rows]

    def incident(self, incident_id: int) -> dict[str, Any]:
        found = self.store.get_incident(incident_id) if _storable(incident_id) else None
        if found is None:
            raise NotFoundError(
                f"no incident with id {incident_id}",
                field="incident_id",
                advice=Advice(Act.LIST_INCIDENTS),
            )
        return incident_view(found)

    def acknowledge(self, incident_id: int) -> dict[str, Any]:
        """Say an incident was seen: who and when are kept and shown. Acknowledging
        again keeps the first acknowledgement; a closed incident cannot be."""
        before = self.incident(incident_id)
        if not before["open"]:
            raise ConflictError(
                f"incident {incident_id} closed at {before['closed_at']}; only open "
                "incidents are acknowledged",
                field="incident_id",
            )
        if before["acknowledged_at"] is not None:
            return before
        from agentcron._service.base import current_actor

        who = current_actor.get() or self.actor
        after = self.store.acknowledge_incident(incident_id, who.name, self.clock.now())
        if after is None:  # removed meanwhile (pruning takes closed ones only)
            raise NotFoundError(f"no incident with id {incident_id}", field="incident_id")
        view = incident_view(after)
        self._audit(
            "incident.acknowledge",
            after.task,
            {"incident": incident_id, "acknowledged_at": None},
            {
                "incident": incident_id,
                "acknowledged_at": view["acknowledged_at"],
                "acknowledged_by": view["acknowledged_by"],
            },
        )
        return view

    # ---- audit -------------------------------------------------------------------
    def audit(
        self, task: str | None = None, limit: int = 50, before_id: int | None = None
    ) -> list[dict[str, Any]]:
        """Changes made through the CLI, the API and the dashboard, newest first."""
        check_limit(limit)
        if task is not None:
            from agentcron.model.task import TASK_NAME

            if not TASK_NAME.fullmatch(task):
                raise ServiceError(f"task: {task[:120]!r} is not a task name", field="task")
        entries = self.store.audit_entries(task, limit, before_id)
        if task is not None and not entries and before_id is None:
            # a typo said "no changes recorded" (outside-in probe): unknown names say so,
            # with a suggestion, as `show` and `runs` do
            self._task_or_history(task)
        return [
            {
                "id": e.id,
                "at": iso(e.at),
                "actor": e.actor,
                "via": e.via,
                "action": e.action,
                "task": e.task,
                "before": e.before,
                "after": e.after,
            }
            for e in entries
        ]


def _unreadable(path: Path, exc: OSError) -> None:
    """A kept output that exists but cannot be read (its mode, a disk error) is not the
    same as none: the reader is shown none, the log says why."""
    log.warning("cannot read the kept output %s: %s", path, exc.strerror or exc)


def _storable(row_id: int) -> bool:
    """Whether ``row_id`` fits the database's 64-bit integers: a larger one names no row
    (`agentcron logs 99999999999999999999999` ended in a traceback, an MCP call in an
    error without its reason: outside-in probe)."""
    return -(2**63) <= row_id < 2**63
