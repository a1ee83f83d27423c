"""The one service API behind every interface.

The CLI, the HTTP API, the dashboard and the MCP server call these methods and
nothing else: none of them touches the store. Reads return plain dicts whose
keys are the documented ``--json`` field names; writes validate with the same
rules as the config file and raise :class:`ServiceError` with a message that names
the task and field.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from agentcron.clock import Clock, SystemClock
from agentcron.health import task_health
from agentcron.home import hostname, pid_alive
from agentcron.model import (
    NewSlot,
    Slot,
    SlotStatus,
    TaskRecord,
    TaskSource,
    TaskSpec,
)
from agentcron.model.incident import Incident
from agentcron.store.base import Store

DAEMON_STALE_AFTER = timedelta(
    seconds=float(os.environ.get("AGENTCRON_STALE_AFTER", "30"))
)  # heartbeats come every 5 s; the env knob exists for tests and slow machines


class ServiceError(Exception):
    """A request that cannot be done as asked; the message says why and what to do."""


@dataclass(frozen=True)
class Defaults:
    timezone: str | None = None
    task_defaults: Mapping[str, Any] | None = None


def iso(value: datetime | None, zone: ZoneInfo | None = None) -> str | None:
    if value is None:
        return None
    return (value.astimezone(zone) if zone else value).isoformat()


class Service:
    def __init__(
        self,
        store: Store,
        home: Path,
        clock: Clock | None = None,
        defaults: Defaults | None = None,
    ) -> None:
        self.store = store
        self.home = home
        self.clock = clock or SystemClock()
        self.defaults = defaults or Defaults()

    # ---- helpers -----------------------------------------------------------------
    def _zone(self, spec: TaskSpec) -> ZoneInfo:
        return spec.zone(self.defaults.timezone)

    def _task(self, name: str) -> TaskRecord:
        rec = self.store.get_task(name)
        if rec is None:
            known = sorted(t.name for t in self.store.list_tasks())
            from difflib import get_close_matches

            hint = get_close_matches(name, known, n=1)
            raise ServiceError(
                f"no task named {name!r}"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
                + ("" if known else "; no tasks are defined yet")
            )
        return rec

    def first_fire(self, spec: TaskSpec, after: datetime) -> datetime | None:
        from agentcron.schedules.build import build_schedule

        fire = build_schedule(spec, self.defaults.timezone).next_after(after)
        return fire.at if fire else None

    def count_fires(self, spec: TaskSpec, start: datetime, end: datetime) -> int:
        """Fires in ``[start, end]`` (capped at 10,000), for "N runs missed"."""
        from agentcron.schedules.base import fires_between
        from agentcron.schedules.build import build_schedule

        sched = build_schedule(spec, self.defaults.timezone)
        return 1 + len(fires_between(sched, start, end, limit=10_000))

    def period(self, spec: TaskSpec) -> timedelta:
        from agentcron.schedules.build import build_schedule

        return build_schedule(spec, self.defaults.timezone).period()

    # ---- sync from the config file ----------------------------------------------------
    def sync_file_tasks(
        self, specs: Mapping[str, TaskSpec]
    ) -> tuple[list[str], list[str], list[str]]:
        now = self.clock.now()
        # The store keeps an existing task's grid position unless its schedule changed;
        # this value only serves new tasks and changed schedules.
        next_fire = {
            name: None if spec.paused else self.first_fire(spec, now)
            for name, spec in specs.items()
        }
        return self.store.sync_file_tasks(list(specs.values()), now, next_fire)

    def upsert_code_tasks(self, specs: list[TaskSpec]) -> None:
        """Tasks registered from Python code: written in one transaction (100,000 at once
        must take seconds, not minutes); an existing task keeps its place on the grid."""
        now = self.clock.now()
        # tasks sharing a schedule share its first fire (the key: the fields that set it)
        firsts: dict[tuple[Any, ...], datetime | None] = {}

        def first(spec: TaskSpec) -> datetime | None:
            if spec.paused:
                return None
            key = (spec.cron, spec.every, spec.anchor, spec.at, spec.timezone)
            if key not in firsts:
                firsts[key] = self.first_fire(spec, now)
            return firsts[key]

        self.store.upsert_many([(spec, first(spec)) for spec in specs], TaskSource.CODE, now)

    # ---- reads -------------------------------------------------------------------
    def list_tasks(self) -> list[dict[str, Any]]:
        incidents: dict[str, list[Incident]] = {}
        for incident in self.store.incidents(open_only=True, limit=100_000):
            incidents.setdefault(incident.task, []).append(incident)
        return [
            self._task_view(rec, incidents.get(rec.name, []))
            for rec in self.store.list_tasks()
        ]

    def _task_view(
        self, rec: TaskRecord, incidents: list[Incident] | None = None
    ) -> dict[str, Any]:
        zone = self._zone(rec.spec)
        now = self.clock.now()
        last = self.store.last_slots(rec.name, 1)
        active = self.store.active_slots(rec.name)
        if incidents is None:
            incidents = self.store.incidents(task=rec.name, open_only=True, limit=100)
        health, detail = task_health(
            rec, active, last[0] if last else None, now, self.period(rec.spec), zone, incidents
        )
        delivery = None
        recent = self.store.slots(rec.name, limit=1, statuses=[SlotStatus.SUCCEEDED])
        if recent:
            delivery = recent[0].delivery_status.value
        return {
            "name": rec.name,
            "schedule": rec.spec.schedule_text,
            "timezone": str(zone.key),
            "paused": rec.paused,
            "next_run": iso(rec.next_fire_at, zone),
            "last_status": last[0].status.value if last else None,
            "last_run": iso(last[0].scheduled_for, zone) if last else None,
            "health": health.value,
            "health_detail": detail,
            "source": "api" if rec.source is not TaskSource.FILE else "file",
            "action": rec.spec.action_kind,
            "delivery_status": delivery,
        }

    def show_task(self, name: str) -> dict[str, Any]:
        rec = self._task(name)
        view = self._task_view(rec)
        view["spec"] = _redacted(rec.spec.model_dump(mode="json", by_alias=True, exclude_none=True))
        view["next"] = self.next_fires(name, 3)
        view["recent_runs"] = self.runs(name, 5)
        return view

    def next_fires(
        self, name: str, count: int = 5, start: datetime | None = None
    ) -> list[dict[str, Any]]:
        from agentcron.schedules.build import build_schedule

        if count < 1 or count > 1000:
            raise ServiceError(f"--count must be between 1 and 1000, got {count}")
        rec = self._task(name)
        sched = build_schedule(rec.spec, self.defaults.timezone)
        # a time without an offset is read in the task's zone, as its schedule is
        cursor = start or self.clock.now()
        if cursor.tzinfo is None:
            cursor = cursor.replace(tzinfo=self._zone(rec.spec))
        out: list[dict[str, Any]] = []
        for _ in range(count):
            fire = sched.next_after(cursor)
            if fire is None:
                break
            out.append(
                {"at": fire.at.isoformat(), "local": fire.local.isoformat(), "note": fire.note}
            )
            cursor = fire.at
        return out

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
        if limit < 1 or limit > 10000:
            raise ServiceError(f"--limit must be between 1 and 10000, got {limit}")
        if task is not None:
            self._task_or_history(task)
        zones: dict[str, ZoneInfo | None] = {}
        out = []
        for slot in self.store.slots(task, limit=limit):
            if slot.task not in zones:
                rec = self.store.get_task(slot.task)
                zones[slot.task] = self._zone(rec.spec) if rec else None
            view = self.slot_view(slot, zones[slot.task])
            view["tokens"] = _tokens(self.store.attempts(slot.id)) if slot.attempts else {}
            out.append(view)
        return out

    def _task_or_history(self, name: str) -> None:
        if self.store.get_task(name) is None and not self.store.slots(name, limit=1):
            self._task(name)  # raises with a suggestion

    def run_detail(self, run_id: int) -> dict[str, Any]:
        slot = self.store.get_slot(run_id)
        if slot is None:
            raise ServiceError(f"no run with id {run_id}; `agentcron runs` lists them")
        view = self.slot_view(slot)
        attempts = [
            {
                "number": a.number,
                "status": a.status,
                "started_at": a.started_at.isoformat(),
                "finished_at": a.finished_at.isoformat() if a.finished_at else None,
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
            for a in self.store.attempts(run_id)
        ]
        view["attempts_detail"] = attempts
        view["output"] = self._read_output(slot, attempts)
        if view["output"] is not None:
            from agentcron.redact import redact, secret_values_from_env

            rec = self.store.get_task(slot.task)
            env = rec.spec.env if rec is not None else {}
            view["output"] = redact(view["output"], secret_values_from_env({**os.environ, **env}))
        return view

    def _read_output(self, slot: Slot, attempts: list[dict[str, Any]]) -> str | None:
        from agentcron.actions.output import read_output

        paths = [slot.output_path] + [a["output_path"] for a in reversed(attempts)]
        for raw in paths:
            if raw:
                try:
                    return read_output(Path(raw))
                except OSError:
                    continue
        return None

    # ---- writes ------------------------------------------------------------------
    def add_task(self, name: str, raw: Mapping[str, Any], replace: bool = False) -> dict[str, Any]:
        from agentcron.config.errors import ConfigError
        from agentcron.config.loader import validate_task_mapping

        existing = self.store.get_task(name)
        if existing is not None and existing.source is TaskSource.FILE:
            raise ServiceError(
                f"task {name!r} is defined in the config file; "
                "change it there (or pick another name)"
            )
        if existing is not None and not replace:
            raise ServiceError(
                f"task {name!r} already exists; remove it first or choose another name"
            )
        try:
            spec = validate_task_mapping(name, raw, self.defaults.task_defaults)
        except ConfigError as exc:
            raise ServiceError(str(exc)) from None
        now = self.clock.now()
        nxt = None if spec.paused else self.first_fire(spec, now)
        self.store.upsert_task(spec, TaskSource.API, now, nxt)
        return self._task_view(self._task(name))

    def pause(self, name: str) -> dict[str, Any]:
        self._task(name)
        self.store.set_paused(name, True, self.clock.now(), None)
        return self._task_view(self._task(name))

    def resume(self, name: str) -> dict[str, Any]:
        rec = self._task(name)
        now = self.clock.now()
        # Resuming starts from now: runs that fell due while paused were never owed.
        self.store.set_paused(name, False, now, self.first_fire(rec.spec, now))
        return self._task_view(self._task(name))

    def remove(self, name: str) -> None:
        rec = self._task(name)
        if rec.source is TaskSource.FILE:
            raise ServiceError(
                f"task {name!r} is defined in the config file; delete it there "
                "(the daemon drops it on reload), or `agentcron pause` it"
            )
        if not self.store.remove_task(name, self.clock.now()):
            raise ServiceError(f"no task named {name!r}")

    def trigger(self, name: str) -> dict[str, Any]:
        rec = self._task(name)
        now = self.clock.now()
        for bump in range(1000):
            slot = self.store.add_slot(
                rec.name,
                NewSlot(now + timedelta(microseconds=bump), SlotStatus.PENDING, trigger="manual"),
                now,
            )
            if slot is not None:
                return self.slot_view(slot, self._zone(rec.spec))
        raise ServiceError("could not record the manual run")  # pragma: no cover

    # ---- channels -------------------------------------------------------------------
    def channel_urls(self, global_channels: list[str]) -> list[str]:
        """Every notify channel in use: the global ones and each task's own."""
        urls = list(global_channels)
        for rec in self.store.list_tasks():
            for url in rec.spec.notify or []:
                if url not in urls:
                    urls.append(url)
        return urls

    async def notify_test(self, urls: list[str]) -> list[dict[str, Any]]:
        """Send a test message to each channel now (not through the outbox)."""
        from agentcron.model import Message
        from agentcron.notify.channels import channel_for

        if not urls:
            raise ServiceError(
                "no channels configured: add `notify:` URLs to agentcron.yaml or pass --channel URL"
            )
        message = Message(
            title="agentcron test message",
            body="✔ This is a test from agentcron: notifications reach you through this channel.",
            task="",
            event="test",
            incident_kind="",
            severity="info",
        )
        results = []
        for url in urls:
            channel = channel_for(url)
            result = await channel.send(message)
            results.append(
                {
                    "channel": channel.key,
                    "ok": result.ok,
                    "error": result.error,
                    "permanent": result.permanent,
                }
            )
        return results

    def channel_health(self) -> list[dict[str, Any]]:
        return [
            {
                "channel": h.channel_key,
                "ok": h.ok,
                "pending": h.pending,
                "last_ok_at": iso(h.last_ok_at),
                "last_error": h.last_error,
                "last_error_at": iso(h.last_error_at),
                "failing_since": iso(h.failing_since),
                "broken": h.broken,
                "undeliverable": h.undeliverable,
            }
            for h in self.store.channel_health()
        ]

    def doctor_checks(self) -> list[dict[str, str]]:
        """Channel and delivery checks for `agentcron doctor`."""
        checks = []
        for h in self.channel_health():
            if h["broken"]:
                checks.append(
                    {
                        "name": f"channel {h['channel']}",
                        "status": "fail",
                        "message": f"unusable: {h['last_error']} "
                        f"({h['undeliverable']} message(s) could not be sent)",
                    }
                )
            elif not h["ok"]:
                checks.append(
                    {
                        "name": f"channel {h['channel']}",
                        "status": "fail",
                        "message": f"failing since {h['failing_since']}: {h['last_error']}"
                        f"; {h['pending']} message(s) waiting, they will be retried",
                    }
                )
            else:
                checks.append(
                    {
                        "name": f"channel {h['channel']}",
                        "status": "ok",
                        "message": f"last sent {h['last_ok_at'] or 'never'}, "
                        f"{h['pending']} waiting",
                    }
                )
        failed = [d for d in self.store.deliveries(limit=200) if d.status.value == "failed"]
        if failed:
            checks.append(
                {
                    "name": "deliveries",
                    "status": "warn",
                    "message": f"{len(failed)} output(s) could not be delivered, e.g. "
                    f"{failed[0].task} to {failed[0].target_key}: {failed[0].last_error}",
                }
            )
        open_incidents = self.store.incidents(open_only=True, limit=20)
        if open_incidents:
            checks.append(
                {
                    "name": "incidents",
                    "status": "warn",
                    "message": "; ".join(
                        f"{i.task}: {i.kind.value} ({i.summary})" for i in open_incidents[:5]
                    ),
                }
            )
        return checks

    # ---- daemon health -------------------------------------------------------------
    def prune(self, dry_run: bool = False) -> dict[str, Any]:
        """Remove history past ``keep_history`` now (``agentcron prune``), or count what
        would go. The daemon does the same periodically; running both is harmless."""
        from agentcron.retention import default_keep_history, prune_history

        report = prune_history(
            self.store,
            self.home,
            self.clock.now(),
            default_keep_history(self.defaults.task_defaults),
            dry_run=dry_run,
        )
        return report.as_dict()

    def daemon_status(self) -> dict[str, Any]:
        now = self.clock.now()
        nodes = []
        alive = False
        for n in self.store.nodes():
            # A daemon of this home on this machine whose process is gone is dead now,
            # not DAEMON_STALE_AFTER later (the daemon's own restart check is the same).
            gone = n.host == hostname() and n.home == str(self.home) and not pid_alive(n.pid)
            stale = n.stopped_at is None and (gone or now - n.heartbeat_at > DAEMON_STALE_AFTER)
            running = n.stopped_at is None and not stale
            alive = alive or running
            nodes.append(
                {
                    "node_id": n.node_id,
                    "host": n.host,
                    "pid": n.pid,
                    "started_at": iso(n.started_at),
                    "heartbeat_at": iso(n.heartbeat_at),
                    "stopped_at": iso(n.stopped_at),
                    "state": "running" if running else ("stale" if stale else "stopped"),
                    "heartbeat_age_s": round((now - n.heartbeat_at).total_seconds(), 1),
                }
            )
        return {"alive": alive, "nodes": nodes[:10], "database": self.store.describe()}


def _redacted(value: Any) -> Any:
    """A spec as shown to people: URLs and values that look like secrets removed."""
    from agentcron.redact import redact, secret_values_from_env

    secrets = secret_values_from_env(os.environ)
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if isinstance(v, str) and any(
                w in k.upper() for w in ("KEY", "TOKEN", "SECRET", "PASSWORD")
            ):
                out[k] = "[REDACTED]"
            else:
                out[k] = _redacted(v)
        return out
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    if isinstance(value, str):
        return redact(value, secrets)
    return value


def _tokens(attempts: list[Any]) -> dict[str, int]:
    """Model tokens a slot used, all attempts together (each failed call may cost too)."""
    total: dict[str, int] = {}
    for attempt in attempts:
        for key, value in attempt.tokens.items():
            total[key] = total.get(key, 0) + int(value)
    return total
