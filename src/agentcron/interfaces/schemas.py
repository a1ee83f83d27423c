"""The JSON shapes of agentcron's interfaces, once: ``--json`` output of the CLI and
the bodies of the HTTP API are dumped through these models, so the two cannot
drift apart, and the API's OpenAPI document is generated from them.

Models forbid unknown keys: a field the service adds without adding it here fails
the tests (an API response that does not validate is a server error), instead of
being dropped silently by one interface and shown by the other. Times are ISO 8601
strings with an offset, as the service renders them (in the task's zone).
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BudgetUse(_Shape):
    """A daily budget a task spends from, and what was spent from it today."""

    scope: str = Field(description="task:NAME, agent:NAME or global")
    label: str = Field(description="`task story`, `agent planner`, `all tasks together`")
    runs: int = Field(description="Runs started today")
    runs_per_day: int | None
    tokens: int = Field(description="Model tokens (prompt + completion) spent today")
    tokens_per_day: int | None
    used_up: str | None = Field(description="`runs` or `tokens` when nothing is left today")
    summary: str = Field(description="`3/10 runs, 1,200/50,000 tokens`")
    resets_at: str | None = Field(description="When the day's count starts again")


class TaskSummary(_Shape):
    """One row of ``agentcron list`` / ``GET /api/v1/tasks``."""

    name: str
    schedule: str = Field(description="The schedule in words (`at 02:30`, `every 15 min`)")
    timezone: str
    paused: bool
    pause_reason: str | None = Field(None, description="Why it was paused, when one was given")
    next_run: str | None
    last_status: str | None = Field(description="Status of the newest finished run")
    last_run: str | None = Field(description="When the newest finished run was due")
    health: str = Field(
        description="ok, retrying, failing, stuck, overdue, paused, starved, skipping, flapping, "
        "suspicious, delivery_failed, missed, waiting, over_budget, not_firing (it would "
        "be ok, retrying, stuck or waiting, but no daemon's scheduler ticks: health_detail "
        "says why)"
    )
    health_detail: str | None
    source: str = Field(
        description="file (agentcron.yaml), api (CLI, HTTP API, agents) or code (a program's "
        "Scheduler)"
    )
    action: str
    delivery_status: str | None = Field(description="Delivery state of the newest success")
    description: str | None = None
    budget: list[BudgetUse] = Field(
        default_factory=list, description="The daily budgets it spends from (none: empty)"
    )


class NextFire(_Shape):
    """An upcoming fire time; ``note`` explains DST gaps and folds."""

    at: str = Field(description="UTC")
    local: str = Field(description="In the task's zone")
    note: str | None
    paused: bool = Field(
        default=False,
        description="The task is paused; these are the times it would fire if resumed now",
    )


def with_paused(rows: list[dict[str, Any]], paused: bool) -> list[dict[str, Any]]:
    """Fire times marked with whether their task is paused: listed bare, a paused
    task's times read as runs to come (the dashboard says "None while the task is
    paused"; outside-in probe)."""
    return [{**row, "paused": paused} for row in rows]


class RunSummary(_Shape):
    """One run (a slot: one fire of a task and all its attempts)."""

    id: int
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
    delivery_status: str
    output_path: str | None
    trigger: str = Field(description="schedule, manual or catchup")
    tokens: dict[str, int] = Field(default_factory=dict, description="Model tokens, all attempts")


class TriggeredRun(RunSummary):
    """A run just triggered (``POST /api/v1/tasks/{name}/trigger``)."""

    note: str = Field(
        description="What becomes of it: when it starts, or why it will not (the daemon "
        "is not running, a budget is used up)"
    )


class TaskDetail(TaskSummary):
    """``agentcron show TASK`` / ``GET /api/v1/tasks/{name}``."""

    spec: dict[str, Any] = Field(description="The definition, secrets and env values removed")
    next: list[NextFire]
    recent_runs: list[RunSummary]


class AttemptDetail(_Shape):
    number: int
    status: str
    started_at: str
    finished_at: str | None
    duration_s: float | None
    error_class: str | None
    error: str | None
    explanation: str | None = Field(description="The error class in plain words")
    exit_code: int | None
    output_path: str | None
    tokens: dict[str, int]
    node: str | None
    fix: str | None = Field(description="What to do about it, when known")


class DeliveryView(_Shape):
    target: str = Field(description="The target with its secrets removed")
    status: str
    attempts: int
    next_attempt_at: str | None
    last_error: str | None


class RunDetail(RunSummary):
    """``agentcron logs RUN_ID`` / ``GET /api/v1/runs/{id}``."""

    attempts_detail: list[AttemptDetail]
    deliveries: list[DeliveryView]
    output: str | None = Field(
        description="The kept output (first megabyte, redacted); the whole file is at "
        "/api/v1/runs/{id}/output"
    )


class Removed(_Shape):
    name: str
    removed: bool


class IncidentView(_Shape):
    """One problem of one task, from its first event to its recovery."""

    id: int | None
    task: str
    kind: str
    open: bool
    opened_at: str | None
    closed_at: str | None
    escalated: bool
    summary: str
    count: int
    failed_runs: int
    retries: int
    first_error_class: str | None
    last_error_class: str | None
    slot_id: int | None
    since: str | None
    streak: int
    updated_at: str | None
    reminded_at: str | None
    acknowledged_at: str | None
    acknowledged_by: str | None


class NodeView(_Shape):
    node_id: str
    host: str
    pid: int
    started_at: str | None
    heartbeat_at: str | None
    stopped_at: str | None
    state: str = Field(description="running, stale or stopped")
    heartbeat_age_s: float
    last_tick: str | None = Field(description="When its scheduler last completed a tick")
    config_note: str | None = Field(
        default=None,
        description="A running daemon's word on its config file when it does not run it "
        "as written: a change it rejected, sections that apply only at a restart",
    )


class OutboxView(_Shape):
    backlog: int
    oldest_at: str | None
    oldest_age_s: float | None


class ChannelView(_Shape):
    channel: str
    ok: bool
    pending: int
    last_ok_at: str | None
    last_error: str | None
    last_error_at: str | None
    failing_since: str | None
    broken: bool
    undeliverable: int
    # messages sent again after a sender stopped without saying whether they went out:
    # each may have arrived twice (the metric agentcron_outbox_resent_total)
    resent: int = 0
    # why a channel that has not failed sends nothing: its messages wait past two
    # minutes behind a send that does not end, or with no daemon sending them
    held: str | None = None


class ProviderView(_Shape):
    """A provider's shared back-off (its tasks wait while it cools down)."""

    name: str
    state: str = Field(description="cooling, probing (one run tries it) or over")
    until: str | None
    since: str | None
    reason: str
    seconds_left: float


class AdviceView(_Shape):
    """What the reader can do about a problem, as data; ``detail`` says it in words."""

    action: Literal["pause", "trigger", "list_runs", "list_incidents", "start_daemon"] = Field(
        description="pause: POST /api/v1/tasks/{task}/pause; trigger: POST "
        "/api/v1/tasks/{name}/trigger; list_runs: GET /api/v1/runs; list_incidents: GET "
        "/api/v1/incidents; start_daemon: the daemon is started on its own machine (no "
        "endpoint starts it)"
    )
    task: str | None = Field(None, description="The task it concerns, when one")


class HealthView(_Shape):
    """``agentcron health`` / ``GET /api/v1/health``."""

    alive: bool = Field(description="A daemon's heartbeat is recent")
    scheduling: bool = Field(description="A live daemon's scheduler ticked recently")
    last_tick: str | None
    last_tick_age_s: float | None
    problem: str | None = Field(description="One sentence when nothing is firing")
    advice: AdviceView | None = Field(None, description="What to do about the problem")
    nodes: list[NodeView]
    database: str
    runs_in_progress: int
    outbox: OutboxView
    open_incidents: int
    channels: list[ChannelView]
    providers: list[ProviderView] = Field(
        default_factory=list, description="Providers cooling down after refusing calls"
    )


class AuditView(_Shape):
    """One change made through the CLI, the API or the dashboard."""

    id: int | None
    at: str | None
    actor: str
    via: str
    action: str
    task: str | None
    before: Any
    after: Any


class PruneReport(_Shape):
    dry_run: bool
    slots: int
    attempts: int
    deliveries: int
    files: int
    outbox: int
    incidents: int
    nodes: int
    audit: int = Field(default=0, description="Entries of the audit trail past keep_history")
    batches: int = 0
    outputs: int = Field(default=0, description="Kept output files past their task's keep_outputs")
    outputs_by_task: dict[str, int] = Field(
        default_factory=dict, description="Those output files, by task"
    )
    unremoved: list[str] = Field(
        default_factory=list,
        description=(
            "Output files that could not be deleted, of removed runs or past keep_outputs "
            "(PATH: why)"
        ),
    )


class ChannelTest(_Shape):
    channel: str
    ok: bool
    error: str | None
    permanent: bool


class Problem(_Shape):
    """The one error shape of the API (RFC 9457 problem details)."""

    type: str = Field(description="urn:agentcron:problem:<kind>")
    title: str
    status: int
    detail: str = Field(description="What is wrong and what to do, in words")
    field: str | None = Field(None, description="The input at fault (query, path or body key)")
    problems: list[dict[str, str]] = Field(
        default_factory=list,
        description="Each problem of a rejected task as {location, message}",
    )
    advice: AdviceView | None = Field(
        None, description="What to do about it, as data (said in `detail` too)"
    )


M = TypeVar("M", bound=BaseModel)


def shaped(model: type[M], data: Any) -> Any:
    """``data`` (a dict or list of dicts) as ``model`` dumps it: what ``--json``
    prints and what the API sends."""
    if isinstance(data, list):
        return [model.model_validate(item).model_dump(mode="json") for item in data]
    return model.model_validate(data).model_dump(mode="json")


def shaped_json(model: type[M], rows: list[dict[str, Any]]) -> bytes:
    """``json.dumps(shaped(model, rows), indent=2)``, byte for byte (UTF-8), for long
    lists.

    Validating 100,000 task rows through the model cost 0.7 s and the pure-Python
    indenting encoder as much again (``agentcron list --json`` over 100,000 tasks).
    The service builds every row of a list in one place, in the model's key order, so
    when each row has exactly the model's keys in that order the rows are serialised as
    they are, by pydantic's Rust encoder (the same text); any other row sends the whole
    list through :func:`shaped`, so nothing unshaped is ever printed."""
    from pydantic_core import to_json

    fields = list(model.model_fields)
    if not all(list(row) == fields for row in rows):
        rows = shaped(model, rows)
    return to_json(rows, indent=2, fallback=str)  # 55 MB for 100,000 tasks: kept as bytes
