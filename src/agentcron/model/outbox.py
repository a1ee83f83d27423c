"""The outbox's records: a message queued for one channel, and a channel's health."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from agentcron.model.message import Message

# How a send that may have been taken all the same begins its error: no answer in time
# (agentcron.notify.channels.unanswered), or an earlier send of it still going.
UNANSWERED = "no answer within"
STILL_SENDING = (
    "not sent again: an earlier send of this message has had no answer yet and may still go out"
)


def may_have_arrived(error: str | None) -> bool:
    """Whether a send that failed with ``error`` may have been taken all the same."""
    return error is not None and (error.startswith(UNANSWERED) or error == STILL_SENDING)


_RATE_LIMITED = re.compile(r"error=429\b|\b429 Too Many Requests\b|too many requests", re.I)


def rate_limited(error: str | None) -> bool:
    """Whether a send failed because the service asked for fewer posts (HTTP 429, as
    Apprise words it: "Failed to send JSON POST notification: error=429.")."""
    return error is not None and _RATE_LIMITED.search(error) is not None


@dataclass(frozen=True)
class OutboxItem:
    """One message for one channel. ``attempts`` counts failed sends so far;
    ``resent`` how often it was handed out again because a sender's claim on it
    lapsed with neither a success nor a failure recorded (each may be a duplicate)."""

    id: int
    channel_key: str
    channel_url: str
    message: Message
    created_at: datetime
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    resent: int = 0
    # this claim took it over from a sender that stopped without saying whether it
    # went out (``resent`` counts every such time): only then may it arrive twice
    taken_over: bool = False


@dataclass(frozen=True)
class ChannelHealth:
    """What ``doctor`` says about a channel.

    ``failing_since`` is the first failure since the last success (None when the
    channel works or was never tried); ``broken`` is true when the last failure
    was permanent (the URL can never work as it is); ``undeliverable`` counts the
    messages given up for that reason, which stay visible here. ``resent`` counts
    the messages sent again after a sender's claim lapsed (possible duplicates).
    ``waiting_since`` is when the oldest unsent message was written, and ``head_claim``
    who last claimed the first one and until when (None: never claimed): together they
    tell a channel that works from one whose queue nothing moves. ``back_at`` is when
    the first send went through after its last failures (None: never failed).
    """

    channel_key: str
    last_ok_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    pending: int
    failing_since: datetime | None
    broken: bool = False
    undeliverable: int = 0
    resent: int = 0
    waiting_since: datetime | None = None
    head_claim: tuple[str, datetime] | None = None
    back_at: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.failing_since is None and not self.broken


# meta key prefix (with a channel's key): its outage was told, since the value's time
# (agentcron.notify.channels_down); removed with the channel when it leaves the config
CHANNEL_DOWN_MARK = "channel_down:"
