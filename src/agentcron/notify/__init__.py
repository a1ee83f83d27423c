"""Incidents, messages, channels and the durable outbox.

The engine turns what happened into events; :func:`apply_event` decides which of
them the owner must hear about; :func:`render` words them; the outbox keeps them
until :class:`OutboxSender` has delivered them through a :class:`Channel`.
"""

from agentcron.model import ChannelHealth, Incident, IncidentKind, Message, OutboxItem, Severity
from agentcron.notify.channels import (
    COMMAND_PREFIX,
    AppriseChannel,
    Channel,
    CommandChannel,
    InvalidChannel,
    SendResult,
    channel_for,
    channel_key,
    check_channel_url,
)
from agentcron.notify.events import (
    AttemptFailed,
    DeliveryFailed,
    DeliveryRecovered,
    EmptySuccessStreak,
    Event,
    Reminder,
    RunsMissed,
    RunStuck,
    RunSucceeded,
    SkipStreak,
    SkipStreakEnded,
    TaskOverdue,
    TaskStarved,
    WorkerLost,
)
from agentcron.notify.incidents import Notice, NoticeEvent, Transition, apply_event
from agentcron.notify.memory import MemoryOutbox
from agentcron.notify.messages import render
from agentcron.notify.sender import DEFAULT_BACKOFF, OutboxSender
from agentcron.store.base import OutboxStore

__all__ = [
    "COMMAND_PREFIX",
    "DEFAULT_BACKOFF",
    "AppriseChannel",
    "AttemptFailed",
    "Channel",
    "ChannelHealth",
    "CommandChannel",
    "DeliveryFailed",
    "DeliveryRecovered",
    "EmptySuccessStreak",
    "Event",
    "Incident",
    "IncidentKind",
    "InvalidChannel",
    "MemoryOutbox",
    "Message",
    "Notice",
    "NoticeEvent",
    "OutboxItem",
    "OutboxSender",
    "OutboxStore",
    "Reminder",
    "RunStuck",
    "RunSucceeded",
    "RunsMissed",
    "SendResult",
    "Severity",
    "SkipStreak",
    "SkipStreakEnded",
    "TaskOverdue",
    "TaskStarved",
    "Transition",
    "WorkerLost",
    "apply_event",
    "channel_for",
    "channel_key",
    "check_channel_url",
    "render",
]
