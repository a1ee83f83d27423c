"""The quick ``__init__`` of the frozen records (agentcron/quick_init.py) makes the same
instance the stock dataclass ``__init__`` makes, for every class it is on: with every
argument given, with only those without a default, by keyword and by position. The
records stay frozen, default factories give each instance its own value, and a
class it cannot stand in for is refused where it is defined."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from dataclasses import InitVar, dataclass, field
from typing import Any

import pytest

from agentcron.quick_init import STOCK_INIT, quick_init

# the classes a run makes by the dozen (see the module's docstring)
EXPECTED = {
    "agentcron.model.records": {"TaskRecord", "Slot", "Attempt"},
    "agentcron.model.run": {"NewSlot", "Claim", "AttemptOutcome", "Finish", "Finished"},
    "agentcron.actions.base": {"ActionContext", "ActionResult"},
    "agentcron.schedules.base": {"FireTime"},
}
DECORATED = sorted(
    (
        getattr(importlib.import_module(module), name)
        for module, names in EXPECTED.items()
        for name in names
    ),
    key=lambda cls: cls.__qualname__,
)


class _Value:
    """A distinct value per field, equal only to itself."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


def _built(
    cls: type[Any], init: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    obj = object.__new__(cls)
    init(obj, *args, **kwargs)
    return dict(vars(obj))


def test_every_class_a_run_makes_by_the_dozen_has_the_quick_init() -> None:
    assert set(STOCK_INIT) >= set(DECORATED)
    for cls in DECORATED:
        assert cls.__init__ is not STOCK_INIT[cls], cls


@pytest.mark.parametrize("cls", DECORATED, ids=lambda cls: cls.__qualname__)
def test_the_quick_init_makes_what_the_stock_one_makes(cls: type[Any]) -> None:
    fields = [f for f in dataclasses.fields(cls) if f.init]
    every = {f.name: _Value(f.name) for f in fields}
    assert _built(cls, cls.__init__, (), every) == _built(cls, STOCK_INIT[cls], (), every)
    required = {
        f.name: every[f.name]
        for f in fields
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    quick = _built(cls, cls.__init__, (), required)
    assert quick == _built(cls, STOCK_INIT[cls], (), required)
    assert set(quick) == {f.name for f in dataclasses.fields(cls)}
    positional = [f for f in fields if not f.kw_only]
    args = tuple(every[f.name] for f in positional)
    rest = {f.name: every[f.name] for f in fields if f.kw_only}
    assert _built(cls, cls.__init__, args, rest) == _built(cls, STOCK_INIT[cls], args, rest)
    assert inspect.signature(cls.__init__).parameters.keys() == (
        inspect.signature(STOCK_INIT[cls]).parameters.keys()
    )


def test_a_record_stays_frozen_and_factories_give_each_its_own() -> None:
    from agentcron.model import AttemptOutcome, SlotStatus

    one = AttemptOutcome(ok=True, slot_status=SlotStatus.SUCCEEDED)
    two = AttemptOutcome(True, SlotStatus.SUCCEEDED)
    assert one == two and one.tokens == {} and one.tokens is not two.tokens
    with pytest.raises(dataclasses.FrozenInstanceError):
        one.ok = False  # type: ignore[misc]
    with pytest.raises(TypeError, match="slot_status"):
        AttemptOutcome(ok=True)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword"):
        AttemptOutcome(ok=True, slot_status=SlotStatus.SUCCEEDED, nope=1)  # type: ignore[call-arg]


def test_post_init_defaults_kw_only_and_fields_left_out_of_init() -> None:
    seen: list[int] = []

    @quick_init
    @dataclass(frozen=True)
    class Made:
        a: int
        b: list[int] = field(default_factory=list)
        c: int = field(default=7, init=False)
        d: str = field(default="x", kw_only=True)

        def __post_init__(self) -> None:
            seen.append(self.a)

    made = Made(1, d="y")
    assert (made.a, made.b, made.c, made.d) == (1, [], 7, "y") and seen == [1]
    assert dataclasses.replace(made, a=2) == Made(2, d="y")
    with pytest.raises(TypeError):
        Made(1, [], "y")  # type: ignore[misc]


def test_a_class_it_cannot_stand_in_for_is_refused_where_it_is_defined() -> None:
    with pytest.raises(TypeError, match="frozen dataclasses"):

        @quick_init
        @dataclass
        class Plain:
            a: int

    with pytest.raises(TypeError, match="slots"):

        @quick_init
        @dataclass(frozen=True, slots=True)
        class Slotted:
            a: int

    with pytest.raises(TypeError, match="InitVar"):

        @quick_init
        @dataclass(frozen=True)
        class WithInitVar:
            a: int
            b: InitVar[int]

    with pytest.raises(TypeError, match="uses itself"):

        @quick_init
        @dataclass(frozen=True)
        class Clash:
            _sd: int
