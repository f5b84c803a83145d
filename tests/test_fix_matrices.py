"""The order-state change matrices of FIX 4.4 (Volume 4, Appendix D) that apply to a slot's
orders, played by hand as a FIX session would deliver them: a silent venue records what it
is asked and answers nothing, and each execution report is handed to the kernel in the
matrix's order. Each step checks the slot's state; each scenario ends by checking what the
venue received and the exact sizes, prices and account. (Replace, reinstatement, trade
corrections and status requests have no counterpart in the lifecycle.)"""

from __future__ import annotations

from decimal import Decimal as D

import pytest

import dita
from conftest import assert_account_identity, enter, exit_, make_kernel

PRICE = "60000"


class Session:
    """A kernel on a silent venue, with the entry order resting and nothing reported yet."""

    def __init__(self, size="0.010", fee_rate="0"):
        self.k = make_kernel(silent=True, fee_rate=fee_rate)
        out = enter(self.k, size=size, order_type="LIMIT", limit_price=PRICE)
        assert out.state == "ORDER_REQUESTED"
        self.entry = self.k.slot(0).entry_client_order_id
        self.ids = 0

    def report(self, kind, size=None, coid=None, reason=None, fee=None, event_id=None):
        """One execution report; `size` is the fill's own size (LastQty)."""
        self.ids += 1
        fill = size is not None
        return self.k.on_venue_event(dita.VenueEvent(
            kind, event_id or f"x{self.ids}", coid or self.entry, "V-1",
            D(size) if fill else None, D(PRICE) if fill else None, D(fee) if fee else None, reason))

    def cancel(self, intent="c1"):
        return self.k.process_intent(dita.KernelIntent("CANCEL", 0, intent))

    def cancels_sent(self):
        return [r for r in self.k.venue.received if r["action"] == "cancel"]

    def steps(self, *steps):
        """Each step: (what it does, the state after it)."""
        for do, state in steps:
            out = do()
            assert out.state == state, (out.transitions, out.message)
            yield out


def run(session, *steps):
    return list(session.steps(*steps))


# ------------------------------------------------------------------- B: cancel requests


def test_b1a_cancel_of_a_zero_filled_order():
    s = Session()
    run(s, (lambda: s.report("ORDER_ACK"), "ENTRY_WORKING"),
        (lambda: s.cancel(), "ENTRY_CANCEL_PENDING"),
        (lambda: s.report("CANCEL_ACK"), "IDLE"))
    assert [c["client_order_id"] for c in s.cancels_sent()] == [s.entry]
    assert (s.k.slot(0).size, s.k.account.capital) == (0, D("1000"))


def test_b1b_executions_while_the_cancel_request_is_active_are_kept():
    s = Session()
    run(s, (lambda: s.report("ORDER_ACK"), "ENTRY_WORKING"),
        (lambda: s.report("PARTIALLY_FILLED", "0.004"), "ENTRY_WORKING"),
        (lambda: s.cancel(), "ENTRY_CANCEL_PENDING"),
        (lambda: s.report("PARTIALLY_FILLED", "0.002"), "ENTRY_CANCEL_PENDING"),
        (lambda: s.report("CANCEL_ACK"), "POSITION_OPEN"))
    slot = s.k.slot(0)
    assert (slot.size, slot.initial_size, slot.entry_price, slot.active_entry_order) == (D("0.006"), D("0.006"), D(PRICE), None)


def test_b1c_the_order_fills_before_the_cancel_is_accepted_and_the_reject_changes_nothing():
    s = Session()
    run(s, (lambda: s.report("ORDER_ACK"), "ENTRY_WORKING"),
        (lambda: s.report("PARTIALLY_FILLED", "0.004"), "ENTRY_WORKING"),
        (lambda: s.cancel(), "ENTRY_CANCEL_PENDING"),
        (lambda: s.report("FULL_FILL", "0.006"), "POSITION_OPEN"))
    before = s.k.snapshot()
    too_late = s.report("CANCEL_REJECT", reason="too late to cancel")
    assert (too_late.accepted, too_late.diagnostic_code, too_late.state) == (False, "STALE_EVENT", "POSITION_OPEN")
    assert s.k.snapshot() == before and s.k.slot(0).size == D("0.010")


def test_b1d_cancel_of_an_order_not_yet_acknowledged():
    s = Session()
    run(s, (lambda: s.cancel(), "ENTRY_CANCEL_PENDING"),
        (lambda: s.report("ORDER_ACK"), "ENTRY_CANCEL_PENDING"),
        (lambda: s.report("CANCEL_ACK"), "IDLE"))
    assert len(s.cancels_sent()) == 1 and s.k.slot(0).size == 0


def test_b1e_the_acknowledgement_and_the_cancel_cross():
    """The venue refuses the cancel (it does not know the order yet), then acknowledges the
    order: it works, and a second cancel is sent and taken."""
    s = Session()
    run(s, (lambda: s.cancel("c1"), "ENTRY_CANCEL_PENDING"),
        (lambda: s.report("CANCEL_REJECT", reason="unknown order"), "ENTRY_WORKING"),
        (lambda: s.report("ORDER_ACK"), "ENTRY_WORKING"),
        (lambda: s.cancel("c2"), "ENTRY_CANCEL_PENDING"),
        (lambda: s.report("CANCEL_ACK"), "IDLE"))
    assert [c["client_order_id"] for c in s.cancels_sent()] == [s.entry, s.entry]
    assert (s.k.slot(0).size, s.k.slot(0).active_entry_order, s.k.slot(0).last_order_end) == (0, None, None)


def test_b1f_cancel_with_no_order_sends_nothing():
    s = Session()
    run(s, (lambda: s.report("ORDER_ACK"), "ENTRY_WORKING"),
        (lambda: s.report("FULL_FILL", "0.010"), "POSITION_OPEN"))
    out = s.cancel()
    assert (out.accepted, out.diagnostic_code, out.state) == (False, "NO_WORKING_ORDER", "POSITION_OPEN")
    assert s.cancels_sent() == []


def test_d_a_second_cancel_while_the_first_is_pending_is_refused_and_not_sent():
    s = Session()
    run(s, (lambda: s.report("ORDER_ACK"), "ENTRY_WORKING"),
        (lambda: s.cancel("c1"), "ENTRY_CANCEL_PENDING"))
    again = s.cancel("c2")
    assert (again.accepted, again.diagnostic_code, again.state) == (False, "CANCEL_PENDING", "ENTRY_CANCEL_PENDING")
    assert len(s.cancels_sent()) == 1


# ------------------------------------------- E, F, I: unsolicited ends, rejects, time in force


def test_e1b_unsolicited_cancel_of_a_part_filled_order_keeps_the_filled_part():
    s = Session()
    run(s, (lambda: s.report("ORDER_ACK"), "ENTRY_WORKING"),
        (lambda: s.report("PARTIALLY_FILLED", "0.004"), "ENTRY_WORKING"),
        (lambda: s.report("CANCEL_ACK", reason="cancelled by the venue"), "POSITION_OPEN"))
    assert (s.k.slot(0).size, s.k.slot(0).last_order_end) == (D("0.004"), "cancelled by the venue")
    assert s.cancels_sent() == []


def test_f1_a_rejected_order_frees_the_slot_and_says_why():
    s = Session()
    run(s, (lambda: s.report("REJECT", reason="duplicate ClOrdID"), "IDLE"))
    assert (s.k.slot(0).size, s.k.slot(0).last_order_end) == (0, "duplicate ClOrdID")


def test_i1_a_fill_or_kill_order_that_cannot_fill_expires_with_nothing():
    s = Session()
    run(s, (lambda: s.report("ORDER_ACK"), "ENTRY_WORKING"),
        (lambda: s.report("EXPIRED", reason="FOK not filled"), "IDLE"))
    assert s.k.slot(0).size == 0 and s.k.account.capital == D("1000")


def test_i2_an_immediate_or_cancel_order_partly_filled_keeps_its_fill():
    s = Session(fee_rate="0")
    run(s, (lambda: s.report("ORDER_ACK"), "ENTRY_WORKING"),
        (lambda: s.report("PARTIALLY_FILLED", "0.003", fee="0.09"), "ENTRY_WORKING"),
        (lambda: s.report("EXPIRED", reason="IOC remainder cancelled"), "POSITION_OPEN"))
    assert (s.k.slot(0).size, s.k.account.fees_paid, s.k.account.capital) == (D("0.003"), D("0.09"), D("999.91"))
    assert_account_identity(s.k)


def test_a_resent_execution_report_is_applied_once():
    """PossResend: the same report again (same ExecID) changes nothing."""
    s = Session()
    run(s, (lambda: s.report("ORDER_ACK"), "ENTRY_WORKING"),
        (lambda: s.report("PARTIALLY_FILLED", "0.004", event_id="exec-7"), "ENTRY_WORKING"))
    before = s.k.snapshot()
    again = s.report("PARTIALLY_FILLED", "0.004", event_id="exec-7")
    assert (again.accepted, again.diagnostic_code) == (False, "DUPLICATE_EVENT")
    assert s.k.snapshot() == before and s.k.slot(0).size == D("0.004")


# ------------------------------------------------------------- the same on the exit order


def open_position(size="0.010"):
    s = Session(size=size)
    run(s, (lambda: s.report("ORDER_ACK"), "ENTRY_WORKING"),
        (lambda: s.report("FULL_FILL", size), "POSITION_OPEN"))
    return s


def test_b1b_on_the_exit_fills_during_the_cancel_settle_and_the_rest_stays_open():
    s = open_position()
    out = exit_(s.k, order_type="LIMIT", limit_price="61000")
    assert out.state == "EXIT_WORKING"
    x = s.k.slot(0).exit_client_order_id

    def fill(size):
        return s.k.on_venue_event(dita.VenueEvent("PARTIALLY_FILLED", f"xf{size}", x, "V-2", D(size), D("61000")))

    run(s, (lambda: s.report("ORDER_ACK", coid=x), "EXIT_WORKING"),
        (lambda: fill("0.004"), "EXIT_WORKING"),
        (lambda: s.cancel("cx"), "EXIT_CANCEL_PENDING"),
        (lambda: fill("0.001"), "EXIT_CANCEL_PENDING"),
        (lambda: s.report("CANCEL_ACK", coid=x), "POSITION_OPEN"))
    slot = s.k.slot(0)
    assert (slot.size, slot.active_exit_order) == (D("0.005"), None)
    assert s.k.account.gross_realized_pnl == D("5.000")  # 0.005 x (61000 - 60000)
    assert s.k.account.capital == D("1005.000")
    assert [c["client_order_id"] for c in s.cancels_sent()] == [x]
    assert_account_identity(s.k)


def test_b1c_on_the_exit_the_fill_wins_and_the_late_reject_changes_nothing():
    s = open_position()
    exit_(s.k, order_type="LIMIT", limit_price="61000")
    x = s.k.slot(0).exit_client_order_id
    run(s, (lambda: s.report("ORDER_ACK", coid=x), "EXIT_WORKING"),
        (lambda: s.cancel("cx"), "EXIT_CANCEL_PENDING"),
        (lambda: s.k.on_venue_event(dita.VenueEvent("FULL_FILL", "xf", x, "V-2", D("0.010"), D("61000"))),
         "TRADE_TERMINAL_WRITTEN"))
    before = s.k.snapshot()
    late = s.report("CANCEL_REJECT", coid=x, reason="too late to cancel")
    assert (late.accepted, late.diagnostic_code) == (False, "STALE_EVENT")
    assert s.k.snapshot() == before
    assert [t["realized_pnl"] for t in s.k.trades] == [D("10.000")]


# --------------------------------------------- fills that raced a cancel, then the trade's end


def test_b1b_a_late_entry_fill_takes_one_exit_order_more_and_the_last_one_closes_the_trade():
    """The entry fill that raced its cancel arrives while the exit works: the position grows,
    so one exit order more than there are legs is needed. The fill that closes the trade
    was refused (the leg index passed its bound) and the slot kept a position the venue had
    already sold."""
    s = Session()
    run(s, (lambda: s.report("ORDER_ACK"), "ENTRY_WORKING"),
        (lambda: s.report("PARTIALLY_FILLED", "0.004"), "ENTRY_WORKING"),
        (lambda: s.cancel(), "ENTRY_CANCEL_PENDING"),
        (lambda: s.report("CANCEL_ACK"), "POSITION_OPEN"))
    assert exit_(s.k, intent="x1").state == "EXIT_WORKING"
    assert s.k.slot(0).active_exit_order.quantity == D("0.004")
    run(s, (lambda: s.report("PARTIALLY_FILLED", "0.002"), "EXIT_WORKING"))   # the entry's late fill
    assert s.k.slot(0).size == D("0.006")
    run(s, (lambda: s.report("FULL_FILL", "0.004", coid="x1"), "POSITION_OPEN"))
    assert (s.k.slot(0).size, s.k.slot(0).active_leg_index) == (D("0.002"), 1)
    assert exit_(s.k, intent="x2").state == "EXIT_WORKING"
    assert s.k.slot(0).active_exit_order.quantity == D("0.002")
    out = s.report("FULL_FILL", "0.002", coid="x2")
    assert (out.accepted, out.state) == (True, "TRADE_TERMINAL_WRITTEN"), out.message
    assert s.k.slot(0).size == 0 and s.k.slot(0).active_leg_index == 1
    assert s.k.trades[-1]["initial_size"] == D("0.006")
    assert_account_identity(s.k)


def test_an_overfill_of_a_closed_trades_orders_is_refused_and_a_fill_within_them_freezes_the_slot():
    """After the trade ended, a fill beyond its entry order's quantity (or the earlier exit
    order's) is an overfill: refused, nothing changed. It used to freeze the slot and say OK."""
    s = Session()
    run(s, (lambda: s.report("FULL_FILL", "0.010"), "POSITION_OPEN"))
    exit_(s.k, intent="x1", order_type="LIMIT", limit_price="61000")
    run(s, (lambda: s.report("PARTIALLY_FILLED", "0.004", coid="x1"), "EXIT_WORKING"),
        (lambda: s.cancel(intent="c1"), "EXIT_CANCEL_PENDING"),
        (lambda: s.report("CANCEL_ACK", coid="x1"), "POSITION_OPEN"))
    exit_(s.k, intent="x2")
    run(s, (lambda: s.report("FULL_FILL", "0.006", coid="x2"), "TRADE_TERMINAL_WRITTEN"))
    before = s.k.snapshot()
    for coid, size, why in ((s.entry, "0.001", "exceeds entry order"), ("x1", "0.007", "exceeds earlier exit order"),
                            ("x2", "0.001", "position is already closed")):
        out = s.report("PARTIALLY_FILLED", size, coid=coid)
        assert (out.accepted, out.diagnostic_code, out.state) == (False, "OVERFILL", "TRADE_TERMINAL_WRITTEN")
        assert why in out.message
    assert s.k.snapshot() == before
    # Within the earlier exit order's quantity it is a sale the closed trade cannot take.
    out = s.report("PARTIALLY_FILLED", "0.006", coid="x1")
    assert (out.accepted, out.state) == (True, "FROZEN")
    assert "after the trade in this slot ended" in s.k.slot(0).record["frozen_reason"]


# ------------------------------------------------------- no cancel/replace in disguise


def test_a_cancel_or_exit_carrying_fields_it_does_not_take_is_refused_not_ignored():
    """A CANCEL with a size or a price reads as a cancel/replace (FIX 35=G), which the
    lifecycle does not offer: it was accepted and sent as a plain cancel of everything."""
    s = Session()
    run(s, (lambda: s.report("ORDER_ACK"), "ENTRY_WORKING"))
    before = s.k.snapshot()
    for fields, named in ((dict(target_size="0.006"), "got target_size=0.006"),
                          (dict(order_type="LIMIT", limit_price="59000"), "got order_type=LIMIT, limit_price=59000"),
                          (dict(leverage="3"), "got leverage=3")):
        with pytest.raises(dita.InvalidInputError, match="there is no amend or cancel/replace") as err:
            s.k.process_intent(dita.KernelIntent("CANCEL", 0, "c1", **fields))
        assert named in str(err.value)
    for fields, named in ((dict(leverage="3"), "got leverage=3"),
                          (dict(exit_leg_ratios=("0.5", "0.5")), "got exit_leg_ratios=(0.5, 0.5)"),
                          (dict(reference_price="61000"), "got reference_price=61000")):
        with pytest.raises(dita.InvalidInputError, match="an EXIT takes no leverage") as err:
            dita.KernelIntent("EXIT", 0, "x1", **fields)
        assert named in str(err.value)
    assert s.k.snapshot() == before and s.cancels_sent() == []
    assert s.cancel().state == "ENTRY_CANCEL_PENDING"     # the plain CANCEL still works
