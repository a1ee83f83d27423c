"""Durable state behind one interface; all SQL lives in this package."""

from __future__ import annotations

from pathlib import Path

from agentcron.store.base import AttemptOutcome, Claim, NewSlot, NodeInfo, Store
from agentcron.store.errors import NotFound, StoreError

__all__ = [
    "AttemptOutcome",
    "Claim",
    "NewSlot",
    "NodeInfo",
    "NotFound",
    "Store",
    "StoreError",
    "open_store",
]


def open_store(db_url: str | None, home: Path) -> Store:
    """Open the store named by ``--db`` (default: SQLite in the home).

    Accepts ``sqlite:///path``, a bare path, or ``postgresql://…``.
    """
    if not db_url:
        from agentcron.store.sqlite import SQLiteStore

        return SQLiteStore(home / "agentcron.db")
    if db_url.startswith(("postgresql://", "postgres://")):
        try:
            from agentcron.store.postgres import PostgresStore  # type: ignore[import-not-found,unused-ignore]
        except ImportError as exc:
            raise StoreError(
                f"PostgreSQL needs the postgres extra: pip install 'agentcron[postgres]' ({exc})"
            ) from None
        store: Store = PostgresStore(db_url)
        return store
    if db_url.startswith("sqlite://"):
        path = db_url.removeprefix("sqlite://")
        path = path[1:] if path.startswith("//") else path
        from agentcron.store.sqlite import SQLiteStore

        return SQLiteStore(path or home / "agentcron.db")
    if "://" in db_url:
        raise StoreError(
            f"unsupported database URL scheme in {db_url.split('://')[0]}://…; "
            "use sqlite:///PATH or postgresql://…"
        )
    from agentcron.store.sqlite import SQLiteStore

    return SQLiteStore(Path(db_url))
