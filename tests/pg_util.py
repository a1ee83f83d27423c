"""PostgreSQL for tests: a throwaway schema per test and a daemon that runs on it.

Every test gets its own schema in the one test database, so tests never see each
other's rows and a failed test leaves nothing behind that the next one trips on.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from conftest import PG_DSN
from daemon_proc import DaemonProc


def new_schema_name() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


def admin_execute(statements: Sequence[str], schema: str | None = None) -> None:
    """Run statements on the test database outside any store (autocommit), inside
    ``schema`` when given (created if missing)."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=5) as conn:
        if schema is not None:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        for stmt in statements:
            conn.execute(stmt)


def drop_schema(schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@contextmanager
def fresh_schema() -> Iterator[str]:
    """A schema name unique to the caller, dropped with everything in it afterwards."""
    schema = new_schema_name()
    try:
        yield schema
    finally:
        drop_schema(schema)


def dsn_with_schema(schema: str) -> str:
    """``PG_DSN`` whose connections use ``schema``, through libpq's ``options``, so the
    product (``--db URL``) needs no flag of its own."""
    sep = "&" if "?" in PG_DSN else "?"
    return f"{PG_DSN}{sep}options={quote(f'-csearch_path={schema}', safe='')}"


class PgDaemonProc(DaemonProc):
    """A :class:`DaemonProc` whose daemon and CLI calls use ``--db URL``."""

    def __init__(
        self,
        folder: Path,
        config_text: str,
        db_url: str,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        super().__init__(folder, config_text, extra_env)
        self.db_url = db_url

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "agentcron",
                    "run",
                    "--config",
                    str(self.config),
                    "--db",
                    self.db_url,
                ],
                cwd=self.folder,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return super().cli(*args, "--db", self.db_url, check=check)
