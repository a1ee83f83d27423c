"""Daily budget usage (see :mod:`agentcron.model.budget`), for both stores.

Nodes sharing a PostgreSQL database spend from the same budgets, so a run is reserved
by a conditional ``UPDATE`` (``runs < limit``) in the transaction that checks it: two
nodes can never both take the last run of a day. The "told once a day" mark and the
message it sends are written in one transaction, so the owner hears exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

from agentcron.model import Message, Slot, SlotStatus
from agentcron.model.budget import Budget, BudgetScope, Usage
from agentcron.store._conn import Conn
from agentcron.store._rows import SLOT_COLUMNS, chunks, slot_from_row, ts
from agentcron.store._spec_sql import KeyRead


class BudgetStore(Protocol):
    """What scopes spent per day."""

    def reserve_run(
        self, scopes: Sequence[BudgetScope], day: str
    ) -> tuple[BudgetScope, Usage] | None:
        """Count one run against every scope if each has room for it; else count none
        and return the first scope without room and what it has spent."""
        ...

    def budget_usage(self, keys: Sequence[str], day: str) -> dict[str, Usage]:
        """What each scope spent on ``day`` (scopes that spent nothing are left out)."""
        ...

    def skip_claim(
        self,
        slot_id: int,
        attempt_id: int,
        owner: str,
        reason: str,
        now: datetime,
        status: SlotStatus = SlotStatus.SKIPPED,
    ) -> Slot | None:
        """Record ``owner``'s freshly claimed slot ``skipped`` (or another final
        ``status``: ``expired``) instead of running it (its attempt is removed: none
        ran). None when the slot is no longer this claim's."""
        ...

    def tell_budget_spent(
        self, key: str, day: str, messages: Sequence[tuple[str, str, Message]], now: datetime
    ) -> bool:
        """Enqueue ``messages`` if nobody has told of ``key``'s budget on ``day`` yet,
        and mark it told; False (nothing enqueued) if it had been told."""
        ...

    def prune_budget_usage(self, before_day: str) -> int:
        """Forget the usage of days before ``before_day``."""
        ...

    def task_budgets(self, names: Sequence[str] | None = None) -> dict[str, Budget]:
        """Every task's own ``budget`` key, for the tasks that set one (read by the
        database from the stored specs, not by parsing each: a list of 100,000 tasks
        asks for it); ``names``: of these tasks only."""
        ...


class BudgetSQL:
    def _tx(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _q(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _enqueue(self, db: Conn, key: str, url: str, message: Message, now: datetime) -> int:
        raise NotImplementedError

    def _key_read(self, keys: Sequence[str], present: Sequence[str] = ()) -> KeyRead:
        raise NotImplementedError

    def _key_rows(
        self, read: KeyRead, sql: str, params: Sequence[Any] = ()
    ) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def task_budgets(self, names: Sequence[str] | None = None) -> dict[str, Budget]:
        read = self._key_read(["budget"])
        found: dict[str, Budget] = {}
        if names is None:
            # stored specs are pydantic's compact dump with every key (see spec_json), so
            # a task with a budget holds `"budget":{` and the others `"budget":null`: the
            # LIKE passes over the text without parsing it; the rows it keeps are read
            rows = self._key_rows(
                read, "SELECT name, {keys} FROM tasks WHERE spec LIKE ?", ('%"budget":{%',)
            )
        else:
            rows = []
            for part in chunks(list(names)):
                marks = ", ".join("?" for _ in part)
                rows += self._key_rows(
                    read, f"SELECT name, {{keys}} FROM tasks WHERE name IN ({marks})", part
                )
        for name, keys in rows:
            budget = read.typed(name, keys)[0]
            if budget is not None:
                found[name] = budget
        return found

    def reserve_run(
        self, scopes: Sequence[BudgetScope], day: str
    ) -> tuple[BudgetScope, Usage] | None:
        # one order for every node: two reservations never wait on each other's rows
        ordered = sorted(scopes, key=lambda s: s.key)
        with self._tx() as db:
            taken: list[str] = []
            for scope in ordered:
                db.execute(
                    "INSERT INTO budget_usage (scope, day) VALUES (?, ?) "
                    "ON CONFLICT (scope, day) DO NOTHING",
                    (scope.key, day),
                )
                conditions, params = _room(scope)
                cur = db.execute(
                    f"UPDATE budget_usage SET runs = runs + 1 WHERE scope = ? AND day = ?"
                    f"{conditions}",
                    (scope.key, day, *params),
                )
                if cur.rowcount == 1:
                    taken.append(scope.key)
                    continue
                row = db.execute(
                    "SELECT runs, tokens FROM budget_usage WHERE scope = ? AND day = ?",
                    (scope.key, day),
                ).fetchone()
                for key in taken:  # none of this run is counted anywhere
                    db.execute(
                        "UPDATE budget_usage SET runs = runs - 1 WHERE scope = ? AND day = ?",
                        (key, day),
                    )
                return scope, Usage(int(row[0]), int(row[1]))
            return None

    def budget_usage(self, keys: Sequence[str], day: str) -> dict[str, Usage]:
        if not keys:
            return {}
        found: dict[str, Usage] = {}
        unique = sorted(set(keys))
        for at in range(0, len(unique), 500):  # bounded statements for long lists
            part = unique[at : at + 500]
            marks = ", ".join("?" for _ in part)
            for scope, runs, tokens in self._q(
                f"SELECT scope, runs, tokens FROM budget_usage WHERE day = ? "
                f"AND scope IN ({marks})",
                (day, *part),
            ):
                found[scope] = Usage(int(runs), int(tokens))
        return found

    def skip_claim(
        self,
        slot_id: int,
        attempt_id: int,
        owner: str,
        reason: str,
        now: datetime,
        status: SlotStatus = SlotStatus.SKIPPED,
    ) -> Slot | None:
        with self._tx() as db:
            cur = db.execute(
                "UPDATE slots SET status = ?, reason = ?, finished_at = ?, "
                "attempts = attempts - 1, "
                "started_at = CASE WHEN attempts <= 1 THEN NULL ELSE started_at END, "
                "lease_owner = NULL, lease_expires_at = NULL, next_attempt_at = NULL "
                "WHERE id = ? AND status = 'running' AND lease_owner = ?",
                (status.value, reason, ts(now), slot_id, owner),
            )
            if cur.rowcount != 1:
                return None
            db.execute("DELETE FROM attempts WHERE id = ? AND status = 'running'", (attempt_id,))
            row = db.execute(
                f"SELECT {SLOT_COLUMNS} FROM slots WHERE id = ?", (slot_id,)
            ).fetchone()
            return slot_from_row(row)

    def tell_budget_spent(
        self, key: str, day: str, messages: Sequence[tuple[str, str, Message]], now: datetime
    ) -> bool:
        with self._tx() as db:
            db.execute(
                "INSERT INTO budget_usage (scope, day) VALUES (?, ?) "
                "ON CONFLICT (scope, day) DO NOTHING",
                (key, day),
            )
            cur = db.execute(
                "UPDATE budget_usage SET told_at = ? WHERE scope = ? AND day = ? "
                "AND told_at IS NULL",
                (ts(now), key, day),
            )
            if cur.rowcount != 1:
                return False
            for channel_key, url, message in messages:
                self._enqueue(db, channel_key, url, message, now)
            return True

    def prune_budget_usage(self, before_day: str) -> int:
        with self._tx() as db:
            cur = db.execute("DELETE FROM budget_usage WHERE day < ?", (before_day,))
            return max(0, int(cur.rowcount))


def _room(scope: BudgetScope) -> tuple[str, tuple[int, ...]]:
    """The ``AND …`` that holds while ``scope`` has room for one more run."""
    limits = [
        (column, limit)
        for column, limit in (
            ("runs", scope.budget.runs_per_day),
            ("tokens", scope.budget.tokens_per_day),
        )
        if limit is not None
    ]
    return "".join(f" AND {column} < ?" for column, _ in limits), tuple(n for _, n in limits)


def add_spend(db: Conn, entries: Sequence[tuple[str, str, int]]) -> None:
    """Add tokens to daily usage inside ``db``'s transaction: ``entries`` of (scope key,
    day, tokens), summed per scope and day and written in one order on every node (two
    writers never wait on each other's rows)."""
    total: dict[tuple[str, str], int] = {}
    for key, day, tokens in entries:
        if tokens > 0:
            total[key, day] = total.get((key, day), 0) + tokens
    for (key, day), tokens in sorted(total.items()):
        db.execute(
            "INSERT INTO budget_usage (scope, day, tokens) VALUES (?, ?, ?) "
            "ON CONFLICT (scope, day) DO UPDATE SET "
            "tokens = budget_usage.tokens + excluded.tokens",
            (key, day, tokens),
        )
