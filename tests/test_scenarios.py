"""The old suite's scenarios, now checking what they skipped: states, sizes, exact
figures, transitions, what the venue received."""

from __future__ import annotations

import json
from decimal import Decimal as D

import pytest

import dita
from conftest import assert_account_identity, cancel, enter, exit_, make_kernel
from dita_mock import MockVenue


def resting_entry(k, slot=0, intent="e1", size="0.010", price="59000"):
    out = enter(k, slot=slot, intent=intent, size=size, order_type="LIMIT", limit_price=price)
    assert out.state == "ENTRY_WORKING"
    return out


# ---------------------------------------------------------------- cancel


def test_cancel_of_a_resting_entry_returns_to_idle():
    k = make_kernel()
    resting_entry(k)
    out = cancel(k)
    assert (out.accepted, out.diagnostic_code, out.state) == (True, "OK", "IDLE")
    assert out.transitions == (("ENTRY_WORKING", "CANCEL", "ENTRY_CANCEL_PENDING"),
                               ("ENTRY_CANCEL_PENDING", "CANCEL_ACK", "IDLE"))
    assert k.venue.received[-1] == {"action": "cancel", "client_order_id": "e1", "asset": "BTC-USDT",
                                    "venue_order_id": "M1"}
    s = k.slot(0)
    assert (s.size, s.active_entry_order, s.active_exit_order) == (0, None, None)
    assert enter(k, intent="e2", trade="t2").state == "POSITION_OPEN"


def test_cancel_of_a_partly_filled_entry_keeps_exactly_the_filled_size():
    k = make_kernel(fee_rate="0.001")
    resting_entry(k, size="0.010")
    k.venue.fill("e1", "0.004", "59000")
    assert k.poll()[0].state == "ENTRY_WORKING"
    out = cancel(k)
    assert out.state == "POSITION_OPEN"
    s = k.slot(0)
    assert (s.size, s.initial_size, s.entry_price, s.active_entry_order) == (D("0.004"), D("0.004"), D("59000"), None)
    assert k.account.fees_paid == D("0.236") and k.account.capital == D("999.764")


def test_cancel_twice_is_refused_while_the_first_is_pending():
    k = make_kernel()
    resting_entry(k)
    k.venue.script_cancel_reject("busy")
    out = cancel(k)
    assert out.state == "ENTRY_WORKING"  # the venue refused: the order still works
    assert out.transitions[-1] == ("ENTRY_CANCEL_PENDING", "CANCEL_REJECT", "ENTRY_WORKING")
    assert k.slot(0).record["last_order_end"] == "busy"
    # A cancel whose answer has not come back yet: the next one is refused.
    venue_cancel = k.venue.cancel
    k.venue.cancel = lambda order: (k.venue.received.append({"action": "cancel"}), [])[1]
    assert cancel(k, intent="c2").state == "ENTRY_CANCEL_PENDING"
    before = k.snapshot()
    out = cancel(k, intent="c3")
    assert (out.accepted, out.diagnostic_code) == (False, "CANCEL_PENDING")
    assert k.snapshot() == before
    k.venue.cancel = venue_cancel


def test_cancel_with_nothing_working_is_refused_and_changes_nothing():
    k = make_kernel()
    for setup in (lambda: None, lambda: enter(k)):
        setup()
        before = k.snapshot()
        n = len(k.venue.received)
        out = cancel(k, intent=f"c{n}")
        assert (out.accepted, out.diagnostic_code) == (False, "NO_WORKING_ORDER")
        assert k.snapshot() == before and len(k.venue.received) == n


def test_a_fill_racing_the_cancel_wins():
    k = make_kernel()
    resting_entry(k)
    k.venue.script_fill_before_cancel()
    out = cancel(k)
    assert out.state == "POSITION_OPEN"
    assert out.transitions == (("ENTRY_WORKING", "CANCEL", "ENTRY_CANCEL_PENDING"),
                               ("ENTRY_CANCEL_PENDING", "FULL_FILL", "POSITION_OPEN"))
    assert [e.kind for e in out.emitted_events] == ["FULL_FILL", "CANCEL_REJECT"]
    assert out.refused_events[0][1] == "STALE_EVENT"  # the cancel reject of an order already filled
    assert k.slot(0).size == D("0.010")


def test_cancel_of_a_working_exit_returns_to_position_open():
    k = make_kernel(exit_fill_ratio="0.5")
    enter(k)
    assert exit_(k, order_type="LIMIT", limit_price="61000").state == "EXIT_WORKING"
    out = cancel(k)
    assert out.transitions[-1] == ("EXIT_CANCEL_PENDING", "CANCEL_ACK", "POSITION_OPEN")
    assert k.slot(0).size == D("0.010") and k.slot(0).active_exit_order is None


def test_a_fill_after_the_cancel_was_acknowledged_is_applied_not_dropped():
    k = make_kernel()
    resting_entry(k)
    cancel(k)
    late = dita.VenueEvent("FULL_FILL", "late-1", "e1", "M1", filled_size=D("0.003"), fill_price=D("59000"), fee=D(0))
    out = k.on_venue_event(late)
    assert (out.accepted, out.state) == (True, "POSITION_OPEN")
    assert k.slot(0).size == D("0.003")


def test_a_fill_for_an_order_of_an_earlier_trade_freezes_the_slot():
    k = make_kernel(entry_fill_ratio="0.5")   # e1 fills half, then is cancelled
    enter(k)
    assert cancel(k).state == "POSITION_OPEN"
    exit_(k)
    enter(k, intent="e2", trade="t2")
    ghost = dita.VenueEvent("PARTIALLY_FILLED", "ghost", "e1", filled_size=D("0.001"), fill_price=D("60000"))
    out = k.on_venue_event(ghost)
    assert (out.accepted, out.state) == (True, "FROZEN")
    assert "e1" in k.slot(0).frozen_reason
    refused = exit_(k, intent="x9")
    assert (refused.accepted, refused.diagnostic_code) == (False, "SLOT_FROZEN")


# ---------------------------------------------------------------- multi-leg exits


@pytest.mark.parametrize("ratios, legs", [
    (("0.5", "0.5"), [D("0.005"), D("0.005")]),
    (("0.3", "0.3", "0.4"), [D("0.003"), D("0.003"), D("0.004")]),
    (("0.33", "0.33", "0.34"), [D("0.003"), D("0.003"), D("0.004")]),
])
def test_multi_leg_exit_with_partial_fills_in_each_leg_leaves_no_dust(ratios, legs):
    k = make_kernel(exit_fill_ratio="0.5", fee_rate="0.0005")
    enter(k, size="0.010", ratios=ratios)
    for i, leg in enumerate(legs):
        out = exit_(k, intent=f"x{i}")
        assert out.state == "EXIT_WORKING"
        order = k.slot(0).active_exit_order
        assert order.quantity == leg and order.side == "SELL"
        assert k.venue.received[-1]["reduce_only"] is True
        assert order.filled_size > 0  # half filled at once
        k.venue.set_price("BTC-USDT", str(60000 + 100 * (i + 1)))
        outs = k.poll()
        assert outs[-1].accepted
    s = k.slot(0)
    assert (s.fsm_state, s.size, s.closed, s.active_exit_order) == ("TRADE_TERMINAL_WRITTEN", 0, True, None)
    assert len(k.trades) == 1 and k.trades[0]["realized_pnl"] == k.account.realized_pnl
    assert_account_identity(k)


def test_exit_with_nothing_open_is_refused():
    k = make_kernel()
    out = exit_(k)
    assert (out.accepted, out.diagnostic_code, out.state) == (False, "NO_POSITION", "IDLE")


def test_exit_while_the_entry_works_says_whether_part_of_it_filled():
    k = make_kernel(entry_fill_ratio="0")
    enter(k, size="0.010", order_type="LIMIT", limit_price="59000")
    before = k.snapshot()
    out = exit_(k)
    assert (out.accepted, out.diagnostic_code, out.state) == (False, "NO_POSITION", "ENTRY_WORKING")
    assert "nothing has filled yet" in out.message and k.snapshot() == before
    coid = k.slot(0).active_entry_order.client_order_id
    assert k.on_venue_event(dita.VenueEvent("PARTIALLY_FILLED", "p1", coid, "V1", D("0.004"), D("59000"))).accepted
    before = k.snapshot()
    out = exit_(k, intent="x2")
    assert (out.accepted, out.diagnostic_code, out.state) == (False, "ORDER_WORKING", "ENTRY_WORKING")
    assert f"the entry order {coid} still works with 0.004 of 0.01 filled" in out.message
    assert k.snapshot() == before and k.venue.received[-1]["action"] != "cancel"


# ---------------------------------------------------------------- cycles and exactness


def test_ten_rapid_entry_exit_cycles_settle_every_trade():
    k = make_kernel(fee_rate="0.0004")
    for i in range(10):
        assert enter(k, intent=f"e{i}", trade=f"t{i}").state == "POSITION_OPEN"
        k.venue.set_price("BTC-USDT", str(60000 + (i % 3) * 50))
        assert exit_(k, intent=f"x{i}").state == "TRADE_TERMINAL_WRITTEN"
        k.venue.set_price("BTC-USDT", "60000")
    assert [t["trade_id"] for t in k.trades] == [f"t{i}" for i in range(10)]
    assert sum(t["realized_pnl"] for t in k.trades) == k.account.realized_pnl
    assert sum(t["fees_paid"] for t in k.trades) == k.account.fees_paid
    assert_account_identity(k)


def test_fills_of_point_one_two_seven_closed_by_point_three_seven_leave_exactly_zero():
    k = make_kernel()
    resting_entry(k, size="1.0", price="50000")
    for i, q in enumerate(["0.1", "0.2", "0.7"]):
        k.on_venue_event(dita.VenueEvent("PARTIALLY_FILLED", f"f{i}", "e1", filled_size=D(q), fill_price=D("50000"),
                                         fee=D("0.01")))
    assert k.slot(0).fsm_state == "POSITION_OPEN" and k.slot(0).size == D("1.0")
    exit_(k, order_type="LIMIT", limit_price="70000")
    for i, q in enumerate(["0.3", "0.7"]):
        out = k.on_venue_event(dita.VenueEvent("PARTIALLY_FILLED", f"g{i}", "x1", filled_size=q, fill_price="50001.1",
                                               fee="0.03"))
        assert out.accepted
    s = k.slot(0)
    assert s.size == 0 and str(s.size) == "0"
    assert s.fsm_state == "TRADE_TERMINAL_WRITTEN"
    assert k.account.gross_realized_pnl == D("1.1")
    assert k.account.fees_paid == D("0.09")
    assert k.account.capital == D("1000") + D("1.1") - D("0.09")


# ---------------------------------------------------------------- outcome inspection


def test_outcome_lists_every_transition_and_the_final_state():
    k = make_kernel(entry_fill_ratio="0.5")
    out = enter(k)
    assert out.state == "ENTRY_WORKING"
    assert out.transitions == (("IDLE", "ENTER", "ORDER_REQUESTED"), ("ORDER_REQUESTED", "ORDER_ACK", "ENTRY_WORKING"),
                               ("ENTRY_WORKING", "PARTIALLY_FILLED", "ENTRY_WORKING"))
    assert [e.kind for e in out.emitted_events] == ["ORDER_ACK", "PARTIALLY_FILLED"]
    assert out.state == k.slot(0).fsm_state


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("kwargs, code", [
    ({"target_size": "-1"}, "INVALID_INTENT"),
    ({"target_size": "0"}, "INVALID_INTENT"),
    ({"target_size": "0.0004"}, "BELOW_MIN_SIZE"),
    ({"side": "UP"}, "INVALID_INTENT"),
    ({"order_type": "LIMIT"}, "INVALID_INTENT"),
    ({"order_type": "STOP"}, "INVALID_INTENT"),
    ({"exit_leg_ratios": ("0.5", "0.4")}, "INVALID_INTENT"),
    ({"asset": "DOGE-USDT"}, "INVALID_INTENT"),
])
def test_bad_intents_are_refused_with_a_reason_and_change_nothing(kwargs, code):
    k = make_kernel()
    args = dict(trade_id="t1", asset="BTC-USDT", side="LONG", target_size="0.01")
    args.update(kwargs)
    before = k.snapshot()
    out = k.process_intent(dita.KernelIntent("ENTER", 0, "e1", **args))
    assert (out.accepted, out.diagnostic_code, out.state) == (False, code, "IDLE")
    assert out.message
    assert k.snapshot() == before and k.venue.received == []


def test_malformed_input_raises_a_clear_error_and_changes_nothing():
    k = make_kernel()
    enter(k)
    before = k.snapshot()
    with pytest.raises(dita.InvalidInputError, match="unknown slot 5"):
        enter(k, slot=5)
    with pytest.raises(dita.InvalidInputError, match="target_size must be a decimal number"):
        dita.KernelIntent("ENTER", 0, "e9", trade_id="t", asset="BTC-USDT", side="LONG", target_size="lots")
    with pytest.raises(dita.InvalidInputError, match="action must be one of"):
        dita.KernelIntent("BUY", 0, "e9")
    bad = dita.VenueEvent("PARTIALLY_FILLED", "b1", "e1", filled_size="a lot", fill_price="1")
    with pytest.raises(dita.InvalidInputError, match="filled_size' must be a decimal number"):
        k.on_venue_event(bad)
    with pytest.raises(ValueError, match="client_order_id are required strings"):
        k.on_venue_event(dita.VenueEvent("ORDER_ACK", "b2", None))
    assert k.snapshot() == before


def test_text_that_is_not_valid_unicode_is_refused_naming_the_field():
    """A lone surrogate (what a bad decode or a JSON escape can leave in a str) cannot be
    stored or journaled as text: refused with the field's name, and nothing changes."""
    k = make_kernel(silent=True)
    with pytest.raises(dita.InvalidInputError, match=r"field 'trade_id' must be valid text, got '\\ud800'"):
        enter(k, trade="\ud800")
    assert enter(k, size="0.010", order_type="LIMIT", limit_price="59000").state == "ORDER_REQUESTED"
    coid, before = k.slot(0).entry_client_order_id, k.snapshot()
    for field in ("event_id", "venue_order_id", "reason"):
        fields = {"event_id": "a1", "venue_order_id": "V-1", "reason": None, field: "bad\udcff"}
        with pytest.raises(dita.InvalidInputError, match=rf"event ORDER_ACK: field '{field}' must be valid text"):
            k.on_venue_event(dita.VenueEvent("ORDER_ACK", client_order_id=coid, **fields))
    # An order id that is not text names no order the kernel sent.
    out = k.on_venue_event(dita.VenueEvent("ORDER_ACK", "a2", coid + "\ud800", "V-1"))
    assert (out.accepted, out.diagnostic_code) == (False, "UNKNOWN_ORDER")
    assert k.snapshot() == before


def test_a_field_the_spec_never_reads_is_still_checked():
    """No expression of a CANCEL_ACK reads its venue_order_id, so the engine does not copy
    it; it is still checked as every field is: a bad one is refused, nothing changes."""
    k = make_kernel()
    resting_entry(k)
    coid, before = k.slot(0).entry_client_order_id, k.snapshot()
    with pytest.raises(dita.InvalidInputError, match=r"event CANCEL_ACK: field 'venue_order_id' must be a string, got int 7"):
        k.on_venue_event(dita.VenueEvent("CANCEL_ACK", "c1", coid, 7))
    with pytest.raises(dita.InvalidInputError, match=r"event CANCEL_ACK: field 'venue_order_id' must be valid text"):
        k.on_venue_event(dita.VenueEvent("CANCEL_ACK", "c1", coid, "V-\udcff"))
    assert k.snapshot() == before
    out = k.on_venue_event(dita.VenueEvent("CANCEL_ACK", "c1", coid, "V-1", reason="by the venue"))
    assert (out.accepted, out.state, out.transitions) == (True, "IDLE", (("ENTRY_WORKING", "CANCEL_ACK", "IDLE"),))
    assert k.slot(0).last_order_end == "by the venue"


def test_overfill_unknown_order_and_bad_fill_values_are_refused():
    k = make_kernel()
    resting_entry(k, size="0.010")
    before = k.snapshot()
    over = k.on_venue_event(dita.VenueEvent("PARTIALLY_FILLED", "o1", "e1", filled_size="0.011", fill_price="59000"))
    assert (over.accepted, over.diagnostic_code) == (False, "OVERFILL")
    unknown = k.on_venue_event(dita.VenueEvent("FULL_FILL", "u1", "nobody", filled_size="0.01", fill_price="59000"))
    assert (unknown.accepted, unknown.diagnostic_code, unknown.slot_id) == (False, "UNKNOWN_ORDER", None)
    negative = k.on_venue_event(dita.VenueEvent("PARTIALLY_FILLED", "n1", "e1", filled_size="-0.001", fill_price="1"))
    assert (negative.accepted, negative.diagnostic_code) == (False, "INVALID_EVENT")
    assert k.snapshot() == before


# ---------------------------------------------------------------- reconcile and restore


def test_reconcile_of_empty_and_of_mid_trade_slots():
    k = make_kernel(slots=2)
    resting_entry(k, slot=1)
    snap = k.snapshot()
    k.reconcile({0: snap["slots"][0], 1: snap["slots"][1]})
    assert k.snapshot() == snap
    moved = json.loads(json.dumps(snap["slots"][1]))
    moved["record"]["entry_filled"] = "0.002"
    moved["record"]["size"] = "0.002"
    moved["record"]["initial_size"] = "0.002"
    moved["record"]["entry_price"] = "59000"
    k.reconcile([dict(moved, slot_id=1)])
    assert k.slot(1).size == D("0.002") and k.slot(1).fsm_state == "ENTRY_WORKING"


def test_reconcile_is_all_or_nothing_and_names_every_violation():
    k = make_kernel(slots=3)
    snap = k.snapshot()
    bad_open = {"state": "POSITION_OPEN", "record": dict(snap["slots"][0]["record"])}
    bad_idle = {"state": "IDLE", "record": dict(snap["slots"][1]["record"], size="5")}
    good = {"state": "IDLE", "record": dict(snap["slots"][2]["record"])}
    with pytest.raises(dita.ReconcileError) as info:
        k.reconcile({0: bad_open, 1: bad_idle, 2: good})
    text = "\n".join(info.value.violations)
    assert "slot 0 (POSITION_OPEN)" in text and "size > 0" in text
    assert "slot 1 (IDLE)" in text and "size == 0" in text
    assert "slot 2" not in text
    assert k.snapshot() == snap
    with pytest.raises(dita.ReconcileError, match="unknown state 'OPEN'"):
        k.reconcile({0: {"state": "OPEN", "record": {}}})


def test_a_working_order_reconciled_from_outside_can_be_cancelled():
    """A slot set from the exchange's own state names an order this kernel never sent: the
    cancel still reaches the venue, with the slot's ids and asset (it used to raise KeyError)."""
    k = make_kernel()
    record = dict(k.snapshot()["slots"][0]["record"], trade_id="ext", asset="BTC-USDT", side="LONG",
                  entry_client_order_id="ext-7", entry_venue_order_id="V-77", entry_live=True,
                  entry_quantity="0.010", entry_side="BUY", entry_order_type="LIMIT", entry_limit_price="59000")
    k.reconcile({0: {"state": "ENTRY_WORKING", "record": record}})
    out = cancel(k)
    assert out.accepted and out.transitions[0] == ("ENTRY_WORKING", "CANCEL", "ENTRY_CANCEL_PENDING")
    assert k.venue.received[-1] == {"action": "cancel", "client_order_id": "ext-7", "asset": "BTC-USDT",
                                    "venue_order_id": "V-77"}


def test_a_snapshot_of_another_machine_or_with_unreadable_parts_is_refused():
    k = make_kernel(fee_rate="0.001")
    resting_entry(k)
    k.venue.fill("e1", "0.004", "59000")
    k.poll()
    snap = k.snapshot()
    other = dict(snap, machine="traffic_light")
    with pytest.raises(dita.ReconcileError, match="the snapshot is of machine 'traffic_light', this kernel runs 'trade_slot'"):
        dita.Kernel.restore(other, venue=k.venue)
    for part, bad in (("order_progress", {"e1": ["0.004", "lots", "0"]}), ("slot_orders", {"zero": ["e1"]}),
                      ("orders", {"e1": {"quantity": "1"}})):
        with pytest.raises(dita.ReconcileError, match=rf"snapshot {part}: "):
            dita.Kernel.restore(dict(snap, **{part: bad}), venue=k.venue)
    assert dita.Kernel.restore(snap, venue=k.venue).snapshot() == snap


def _kernel_in(state):
    k = make_kernel(exit_fill_ratio="0.5")
    if state == "IDLE":
        return k
    if state == "ENTRY_WORKING":
        resting_entry(k)
    elif state == "ENTRY_CANCEL_PENDING":
        resting_entry(k)
        k.venue.cancel = lambda order: []
        cancel(k)
    elif state == "POSITION_OPEN":
        enter(k)
    elif state == "EXIT_WORKING":
        enter(k)
        exit_(k)
    elif state == "EXIT_CANCEL_PENDING":
        enter(k)
        exit_(k)
        k.venue.cancel = lambda order: []
        cancel(k)
    elif state == "TRADE_TERMINAL_WRITTEN":
        enter(k)
        k.venue.exit_fill_ratio = D(1)
        exit_(k)
    elif state == "ORDER_REQUESTED":
        k.venue.submit = lambda order: []
        enter(k)
    elif state == "FROZEN":
        enter(k)
        exit_(k)
        k.on_venue_event(dita.VenueEvent("FULL_FILL", "g", "nobody-else", filled_size="1", fill_price="1"))
        k._order_slot["ghost"] = 0
        k.on_venue_event(dita.VenueEvent("FULL_FILL", "g", "ghost", filled_size="1", fill_price="1"))
    assert k.slot(0).fsm_state == state
    return k


@pytest.mark.parametrize("state", ["IDLE", "ORDER_REQUESTED", "ENTRY_WORKING", "ENTRY_CANCEL_PENDING", "POSITION_OPEN",
                                   "EXIT_WORKING", "EXIT_CANCEL_PENDING", "TRADE_TERMINAL_WRITTEN", "FROZEN"])
def test_restore_of_a_snapshot_taken_in_each_state(state):
    k = _kernel_in(state)
    snap = json.loads(json.dumps(k.snapshot()))  # it survives JSON
    k2 = dita.Kernel.restore(snap, venue=k.venue)
    assert k2.snapshot() == snap
    assert k2.slot(0).fsm_state == state
    # De-dup state survives too: an event already applied stays refused.
    for coid, order in k.venue.orders.items():
        for ev in order.events:
            out = k2.on_venue_event(ev)
            assert not out.accepted or state == "FROZEN", (ev, out)


def test_a_corrupt_snapshot_is_refused_and_names_the_violation():
    k = _kernel_in("POSITION_OPEN")
    snap = json.loads(json.dumps(k.snapshot()))
    snap["slots"][0]["record"]["size"] = "0"
    snap["account"]["capital"] = "5"
    with pytest.raises(dita.ReconcileError) as info:
        dita.Kernel.restore(snap, venue=k.venue)
    text = " ".join(info.value.violations)
    assert "size > 0" in text and "capital" in text


def test_a_fill_without_a_fee_pays_none_and_one_with_a_fee_pays_exactly_it():
    k = make_kernel(entry_fill_ratio="0")  # the entry rests; the fills below are the venue's
    assert enter(k, size="0.010", order_type="LIMIT", limit_price="50000").accepted
    coid = k.slot(0).active_entry_order.client_order_id
    out = k.on_venue_event(dita.VenueEvent("PARTIALLY_FILLED", "f1", coid, "V1", D("0.004"), D("50000")))
    assert out.accepted and out.state == "ENTRY_WORKING"
    assert k.account.fees_paid == 0 and k.slot(0).size == D("0.004")
    out = k.on_venue_event(dita.VenueEvent("FULL_FILL", "f2", coid, "V1", D("0.006"), D("50000"), fee=D("0.0123")))
    assert out.accepted and out.state == "POSITION_OPEN"
    assert k.account.fees_paid == D("0.0123") and k.account.capital == D("999.9877")
    assert_account_identity(k)


def test_a_fill_of_an_ended_trade_delivered_again_is_a_duplicate_not_a_frozen_next_trade():
    k = make_kernel()
    assert enter(k, size="0.010").state == "POSITION_OPEN"
    out = exit_(k)
    assert out.state == "TRADE_TERMINAL_WRITTEN"
    old_fill = next(e for e in out.emitted_events if e.kind == "FULL_FILL")
    assert enter(k, intent="e2", trade="t2", size="0.020").state == "POSITION_OPEN"
    for kernel in (k, dita.Kernel.restore(json.loads(json.dumps(k.snapshot())), venue=k.venue)):
        again = kernel.on_venue_event(old_fill)
        assert (again.accepted, again.diagnostic_code, again.state) == (False, "DUPLICATE_EVENT", "POSITION_OPEN")
        assert "has ended" in again.message
        assert kernel.slot(0).size == D("0.020") and kernel.slot(0).trade_id == "t2"
    # A new fill of that order, which had filled its whole quantity, is an overfill.
    before = k.snapshot()
    new = dita.VenueEvent("PARTIALLY_FILLED", "late-1", old_fill.client_order_id, None, D("0.001"), D("60000"))
    out = k.on_venue_event(new)
    assert (out.accepted, out.diagnostic_code, out.state) == (False, "OVERFILL", "POSITION_OPEN")
    assert "0.01 of 0.01 already filled" in out.message and k.snapshot() == before


@pytest.mark.parametrize("journaled", [False, True])
def test_a_late_fill_of_an_ended_trades_order_freezes_the_next_trade_unless_it_overfills_the_order(journaled, tmp_path):
    """The entry filled 0.004 of 0.010 before its cancel; the trade closed and the next one
    started. A fill of that entry within its quantity is real money the slot cannot place
    (frozen for a human); beyond it, an overfill, refused, with the next trade untouched."""
    k = dita.Kernel(venue=MockVenue(silent=True, prices={"BTC-USDT": "60000"}), capital=D("1000"),
                    journal=tmp_path / "run.sqlite" if journaled else None)
    assert enter(k, size="0.010", order_type="LIMIT", limit_price="60000").state == "ORDER_REQUESTED"
    coid = k.slot(0).entry_client_order_id
    k.on_venue_event(dita.VenueEvent("PARTIALLY_FILLED", "f1", coid, "V1", D("0.004"), D("60000")))
    cancel(k)
    assert k.on_venue_event(dita.VenueEvent("CANCEL_ACK", "c", coid, "V1")).state == "POSITION_OPEN"
    exit_(k)
    xid = k.slot(0).exit_client_order_id
    assert k.on_venue_event(dita.VenueEvent("FULL_FILL", "x", xid, "V2", D("0.004"), D("61000"))).state == "TRADE_TERMINAL_WRITTEN"
    assert enter(k, intent="e2", trade="t2", size="0.020").state == "ORDER_REQUESTED"
    before = k.snapshot()
    out = k.on_venue_event(dita.VenueEvent("PARTIALLY_FILLED", "f2", coid, "V1", D("0.007"), D("60000")))
    assert (out.accepted, out.diagnostic_code, out.state) == (False, "OVERFILL", "ORDER_REQUESTED")
    assert "0.004 of 0.01 already filled" in out.message and k.snapshot() == before
    out = k.on_venue_event(dita.VenueEvent("PARTIALLY_FILLED", "f3", coid, "V1", D("0.006"), D("60000")))
    assert (out.accepted, out.state) == (True, "FROZEN")
    if journaled:
        k.close()
        again = dita.Kernel.recover(tmp_path / "run.sqlite", venue=k.venue, sync=False)
        assert again.snapshot() == k.snapshot()


def test_a_late_ack_or_cancel_reject_of_a_filled_order_changes_nothing_and_says_why():
    """FIX order-state matrices: an ExecType=New (or a cancel reject) that a stream delivers
    after the order's fill. The order stays filled, nothing moves, and the refusal says why."""
    k = make_kernel(silent=True)
    assert enter(k, size="0.010").state == "ORDER_REQUESTED"
    coid = k.slot(0).entry_client_order_id
    fill = k.on_venue_event(dita.VenueEvent("FULL_FILL", "f1", coid, "V-1", D("0.010"), D("60000"), D("0.24")))
    assert fill.accepted and fill.state == "POSITION_OPEN"
    before = k.snapshot()
    for kind, event_id in (("ORDER_ACK", "a1"), ("CANCEL_REJECT", "cr1")):
        out = k.on_venue_event(dita.VenueEvent(kind, event_id, coid, "V-1", reason="too late to cancel"))
        assert (out.accepted, out.diagnostic_code, out.state, list(out.transitions)) == (False, "STALE_EVENT", "POSITION_OPEN", [])
        assert out.message == (f"state POSITION_OPEN refuses event {kind} (STALE_EVENT: A well-formed event for an "
                               "order that is not working.); nothing changed")
    assert k.snapshot() == before
    assert k.slot(0).size == D("0.010") and k.account.fees_paid == D("0.24")
    # A CANCEL with nothing working says so in the same way.
    out = cancel(k)
    assert (out.accepted, out.diagnostic_code) == (False, "NO_WORKING_ORDER")
    assert out.message == "state POSITION_OPEN refuses event CANCEL (NO_WORKING_ORDER: CANCEL with no order working.); nothing changed"


@pytest.mark.parametrize("kind", ["ORDER_ACK", "CANCEL_ACK", "CANCEL_REJECT", "REJECT", "EXPIRED"])
@pytest.mark.parametrize("carried", ["fill", "fee"])
def test_an_order_event_that_carries_a_fill_or_a_fee_is_refused_so_no_money_is_dropped(kind, carried):
    """A cancel confirmation (or any event that reports no fill) with a fill riding on it: the
    kernel used to take the cancel and drop the fill, so the slot went IDLE with 0.004 still
    held at the venue. Now the event is refused whole, in every state, and says what to do."""
    k = make_kernel(fee_rate="0.001")
    resting_entry(k, size="0.010", price="59000")
    extra = {"filled_size": D("0.004"), "fill_price": D("59000")} if carried == "fill" else {"fee": D("0.05")}
    before, sent = k.snapshot(), list(k.venue.received)
    out = k.on_venue_event(dita.VenueEvent(kind, "v1", "e1", "M1", reason="cancelled", **extra))
    assert (out.accepted, out.diagnostic_code, out.state, out.transitions) == (False, "INVALID_EVENT", "ENTRY_WORKING", ())
    what = "a fill of 0.004" if carried == "fill" else "a fee of 0.05"
    assert out.message.startswith(f"event {kind}: it carries {what} for order e1, but reports no fill")
    assert k.snapshot() == before and k.venue.received == sent
    assert (k.slot(0).size, k.account.fees_paid) == (0, 0)
    # The refused event left its id free: the adapter's corrected report is not a duplicate.
    again = k.on_venue_event(dita.VenueEvent(kind, "v1", "e1", "M1", reason="cancelled"))
    assert again.diagnostic_code != "DUPLICATE_EVENT"
    # The same event is refused in a state whose table would only have called it stale.
    k = make_kernel()
    assert enter(k).state == "POSITION_OPEN"
    out = k.on_venue_event(dita.VenueEvent(kind, "v2", k.slot(0).entry_client_order_id, **extra))
    assert (out.accepted, out.diagnostic_code) == (False, "INVALID_EVENT")


def test_a_cancel_reported_with_a_zero_last_fill_is_a_plain_cancel():
    """FIX's ExecType=Canceled carries LastQty=0: a zero fill and a zero fee are no fill."""
    k = make_kernel(silent=True)
    resting = enter(k, size="0.010", order_type="LIMIT", limit_price="59000")
    assert resting.state == "ORDER_REQUESTED"
    coid = k.slot(0).entry_client_order_id
    out = k.on_venue_event(dita.VenueEvent("CANCEL_ACK", "c1", coid, "V-1", D("0"), D("59000"), D("0"), "cancelled"))
    assert (out.accepted, out.state, out.transitions) == (True, "IDLE", (("ORDER_REQUESTED", "CANCEL_ACK", "IDLE"),))
    assert k.slot(0).size == 0 and k.account.capital == D("1000")


@pytest.mark.parametrize("kwargs, error", [
    ({"slots": 0}, "slots must be a positive int, got 0"),
    ({"slots": True}, "slots must be a positive int, got True"),
    ({"capital": D("-5")}, "capital must not be negative, got -5"),
    ({"capital": D("NaN")}, "capital must be finite"),
    ({"capital": "lots"}, "capital must be a decimal number"),
    ({"capital": D("1e30")}, r"cannot build a kernel of 1 slot\(s\) with capital 1E\+30: .*cannot be held exactly"),
    ({"venue": object()}, "venue must be a venue name or a dita.Venue, got object"),
    ({"venue_options": {"pricez": {}}}, r"venue 'mock' \(plugin 'dita-mock'\) refused its venue_options \(given: pricez\): "
                                         r".*unexpected keyword argument 'pricez'"),
    ({"venue_options": {"fee_rate": "abc"}}, r"refused its venue_options \(given: fee_rate\): fee_rate must be a decimal "
                                              r"number, got 'abc'"),
])
def test_a_kernel_built_with_bad_arguments_is_refused_naming_them(kwargs, error):
    args = {"venue": "mock", "capital": D("1000"), **kwargs}
    with pytest.raises(dita.InvalidInputError, match=error):
        dita.Kernel(**args)


def test_an_exit_or_cancel_for_a_trade_the_slot_no_longer_carries_is_refused():
    """A strategy's stale intent, naming a trade that ended, must not act on the slot's next
    trade: refused, nothing changed, nothing sent. Without a trade id, or with the slot's own,
    it acts as always."""
    k = make_kernel()
    enter(k, intent="e1", trade="t1")
    assert exit_(k, intent="x1").state == "TRADE_TERMINAL_WRITTEN"
    assert enter(k, intent="e2", trade="t2", order_type="LIMIT", limit_price="59000").state == "ENTRY_WORKING"
    k.venue.fill("e2", "0.004", "59000")
    k.poll()
    before, sent = k.snapshot(), len(k.venue.received)
    for action in ("CANCEL", "EXIT"):
        out = k.process_intent(dita.KernelIntent(action, 0, f"stale-{action}", trade_id="t1"))
        assert (out.accepted, out.diagnostic_code, out.transitions) == (False, "INVALID_INTENT", ())
        assert out.message == "the intent is for trade t1, but the slot carries trade t2"
    assert k.snapshot() == before and len(k.venue.received) == sent
    out = k.process_intent(dita.KernelIntent("CANCEL", 0, "c-own", trade_id="t2"))
    assert (out.accepted, out.state) == (True, "POSITION_OPEN") and k.venue.received[-1]["action"] == "cancel"
    stale = k.process_intent(dita.KernelIntent("EXIT", 0, "x-stale", trade_id="t1"))
    assert (stale.accepted, stale.diagnostic_code) == (False, "INVALID_INTENT")
    assert exit_(k, intent="x2").state == "TRADE_TERMINAL_WRITTEN" and k.slot(0).size == 0


def test_an_exit_never_sends_more_than_its_target_size_nor_acts_on_another_asset_or_side():
    """Exits are sized by the trade's exit_leg_ratios. An EXIT that names a smaller size (a
    partial close the trader expects) is refused rather than sending more; one naming another
    asset or the other side is refused; naming the trade's own (or its closing order's side,
    or a size no smaller than the leg) acts as always."""
    k = make_kernel()
    assert enter(k, size="0.010", ratios=("0.5", "0.5")).state == "POSITION_OPEN"
    before, sent = k.snapshot(), len(k.venue.received)
    for n, (kw, message) in enumerate([
        ({"target_size": D("0.001")}, "target_size 0.001 is less than this EXIT sends: an EXIT sends the next leg of "
                                      "the trade's exit_leg_ratios, or all that is left of 0.01, and never more than "
                                      "a target_size it is given"),
        ({"asset": "ETH-USDT"}, "the intent names ETH-USDT, but the slot's trade t1 is LONG BTC-USDT"),
        ({"side": "SHORT"}, "the intent names side SHORT, but the slot's trade t1 is LONG BTC-USDT"),
        ({"target_size": D("0")}, "target_size must be positive, got 0"),
    ]):
        out = k.process_intent(dita.KernelIntent("EXIT", 0, f"x-bad{n}", **kw))
        assert (out.accepted, out.diagnostic_code, out.message) == (False, "INVALID_INTENT", message)
    cancel_other = k.process_intent(dita.KernelIntent("CANCEL", 0, "c-bad", asset="ETH-USDT"))
    assert (cancel_other.accepted, cancel_other.diagnostic_code) == (False, "NO_WORKING_ORDER")
    assert k.snapshot() == before and len(k.venue.received) == sent
    out = k.process_intent(dita.KernelIntent("EXIT", 0, "x1", asset="BTC-USDT", side="SELL", target_size=D("0.010")))
    assert (out.accepted, out.state, k.slot(0).size) == (True, "POSITION_OPEN", D("0.005"))
    assert k.venue.received[-1]["quantity"] == "0.005"
    out = k.process_intent(dita.KernelIntent("EXIT", 0, "x2", side="LONG", target_size=D("0.005")))
    assert (out.accepted, out.state, k.slot(0).size) == (True, "TRADE_TERMINAL_WRITTEN", 0)


def test_a_cancel_naming_another_asset_is_refused_and_the_order_keeps_working():
    k = make_kernel()
    resting_entry(k)
    before, sent = k.snapshot(), len(k.venue.received)
    out = k.process_intent(dita.KernelIntent("CANCEL", 0, "c1", asset="ETH-USDT"))
    assert (out.accepted, out.diagnostic_code) == (False, "INVALID_INTENT")
    assert k.snapshot() == before and len(k.venue.received) == sent
    # The working entry is a BUY: the order's own side names it as well as the trade's LONG.
    out = k.process_intent(dita.KernelIntent("CANCEL", 0, "c2", asset="BTC-USDT", side="BUY"))
    assert (out.accepted, out.state) == (True, "IDLE")


@pytest.mark.parametrize("text", ["0_01", "1_000", "\u0661", "0x10", " ", "1e", "nan", "Infinity", "1.2.3"])
def test_sizes_written_as_text_take_plain_decimal_syntax_only(text):
    """Python's Decimal reads "0_01" as 1 and other scripts' digits as digits: a typo would
    become a hundred times the size. Intents refuse them, and so does the engine."""
    with pytest.raises(dita.InvalidInputError, match=f"target_size must be a decimal number, got {text!r}"):
        dita.KernelIntent("ENTER", 0, "e1", trade_id="t1", asset="BTC-USDT", side="LONG", target_size=text)
    k = make_kernel(entry_fill_ratio="0")
    resting_entry(k)
    before = k.snapshot()
    with pytest.raises(dita.InvalidInputError, match="event PARTIALLY_FILLED: field 'filled_size' must be a "
                                                     "decimal number"):
        k.on_venue_event(dita.VenueEvent("PARTIALLY_FILLED", "f1", "e1", "M1", text, "59000", "0"))
    assert k.snapshot() == before


def test_an_intent_is_a_value_the_caller_cannot_change_under_the_kernel():
    metadata = {"note": "as sent"}
    intent = dita.KernelIntent("ENTER", 0, "e1", trade_id="t1", asset="BTC-USDT", side="LONG",
                               target_size="0.010", order_type="LIMIT", limit_price="59000", metadata=metadata)
    k = make_kernel()
    k.process_intent(intent)
    with pytest.raises(AttributeError, match="a KernelIntent cannot be changed once built"):
        intent.target_size = D("5")
    metadata["note"] = "changed"           # the caller's dict, not the intent's
    intent.metadata["note"] = "changed too"   # nor the intent the caller still holds
    order = k.order("e1")
    assert (order.intent.target_size, order.intent.metadata) == (D("0.010"), {"note": "as sent"})
    view = k.slot(0).active_entry_order
    assert (view.side, view.position_side) == ("BUY", "LONG")


@pytest.mark.parametrize("asset", ["", "NOPE-USDT"])
def test_an_entry_for_an_asset_the_venue_does_not_trade_is_refused_naming_it(asset):
    k = make_kernel()
    before = k.snapshot()
    out = enter(k, asset=asset)
    assert (out.accepted, out.diagnostic_code) == (False, "INVALID_INTENT")
    assert out.message.endswith(f"does not trade {asset!r}")
    assert k.snapshot() == before and k.venue.received == []


# ------------------------------------------------- what a user reads, and what an operator repairs


def test_the_trades_list_handed_out_is_a_copy():
    """Editing the list a report was built from rewrote the kernel's history, its snapshot
    and its next checkpoint."""
    k = make_kernel()
    enter(k)
    exit_(k)
    record = k.trades[0]["realized_pnl"]
    k.trades[0]["realized_pnl"] = D("12345")
    k.trades.clear()
    assert len(k.trades) == 1 and k.trades[0]["realized_pnl"] == record
    assert k.snapshot()["trades"][0]["realized_pnl"] == str(record)


def test_poll_outcomes_carry_the_event_each_applied():
    """A resting order's fill arrives through poll(): the strategy sees its size, price,
    fee and id in the outcome, not only the slot's new state."""
    k = make_kernel()
    assert enter(k, order_type="LIMIT", limit_price="59000").state == "ENTRY_WORKING"
    k.venue.set_price("BTC-USDT", "58900")
    outs = k.poll()
    assert [o.state for o in outs] == ["POSITION_OPEN"]
    fill = outs[0].emitted_events[0]
    assert (fill.kind, fill.client_order_id, fill.filled_size, fill.fill_price) == (
        "FULL_FILL", k.slot(0).entry_client_order_id, D("0.010"), D("59000"))


def test_reconcile_refuses_a_second_slot_carrying_an_order_of_another():
    """An operator pasting slot 0's snapshot into slot 1: the kernel counted the position
    twice, and slot 1's exit would sell what slot 0 holds."""
    k = make_kernel(slots=2)
    enter(k)
    before = k.snapshot()
    with pytest.raises(dita.ReconcileError) as err:
        k.reconcile({1: before["slots"][0]})
    assert err.value.violations == ["order 'e1' belongs to slots 0, 1: an order belongs to one slot"]
    assert k.snapshot() == before


def test_a_refused_reconcile_names_every_problem_at_once():
    """An order claimed twice was reported alone: the unknown state of another slot given in
    the same call, and a broken invariant, only came out one reconcile at a time."""
    k = make_kernel(slots=3)
    enter(k)
    before = k.snapshot()
    record = before["slots"][0]["record"]
    with pytest.raises(dita.ReconcileError) as err:
        k.reconcile({1: {"state": "IDLE", "record": record}})
    found = err.value.violations
    assert found[0] == "order 'e1' belongs to slots 0, 1: an order belongs to one slot"
    assert any("slot 1 (IDLE)" in v and "an idle slot holds no position" in v for v in found), found
    with pytest.raises(dita.ReconcileError) as err:
        k.reconcile({1: {"state": "IDLE", "record": record}, 2: {"state": "NOPE", "record": record}})
    found = err.value.violations
    assert found[0] == "order 'e1' belongs to slots 0, 1, 2: an order belongs to one slot"
    assert any(v.startswith("slot 2: unknown state 'NOPE'") for v in found), found
    assert any("slot 1 (IDLE)" in v and "an idle slot holds no position" in v for v in found), found
    assert k.snapshot() == before
    # The slots alone are good, the order is not: the engine's check passes, then the
    # slots are put back, and the order is still named.
    fine = {"state": "POSITION_OPEN", "record": record}
    with pytest.raises(dita.ReconcileError) as err:
        k.reconcile({1: fine})
    assert err.value.violations == ["order 'e1' belongs to slots 0, 1: an order belongs to one slot"]
    assert k.snapshot() == before


def test_two_slots_may_carry_trades_of_one_id_and_still_restore_and_recover(tmp_path):
    """Trade ids are the strategy's (per-slot numbering repeats them): a snapshot or a
    checkpoint of such a kernel restores and recovers, and each slot reconciles to itself."""
    k = dita.Kernel(venue=MockVenue(prices={"BTC-USDT": "60000"}), slots=2, capital=D("1000"),
                    journal=tmp_path / "run.sqlite")
    enter(k, slot=0, intent="e1", trade="1")
    enter(k, slot=1, intent="e2", trade="1")
    snap = json.loads(json.dumps(k.snapshot()))
    k.reconcile({0: snap["slots"][0], 1: snap["slots"][1]})
    assert_restores_and_recovers(k, tmp_path / "run.sqlite")


def test_a_reconcile_that_moves_a_trade_to_another_slot_moves_its_order_with_it(tmp_path):
    """The operator moves a trade with a working order from slot 0 to slot 1: the order's
    next fill reached the now idle slot 0 and froze it, and the kernel's own snapshot and
    checkpoint would not load."""
    k = dita.Kernel(venue=MockVenue(prices={"BTC-USDT": "60000"}, silent=True), slots=2, capital=D("1000"),
                    journal=tmp_path / "run.sqlite")
    enter(k, size="0.020", order_type="LIMIT", limit_price="59000")
    coid = k.slot(0).entry_client_order_id
    k.on_venue_event(dita.VenueEvent("PARTIALLY_FILLED", "f1", coid, "V1", D("0.010"), D("59000")))
    moved = k.snapshot()["slots"][0]
    k.reconcile({0: {"state": "IDLE", "record": {}, "seen": []}, 1: moved})
    out = k.on_venue_event(dita.VenueEvent("PARTIALLY_FILLED", "f2", coid, "V1", D("0.010"), D("59000")))
    assert (out.accepted, out.slot_id, out.state) == (True, 1, "POSITION_OPEN")
    assert (k.slot(0).fsm_state, k.slot(1).size) == ("IDLE", D("0.020"))
    assert_restores_and_recovers(k, tmp_path / "run.sqlite")


def test_undoing_a_reconcile_brings_the_trades_orders_back():
    """Reconciled to IDLE by mistake, then back to its own snapshot: the fills applied after
    the undo count as the order's, so their re-delivery after the next trade started is a
    duplicate (it froze the next trade)."""
    k = make_kernel(entry_fill_ratio="0")
    enter(k, size="0.020", order_type="LIMIT", limit_price="59000")
    coid = k.slot(0).entry_client_order_id
    k.venue.fill(coid, "0.005")
    k.poll()
    snap = k.snapshot()["slots"][0]
    k.reconcile({0: {"state": "IDLE", "record": {}}})
    k.reconcile({0: snap})
    late = k.venue.fill(coid, "0.005")
    assert [o.diagnostic_code for o in k.poll()] == ["OK"]
    assert cancel(k).state == "POSITION_OPEN"
    assert exit_(k).state == "TRADE_TERMINAL_WRITTEN"
    assert enter(k, intent="e2", trade="t2", size="0.010").accepted
    again = k.on_venue_event(late[0])
    assert (again.accepted, again.diagnostic_code) == (False, "DUPLICATE_EVENT")
    assert k.slot(0).trade_id == "t2" and k.slot(0).fsm_state != "FROZEN"


def test_a_reconcile_that_gives_a_slot_another_trade_ends_the_old_trades_orders():
    """The old trade's orders are no longer the slot's: a later event of theirs gets the
    ended-order checks, and a snapshot of the reconciled kernel restores."""
    k = make_kernel(slots=1)
    enter(k)
    exit_(k)
    idle = {"state": "IDLE", "record": {}}
    k.reconcile({0: idle})
    assert k.slot(0).fsm_state == "IDLE" and k.slot(0).trade_id is None
    restored = dita.Kernel.restore(json.loads(json.dumps(k.snapshot())), venue=k.venue)
    assert restored.snapshot() == k.snapshot()
    late = dita.VenueEvent("PARTIALLY_FILLED", "late", "x1", "V", D("0.001"), D("60000"))
    out = k.on_venue_event(late)
    assert (out.accepted, out.diagnostic_code) == (False, "OVERFILL")   # x1 filled its whole quantity


def test_views_are_read_only_and_intent_metadata_must_be_a_mapping_of_json():
    k = make_kernel()
    enter(k)
    view, account = k.slot(0), k.account
    with pytest.raises(AttributeError, match="a SlotView is a read-only copy of the slot"):
        view.size = D("5")
    with pytest.raises(AttributeError, match="an AccountView is a read-only copy of the account"):
        account.capital = D("0")
    with pytest.raises(TypeError, match="a SlotView's record is a read-only copy"):
        view.record["size"] = D("5")
    edited = dict(view.record, size=D("0.010"))      # a copy is a plain dict, for reconcile()
    assert edited["size"] == D("0.010") and view.size == k.slot(0).size
    assert (k.slot(0).size, k.account.capital) == (view.size, account.capital)
    for metadata, message in (([1, 2], "metadata must be a mapping"), ("tag", "metadata must be a mapping"),
                              ({"signal": float("nan")}, "a float NaN or infinity, which JSON cannot hold")):
        with pytest.raises(dita.InvalidInputError, match=message):
            dita.KernelIntent("CANCEL", 0, "c1", metadata=metadata)


def test_an_enter_with_an_empty_id_says_which():
    k = make_kernel()
    out = k.process_intent(dita.KernelIntent("ENTER", 0, "", trade_id="t1", asset="BTC-USDT", side="LONG",
                                             target_size="0.010"))
    assert (out.accepted, out.diagnostic_code) == (False, "INVALID_INTENT")
    assert out.message.startswith("intent_id is empty")
    assert k.venue.received == []


def assert_restores_and_recovers(k, journal):
    """The kernel's snapshot restores, and its journal recovers (from a checkpoint taken
    now, and from the start), to the same kernel."""
    assert dita.Kernel.restore(json.loads(json.dumps(k.snapshot())), venue=k.venue).snapshot() == k.snapshot()
    k.checkpoint()
    k.close()
    for from_checkpoint in (True, False):
        again = dita.Kernel.recover(journal, venue=k.venue, sync=False, read_only=True, from_checkpoint=from_checkpoint)
        assert again.snapshot() == k.snapshot()


def test_many_fills_of_one_trade_are_each_applied_once_across_a_restore():
    """A trade's de-dup keys start in a small set and move to a larger one past 16: forty
    partial fills, each delivered twice, and again after a snapshot is restored, are each
    counted once, to the last digit of the account."""
    k = make_kernel(capital="1000")
    resting_entry(k, size="0.040")
    coid = k.slot(0).entry_client_order_id
    fills = [dita.VenueEvent("PARTIALLY_FILLED", f"f{i}", coid, "V-1", filled_size=D("0.001"),
                             fill_price=D("59000"), fee=D("0.01")) for i in range(40)]
    for i, ev in enumerate(fills[:39]):
        assert k.on_venue_event(ev).accepted, i
        assert [k.on_venue_event(fills[j]).diagnostic_code for j in range(i + 1)] == ["DUPLICATE_EVENT"] * (i + 1)
    assert (k.slot(0).fsm_state, k.slot(0).size, k.account.fees_paid) == ("ENTRY_WORKING", D("0.039"), D("0.39"))
    restored = dita.Kernel.restore(k.snapshot(), venue=k.venue)
    assert {restored.on_venue_event(ev).diagnostic_code for ev in fills[:39]} == {"DUPLICATE_EVENT"}
    last = restored.on_venue_event(fills[39])
    assert (last.accepted, last.state) == (True, "POSITION_OPEN")
    assert restored.on_venue_event(fills[39]).diagnostic_code == "DUPLICATE_EVENT"
    assert (restored.slot(0).size, restored.account.fees_paid, restored.account.capital) == (D("0.040"), D("0.40"), D("999.60"))
