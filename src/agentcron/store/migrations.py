"""Versioned schema. Each entry upgrades from the previous version; never edit a
released entry, append a new one. The same statements run on SQLite and
PostgreSQL except where a dialect hook substitutes a type or a statement
(:func:`statements`)."""

from __future__ import annotations

from functools import cache

APP_ID = "agentcron"

# A statement each dialect writes its own way (see _DIALECT).
SHOWN_STALE = "{shown_stale_trigger}"

# {pk} is the auto-increment primary key declaration of the dialect.
MIGRATIONS: list[list[str]] = [
    [
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE tasks (
            name TEXT PRIMARY KEY,
            source TEXT NOT NULL,
            spec TEXT NOT NULL,
            schedule_key TEXT NOT NULL,
            overlap TEXT NOT NULL,
            paused INTEGER NOT NULL DEFAULT 0,
            next_fire_at DOUBLE PRECISION,
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL
        )""",
        "CREATE INDEX tasks_due ON tasks (next_fire_at) WHERE paused = 0",
        """CREATE TABLE slots (
            id {pk},
            task TEXT NOT NULL,
            scheduled_for DOUBLE PRECISION NOT NULL,
            status TEXT NOT NULL,
            reason TEXT,
            trigger TEXT NOT NULL DEFAULT 'schedule',
            attempts INTEGER NOT NULL DEFAULT 0,
            error_class TEXT,
            error TEXT,
            started_at DOUBLE PRECISION,
            finished_at DOUBLE PRECISION,
            next_attempt_at DOUBLE PRECISION,
            delivery_status TEXT NOT NULL DEFAULT 'none',
            output_path TEXT,
            lease_owner TEXT,
            lease_expires_at DOUBLE PRECISION,
            created_at DOUBLE PRECISION NOT NULL,
            UNIQUE (task, scheduled_for)
        )""",
        "CREATE INDEX slots_runnable ON slots (next_attempt_at) "
        "WHERE status IN ('pending', 'retrying')",
        "CREATE INDEX slots_running ON slots (lease_expires_at) WHERE status = 'running'",
        "CREATE INDEX slots_task ON slots (task, scheduled_for)",
        """CREATE TABLE attempts (
            id {pk},
            slot_id BIGINT NOT NULL,
            number INTEGER NOT NULL,
            started_at DOUBLE PRECISION NOT NULL,
            finished_at DOUBLE PRECISION,
            status TEXT NOT NULL,
            error_class TEXT,
            error TEXT,
            explanation TEXT,
            exit_code INTEGER,
            output_path TEXT,
            node TEXT,
            tokens TEXT,
            extra TEXT,
            UNIQUE (slot_id, number)
        )""",
        """CREATE TABLE nodes (
            node_id TEXT PRIMARY KEY,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            home TEXT NOT NULL,
            started_at DOUBLE PRECISION NOT NULL,
            heartbeat_at DOUBLE PRECISION NOT NULL,
            stopped_at DOUBLE PRECISION
        )""",
    ],
    [
        """CREATE TABLE incidents (
            id {pk},
            task TEXT NOT NULL,
            kind TEXT NOT NULL,
            opened_at DOUBLE PRECISION NOT NULL,
            closed_at DOUBLE PRECISION,
            escalated INTEGER NOT NULL DEFAULT 0,
            count INTEGER NOT NULL DEFAULT 1,
            failed_runs INTEGER NOT NULL DEFAULT 0,
            retries INTEGER NOT NULL DEFAULT 0,
            first_error_class TEXT,
            last_error_class TEXT,
            summary TEXT NOT NULL DEFAULT '',
            slot_id BIGINT,
            since DOUBLE PRECISION,
            streak INTEGER NOT NULL DEFAULT 0,
            updated_at DOUBLE PRECISION
        )""",
        "CREATE UNIQUE INDEX incidents_open ON incidents (task, kind) WHERE closed_at IS NULL",
        "CREATE INDEX incidents_recent ON incidents (opened_at)",
        """CREATE TABLE outbox (
            id {pk},
            channel_key TEXT NOT NULL,
            channel_url TEXT NOT NULL,
            message TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at DOUBLE PRECISION,
            last_error TEXT,
            sent_at DOUBLE PRECISION,
            permanent INTEGER NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX outbox_queue ON outbox (channel_key, id) "
        "WHERE sent_at IS NULL AND permanent = 0",
        """CREATE TABLE channels (
            channel_key TEXT PRIMARY KEY,
            last_ok_at DOUBLE PRECISION,
            last_error TEXT,
            last_error_at DOUBLE PRECISION,
            failing_since DOUBLE PRECISION,
            broken INTEGER NOT NULL DEFAULT 0,
            undeliverable INTEGER NOT NULL DEFAULT 0
        )""",
        """CREATE TABLE deliveries (
            id {pk},
            slot_id BIGINT NOT NULL,
            task TEXT NOT NULL,
            target TEXT NOT NULL,
            target_key TEXT NOT NULL,
            output_path TEXT,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at DOUBLE PRECISION,
            last_error TEXT,
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            UNIQUE (slot_id, target)
        )""",
        "CREATE INDEX deliveries_due ON deliveries (next_attempt_at) "
        "WHERE status IN ('pending', 'retrying')",
    ],
    [
        # Pending slots carry the time of their first attempt, so claims walk the
        # slots_runnable index in order instead of sorting all waiting slots.
        "UPDATE slots SET next_attempt_at = created_at "
        "WHERE status = 'pending' AND next_attempt_at IS NULL",
    ],
    [
        # A burst shares one next_attempt_at: the claim's whole ORDER BY must be
        # in the index, or every waiting slot is read and sorted to take a few.
        "DROP INDEX slots_runnable",
        "CREATE INDEX slots_runnable ON slots (next_attempt_at, scheduled_for, id) "
        "WHERE status IN ('pending', 'retrying')",
    ],
    [
        # The UNIQUE (task, scheduled_for) constraint is already that index; the copy
        # cost every slot written a second update of the same tree.
        "DROP INDEX slots_task",
    ],
    [
        # Outbox claims: a sender takes a row before sending it, so one message is sent
        # by one node; a lapsed claim is taken over and counted as a possible duplicate.
        "ALTER TABLE outbox ADD COLUMN claimed_by TEXT",
        "ALTER TABLE outbox ADD COLUMN claim_expires_at DOUBLE PRECISION",
        "ALTER TABLE outbox ADD COLUMN resent INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE channels ADD COLUMN resent INTEGER NOT NULL DEFAULT 0",
    ],
    [
        # Retention (agentcron.store._prune_sql): finished notifications and closed
        # incidents by age, so pruning reads what it deletes and not the rest. Both are
        # partial: a queued message or an open incident is not in them, and a row
        # enters them once, when it is sent, given up on or closed. Slots need none:
        # they are pruned through their UNIQUE (task, scheduled_for) index.
        "CREATE INDEX outbox_done ON outbox (created_at) "
        "WHERE sent_at IS NOT NULL OR permanent = 1",
        "CREATE INDEX incidents_closed ON incidents (closed_at) WHERE closed_at IS NOT NULL",
    ],
    [
        # Delivery claims, as for the outbox: a delivery worker takes a row before it
        # attempts it, so one output is delivered by one node; its record of the
        # attempt counts only while the claim is its own, and a lapsed claim is taken
        # over by whoever claims next.
        "ALTER TABLE deliveries ADD COLUMN claimed_by TEXT",
        "ALTER TABLE deliveries ADD COLUMN claim_expires_at DOUBLE PRECISION",
    ],
    [
        # Why a task was paused (shown by `list`, the API and the dashboard); who
        # acknowledged an incident and when; when an open incident was last told again
        # (reminders); an audit trail of changes made through the API, MCP and CLI.
        "ALTER TABLE tasks ADD COLUMN pause_reason TEXT",
        "ALTER TABLE incidents ADD COLUMN acknowledged_at DOUBLE PRECISION",
        "ALTER TABLE incidents ADD COLUMN acknowledged_by TEXT",
        "ALTER TABLE incidents ADD COLUMN reminded_at DOUBLE PRECISION",
        """CREATE TABLE audit (
            id {pk},
            at DOUBLE PRECISION NOT NULL,
            actor TEXT NOT NULL,
            via TEXT NOT NULL,
            action TEXT NOT NULL,
            task TEXT,
            before TEXT,
            after TEXT
        )""",
        "CREATE INDEX audit_task ON audit (task, at)",
    ],
    [
        # One back-off per provider, shared by its tasks and by every node.
        """CREATE TABLE providers (
            key TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            until DOUBLE PRECISION NOT NULL,
            reason TEXT NOT NULL,
            since DOUBLE PRECISION NOT NULL,
            probe_owner TEXT,
            probe_until DOUBLE PRECISION,
            updated_at DOUBLE PRECISION NOT NULL
        )""",
    ],
    [
        # Daily budgets: what each scope (a task, an agent, every task) spent on a day,
        # and when the owner was told that day's budget ran out (once per day).
        """CREATE TABLE budget_usage (
            scope TEXT NOT NULL,
            day TEXT NOT NULL,
            runs INTEGER NOT NULL DEFAULT 0,
            tokens BIGINT NOT NULL DEFAULT 0,
            told_at DOUBLE PRECISION,
            PRIMARY KEY (scope, day)
        )""",
    ],
    [
        # A task as a list shows it (schedule in words, zone, action, description,
        # whether it has a budget of its own) and its overdue_after,
        # written with its spec: `agentcron list` over 100,000 tasks read these keys out
        # of each stored spec's JSON, most of its time. ``shown_of`` is a digest of the
        # spec they were taken from; a spec changed by anything but agentcron's own
        # writer (which sets a new digest with it) clears it, and the list then reads
        # the spec itself, so it never shows what a task no longer says. Rows written
        # before this version are filled when it is applied (store.fill_shown).
        "ALTER TABLE tasks ADD COLUMN shown_schedule TEXT",
        "ALTER TABLE tasks ADD COLUMN shown_zone TEXT",
        "ALTER TABLE tasks ADD COLUMN shown_action TEXT",
        "ALTER TABLE tasks ADD COLUMN shown_description TEXT",
        "ALTER TABLE tasks ADD COLUMN shown_budget INTEGER",
        # the watchdog's look at the smallest overdue_after (seconds) is one index probe
        "ALTER TABLE tasks ADD COLUMN shown_overdue_after DOUBLE PRECISION",
        "ALTER TABLE tasks ADD COLUMN shown_of TEXT",
        SHOWN_STALE,
        "CREATE INDEX tasks_overdue_after ON tasks (shown_overdue_after) "
        "WHERE paused = 0 AND shown_overdue_after IS NOT NULL",
        "CREATE INDEX tasks_unshown ON tasks (name) WHERE shown_of IS NULL",
    ],
    [
        # What a running daemon says of its config file beyond "running": a change it
        # rejected (it keeps the last good one) or sections it applies only when it
        # restarts. Kept on its node row, so `agentcron status`, `doctor`, the API and
        # the dashboard, which read the database and not the daemon, can say it too.
        "ALTER TABLE nodes ADD COLUMN config_note TEXT",
    ],
    [
        # 14: slots left waiting for a retry that no claim takes: a run whose task was
        # removed while it ran ended retrying, before such ends were made final (claims
        # read the task's row). Ended as they are now, once.
        "UPDATE slots SET status = 'failed', next_attempt_at = NULL, "
        "reason = 'task removed while this run was going: not retried', "
        "finished_at = (SELECT MAX(a.finished_at) FROM attempts a WHERE a.slot_id = slots.id) "
        "WHERE status IN ('pending', 'retrying') "
        "AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.name = slots.task)",
    ],
    [
        # 15: a running slot that another node asks its owner to stop, and why (overlap:
        # replace, where the newer fire was planned on another node than the run's):
        # the owner looks for these while it holds runs, and stops them as its own.
        "ALTER TABLE slots ADD COLUMN stop_asked TEXT",
    ],
    [
        # 16: the tasks that have produced output in a success, by name (kept when a
        # task is removed, as its history is). The empty-output canary asks whether a
        # task has printed before; answered from the history, that read walked every
        # success of the task: 25 ms for 10,000 runs, on the loop, after each start.
        "CREATE TABLE task_outputs (task TEXT PRIMARY KEY)",
        "INSERT INTO task_outputs (task) SELECT DISTINCT s.task FROM slots s "
        "JOIN attempts a ON a.slot_id = s.id WHERE s.status = 'succeeded' "
        "AND a.status = 'succeeded' AND a.extra LIKE '%\"empty_output\": false%'",
    ],
    [
        # 17: what the owner was told an open incident is about (error classes of a
        # failure, targets of a delivery given up), one per line: a new cause inside an
        # open incident (a quota error after a bad key, a second target failing) was
        # only counted, never told.
        "ALTER TABLE incidents ADD COLUMN told TEXT",
    ],
    [
        # 18: incidents closed because their task was removed (by the file, the API, an
        # agent), whose closing the owner has not been told yet: they were closed
        # without a word, and an owner told "failing, retrying at 14:05" heard nothing
        # more (an agent removing a failing task hid the failure).
        "ALTER TABLE incidents ADD COLUMN closed_by TEXT",
        "CREATE INDEX incidents_removed ON incidents (task) WHERE closed_by = 'removed'",
    ],
    [
        # 19: the audit trail is pruned by age with the rest of the history (a trigger
        # through the API or MCP on a schedule, each `agentcron prune`, added a row for
        # good: soak probe); the index keeps that look off a scan of the whole table.
        "CREATE INDEX audit_at ON audit (at)",
    ],
    [
        # 20: a task's incidents, newest first (the flapping rule's look back at every
        # failure, the API's and the dashboard's list by task), read through the time
        # index filtered by task: 136 ms for a quiet task beside a flapping one's
        # 300,000 closed incidents, on the loop. And retention prunes closed incidents
        # by their own task's keep_history through it, task by task.
        "CREATE INDEX incidents_task ON incidents (task, opened_at)",
    ],
]

SCHEMA_VERSION = len(MIGRATIONS)
# the version whose application fills the shown columns of the tasks already stored
SHOWN_VERSION = 12

_DIALECT: dict[str, dict[str, list[str]]] = {
    "sqlite": {
        "{pk}": ["INTEGER PRIMARY KEY AUTOINCREMENT"],
        SHOWN_STALE: [
            "CREATE TRIGGER tasks_shown_stale AFTER UPDATE OF spec ON tasks "
            "WHEN new.spec IS NOT old.spec AND new.shown_of IS old.shown_of "
            "BEGIN UPDATE tasks SET shown_of = NULL WHERE name = new.name; END"
        ],
    },
    "postgresql": {
        "{pk}": ["BIGSERIAL PRIMARY KEY"],
        SHOWN_STALE: [
            "CREATE FUNCTION tasks_shown_stale() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN IF NEW.spec IS DISTINCT FROM OLD.spec "
            "AND NEW.shown_of IS NOT DISTINCT FROM OLD.shown_of THEN "
            "NEW.shown_of := NULL; END IF; RETURN NEW; END $$",
            "CREATE TRIGGER tasks_shown_stale BEFORE UPDATE ON tasks FOR EACH ROW "
            "EXECUTE FUNCTION tasks_shown_stale()",
        ],
    },
}


def statements(index: int, dialect: str) -> list[str]:
    """The statements of migration ``index`` in ``dialect`` (sqlite or postgresql):
    ``{pk}`` spelled as its auto-increment key, a placeholder statement as its own."""
    words = _DIALECT[dialect]
    out: list[str] = []
    for stmt in MIGRATIONS[index]:
        if stmt in words:
            out += words[stmt]
        else:
            out.append(stmt.replace("{pk}", words["{pk}"][0]))
    return out


@cache
def expected_columns() -> dict[str, frozenset[str]]:
    """Each table of the current schema and its columns, as the migrations make them
    (applied once to an empty in-memory SQLite database)."""
    import sqlite3

    db = sqlite3.connect(":memory:")
    try:
        for index in range(SCHEMA_VERSION):
            for stmt in statements(index, "sqlite"):
                db.execute(stmt)
        names = [
            r[0]
            for r in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            ).fetchall()
        ]
        return {
            name: frozenset(r[1] for r in db.execute(f"PRAGMA table_info({name})").fetchall())
            for name in names
        }
    finally:
        db.close()


def missing_parts(found: dict[str, set[str]]) -> str | None:
    """What ``found`` (each table's columns, an empty set for a table that is not there)
    lacks of the current schema, in words ("the table attempts", "the column
    incidents.closed_by"), or None."""
    for table, columns in expected_columns().items():
        have = found.get(table, set())
        if not have:
            return f"the table {table}"
        lacking = sorted(columns - have)
        if lacking:
            return ", ".join(f"the column {table}.{c}" for c in lacking[:3])
    return None


def recorded_version(value: object, where: str) -> int:
    """The schema version a database's ``meta`` row holds (0: none yet); a row that is not
    a number was changed outside agentcron, said in words (it was a ValueError traceback
    from every command)."""
    from agentcron.store.errors import StoreError

    if value is None:
        return 0
    try:
        return int(str(value))
    except ValueError:
        raise StoreError(
            f"{where}: the database's schema_version row holds {str(value)[:40]!r}, not a "
            "version number; it was changed outside agentcron. Restore it from a backup; "
            "agentcron has not changed it."
        ) from None
