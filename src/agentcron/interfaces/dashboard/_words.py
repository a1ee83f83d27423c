"""A schedule said in words, for the dashboard: ``0 2 * * 1-5`` is "at 02:00 on weekdays".

Only the shapes people write most are put in words; anything else (a day of the
month *and* a weekday, steps inside ranges, several minutes in several hours) gives
None and the page shows the expression alone. A wrong sentence would be worse than
none: the owner reads it to check the schedule they meant, so this never guesses.
"""

from __future__ import annotations

import re

_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
_MONTHS = [
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
]  # fmt: skip
_DAY_NAMES = {name[:3].upper(): i for i, name in enumerate(_DAYS)}
_MONTH_NAMES = {name[:3].upper(): i + 1 for i, name in enumerate(_MONTHS)}
_NUMBER = re.compile(r"^\d+$")
_STEP = re.compile(r"^\*/(\d+)$")
_RANGE = re.compile(r"^(\d+)-(\d+)$")
_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def schedule_in_words(schedule: str) -> str | None:
    """Words for a task's ``schedule`` as the service shows it, or None when unsure.

    ``every 15 min`` and ``at 2026-…`` are already words (the service writes them);
    a cron expression is described when its shape is one of the common ones.
    """
    text = " ".join(schedule.split())
    if text.startswith("every "):
        return text
    if text.startswith("at "):
        return "once, " + text.replace("T", " ")
    fields = _ALIASES.get(text.lower(), text).split()
    if len(fields) != 5:
        return None
    minute, hour, dom, month, dow = (f.upper() for f in fields)
    when = _time_of_day(minute, hour)
    days = _days(dom, month, dow)
    if when is None or days is None:
        return None
    if not days:
        return when if when.startswith("every") else f"every day {when}"
    return f"{when} {days}"


def _time_of_day(minute: str, hour: str) -> str | None:
    if minute == "*" and hour == "*":
        return "every minute"
    step = _STEP.match(minute)
    if step and hour == "*":
        return f"every {step.group(1)} minutes"
    span = _RANGE.match(hour)
    if step and span:
        first, last = int(span.group(1)), int(span.group(2))
        return f"every {step.group(1)} minutes from {first:02d}:00 to {last:02d}:59"
    if not _NUMBER.match(minute):
        return None
    mm = int(minute)
    if hour == "*":
        return "every hour, on the hour" if mm == 0 else f"every hour at minute {mm}"
    step = _STEP.match(hour)
    if step:
        return f"every {step.group(1)} hours at minute {mm} (from 00:{mm:02d})"
    span = _RANGE.match(hour)
    if span:
        first, last = int(span.group(1)), int(span.group(2))
        return f"every hour from {first:02d}:{mm:02d} to {last:02d}:{mm:02d}"
    hours = hour.split(",")
    if all(_NUMBER.match(h) for h in hours) and len(hours) <= 6:
        return "at " + _and([f"{int(h):02d}:{mm:02d}" for h in hours])
    return None


def _days(dom: str, month: str, dow: str) -> str | None:
    """The day part ("" for every day), or None for shapes left to the expression."""
    if dom != "*" and dow != "*":
        return None  # cron fires when EITHER matches: too easy to misread in words
    parts: list[str] = []
    if dow != "*":
        weekdays = _weekdays(dow)
        if weekdays is None:
            return None
        parts.append(weekdays)
    if dom != "*":
        if dom == "L":
            parts.append("on the last day of the month")
        elif all(_NUMBER.match(d) for d in dom.split(",")):
            days = dom.split(",")
            word = "day" if len(days) == 1 else "days"
            parts.append(f"on {word} {_and(days)} of the month")
        else:
            return None
    if month != "*":
        months = [_MONTH_NAMES.get(m, int(m) if _NUMBER.match(m) else 0) for m in month.split(",")]
        if not all(1 <= m <= 12 for m in months):
            return None
        parts.append("in " + _and([_MONTHS[m - 1] for m in months]))
    return " ".join(parts)


def _weekdays(dow: str) -> str | None:
    if dow in ("1-5", "MON-FRI"):
        return "on weekdays"
    items = dow.split(",")
    numbers: list[int] = []
    for item in items:
        if _NUMBER.match(item):
            numbers.append(int(item) % 7)
        elif item in _DAY_NAMES:
            numbers.append(_DAY_NAMES[item])
        else:
            return None
    if sorted(numbers) == [0, 6]:
        return "at weekends"
    return "on " + _and([_DAYS[n] + "s" for n in numbers])


def _and(items: list[str]) -> str:
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]
