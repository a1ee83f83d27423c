"""The domain records: tasks, slots, attempts, runs, incidents, messages and the
vocabularies they use. Everything else imports from here; this imports nothing of theirs."""

from agentcron.model.enums import (
    PERMANENT_CLASSES,
    TRANSIENT_CLASSES,
    CatchupPolicy,
    DeliveryStatus,
    ErrorClass,
    Health,
    OverlapPolicy,
    SlotStatus,
    TaskSource,
)
from agentcron.model.failure import Classification, FailureInfo
from agentcron.model.incident import Incident, IncidentKind
from agentcron.model.message import SEVERITIES, Message, Severity
from agentcron.model.outbox import ChannelHealth, OutboxItem
from agentcron.model.provider import ProviderState
from agentcron.model.records import Attempt, Delivery, Slot, TaskRecord
from agentcron.model.run import (
    AttemptOutcome,
    Claim,
    ClockStepped,
    DueHead,
    Finish,
    Finished,
    Fires,
    NewSlot,
    NextTimes,
    NodeInfo,
    StartRoom,
)
from agentcron.model.task import TaskSpec

__all__ = [
    "PERMANENT_CLASSES",
    "SEVERITIES",
    "TRANSIENT_CLASSES",
    "Attempt",
    "AttemptOutcome",
    "CatchupPolicy",
    "ChannelHealth",
    "Claim",
    "Classification",
    "ClockStepped",
    "Delivery",
    "DeliveryStatus",
    "DueHead",
    "ErrorClass",
    "FailureInfo",
    "Finish",
    "Finished",
    "Fires",
    "Health",
    "Incident",
    "IncidentKind",
    "Message",
    "NewSlot",
    "NextTimes",
    "NodeInfo",
    "OutboxItem",
    "OverlapPolicy",
    "ProviderState",
    "Severity",
    "Slot",
    "SlotStatus",
    "StartRoom",
    "TaskRecord",
    "TaskSource",
    "TaskSpec",
]
