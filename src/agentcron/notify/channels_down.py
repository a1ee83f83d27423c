"""A notify channel that cannot send, told through the owner's other channels.

With two channels, one down for ten minutes, the working one carried every task's
messages and never a word that the other was down, nor when it was back (outside-in
probe): only `health` and `doctor` said so. A channel failing for
:data:`DOWN_AFTER` is now told once through each channel that works, and its return
once more. What was told is kept in the store's meta (per channel, by the time its
failure began), so a restart or a second node does not tell it again.

With no channel to tell it through (the owner's only channel, or every one down), the
outage is marked untold, and its return says it: one channel down for five minutes was
otherwise never mentioned at all, neither its outage nor its return (outside-in probe).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from agentcron.durations import format_duration
from agentcron.model import Message
from agentcron.model.message import Severity
from agentcron.model.outbox import CHANNEL_DOWN_MARK as _MARK
from agentcron.model.outbox import ChannelHealth
from agentcron.redact import redact
from agentcron.store.base import Store

DOWN_AFTER = timedelta(minutes=3)  # a send retried for this long is not a blip
log = logging.getLogger("agentcron.notify")

# _MARK: the meta key prefix; the value: when the told failure began
_UNTOLD = "untold "  # before that time: nobody could be told (no channel worked)


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
    # the top-level channels, and any other (a task's own) with messages waiting or
    # told down (its return is told after its backlog is gone: it was never told)
    watched = {key for key, _ in channels} | {
        k for k, h in health.items() if h.pending or h.failing_since is None
    }
    out: list[tuple[str, str, Message]] = []
    for key in sorted(watched):
        mark = store.get_meta(_MARK + key) or ""
        untold = mark.startswith(_UNTOLD)
        marked = mark.removeprefix(_UNTOLD)  # when the outage marked began
        h = health.get(key)
        if _down(h, now):
            assert h is not None and h.failing_since is not None
            began = h.failing_since.isoformat()
            to = [(k, u) for k, u in working if k != key]
            if marked == began and (not untold or not to):
                continue  # told already, or still nobody to tell it through
            if not to:  # kept to be told with its return, through the channel back
                store.set_meta(_MARK + key, _UNTOLD + began)
                log.error(
                    "notify channel %s cannot send since %s, and no other channel can: "
                    "nothing is told to the owner until one works again (%d message(s) "
                    "wait; its return says what it held); `agentcron health` shows it",
                    key,
                    local(h.failing_since),
                    h.pending,
                )
                continue
            message = _down_message(key, h, local)
            out += [(k, u, message) for k, u in to]
            store.set_meta(_MARK + key, began)
        elif marked and _works(h) and working:
            since = datetime.fromisoformat(marked)
            back = _back_at(h, since, now)
            # held: written before it came back. A message written since (a reminder of
            # the same minute) was counted "held for it … on their way" after the digest
            # had taken every held one (outside-in probe)
            held_left = h is not None and h.waiting_since is not None and h.waiting_since <= back
            pending = h.pending if h is not None and held_left else 0
            message = _back_message(key, since, min(back, now), pending, local, untold)
            out += [(k, u, message) for k, u in working]
            store.set_meta(_MARK + key, "")
    return out


def _down(h: ChannelHealth | None, now: datetime) -> bool:
    return h is not None and h.failing_since is not None and now - h.failing_since >= DOWN_AFTER


def _back_at(h: ChannelHealth | None, since: datetime, now: datetime) -> datetime:
    """When the channel's first send after the outage went through (the look comes up
    to a minute later, and sends made meanwhile are later still: reading the last one
    made a 4 min 51 s outage read 5 min 20 s; outside-in probe)."""
    if h is None:
        return now
    if h.back_at is not None and h.back_at >= since:
        return h.back_at
    return h.last_ok_at if h.last_ok_at is not None else now


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
    key: str,
    since: datetime,
    back: datetime,
    pending: int,
    local: Callable[[datetime], str],
    untold: bool = False,
) -> Message:
    """``back``: when a send last went through (the look comes up to a minute later, and
    its time made the outage read longer); ``pending``: what still waits for it (the
    held messages had often gone out, in a digest, before this was told: probe);
    ``untold``: no channel could tell of the outage while it lasted."""
    lasted = format_duration(timedelta(seconds=round((back - since).total_seconds())))
    held = (
        f"{pending} message(s) held for it are on their way"
        if pending
        else "the messages held for it have gone out"
    )
    body = (
        f"agentcron sends through {key} again (it could not from {local(since)}, {lasted}); {held}."
    )
    if untold:
        body += " No channel could take the news of its outage while it lasted."
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
