"""A task's recent run durations as a tiny line chart, drawn on the server.

Only the geometry is computed here (numbers); the SVG itself is written by a Jinja
macro, so nothing of a task reaches the page unescaped. A failed run is a red dot
on the line; the chart has a text summary for screen readers and for people who
would rather read "2s to 41s" than judge a slope.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

WIDTH = 120
HEIGHT = 28
PAD = 3
POINTS = 20


@dataclass(frozen=True)
class Dot:
    x: float
    y: float
    failed: bool
    label: str


@dataclass(frozen=True)
class Sparkline:
    width: int
    height: int
    points: str  # the polyline's "x,y x,y …"
    dots: tuple[Dot, ...]
    summary: str


def sparkline(runs: Sequence[Mapping[str, Any]]) -> Sparkline | None:
    """The durations of the last ``POINTS`` ended runs (``runs`` newest first, as the
    service lists them), oldest on the left; None when fewer than two have ended."""
    from agentcron.interfaces.dashboard._views import duration_s, duration_text

    ended = [(r, duration_s(r)) for r in runs]
    timed = [(r, s) for r, s in ended if s is not None][:POINTS]
    timed.reverse()
    if len(timed) < 2:
        return None
    values = [s for _, s in timed]
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    step = (WIDTH - 2 * PAD) / (len(timed) - 1)
    dots = []
    for i, (run, seconds) in enumerate(timed):
        x = round(PAD + i * step, 1)
        y = round(HEIGHT - PAD - (seconds - low) / span * (HEIGHT - 2 * PAD), 1)
        failed = run.get("status") == "failed"
        label = f"run {run.get('id')}: {duration_text(seconds)}" + (" (failed)" if failed else "")
        dots.append(Dot(x, y, failed, label))
    summary = (
        f"last {len(timed)} runs took {duration_text(low)} to {duration_text(high)}, "
        f"latest {duration_text(values[-1])}"
    )
    return Sparkline(WIDTH, HEIGHT, " ".join(f"{d.x},{d.y}" for d in dots), tuple(dots), summary)
