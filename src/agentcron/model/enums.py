"""Closed vocabularies. Their string values are part of the ``--json`` contract."""

from __future__ import annotations

from enum import StrEnum


class SlotStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    MISSED = "missed"
    SUPERSEDED = "superseded"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def is_final(self) -> bool:
        return self not in (SlotStatus.PENDING, SlotStatus.RUNNING, SlotStatus.RETRYING)


class ErrorClass(StrEnum):
    RATE_LIMITED = "rate_limited"
    OVERLOADED = "overloaded"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    NETWORK = "network"
    WORKER_LOST = "worker_lost"
    AUTH = "auth"
    QUOTA_EXHAUSTED = "quota_exhausted"
    BAD_REQUEST = "bad_request"
    NOT_FOUND = "not_found"
    CODE_ERROR = "code_error"
    CONFIG_ERROR = "config_error"

    @property
    def transient(self) -> bool:
        return self in TRANSIENT_CLASSES


TRANSIENT_CLASSES = frozenset(
    {
        ErrorClass.RATE_LIMITED,
        ErrorClass.OVERLOADED,
        ErrorClass.SERVER_ERROR,
        ErrorClass.TIMEOUT,
        ErrorClass.NETWORK,
        ErrorClass.WORKER_LOST,
    }
)
PERMANENT_CLASSES = frozenset(set(ErrorClass) - TRANSIENT_CLASSES)


class Health(StrEnum):
    OK = "ok"
    RETRYING = "retrying"
    FAILING = "failing"
    STUCK = "stuck"
    OVERDUE = "overdue"
    PAUSED = "paused"
    STARVED = "starved"
    SKIPPING = "skipping"
    FLAPPING = "flapping"
    SUSPICIOUS = "suspicious"
    DELIVERY_FAILED = "delivery_failed"
    MISSED = "missed"
    WAITING = "waiting"  # its provider is cooling down
    OVER_BUDGET = "over_budget"  # its latest slot was skipped over a daily budget
    NOT_FIRING = "not_firing"  # it would be ok, but no daemon's scheduler ticks


class OverlapPolicy(StrEnum):
    SKIP = "skip"
    QUEUE = "queue"
    ALLOW = "allow"
    REPLACE = "replace"


class CatchupPolicy(StrEnum):
    LATEST = "latest"
    ALL = "all"
    NONE = "none"


class TaskSource(StrEnum):
    FILE = "file"
    API = "api"
    CODE = "code"


class DeliveryStatus(StrEnum):
    NONE = "none"
    PENDING = "pending"
    DELIVERED = "delivered"
    RETRYING = "retrying"
    FAILED = "failed"
