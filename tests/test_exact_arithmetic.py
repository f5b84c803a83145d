"""Exactness: the engine never rounds a sum, difference or product quietly. Either the result
is exactly what unbounded decimal arithmetic gives, or the event is refused with the
spec's evaluation-error diagnostic and nothing changes. Only an expression that divides or
rounds may round."""

from __future__ import annotations

import decimal
from decimal import Decimal

import pytest
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


def test_after_a_reconcile_changed_the_size_the_closing_fill_settles_against_the_average_price():
    """The fills no longer flatten the trade (a reconcile took 0.001 off the position), so
    what they came to is not the trade's PnL: the closing fill settles as the others do."""
    from conftest import exit_
    from dita_mock import MockVenue
    k = dita.Kernel(venue=MockVenue(prices={"BTC-USDT": "60000"}, silent=True), capital=Decimal("1000"))
    k.process_intent(dita.KernelIntent("ENTER", 0, "e1", trade_id="t1", asset="BTC-USDT", side="LONG",
                                       target_size="0.003", order_type="LIMIT", limit_price="60000.2"))
    coid = k.slot(0).entry_client_order_id
    for i, price in enumerate(["60000.1", "60000.2", "60000.2"]):
        k.on_venue_event(dita.VenueEvent("PARTIALLY_FILLED", f"e{i}", coid, "V1", Decimal("0.001"), Decimal(price)))
    snap = k.snapshot()["slots"][0]
    snap["record"].update(size="0.002", initial_size="0.002")   # the venue holds 0.002
    k.reconcile({0: snap})
    exit_(k)
    out = k.on_venue_event(dita.VenueEvent("FULL_FILL", "x", k.slot(0).exit_client_order_id, "V2",
                                           Decimal("0.002"), Decimal("60000.3")))
    assert out.state == "TRADE_TERMINAL_WRITTEN"
    average = (Decimal("60000.1") + 2 * Decimal("60000.2")) / 3
    want = ((Decimal("60000.3") - average) * Decimal("0.002")).quantize(Decimal("1E-12"))
    assert k.trades[-1]["gross_pnl"] == k.account.gross_realized_pnl == want


@pytest.mark.parametrize("size", ["0.003", "0.037"])
def test_a_fill_price_that_is_a_repeating_decimal_is_applied_and_the_trade_closes(size):
    """A venue that reports several fills together gives their average price, which can
    repeat (179.14 / 0.003): 28 digits. Every fill of the trade must still apply; the close
    was refused (its exact settlement outgrew a decimal) and the exchange's fill was lost."""
    from conftest import assert_account_identity, exit_
    from dita_mock import MockVenue
    k = dita.Kernel(venue=MockVenue(prices={"BTC-USDT": "60000"}, silent=True), capital=Decimal("100000"))
    k.process_intent(dita.KernelIntent("ENTER", 0, "e1", trade_id="t1", asset="BTC-USDT", side="SHORT",
                                       target_size=size, order_type="LIMIT", limit_price="59700"))
    price = Decimal("179.14") / Decimal("0.003")
    assert len(price.as_tuple().digits) == 28
    out = k.on_venue_event(dita.VenueEvent("FULL_FILL", "f", k.slot(0).entry_client_order_id, "V1", Decimal(size), price,
                                           Decimal("0.0537")))
    assert (out.accepted, out.state) == (True, "POSITION_OPEN"), out.message
    exit_(k)
    half = Decimal(size) / 2
    for i, px in enumerate(["59706.0", "59708.0"]):
        out = k.on_venue_event(dita.VenueEvent("PARTIALLY_FILLED", f"x{i}", k.slot(0).exit_client_order_id, "V2", half,
                                               Decimal(px), Decimal("0.0448")))
        assert out.accepted, out.message
    assert out.state == "TRADE_TERMINAL_WRITTEN"
    assert_account_identity(k)
