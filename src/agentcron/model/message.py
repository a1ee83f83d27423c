"""A rendered notification, ready for any channel and for the durable outbox."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

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
        severity = str(data.get("severity", "info"))
        return cls(
            title=str(data.get("title", "")),
            body=str(data.get("body", "")),
            task=str(data.get("task", "")),
            event=str(data.get("event", "")),
            incident_kind=str(data.get("incident_kind", "")),
            severity=severity if severity in SEVERITIES else "info",
        )
