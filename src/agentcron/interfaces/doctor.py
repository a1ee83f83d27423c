"""``agentcron doctor``: every check an operator would make by hand, in one report.

Each check yields ``ok``, ``warn`` or ``fail`` with a sentence saying what was
seen and, when something is wrong, what to do.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from agentcron.config.nodes import Applied, tasks_digest
from agentcron.config.schema import untold_words


def _check(name: str, status: str, message: str) -> dict[str, str]:
    return {"name": name, "status": status, "message": message}


def _disk_check(home: Path) -> dict[str, str]:
    """Room on the disk of the home (runs' outputs, the SQLite file): a full disk was
    "✔" everywhere until the daemon met it (probe)."""
    from agentcron.engine.diskroom import FULL, ROOMY, free_bytes, say_bytes

    try:
        free = free_bytes(str(home))
    except OSError as exc:
        return _check(
            "disk",
            "warn",
            f"cannot tell how much room is left on the disk of {home}: {exc.strerror or exc}",
        )
    said = f"{say_bytes(free)} free on the disk of {home}"
    if free < FULL:
        return _check(
            "disk", "fail", f"{said}: full; runs' outputs and the database cannot be written"
        )
    if free < ROOMY:
        return _check("disk", "warn", f"{said}: nearly full")
    return _check("disk", "ok", said)


def _the_databases_file(home: Path, db_url: str | None) -> tuple[Applied | None, str | None]:
    """Which config file the database's file tasks came from (node, host, path, digest),
    when one is recorded, or why it could not be read (None, None: none recorded, or a
    database that does not open, which the database check says)."""
    from agentcron.config.nodes import META_KEY, loads
    from agentcron.store import StoreError, open_store

    try:
        store = open_store(db_url, home)
    except StoreError:
        return None, None  # the database check below opens it again and says why
    try:
        recorded = loads(store.get_meta(META_KEY))
    except Exception as exc:  # damage, a lock held past the wait: said, not swallowed
        return None, f"{type(exc).__name__}: {exc}"
    finally:
        store.close()
    return recorded, None


def _named_file_check(config_path: Path, tasks_digest: str, recorded: Applied) -> dict[str, str]:
    """A file asked for by name (``--config``) beside the one the database's record
    says brought its tasks in: checked as asked, and said whether its tasks are those.
    doctor used to say ✔ and check the other file instead, beside a daemon running this
    one (outside-in probe, PostgreSQL: nodes with different files take turns removing
    each other's tasks); an invalid named file was then never checked at all."""
    if tasks_digest == recorded.digest:
        return _check(
            "config file",
            "ok",
            f"{config_path} has the tasks of {recorded.path}, which {recorded.host} applied "
            "to this database last",
        )
    return _check(
        "config file",
        "warn",
        f"{config_path} has other tasks than {recorded.path}, which {recorded.host} applied "
        "to this database last; if a daemon runs this file against it, the nodes run "
        "different config files and take turns removing each other's tasks (every node "
        "must run the same file)",
    )


def diagnose(
    config_path: Path, home: Path, db_url: str | None, *, named: bool = False
) -> dict[str, Any]:
    """``named``: the file was asked for by name (``--config``), not found in the
    current folder."""
    from agentcron._service.status import home_daemon_trouble
    from agentcron.config.errors import ConfigError
    from agentcron.config.loader import load_config
    from agentcron.service import Defaults, Service
    from agentcron.store import StoreError, open_store
    from agentcron.store.sqlite import SQLiteStore

    checks: list[dict[str, str]] = []
    timezone = None
    heartbeat_url: str | None = None
    channels: list[str] = []
    loaded_ok = False  # the config was read: its channels say which are in use
    recorded, unread = _the_databases_file(home, db_url)
    own = Path(recorded.path) if recorded is not None else None
    if unread is not None:
        checks.append(
            _check(
                "config file",
                "warn",
                f"cannot read which config file this database's tasks come from ({unread}); "
                f"checked {config_path}",
            )
        )
    elsewhere = own is not None and own != config_path.resolve()
    beside = recorded if named and elsewhere and config_path.exists() else None
    if beside is None and elsewhere and own is not None and own.exists():
        # run from another folder, doctor checked that folder's ./agentcron.yaml and
        # said false things of the daemon's tasks and channels (probe): it checks the
        # file the database's tasks come from, and says so
        checks.append(
            _check(
                "config file",
                "ok",
                f"this database's tasks come from {own}; checked it ({config_path} is "
                "not applied to this database)",
            )
        )
        config_path = own
    if not config_path.exists():
        checks.append(
            _check("config", "warn", f"{config_path} not found (`agentcron init` writes one)")
        )
    else:
        try:
            loaded = load_config(config_path)
            timezone = loaded.timezone
            heartbeat_url = loaded.heartbeat_url
            loaded_ok = True
            channels = list(loaded.notify) + [
                url for spec in loaded.tasks.values() for url in spec.notify or []
            ]
            checks.append(
                _check("config", "ok", f"{config_path} is valid ({len(loaded.tasks)} tasks)")
            )
            if beside is not None:
                checks.append(_named_file_check(config_path, tasks_digest(loaded.tasks), beside))
            untold = loaded.untold()
            if untold:
                checks.append(_check("notify", "warn", untold_words(untold)))
            from agentcron.config._env import current_environ

            checks += [_check("llm key", "warn", w) for w in loaded.unset_keys(current_environ())]
        except ConfigError as exc:
            checks.append(_check("config", "fail", f"{config_path} is invalid: {exc}"))
    try:
        store = open_store(db_url, home)
    except StoreError as exc:
        checks.append(_check("database", "fail", str(exc)))
        said = home_daemon_trouble(home)  # the daemon's own word, outside the database
        if said:
            checks.append(_check("daemon", "fail", said))
        return {"ok": False, "checks": checks, "daemon": None, "tasks": []}
    daemon: dict[str, Any] | None = None
    tasks: list[dict[str, Any]] = []
    try:
        if isinstance(store, SQLiteStore):
            store.check_integrity()  # damage no query has met yet
        svc = Service(store, home, defaults=Defaults(timezone, None))
        refused = getattr(store, "write_refused", lambda: None)()
        if refused is not None:
            checks.append(_check("database", "fail", f"{store.describe()}: {refused}"))
        else:
            checks.append(_check("database", "ok", store.describe()))
        checks.append(_disk_check(home))
        daemon = svc.daemon_status()
        start_with = daemon.get("start_with") or "`agentcron run`"
        live = [n for n in daemon["nodes"] if n["state"] == "running"]
        stale = [n for n in daemon["nodes"] if n["state"] == "stale"]
        if daemon.get("trouble"):
            checks.append(_check("daemon", "fail", daemon["trouble"]["words"]))
        elif live:
            checks.append(
                _check(
                    "daemon",
                    "ok",
                    ", ".join(
                        f"{n['node_id']} (heartbeat {n['heartbeat_age_s']}s ago)" for n in live
                    ),
                )
            )
        elif daemon.get("starting_pid") is not None:
            checks.append(
                _check(
                    "daemon",
                    "warn",
                    f"the daemon (pid {daemon['starting_pid']}) is starting: nothing fires "
                    "until its first tick",
                )
            )
        elif stale and daemon.get("unresponsive_pid") is not None:
            n = stale[0]
            checks.append(
                _check(
                    "daemon",
                    "fail",
                    f"the daemon (pid {daemon['unresponsive_pid']}) is running but not "
                    f"answering (last heartbeat {n['heartbeat_age_s']}s ago): it hangs or is "
                    "stopped (SIGSTOP); send it SIGCONT, or stop it and start it again",
                )
            )
        elif stale:
            n = stale[0]
            checks.append(
                _check(
                    "daemon",
                    "fail",
                    f"stale: {n['node_id']} last heartbeat {n['heartbeat_age_s']}s ago "
                    f"(the process died or hangs); restart {start_with}",
                )
            )
        else:
            checks.append(_check("daemon", "fail", f"not running; start it with {start_with}"))
        if live:  # others of the database that died or hang: each said, not left out
            checks.extend(
                _check(
                    f"node {n['node_id']}",
                    "warn",
                    f"stale: last heartbeat {n['heartbeat_age_s']}s ago (the process died or "
                    "hangs); its runs are taken over once their leases lapse",
                )
                for n in stale
            )
        checks.extend(
            _check("daemon config", "warn", f"{n['node_id']}: {n['config_note']}")
            for n in live
            if n.get("config_note")
        )
        tasks = svc.list_tasks()
        if loaded_ok and not loaded.notify:
            _tell_untold_added(checks, loaded.untold(), svc.untold_added_tasks())
        elif not config_path.exists():  # no channel anywhere: no file to name one
            _tell_untold_added(checks, [], svc.untold_added_tasks())
        # not_firing: the daemon check above says why, once, not once per task; a task
        # paused while its failure is open still fails (its health_detail says so)
        bad = [
            t
            for t in tasks
            if t["health"] not in ("ok", "paused", "not_firing")
            or str(t.get("health_detail") or "").startswith("paused while failing")
        ]
        # a full disk fails every task's runs under one home incident, and no task has
        # one of its own: "none failing" was said while every run failed (probe)
        storage = _storage_failing(svc, daemon)
        if bad or storage:
            checks.append(
                _check(
                    "tasks",
                    "warn",
                    "; ".join(
                        storage
                        + [f"{t['name']}: {t['health_detail'] or t['health']}" for t in bad[:10]]
                        + (
                            [f"and {len(bad) - 10} more (`agentcron list`)"]
                            if len(bad) > 10
                            else []
                        )
                    ),
                )
            )
        else:
            checks.append(_check("tasks", "ok", f"{len(tasks)} task(s), none failing"))
        in_use = _channel_keys(svc, channels) if loaded_ok else None
        checks.extend(_current(_extra_checks(svc), in_use))
        checks.extend(_untried_checks(svc, in_use or []))
        checks.extend(_heartbeat_checks(svc, heartbeat_url, timezone))
        checks.extend(_home_checks(home))
    except Exception as exc:
        # damage found by the check or met by a query after it, a lock held past the
        # timeout (PostgreSQL's statement timeout too: a traceback, outside-in probe),
        # an I/O error: one ✖ line in the report, with the daemon's own word
        psycopg = type(exc).__module__.split(".")[0] == "psycopg"
        if not (psycopg or isinstance(exc, StoreError | sqlite3.Error)):
            raise
        problem = (
            str(exc)
            if isinstance(exc, StoreError)
            else f"{store.describe()}: {type(exc).__name__}: {exc}".strip()
        )
        checks = [c for c in checks if c["name"] != "database"]
        checks.append(_check("database", "fail", problem))
        said = home_daemon_trouble(home)  # what the home's daemon says of it, if anything
        if said:
            checks = [c for c in checks if c["name"] != "daemon"]
            checks.append(_check("daemon", "fail", said))
    finally:
        store.close()
    ok = all(c["status"] != "fail" for c in checks)
    return {"ok": ok, "checks": checks, "daemon": daemon, "tasks": tasks}


def _storage_failing(svc: Any, daemon: dict[str, Any] | None) -> list[str]:
    """The open storage incidents of the homes this database's nodes run on, said as
    the runs they fail ("runs of 2 task(s) (a, b) fail: agentcron cannot write runs'
    files on HOST")."""
    from agentcron.home import hostname
    from agentcron.model import IncidentKind

    hosts = {hostname(), *(str(n["host"]) for n in (daemon or {}).get("nodes", []))}
    scopes = sorted(f"home:{h}" for h in hosts)
    open_ = svc.store.open_incidents_of_kind(scopes, str(IncidentKind.STORAGE))
    said = []
    for scope, incident in sorted(open_.items()):
        names = sorted(incident.summary.split(", ")) if incident.summary else []
        which = f" ({', '.join(names[:10])}{' …' if len(names) > 10 else ''})" if names else ""
        said.append(
            f"runs of {len(names)} task(s){which} fail: agentcron cannot write runs' files "
            f"on {scope.removeprefix('home:')} (`agentcron incidents --open` shows it)"
        )
    return said


def _tell_untold_added(checks: list[dict[str, str]], in_file: list[str], added: list[str]) -> None:
    """The "told to no one" warning, counting the tasks added with `agentcron add`, the
    API or an agent too: it named only the file's, and a home whose tasks were all
    added was told nothing of it (outside-in probe)."""
    if not added:
        return
    words = untold_words(sorted({*in_file, *added}))
    for i, check in enumerate(checks):
        if check["name"] == "notify" and check["status"] == "warn":
            checks[i] = _check("notify", "warn", words)
            return
    checks.append(_check("notify", "warn", words))


# What a home folder that cannot be written costs, said by doctor (as this user: a
# daemon running as another user may see otherwise)
_HOME_FOLDERS = {
    "outputs": (
        "fail",
        "runs cannot keep their output: each fails as a storage problem and is retried",
    ),
    "runs": (
        "warn",
        "run markers cannot be written: commands still run, but one that ends while the "
        "daemon is down is retried instead of recorded",
    ),
}


def _home_checks(home: Path) -> list[dict[str, str]]:
    from agentcron.home import cannot_write

    out = []
    for name, (status, cost) in _HOME_FOLDERS.items():
        folder = home / name
        if not folder.is_dir():
            if folder.exists():  # something else where the folder belongs
                out.append(_check("home", status, f"{folder} is not a folder: {cost}"))
            continue
        why = cannot_write(folder)
        if why is not None:
            out.append(_check("home", status, f"cannot write in {folder} ({why}): {cost}"))
    return out


def _extra_checks(svc: Any) -> list[dict[str, str]]:
    """Checks contributed by optional parts (channels, delivery) through the service."""
    fn = getattr(svc, "doctor_checks", None)
    return list(fn()) if callable(fn) else []


def _channel_keys(svc: Any, configured: list[str]) -> list[str]:
    """The keys of the channels in use: the config's and its tasks' (with those of
    tasks added through the CLI or API)."""
    from agentcron.notify.channels import channel_key

    keys: list[str] = []
    for url in svc.channel_urls(configured):
        try:
            key = channel_key(url)
        except Exception:  # the config check says what is wrong with the URL itself
            continue
        if key not in keys:
            keys.append(key)
    return keys


def _current(checks: list[dict[str, str]], in_use: list[str] | None) -> list[dict[str, str]]:
    """The channel checks of channels in use; one no longer configured is left out
    when it is fine (a ✔ for a URL the config dropped misled), and said as such when
    messages queued for it still fail."""
    if in_use is None:
        return checks
    out = []
    for check in checks:
        key = check["name"].removeprefix("channel ")
        if not check["name"].startswith("channel ") or key in in_use:
            out.append(check)
        elif check["status"] != "ok":
            words = " (no longer in the config; what was queued for it is still tried)"
            out.append({**check, "message": check["message"] + words})
    return out


def _untried_checks(svc: Any, keys: list[str]) -> list[dict[str, str]]:
    """Channels nothing was sent through yet: no failure can show on them, so a URL
    that leads nowhere looked like a working one until the first problem's message
    was lost. Said as unknown, with the command that finds out."""
    tried = {h["channel"] for h in svc.channel_health()}
    keys = [key for key in keys if key not in tried]
    return [
        _check(
            f"channel {key}",
            "warn",
            "nothing has been sent through it yet, so whether it works is not known; "
            "`agentcron notify test` sends a test message to every channel",
        )
        for key in keys
    ]


def _heartbeat_checks(
    svc: Any, configured: str | None, timezone: str | None
) -> list[dict[str, str]]:
    """The dead man's switch as the daemon last found it (``Service.heartbeat_endpoint``)."""
    from agentcron.schedules.zones import resolve_zone

    if not configured:
        return []
    check = heartbeat_check(configured, svc.heartbeat_endpoint(), resolve_zone(timezone))
    return [check] if check is not None else []


def heartbeat_check(
    configured: str | None, status: Mapping[str, Any] | None, zone: ZoneInfo
) -> dict[str, str] | None:
    """The ``heartbeat_url`` line: ✖ with the last error and since when while the
    endpoint fails in a way the owner is told of, ! for a first passing failure or a URL
    not pinged yet, ✔ with the last answer. None without a ``heartbeat_url``."""
    from agentcron.redact import redact
    from agentcron.watchdog.endpoint import TELL_AFTER

    if not configured:
        return None
    shown = redact(configured.strip())
    if status is None:
        return _check(
            "heartbeat_url",
            "warn",
            f"{shown} has not been pinged yet (the daemon pings it every minute while it runs)",
        )
    if status.get("url") != shown:
        return _check(
            "heartbeat_url",
            "warn",
            f"changed to {shown}; the daemon has not pinged it yet (a running daemon "
            "reloads the config within seconds)",
        )
    if status.get("ok"):
        return _check(
            "heartbeat_url", "ok", f"{shown} answered at {_when(status, 'checked_at', zone)}"
        )
    failures = int(status.get("failures") or 0)
    permanent = bool(status.get("permanent"))
    seen = (
        f"{shown} failing since {_when(status, 'failing_since', zone)} ({failures} ping(s) in a "
        f"row, the latest at {_when(status, 'checked_at', zone)}): {status.get('last_error')}"
    )
    if permanent:
        return _check(
            "heartbeat_url",
            "fail",
            f"{seen}. The outside check hears nothing from this machine; this will not pass "
            "by itself: fix heartbeat_url (the check id or ping key in it)",
        )
    if failures >= TELL_AFTER:
        return _check(
            "heartbeat_url",
            "fail",
            f"{seen}. The outside check hears nothing from this machine; the daemon keeps "
            "pinging and tells you when it answers",
        )
    return _check("heartbeat_url", "warn", f"{seen}; you are told if it keeps failing")


def _when(status: Mapping[str, Any], key: str, zone: ZoneInfo) -> str:
    value = status.get(key)
    if not value:
        return "?"
    from agentcron.interfaces.zone_names import zone_label

    when = datetime.fromisoformat(str(value)).astimezone(zone)
    return f"{when:%Y-%m-%d %H:%M:%S} {zone_label(when, zone.key)}"  # IST: Asia/Kolkata
