"""Durable state behind one interface; all SQL lives in this package."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from agentcron.model import AttemptOutcome, Claim, NewSlot, NodeInfo
from agentcron.store.base import Store
from agentcron.store.errors import NotFound, StoreError

log = logging.getLogger("agentcron.store")

__all__ = [
    "AttemptOutcome",
    "Claim",
    "DatabaseTarget",
    "NewSlot",
    "NodeInfo",
    "NotFound",
    "Store",
    "StoreError",
    "check_database",
    "open_store",
    "parse_db_url",
]

_PATH_SUFFIXES = (".db", ".sqlite", ".sqlite3")


@dataclass(frozen=True)
class DatabaseTarget:
    """Which database ``--db`` names, decided before anything is opened or created."""

    kind: Literal["sqlite", "postgresql"]
    url: str = ""  # the PostgreSQL URL
    path: Path | None = None  # the SQLite file
    default: bool = False  # the home's own database (its folder may be created)


def parse_db_url(db_url: str | None, home: Path) -> DatabaseTarget:
    """Read ``--db``: ``postgresql://…`` (or ``postgres://…``), ``sqlite:///PATH``, or a
    value that looks like a file path (it contains a ``/`` or ends in ``.db``,
    ``.sqlite`` or ``.sqlite3``); nothing or an empty value means SQLite in the home.

    Anything else is refused rather than taken as a file name: ``--db notaurl`` is far
    more likely a mistyped URL than a wish for a database file called ``notaurl``.
    """
    if not db_url:
        return DatabaseTarget("sqlite", path=home / "agentcron.db", default=True)
    if db_url.startswith(("postgresql://", "postgres://")):
        return DatabaseTarget("postgresql", url=db_url)
    if db_url.startswith("sqlite:"):
        rest = db_url.removeprefix("sqlite:")
        if not rest.startswith("///") or not rest.strip("/"):
            raise StoreError(
                f"database URL {db_url!r}: a SQLite URL is sqlite:///PATH with an absolute "
                "path (sqlite:///var/lib/agentcron.db); for a relative path give the path "
                "itself (--db ./agentcron.db)"
            )
        path = rest.lstrip("/")
        if "/" not in path and not rest.startswith("////"):
            # SQLAlchemy reads sqlite:///x.db as the relative x.db; taken as /x.db it made
            # a file at the filesystem's root without a word (outside-in probe)
            raise StoreError(
                f"database URL {db_url!r} names /{path}, a file at the filesystem's root: "
                f"for a relative path give the path itself (--db ./{path}); for the root, "
                f"write sqlite:////{path}"
            )
        return DatabaseTarget("sqlite", path=Path("/" + path))
    if "://" in db_url:
        # the scheme only: the rest of a URL may hold a password
        raise StoreError(
            f"database URL {db_url.split('://')[0]}://…: unsupported scheme "
            f"{db_url.split('://')[0]}://; use sqlite:///PATH, postgresql://… or a file path"
        )
    if "/" in db_url or db_url.lower().endswith(_PATH_SUFFIXES):
        return DatabaseTarget("sqlite", path=Path(db_url).expanduser())
    raise StoreError(
        f"database {db_url!r} (--db) is neither a URL nor a file path: give "
        "postgresql://…, sqlite:///PATH, or a path that contains a '/' or ends in .db, "
        f".sqlite or .sqlite3 (e.g. ./{db_url}.db)"
    )


def open_store(db_url: str | None, home: Path, *, daemon: bool = False) -> Store:
    """Open the store named by ``--db`` (default: SQLite in the home, whose folder is
    created when missing; for a path the user gave, a missing folder is an error).

    A SQLite file that is missing while another process runs a daemon on this home is
    refused (``daemon``: the caller is that daemon): the file was moved or deleted
    under it, and a new empty one would hide its data and, when closed, delete the
    write-ahead log the daemon still writes to."""
    target = parse_db_url(db_url, home)
    if target.kind == "sqlite" and target.default:
        _refuse_emptied(target.path, home)
    if target.kind == "sqlite" and not daemon:
        _refuse_missing_under_daemon(target.path, home)
        _refuse_replaced_under_daemon(target.path)
        _refuse_upgrade_under_daemon(target.path, home if target.default else None)
    if target.kind == "postgresql":
        try:
            from agentcron.store.postgres import PostgresStore  # type: ignore[import-not-found,unused-ignore]
        except ImportError as exc:
            raise StoreError(
                f"PostgreSQL needs the postgres extra: pip install 'agentcron[postgres]' ({exc})"
            ) from None
        store: Store = PostgresStore(target.url)
        return store
    from agentcron.store.sqlite import SQLiteStore

    assert target.path is not None
    return SQLiteStore(target.path, create_folder=target.default)


def _refuse_missing_under_daemon(path: Path | None, home: Path) -> None:
    if path is None or str(path) == ":memory:" or path.exists():
        return
    from agentcron.instance_lock import running_daemon

    holder = running_daemon(home)
    if holder is None:
        return
    if holder.starting():
        # a daemon takes the home's lock before it makes its database: a command run
        # as it starts waits for the file rather than call it moved (a test met this)
        deadline = time.monotonic() + STARTING_WAIT
        while time.monotonic() < deadline:
            time.sleep(0.05)
            if path.exists():
                return
    who = f"pid {holder.pid}" if holder.pid is not None else "a process"
    raise _moved_under(path, who, home)


def _moved_under(path: Path, who: str, home: Path | str | None) -> StoreError:
    """The one wording for a database file gone from its path under a running daemon."""
    on = f" on the home {home}" if home else ""
    return StoreError(
        f"the database {path} is missing, but a daemon ({who}) is running{on}: the file "
        "was moved or deleted while it runs. Nothing was created (a new empty file would "
        "hide the daemon's data). Put the file back, or stop the daemon and start it again."
    )


def _refuse_emptied(path: Path | None, home: Path) -> None:
    """The home's database file at zero bytes while the home holds files of runs it
    recorded: truncated (a restore or a copy gone wrong, a full disk under a tool), not
    new. SQLite takes an empty file for a new database, so the next command made a new
    schema in it and said "no tasks yet", and the next daemon began a new history in
    its place, without a word of what was lost (outside-in probe)."""
    if path is None or str(path) == ":memory:":
        return
    try:
        size: int | None = os.stat(path).st_size
    except FileNotFoundError:
        size = None  # no file: a first start, or one deleted (outputs/ tells which)
    except OSError as exc:
        raise StoreError(
            f"cannot look at the database {path} ({exc.strerror or exc}): whether it holds "
            "the home's history is not known, so it was not opened"
        ) from None
    if size != 0 and size is not None:
        return
    state = "does not exist" if size is None else "is empty (0 bytes)"
    if not _holds_runs(home / "outputs", state):
        return  # nothing was recorded here before: a new database, made by the open
    if size is None:
        # Deleted (or moved) while the runs it recorded stay: a reset on purpose as
        # often as a mistake, so it is made anew, but not without a word.
        log.warning(
            "the database %s does not exist, yet %s holds files of runs recorded in one: "
            "a new database (and history) is made. If the old one was moved or deleted "
            "by mistake, stop agentcron and put it back",
            path,
            home / "outputs",
        )
        return
    wal = f"{path}-wal"
    stale = (
        f" Remove {wal} and {path}-shm first: SQLite would apply that write-ahead log to "
        "whatever file is put here."
        if os.path.exists(wal)
        else ""
    )
    raise StoreError(
        f"the database {path} is empty (0 bytes), yet {home / 'outputs'} holds files of "
        "runs it recorded: it was truncated or replaced, and opening it would start a new "
        "history in its place. Nothing was written to it. Restore it from a backup; or, to "
        f"start afresh, move it aside first (`mv {path} {path}.empty`).{stale}"
    )


def _holds_runs(outputs: Path, state: str) -> bool:
    """Whether any task folder under ``outputs`` holds a file (a run's output); ``state``
    words the database's, for the refusal when the folder cannot be read."""
    try:
        with os.scandir(outputs) as tasks:
            for task in tasks:
                if task.is_dir(follow_symlinks=False):
                    with os.scandir(task.path) as files:
                        if next(files, None) is not None:
                            return True
    except FileNotFoundError:
        return False  # no outputs folder (yet): no run kept anything
    except OSError as exc:
        # an empty database beside outputs that cannot be read: whether its history is
        # gone is not known, and it is not made anew blind
        raise StoreError(
            f"the database {outputs.parent / 'agentcron.db'} {state}, and {outputs} "
            f"cannot be read ({exc.strerror or exc}) to tell whether runs were recorded in "
            "it: it was not opened. Make the folder readable, or move it aside to start "
            "afresh."
        ) from None
    return False


def _refuse_replaced_under_daemon(path: Path | None) -> None:
    """A command must not open a file put in the place of the one a daemon writes: its
    close checkpointed and removed the write-ahead log the daemon still wrote to, and all
    the daemon recorded after was lost; `health` said ✔, then that the daemon was
    frozen (outside-in probe)."""
    if path is None or str(path) == ":memory:":
        return
    from agentcron.instance_lock import daemon_on_database

    holder = daemon_on_database(path.resolve())
    if holder is None or holder.database_file is None:
        return
    who = f"pid {holder.pid}" if holder.pid is not None else "a process"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        # gone since the look for a missing file: opened now, a new empty one is made
        raise _moved_under(path, who, holder.home) from None
    except OSError as exc:
        raise StoreError(
            f"cannot look at the database {path} ({exc.strerror or exc}), on which a daemon "
            f"({who}) runs: whether it is the daemon's file is not known, so it was not "
            "opened"
        ) from None
    if (st.st_dev, st.st_ino) == holder.database_file:
        return
    raise StoreError(
        f"the database {path} is not the file the daemon ({who}) writes: it was replaced "
        "while the daemon runs. Nothing was read (closing it would remove the write-ahead "
        "log the daemon still writes). Put the daemon's file back, or stop the daemon and "
        "start it again."
    )


def _refuse_upgrade_under_daemon(path: Path | None, home: Path | None) -> None:
    """A command of a newer agentcron must not upgrade the schema of a database an older
    daemon runs on: the daemon cannot read what the new schema and specs hold, and stops
    scheduling (outside-in probe: `agentcron list` after installing the new version, a
    restart planned for later, and the old daemon failed every tick without a word)."""
    if path is None or str(path) == ":memory:" or not path.exists():
        return
    from agentcron.instance_lock import daemon_on_database, running_daemon

    holder = daemon_on_database(path) or (running_daemon(home) if home is not None else None)
    if holder is None:
        return
    from agentcron.store.migrations import SCHEMA_VERSION

    version = _schema_version_of(path)
    if holder.starting():  # a daemon of this version upgrades it as it starts
        deadline = time.monotonic() + STARTING_WAIT
        while (version or 0) < SCHEMA_VERSION and time.monotonic() < deadline:
            time.sleep(0.05)
            version = _schema_version_of(path)
    if version is None or version >= SCHEMA_VERSION:
        return
    who = f"pid {holder.pid}" if holder.pid is not None else "a process"
    raise StoreError(
        f"the daemon ({who}) running on {path} is an older agentcron (schema {version}); "
        f"this one would upgrade the database to schema {SCHEMA_VERSION} under it, which "
        "that daemon was not written for (it may stop scheduling). Nothing was changed. "
        "Stop that daemon and start it with "
        "this version (`agentcron run` upgrades the database), then run this command again."
    )


def _schema_version_of(path: Path) -> int | None:
    """The schema version a SQLite file says it has, read without writing; None while it
    has none yet (a starting daemon is making it). A file that cannot be read is a
    :class:`StoreError` that names why: with a daemon on it, a command that cannot tell
    whether it would upgrade the database under that daemon must not open it."""
    import contextlib
    import sqlite3

    try:
        with contextlib.closing(
            sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
        ) as db:
            try:
                row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return None  # not made yet: nothing to upgrade
                raise
        return int(row[0]) if row else None
    except (sqlite3.Error, ValueError) as exc:
        raise StoreError(
            f"cannot read the schema version of {path} ({exc}), on which a daemon is "
            "running: nothing was opened or changed, since without it this command cannot "
            "tell whether it would upgrade the database under that daemon"
        ) from None


STARTING_WAIT = 3.0  # seconds a command waits for a starting daemon's new database


def check_database(db_url: str | None, home: Path) -> None:
    """Open the database, look for damaged pages, close it: what a daemon does before it
    starts (and starts writing). Too slow for every CLI call (see
    :meth:`~agentcron.store.sqlite.SQLiteStore.check_integrity`), once per daemon it is
    cheap, and a daemon writing into damaged pages can only make them worse. SQLite only;
    PostgreSQL looks after its own pages."""
    target = parse_db_url(db_url, home)
    if target.kind != "sqlite":
        return
    from agentcron.store.sqlite import SQLiteStore

    assert target.path is not None
    if target.default:
        _refuse_emptied(target.path, home)
    store = SQLiteStore(target.path, create_folder=target.default)
    try:
        store.check_integrity()
    finally:
        store.close()
