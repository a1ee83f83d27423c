"""The shared back-off of providers (see :mod:`agentcron.model.provider`), for both
stores. Every statement is one short transaction: nodes race on these rows, and the
rules (until only moves later, one probe at a time) are in the statements themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

from agentcron.model import ProviderState
from agentcron.model.provider import WAITING_PREFIX
from agentcron.store._rows import dt, dt_req, ts

_COLUMNS = "key, name, until, reason, since, probe_owner, probe_until, updated_at"


class ProviderStore(Protocol):
    """Providers cooling down after refusing their callers."""

    def providers(self) -> list[ProviderState]:
        """Every provider with a back-off on record (cooling, probing or just over)."""
        ...

    def cool_provider(
        self, key: str, name: str, until: datetime, reason: str, now: datetime
    ) -> tuple[ProviderState, bool]:
        """Move the provider's ``until`` to ``until`` if that is later (never earlier)
        and free its probe; returns the state and whether a new spell began."""
        ...

    def take_probe(self, key: str, owner: str, now: datetime, until: datetime) -> bool:
        """Let ``owner`` be the one run that tries the provider after its cooldown, if
        the cooldown is over and no other run is trying it now."""
        ...

    def provider_answered(self, key: str, now: datetime) -> ProviderState | None:
        """The provider answered: its back-off ends (returned, None if there was none)
        and the slots that waited for it may start now."""
        ...

    def defer_claim(
        self, slot_id: int, attempt_id: int, owner: str, until: datetime, reason: str
    ) -> bool:
        """Undo ``owner``'s claim of a slot whose provider is cooling down: the attempt
        is removed (none was spent) and the slot waits, ``retrying``, until ``until``."""
        ...


def waiting_reason_prefix(name: str) -> str:
    """How the reason of a slot waiting for provider ``name`` begins."""
    return f"{WAITING_PREFIX}{name} "


class ProviderSQL:
    def _tx(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _q(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def providers(self) -> list[ProviderState]:
        return [_state(r) for r in self._q(f"SELECT {_COLUMNS} FROM providers ORDER BY key")]

    def cool_provider(
        self, key: str, name: str, until: datetime, reason: str, now: datetime
    ) -> tuple[ProviderState, bool]:
        with self._tx() as db:
            rows = db.execute(f"SELECT {_COLUMNS} FROM providers WHERE key = ?", (key,))
            found = rows.fetchall()
            if found:
                old = _state(found[0])
                later = max(until, old.until)
                db.execute(
                    "UPDATE providers SET until = ?, probe_owner = NULL, probe_until = NULL, "
                    "updated_at = ? WHERE key = ?",
                    (ts(later), ts(now), key),
                )
                state = ProviderState(key, old.name, later, old.reason, old.since, None, None, now)
                return state, False
            db.execute(
                f"INSERT INTO providers ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, NULL, NULL, ?) "
                "ON CONFLICT (key) DO NOTHING",
                (key, name, ts(until), reason, ts(now), ts(now)),
            )
            return ProviderState(key, name, until, reason, now, None, None, now), True

    def take_probe(self, key: str, owner: str, now: datetime, until: datetime) -> bool:
        with self._tx() as db:
            cur = db.execute(
                "UPDATE providers SET probe_owner = ?, probe_until = ?, updated_at = ? "
                "WHERE key = ? AND until <= ? AND (probe_owner IS NULL OR probe_until <= ?)",
                (owner, ts(until), ts(now), key, ts(now), ts(now)),
            )
            return bool(cur.rowcount == 1)

    def provider_answered(self, key: str, now: datetime) -> ProviderState | None:
        with self._tx() as db:
            rows = db.execute(
                f"DELETE FROM providers WHERE key = ? RETURNING {_COLUMNS}", (key,)
            ).fetchall()
            if not rows:
                return None
            state = _state(rows[0])
            db.execute(
                "UPDATE slots SET next_attempt_at = ? WHERE status = 'retrying' "
                "AND next_attempt_at > ? AND reason LIKE ?",
                (ts(now), ts(now), waiting_reason_prefix(state.name) + "%"),
            )
            return state

    def defer_claim(
        self, slot_id: int, attempt_id: int, owner: str, until: datetime, reason: str
    ) -> bool:
        with self._tx() as db:
            cur = db.execute(
                "UPDATE slots SET status = 'retrying', attempts = attempts - 1, "
                "started_at = CASE WHEN attempts <= 1 THEN NULL ELSE started_at END, "
                "lease_owner = NULL, lease_expires_at = NULL, next_attempt_at = ?, "
                "reason = ? WHERE id = ? AND status = 'running' AND lease_owner = ?",
                (ts(until), reason, slot_id, owner),
            )
            if cur.rowcount != 1:
                return False
            db.execute("DELETE FROM attempts WHERE id = ? AND status = 'running'", (attempt_id,))
            return True


def _state(row: tuple[Any, ...]) -> ProviderState:
    key, name, until, reason, since, probe_owner, probe_until, updated_at = row
    return ProviderState(
        key=key,
        name=name,
        until=dt_req(until),
        reason=reason,
        since=dt_req(since),
        probe_owner=probe_owner,
        probe_until=dt(probe_until),
        updated_at=dt(updated_at),
    )
