"""The contract between the engine and the things that do the work.

An action runs one attempt and reports an :class:`ActionResult`. It never raises
for a failure of the user's work: failures are data (a :class:`FailureInfo`) so the
classifier, not the action, decides what they mean. An action does raise
``asyncio.CancelledError`` when the engine cancels it (``overlap: replace``,
shutdown) after it has stopped what it started.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Protocol

from agentcron.model.failure import FailureInfo
from agentcron.model.task import TaskSpec
from agentcron.quick_init import quick_init


@quick_init
@dataclass(frozen=True)
class ActionContext:
    """What an attempt knows about itself."""

    task: str
    spec: TaskSpec
    slot_id: int
    attempt: int
    scheduled_for: datetime
    # Where the action writes (or the runner stores) the output. The runner passes a
    # str: building a Path per run costs a burst measurable time; see output_file.
    output_path: Path | str
    timeout: timedelta
    kill_grace: timedelta
    context_text: str | None = None  # from precheck or `context: previous`
    env: dict[str, str] = field(default_factory=dict)  # extra env (AGENTCRON_CONTEXT)
    # Told the process group an action started, so a successor can stop it if this
    # daemon dies mid-run (otherwise it would run on beside the retry).
    on_started: Callable[[int], None] | None = None
    # With several nodes: how long this daemon may be frozen before the command stops
    # itself (its lease; another node then takes the slot over). Zero: no limit.
    fence: timedelta = timedelta(0)

    @cached_property
    def output_file(self) -> Path:
        return Path(self.output_path)

    @cached_property
    def run_env(self) -> dict[str, str]:
        """What a child process of this attempt is told about it, plus ``env``.
        Built on first use: an inline call never needs it."""
        return {
            "AGENTCRON_TASK": self.task,
            "AGENTCRON_SLOT": str(self.slot_id),
            "AGENTCRON_ATTEMPT": str(self.attempt),
            "AGENTCRON_SCHEDULED_FOR": self.scheduled_for.isoformat(),
            **self.env,
        }


@quick_init
@dataclass(frozen=True)
class ActionResult:
    ok: bool
    output: str = ""  # text kept as the run's output (already written to output_path)
    failure: FailureInfo | None = None  # set when ok is False
    exit_code: int | None = None
    tokens: dict[str, int] = field(default_factory=dict)  # prompt/completion for llm
    # Whether the output file exists, when the action knows (spares the runner a stat
    # on the loop); None: the runner looks.
    kept: bool | None = None
    # When it ended (epoch seconds), as the process that saw the end recorded it (a
    # command's launcher), when the daemon may have seen it late (frozen, or its loop
    # held by a statement that waited for the database); None: when it returned.
    ended_at: float | None = None


class Action(Protocol):
    async def run(self, ctx: ActionContext) -> ActionResult:
        """Run one attempt to completion, timeout included; see the module docstring."""
        ...
