"""``record``: a dataclass whose methods are shared, not compiled per class.

``dataclasses.dataclass(frozen=True)`` writes six methods for every class as source text and
compiles each (``__init__``, ``__repr__``, ``__eq__``, ``__hash__``, ``__setattr__``,
``__delattr__``): ~1.1 ms a class on Python 3.11, and a small ``convcli filter`` imports 40 of
them, so half of convcli's own import time went to compiling methods it calls a few times per
run. ``record`` lets ``dataclass`` write only ``__init__`` and gives every class the same five
plain functions, which read the fields from ``__dataclass_fields__``. Each record is still a
dataclass: ``fields``, ``replace``, ``asdict``, ``field(repr=..., compare=...)``, ``kw_only``,
``__post_init__``, ``__match_args__`` and pickling behave as they do there, and
``tests/test_records.py`` holds the two side by side.

Frozen, as in dataclasses: a field is assigned once, by ``__init__`` (or ``object.__setattr__``
in ``__post_init__``); assigning it again, deleting it or adding an attribute raises
``dataclasses.FrozenInstanceError``.

What differs: ``__dataclass_params__`` says ``frozen=False, eq=False, repr=False`` (what
``dataclass`` itself was asked for); a plain subclass of a frozen record is frozen too; ``repr``
has no guard against a record holding itself; and ``==``/``hash`` read the fields through
``fields()``, a few microseconds a call instead of a fraction of one -- records are settings,
compared a handful of times a run, never per pixel.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T", bound=type)


def _values(self: Any, hashed: bool = False) -> tuple[Any, ...]:
    """The compared fields' values (with ``hashed``, those ``field(hash=...)`` says are hashed)."""
    return tuple(getattr(self, f.name) for f in dataclasses.fields(self)
                 if (f.hash if hashed and f.hash is not None else f.compare))


def _eq(self: Any, other: object) -> bool:
    if other.__class__ is not self.__class__:
        return NotImplemented
    return _values(self) == _values(other)


def _hash(self: Any) -> int:
    return hash(_values(self, hashed=True))


def _repr(self: Any) -> str:
    shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self) if f.repr)
    return f"{type(self).__qualname__}({shown})"


def _setattr(self: Any, name: str, value: Any) -> None:
    # What __init__ assigns, once: every init field, and an init=False field with a default_factory
    # (one with a plain default stays the class attribute, so it is never in __dict__ to be refused
    # by). After __init__ each of them is in __dict__.
    f = self.__dataclass_fields__.get(name)
    if (f is None or name in self.__dict__
            or (not f.init and f.default_factory is dataclasses.MISSING)):
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")
    object.__setattr__(self, name, value)


def _delattr(self: Any, name: str) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")


def _finish(cls: T, frozen: bool, kw_only: bool) -> T:
    own = set(cls.__dict__)
    explicit_hash = "__hash__" in own and not (cls.__dict__["__hash__"] is None and "__eq__" in own)
    cls = dataclasses.dataclass(cls, repr=False, eq=False, kw_only=kw_only)
    for name, method in (("__repr__", _repr), ("__eq__", _eq)):
        if name not in own:
            setattr(cls, name, method)
    if not explicit_hash:
        cls.__hash__ = _hash if frozen else None  # type: ignore[assignment]
    if frozen:
        if "__setattr__" in own or "__delattr__" in own:
            raise TypeError(f"{cls.__qualname__}: a frozen record cannot define __setattr__ or __delattr__")
        cls.__setattr__ = _setattr  # type: ignore[assignment]
        cls.__delattr__ = _delattr  # type: ignore[assignment]
    return cls


def record(cls: T | None = None, /, *, frozen: bool = False, kw_only: bool = False) -> Any:
    """``@record`` / ``@record(frozen=True, kw_only=True)``: as ``@dataclass`` with the same arguments."""
    if cls is None:
        return lambda c: _finish(c, frozen, kw_only)
    return _finish(cls, frozen, kw_only)
