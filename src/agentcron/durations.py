"""Human durations: ``500ms``, ``30s``, ``5m``, ``2h``, ``1d`` and plain seconds.

One parser for the config, the CLI and the API, so ``timeout: 20m`` means the same
everywhere and a bad value is reported the same way.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")


def parse_duration(value: object) -> timedelta:
    """Parse a duration; raise ValueError with a message a person can act on.

    Compound forms such as ``1h30m`` are accepted. Negative values are rejected.
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 5m, 2h, 1d)")
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        if not text:
            raise ValueError("empty duration (use e.g. 30s, 5m, 2h, 1d)")
        try:
            seconds = float(text)
        except ValueError:
            pos = 0
            seconds = 0.0
            for match in _PART.finditer(text.replace(" ", "")):
                if match.start() != pos:
                    break
                seconds += float(match.group(1)) * _UNITS[match.group(2)]
                pos = match.end()
            if pos != len(text.replace(" ", "")) or pos == 0:
                raise ValueError(
                    f"not a duration: {value!r} (use e.g. 500ms, 30s, 5m, 2h, 1d or seconds)"
                ) from None
    else:
        raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 5m, 2h, 1d)")
    if math.isnan(seconds):  # float("nan") reads "nan"; timedelta's own error is about ints
        raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 5m, 2h, 1d)")
    if seconds < 0:
        raise ValueError(f"duration must not be negative: {value!r}")
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"value out of range for a duration: {value!r}") from None


def format_duration(delta: timedelta) -> str:
    """Render a duration the way a person says it: ``4s``, ``5 min``, ``1 min 30s``,
    ``2 hours``, ``1 hour 30 min``, ``2 days 1 hour 5 min``.

    Under a second to the millisecond ("250ms", "<1ms" above zero); under an hour to
    the second (a ``stuck_after: 90s`` reads "1 min 30s", never "1 min"); from an hour
    on to the nearest minute, where seconds are noise. Zero parts are left out, so round
    values keep their short forms."""
    seconds = delta.total_seconds()
    if 0 < seconds < 1:
        # To the millisecond, as the seconds are rounded: 0.9996 s is "1s", never
        # "1000ms", and a positive 0.0004 s is "<1ms", never "0ms" (which reads as none).
        millis = round(seconds * 1000)
        if millis < 1:
            return "<1ms"
        if millis < 1000:
            return f"{millis}ms"
    total = round(seconds)
    if total < 60:
        return f"{max(total, 0)}s"
    if total < 3600:
        minutes, secs = divmod(total, 60)
        return f"{minutes} min {secs}s" if secs else f"{minutes} min"
    days, rest = divmod((total + 30) // 60, 1440)  # whole minutes, half up
    hours, minutes = divmod(rest, 60)
    parts: list[str] = []
    if days:
        parts.append(f"{days} day{'s' if days != 1 else ''}")
    if hours:
        parts.append(f"{hours} hour{'s' if hours != 1 else ''}")
    if minutes:
        parts.append(f"{minutes} min")
    return " ".join(parts)
