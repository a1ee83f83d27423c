"""A faster ``__init__`` for the frozen records a run makes by the dozen.

A frozen dataclass sets each field through ``object.__setattr__`` (its own
``__setattr__`` refuses): 1.8 µs for a 17-field :class:`~agentcron.model.Slot`
where storing into the instance's dict takes 0.6 µs. A run of an inline task
makes about a dozen such records (its slot twice, its attempt, claim, context,
result, outcome, end and finished record), so the stock ``__init__`` was several
percent of a steady load's CPU (bench/README.md, issue 16).

:func:`quick_init` replaces the ``__init__`` of one frozen dataclass by one with
the same parameters, defaults and default factories that writes the instance's
``__dict__`` directly, then calls ``__post_init__`` if the class has one. The
instance is the same as the stock one makes (a test compares them for every
class decorated); it stays frozen, because only ``__setattr__`` is bypassed, and
only inside ``__init__``. A class the replacement cannot stand in for (not a
frozen dataclass, ``slots``, ``InitVar`` fields) is refused when it is defined.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_FACTORY = object()  # the default of a parameter whose field has a default factory

# each decorated class's stock __init__, kept for the test that compares the two
STOCK_INIT: dict[type[Any], Callable[..., None]] = {}


def quick_init(cls: type[T]) -> type[T]:
    """``cls`` (a frozen dataclass) with an ``__init__`` that writes its fields to the
    instance's dict. Put it above ``@dataclass(frozen=True)``."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen:
        raise TypeError(f"quick_init is for frozen dataclasses; {cls.__qualname__} is not one")
    if "__slots__" in cls.__dict__:
        raise TypeError(f"quick_init writes the instance dict; {cls.__qualname__} has slots")
    every = cls.__dict__["__dataclass_fields__"].values()
    if any(f._field_type is dataclasses._FIELD_INITVAR for f in every):  # type: ignore[attr-defined]
        raise TypeError(f"quick_init does not pass InitVar fields; {cls.__qualname__} has some")
    if any(f.name in ("self", "_sd") or f.name.startswith(("_v", "_FACTORY")) for f in every):
        raise TypeError(f"a field of {cls.__qualname__} has a name quick_init uses itself")
    names: dict[str, Any] = {"_FACTORY": _FACTORY}
    positional: list[str] = []
    keyword: list[str] = []
    body: list[str] = []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        key = f"_v{len(names)}"  # the default's or factory's name in the code below
        has_default = f.default is not dataclasses.MISSING
        has_factory = f.default_factory is not dataclasses.MISSING
        if has_default:
            names[key] = f.default
        elif has_factory:
            names[key] = f.default_factory
        if not f.init:  # not a parameter: set from its default, or left unset
            if has_default or has_factory:
                body.append(f"_sd[{f.name!r}] = {key}{'()' if has_factory else ''}")
            continue
        if has_default:
            param = f"{f.name}={key}"
            value = f.name
        elif has_factory:
            param = f"{f.name}=_FACTORY"
            value = f"{key}() if {f.name} is _FACTORY else {f.name}"
        else:
            param = value = f.name
        (keyword if f.kw_only else positional).append(param)
        body.append(f"_sd[{f.name!r}] = {value}")
    if hasattr(cls, "__post_init__"):
        body.append("self.__post_init__()")
    signature = ", ".join(["self", *positional, *(["*", *keyword] if keyword else [])])
    lines = [f"def __init__({signature}):", "    _sd = self.__dict__"]
    lines += [f"    {line}" for line in body]
    exec("\n".join(lines), names)
    init = names["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__doc__ = cls.__init__.__doc__
    STOCK_INIT[cls] = cls.__init__
    cls.__init__ = init  # type: ignore[method-assign]
    return cls
