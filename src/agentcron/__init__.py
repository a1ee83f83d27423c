"""agentcron: a scheduler for AI-agent and script workloads where a scheduled task never
fails silently.

Names are loaded on first use: python worker processes import this package to run
user code, and must not pay for the config loader and Apprise they never use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentcron.clock import Clock, FakeClock, SystemClock
    from agentcron.config.errors import ConfigError
    from agentcron.model import ErrorClass, SlotStatus, TaskSpec
    from agentcron.scheduler import Scheduler

    __version__: str

_EXPORTS = {
    "Clock": "agentcron.clock",
    "FakeClock": "agentcron.clock",
    "SystemClock": "agentcron.clock",
    "ConfigError": "agentcron.config.errors",
    "ErrorClass": "agentcron.model",
    "SlotStatus": "agentcron.model",
    "TaskSpec": "agentcron.model",
    "Scheduler": "agentcron.scheduler",
}

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


def __getattr__(name: str) -> Any:
    if name == "__version__":  # importlib.metadata costs every process ~50 ms to load
        globals()[name] = _version()
        return globals()[name]
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'agentcron' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("agentcron")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"
