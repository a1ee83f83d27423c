"""agentcron: a scheduler for AI-agent and script workloads where a scheduled task never
fails silently."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from agentcron.clock import Clock, FakeClock, SystemClock
from agentcron.config.errors import ConfigError
from agentcron.model import ErrorClass, SlotStatus, TaskSpec
from agentcron.scheduler import Scheduler

try:
    __version__ = version("agentcron")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0"

__all__ = [
    "Clock",
    "ConfigError",
    "ErrorClass",
    "FakeClock",
    "Scheduler",
    "SlotStatus",
    "SystemClock",
    "TaskSpec",
    "__version__",
]
