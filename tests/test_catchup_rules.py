"""The catch-up rules of ``policies.catchup.plan_fires``, stated once here and checked
for any fires, policy, window and grace: every fire gets exactly one slot, in order;
one seen within its grace runs whatever the policy; one older than the window is
missed; one late within the window follows the policy (``all`` runs it, ``none``
misses it, ``latest`` runs only the newest of a batch with nothing on time beside it
and no batch after it). The one-fire-on-time case a tick meets for nearly every due
task has a quick path of its own; these rules hold for it as for the rest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from agentcron.model import CatchupPolicy, SlotStatus
from agentcron.policies.catchup import on_time_grace, plan_fires

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


@given(
    ages=st.lists(st.integers(min_value=0, max_value=7200), min_size=1, max_size=8, unique=True),
    policy=st.sampled_from(list(CatchupPolicy)),
    grace=st.integers(min_value=1, max_value=60),
    window=st.integers(min_value=0, max_value=7200),
    more_follow=st.booleans(),
)
def test_every_fire_gets_one_slot_by_the_rules(
    ages: list[int], policy: CatchupPolicy, grace: int, window: int, more_follow: bool
) -> None:
    fires = sorted(NOW - timedelta(seconds=a) for a in ages)
    slots = plan_fires(
        fires,
        NOW,
        policy,
        timedelta(seconds=window),
        timedelta(seconds=grace),
        more_follow=more_follow,
    )
    assert [s.scheduled_for for s in slots] == fires
    on_time = [at for at in fires if NOW - at <= timedelta(seconds=grace)]
    late = [at for at in fires if timedelta(seconds=grace) < NOW - at <= timedelta(seconds=window)]
    newest_runs = policy is CatchupPolicy.LATEST and not more_follow and not on_time and late
    for slot in slots:
        at = slot.scheduled_for
        if at in on_time:
            assert (slot.status, slot.trigger, slot.reason) == (
                SlotStatus.PENDING,
                "schedule",
                None,
            )
        elif at in late and (policy is CatchupPolicy.ALL or (newest_runs and at == late[-1])):
            assert (slot.status, slot.trigger) == (SlotStatus.PENDING, "catchup")
        else:
            assert slot.status is SlotStatus.MISSED and slot.reason, slot


def test_the_on_time_grace_is_half_the_period_within_a_second_and_a_minute() -> None:
    assert on_time_grace(timedelta(seconds=1)) == timedelta(seconds=1)
    assert on_time_grace(timedelta(minutes=10)) == timedelta(minutes=1)
    assert on_time_grace(timedelta(seconds=30)) == timedelta(seconds=15)
    assert on_time_grace(timedelta(0)) == timedelta(minutes=1)
