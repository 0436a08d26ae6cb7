"""``convcli.core.records.record`` against the standard library's ``dataclass``, side by side.

The same class body goes through both; every behaviour convcli relies on (construction, defaults,
``__post_init__``, equality, hashing, repr, frozen-ness, ``replace``, ``asdict``, pickling,
inheritance, ``kw_only``, ``field(repr=, compare=, hash=, init=)``) must come out the same.
"""

from __future__ import annotations

import dataclasses
import pathlib
import pickle
import re
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convcli.core.records import record

ROOT = pathlib.Path(__file__).resolve().parents[1]


@record(frozen=True)
class Shipped:
    x: int
    tags: tuple[str, ...]
    extra: list[int] = field(default_factory=list, compare=False)


def pair(frozen: bool, kw_only: bool = False):
    """(stdlib class, record class) of one class body, both named ``Point``."""
    made = []
    for deco in (dataclass(frozen=frozen, kw_only=kw_only), record(frozen=frozen, kw_only=kw_only)):
        class Point:
            x: int
            y: float = 1.5
            tags: tuple[str, ...] = ()
            note: str = field(default="n", repr=False, compare=False)
            extra: list[int] = field(default_factory=list, hash=False)
            derived: int = field(default=0, init=False)
            plain: bool = field(default=False, init=False)  # never assigned: the class attribute
            made: list[int] = field(default_factory=list, init=False, hash=False)  # assigned by __init__

            def __post_init__(self) -> None:
                object.__setattr__(self, "derived", self.x * 2)

        made.append(deco(Point))
    return made


values = st.tuples(st.integers(-5, 5), st.sampled_from([0.0, 1.5, -2.25]),
                   st.sampled_from([(), ("a",), ("a", "b")]), st.sampled_from(["n", "m"]))


@settings(max_examples=60, derandomize=True)
@given(a=values, b=values, frozen=st.booleans())
def test_construction_eq_repr_as_dataclass(a, b, frozen):
    std, rec = pair(frozen)
    sa, sb = std(*a), std(*b)
    ra, rb = rec(*a), rec(*b)
    assert repr(ra) == repr(sa)
    assert (ra == rb) == (sa == sb)
    assert (ra != rb) == (sa != sb)
    assert ra.derived == sa.derived == a[0] * 2
    assert dataclasses.asdict(ra) == dataclasses.asdict(sa)
    assert [f.name for f in dataclasses.fields(rec)] == [f.name for f in dataclasses.fields(std)]
    assert rec.__match_args__ == std.__match_args__
    assert (ra == sa) is False  # different classes never compare equal, in either
    if frozen:
        sa, sb = std(*a, extra=[1]), std(*b, extra=[2])  # a list is unhashable: hash=False skips it
        ra, rb = rec(*a, extra=[1]), rec(*b, extra=[2])
        assert (hash(ra) == hash(rb)) == (hash(sa) == hash(sb))
        assert hash(ra) == hash(sa)  # both hash the same tuple of fields
    else:
        assert rec.__hash__ is None and std.__hash__ is None


@pytest.mark.parametrize("frozen", [True, False])
def test_frozen_refusals_as_dataclass(frozen):
    for cls in pair(frozen):
        p = cls(3)
        actions = [lambda p=p: setattr(p, "x", 4), lambda p=p: delattr(p, "y"),
                   lambda p=p: setattr(p, "brand_new", 1), lambda p=p: setattr(p, "plain", True),
                   lambda p=p: setattr(p, "made", [1])]
        for act in actions:
            if frozen:
                with pytest.raises(dataclasses.FrozenInstanceError):
                    act()
            else:
                act()
        if not frozen:
            assert (p.x, p.brand_new, "y" in vars(p), p.y) == (4, 1, False, 1.5)  # the class default shows
            assert (p.plain, p.made) == (True, [1])
        else:
            assert (p.plain, p.made) == (False, [])


@pytest.mark.parametrize("frozen", [True, False])
def test_replace_pickle_and_errors_as_dataclass(frozen):
    std, rec = pair(frozen)
    s, r = dataclasses.replace(std(1, tags=("a",)), x=7), dataclasses.replace(rec(1, tags=("a",)), x=7)
    assert repr(r) == repr(s) and r.derived == 14
    shipped = Shipped(1, ("a",), [2])  # pickled as a -j worker's job is
    back = pickle.loads(pickle.dumps(shipped))
    assert back == shipped and back is not shipped and back.extra == [2]
    for cls in (std, rec):
        with pytest.raises(TypeError, match="missing 1 required positional argument: 'x'"):
            cls()
        with pytest.raises(TypeError, match="derived"):
            cls(1, derived=3)


def test_kw_only_and_inheritance_as_dataclass():
    std, rec = pair(True, kw_only=True)
    for cls in (std, rec):
        with pytest.raises(TypeError, match="positional"):
            cls(1)
        assert cls(x=1).x == 1

    @record(frozen=True)
    class Base:
        a: int

    @record(frozen=True)
    class Child(Base):
        b: str = "z"

    c = Child(1, "q")
    assert repr(c) == "test_kw_only_and_inheritance_as_dataclass.<locals>.Child(a=1, b='q')"
    assert c == Child(1, "q") and c != Base(1) and hash(c) == hash((1, "q"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.a = 2


def test_methods_a_class_defines_are_kept():
    @record(frozen=True)
    class Named:
        a: int

        def __repr__(self) -> str:
            return "mine"

        def __eq__(self, other: object) -> bool:
            return True

        __hash__ = object.__hash__

    assert repr(Named(1)) == "mine" and Named(1) == Named(2)
    assert hash(Named(1)) != hash(Named(1))  # identity hash, as the class asked
    with pytest.raises(TypeError, match="frozen record cannot define __setattr__"):
        @record(frozen=True)
        class Bad:
            a: int

            def __setattr__(self, name, value):
                pass


def test_convcli_declares_its_records_through_record():
    """One policy for records: a bare @dataclass in convcli compiles six methods per class again."""
    offenders = [f"{p.relative_to(ROOT)}:{n}" for p in sorted((ROOT / "convcli").rglob("*.py"))
                 for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
                 if re.match(r"\s*@(dataclasses\.)?dataclass\b", line)]
    assert offenders == []
