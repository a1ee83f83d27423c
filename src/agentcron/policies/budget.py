"""Which daily budgets apply to a task, which day it is for them, and the words of a
slot skipped over one. Pure functions: the engine's budget gate asks them per claim.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from agentcron.model import TaskSpec
from agentcron.model.budget import Budget, BudgetScope, Usage

GLOBAL_KEY = "global"
# The reason of every slot skipped over a budget begins so: the notifier tells those
# once per budget and day, not as a streak of skips.
REASON_PREFIX = "over budget: "


@dataclass(frozen=True)
class BudgetRules:
    """The budgets of the config: every task's together, and per agent namespace
    (``(client name, task-name prefix, budget)``). A task's own is in its spec."""

    everything: Budget | None = None
    agents: Sequence[tuple[str, str, Budget]] = field(default_factory=tuple)

    @property
    def empty(self) -> bool:
        return self.everything is None and not self.agents


def scopes_for(spec: TaskSpec, rules: BudgetRules) -> list[BudgetScope]:
    """The budgets ``spec`` spends from, narrowest first."""
    return scopes_of(spec.name, spec.budget, rules)


def scopes_of(name: str, own: Budget | None, rules: BudgetRules) -> list[BudgetScope]:
    """The budgets task ``name`` spends from, given its own (``own``), narrowest first."""
    scopes: list[BudgetScope] = []
    if own is not None:
        scopes.append(BudgetScope(f"task:{name}", f"task {name}", own))
    for client, prefix, budget in rules.agents:
        if name.startswith(prefix):
            scopes.append(BudgetScope(f"agent:{client}", f"agent {client}", budget))
    if rules.everything is not None:
        scopes.append(BudgetScope(GLOBAL_KEY, "all tasks together", rules.everything))
    return scopes


def budget_day(now: datetime, zone: ZoneInfo) -> tuple[str, datetime]:
    """The day ``now`` falls on in ``zone`` (``YYYY-MM-DD``) and when it ends: budgets
    reset at the owner's midnight, not UTC's."""
    local = now.astimezone(zone)
    next_day: date = local.date() + timedelta(days=1)
    resets = datetime.combine(next_day, time(0), tzinfo=zone)
    return local.date().isoformat(), resets


def spent_on(usage: Usage, budget: Budget) -> str | None:
    """``runs`` or ``tokens`` if ``usage`` leaves no room under ``budget``, else None."""
    if budget.runs_per_day is not None and usage.runs >= budget.runs_per_day:
        return "runs"
    if budget.tokens_per_day is not None and usage.tokens >= budget.tokens_per_day:
        return "tokens"
    return None


def describe_usage(usage: Usage, budget: Budget) -> str:
    """``3/10 runs, 12,000/100,000 tokens`` (only the parts the budget limits)."""
    parts = []
    if budget.runs_per_day is not None:
        parts.append(f"{usage.runs:,}/{budget.runs_per_day:,} runs")
    if budget.tokens_per_day is not None:
        parts.append(f"{usage.tokens:,}/{budget.tokens_per_day:,} tokens")
    return ", ".join(parts)


def skip_reason(scope: BudgetScope, spent: str, usage: Usage, resets_at: datetime) -> str:
    """Why a slot was skipped, as ``list``/``history`` show it."""
    return (
        f"{REASON_PREFIX}{scope.label} used {describe_usage(usage, scope.budget)} today "
        f"({spent} used up); it resets at {resets_at:%Y-%m-%d %H:%M %Z}"
    )


def tokens_of(counts: dict[str, int]) -> int:
    """The tokens an attempt spent: prompt and completion (what providers bill), or
    the ``total`` of a provider that reports only that (it counted as 0, and a
    ``tokens_per_day`` budget was never reached)."""
    if "prompt" in counts or "completion" in counts:
        return max(0, counts.get("prompt", 0)) + max(0, counts.get("completion", 0))
    return max(0, counts.get("total", 0))
