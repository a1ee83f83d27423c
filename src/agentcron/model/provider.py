"""A provider several tasks call (one API host and key): its shared back-off.

One 429 is news about the provider, not about the task that met it: every task calling
it would meet the same answer. So the cooldown is kept once, durably and shared by every
node: while ``until`` lies ahead the provider's tasks wait (their slots ``retrying``, no
attempt spent); after it one run probes (``probe_owner`` holds it until ``probe_until``)
while the others keep waiting; an answer that is not a refusal ends it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# How the reason of a slot waiting for a provider begins ("provider NAME cooling down
# until …"): the wait is over once the slot runs, and `list` shows it as `waiting`.
WAITING_PREFIX = "provider "
# How the reason of a slot held behind an inline call left running begins (see
# engine.left_running): that wait is over once the slot runs, as a provider's is.
CALL_WAIT_PREFIX = "waiting: the inline call "


def waits_for_provider(reason: str | None) -> bool:
    return (reason or "").startswith(WAITING_PREFIX)


@dataclass(frozen=True)
class ProviderState:
    key: str  # what identifies it (a name, or host + key variable)
    name: str  # what the owner reads ("api.deepinfra.com", or the task's `provider:`)
    until: datetime  # no call before this
    reason: str  # why, in the first refusal's words
    since: datetime  # when the current spell began
    probe_owner: str | None = None
    probe_until: datetime | None = None
    updated_at: datetime | None = None

    def cooling(self, now: datetime) -> bool:
        return now < self.until

    def probing(self, now: datetime) -> bool:
        return (
            self.probe_owner is not None
            and self.probe_until is not None
            and (now < self.probe_until)
        )


@dataclass(frozen=True)
class ProviderNews:
    """What the engine learned about a provider: ``what`` is ``refused`` (a run of
    ``task`` was refused; ``state`` is the back-off now), ``waiting`` (a slot of ``task``
    was held back for it) or ``answered`` (the back-off ``state`` is over)."""

    what: str
    state: ProviderState
    task: str
    at: datetime
