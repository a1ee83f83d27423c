"""What went wrong, as plain data.

A failure crosses process boundaries (a python action fails inside a worker
process) and must be classified without importing the SDK that raised it, so the
action runner reduces every failure to a :class:`FailureInfo` and the classifier
works on that alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agentcron.model.enums import ErrorClass

# the failure of a run the daemon's stop interrupted: retried when it starts again
DAEMON_STOPPED = "the daemon stopped while the run was in progress"
# the reason of a run's slot whose task was removed while it ran: no retry follows
REMOVED_WHILE_RUNNING = "task removed while this run was going: not retried"
# ... and of one whose task was paused meanwhile (a pause cancels the task's retries)
PAUSED_WHILE_RUNNING = "task paused: not retried"
# The key, in an attempt's ``extra``, of a run that failed because agentcron could not
# write its files in the home (a full disk, a read-only mount): a fault of the machine
# that every task meets at once, told once for the home, not once per task.
STORAGE_FAULT = "storage"


@dataclass(frozen=True)
class FailureInfo:
    """Everything the classifier may look at. All fields optional; fill what you know."""

    message: str = ""
    # Exception facts (python actions, llm action client errors).
    exception_types: tuple[str, ...] = ()  # class names along the MRO, most specific first
    exception_module: str | None = None
    # HTTP facts (http and llm actions, SDK errors that carry a response).
    http_status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased names
    body: str | None = None
    provider_code: str | None = None  # e.g. "insufficient_quota", "overloaded_error"
    # Process facts (command actions, prechecks).
    exit_code: int | None = None
    signal: int | None = None
    output_tail: str = ""  # last lines of combined stdout/stderr
    # Set by the runner when it already knows (it enforced a timeout, lost a worker).
    known_class: ErrorClass | None = None
    action: str = "command"  # command | python | http | llm | precheck


@dataclass(frozen=True)
class Classification:
    """The classifier's verdict on one failure."""

    error_class: ErrorClass
    explanation: str  # one line, plain language, no secrets
    fix: str | None = None  # for permanent classes: what the owner should do
    retry_after: float | None = None  # seconds the provider asked us to wait

    @property
    def transient(self) -> bool:
        return self.error_class.transient
