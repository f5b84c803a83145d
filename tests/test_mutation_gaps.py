"""Behaviour the suite left open, found by mutation testing of spec/kernel.yaml and
dita/kernel.py: each test failed on a changed spec or kernel (named in its docstring) that
the rest of the suite let pass, and passes on the real one. Public API only: dita.Kernel on the mock venue,
KernelIntent, VenueEvent, outcomes, slot views, account, trades, snapshot, reconcile."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

import dita
from dita_mock import MockVenue


# ----------------------------------------------------------------------------- helpers

def quiet(**options) -> dita.Kernel:
    """A kernel on a mock that records every request but answers none: events by hand."""
    options.setdefault("prices", {"BTC-USDT": "60000"})
    return dita.Kernel(venue=MockVenue(silent=True, **options), slots=1, capital=D("1000"))


def enter(k, intent="e1", size="0.010", side="LONG", order_type="LIMIT", limit_price="59000", ratios=(),
          asset="BTC-USDT", **kw):
    return k.process_intent(dita.KernelIntent("ENTER", 0, intent, trade_id="t1", asset=asset, side=side,
                                              target_size=size, order_type=order_type, limit_price=limit_price,
                                              exit_leg_ratios=ratios, **kw))


def exit_(k, intent, order_type="LIMIT", limit_price="61000"):
    return k.process_intent(dita.KernelIntent("EXIT", 0, intent, order_type=order_type, limit_price=limit_price))


def cancel(k, intent):
    return k.process_intent(dita.KernelIntent("CANCEL", 0, intent))


def ev(k, kind, event_id, coid, size=None, price=None, fee="0", venue_order_id="default"):
    vid = ("V-" + coid) if venue_order_id == "default" else venue_order_id
    return k.on_venue_event(dita.VenueEvent(kind, event_id, coid, vid,
                                            None if size is None else D(size),
                                            None if price is None else D(price), D(fee)))


def open_position(k, size="0.010", price="59000", ratios=()):
    """Slot 0 holds ``size`` bought at ``price`` (a LIMIT entry filled by hand)."""
    enter(k, size=size, limit_price=price, ratios=ratios)
    assert ev(k, "FULL_FILL", "1", "e1", size, price).state == "POSITION_OPEN"


def moved_exit(k):
    """Position 0.010 at 59000, one leg; exit x1 cancelled (acknowledged, nothing filled),
    exit x2 of 0.010 working."""
    open_position(k)
    assert exit_(k, "x1").state == "EXIT_WORKING"
    assert cancel(k, "c1").state == "EXIT_CANCEL_PENDING"
    assert ev(k, "CANCEL_ACK", "2", "x1").state == "POSITION_OPEN"
    assert exit_(k, "x2", limit_price="62000").state == "EXIT_WORKING"
    assert k.slot(0).active_exit_order.quantity == D("0.010")


# ----------------------------------------------------------------------------- spec: overfills

def test_exit_fill_larger_than_the_position_left_is_refused_as_overfill():
    """An exit fill within its order but beyond the position left (an earlier exit's late fill took
    part) is refused as OVERFILL and changes nothing; without `or event.filled_size > size` in
    the exit's overfill check the slot froze on a broken invariant instead."""
    k = quiet()
    moved_exit(k)
    assert ev(k, "PARTIALLY_FILLED", "3", "x1", "0.004", "61000").state == "EXIT_WORKING"  # x1 raced its cancel
    assert k.slot(0).size == D("0.006")
    before = k.snapshot()
    out = ev(k, "PARTIALLY_FILLED", "1", "x2", "0.008", "62000")   # within x2's 0.010, beyond the 0.006 held
    assert (out.accepted, out.diagnostic_code, out.state) == (False, "OVERFILL", "EXIT_WORKING")
    assert out.message == "fill of 0.008 exceeds exit order x2: 0 of 0.01 already filled, position 0.006"
    assert k.snapshot() == before


def test_late_fill_of_the_earlier_exit_larger_than_the_position_left_is_refused_as_overfill():
    """The same for a late fill of the earlier exit order (its own `or event.filled_size > size`)."""
    k = quiet()
    moved_exit(k)
    assert ev(k, "PARTIALLY_FILLED", "1", "x2", "0.007", "62000").state == "EXIT_WORKING"
    assert k.slot(0).size == D("0.003")
    before = k.snapshot()
    out = ev(k, "PARTIALLY_FILLED", "3", "x1", "0.005", "61000")  # within x1's 0.010, beyond the 0.003 held
    assert (out.accepted, out.diagnostic_code, out.state) == (False, "OVERFILL", "EXIT_WORKING")
    assert out.message == "fill of 0.005 exceeds earlier exit order x1: 0 of 0.01 already filled, position 0.003"
    assert k.snapshot() == before


def test_overfill_of_a_cancelled_unfilled_entry_is_refused_in_idle():
    """In IDLE, an overfill of the cancelled, unfilled entry is refused as OVERFILL: the slot stays
    IDLE and the capital untouched (without the overfill check there, the slot froze)."""
    k = quiet()
    enter(k)
    assert cancel(k, "c1").state == "ENTRY_CANCEL_PENDING"
    assert ev(k, "CANCEL_ACK", "1", "e1").state == "IDLE"
    before = k.snapshot()
    out = ev(k, "FULL_FILL", "2", "e1", "0.011", "59000", fee="0.1")
    assert (out.accepted, out.diagnostic_code, out.state) == (False, "OVERFILL", "IDLE")
    assert out.message == "fill of 0.011 exceeds entry order e1: 0 of 0.01 already filled"
    assert k.snapshot() == before
    assert k.account.capital == D("1000")


def test_a_fill_at_price_zero_is_refused_as_invalid_event():
    """A fill at price 0 is INVALID_EVENT: VenueEvent does not check prices, so the spec's payload
    check (`event.fill_price <= 0`) is the only guard against an entry price of 0."""
    k = quiet()
    enter(k)
    before = k.snapshot()
    out = ev(k, "PARTIALLY_FILLED", "1", "e1", "0.004", "0")
    assert (out.accepted, out.diagnostic_code, out.state) == (False, "INVALID_EVENT", "ORDER_REQUESTED")
    assert k.snapshot() == before
    assert k.slot(0).size == 0 and k.slot(0).entry_price is None


# ----------------------------------------------------------------------------- spec: records and ids

def test_a_late_entry_fill_before_any_exit_keeps_entry_vwap_null():
    """entry_vwap is written only by a late entry fill after part of the position was exited
    (guard `initial_size > size`, not `>=`); before any exit it stays null."""
    k = quiet()
    enter(k)
    assert ev(k, "PARTIALLY_FILLED", "1", "e1", "0.004", "59000").state == "ENTRY_WORKING"
    assert cancel(k, "c1").state == "ENTRY_CANCEL_PENDING"
    assert ev(k, "CANCEL_ACK", "2", "e1").state == "POSITION_OPEN"
    out = ev(k, "PARTIALLY_FILLED", "3", "e1", "0.006", "59000")   # raced the cancel
    assert (out.accepted, out.state) == (True, "POSITION_OPEN")
    s = k.slot(0)
    assert (s.size, s.initial_size, s.entry_price) == (D("0.010"), D("0.010"), D("59000"))
    assert s.entry_vwap is None
    assert k.snapshot()["slots"][0]["record"]["entry_vwap"] is None


def test_an_ack_without_a_venue_order_id_keeps_the_one_known():
    """A second ORDER_ACK without a venue order id keeps the one known (`coalesce`), and the
    cancel still carries it."""
    k = quiet()
    enter(k)
    assert ev(k, "ORDER_ACK", "1", "e1", venue_order_id="V-1").state == "ENTRY_WORKING"
    assert ev(k, "ORDER_ACK", "2", "e1", venue_order_id=None).accepted
    assert k.slot(0).active_entry_order.venue_order_id == "V-1"
    assert cancel(k, "c1").state == "ENTRY_CANCEL_PENDING"
    assert k.venue.received[-1] == {"action": "cancel", "client_order_id": "e1", "asset": "BTC-USDT",
                                    "venue_order_id": "V-1"}


def test_an_exit_rejected_after_it_filled_becomes_the_previous_exit_and_its_late_fill_settles():
    """An exit that filled before its REJECT is still the order before the next one
    (`exit_rejected` is `exit_filled == 0`), so its late fill is settled, not frozen."""
    k = quiet()
    open_position(k)
    exit_(k, "x1")
    assert ev(k, "PARTIALLY_FILLED", "2", "x1", "0.004", "61000").state == "EXIT_WORKING"
    assert ev(k, "REJECT", "3", "x1").state == "POSITION_OPEN"
    assert exit_(k, "x2", limit_price="62000").state == "EXIT_WORKING"
    assert k.slot(0).prev_exit_client_order_id == "x1"
    late = ev(k, "PARTIALLY_FILLED", "4", "x1", "0.002", "61000")
    assert (late.accepted, late.diagnostic_code, late.state) == (True, "OK", "EXIT_WORKING")
    s = k.slot(0)
    assert (s.size, s.prev_exit_filled, s.gross_pnl) == (D("0.004"), D("0.006"), D("12"))
    assert k.account.capital == D("1012")


def test_an_exit_with_the_intent_id_of_an_accepted_cancel_of_the_same_trade_is_a_duplicate():
    """An EXIT reusing the intent id of an accepted CANCEL of the same trade is DUPLICATE_EVENT and
    sends nothing (the EXIT's de-duplication key)."""
    k = dita.Kernel(venue=MockVenue(prices={"BTC-USDT": "60000"}, entry_fill_ratio="0.5"), slots=1,
                    capital=D("1000"))
    assert enter(k, order_type="MARKET", limit_price=None).state == "ENTRY_WORKING"
    assert cancel(k, "c1").state == "POSITION_OPEN"
    sent = len(k.venue.received)
    out = exit_(k, "c1", order_type="MARKET", limit_price=None)
    assert (out.accepted, out.diagnostic_code, out.state) == (False, "DUPLICATE_EVENT", "POSITION_OPEN")
    assert len(k.venue.received) == sent


# ----------------------------------------------------------------------------- spec: exit legs

def test_a_leg_that_leaves_exactly_the_minimum_open_is_not_merged():
    """0.002 in legs of 0.5 exits 0.001: a leg that leaves exactly the minimum open is not merged
    into the last (the no-dust rule is `<`, not `<=`)."""
    k = quiet()
    open_position(k, size="0.002", ratios=(D("0.5"), D("0.5")))
    assert exit_(k, "x1").state == "EXIT_WORKING"
    assert k.slot(0).active_exit_order.quantity == D("0.001")
    assert k.venue.received[-1]["quantity"] == "0.001"


def test_a_leg_that_would_leave_less_than_the_minimum_open_takes_all():
    """A leg that would leave less than the instrument's minimum open takes the whole position, so
    no remainder below the minimum is left."""
    k = quiet(prices={"XYZ-USDT": "100"},
              instruments={"XYZ-USDT": dita.Instrument(D("0.01"), D("0.001"), D("0.005"), None)})
    out = enter(k, asset="XYZ-USDT", size="0.010", limit_price="100", ratios=(D("0.6"), D("0.4")))
    assert out.accepted
    assert ev(k, "FULL_FILL", "1", "e1", "0.010", "100").state == "POSITION_OPEN"
    assert exit_(k, "x1", limit_price="101").state == "EXIT_WORKING"
    # 0.006 would leave 0.004, below the minimum 0.005: the leg takes all 0.010.
    assert k.slot(0).active_exit_order.quantity == D("0.010")


# ----------------------------------------------------------------------------- spec: enter checks

def test_an_entry_whose_value_is_exactly_the_minimum_notional_is_accepted():
    """0.001 x 5000 = 5, exactly the minimum notional, is accepted (the check is `<`, not `<=`)."""
    k = quiet()
    out = enter(k, size="0.001", limit_price="5000")
    assert (out.accepted, out.diagnostic_code, out.state) == (True, "OK", "ORDER_REQUESTED")
    assert k.venue.received[-1]["quantity"] == "0.001"


def test_the_spec_refuses_a_zero_leverage_given_to_the_engine():
    """The spec refuses a leverage of 0 given to the engine directly (KernelIntent refuses it
    earlier, so only the engine's API reaches this guard)."""
    rt = dita.Runtime(dita.load_machine(None), 1)
    payload = {"intent_id": "e1", "trade_id": "t1", "asset": "BTC-USDT", "side": "LONG",
               "requested_size": D("0.01"), "target_size": D("0.01"), "order_type": "MARKET", "limit_price": None,
               "leverage": D("0"), "exit_leg_ratios": [], "reference_price": None, "client_order_id": "e1",
               "min_size": D("0.001"), "min_notional": None, "opposing_slot": None}
    out = rt.apply(0, "ENTER", payload)
    assert (out[0], out[1]) == (False, "INVALID_INTENT")
    with pytest.raises(dita.InvalidInputError, match="leverage must be positive"):
        dita.KernelIntent("ENTER", 0, "e1", trade_id="t1", asset="BTC-USDT", side="LONG", target_size="0.01",
                          leverage="0")


def test_a_size_that_rounds_to_zero_is_below_the_minimum_even_when_the_instrument_has_none():
    """With no minimum size declared, the size step is the minimum: a size that rounds to 0 is
    BELOW_MIN_SIZE and no order of quantity 0 is sent."""
    k = quiet(prices={"XYZ-USDT": "100"}, instruments={"XYZ-USDT": dita.Instrument(D("0.01"), D("0.01"))})
    out = enter(k, asset="XYZ-USDT", size="0.005", order_type="MARKET", limit_price=None)
    assert (out.accepted, out.diagnostic_code, out.state) == (False, "BELOW_MIN_SIZE", "IDLE")
    assert out.message == "target size 0.005 rounds down to 0 on the venue's size step, below the minimum 0.01 for XYZ-USDT"
    assert k.venue.received == []


# ----------------------------------------------------------------------------- spec: PnL by side

def test_a_short_settles_its_pnl_with_the_sign_of_a_short():
    """A SHORT's PnL has a short's sign, to the last digit (only the random property test
    checked it before)."""
    k = quiet()
    enter(k, side="SHORT", limit_price="60000")
    assert ev(k, "FULL_FILL", "1", "e1", "0.010", "60000", fee="0.24").state == "POSITION_OPEN"
    exit_(k, "x1", limit_price="59000")
    out = ev(k, "FULL_FILL", "2", "x1", "0.010", "59000", fee="0.236")
    assert out.state == "TRADE_TERMINAL_WRITTEN"
    assert k.trades[-1]["gross_pnl"] == D("10")
    assert (k.account.gross_realized_pnl, k.account.fees_paid, k.account.capital) == (D("10"), D("0.476"), D("1009.524"))


# ----------------------------------------------------------------------------- spec: invariants seen by reconcile

def _position_open_record(**changes):
    k = quiet()
    open_position(k)
    snap = k.snapshot()["slots"][0]
    snap["record"].update(changes)
    return k, snap


def test_reconcile_refuses_a_position_larger_than_what_the_entry_filled():
    """reconcile refuses a slot whose size exceeds what its entry filled (invariant
    `initial_size >= size`), naming it, and changes nothing."""
    k, snap = _position_open_record(size="0.020")
    before = k.snapshot()
    with pytest.raises(dita.ReconcileError) as err:
        k.reconcile({0: snap})
    assert any("the position never exceeds what the entry filled" in v for v in err.value.violations)
    assert k.snapshot() == before


def test_reconcile_refuses_an_entry_and_an_exit_working_at_once():
    """reconcile refuses a slot with an entry and an exit working at once (invariant
    `not (entry_live and exit_live)`)."""
    k = quiet()
    enter(k)
    assert ev(k, "PARTIALLY_FILLED", "1", "e1", "0.004", "59000").state == "ENTRY_WORKING"
    snap = k.snapshot()["slots"][0]
    snap["record"].update(exit_live=True, exit_client_order_id="x9", exit_quantity="0.004")
    before = k.snapshot()
    with pytest.raises(dita.ReconcileError) as err:
        k.reconcile({0: snap})
    assert any("at most one order works at a time" in v for v in err.value.violations)
    assert k.snapshot() == before


def test_reconcile_refuses_an_exit_working_on_no_position():
    """reconcile refuses EXIT_WORKING with no position left (its invariant
    `size > 0 and exit_filled < exit_quantity`)."""
    k = quiet()
    open_position(k)
    exit_(k, "x1")
    snap = k.snapshot()["slots"][0]
    snap["record"].update(exit_filled="0.010")
    before = k.snapshot()
    with pytest.raises(dita.ReconcileError) as err:
        k.reconcile({0: snap})
    assert any("a position remains and the exit order is not complete" in v for v in err.value.violations)
    assert k.snapshot() == before


def test_reconcile_refuses_an_open_position_without_an_entry_price():
    """reconcile refuses POSITION_OPEN without an entry price (its invariant
    `entry_price != null and entry_price > 0`)."""
    k, snap = _position_open_record(entry_price=None)
    before = k.snapshot()
    with pytest.raises(dita.ReconcileError) as err:
        k.reconcile({0: snap})
    assert any("an open position has an entry price" in v for v in err.value.violations)
    assert k.snapshot() == before


# ----------------------------------------------------------------------------- kernel.py: orders rebuilt from a slot, frozen slots

class RecordingMock(MockVenue):
    """The mock, keeping every order handed to cancel()."""

    def __init__(self, **options):
        super().__init__(**options)
        self.cancelled = []

    def cancel(self, order):
        self.cancelled.append(order)
        return super().cancel(order)


def test_the_cancel_of_an_exit_the_kernel_has_no_record_of_is_a_reduce_only_sell():
    """The cancel of an exit the kernel has no record of (the slot came from reconcile) hands the
    venue the slot's exit: a reduce-only order."""
    k = dita.Kernel(venue=RecordingMock(prices={"BTC-USDT": "60000"}, silent=True), slots=1, capital=D("1000"))
    open_position(k)
    snap = k.snapshot()["slots"][0]
    snap["state"] = "EXIT_WORKING"
    snap["record"].update(exit_live=True, exit_client_order_id="x9", exit_venue_order_id="V-9", exit_quantity="0.010",
                          exit_side="SELL", exit_order_type="LIMIT", exit_limit_price="61000")
    k.reconcile({0: snap})
    assert k.order("x9") is None
    assert cancel(k, "c1").accepted
    [order] = k.venue.cancelled
    assert (order.client_order_id, order.venue_order_id, order.asset, order.side, order.position_side) == \
        ("x9", "V-9", "BTC-USDT", "SELL", "LONG")
    assert (order.order_type, order.quantity, order.limit_price, order.role) == ("LIMIT", D("0.010"), D("61000"), "EXIT")
    assert order.reduce_only is True


def test_a_second_unreadable_fill_keeps_the_reason_the_slot_was_frozen_for():
    """A second unreadable fill on a frozen slot keeps the first reason it was frozen for."""
    venue = MockVenue(prices={"BTC-USDT": "60000"}, fee_rate="0.00012345", silent=True)
    k = dita.Kernel(venue=venue, slots=1, capital=D("10000"))
    enter(k, size="0.010", limit_price="59000")
    venue.fill("e1", "0.001", "59000.123456789012345678901")   # its fee has 30 places: the engine cannot hold it
    venue.fill("e1", "0.002", "59000.123456789012345678901")
    first, second = k.poll()
    assert (first.diagnostic_code, first.state, second.diagnostic_code, second.state) == \
        ("INVALID_EVENT", "FROZEN", "INVALID_EVENT", "FROZEN")
    reason = k.slot(0).frozen_reason
    assert reason.startswith("the venue reported PARTIALLY_FILLED 'e1:2' of ")
    assert "'e1:3'" not in reason
    assert k.slot(0).size == 0 and k.account.capital == D("10000")


# ----------------------------------------------------------------------------- caught only by the random property test

def test_the_next_order_of_a_leg_sends_only_what_the_leg_has_left():
    """The next order of a partly filled, cancelled leg sends only what the leg has left (only the
    random property test checked it before)."""
    k = quiet()
    open_position(k, ratios=(D("0.5"), D("0.5")))
    exit_(k, "x1")
    assert k.slot(0).active_exit_order.quantity == D("0.005")
    assert ev(k, "PARTIALLY_FILLED", "2", "x1", "0.002", "61000").state == "EXIT_WORKING"
    assert cancel(k, "c1").state == "EXIT_CANCEL_PENDING"
    assert ev(k, "CANCEL_ACK", "3", "x1").state == "POSITION_OPEN"
    assert exit_(k, "x2").state == "EXIT_WORKING"
    assert k.slot(0).active_exit_order.quantity == D("0.003")     # 0.005 of the leg, 0.002 of it filled
    assert k.venue.received[-1]["quantity"] == "0.003"


def test_an_enter_reusing_the_intent_id_of_an_earlier_trades_order_sends_nothing():
    """An ENTER reusing the client order id of an earlier trade's order sends nothing (only the
    random property test checked it before)."""
    k = dita.Kernel(venue=MockVenue(prices={"BTC-USDT": "60000"}), slots=1, capital=D("1000"))
    assert enter(k, order_type="MARKET", limit_price=None).state == "POSITION_OPEN"
    assert exit_(k, "x1", order_type="MARKET", limit_price=None).state == "TRADE_TERMINAL_WRITTEN"
    assert k.process_intent(dita.KernelIntent("ENTER", 0, "e2", trade_id="t2", asset="BTC-USDT", side="LONG",
                                              target_size="0.010")).state == "POSITION_OPEN"
    assert exit_(k, "x2", order_type="MARKET", limit_price=None).state == "TRADE_TERMINAL_WRITTEN"
    sent = len(k.venue.received)
    # e1 is no de-duplication key of the slot's last trade (t2), but order e1 was sent for t1.
    out = k.process_intent(dita.KernelIntent("ENTER", 0, "e1", trade_id="t3", asset="BTC-USDT", side="LONG",
                                             target_size="0.010"))
    assert (out.accepted, out.diagnostic_code, out.state, out.transitions) == \
        (False, "DUPLICATE_EVENT", "TRADE_TERMINAL_WRITTEN", ())
    assert out.message == "intent 'e1' already became order 'e1'; an intent is sent once"
    assert len(k.venue.received) == sent
    assert k.slot(0).trade_id == "t2"


def test_reconcile_refuses_a_slot_naming_another_asset_than_its_working_order_was_sent_for():
    """A reconcile that moved a slot to another asset while its order still works used to be
    taken: the CANCEL then went to the new asset, the venue refused it, and the real order
    kept working. It is refused, naming the order and both assets, and changes nothing."""
    k = quiet()
    enter(k)
    snap = k.snapshot()["slots"][0]
    moved = {"state": snap["state"], "record": dict(snap["record"], asset="ETH-USDT")}
    before = k.snapshot()
    with pytest.raises(dita.ReconcileError, match=r"slot 0: order e1 works on BTC-USDT, where it was sent, but "
                                                  r"the slot names asset 'ETH-USDT'"):
        k.reconcile({0: moved})
    assert k.snapshot() == before
    out = cancel(k, "c1")
    assert out.accepted and k.venue.received[-1]["action"] == "cancel"
    assert k.venue.received[-1]["asset"] == "BTC-USDT"
