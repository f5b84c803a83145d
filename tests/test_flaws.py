"""One test per flaw of the old kernel DITAv2 (see FLAWS.md): each fails on the old behaviour.

Mock-venue defaults (dita_mock): BTC-USDT tick 0.1, size step 0.001; ETH-USDT tick 0.01,
size step 0.01; TRX-USDT tick 0.000001, size step 1. A mock fee is qty * price * fee_rate.
"""

from __future__ import annotations

import copy
from decimal import Decimal as D

import pytest

import dita
from conftest import assert_account_identity, cancel, enter, exit_, make_kernel
from dita_mock import MockVenue

ENTRY_FILLED = (("IDLE", "ENTER", "ORDER_REQUESTED"), ("ORDER_REQUESTED", "ORDER_ACK", "ENTRY_WORKING"),
                ("ENTRY_WORKING", "FULL_FILL", "POSITION_OPEN"))
ENTRY_RESTING = (("IDLE", "ENTER", "ORDER_REQUESTED"), ("ORDER_REQUESTED", "ORDER_ACK", "ENTRY_WORKING"))


class DeferredCancelVenue(MockVenue):
    """A mock whose cancel answers arrive later, through poll(), as on a real exchange."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.later = []

    def cancel(self, order):
        self.later += super().cancel(order)
        return []

    def poll(self):
        out, self.later = super().poll() + self.later, []
        return out


def test_flaw01_entry_cancel_reaches_the_venue_and_resets_the_slot():
    """DITAv2 never called the venue for an entry cancel (NO_ACTIVE_EXIT_ORDER): the order stayed live."""
    k = make_kernel()
    assert enter(k, order_type="LIMIT", limit_price="59000").state == "ENTRY_WORKING"

    out = cancel(k)

    assert (out.accepted, out.diagnostic_code, out.state) == (True, "OK", "IDLE")
    assert out.transitions == (("ENTRY_WORKING", "CANCEL", "ENTRY_CANCEL_PENDING"),
                               ("ENTRY_CANCEL_PENDING", "CANCEL_ACK", "IDLE"))
    assert k.venue.received[-1] == {"action": "cancel", "client_order_id": "e1", "asset": "BTC-USDT",
                                    "venue_order_id": "M1"}
    assert k.venue.orders["e1"].status == "CANCELED"          # nothing left live on the exchange
    s = k.slot(0)
    assert (s.fsm_state, s.size, s.initial_size) == ("IDLE", D("0"), D("0"))
    assert s.active_entry_order is None and s.active_exit_order is None
    assert k.account.capital == D("1000")

    again = enter(k, intent="e2", trade="t2")
    assert (again.accepted, again.diagnostic_code, again.state) == (True, "OK", "POSITION_OPEN")
    assert again.transitions == ENTRY_FILLED
    assert k.slot(0).size == D("0.010")


def test_flaw02_cancel_ack_of_entry_returns_slot_to_idle():
    """DITAv2's CANCEL_ACK handled only exit orders: a cancelled entry left the slot stuck in ENTRY_WORKING."""
    k = dita.Kernel(venue=DeferredCancelVenue(prices={"BTC-USDT": "60000"}), slots=2, capital=D("1000"))
    enter(k, order_type="LIMIT", limit_price="59000")

    out = cancel(k)   # the venue answers later
    assert (out.accepted, out.state, out.transitions) == (True, "ENTRY_CANCEL_PENDING",
                                                          (("ENTRY_WORKING", "CANCEL", "ENTRY_CANCEL_PENDING"),))
    busy = enter(k, intent="e2", trade="t2")
    assert (busy.accepted, busy.diagnostic_code, busy.state) == (False, "SLOT_BUSY", "ENTRY_CANCEL_PENDING")

    (ack,) = k.poll()
    assert (ack.accepted, ack.diagnostic_code, ack.state) == (True, "OK", "IDLE")
    assert ack.transitions == (("ENTRY_CANCEL_PENDING", "CANCEL_ACK", "IDLE"),)
    s = k.slot(0)
    assert (s.fsm_state, s.size, s.active_entry_order, s.active_exit_order) == ("IDLE", D("0"), None, None)
    again = enter(k, intent="e3", trade="t3")
    assert (again.accepted, again.state, k.slot(0).size) == (True, "POSITION_OPEN", D("0.010"))

    # An entry cancelled after part of it filled keeps exactly the filled size.
    enter(k, slot=1, intent="e4", trade="t4", order_type="LIMIT", limit_price="59000")
    k.venue.fill("e4", "0.004")
    k.poll()
    cancel(k, slot=1, intent="c2")
    (ack,) = k.poll()
    assert ack.transitions == (("ENTRY_CANCEL_PENDING", "CANCEL_ACK", "POSITION_OPEN"),)
    s = k.slot(1)
    assert (s.fsm_state, s.size, s.initial_size, s.entry_price) == ("POSITION_OPEN", D("0.004"), D("0.004"), D("59000"))
    assert s.active_entry_order is None and s.active_exit_order is None


def test_flaw03_outcome_state_and_diagnostic_are_from_the_same_moment():
    """DITAv2 returned a post-venue state with a pre-venue diagnostic and pre-venue transitions."""
    k = make_kernel(slots=2)

    out = enter(k)
    assert (out.accepted, out.diagnostic_code, out.state) == (True, "OK", "POSITION_OPEN")
    assert out.state == k.slot(0).fsm_state == out.transitions[-1][2]
    assert out.transitions == ENTRY_FILLED
    assert [(e.kind, e.client_order_id, e.filled_size) for e in out.emitted_events] == [
        ("ORDER_ACK", "e1", None), ("FULL_FILL", "e1", D("0.010"))]
    assert out.refused_events == ()

    # The venue rejects: the intent was accepted, and the outcome's state is where the reject left the slot.
    k.venue.script_reject("insufficient margin")
    out = enter(k, slot=1, intent="e2", trade="t2")
    assert (out.accepted, out.diagnostic_code, out.state) == (True, "OK", "IDLE")
    assert out.state == k.slot(1).fsm_state
    assert out.transitions == (("IDLE", "ENTER", "ORDER_REQUESTED"), ("ORDER_REQUESTED", "REJECT", "IDLE"))
    assert [(e.kind, e.reason) for e in out.emitted_events] == [("REJECT", "insufficient margin")]
    assert k.slot(1).size == D("0") and k.slot(1).active_entry_order is None


def test_flaw04_multi_leg_exit_closes_and_settles_once():
    """DITAv2 set CLOSED in two places on the last leg, leaving the slot's orders inconsistent."""
    k = make_kernel(fee_rate="0.0004")
    enter(k, size="0.011", ratios=("0.5", "0.5"))           # fee 0.011*60000*0.0004 = 0.264
    k.venue.set_price("BTC-USDT", "61000")
    leg1 = exit_(k)                                           # floor(0.0055) = 0.005; +5 - 0.122
    assert leg1.state == "POSITION_OPEN"
    assert (k.slot(0).size, k.slot(0).active_leg_index, k.slot(0).closed) == (D("0.006"), 1, False)
    k.venue.set_price("BTC-USDT", "62000")

    last = exit_(k, intent="x2")                              # the rest, 0.006: +12 - 0.1488

    assert last.transitions == (("POSITION_OPEN", "EXIT", "EXIT_WORKING"), ("EXIT_WORKING", "ORDER_ACK", "EXIT_WORKING"),
                                ("EXIT_WORKING", "FULL_FILL", "CLOSED"),
                                ("CLOSED", "TERMINAL_WRITTEN", "TRADE_TERMINAL_WRITTEN"))
    assert [r["quantity"] for r in k.venue.received if r["reduce_only"]] == ["0.005", "0.006"]
    s = k.slot(0)
    assert (s.fsm_state, s.closed, s.size, s.active_leg_index) == ("TRADE_TERMINAL_WRITTEN", True, D("0"), 2)
    assert s.active_entry_order is None and s.active_exit_order is None
    assert k.trades == [{"trade_id": "t1", "asset": "BTC-USDT", "side": "LONG", "initial_size": D("0.011"),
                         "entry_price": D("60000"), "gross_pnl": D("17"), "fees_paid": D("0.5348"),
                         "realized_pnl": D("16.4652"), "slot_id": 0}]
    assert (k.account.capital, k.account.realized_pnl, k.account.fees_paid) == (D("1016.4652"), D("16.4652"), D("0.5348"))

    # The final fill again, or another fill of the closed leg: nothing settles a second time.
    final_fill = k.venue.orders["x2"].events[-1]
    dup = k.on_venue_event(final_fill)
    assert (dup.accepted, dup.diagnostic_code) == (False, "DUPLICATE_EVENT")
    extra = k.on_venue_event(dita.VenueEvent("FULL_FILL", "x2:late", "x2", "M3", D("0.006"), D("62000"), D("0")))
    assert (extra.accepted, extra.diagnostic_code, extra.state) == (False, "OVERFILL", "TRADE_TERMINAL_WRITTEN")
    assert len(k.trades) == 1 and k.account.capital == D("1016.4652")
    assert_account_identity(k)


def test_flaw05_partial_exit_fill_settles_capital_at_once():
    """DITAv2 settled PnL only at CLOSED: capital was stale while a LIMIT exit filled piece by piece."""
    k = make_kernel(fee_rate="0.0004")
    enter(k)                                                  # fee 0.010*60000*0.0004 = 0.24
    assert k.account.capital == D("999.76")
    assert exit_(k, order_type="LIMIT", limit_price="61000").state == "EXIT_WORKING"
    assert k.account.capital == D("999.76")

    k.venue.fill("x1", "0.004")
    (out,) = k.poll()

    assert out.transitions == (("EXIT_WORKING", "PARTIALLY_FILLED", "EXIT_WORKING"),)
    s = k.slot(0)
    assert (s.fsm_state, s.size, s.active_exit_order.filled_size) == ("EXIT_WORKING", D("0.006"), D("0.004"))
    # (61000 - 60000) * 0.004 - 0.004*61000*0.0004 = 4 - 0.0976, before the order completes
    assert k.account.capital == D("999.76") + D("4") - D("0.0976") == D("1003.6624")
    assert (k.account.realized_pnl, k.account.gross_realized_pnl, k.account.fees_paid) == (
        D("3.6624"), D("4"), D("0.3376"))
    assert s.realized_pnl == D("3.6624")
    assert_account_identity(k)

    k.venue.fill("x1", "0.006")
    (out,) = k.poll()
    assert out.state == "TRADE_TERMINAL_WRITTEN"
    assert k.account.capital == D("1003.6624") + D("6") - D("0.1464") == D("1009.516")
    assert_account_identity(k)


def test_flaw06_venue_receives_order_type_and_limit_price():
    """DITAv2's legacy intent dropped order_type and limit_price: every LIMIT order reached the venue as MARKET."""
    k = make_kernel()
    out = k.process_intent(dita.KernelIntent(
        "ENTER", 0, "e1", trade_id="t1", asset="BTC-USDT", side="LONG", target_size="0.010", order_type="LIMIT",
        limit_price="59000.5", leverage="5", reference_price="60000"))
    assert out.state == "ENTRY_WORKING"                       # rests below the market, as a LIMIT must
    (sent,) = k.venue.received
    assert D(sent.pop("quantity")) == D("0.010")
    assert sent == {"action": "submit", "client_order_id": "e1", "asset": "BTC-USDT", "side": "BUY",
                    "position_side": "LONG", "type": "LIMIT", "price": "59000.5", "reduce_only": False, "leverage": "5"}
    k.venue.set_price("BTC-USDT", "59000")
    k.poll()
    assert (k.slot(0).fsm_state, k.slot(0).entry_price) == ("POSITION_OPEN", D("59000.5"))

    out = exit_(k, order_type="LIMIT", limit_price="61000")
    assert out.state == "EXIT_WORKING"
    sent = dict(k.venue.received[-1])
    assert D(sent.pop("quantity")) == D("0.010")
    assert sent == {"action": "submit", "client_order_id": "x1", "asset": "BTC-USDT", "side": "SELL",
                    "position_side": "LONG", "type": "LIMIT", "price": "61000", "reduce_only": True, "leverage": "5"}
    x = k.slot(0).active_exit_order
    assert (x.order_type, x.limit_price, x.side, x.quantity) == ("LIMIT", D("61000"), "SELL", D("0.010"))


def test_flaw07_mock_venue_fills_entry_and_exit_by_separate_ratios():
    """DITAv2's mock had one partial_fill_ratio for entries and exits alike."""
    k = make_kernel(entry_fill_ratio="1", exit_fill_ratio="0.5")
    out = enter(k)
    assert (out.state, out.transitions) == ("POSITION_OPEN", ENTRY_FILLED)
    assert k.slot(0).size == D("0.010")

    out = exit_(k)
    assert out.state == "EXIT_WORKING"
    assert out.transitions[-1] == ("EXIT_WORKING", "PARTIALLY_FILLED", "EXIT_WORKING")
    assert [(e.kind, e.filled_size) for e in out.emitted_events] == [("ORDER_ACK", None),
                                                                     ("PARTIALLY_FILLED", D("0.005"))]
    s = k.slot(0)
    assert (s.size, s.active_exit_order.quantity, s.active_exit_order.filled_size) == (D("0.005"), D("0.010"), D("0.005"))

    # And the other way round: the entry fills half, an exit fills whole.
    k2 = make_kernel(entry_fill_ratio="0.5", exit_fill_ratio="1")
    out = enter(k2)
    assert (out.state, k2.slot(0).size, k2.slot(0).active_entry_order.filled_size) == (
        "ENTRY_WORKING", D("0.005"), D("0.005"))
    cancel(k2)
    assert (k2.slot(0).fsm_state, k2.slot(0).size) == ("POSITION_OPEN", D("0.005"))
    assert exit_(k2).state == "TRADE_TERMINAL_WRITTEN"


def test_flaw08_prices_are_quantized_by_the_venue_and_recorded_as_sent():
    """DITAv2 had no price formatter: a price finer than the tick reached the exchange and was rejected."""
    k = make_kernel(slots=3, prices={"BTC-USDT": "60000", "TRX-USDT": "0.085"})
    enter(k, 0, "e1", "t1", size="0.0109", order_type="LIMIT", limit_price="59000.57")        # BUY rounds down
    enter(k, 1, "e2", "t2", side="SHORT", order_type="LIMIT", limit_price="61000.53")          # SELL rounds up
    enter(k, 2, "e3", "t3", size="100", asset="TRX-USDT", order_type="LIMIT", limit_price="0.0834567")

    sent = {r["client_order_id"]: r for r in k.venue.received}
    assert (sent["e1"]["price"], D(sent["e1"]["quantity"])) == ("59000.5", D("0.010"))
    assert (sent["e2"]["side"], sent["e2"]["price"]) == ("SELL", "61000.6")
    assert sent["e3"]["price"] == "0.083456"
    for slot, coid in ((0, "e1"), (1, "e2"), (2, "e3")):
        o = k.slot(slot).active_entry_order
        assert o.limit_price == D(sent[coid]["price"])
        assert o.quantity == D(sent[coid]["quantity"])
        assert k.order(coid).limit_price == D(sent[coid]["price"])
    assert k.slot(0).active_entry_order.quantity == D("0.010")

    k.venue.set_price("BTC-USDT", "59000")
    k.poll()
    assert (k.slot(0).fsm_state, k.slot(0).entry_price) == ("POSITION_OPEN", D("59000.5"))
    exit_(k, 0, "x1", order_type="LIMIT", limit_price="61000.51")                                # SELL rounds up
    assert k.venue.received[-1]["price"] == "61000.6"
    assert k.slot(0).active_exit_order.limit_price == D("61000.6")


def test_flaw09_cancel_is_routed_by_the_slots_asset_not_the_trade_id():
    """DITAv2 fell back to the trade id as the symbol, so the cancel went to a wrong or bogus instrument."""
    k = make_kernel()
    enter(k, trade="BTC-USDT", asset="ETH-USDT", size="0.10", order_type="LIMIT", limit_price="2900")

    out = cancel(k)
    assert out.transitions[-1] == ("ENTRY_CANCEL_PENDING", "CANCEL_ACK", "IDLE")   # the mock refuses a wrong asset
    assert k.venue.received[-1] == {"action": "cancel", "client_order_id": "e1", "asset": "ETH-USDT",
                                    "venue_order_id": "M1"}
    assert k.venue.orders["e1"].status == "CANCELED"

    enter(k, intent="e2", trade="BTCUSDT", asset="ETH-USDT", size="0.10")
    exit_(k, order_type="LIMIT", limit_price="3100")
    out = cancel(k, intent="c2")
    assert (out.state, out.transitions[-1]) == ("POSITION_OPEN", ("EXIT_CANCEL_PENDING", "CANCEL_ACK", "POSITION_OPEN"))
    assert k.venue.received[-1] == {"action": "cancel", "client_order_id": "x1", "asset": "ETH-USDT",
                                    "venue_order_id": "M3"}
    assert [r["asset"] for r in k.venue.received if r["action"] == "cancel"] == ["ETH-USDT", "ETH-USDT"]
    assert (k.slot(0).size, k.slot(0).asset) == (D("0.10"), "ETH-USDT")


def test_flaw10_dedup_never_forgets_an_event_of_a_live_trade():
    """DITAv2 kept only the last 64 event ids: the 1st fill replayed after the 65th was applied again."""
    k = make_kernel(fee_rate="0.0004")
    enter(k, size="1.000", order_type="LIMIT", limit_price="59000")
    for i in range(200):
        k.venue.fill("e1", "0.001")
        (out,) = k.poll()
        ev = k.venue.orders["e1"].events[-1]
        assert (out.accepted, out.emitted_events) == (True, (ev,)), f"fill {i + 1}"
        assert (ev.kind, ev.filled_size) == ("PARTIALLY_FILLED", D("0.001")), f"the venue's fill {i + 1} was {ev!r}"
    s = k.slot(0)
    assert (s.fsm_state, s.size, s.active_entry_order.filled_size) == ("ENTRY_WORKING", D("0.200"), D("0.200"))
    assert k.account.capital == D("1000") - 200 * D("0.0236") == D("995.28")   # 0.001*59000*0.0004 per fill
    before = k.snapshot()

    first_fill = k.venue.orders["e1"].events[1]
    assert first_fill.event_id == "e1:2"
    out = k.on_venue_event(first_fill)

    assert (out.accepted, out.diagnostic_code, out.state, out.transitions) == (False, "DUPLICATE_EVENT", "ENTRY_WORKING", ())
    assert (k.slot(0).size, k.account.capital) == (D("0.200"), D("995.28"))
    assert k.snapshot() == before


def test_flaw11_reconcile_validates_every_slot_all_or_nothing():
    """DITAv2's reconcile overwrote slots blindly: POSITION_OPEN with size 0, CLOSED not closed, ... were accepted."""
    k = make_kernel(slots=3)
    enter(k, slot=0)
    enter(k, slot=2, intent="e2", trade="t2")
    exit_(k, slot=2)
    before = k.snapshot()
    bad = copy.deepcopy(before["slots"])
    assert [s["state"] for s in bad] == ["POSITION_OPEN", "IDLE", "TRADE_TERMINAL_WRITTEN"]
    bad[0]["record"]["size"] = "0"                            # an open position of nothing
    bad[1]["record"]["size"] = "5"                            # an idle slot holding a position
    bad[2]["state"] = "CLOSED"
    bad[2]["record"]["closed"] = False                        # CLOSED but not closed

    with pytest.raises(dita.ReconcileError) as info:
        k.reconcile({0: bad[0], 1: bad[1], 2: bad[2]})

    v = info.value.violations
    assert any(x.startswith("slot 0 (POSITION_OPEN)") and "size > 0" in x for x in v), v
    assert any(x.startswith("slot 1 (IDLE)") and "size == 0" in x for x in v), v
    assert any(x.startswith("slot 2 (CLOSED)") and "closed" in x for x in v), v
    assert all(x.startswith(("slot 0 ", "slot 1 ", "slot 2 ")) for x in v), v
    assert k.snapshot() == before
    assert (k.slot(0).fsm_state, k.slot(0).size, k.slot(1).size) == ("POSITION_OPEN", D("0.010"), D("0"))


def test_flaw11_reconcile_refuses_a_working_slot_of_no_trade_and_cleared_dedup_keys():
    """The flaw's other examples: ENTRY_WORKING for no trade (its order could never be
    cancelled: the cancel needs the asset), de-dup keys cleared under a live trade (its fills
    would apply twice), and, beyond them, a side the exit could not invert, legs that do
    not add up, and one order claimed by two slots."""
    k = make_kernel(slots=2, entry_fill_ratio="0")
    assert enter(k, order_type="LIMIT", limit_price="59000").state == "ENTRY_WORKING"
    k.venue.fill("e1", "0.004", "59000")
    assert [o.diagnostic_code for o in k.poll()] == ["OK"]
    before = k.snapshot()
    live = before["slots"][0]
    assert live["seen"]
    cases = [
        ({"trade_id": ""}, "the trade is known"),
        ({"asset": None}, "the trade is known"),
        ({"side": "long"}, "the trade is known"),
        ({"exit_leg_ratios": ["0.5", "0.2"]}, "exit leg ratios are positive and sum to 1"),
        ({"exit_leg_ratios": ["1.5", "-0.5"]}, "exit leg ratios are positive and sum to 1"),
        ({"active_leg_index": -3}, "the active exit leg is one of the trade's legs"),
    ]
    for change, message in cases:
        bad = copy.deepcopy(live)
        bad["record"].update(change)
        with pytest.raises(dita.ReconcileError) as info:
            k.reconcile({0: bad})
        assert any(message in v for v in info.value.violations), (change, info.value.violations)
    cleared = dict(copy.deepcopy(live), seen=[])
    with pytest.raises(dita.ReconcileError, match="keeps trade t1 but drops 3 of its de-duplication keys"):
        k.reconcile({0: cleared})
    renamed = dict(copy.deepcopy(live), seen=[])   # the same working order under another trade id
    renamed["record"]["trade_id"] = "t1-renamed"
    with pytest.raises(dita.ReconcileError, match="keeps order e1 but drops 2 of its de-duplication keys"):
        k.reconcile({0: renamed})
    twice = copy.deepcopy(live)   # slot 1 claims slot 0's working order
    with pytest.raises(dita.ReconcileError, match="order 'e1' belongs to slots 0, 1"):
        k.reconcile({1: twice})
    assert k.snapshot() == before
    # The fill the keys stand for is still a duplicate; the slot's own keys are kept when
    # a reconcile leaves them out.
    again = k.venue.orders["e1"].events[-1]
    assert k.on_venue_event(again).diagnostic_code == "DUPLICATE_EVENT"
    k.reconcile({0: {"state": live["state"], "record": live["record"]}})
    assert k.on_venue_event(again).diagnostic_code == "DUPLICATE_EVENT" and k.slot(0).size == D("0.004")


def test_restore_refuses_a_snapshot_missing_account_figures_or_naming_other_slots():
    k = make_kernel(capital="1000")
    enter(k)
    snap = k.snapshot()
    for account, missing in (({}, "capital, fees_paid, gross_realized_pnl, realized_pnl, starting_capital"),
                             (None, "capital, fees_paid"),
                             ({k: v for k, v in snap["account"].items() if k != "fees_paid"}, "fees_paid")):
        with pytest.raises(dita.ReconcileError, match=f"the snapshot's account lacks {missing}"):
            dita.Kernel.restore({**snap, "account": account}, venue="mock")
    stray = copy.deepcopy(snap)
    stray["orders"]["e1"]["slot_id"] = 7
    with pytest.raises(dita.ReconcileError, match="order 'e1' belongs to slot 7, which this kernel does not have"):
        dita.Kernel.restore(stray, venue="mock")
    assert dita.Kernel.restore(snap, venue="mock").account.capital == k.account.capital


def test_an_event_with_an_empty_event_id_is_refused_so_the_next_one_is_not_a_duplicate():
    k = make_kernel(entry_fill_ratio="0")
    enter(k, order_type="LIMIT", limit_price="59000")
    before = k.snapshot()
    for kind, fill in (("PARTIALLY_FILLED", ("0.004", "59000")), ("ORDER_ACK", (None, None))):
        out = k.on_venue_event(dita.VenueEvent(kind, "", "e1", "M1", *fill))
        assert (out.accepted, out.diagnostic_code) == (False, "INVALID_EVENT")
        assert "an event needs a non-empty event_id" in out.message
    assert k.snapshot() == before
    assert k.on_venue_event(dita.VenueEvent("PARTIALLY_FILLED", "f1", "e1", "M1", "0.004", "59000")).accepted
    assert k.slot(0).size == D("0.004")


def test_flaw12_outcome_lists_every_transition_of_the_call():
    """DITAv2's outcome.transitions held only the pre-venue transition, not those of the venue's answers."""
    k = make_kernel()
    enter(k)
    assert exit_(k, order_type="LIMIT", limit_price="61000").state == "EXIT_WORKING"
    k.venue.script_fill_before_cancel()                       # the exit fills before the cancel lands

    out = cancel(k)

    assert (out.accepted, out.diagnostic_code, out.state) == (True, "OK", "TRADE_TERMINAL_WRITTEN")
    assert out.transitions == (("EXIT_WORKING", "CANCEL", "EXIT_CANCEL_PENDING"),
                               ("EXIT_CANCEL_PENDING", "FULL_FILL", "CLOSED"),
                               ("CLOSED", "TERMINAL_WRITTEN", "TRADE_TERMINAL_WRITTEN"))
    assert [(e.kind, e.filled_size) for e in out.emitted_events] == [("FULL_FILL", D("0.010")), ("CANCEL_REJECT", None)]
    assert [(e.kind, code) for e, code, _ in out.refused_events] == [("CANCEL_REJECT", "STALE_EVENT")]
    assert k.account.capital == D("1010")                     # the fill that won the race settled


def test_flaw13_partial_exit_pnl_is_never_lost_on_reentry():
    """DITAv2 zeroed the slot's realized PnL on ENTER, losing whatever a partial exit had not yet settled."""
    k = make_kernel(fee_rate="0.0004")
    enter(k)                                                  # fee 0.24
    exit_(k, order_type="LIMIT", limit_price="61000")
    k.venue.fill("x1", "0.004")                               # +4 - 0.0976
    k.poll()
    cancel(k)
    assert (k.slot(0).fsm_state, k.slot(0).size) == ("POSITION_OPEN", D("0.006"))
    assert k.account.realized_pnl == k.slot(0).realized_pnl == D("3.6624")
    busy = enter(k, intent="e2", trade="t2")                  # an open position is never re-entered over
    assert (busy.accepted, busy.diagnostic_code) == (False, "SLOT_BUSY")
    assert k.account.realized_pnl == D("3.6624")

    k.venue.set_price("BTC-USDT", "59000")
    assert exit_(k, intent="x2").state == "TRADE_TERMINAL_WRITTEN"   # -6 - 0.1416
    assert k.trades[0]["realized_pnl"] == D("-2.4792")

    out = enter(k, intent="e3", trade="t2")                   # re-enters the slot; fee 0.236
    assert (out.accepted, out.state) == (True, "POSITION_OPEN")
    assert k.slot(0).realized_pnl == D("-0.236")
    assert k.account.realized_pnl == k.trades[0]["realized_pnl"] + k.slot(0).realized_pnl == D("-2.7152")

    exit_(k, intent="x3", order_type="LIMIT", limit_price="59500")
    k.venue.fill("x3", "0.005")                               # +2.5 - 0.119
    k.poll()
    cancel(k, intent="c2")
    k.venue.set_price("BTC-USDT", "59500")
    assert exit_(k, intent="x4").state == "TRADE_TERMINAL_WRITTEN"   # +2.5 - 0.119

    assert [t["realized_pnl"] for t in k.trades] == [D("-2.4792"), D("4.526")]
    assert sum(t["realized_pnl"] for t in k.trades) == k.account.realized_pnl == D("2.0468")
    assert k.account.capital == D("1002.0468")
    assert_account_identity(k)
