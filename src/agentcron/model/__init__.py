"""The domain records: tasks, slots, attempts and the vocabularies they use."""

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
from agentcron.model.records import Attempt, Delivery, Slot, TaskRecord
from agentcron.model.task import TaskSpec

__all__ = [
    "PERMANENT_CLASSES",
    "TRANSIENT_CLASSES",
    "Attempt",
    "CatchupPolicy",
    "Classification",
    "Delivery",
    "DeliveryStatus",
    "ErrorClass",
    "FailureInfo",
    "Health",
    "OverlapPolicy",
    "Slot",
    "SlotStatus",
    "TaskRecord",
    "TaskSource",
    "TaskSpec",
]
