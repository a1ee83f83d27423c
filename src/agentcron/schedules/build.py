"""From a task's spec to its schedule: the one place that knows which key means what."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentcron.schedules.at import AtSchedule
from agentcron.schedules.base import Schedule
from agentcron.schedules.cron import CronSchedule
from agentcron.schedules.every import EverySchedule
from agentcron.schedules.zones import resolve_zone

if TYPE_CHECKING:
    from agentcron.model.task import TaskSpec


def build_schedule(spec: TaskSpec, default_zone: str | None = None) -> Schedule:
    """The schedule of ``spec``.

    Its zone is ``spec.timezone``, else ``default_zone`` (the config's top-level
    ``timezone``), else the system zone.
    """
    zone = resolve_zone(spec.timezone or default_zone)
    if spec.cron is not None:
        return CronSchedule(spec.cron, zone)
    if spec.every is not None:
        return EverySchedule(spec.every, zone, spec.anchor)
    if spec.at is not None:
        return AtSchedule(spec.at, zone)
    raise ValueError(f"task {spec.name!r} has no schedule: set cron, every or at")
