"""A notify channel that cannot send, told through the owner's other channels.

With two channels, one down for ten minutes, the working one carried every task's
messages and never a word that the other was down, nor when it was back (outside-in
probe): only `health` and `doctor` said so. A channel failing for
:data:`DOWN_AFTER` is now told once through each channel that works, and its return
once more. What was told is kept in the store's meta (per channel, by the time its
failure began), so a restart or a second node does not tell it again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from agentcron.durations import format_duration
from agentcron.model import Message
from agentcron.model.message import Severity
from agentcron.model.outbox import ChannelHealth
from agentcron.redact import redact
from agentcron.store.base import Store

DOWN_AFTER = timedelta(minutes=3)  # a send retried for this long is not a blip
_MARK = "channel_down:"  # meta key prefix; the value: when the told failure began


def channel_news(
    store: Store,
    channels: Sequence[tuple[str, str]],
    now: datetime,
    local: Callable[[datetime], str],
) -> list[tuple[str, str, Message]]:
    """The messages to queue now (key, url, message) about notify channels that went
    down or came back, each told through those of ``channels`` (the top-level ones,
    key and url) that work; the meta is updated. A task's own channel is watched too,
    once it has messages waiting: it is where that task's failures would go."""
    health = {h.channel_key: h for h in store.channel_health()}
    working = [(key, url) for key, url in channels if _works(health.get(key))]
    if not working:
        return []  # nobody to tell through: told once one works (nothing is marked)
    # the top-level channels, and any other (a task's own) with messages waiting or
    # told down (its return is told after its backlog is gone: it was never told)
    watched = {key for key, _ in channels} | {
        k for k, h in health.items() if h.pending or h.failing_since is None
    }
    out: list[tuple[str, str, Message]] = []
    for key in sorted(watched):
        mark = store.get_meta(_MARK + key)
        h = health.get(key)
        if _down(h, now):
            assert h is not None and h.failing_since is not None
            began = h.failing_since.isoformat()
            to = [(k, u) for k, u in working if k != key]
            if mark == began or not to:
                continue  # told already, or nobody else to tell through yet
            message = _down_message(key, h, local)
            out += [(k, u, message) for k, u in to]
            store.set_meta(_MARK + key, began)
        elif mark and _works(h):
            since = datetime.fromisoformat(mark)
            back = h.last_ok_at if h is not None and h.last_ok_at is not None else now
            message = _back_message(key, since, min(back, now), h.pending if h else 0, local)
            out += [(k, u, message) for k, u in working]
            store.set_meta(_MARK + key, "")
    return out


def _down(h: ChannelHealth | None, now: datetime) -> bool:
    return h is not None and h.failing_since is not None and now - h.failing_since >= DOWN_AFTER


def _works(h: ChannelHealth | None) -> bool:
    return h is None or (h.failing_since is None and not h.broken)


def _down_message(key: str, h: ChannelHealth, local: Callable[[datetime], str]) -> Message:
    assert h.failing_since is not None
    error = f" (last error: {h.last_error})" if h.last_error else ""
    body = (
        f"agentcron cannot send through {key} since {local(h.failing_since)}{error}; "
        f"{h.pending} message(s) wait for it and are sent when it works again. This "
        "channel carries on meanwhile."
    )
    return _about(f"⚠ agentcron cannot send through {key}", body, "channel_down", "warning")


def _back_message(
    key: str, since: datetime, back: datetime, pending: int, local: Callable[[datetime], str]
) -> Message:
    """``back``: when a send last went through (the look comes up to a minute later, and
    its time made the outage read longer); ``pending``: what still waits for it (the
    held messages had often gone out, in a digest, before this was told: probe)."""
    lasted = format_duration(timedelta(seconds=round((back - since).total_seconds())))
    held = (
        f"{pending} message(s) held for it are on their way"
        if pending
        else "the messages held for it have gone out"
    )
    body = (
        f"agentcron sends through {key} again (it could not from {local(since)}, {lasted}); {held}."
    )
    return _about(f"✔ agentcron sends through {key} again", body, "channel_back", "recovery")


def _about(title: str, body: str, event: str, severity: Severity) -> Message:
    """A message about a channel, not a task."""
    return Message(
        title=title,
        body=redact(body),
        task="",
        event=event,
        incident_kind="channel",
        severity=severity,
    )
