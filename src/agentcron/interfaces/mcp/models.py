"""What the MCP tools take and return, as pydantic models: clients get each tool's
input and output JSON Schema, and results arrive as structured content.

Results are built from the service's dicts (the ``--json`` shapes) and keep the
fields an agent acts on; local paths and delivery internals are left out. Times are
ISO 8601 with an offset, in the task's zone, as the service renders them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt


class _Out(BaseModel):
    # built from the service's dicts, which carry more than an agent needs
    model_config = ConfigDict(extra="ignore")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---- inputs -----------------------------------------------------------------------------


class HttpAction(_In):
    """Call a URL. ``${…}`` is refused anywhere in it (write ``$${`` for a literal)."""

    url: str = Field(description="http:// or https:// URL")
    method: str = Field(default="GET", description="GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS")
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | dict[str, Any] | list[Any] | None = Field(
        default=None, description="A string, or JSON sent as application/json"
    )
    expect: list[int] = Field(
        default_factory=list, description="HTTP statuses that mean success (default: any 2xx)"
    )


class LlmAction(_In):
    """Ask a model, named by one of the owner's model profiles (see list_tasks' limits)."""

    model: str = Field(description="The name of a model profile the owner configured")
    prompt: str = Field(min_length=1)
    system: str | None = None
    max_tokens: StrictInt | None = Field(default=None, gt=0)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    base_url: str | None = Field(
        default=None,
        description="Never accepted: the model's address is the owner's (in the profile)",
    )
    api_key_env: str | None = Field(
        default=None, description="Never accepted: the key is the owner's (in the profile)"
    )


class PythonAction(_In):
    """Call a function of a module importable by the daemon (when granted)."""

    function: str = Field(description="'module:function'")
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)


# ---- outputs ----------------------------------------------------------------------------


class Fire(_Out):
    at: str = Field(description="The instant, UTC")
    local: str = Field(description="The same instant in the task's zone")
    note: str | None = Field(description="What a DST change did to this fire, if anything")


class BudgetInfo(_Out):
    """A daily budget and what was spent from it today (the owner's; never changeable
    by an agent). A slot that would start with a budget used up is recorded skipped."""

    scope: str = Field(description="task:NAME, agent:NAME or global")
    label: str
    runs: int = Field(description="Runs started today")
    runs_per_day: int | None
    tokens: int = Field(description="Model tokens (prompt + completion) spent today")
    tokens_per_day: int | None
    used_up: str | None = Field(description="runs or tokens when nothing is left today")
    resets_at: str | None = Field(description="When the day's count starts again")


class TaskInfo(_Out):
    name: str = Field(description="The full name; use it (or the short part) in other tools")
    schedule: str
    timezone: str
    paused: bool
    pause_reason: str | None
    next_run: str | None
    last_status: str | None = Field(description="Status of the newest finished run")
    last_run: str | None
    health: str = Field(description="ok, retrying, failing, stuck, overdue, paused, …")
    health_detail: str | None
    action: str
    source: str = Field(description="file: the owner's config (only pausing works); api")
    description: str | None = None
    budget: list[BudgetInfo] = Field(
        default_factory=list, description="The daily budgets this task spends from"
    )


class Limits(_Out):
    agent: str
    namespace: str = Field(description="New tasks are named NAMESPACE.SHORT_NAME")
    tasks: int = Field(description="Tasks in the namespace now")
    max_tasks: int
    min_period: str = Field(description="The shortest interval between fires allowed")
    actions: list[str] = Field(description="Actions your tasks may have")
    model_profiles: dict[str, str] = Field(
        description="Model profiles an llm action may name, with the owner's description"
    )
    see: list[str] = Field(description="Other task names you may read (globs)")
    change: list[str] = Field(description="Other task names you may change (globs)")
    inside_run: bool = Field(description="You were started by a scheduled run")
    may_schedule: bool = Field(description="Whether you may schedule, update, resume, trigger")
    budget: BudgetInfo | None = Field(
        default=None, description="Your namespace's daily budget and today's spending"
    )


class TaskList(_Out):
    tasks: list[TaskInfo]
    limits: Limits


class RunInfo(_Out):
    id: int = Field(description="The run id (get_run)")
    task: str
    scheduled_for: str | None
    status: str = Field(
        description="pending, running, retrying, succeeded, failed, skipped, missed, "
        "superseded, cancelled, expired"
    )
    reason: str | None = Field(description="Why it was skipped, missed, superseded, expired")
    attempts: int
    error_class: str | None
    error: str | None
    started_at: str | None
    finished_at: str | None
    next_attempt_at: str | None
    trigger: str = Field(description="schedule, manual or catchup")
    tokens: dict[str, int] = Field(default_factory=dict, description="Model tokens used")


class TriggeredRun(RunInfo):
    note: str = Field(
        description="What becomes of it: when it starts, or why it will not (the daemon "
        "is not running, a budget is used up)"
    )


class TaskDetail(TaskInfo):
    spec: dict[str, Any] = Field(description="The definition (secrets removed)")
    model_profile: str | None = Field(description="The model profile an llm task calls")
    upcoming: list[Fire] = Field(description="The next fires, resolved in the task's zone")
    recent_runs: list[RunInfo]


class RunList(_Out):
    runs: list[RunInfo] = Field(description="Newest first")


class Attempt(_Out):
    number: int
    status: str
    started_at: str
    finished_at: str | None
    duration_s: float | None
    error_class: str | None
    error: str | None
    explanation: str | None
    exit_code: int | None
    tokens: dict[str, int]
    fix: str | None = Field(description="What to do about the error, when known")


class DeliveryInfo(_Out):
    target: str = Field(description="Where the output goes, secrets removed")
    status: str = Field(description="pending, retrying, delivered or failed (gave up)")
    attempts: int
    next_attempt_at: str | None
    last_error: str | None


class RunDetail(RunInfo):
    attempts_detail: list[Attempt]
    deliveries: list[DeliveryInfo] = Field(
        default_factory=list,
        description="Its output's delivery to each deliver target; one that failed "
        "(gave up) can be sent again with redeliver_run",
    )
    output_tail: str | None = Field(description="The end of the kept output, secrets redacted")
    output_truncated: bool = Field(description="The output is longer than the tail shown")


class NextRuns(_Out):
    task: str
    timezone: str
    start: str = Field(description="The instant counted from, resolved in the task's zone")
    fires: list[Fire]


class Cancelled(_Out):
    name: str
    cancelled: bool
