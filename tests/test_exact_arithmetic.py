"""Exactness: the engine never rounds a sum, difference or product quietly. Either the result
is exactly what unbounded decimal arithmetic gives, or the event is refused with the
spec's evaluation-error diagnostic and nothing changes. Only an expression that divides or
rounds may round."""

from __future__ import annotations

import decimal
from decimal import Decimal

from hypothesis import example, given, settings
from hypothesis import strategies as st

import dita
from dita.spec import compile_text

CALCULATOR = """
version: 1
machine: calculator
description: Adds, subtracts and multiplies two numbers; averages them as a rounding expression may.
record:
  total: {type: decimal, default: "0"}
  difference: {type: decimal, default: "0"}
  product: {type: decimal, default: "0"}
  mean: {type: decimal, default: "0"}
events:
  APPLY:
    fields:
      a: {type: decimal}
      b: {type: decimal}
diagnostics:
  ok: OK
  duplicate: DUPLICATE
  invariant_violation: BROKEN
  no_candidate: NO_CANDIDATE
  unhandled: UNHANDLED
  evaluation_error: CANNOT_EVALUATE
  codes: {OK: done, DUPLICATE: seen, BROKEN: broken, NO_CANDIDATE: none, UNHANDLED: unhandled, CANNOT_EVALUATE: cannot}
states:
  READY:
    initial: true
    on:
      APPLY:
        - target: READY
          assign:
            total: "event.a + event.b"
            difference: "event.a - event.b"
            product: "event.a * event.b"
            mean: "(event.a + event.b) / 2"
"""

MACHINE = compile_text(CALCULATOR, "calculator.yaml")
WIDE = decimal.Context(prec=200)


def decimals():
    """Numbers the engine can hold: up to 96 bits of digits, up to 28 places."""
    return st.builds(lambda m, places, neg: Decimal((1 if neg else 0, tuple(map(int, str(m))), -places)),
                     st.integers(0, 2**96 - 1) | st.integers(0, 10**6), st.integers(0, 28), st.booleans())


@settings(max_examples=400, deadline=None)
@given(decimals(), decimals())
@example(Decimal("0E-26"), Decimal("1701411834605"))  # exact only without the zero's places
@example(Decimal("1000"), Decimal("1.5E-27"))  # needs 31 digits
@example(Decimal("1.000000000000000000000000001"), Decimal("1.000000000000000000000000001"))  # product: 54 places
@example(Decimal("0.0000000000000020"), Decimal("0.000000000000000050"))  # product: zeros beyond 28 places
def test_sums_differences_and_products_are_exact_or_refused(a, b):
    rt = dita.Runtime(MACHINE, 1)
    before = rt.record(0)
    accepted, code, state, _t, _fx, message = rt.apply(0, "APPLY", {"a": a, "b": b})
    exact = {"total": WIDE.add(a, b), "difference": WIDE.subtract(a, b), "product": WIDE.multiply(a, b)}
    if accepted:
        got = rt.record(0)
        for field, want in exact.items():
            assert got[field] == want, (field, a, b, got[field], want)
    else:
        assert code == "CANNOT_EVALUATE", message
        assert "cannot be held exactly" in message or "overflow" in message, message
        assert rt.record(0) == before
        # Refused only when some result really does not fit in 96 bits at 28 places or fewer.
        def fits(x):
            x = x.normalize(WIDE)
            places = max(0, -x.as_tuple().exponent)
            return places <= 28 and abs(x.scaleb(places, WIDE)) < 2**96
        assert not all(fits(v) for v in exact.values()), (a, b, message)


def test_a_sum_that_only_fits_rounded_is_refused_but_an_average_may_round():
    rt = dita.Runtime(MACHINE, 1)
    out = rt.apply(0, "APPLY", {"a": Decimal("1000"), "b": Decimal("1.5E-27")})
    assert out[:3] == (False, "CANNOT_EVALUATE", "READY")
    assert "1000 + 0.0000000000000000000000000015 cannot be held exactly" in out[5]
    out = rt.apply(0, "APPLY", {"a": Decimal("1"), "b": Decimal("2")})
    assert out[0] and rt.record(0)["mean"] == Decimal("1.5")
    assert rt.apply(0, "APPLY", {"a": Decimal("1"), "b": Decimal("1E-27")})[0]
    assert rt.record(0)["mean"] == Decimal("0.5000000000000000000000000005")
