"""Reads and writes the interfaces need beyond the engine's own (pause reasons,
paged run history, incident acknowledgement, the audit trail, cheap counts for
``/metrics``).

Shared by both stores like :mod:`._notify_sql`; the protocol the service relies on
is :class:`ApiStore`. Kept apart from the engine's statements so that the hot path's
SQL stays small and these can grow with the interfaces.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from agentcron.model.incident import Incident
from agentcron.store._rows import INCIDENT_COLUMNS, incident_from_row


class ApiStore(Protocol):
    """What the service API reads and writes for the HTTP API, dashboard and metrics."""

    def get_incident(self, incident_id: int) -> Incident | None:
        """One incident by id, open or closed."""
        ...


class ApiSQL:
    """The SQL behind :class:`ApiStore`, for :class:`~agentcron.store.sql.SQLStore`."""

    def _tx(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _q(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def get_incident(self, incident_id: int) -> Incident | None:
        rows = self._q(f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = ?", (incident_id,))
        return incident_from_row(rows[0]) if rows else None
