"""The engine's side of daily budgets (:mod:`agentcron.model.budget`).

:meth:`BudgetGate.gate` runs on the claims about to start, after the provider gate (a
slot held back for its provider has not started and spends nothing). A first attempt
reserves one run from every budget over its task; one without room is recorded
``skipped`` with the reason instead, and the listeners hear of it (the notifier tells
the owner once per budget and day). Retries belong to their run and pass.
:meth:`spend` says what an ended attempt spent; the engine adds it to the day's usage
in the transaction that records the attempt's end.

A config without budgets costs one ``scopes_for`` per claim: nothing is read or written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from agentcron.model import AttemptOutcome, Claim, Slot, TaskSpec
from agentcron.model.budget import BudgetNews
from agentcron.policies.budget import (
    BudgetRules,
    budget_day,
    scopes_for,
    skip_reason,
    spent_on,
    tokens_of,
)
from agentcron.schedules.zones import resolve_zone
from agentcron.store.base import Store

log = logging.getLogger("agentcron.engine")

KEEP_USAGE = timedelta(days=40)  # days of usage kept (list/show read today's only)


class BudgetGate:
    def __init__(self, store: Store, owner: str, rules: BudgetRules, zone: str | None) -> None:
        self.store = store
        self.owner = owner
        self.rules = rules
        self.zone = zone  # the owner's zone: budgets reset at its midnight
        self.listeners: list[Callable[[BudgetNews], None]] = []
        self._pruned_day: str | None = None

    def configure(self, rules: BudgetRules, zone: str | None) -> None:
        """A reloaded config's budgets (the usage already counted today stays)."""
        self.rules, self.zone = rules, zone

    def gate(
        self, claims: list[Claim], now: datetime
    ) -> tuple[list[Claim], list[tuple[TaskSpec, Slot]]]:
        """The claims that may start; the others recorded skipped, with their task."""
        start: list[Claim] = []
        skipped: list[tuple[TaskSpec, Slot]] = []
        day: tuple[str, datetime] | None = None
        for claim in claims:
            scopes = scopes_for(claim.spec, self.rules) if claim.attempt.number == 1 else []
            if not scopes:
                start.append(claim)
                continue
            day = day or budget_day(now, resolve_zone(self.zone))
            over = self.store.reserve_run(scopes, day[0])
            if over is None:
                start.append(claim)
                continue
            scope, usage = over
            spent = spent_on(usage, scope.budget) or "runs"
            reason = skip_reason(scope, spent, usage, day[1])
            slot = self.store.skip_claim(claim.slot.id, claim.attempt.id, self.owner, reason, now)
            if slot is None:  # taken over meanwhile: not ours to skip, nor to start
                log.warning(
                    "could not skip slot %s of %s over its budget", claim.slot.id, claim.spec.name
                )
                continue
            log.info("slot %s of %s skipped: %s", slot.id, claim.spec.name, reason)
            skipped.append((claim.spec, slot))
            news = BudgetNews(scope, day[0], spent, usage, claim.spec.name, now, day[1])
            for listener in self.listeners:
                try:
                    listener(news)
                except Exception:
                    log.exception("budget listener failed on %s", scope.label)
        return start, skipped

    def spend(
        self, spec: TaskSpec, outcome: AttemptOutcome, at: datetime
    ) -> tuple[tuple[str, str, int], ...]:
        """What an ended attempt spent against each budget over its task, as (scope key,
        day, tokens): the engine writes it in the transaction that records the end
        (a batch listener adding it afterwards lost it to a crash in between)."""
        tokens = tokens_of(outcome.tokens) if outcome.tokens else 0
        if not tokens:
            return ()
        scopes = scopes_for(spec, self.rules)
        if not scopes:
            return ()
        day, _ = budget_day(at, resolve_zone(self.zone))
        return tuple((scope.key, day, tokens) for scope in scopes)

    def prune(self, now: datetime) -> None:
        """Housekeeping: forget usage older than :data:`KEEP_USAGE`, once a day."""
        day, _ = budget_day(now, resolve_zone(self.zone))
        if day == self._pruned_day:
            return
        before, _ = budget_day(now - KEEP_USAGE, resolve_zone(self.zone))
        self.store.prune_budget_usage(before)
        self._pruned_day = day
