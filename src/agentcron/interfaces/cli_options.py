"""Options the CLI's modules share that need no part of the CLI itself (``cli_mcp``
and ``cli_import`` are imported on their own too: from ``cli`` they would make a cycle)."""

from __future__ import annotations

from typing import Annotated

import typer


def _given_db(value: str | None) -> str | None:
    """An empty ``--db`` is refused, not read as "SQLite in the home": ``--db "$URL"``
    with the variable unset would otherwise open another database without a word."""
    if value is not None and not value.strip():
        raise typer.BadParameter(
            "is empty: give a database URL (postgresql://…, sqlite:///PATH) or a file "
            "path, or leave --db out for SQLite in the home"
        )
    return value


DbOpt = Annotated[
    str | None,
    typer.Option("--db", help="Database URL (default SQLite in the home)", callback=_given_db),
]
