"""Schedules: when a task fires. Pure functions of time and zone."""

from agentcron.schedules.at import AtSchedule
from agentcron.schedules.base import FireTime, Schedule, fires_between
from agentcron.schedules.build import build_schedule
from agentcron.schedules.cron import ALIASES, CronSchedule, validate_cron
from agentcron.schedules.every import EverySchedule
from agentcron.schedules.zones import resolve_zone, system_zone

__all__ = [
    "ALIASES",
    "AtSchedule",
    "CronSchedule",
    "EverySchedule",
    "FireTime",
    "Schedule",
    "build_schedule",
    "fires_between",
    "resolve_zone",
    "system_zone",
    "validate_cron",
]
