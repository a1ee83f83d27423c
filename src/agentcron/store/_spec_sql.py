"""A few keys of every stored spec, read by the database instead of by pydantic.

Validating a whole stored spec costs ~60 µs and ~7 KB while the object lives; over
100,000 tasks that is 6-7 s of CPU and most of a gigabyte, paid by every reader that
wanted one or two keys of each (retention: ``keep_history``; the watchdog: the
smallest ``overdue_after``; a task list: the schedule and the action). Specs were
validated when they were written (:func:`agentcron.store._rows.spec_json` stores only
a validated model's dump), so these readers ask the database for just their keys and
check only those, each with the validator of its own :class:`TaskSpec` field.

Both engines answer alike: the keys come back as one JSON array per row (SQLite's
``json_array`` over ``->``, PostgreSQL's ``json_build_array`` over ``spec::json``,
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
from agentcron.store.errors import StoreError

_ABSENT = object()  # a key the stored spec does not have


def spec_error(name: str, detail: str) -> StoreError:
    """The one wording for a stored spec that cannot be read: which task, which key,
    and the likely cause (a database changed outside agentcron or by another version)."""
    return StoreError(
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

    def values(self, name: str, text: str | None) -> list[Any]:
        """Each key's raw JSON value (:data:`_ABSENT` when the spec lacks a key whose
        default is not None), then, when ``present`` is given, the first of its keys
        that is set (not absent, not null), or None."""
        if text is None:
            raise spec_error(name, "the database returned no spec")
        got: list[Any] = from_json(text)
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

    def typed(self, name: str, text: str | None) -> list[Any]:
        """Each of ``keys`` as a parsed spec's field would hold it."""
        return [
            field_value(name, key, raw)
            for key, raw in zip(self.keys, self.values(name, text), strict=False)
        ]


# keys whose missing value is not None: read with their JSON type to tell the two apart
_TYPED = frozenset(k for k, f in TaskSpec.model_fields.items() if f.get_default() is not None)


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
            parts = [f"json_typeof(j -> '{k}'), " * (k in _TYPED) + f"j -> '{k}'" for k in keys]
            parts += [f"json_typeof(j -> '{k}')" for k in present]
            # OFFSET 0: the inner select is not merged into the outer one, so each
            # row's spec is cast (parsed) once, not once per key
            sql = (
                f"(SELECT json_build_array({', '.join(parts)})::text "
                "FROM (SELECT spec::json AS j OFFSET 0) s)"
            )
        else:
            parts = [
                f"json_type(spec, '$.{k}'), " * (k in _TYPED) + f"spec -> '$.{k}'" for k in keys
            ]
            parts += [f"json_type(spec, '$.{k}')" for k in present]
            sql = f"json_array({', '.join(parts)})"
        return KeyRead(tuple(keys), tuple(present), sql)

    def _key_rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """``sql`` (a statement with key reads) run; when the database refuses it (a
        stored spec that is not JSON), the task at fault is named instead."""
        try:
            return self._q(sql, params)
        except Exception:
            # SQLite words malformed JSON as a damaged file, PostgreSQL as a bad cast;
            # neither says which task. Only when every spec parses is theirs the answer.
            self._find_bad_spec()
            raise

    def smallest_overdue_after(self) -> timedelta | None:
        """The smallest ``overdue_after`` an unpaused task sets (None: none sets one),
        read from each distinct stored value, not from every parsed spec."""
        read = self._key_read(["overdue_after"])
        rows = self._key_rows(
            f"SELECT MIN(name), {read.sql} FROM tasks WHERE paused = 0 GROUP BY {read.sql}"
        )
        limits = [read.typed(name, text)[0] for name, text in rows]
        return min((v for v in limits if v is not None), default=None)

    def _find_bad_spec(self) -> None:
        """After a key read failed in the database: the first task whose stored spec
        does not parse, as a :class:`StoreError` naming it (returns when all parse, so
        the caller re-raises the database's own error)."""
        from agentcron.store._rows import spec_of

        for name, text in self._q("SELECT name, spec FROM tasks ORDER BY name"):
            spec_of(str(name), text)
