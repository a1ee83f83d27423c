"""Errors the store raises for bad databases, worded for the person who has to fix them."""

from __future__ import annotations


class StoreError(Exception):
    """A database that cannot be used: corrupt, foreign, too new, unreachable."""


def is_database_error(exc: BaseException) -> bool:
    """Whether ``exc`` comes from the database or its driver (rather than a bug of ours)."""
    import sqlite3

    if isinstance(exc, StoreError | sqlite3.Error | OSError | TimeoutError):
        return True
    return type(exc).__module__.split(".")[0] == "psycopg"


class UnreadableRow(StoreError):
    """A row whose values agentcron cannot read: changed outside agentcron, or by another
    version. Not an outage: trying again does not help, and the row is named."""


def unreadable_row(table: str, key: object, exc: BaseException) -> UnreadableRow:
    """The one wording for a row that cannot be read (one bad slot made `runs` print a
    traceback for every task, and the API answer "try again in a few seconds")."""
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return UnreadableRow(
        f"the database has a row agentcron cannot read: {table} {key!r} ({detail[:200]}); "
        "it was changed outside agentcron or by another version of it. Correct or delete "
        "that row, or restore the database from a backup"
    )


def schema_mismatch(path: str, version: int, detail: str) -> StoreError:
    """A database whose tables are not what its recorded schema version says: changed
    outside agentcron (a version row edited, a table or column dropped). It was read as
    a permissions problem ("check that this user may read and write the file")."""
    return StoreError(
        f"{path}: agentcron's tables do not match the schema version the database records "
        f"({version}): {detail}. It was changed outside agentcron; restore it from a "
        "backup. agentcron has not changed it."
    )


class NotFound(StoreError):
    """A task or run that does not exist."""


def damaged_database(path: str, detail: str) -> StoreError:
    """The one wording for a database file whose pages are damaged.

    Damage can surface at open, on any later query, or only in ``doctor``'s check, so
    every place that meets it says the same thing: what is wrong with which file and the
    three ways out, none of which agentcron may take on its own (it must never throw
    history away behind the owner's back).
    """
    return StoreError(
        f"{path}: the database file is damaged (SQLite: {detail}). Stop the daemon, "
        f"move the file aside (mv {path} {path}.damaged), then restore it from a backup, "
        f"or salvage what is readable with `sqlite3 {path}.damaged .recover | sqlite3 {path}`; "
        "with no file there agentcron starts an empty database."
    )


def not_a_database(path: str, detail: str) -> StoreError:
    """A file that is not SQLite at all (or whose first page is destroyed)."""
    return StoreError(
        f"{path} is not a usable agentcron database: it is not an SQLite file ({detail}). "
        "If it was agentcron's database, it is damaged beyond reading: move it aside and "
        "restore it from a backup; otherwise point --db or --home elsewhere. "
        "agentcron has not changed it."
    )
