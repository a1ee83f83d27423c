"""Daily budgets: how many runs, and how many model tokens, a scope may spend in a day.

An owner who lets agents schedule work (or schedules a model every minute) wants a
ceiling that holds even when a prompt loops or an agent schedules too much. Three
scopes have one: a task (``tasks.NAME.budget``), an agent's namespace
(``agents.clients.NAME.budget``) and every task together (the top-level ``budget``).
A slot that would start over any of them is recorded ``skipped`` with the reason, and
the owner is told once per budget per day.

*Runs* are the slots whose first attempt starts (a retry belongs to its run). *Tokens*
are the prompt and completion tokens the runs' attempts recorded: a run is known to
have spent them only once it ends, so a token budget stops the runs that would start
after it is used up, not the one that crosses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator


class Budget(BaseModel):
    """A daily ceiling; either part may be left out (no limit on it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    runs_per_day: StrictInt | None = Field(
        default=None, ge=0, description="Runs (slots started, retries included) per day"
    )
    tokens_per_day: StrictInt | None = Field(
        default=None, ge=0, description="Model tokens (prompt + completion) per day"
    )

    @model_validator(mode="after")
    def _something(self) -> Budget:
        if self.runs_per_day is None and self.tokens_per_day is None:
            raise ValueError("give runs_per_day, tokens_per_day or both")
        return self


@dataclass(frozen=True)
class BudgetScope:
    """One budget that applies to a task: ``key`` identifies it in the usage table
    (``task:NAME``, ``agent:NAME`` or ``global``); ``label`` is what the owner reads."""

    key: str
    label: str
    budget: Budget


@dataclass(frozen=True)
class Usage:
    """What a scope spent on one day."""

    runs: int = 0
    tokens: int = 0


@dataclass(frozen=True)
class BudgetNews:
    """A slot of ``task`` was skipped because ``scope`` was used up on ``day``
    (``spent`` says on what: ``runs`` or ``tokens``); the day ends at ``resets_at``."""

    scope: BudgetScope
    day: str
    spent: str
    usage: Usage
    task: str
    at: datetime
    resets_at: datetime
