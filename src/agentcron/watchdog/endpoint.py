"""A ``heartbeat_url`` that keeps failing is itself a silent failure, so it is told.

The dead man's switch guards against this machine dying quietly; a switch whose
URL answers 404 (a wrong check id), refuses the connection or does not resolve
guards nothing, and until now only a line in the log said so. Here each ping's
result advances a small record of the endpoint's health, kept in the database
(``meta`` key :data:`META_KEY`) so that ``agentcron doctor`` in another process shows
it as ✖ with the last error and since when, and so that a restarted daemon (or a
second node pinging the same URL) does not tell the owner again:

* an answer that looks permanent (404, 410, 401, 403, an unusable URL) is told at
  the first ping that gets it: it will not pass by itself;
* a passing failure (refused connection, unknown host name, 5xx, no answer) is told
  once it has failed :data:`TELL_AFTER` pings in a row;
* while it keeps failing, a reminder goes out at most once per :data:`REMIND_EVERY`;
* the first ping that is answered again closes it, told once (only if the failure
  was told).

The transitions are pure (:func:`after_ping`); :class:`HeartbeatMonitor` does the
pinging, the storing and the telling, the latter through the caller's direct path
(the outbox may be what is in trouble).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo

from agentcron.clock import Clock
from agentcron.durations import format_duration
from agentcron.model import Message
from agentcron.notify.direct import daemon_message
from agentcron.redact import redact
from agentcron.watchdog.pulse import PingResult, ping, ping_fail

log = logging.getLogger("agentcron.pulse")

META_KEY = "heartbeat_endpoint"
TELL_AFTER = 3  # passing failures in a row before the owner is told
REMIND_EVERY = timedelta(hours=24)

Notice = Literal["failing", "reminder", "recovered"]


class MetaStore(Protocol):
    """The part of the store the endpoint's record lives in."""

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...


@dataclass(frozen=True)
class EndpointState:
    """The heartbeat endpoint's health after the latest ping. ``url`` as shown (secrets
    removed); ``failures`` pings in a row since ``failing_since``; ``told_at`` when the
    owner was last told it fails (None: not told)."""

    url: str
    ok: bool
    checked_at: datetime
    failing_since: datetime | None = None
    failures: int = 0
    last_error: str | None = None
    permanent: bool = False
    told_at: datetime | None = None
    last_ok_at: datetime | None = None

    def to_json(self) -> str:
        return json.dumps(
            {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(self).items()}
        )

    @classmethod
    def from_json(cls, text: str | None) -> EndpointState | None:
        """The stored record, or None when there is none (or it cannot be read: a record
        of another version is started afresh rather than trusted)."""
        if not text:
            return None
        try:
            raw = json.loads(text)
            times = {
                k: datetime.fromisoformat(raw[k]) if raw.get(k) else None
                for k in ("failing_since", "told_at", "last_ok_at")
            }
            return cls(
                url=str(raw["url"]),
                ok=bool(raw["ok"]),
                checked_at=datetime.fromisoformat(raw["checked_at"]),
                failures=int(raw.get("failures", 0)),
                last_error=raw.get("last_error"),
                permanent=bool(raw.get("permanent", False)),
                **times,
            )
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("the stored heartbeat_url record cannot be read (%s); starting afresh", exc)
            return None

    @property
    def alarming(self) -> bool:
        """Failing in a way the owner is (or is about to be) told of."""
        return not self.ok and (self.permanent or self.failures >= TELL_AFTER)

    def as_dict(self) -> dict[str, Any]:
        """For ``doctor`` and ``--json``: times in ISO form."""
        return json.loads(self.to_json())  # type: ignore[no-any-return]


def after_ping(
    state: EndpointState | None,
    result: PingResult,
    url: str,
    now: datetime,
    *,
    tell_after: int = TELL_AFTER,
    remind_every: timedelta = REMIND_EVERY,
) -> tuple[EndpointState, Notice | None]:
    """The record after one ping, and what the owner must be told now, if anything."""
    shown = redact(url)
    if result.ok:
        told = state is not None and not state.ok and state.told_at is not None
        return EndpointState(url=shown, ok=True, checked_at=now, last_ok_at=now), (
            "recovered" if told else None
        )
    fresh = state is None or state.ok
    new = EndpointState(
        url=shown,
        ok=False,
        checked_at=now,
        failing_since=now if fresh or state is None else (state.failing_since or now),
        failures=1 if fresh or state is None else state.failures + 1,
        last_error=result.error or "failed",
        permanent=result.permanent,
        told_at=None if fresh or state is None else state.told_at,
        last_ok_at=state.last_ok_at if state is not None else None,
    )
    if new.told_at is None:
        if new.permanent or new.failures >= tell_after:
            return replace(new, told_at=now), "failing"
        return new, None
    if remind_every > timedelta(0) and now - new.told_at >= remind_every:
        return replace(new, told_at=now), "reminder"
    return new, None


def render(
    notice: Notice,
    before: EndpointState | None,
    after: EndpointState,
    *,
    where: str,
    zone: ZoneInfo,
    interval: float,
) -> Message:
    """The message for ``notice``, in the words the README's table quotes."""
    every = format_duration(timedelta(seconds=interval))
    keeps = f"agentcron keeps pinging every {every} and tells you when it answers."
    if notice == "recovered":
        assert before is not None
        since = before.failing_since or before.checked_at
        lasted = _lasted(after.checked_at - since)
        return daemon_message(
            "heartbeat_url answers again",
            f"✔ agentcron's dead man's switch answers again: {after.url} took the ping on "
            f"{where} after failing for {lasted} (since {_local(since, zone)}, "
            f"{before.failures} failed ping(s)).",
            "heartbeat",
            ok=True,
        )
    since = after.failing_since or after.checked_at
    if notice == "reminder":
        hint = " This will not pass by itself: fix heartbeat_url." if after.permanent else ""
        return daemon_message(
            "heartbeat_url still failing",
            f"✖ agentcron's dead man's switch still fails: pinging {after.url} from {where} "
            f"has failed since {_local(since, zone)} "
            f"({_lasted(after.checked_at - since)}, {after.failures} pings), the latest: "
            f"{after.last_error}.{hint} The outside check hears nothing from this machine. "
            + keeps,
            "heartbeat",
        )
    if after.permanent:
        return daemon_message(
            "heartbeat_url refused",
            f"✖ agentcron's dead man's switch is not armed: pinging {after.url} from {where} "
            f"fails since {_local(since, zone)}: {after.last_error}. This will not pass by "
            "itself: fix heartbeat_url (the check id or ping key in it). Until then the "
            "outside check hears nothing from this machine. " + keeps,
            "heartbeat",
        )
    return daemon_message(
        "heartbeat_url unreachable",
        f"⚠ agentcron cannot reach its dead man's switch: {after.failures} pings to "
        f"{after.url} from {where} failed since {_local(since, zone)}, the latest: "
        f"{after.last_error}. This may pass (a network or service outage); meanwhile the "
        "outside check hears nothing from this machine and raises its own alarm. " + keeps,
        "heartbeat",
        warning=True,
    )


def _local(when: datetime, zone: ZoneInfo) -> str:
    return when.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")


def _lasted(delta: timedelta) -> str:
    return format_duration(timedelta(seconds=round(delta.total_seconds())))


def load_state(store: MetaStore) -> EndpointState | None:
    return EndpointState.from_json(store.get_meta(META_KEY))


def endpoint_status(store: MetaStore) -> dict[str, Any] | None:
    """The endpoint's record for ``doctor`` and the API, or None when no ping was
    recorded (or ``heartbeat_url`` was removed)."""
    state = load_state(store)
    return state.as_dict() if state is not None else None


class HeartbeatMonitor:
    """Pings the dead man's switch and keeps the endpoint's record; tells the owner.

    Used from the scheduler loop, one :meth:`beat` per pulse. ``tell`` is blocking (the
    direct path): it runs on a thread. ``hold()`` true means the database is known to
    be away: the record is then kept in memory only, and written at the next beat.
    """

    def __init__(
        self,
        store: MetaStore | None,
        clock: Clock,
        tell: Callable[[Message], object],
        *,
        where: str,
        zone: ZoneInfo,
        interval: float = 60.0,
        tell_after: int = TELL_AFTER,
        remind_every: timedelta = REMIND_EVERY,
        hold: Callable[[], bool] = lambda: False,
    ) -> None:
        self.store = store
        self.clock = clock
        self.tell = tell
        self.where = where
        self.zone = zone
        self.interval = interval
        self.tell_after = tell_after
        self.remind_every = remind_every
        self.hold = hold
        self.state: EndpointState | None = None
        self._loaded = False
        self._unwritten = False  # the record in memory is newer than the stored one

    async def beat(self, url: str | None, trouble: str | None = None) -> PingResult | None:
        """One pulse: "alive" when ``trouble`` is None, else ``/fail`` with the reason.
        No URL (none configured, or removed by a reload): the record is cleared."""
        if not url:
            self.unarmed()
            return None
        result = await (ping(url) if trouble is None else ping_fail(url, trouble))
        await self.record(url, result)
        return result

    async def record(self, url: str, result: PingResult) -> Notice | None:
        """Advance the record with one ping's result, store it, tell what must be told."""
        before = self._current()
        after, notice = after_ping(
            before,
            result,
            url,
            self.clock.now(),
            tell_after=self.tell_after,
            remind_every=self.remind_every,
        )
        self.state = after
        self._write(after.to_json())
        if notice is not None:
            message = render(
                notice, before, after, where=self.where, zone=self.zone, interval=self.interval
            )
            first = message.body.splitlines()[0]
            if notice == "recovered":
                log.warning("%s", first)
            else:
                log.error("%s", first)
            await asyncio.to_thread(self.tell, message)
        return notice

    def unarmed(self) -> None:
        """No heartbeat_url any more: nothing to show in ``doctor``, nothing to tell."""
        if self.state is not None or not self._loaded:
            self.state, self._loaded = None, True
            self._write("")

    def _current(self) -> EndpointState | None:
        """The record as stored (another node may have advanced it), else in memory;
        in memory while it could not be written (the stored one is older: read, it
        would forget what was told since and tell it again)."""
        if self.store is not None and not self.hold() and not self._unwritten:
            try:
                self._loaded = True
                return load_state(self.store)
            except Exception as exc:
                log.warning("could not read the heartbeat_url record: %s", redact(str(exc)))
        return self.state

    def _write(self, text: str) -> None:
        if self.store is None:
            return
        if self.hold():
            self._unwritten = True
            return
        try:
            self.store.set_meta(META_KEY, text)
            self._unwritten = False
        except Exception as exc:  # the database is away: kept in memory, written next beat
            self._unwritten = True
            log.warning("could not record the heartbeat_url's health: %s", redact(str(exc)))
