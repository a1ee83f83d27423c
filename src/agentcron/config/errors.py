"""Config problems as a person reads them: file, line, dotted location, what to fix.

Every caller that rejects configuration (the file loader, ``agentcron add``, the
HTTP API) raises :class:`ConfigError`, so a bad value reads the same everywhere and
``agentcron validate`` can print all problems of a file at once.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with the configuration.

    ``location`` is a dotted path such as ``tasks.story.cron`` or ``deliver[0]``;
    it is empty when the problem concerns the file as a whole (unreadable, broken
    YAML). ``line`` is 1-based and ``None`` when unknown (e.g. a task from the API).
    """

    location: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


class ConfigError(Exception):
    """The configuration was rejected; nothing it describes was applied."""

    def __init__(self, problems: list[ConfigProblem], source: str = "") -> None:
        super().__init__(problems, source)
        self.problems = problems
        self.source = source

    def lines(self) -> list[str]:
        """One line per problem, ``file:line: location: message`` (parts omitted if unknown)."""
        out = []
        for problem in self.problems:
            prefix = self.source
            if prefix and problem.line is not None:
                prefix = f"{prefix}:{problem.line}"
            elif problem.line is not None:
                prefix = f"line {problem.line}"
            out.append(f"{prefix}: {problem}" if prefix else str(problem))
        return out

    def __str__(self) -> str:
        """The problems, the first :data:`SHOWN` of them: a file of 100,000 tasks with one
        mistake repeated in each made a message of 100,000 lines, sent as such to the
        owner's channel when a reload was rejected. `agentcron validate` lists them all."""
        lines = self.lines()
        if len(lines) <= SHOWN:
            return "\n".join(lines)
        more = len(lines) - SHOWN
        return "\n".join(
            [*lines[:SHOWN], f"… and {more:,} more problems (`agentcron validate` lists them all)"]
        )


SHOWN = 50  # problems a ConfigError's text shows
