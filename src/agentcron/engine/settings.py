"""What an engine is told at its start, and what one tick of it did."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from . import health


@dataclass
class EngineSettings:
    home: Path
    owner: str
    max_concurrency: int = 4
    default_zone: str | None = None
    lease: timedelta = timedelta(seconds=60)
    poll_interval: float = 1.0
    dead_owners: tuple[str, ...] = ()
    outage_notice_after: timedelta = health.NOTICE_AFTER  # failing this long is told
    recovery_hold: timedelta = timedelta(seconds=30)  # working this long ends it (told)
    # several nodes: a command whose daemon is frozen this long stops itself (see
    # actions/_shim.py), before another node may take its slot over; 0: never
    fence: timedelta = timedelta(0)


@dataclass
class TickReport:
    materialized: int = 0
    started: int = 0
    lost: int = 0
    skipped: int = 0
    missed: int = 0  # recorded missed or expired by the catch-up rules
    waiting: int = 0  # recorded by this tick and left waiting (for a free worker)
    fresh: int = 0  # recorded by this tick and started at once (counted in started too)
    # fires due by now left for the next ticks: a downtime's catch-up recorded in chunks
    # (planning.CHUNK per task), or more due tasks than one tick plans (DUE_LIMIT)
    backlog: bool = False
