"""The home's storage failing: one incident for the home, not one per task.

A full disk (or a home that turned read-only) fails the runs of every task at once
that writes files, each for the same reason. Told per task, fifty tasks made fifty
"failed" messages, fifty "keeps failing" and fifty "recovered" for one fault of the
machine: the noise that teaches an owner to mute the channel. Runs that failed this
way (:data:`~agentcron.model.failure.STORAGE_FAULT` in their outcome) are gathered
here instead and told as one incident of the home, opened with what could not be
written and which tasks it hit, and closed, with what it cost, at the first run that
wrote its files again. Each task's runs are still recorded and retried by its own
rules; `list` and `runs` show each failure.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from agentcron.model import Finished, Incident, IncidentKind, Message, SlotStatus
from agentcron.model.failure import STORAGE_FAULT
from agentcron.notify.messages import render_storage
from agentcron.store.base import Store

SETTLE = timedelta(seconds=1)  # failures of one moment told together
# how often an open incident that no run can end any more (every task it hit is
# removed or paused) tries a write of its own in the home
PROBE_EVERY = timedelta(minutes=1)

ToChannels = Callable[[Message, Sequence[str]], list[tuple[str, str, Message]]]


def storage_fault(finished: Finished) -> str | None:
    """What could not be written, when ``finished`` failed for the home's storage."""
    outcome = finished.outcome
    if outcome.slot_status not in (SlotStatus.RETRYING, SlotStatus.FAILED):
        return None
    what = outcome.extra.get(STORAGE_FAULT)
    return str(what) if what else None


def wrote_files(finished: Finished, hit: set[str]) -> bool:
    """Whether ``finished`` shows the home taking writes again: a run that ended well
    and kept its output, or a run of a task the fault hit that now ended well."""
    outcome = finished.outcome
    if outcome.slot_status is not SlotStatus.SUCCEEDED:
        return False
    return outcome.output_path is not None or finished.spec.name in hit


@dataclass
class _News:
    failed: list[tuple[Finished, str]] = field(default_factory=list)
    wrote_at: datetime | None = None
    at: datetime | None = None


class HomeStorage:
    """Gathers the ends that concern the home's storage (from the loop) and tells them
    as one incident (:meth:`report`, on the engine's housekeeping)."""

    def __init__(
        self,
        store: Store,
        scope: str,
        to_channels: ToChannels,
        lock: threading.Lock,
    ) -> None:
        self.store = store
        self.scope = scope  # the incident's ``task``: "home:HOST"
        self.to_channels = to_channels
        self._lock = lock
        self._news = _News()
        self._open: bool | None = None  # whether the incident is open (None: not read yet)
        self._hit: set[str] = set()  # tasks whose runs it failed, while it is open
        # whether runs could write their files now (the daemon's: a write of its own
        # in HOME/outputs); None: the incident ends only at a run that wrote again
        self.probe: Callable[[], bool] | None = None
        self._probed_at: datetime | None = None

    def take(self, batch: Sequence[Finished]) -> list[Finished]:
        """Keep what ``batch`` says of the home's storage; returns the ends left for
        the tasks' own incidents (all but the runs it failed). Reads nothing."""
        rest: list[Finished] = []
        for f in batch:
            what = storage_fault(f)
            if what is not None:
                self._news.failed.append((f, what))
                self._news.at = f.finished_at
                continue
            rest.append(f)
            watching = self._open is not False or self._news.failed  # None: not read yet
            if watching and wrote_files(f, self._hit | {g.spec.name for g, _ in self._news.failed}):
                self._news.wrote_at = f.finished_at
                self._news.at = self._news.at or f.finished_at
        return rest

    def report(self, now: datetime) -> list[tuple[str, str, Message]]:
        """Write what has settled: the incident opened, counted or closed, and its
        messages, in one transaction. Returns the messages queued. News the store
        refuses is kept for the next report."""
        if self._news.at is None and self._writable_again(now):  # (its write: unlocked)
            with self._lock:
                if self._news.at is None:
                    self._news = _News(wrote_at=now, at=now - SETTLE)
        with self._lock:
            news = self._news
            if news.at is None or now - news.at < SETTLE:
                return []
            self._news = _News()
            try:
                current, changed, messages = self._incident(news, now)
                if changed or messages:
                    self.store.save_incidents(changed, messages, now)
            except Exception:
                self._news = _merge(news, self._news)
                raise
            now_open = changed[-1] if changed else current
            self._open = now_open is not None and now_open.closed_at is None
            self._hit = _tasks_of(now_open) if self._open and now_open is not None else set()
            return messages

    def _writable_again(self, now: datetime) -> bool:
        """Whether an open incident that no run can end any more, because every task
        it hit was removed or paused since, can end now: the home takes a write of
        agentcron's own. Looked at once a :data:`PROBE_EVERY` while one is open (or
        not yet read: one left open by an earlier process)."""
        if self.probe is None or self._open is False:
            return False
        if self._probed_at is not None and now - self._probed_at < PROBE_EVERY:
            return False
        self._probed_at = now
        current = self.store.open_incidents(self.scope).get(IncidentKind.STORAGE)
        self._open = current is not None
        if current is None:
            return False
        self._hit = _tasks_of(current)
        for name in self._hit:
            rec = self.store.get_task(name)
            if rec is not None and not rec.paused:
                return False  # its next run tells, as it writes its files or not
        return self.probe()

    def _incident(
        self, news: _News, now: datetime
    ) -> tuple[Incident | None, list[Incident], list[tuple[str, str, Message]]]:
        """The open incident as read, the changes to save and the messages to queue."""
        current = self.store.open_incidents(self.scope).get(IncidentKind.STORAGE)
        changed, messages = self._changes(current, news, now)
        return current, changed, messages

    def _changes(
        self, current: Incident | None, news: _News, now: datetime
    ) -> tuple[list[Incident], list[tuple[str, str, Message]]]:
        fresh: str | None = None  # what could not be written, for an incident opened now
        if news.failed:
            names = sorted({f.spec.name for f, _ in news.failed})
            final = sum(1 for f, _ in news.failed if f.outcome.slot_status is SlotStatus.FAILED)
            first, what = min(news.failed, key=lambda item: item[0].finished_at)
            if current is None:
                fresh = what
                current = Incident(
                    task=self.scope,
                    kind=IncidentKind.STORAGE,
                    opened_at=now,
                    summary=", ".join(names),
                    since=first.finished_at,
                    updated_at=now,
                    count=len(news.failed),
                    failed_runs=len(news.failed),
                    streak=final,
                    slot_id=first.slot.id,
                )
            else:
                current = replace(
                    current,
                    summary=", ".join(sorted(_tasks_of(current) | set(names))),
                    count=current.count + len(news.failed),
                    failed_runs=current.failed_runs + len(news.failed),
                    streak=current.streak + final,
                    updated_at=now,
                )
            last_failed = max(f.finished_at for f, _ in news.failed)
            over = news.wrote_at is not None and news.wrote_at > last_failed
        else:
            over = news.wrote_at is not None
        if current is None:
            return [], []
        if not over:  # opened (told), or counted (not told again)
            told = render_storage(current, fresh, now, opened=True) if fresh else None
            return [current], self._told(told, current)
        # Over: told as over, in one message when it was not told open (its runs'
        # ends came in together with a run that wrote again, as after a database
        # outage on the same full disk).
        closed = replace(current, closed_at=now, updated_at=now)
        return [closed], self._told(render_storage(closed, fresh, now, opened=False), closed)

    def _told(self, message: Message | None, incident: Incident) -> list[tuple[str, str, Message]]:
        return [] if message is None else self.to_channels(message, sorted(_tasks_of(incident)))


def _tasks_of(incident: Incident) -> set[str]:
    return set(incident.summary.split(", ")) if incident.summary else set()


def _merge(older: _News, newer: _News) -> _News:
    wrote = [t for t in (older.wrote_at, newer.wrote_at) if t is not None]
    at = [t for t in (older.at, newer.at) if t is not None]
    return _News(
        failed=older.failed + newer.failed,
        wrote_at=max(wrote) if wrote else None,
        at=max(at) if at else None,
    )
