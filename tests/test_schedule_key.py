"""The stored schedule key must not change across versions: a task whose key differs
from the stored one is re-planned from now on, losing its place on the grid (and any
catch-up of a downtime). It is the hash of the JSON of the schedule fields as
``model_dump(mode="json")`` gives them; these tests hold the cheaper construction to that."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agentcron.model.task import TaskSpec
from agentcron.store._rows import schedule_key


def reference_key(spec: TaskSpec) -> str:
    part = spec.model_dump(
        mode="json", include={"cron", "every", "anchor", "at", "expires", "timezone"}
    )
    return hashlib.sha256(json.dumps(part, sort_keys=True).encode()).hexdigest()[:16]


def test_known_keys_are_pinned() -> None:
    # Values written by earlier versions: these must keep matching.
    hourly = TaskSpec(name="a", cron="0 * * * *", timezone="Europe/Berlin", command=["true"])
    grid = TaskSpec(
        name="b", every="90m", anchor=datetime(2030, 1, 1, 5, 5), python="m:f", timezone=None
    )
    once = TaskSpec(
        name="c", at=datetime(2026, 3, 29, 2, 30, tzinfo=UTC), expires="1h", command=["true"]
    )
    assert [schedule_key(s) for s in (hourly, grid, once)] == [
        reference_key(hourly),
        reference_key(grid),
        reference_key(once),
    ]
    assert schedule_key(hourly) == PINNED_HOURLY


PINNED_HOURLY = "e695102726e98c3e"  # schedule_key at commit 6af2bea

offsets = st.one_of(
    st.none(),
    st.just(UTC),
    st.integers(min_value=-14 * 60, max_value=14 * 60).map(
        lambda m: timezone(timedelta(minutes=m))
    ),
)
instants = st.builds(
    lambda d, tz: d.replace(tzinfo=tz),
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1)),
    offsets,
)
seconds = st.floats(min_value=1, max_value=10**8, allow_nan=False).map(
    lambda s: timedelta(seconds=s)
)
zones = st.sampled_from([None, "UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"])


@st.composite
def schedules(draw: Any) -> dict[str, Any]:
    kind = draw(st.sampled_from(["cron", "every", "at"]))
    out: dict[str, Any] = {"timezone": draw(zones)}
    if kind == "cron":
        out["cron"] = draw(
            st.sampled_from(["0 * * * *", "*/7 2-5 * * 1-5", "@daily", "30 2 1 */2 *"])
        )
    elif kind == "every":
        out["every"] = draw(seconds)
        out["anchor"] = draw(st.none() | instants)
    else:
        out["at"] = draw(instants)
        out["expires"] = draw(st.none() | seconds)
    return out


@settings(max_examples=300, deadline=None)
@given(schedules())
def test_the_key_is_the_hash_of_the_fields_json(fields: dict[str, Any]) -> None:
    spec = TaskSpec(name="t", python="m:f", **fields)
    assert schedule_key(spec) == reference_key(spec)
