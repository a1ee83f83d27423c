"""The note on a message that goes out long after it was written."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from agentcron.durations import format_duration
from agentcron.model import Message

# A message sent this long after it was written says so: after a channel outage its
# "Retrying at 20:45" arrived 80 s past that time, beside the recovery, unmarked
LATE_AFTER = timedelta(minutes=2)


def late(message: Message, written: datetime, now: datetime, what: str = "") -> Message:
    """``message``, written at ``written``, as sent at ``now``: with a last line saying
    how late it goes out when that is :data:`LATE_AFTER` or more (its times and
    "Retrying at …" may have passed meanwhile). ``what``: of a digest, which of its
    messages was written then ("the oldest")."""
    by = now - written
    if by < LATE_AFTER:
        return message
    note = (
        f"(sent {format_duration(by)} after {what} was written: they could not go out sooner)"
        if what
        else f"(sent {format_duration(by)} after it was written: it could not go out sooner)"
    )
    return replace(message, body=f"{message.body}\n\n{note}")
