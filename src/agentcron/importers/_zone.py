"""The zone a cron daemon runs its schedules in: the machine's, not the importing shell's.

cron is started by the init system with no ``TZ`` of the user's: it reads the
machine's zone from ``/etc/localtime``. ``agentcron.schedules.zones.system_zone``
reads ``TZ`` first (right for agentcron's own daemon, wrong for what cron did), so an
import from a shell with ``TZ`` set wrote every entry in the shell's zone.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from zoneinfo import TZPATH, ZoneInfo, ZoneInfoNotFoundError, available_timezones

log = logging.getLogger("agentcron.importers")

LOCALTIME = Path("/etc/localtime")
TIMEZONE_FILE = Path("/etc/timezone")  # Debian's name of the zone, beside the copy
_UTC_NAMES = frozenset({"UTC", "Etc/UTC", "UCT", "Etc/UCT", "Universal", "Etc/Universal", "Zulu"})
_UTC_NAMES |= {"Etc/Zulu", "GMT", "Etc/GMT", "GMT0", "Etc/GMT0", "Greenwich", "Etc/Greenwich"}


def machine_zone(
    localtime: Path | None = None, timezone_file: Path | None = None
) -> tuple[str | None, str]:
    """(IANA name of the machine's zone or None when it cannot be named, where it was
    read). ``localtime`` (default :data:`LOCALTIME`) a link: the zone it names; missing:
    UTC (glibc's default); a copy: the zone whose data it holds, ``timezone_file``'s
    name (default :data:`TIMEZONE_FILE`) tried first."""
    localtime = LOCALTIME if localtime is None else localtime
    timezone_file = TIMEZONE_FILE if timezone_file is None else timezone_file
    if localtime.is_symlink():
        for target in (os.readlink(localtime), str(localtime.resolve())):
            name = _name_in_path(target)
            if name is not None:
                return name, f"{localtime} links to it"
        return None, f"{localtime} links to {os.readlink(localtime)!r}, no zone"
    if not localtime.exists():
        return "UTC", f"no {localtime}: UTC"
    try:
        data = localtime.read_bytes()
    except OSError as exc:
        return None, f"cannot read {localtime}: {exc.strerror or exc}"
    for name in _candidates(timezone_file):
        if any(_same(Path(folder) / name, data) for folder in TZPATH):
            return name, f"{localtime} holds its data"
    return None, f"{localtime} is a copy of no zone this machine knows"


def same_zone(first: str, second: str) -> bool:
    """Whether two zone names are the one zone (``UTC`` and ``Etc/UTC`` are)."""
    return first == second or (first in _UTC_NAMES and second in _UTC_NAMES)


def shell_zone() -> str | None:
    """The ``TZ`` of this process as a zone name (``:Europe/Berlin``, a zoneinfo path), or
    its raw text when it names none (a POSIX rule); None when unset."""
    tz = os.environ.get("TZ", "").strip()
    if not tz:
        return None
    text = tz.removeprefix(":")
    return _name_in_path(text) if text.startswith("/") else (_valid(text) or tz)


def _name_in_path(path: str) -> str | None:
    marker = "zoneinfo/"
    index = path.rfind(marker)
    return _valid(path[index + len(marker) :]) if index >= 0 else None


def _valid(name: str) -> str | None:
    """``name`` when it is a zone's, else None (the answer asked for). Zone data that
    cannot be read is said: the machine's zone then goes unnamed, and the import
    writes its tasks without one, warning so."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    except OSError as exc:
        log.warning("cannot read the time zone data of %r: %s", name, exc.strerror or exc)
        return None
    return name


def _candidates(timezone_file: Path) -> list[str]:
    """Names to try for a copied localtime: the one the system says, then canonical
    zones (zone1970.tab: Europe/Berlin before its alias Arctic/Longyearbyen), then all."""
    names: list[str] = []
    try:
        said = _valid(timezone_file.read_text().strip())
    except FileNotFoundError:
        said = None  # only Debian and its kin keep the name beside the copy
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("cannot read %s: %s", timezone_file, exc)
        said = None
    if said:
        names.append(said)
    for folder in TZPATH:
        for table in ("zone1970.tab", "zone.tab"):
            try:
                lines = (Path(folder) / table).read_text().splitlines()
            except FileNotFoundError:
                continue  # not every zone folder has the tables: they only order names
            except (OSError, UnicodeDecodeError) as exc:
                # the zone still comes out right (the same data under an alias's name,
                # Arctic/Longyearbyen for Europe/Berlin, say): said, and read on
                log.warning("cannot read %s: %s", Path(folder) / table, exc)
                continue
            names += [p[2] for p in (ln.split("\t") for ln in lines) if len(p) > 2]
    known = available_timezones()
    ordered = [n for n in names if n in known] + ["UTC", *sorted(known)]
    return list(dict.fromkeys(ordered))


def _same(path: Path, data: bytes) -> bool:
    try:
        return path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False
