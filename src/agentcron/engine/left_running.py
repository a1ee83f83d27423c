"""Runs held behind an inline call their task left running.

An inline sync call runs on a thread of the daemon, which cannot stop it: a call that
outlives its run (its timeout, a stop, a replace) goes on. Starting the task's next run
beside it broke ``overlap: skip`` (one call at a time) without a word, and a function
that hung with no timeout of its own got one more stuck thread every period. So while
such a call of a task still runs, a claim of that task is recorded ``skipped``, saying
why, unless the task's overlap is ``allow``; the skips are told as any skips are (a
streak of them opens an incident), beside the timeout that began it. A retry, a run
triggered by hand and a task with ``overlap: queue`` wait instead, looked at again
every few seconds, and run once the call has returned.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from agentcron.actions.python_action import still_running_past_its_run
from agentcron.model import Claim, OverlapPolicy, Slot, TaskSpec
from agentcron.model.provider import CALL_WAIT_PREFIX
from agentcron.schedules.zones import zone_label
from agentcron.store.base import Store

log = logging.getLogger("agentcron.engine")

Gate = Callable[[list[Claim], datetime], tuple[list[Claim], list[tuple[TaskSpec, Slot]]]]
WAIT_LOOK = timedelta(seconds=5)  # how often a run held behind such a call looks again


def _waits(claim: Claim) -> bool:
    """Whether this claim waits for the call rather than being skipped: a retry (told
    to come), a run asked for by hand (never skipped), or a task that queues its runs."""
    return (
        claim.attempt.number > 1
        or claim.slot.trigger == "manual"
        or claim.spec.overlap is OverlapPolicy.QUEUE
    )


def left_running_gate(
    store: Store, owner: str, zone_of: Callable[[TaskSpec], ZoneInfo], home: str
) -> Gate:
    """The engine gate that skips claims of tasks with an inline call left running by
    the daemon on ``home``."""

    def gate(claims: list[Claim], now: datetime) -> tuple[list[Claim], list[tuple[TaskSpec, Slot]]]:
        start: list[Claim] = []
        ended: list[tuple[TaskSpec, Slot]] = []
        for claim in claims:
            spec = claim.spec
            since = None
            if spec.isolation == "inline" and spec.overlap is not OverlapPolicy.ALLOW:
                since = still_running_past_its_run(spec.name, home)
            if since is None:
                start.append(claim)
                continue
            zone = zone_of(spec)
            local = since.astimezone(zone)
            call = (
                f"the inline call of its run due at {local:%H:%M:%S} "
                f"{zone_label(local, zone.key)} still runs in the daemon past that run's end "
                "(its timeout, or a stop), and the daemon cannot stop it"
            )
            if _waits(claim):
                # a retry the owner was told of, a run asked for by hand, a queue: each
                # waits for the call to return (a retry told "Retrying at …" was recorded
                # skipped behind its own first attempt's call: outside-in probe)
                reason = f"waiting: {call} (a restart of the daemon ends it)"
                assert reason.startswith(CALL_WAIT_PREFIX)  # the claim clears it when it runs
                until = now + WAIT_LOOK
                if store.defer_claim(claim.slot.id, claim.attempt.id, owner, until, reason):
                    log.info("slot %s of %s waits: %s", claim.slot.id, spec.name, reason)
                continue
            reason = (
                f"{call}: not started beside it (overlap: {spec.overlap.value}; a restart "
                "of the daemon ends it)"
            )
            slot = store.skip_claim(claim.slot.id, claim.attempt.id, owner, reason, now)
            if slot is None:  # taken over meanwhile: not ours to skip, nor to start
                continue
            log.warning("slot %s of %s skipped: %s", slot.id, spec.name, reason)
            ended.append((spec, slot))
        return start, ended

    return gate
