"""A rendered notification, ready for any channel and for the durable outbox."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from agentcron.controls import shown_text

Severity = Literal["warning", "failure", "recovery", "info"]
SEVERITIES: tuple[Severity, ...] = ("warning", "failure", "recovery", "info")


@dataclass(frozen=True)
class Message:
    """A rendered, redacted notification, ready for any channel."""

    title: str
    body: str
    task: str
    event: str
    incident_kind: str
    severity: Severity

    def __post_init__(self) -> None:
        # A task's error and output are quoted in messages: their terminal escapes,
        # NULs and bidirectional overrides went to every channel unchanged (one turned
        # agentcron's advice after it backwards), and a command channel's script may
        # print them to a terminal (outside-in probe). Shown, not obeyed; but not in a
        # delivery, which is the task's output itself, the owner's to have as written.
        if self.event != "delivery":
            object.__setattr__(self, "title", shown_text(self.title))
            object.__setattr__(self, "body", shown_text(self.body))

    def to_dict(self) -> dict[str, str]:
        """The stored form (the outbox keeps messages as JSON)."""
        return {
            "title": self.title,
            "body": self.body,
            "task": self.task,
            "event": self.event,
            "incident_kind": self.incident_kind,
            "severity": self.severity,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Message:
        """The message as stored, not made again: a row queued by an older version is
        sent as it was, so its idempotency key (a digest of it) does not change
        between its tries."""
        severity = str(data.get("severity", "info"))
        message = cls(
            title="",
            body="",
            task=str(data.get("task", "")),
            event=str(data.get("event", "")),
            incident_kind=str(data.get("incident_kind", "")),
            severity=severity if severity in SEVERITIES else "info",
        )
        object.__setattr__(message, "title", str(data.get("title", "")))
        object.__setattr__(message, "body", str(data.get("body", "")))
        return message
