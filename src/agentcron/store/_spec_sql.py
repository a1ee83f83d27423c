"""A few keys of every stored spec, read by the database instead of by pydantic.

Validating a whole stored spec costs ~60 µs and ~7 KB while the object lives; over
100,000 tasks that is 6-7 s of CPU and most of a gigabyte, paid by every reader that
wanted one or two keys of each (retention: ``keep_history``; the watchdog: the
smallest ``overdue_after``; a task list: the schedule and the action). Specs were
validated when they were written (:func:`agentcron.store._rows.spec_json` stores only
a validated model's dump), so these readers ask the database for just their keys and
check only those, each with the validator of its own :class:`TaskSpec` field.

Both engines answer alike: the keys come back as one JSON array per row (SQLite's
``json_array`` over ``->``, PostgreSQL's ``jsonb_build_array`` over ``spec::jsonb``,
parsed once per row), read in Python with one parser; a key the stored spec lacks (a
spec written before the key existed) is told apart from an explicit ``null`` by its
JSON type, and takes the field's default, as parsing the whole spec would.

A spec the fast read cannot use (not JSON at all, a key of the wrong type) is never
skipped: the error names the task, the key and what to do (:func:`spec_error`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from typing import Annotated, Any

from pydantic import TypeAdapter, ValidationError
from pydantic_core import from_json

from agentcron.model import TaskSpec
from agentcron.store.errors import UnreadableRow

_ABSENT = object()  # a key the stored spec does not have


def spec_error(name: str, detail: str) -> UnreadableRow:
    """The one wording for a stored spec that cannot be read: which task, which key,
    and the likely cause (a database changed outside agentcron or by another version)."""
    return UnreadableRow(
        f"task {name!r}: its stored spec cannot be read ({detail}); the database was "
        "changed outside agentcron or by another version of it"
    )


@cache
def _adapter(key: str) -> TypeAdapter[Any]:
    """The validator of one :class:`TaskSpec` field, as the model itself applies it
    (its type, constraints and before-validators; not the model's cross-field checks)."""
    info = TaskSpec.model_fields[key]
    kind: Any = info.annotation
    if info.metadata:
        kind = Annotated[kind, *info.metadata]
    return TypeAdapter(kind)


def field_value(name: str, key: str, raw: Any) -> Any:
    """``raw`` (a stored JSON value, or :data:`_ABSENT`) as the field ``key`` of a parsed
    spec would hold it; a value its field rejects is a :class:`StoreError` naming the task."""
    info = TaskSpec.model_fields[key]
    if raw is _ABSENT:
        return info.get_default(call_default_factory=True)
    try:
        return _adapter(key).validate_python(raw)
    except (ValidationError, ValueError) as exc:
        first = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        raise spec_error(name, f"{key}: {first} (stored {raw!r})") from None


@dataclass(frozen=True)
class KeyRead:
    """Which keys a statement reads, and the SQL that reads them in one dialect: a JSON
    array holding, for each of ``keys``, its value, preceded by its JSON type when the
    field's default is not None (only then does a missing key differ from ``null``);
    then each of ``present``'s type (whether it is set, without carrying its value: an
    llm prompt can be long)."""

    keys: tuple[str, ...]
    present: tuple[str, ...]
    sql: str

    def values(self, name: str, text: str | list[Any] | None) -> list[Any]:
        """Each key's raw JSON value (:data:`_ABSENT` when the spec lacks a key whose
        default is not None), then, when ``present`` is given, the first of its keys
        that is set (not absent, not null), or None."""
        if text is None:
            raise spec_error(name, "the database returned no spec")
        got: list[Any] = from_json(text) if isinstance(text, str) else text
        n = len(self.keys)
        if not _TYPED.intersection(self.keys):  # one value per key: the list's case
            out = got[:n]
            tail = n
        else:
            out = []
            tail = 0
            for key in self.keys:
                if key in _TYPED:
                    out.append(_ABSENT if got[tail] is None else got[tail + 1])
                    tail += 2
                else:
                    out.append(got[tail])
                    tail += 1
        if self.present:
            kinds = got[tail:]
            out.append(
                next(
                    (k for k, t in zip(self.present, kinds, strict=True) if t and t != "null"), None
                )
            )
        return out

    def from_spec(self, name: str, text: str) -> list[Any]:
        """The array the database would have built, built here from the whole stored
        spec: the way round a database that refuses a spec (see ``SpecSQL._key_rows``)."""
        try:
            data = from_json(text)
        except ValueError as exc:
            raise spec_error(name, f"not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise spec_error(name, f"not a JSON object but {type(data).__name__}")

        def kind(key: str) -> str | None:
            return None if key not in data else "null" if data[key] is None else "set"

        got: list[Any] = []
        for key in self.keys:
            if key in _TYPED:
                got.append(kind(key))
            got.append(data.get(key))
        got.extend(kind(key) for key in self.present)
        return got

    def typed(self, name: str, text: str | list[Any] | None) -> list[Any]:
        """Each of ``keys`` as a parsed spec's field would hold it."""
        return [
            field_value(name, key, raw)
            for key, raw in zip(self.keys, self.values(name, text), strict=False)
        ]


# keys whose missing value is not None: read with their JSON type to tell the two apart
_TYPED = frozenset(k for k, f in TaskSpec.model_fields.items() if f.get_default() is not None)


# the smallest overdue_after copied beside a spec (tasks_overdue_after's first entry
# whose copies are current: shown_of is cleared when a spec changes by other means)
SMALLEST_OVERDUE = (
    "SELECT shown_overdue_after FROM tasks WHERE paused = 0 AND shown_overdue_after IS NOT NULL "
    "AND shown_of IS NOT NULL ORDER BY shown_overdue_after LIMIT 1"
)

# the tasks without copies, through their (usually empty) index: `+paused` keeps the
# planner from walking tasks_due, every unpaused task, instead
UNSHOWN_UNPAUSED = "WHERE +paused = 0 AND shown_of IS NULL"


class SpecSQL:
    """Key reads of stored specs; the dialect is named by ``_spec_dialect``
    (``PostgresStore`` sets ``"postgresql"``)."""

    _spec_dialect = "sqlite"

    def _q(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _key_read(self, keys: Sequence[str], present: Sequence[str] = ()) -> KeyRead:
        for key in (*keys, *present):
            if key not in TaskSpec.model_fields:  # keys are code, never input
                raise ValueError(f"not a task key: {key!r}")
        if self._spec_dialect == "postgresql":
            parts = [f"jsonb_typeof(j -> '{k}'), " * (k in _TYPED) + f"j -> '{k}'" for k in keys]
            parts += [f"jsonb_typeof(j -> '{k}')" for k in present]
            # jsonb: parsed once, then each key is a lookup (json re-scans the text per
            # key: 2.9 s against 1.0 s for 100,000 tasks). OFFSET 0 keeps the inner
            # select from being merged into the outer one, which would cast per key.
            sql = (
                f"(SELECT jsonb_build_array({', '.join(parts)})::text "
                "FROM (SELECT spec::jsonb AS j OFFSET 0) s)"
            )
        else:
            parts = [
                f"json_type(spec, '$.{k}'), " * (k in _TYPED) + f"spec -> '$.{k}'" for k in keys
            ]
            parts += [f"json_type(spec, '$.{k}')" for k in present]
            sql = f"json_array({', '.join(parts)})"
        return KeyRead(tuple(keys), tuple(present), sql)

    def _key_rows(
        self, read: KeyRead, sql: str, params: Sequence[Any] = ()
    ) -> list[tuple[Any, ...]]:
        """``sql`` run with ``read``'s expression in place of ``{keys}`` (the last
        column; the first is a task's name). When the database refuses the statement
        (a stored spec that is not JSON; on PostgreSQL also one jsonb cannot hold, such
        as a ``\\u0000`` in an argument), it runs again with the whole spec there and
        the arrays are built here: a bad spec is then named, and a good one that the
        database's JSON cannot hold is read all the same."""
        try:
            return self._q(sql.format(keys=read.sql), params)
        except Exception:
            rows = self._q(sql.format(keys="spec"), params)
        # (a NULL is a row the statement chose not to read the keys of)
        return [
            (*row[:-1], None if row[-1] is None else read.from_spec(str(row[0]), row[-1]))
            for row in rows
        ]

    def _distinct(self, key: str, where: str = "") -> list[Any]:
        """The distinct values of ``key`` among the tasks (``where``: a condition on
        their columns), each validated once, in the order of the first task (by name)
        holding it."""
        read = self._key_read([key])
        rows = self._key_rows(
            read, f"SELECT MIN(name), {{keys}} FROM tasks {where} GROUP BY {{keys}}"
        )
        rows.sort(key=lambda row: str(row[0]))
        return [read.typed(str(name), text)[0] for name, text in rows]

    def smallest_overdue_after(self) -> timedelta | None:
        """The smallest ``overdue_after`` an unpaused task sets (None: none sets one):
        one probe of the index of the copies written with each spec (the watchdog asks
        every 10 s; reading every stored spec cost 0.3 s over 100,000 tasks), and the
        distinct values of the specs without copies (see migration 12), validated."""
        found = [seconds for (seconds,) in self._q(SMALLEST_OVERDUE)]
        limits: list[timedelta | None] = [timedelta(seconds=found[0])] if found else []
        limits += self._distinct("overdue_after", UNSHOWN_UNPAUSED)
        return min((v for v in limits if v is not None), default=None)

    def task_notify_urls(self) -> list[str]:
        """Every URL a task's ``notify`` names, each once, in the order of the tasks by
        name and of each task's list (what reading every spec in name order gave)."""
        urls: list[str] = []
        for value in self._distinct("notify"):
            for url in value or ():
                if url not in urls:
                    urls.append(url)
        return urls

    def task_names(self, source: str | None = None) -> list[str]:
        """Every task's name (of ``source`` when given), in order (no spec read)."""
        if source is None:
            return [str(row[0]) for row in self._q("SELECT name FROM tasks ORDER BY name")]
        rows = self._q("SELECT name FROM tasks WHERE source = ? ORDER BY name", (source,))
        return [str(row[0]) for row in rows]
