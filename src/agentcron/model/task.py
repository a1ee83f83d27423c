"""The task specification: what to run, when, and under which policies.

A :class:`TaskSpec` is the fully resolved form of one task (defaults merged in),
whether it came from ``agentcron.yaml``, ``agentcron add``, the HTTP API or the
Python decorator. It is stored as JSON with the task, so the daemon needs nothing
but the database to run it.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    StrictInt,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from agentcron.durations import parse_duration
from agentcron.model.budget import Budget
from agentcron.model.enums import CatchupPolicy, ErrorClass, OverlapPolicy

Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(lambda d: d.total_seconds(), return_type=float),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": r"^\s*(\d+(\.\d+)?\s*(ms|s|m|h|d|w)?\s*)+$"},
            ],
            "description": "A duration: 500ms, 30s, 5m, 2h, 1d, or plain seconds.",
        }
    ),
]

EVERY_AT_MOST = timedelta(days=36525)  # 100 years: the widest grid a task may have
DESCRIPTION_AT_MOST = 2000  # characters


def shortened(text: str, at_most: int = 60) -> str:
    """``text`` as an error message quotes it: a name of 5,000 characters was repeated
    whole in the refusal."""
    return text if len(text) <= at_most else text[:at_most] + "…"


TASK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
MIN_KEEP_HISTORY = timedelta(hours=1)
NOTIFY_EVENTS = ("opened", "escalated", "closed", "repeated", "stuck", "delivery", "reminder")
ACTION_KEYS = ("command", "python", "http", "llm")  # a spec's action is the first one set


def schedule_text(cron: str | None, every: timedelta | None, at: datetime | None) -> str:
    """A schedule in words, as `list` shows it. A function of the three keys, so a task
    list read from stored keys (agentcron.store._rows.TaskListing) says it the same way."""
    if cron is not None:
        return cron
    if every is not None:
        from agentcron.durations import format_duration

        return f"every {format_duration(every)}"
    assert at is not None
    return f"at {at.isoformat()}"


MAX_ARGUMENT = 128 * 1024 - 1  # bytes of one argument the Linux kernel passes (MAX_ARG_STRLEN)


def _surrogate_at(value: Any, path: tuple[str | int, ...]) -> tuple[str | int, ...] | None:
    """Where in ``value`` (nested dicts, lists, keys included) a string holds a lone
    surrogate, or None. ASCII strings, nearly all of them, cost one C call each."""
    if isinstance(value, str):
        if value.isascii():
            return None
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            name = key if isinstance(key, str) else str(key)
            if _surrogate_at(name, ()) is not None:
                return (*path, name)
            found = _surrogate_at(item, (*path, name))
            if found is not None:
                return found
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _surrogate_at(item, (*path, index))
            if found is not None:
                return found
    return None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BackoffSpec(_Strict):
    """Exponential backoff: ``base * factor**(n-1)`` capped at ``cap``, minus up to ``jitter``."""

    base: Duration = timedelta(seconds=30)
    factor: float = Field(default=2.0, ge=1.0)
    cap: Duration = timedelta(minutes=30)
    jitter: float = Field(default=0.2, ge=0.0, le=1.0)


class HttpSpec(_Strict):
    method: str = "GET"
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | dict[str, Any] | list[Any] | None = None
    expect: list[int] = Field(default_factory=list, description="Success statuses; empty = 2xx")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[^\s/]+", v):
            raise ValueError(f"not an http(s) URL: {v!r}")
        return v

    @field_validator("method")
    @classmethod
    def _method(cls, v: str) -> str:
        m = v.upper()
        if m not in {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}:
            raise ValueError(f"unknown HTTP method {v!r}")
        return m


class LlmSpec(_Strict):
    base_url: str
    model: str
    api_key_env: str | None = None
    system: str | None = None
    prompt: str
    max_tokens: StrictInt | None = Field(default=None, gt=0)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    timeout: Duration | None = None

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[^\s/]+", v):
            raise ValueError(f"not an http(s) URL: {v!r}")
        return v


class ClassifyRule(_Strict):
    match: str
    class_: ErrorClass = Field(alias="class")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("match")
    @classmethod
    def _regex(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {v!r}: {exc}") from None
        return v


class TaskSpec(_Strict):
    """One task, fully resolved. Exactly one schedule and exactly one action."""

    name: str
    # schedule
    cron: str | None = None
    every: Duration | None = None
    anchor: datetime | None = Field(
        default=None, description="Grid origin for `every` (default: the Unix epoch, UTC)"
    )
    at: datetime | None = None
    expires: Duration | None = Field(
        default=None, description="For `at`: give up if not started this long after `at`"
    )
    timezone: str | None = None
    # action
    command: list[str] | str | None = None
    shell: StrictBool = False
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    python: str | None = None
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    isolation: Literal["process", "inline"] = "process"
    http: HttpSpec | None = None
    llm: LlmSpec | None = None
    # policies
    retries: StrictInt = Field(default=3, ge=0, le=100)
    retry_backoff: BackoffSpec = BackoffSpec()  # frozen: one default shared by all
    timeout: Duration = timedelta(hours=1)
    kill_grace: Duration = timedelta(seconds=5)
    stuck_after: Duration = timedelta(minutes=30)
    overlap: OverlapPolicy = OverlapPolicy.SKIP
    catchup: CatchupPolicy = CatchupPolicy.LATEST
    catchup_window: Duration = timedelta(hours=24)
    overdue_after: Duration | None = None
    empty_output_streak: StrictInt = Field(default=3, ge=0)
    expect_output: StrictBool | None = Field(
        default=None,
        description="Flag runs that succeed with no output: true always, false never; "
        "unset watches llm tasks and tasks whose earlier successful runs had output",
    )
    escalate_after: Duration | None = Field(
        default=None,
        description="A transient failure escalates once no run has succeeded for this "
        "long (default: max(3 periods, 1h)), or after retries+1 failed runs in a row",
    )
    remind_after: Duration = Field(
        default=timedelta(hours=24),
        description="An incident still open this long is told again, once per period "
        "of this length; 0 turns reminders off",
    )
    budget: Budget | None = Field(
        default=None,
        description="Daily ceiling of this task's runs and model tokens; a slot over it "
        "is recorded skipped and the owner told once a day",
    )
    classify: list[ClassifyRule] = Field(default_factory=list)
    notify: list[str] | None = None
    notify_on: list[str] = Field(
        default_factory=lambda: ["opened", "escalated", "closed", "reminder"]
    )
    deliver: list[str] = Field(default_factory=list)
    delivery_backoff: list[Duration] = Field(
        default_factory=lambda: [timedelta(seconds=60), timedelta(minutes=5), timedelta(minutes=30)]
    )
    precheck: list[str] | str | None = None
    context: Literal["isolated", "previous"] = "isolated"
    keep_outputs: Duration | None = timedelta(days=30)
    keep_history: Duration | None = Field(
        default=timedelta(days=90),
        description="Finished runs older than this are pruned with their attempts, "
        "deliveries and output files (null keeps all)",
    )
    paused: StrictBool = False
    description: str | None = None
    provider: str | None = Field(
        default=None,
        description="A name for the provider this task calls; tasks with the same "
        "provider share one back-off (default: an llm or http task's host)",
    )
    imported_from: str | None = Field(
        default=None,
        description="'SOURCE:ID' of the job this task was imported from; "
        "re-importing updates the task that carries it",
    )

    @model_validator(mode="before")
    @classmethod
    def _valid_text(cls, data: Any) -> Any:
        """Refuse a lone UTF-16 surrogate anywhere in the spec (JSON can carry one as
        ``"\\ud800"``): it cannot be stored, shown or passed to a command, and was met
        only later, as a 500 of the API or as every run failing in agentcron itself."""
        where = _surrogate_at(data, ())
        if where is not None:
            path = ".".join(str(p) for p in where).encode("utf-8", "backslashreplace").decode()
            path = path or "the task"
            raise ValueError(
                f"{path}: holds a lone UTF-16 surrogate (text that is not valid Unicode)"
            )
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not TASK_NAME.fullmatch(v):
            raise ValueError(
                f"invalid task name {shortened(v)!r}: use letters, digits, '_', '-', '.', "
                "beginning with a letter or digit (max 100)"
            )
        return v

    @field_validator("description")
    @classmethod
    def _description(cls, v: str | None) -> str | None:
        # shown in every list and view, copied into the audit trail: 1 MB of it was
        # accepted and repeated in every answer (outside-in probe)
        if v is not None and len(v) > DESCRIPTION_AT_MOST:
            raise ValueError(
                f"a description is at most {DESCRIPTION_AT_MOST:,} characters "
                f"(this one has {len(v):,})"
            )
        return v

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {v!r} (use an IANA name such as Europe/Berlin)"
            ) from None
        return v

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is None:
            return v
        from agentcron.schedules.cron import validate_cron

        return validate_cron(v)

    @field_validator("python")
    @classmethod
    def _python_ref(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^[\w.]+:[\w.]+$", v):
            raise ValueError(f"python must be 'module:function', got {v!r}")
        return v

    @field_validator("notify_on")
    @classmethod
    def _events(cls, v: list[str]) -> list[str]:
        bad = [e for e in v if e not in NOTIFY_EVENTS]
        if bad:
            raise ValueError(f"unknown event(s) {bad}; choose from {list(NOTIFY_EVENTS)}")
        return v

    @field_validator("every")
    @classmethod
    def _every(cls, v: timedelta | None) -> timedelta | None:
        if v is not None and v.total_seconds() < 1:
            raise ValueError("every must be at least 1s")
        if v is not None and v > EVERY_AT_MOST:
            # a grid this wide has no fire a calendar can hold: accepted, the task never
            # fired and `list` called it ok (outside-in probe: every: 100000000d)
            raise ValueError("every must be at most 100 years (36525d)")
        return v

    @field_validator("keep_history")
    @classmethod
    def _keep_history(cls, v: timedelta | None) -> timedelta | None:
        # shorter than an hour would prune a run before anyone could look at it
        if v is not None and v < MIN_KEEP_HISTORY:
            raise ValueError("keep_history must be at least 1h (or null to keep all history)")
        return v

    @field_validator("keep_outputs")
    @classmethod
    def _keep_outputs(cls, v: timedelta | None) -> timedelta | None:
        # 0 read as "off" elsewhere; here it deleted every output at the next prune,
        # before `logs` or a failure's message could point at it (outside-in probe)
        if v is not None and v < timedelta(minutes=1):
            raise ValueError("keep_outputs must be at least 1m (or null to keep them)")
        return v

    @model_validator(mode="after")
    def _one_schedule_one_action(self) -> TaskSpec:
        schedules = [k for k in ("cron", "every", "at") if getattr(self, k) is not None]
        if len(schedules) != 1:
            raise ValueError(
                "a task needs exactly one schedule: cron, every or at"
                + (f" (found {', '.join(schedules)})" if schedules else "")
            )
        actions = [k for k in ACTION_KEYS if getattr(self, k) is not None]
        if len(actions) != 1:
            raise ValueError(
                "a task needs exactly one action: command, python, http or llm"
                + (f" (found {', '.join(actions)})" if actions else "")
            )
        if isinstance(self.command, str) and not self.shell:
            raise ValueError(
                "command is a string but shell is not true: give an argv list "
                '(["prog", "arg"]) or set shell: true'
            )
        if isinstance(self.command, list) and not self.command:
            raise ValueError("command must not be empty")
        words = [self.command] if isinstance(self.command, str) else self.command or []
        if any(len(w.encode()) > MAX_ARGUMENT for w in words):
            # the kernel refuses one argument past 128 KiB when the run starts: it was
            # accepted, and failed as "could not start its command launcher … the
            # daemon's user must be able to run agentcron's Python" (outside-in probe)
            raise ValueError(
                "command has an argument of 128 KiB or more, more than the "
                "system passes to a program; put the text in a file and pass its path"
            )
        if self.expires is not None and self.at is None:
            raise ValueError("expires only applies to an `at` schedule")
        if self.timeout <= timedelta(0):
            raise ValueError("timeout must be positive")
        return self

    @property
    def action_kind(self) -> str:
        for k in ACTION_KEYS:
            if getattr(self, k) is not None:
                return k
        raise AssertionError("validated spec without an action")

    @property
    def schedule_text(self) -> str:
        return schedule_text(self.cron, self.every, self.at)

    def zone(self, default: str | None = None) -> ZoneInfo:
        """The zone this task's schedule is evaluated in."""
        from agentcron.schedules.zones import resolve_zone

        return resolve_zone(self.timezone or default)
