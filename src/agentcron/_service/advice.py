"""What the reader of a refusal or a note can do next, as data: which act, and on which
task. The service says what is wrong; each interface says how to do the act in its
own terms (the CLI a command, MCP a tool, the API a route, the dashboard a page or
a button), from a :data:`Wording` of its own, so that no interface is told another's
words (an agent was told "`agentcron pause` it", a browser "`agentcron runs`")."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class Act(StrEnum):
    """What the reader can do; the values are what the API's problem bodies name."""

    PAUSE = "pause"  # stop the task firing (its task is named)
    TRIGGER = "trigger"  # run a task now
    LIST_RUNS = "list_runs"  # read the runs kept
    LIST_INCIDENTS = "list_incidents"
    START_DAEMON = "start_daemon"  # nothing fires until the daemon runs


@dataclass(frozen=True)
class Advice:
    """One act the reader can take, and the task it concerns (None: any task)."""

    act: Act
    task: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        """As the API's bodies and `--json` carry it: ``{"action": …, "task": …}``."""
        return {"action": self.act.value, "task": self.task}


# One clause per act, said after the service's sentence and a "; ". "{task}" is the
# advice's task (the acts that name none have no "{task}" in any wording).
Wording = Mapping[Act, str]


def advised(text: str, advice: Advice | None, wording: Wording) -> str:
    """``text``, then ``advice`` in an interface's ``wording`` (``text`` alone when
    there is no advice)."""
    if advice is None:
        return text
    return f"{text}; {wording[advice.act].replace('{task}', advice.task or '')}"


@dataclass(frozen=True)
class Said:
    """A sentence of the service for whoever asked (not an error), with its advice."""

    text: str
    advice: Advice | None = None

    def words(self, wording: Wording) -> str:
        return advised(self.text, self.advice, wording)
