"""VenueEvent's native constructor (fsm_engine/src/python_init.rs) builds exactly what its
Python __init__ builds, refuses the same calls with the same messages, and is given only to
classes whose __init__ just stores its parameters."""

import gc
import re
import sys
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dita import VenueEvent, _engine

FIELDS = VenueEvent.__slots__


def python_built(*args, **kwargs):
    """What the class's own __init__ makes of these arguments (or the error it raises)."""
    ev = object.__new__(VenueEvent)
    VenueEvent.__init__(ev, *args, **kwargs)
    return ev


def slots(ev):
    return {k: getattr(ev, k, "<unset>") for k in FIELDS}


def test_venue_event_has_the_native_constructor():
    assert _engine.has_member_init(VenueEvent)


@pytest.mark.parametrize("args, kwargs", [
    (("ORDER_ACK", "e1", "c1"), {}),
    (("ORDER_ACK", "e1", "c1", "V-1"), {}),
    (("FULL_FILL", "e2", "c1", "V-1", Decimal("0.002"), Decimal("50000.0"), Decimal("0.02")), {}),
    (("FULL_FILL", "e2", "c1", "V-1", Decimal("0.002"), Decimal("50000.0"), Decimal("0.02"), "r", 17, {"x": 1}), {}),
    (("EXPIRED",), {"event_id": "e3", "client_order_id": "c9", "reason": "GTD"}),
    ((), {"kind": "CANCEL_ACK", "event_id": "e4", "client_order_id": "c2", "raw": [1, 2]}),
    (("PARTIALLY_FILLED", "e5", "c3"), {"fee": Decimal("0"), "filled_size": Decimal("1"), "fill_price": Decimal("2")}),
])
def test_it_stores_what_the_python_init_stores(args, kwargs):
    ev = VenueEvent(*args, **kwargs)
    assert type(ev) is VenueEvent
    assert slots(ev) == slots(python_built(*args, **kwargs))
    for k in FIELDS:  # the very objects given, not copies
        if k in kwargs:
            assert getattr(ev, k) is kwargs[k]
    for i, a in enumerate(args):
        assert getattr(ev, FIELDS[i]) is a


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=10), st.sets(st.sampled_from(FIELDS)),
       st.lists(st.one_of(st.none(), st.text(max_size=5), st.integers()), min_size=10, max_size=10))
def test_any_call_builds_or_fails_exactly_as_the_python_init(npos, named, values):
    args = tuple(values[:npos])
    kwargs = {k: values[FIELDS.index(k)] for k in named}
    try:
        want = slots(python_built(*args, **kwargs))
    except TypeError as exc:
        with pytest.raises(TypeError) as got:
            VenueEvent(*args, **kwargs)
        assert str(got.value) == str(exc)
    else:
        assert slots(VenueEvent(*args, **kwargs)) == want


@pytest.mark.parametrize("args, kwargs, message", [
    (("ORDER_ACK",), {}, "missing 2 required positional arguments: 'event_id' and 'client_order_id'"),
    (("ORDER_ACK", "e"), {"bogus": 1, "client_order_id": "c"}, "got an unexpected keyword argument 'bogus'"),
    (("ORDER_ACK", "e", "c"), {"kind": "x"}, "got multiple values for argument 'kind'"),
    (tuple(range(11)), {}, "takes from 4 to 11 positional arguments but 12 were given"),
])
def test_bad_calls_get_pythons_own_errors(args, kwargs, message):
    with pytest.raises(TypeError, match=message):
        VenueEvent(*args, **kwargs)


def test_keywords_built_at_run_time_are_found():
    # Not interned like the keywords written in a call: they take the Python __init__.
    names = ["".join(chr(ord(c)) for c in n) for n in ("kind", "event_id", "client_order_id", "fee")]
    ev = VenueEvent(**dict(zip(names, ["ORDER_ACK", "e1", "c1", Decimal("0")])))
    assert (ev.kind, ev.event_id, ev.client_order_id, ev.fee, ev.reason) == ("ORDER_ACK", "e1", "c1", Decimal("0"), None)


def test_subclasses_run_their_own_init():
    class WithExtra(VenueEvent):
        __slots__ = ("extra",)

        def __init__(self, *args, extra=None, **kwargs):
            super().__init__(*args, **kwargs)
            self.extra = extra

    class Plain(VenueEvent):
        __slots__ = ()

    ev = WithExtra("ORDER_ACK", "e1", "c1", venue_order_id="V", extra=5)
    assert (ev.kind, ev.venue_order_id, ev.extra, ev.fee) == ("ORDER_ACK", "V", 5, None)
    p = Plain("ORDER_ACK", "e1", "c1", reason="r")
    assert type(p) is Plain and (p.reason, p.raw) == ("r", None)
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'client_order_id'"):
        Plain("ORDER_ACK", "e1")


def test_nothing_leaks():
    marker = object()
    before = sys.getrefcount(marker)
    events = [VenueEvent("ORDER_ACK", marker, marker, marker, raw=marker) for _ in range(1000)]
    assert sys.getrefcount(marker) == before + 4000
    del events
    gc.collect()
    assert sys.getrefcount(marker) == before


def _fresh(body: str, slots=("a", "b")):
    ns: dict = {}
    exec(f"class C:\n    __slots__ = {tuple(slots)!r}\n{body}", ns)
    return ns["C"]


@pytest.mark.parametrize("body, slots_, why", [
    ("    pass\n", ("a", "b"), "defines no __init__ of its own"),
    ("    def __init__(self, *a):\n        pass\n", ("a", "b"), "takes *args, **kwargs or keyword-only parameters"),
    ("    def __init__(self, a, *, b=None):\n        self.a = a; self.b = b\n", ("a", "b"), "keyword-only"),
    ("    def __init__(self, a, c=None):\n        self.a = a\n", ("a", "b"), "c is not an attribute the class declares"),
    ("    def __init__(self, a, b=None):\n        self.a = [a]; self.b = b\n", ("a", "b"), "does not store parameter a as given"),
    ("    def __init__(self, a, b=None):\n        self.a = a; self.b = 0\n", ("a", "b"), "does not store parameter b as given"),
    ("    def __init__(self, a, b=None):\n        self.a = a\n", ("a", "b"), "does not store parameter b as given"),
    ("    def __init__(self, a, b=None):\n        raise ValueError('no')\n", ("a", "b"), "failed on a probe"),
])
def test_install_refuses_an_init_that_does_more_than_store(body, slots_, why):
    cls = _fresh(body, slots_)
    with pytest.raises(TypeError, match=re.escape(why)):
        _engine.install_member_init(cls)
    assert not _engine.has_member_init(cls)


def test_a_class_changed_after_install_still_builds_correctly():
    cls = _fresh("    def __init__(self, a, b=7):\n        self.a = a; self.b = b\n")
    _engine.install_member_init(cls)
    assert _engine.has_member_init(cls)
    x = cls(1)
    assert (x.a, x.b) == (1, 7)
    cls.note = "changed"  # a new version of the class: calls go to its __init__ again
    z = cls(2)
    assert (z.a, z.b) == (2, 7)

    def init(self, a, b=8):
        self.a, self.b = -a, b
    cls.__init__ = init
    y = cls(1)
    assert (y.a, y.b) == (-1, 8)
