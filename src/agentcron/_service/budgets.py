"""What tasks spent today against their daily budgets, for `list`, `show`, the API,
the dashboard and the MCP tools.

The budgets of the config (every task's together, per agent) come with the service's
:class:`~agentcron._service.base.Defaults` (``budgets``); a task's own is in its spec.
The day is the owner's (the config's zone), as the engine counts it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from agentcron._service.base import ServiceCore, iso
from agentcron.model.budget import Budget, BudgetScope, Usage
from agentcron.policies.budget import (
    GLOBAL_KEY,
    budget_day,
    describe_usage,
    scopes_of,
    spent_on,
)
from agentcron.schedules.zones import resolve_zone


class BudgetsMixin(ServiceCore):
    def budget_usage(
        self, tasks: Iterable[tuple[str, Budget | None]]
    ) -> dict[str, list[dict[str, Any]]]:
        """Per task (``(name, its own budget)``; only tasks with a budget are answered),
        every budget it spends from with today's usage, narrowest first: one read for
        the whole list."""
        rules = self.defaults.budgets
        covered = {name: scopes_of(name, own, rules) for name, own in tasks}
        covered = {name: scopes for name, scopes in covered.items() if scopes}
        if not covered:
            return {}
        zone = resolve_zone(self.defaults.timezone)
        day, resets = budget_day(self.clock.now(), zone)
        keys = {s.key for scopes in covered.values() for s in scopes}
        usage = self.store.budget_usage(sorted(keys), day)
        return {
            name: [_view(s, usage.get(s.key, Usage()), iso(resets)) for s in scopes]
            for name, scopes in covered.items()
        }

    def task_budget(self, name: str) -> list[dict[str, Any]]:
        """The budgets task ``name`` spends from, with today's usage."""
        spec = self._task(name).spec
        return self.budget_usage([(spec.name, spec.budget)]).get(spec.name, [])

    def budgets_of_listed(
        self, names: Sequence[str], maybe_own: Sequence[str] | None = None
    ) -> dict[str, list[dict[str, Any]]]:
        """:meth:`budget_usage` for a list of tasks read without their specs: their own
        budgets are read from the store, of ``maybe_own`` only when given (the listed
        tasks not known to have none)."""
        if maybe_own is None:
            own = self.store.task_budgets()
        else:
            own = self.store.task_budgets(maybe_own) if maybe_own else {}
        if not own and self.defaults.budgets.empty:
            return {}
        return self.budget_usage((name, own.get(name)) for name in names)

    def config_budgets(self) -> list[dict[str, Any]]:
        """The config's own budgets (every task's together, then per agent) with
        today's usage: `list` prints them under the table, MCP shows an agent its own."""
        rules = self.defaults.budgets
        scopes = [
            BudgetScope(f"agent:{client}", f"agent {client}", budget)
            for client, _prefix, budget in rules.agents
        ]
        if rules.everything is not None:
            scopes.insert(0, BudgetScope(GLOBAL_KEY, "all tasks together", rules.everything))
        if not scopes:
            return []
        day, resets = budget_day(self.clock.now(), resolve_zone(self.defaults.timezone))
        usage = self.store.budget_usage([s.key for s in scopes], day)
        return [_view(s, usage.get(s.key, Usage()), iso(resets)) for s in scopes]


def _view(scope: BudgetScope, usage: Usage, resets_at: str | None) -> dict[str, Any]:
    return {
        "scope": scope.key,
        "label": scope.label,
        "runs": usage.runs,
        "runs_per_day": scope.budget.runs_per_day,
        "tokens": usage.tokens,
        "tokens_per_day": scope.budget.tokens_per_day,
        "used_up": spent_on(usage, scope.budget),
        "summary": describe_usage(usage, scope.budget),
        "resets_at": resets_at,
    }
