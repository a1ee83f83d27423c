"""The engine's side of the shared provider back-off (:mod:`agentcron.model.provider`).

Before a claimed slot starts, :meth:`ProviderGate.gate` holds it back while its
provider cools down (no attempt is spent: the claim is undone) and lets exactly one run
probe the provider once the cooldown is over. After runs end, :meth:`feedback` moves
the cooldown later on a refusal and ends it on any other answer.

The states are read at most once a second (a steady load claims a thousand times a
second; the providers table is read once) and kept up to date in between by this
node's own changes; a change by another node is seen within the second.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, tzinfo

from agentcron.model import Claim, ErrorClass, Finished, ProviderState, SlotStatus, TaskSpec
from agentcron.model.provider import ProviderNews
from agentcron.policies.provider import (
    COOLING_CLASSES,
    PROBE_LEASE,
    cooldown_until,
    provider_of,
)
from agentcron.store._provider_sql import waiting_reason_prefix
from agentcron.store.base import Store

log = logging.getLogger("agentcron.engine")

REFRESH = timedelta(seconds=1)
# Ends that say nothing about the provider: the run never heard from it.
_NO_ANSWER = (
    ErrorClass.WORKER_LOST,
    ErrorClass.TIMEOUT,
    ErrorClass.NETWORK,
    ErrorClass.CONFIG_ERROR,
)


class ProviderGate:
    def __init__(
        self,
        store: Store,
        owner: str,
        zone_of: Callable[[TaskSpec], tzinfo] = lambda _spec: UTC,
    ) -> None:
        self.store = store
        self.owner = owner
        self.zone_of = zone_of  # a waiting slot's reason gives times in its task's zone
        self._states: dict[str, ProviderState] = {}
        self._read_at: datetime | None = None

    def states(self, now: datetime) -> dict[str, ProviderState]:
        if self._read_at is None or not (now - REFRESH < self._read_at <= now):
            self._states = {s.key: s for s in self.store.providers()}
            self._read_at = now
        return self._states

    def gate(self, claims: list[Claim], now: datetime) -> tuple[list[Claim], list[ProviderNews]]:
        """The claims that may start now; the others are handed back to wait."""
        if not claims or not self.states(now):
            return claims, []
        start: list[Claim] = []
        news: list[ProviderNews] = []
        for claim in claims:
            who = provider_of(claim.spec)
            state = self._states.get(who[0]) if who is not None else None
            if state is None:
                start.append(claim)
                continue
            if state.cooling(now):
                until = state.until
                local = until.astimezone(self.zone_of(claim.spec))
                why = f"cooling down until {local:%H:%M:%S %Z}: {state.reason}"
            elif self.store.take_probe(state.key, self._probe_id(claim), now, now + PROBE_LEASE):
                self._states[state.key] = ProviderState(
                    state.key,
                    state.name,
                    state.until,
                    state.reason,
                    state.since,
                    self._probe_id(claim),
                    now + PROBE_LEASE,
                    now,
                )
                log.info(
                    "slot %s of %s tries %s after its cooldown",
                    claim.slot.id,
                    claim.spec.name,
                    state.name,
                )
                start.append(claim)
                continue
            else:
                until = (
                    state.probe_until
                    if state.probing(now) and state.probe_until
                    else (now + PROBE_LEASE)
                )
                why = "being tried by one run first, after its cooldown"
            reason = waiting_reason_prefix(state.name) + why
            if self.store.defer_claim(claim.slot.id, claim.attempt.id, self.owner, until, reason):
                news.append(ProviderNews("waiting", state, claim.spec.name, now))
            else:  # not ours any more (taken over meanwhile): nothing to start either
                log.warning("could not hold back slot %s of %s", claim.slot.id, claim.spec.name)
        return start, news

    def _probe_id(self, claim: Claim) -> str:
        return f"{self.owner}/{claim.slot.id}"

    def feedback(self, ended: Sequence[Finished], now: datetime) -> list[ProviderNews]:
        """Refusals move their provider's cooldown later; any other answer ends it."""
        news: list[ProviderNews] = []
        for f in ended:
            who = provider_of(f.spec)
            if who is None:
                continue
            key, name = who
            until = cooldown_until(f)
            refused = until is not None and f.outcome.slot_status in (
                SlotStatus.RETRYING,
                SlotStatus.FAILED,
            )
            if refused and until is not None:
                reason = f.outcome.explanation or (
                    f.classification.explanation if f.classification else "refused"
                )
                state, _new = self.store.cool_provider(key, name, until, reason, now)
                self._states[key] = state
                news.append(ProviderNews("refused", state, f.spec.name, now))
            elif (
                key in self.states(now)
                and f.outcome.slot_status is SlotStatus.FAILED
                and f.outcome.error_class in COOLING_CLASSES
                and self._states[key].probe_owner == f"{self.owner}/{f.slot.id}"
            ):
                # refused and given up, with no time to wait for: the provider still
                # refuses, but this run no longer tries it. Its probe is let go (the
                # cooldown kept as it is), or the task's next run waited out the whole
                # probe lease, 2 minutes after "Next scheduled run: …" (outside-in probe)
                reason = f.outcome.explanation or "refused"
                self._states[key], _ = self.store.cool_provider(key, name, now, reason, now)
            elif (
                key in self.states(now)
                and f.outcome.error_class not in _NO_ANSWER
                and f.outcome.error_class not in COOLING_CLASSES
            ):
                # a success, or an error the provider itself returned: it answers again
                # (not a refusal that came without a time to wait for: a run that gave
                # up on a 529 was told "answering again" seconds after it)
                answered = self.store.provider_answered(key, now)
                self._states.pop(key, None)
                if answered is not None:
                    news.append(ProviderNews("answered", answered, f.spec.name, now))
        return news
