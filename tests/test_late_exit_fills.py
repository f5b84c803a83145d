"""A fill of the exit order before the current one is applied, not frozen.

A trader moving a resting exit cancels it and sends the next one. A fill of the first that
raced the cancel can arrive after the venue acknowledged the cancel and after the next exit
was sent. It is real money: the position shrinks, its PnL and fee settle into the account,
it counts against that earlier order's own quantity (overfills refused), and a re-delivery
is refused. Only what the slot cannot place still freezes it, saying why. Every scenario
runs on the native, general and journaled kernel paths."""

from __future__ import annotations

import json

import pytest

import dita
from conftest import D, assert_account_identity, cancel, exit_
from dita_mock import MockVenue
from test_dedup_scope import PATHS, fill, quiet_kernel, working_entry


def moved_exit(path, tmp_path, ratios=()):
    """Position 0.010 bought at 59000; exit x1 (LIMIT 61000) cancelled and acknowledged, the
    next exit x2 (LIMIT 62000) working. Returns the kernel and both client order ids."""
    if ratios:
        k = quiet_kernel(path, tmp_path)
        k.process_intent(dita.KernelIntent("ENTER", 0, "e1", trade_id="t1", asset="BTC-USDT", side="LONG",
                                           target_size="0.010", order_type="LIMIT", limit_price="59000",
                                           exit_leg_ratios=ratios))
        entry = k.slot(0).active_entry_order.client_order_id
    else:
        k, entry = working_entry(path, tmp_path)
    assert fill(k, "1", entry, "0.010", "59000", kind="FULL_FILL").state == "POSITION_OPEN"
    exit_(k, 0, "x1", order_type="LIMIT", limit_price="61000")
    x1 = k.slot(0).active_exit_order.client_order_id
    assert cancel(k, 0, "c1").state == "EXIT_CANCEL_PENDING"
    assert k.on_venue_event(dita.VenueEvent("CANCEL_ACK", "2", x1, "V-" + x1)).state == "POSITION_OPEN"
    exit_(k, 0, "x2", order_type="LIMIT", limit_price="62000")
    x2 = k.slot(0).active_exit_order.client_order_id
    assert k.slot(0).fsm_state == "EXIT_WORKING" and x2 != x1
    return k, x1, x2


@pytest.mark.parametrize("path", PATHS)
def test_a_fill_of_the_moved_exit_that_raced_its_cancel_is_settled(path, tmp_path):
    k, x1, x2 = moved_exit(path, tmp_path)
    late = fill(k, "3", x1, "0.004", "61000")
    assert (late.accepted, late.diagnostic_code, late.state) == (True, "OK", "EXIT_WORKING")
    s = k.slot(0)
    assert (s.size, s.prev_exit_client_order_id, s.prev_exit_filled) == (D("0.006"), x1, D("0.004"))
    assert s.active_exit_order.client_order_id == x2  # the next exit still works
    assert s.exit_filled == D("0")                     # and has filled nothing
    # 0.004 x (61000 - 59000) = 8 gross; the entry's fee and this fill's fee paid.
    assert (s.gross_pnl, s.fees_paid, s.realized_pnl) == (D("8"), D("0.02"), D("7.98"))
    assert (k.account.capital, k.account.realized_pnl) == (D("1007.98"), D("7.98"))
    assert_account_identity(k)
    assert k.order_progress(x1).filled_size == D("0.004")
    # The rest of the position closes through the working exit.
    closed = fill(k, "1", x2, "0.006", "62000", kind="FULL_FILL")
    assert (closed.accepted, closed.state) == (True, "TRADE_TERMINAL_WRITTEN")
    trade = k.trades[-1]
    assert (trade["gross_pnl"], trade["fees_paid"], trade["realized_pnl"]) == (D("26"), D("0.03"), D("25.97"))
    assert k.account.capital == D("1025.97")
    assert_account_identity(k)


@pytest.mark.parametrize("path", PATHS)
def test_a_redelivered_or_overfilling_late_fill_of_the_earlier_exit_is_refused_and_changes_nothing(path, tmp_path):
    k, x1, _x2 = moved_exit(path, tmp_path)
    assert fill(k, "3", x1, "0.004", "61000").accepted
    before = k.snapshot()
    again = fill(k, "3", x1, "0.004", "61000")
    assert (again.accepted, again.diagnostic_code, again.state) == (False, "DUPLICATE_EVENT", "EXIT_WORKING")
    # x1 was for 0.01: 0.004 filled, 0.007 more would be 0.011.
    assert k.order(x1).quantity == D("0.01")
    over = fill(k, "4", x1, "0.007", "61000")
    assert (over.accepted, over.diagnostic_code, over.state) == (False, "OVERFILL", "EXIT_WORKING")
    assert over.message == f"fill of 0.007 exceeds earlier exit order {x1}: 0.004 of 0.01 already filled, position 0.006"
    assert k.snapshot() == before


@pytest.mark.parametrize("path", PATHS)
def test_a_late_fill_that_empties_the_position_while_the_next_exit_works_freezes_saying_so(path, tmp_path):
    k, x1, x2 = moved_exit(path, tmp_path)
    capital = k.account.capital
    out = fill(k, "3", x1, "0.010", "61000", kind="FULL_FILL")
    assert (out.accepted, out.state) == (True, "FROZEN")
    assert k.slot(0).frozen_reason == (f"fill of 0.01 at 61000 for earlier exit order {x1} closes the position "
                                       f"while exit order {x2} still works: cancel it, then reconcile")
    assert k.account.capital == capital  # nothing guessed: a human reconciles
    # The order selling what is no longer held can still be pulled.
    sent = len(k.venue.received)
    assert cancel(k, 0, "c2").state == "FROZEN"
    assert [(r["action"], r["client_order_id"]) for r in k.venue.received[sent:]] == [("cancel", x2)]


@pytest.mark.parametrize("path", PATHS)
def test_with_no_exit_working_a_late_fill_of_the_exit_before_last_can_close_the_trade(path, tmp_path):
    k, x1, x2 = moved_exit(path, tmp_path)
    assert fill(k, "1", x2, "0.004", "62000").state == "EXIT_WORKING"
    assert cancel(k, 0, "c2").state == "EXIT_CANCEL_PENDING"
    assert k.on_venue_event(dita.VenueEvent("CANCEL_ACK", "2", x2, "V-" + x2)).state == "POSITION_OPEN"
    part = fill(k, "3", x1, "0.002", "61000")
    assert (part.accepted, part.state, k.slot(0).size) == (True, "POSITION_OPEN", D("0.004"))
    # x1 has filled 0.006 of its 0.01 when its last fill closes the position.
    rest = fill(k, "4", x1, "0.004", "61000")
    assert (rest.accepted, rest.state) == (True, "TRADE_TERMINAL_WRITTEN")
    assert [t for t in rest.transitions if t[2] == "CLOSED"] == [("POSITION_OPEN", "PARTIALLY_FILLED", "CLOSED")]
    assert k.trades[-1]["gross_pnl"] == D("24")  # 0.004 x 3000 + 0.006 x 2000
    assert k.order_progress(x1).filled_size == D("0.006")
    assert_account_identity(k)


@pytest.mark.parametrize("path", PATHS)
def test_a_fill_of_an_exit_two_orders_back_still_freezes_naming_every_order(path, tmp_path):
    k, x1, x2 = moved_exit(path, tmp_path)
    assert cancel(k, 0, "c2").accepted
    assert k.on_venue_event(dita.VenueEvent("CANCEL_ACK", "2", x2, "V-" + x2)).state == "POSITION_OPEN"
    exit_(k, 0, "x3", order_type="LIMIT", limit_price="63000")
    x3 = k.slot(0).active_exit_order.client_order_id
    out = fill(k, "3", x1, "0.004", "61000")
    assert (out.accepted, out.state) == (True, "FROZEN")
    assert k.slot(0).frozen_reason == (f"fill of 0.004 at 61000 for order {x1}, which is neither the entry order (e1) "
                                       f"nor one of the last two exit orders ({x3}, {x2}) of the trade in this slot")


@pytest.mark.parametrize("path", PATHS)
def test_a_late_fill_counts_toward_the_leg_it_belongs_to(path, tmp_path):
    k, x1, x2 = moved_exit(path, tmp_path, ratios=("0.5", "0.5"))
    assert k.order(x1).quantity == D("0.005") and k.order(x2).quantity == D("0.005")
    assert fill(k, "3", x1, "0.002", "61000").accepted
    s = k.slot(0)
    assert (s.size, s.leg_filled, s.active_leg_index) == (D("0.008"), D("0.002"), 0)
    assert fill(k, "1", x2, "0.005", "62000", kind="FULL_FILL").state == "POSITION_OPEN"
    s = k.slot(0)
    assert (s.size, s.active_leg_index, s.leg_filled) == (D("0.003"), 1, D("0"))
    exit_(k, 0, "x3")  # the last leg takes what is left
    assert k.order(k.slot(0).active_exit_order.client_order_id).quantity == D("0.003")


@pytest.mark.parametrize("path", PATHS)
def test_the_earlier_exit_is_remembered_across_snapshot_and_restore(path, tmp_path):
    k, x1, _x2 = moved_exit(path, tmp_path)
    snap = json.loads(json.dumps(k.snapshot()))
    k2 = dita.Kernel.restore(snap, venue=MockVenue(prices={"BTC-USDT": "60000"}, silent=True))
    late = fill(k2, "3", x1, "0.004", "61000")
    assert (late.accepted, late.state, k2.slot(0).size) == (True, "EXIT_WORKING", D("0.006"))
    assert_account_identity(k2)


def test_reconcile_routes_the_earlier_exit_to_its_slot(tmp_path):
    k, x1, _x2 = moved_exit("native", tmp_path)
    fresh = dita.Kernel(venue=MockVenue(prices={"BTC-USDT": "60000"}, silent=True), slots=1, capital=D("1000"))
    fresh.reconcile({0: {"state": "EXIT_WORKING", "record": k.slot(0).record}})
    late = fill(fresh, "3", x1, "0.004", "61000")
    assert (late.accepted, late.state, fresh.slot(0).size) == (True, "EXIT_WORKING", D("0.006"))


def test_on_a_venue_honouring_reduce_only_the_race_ends_with_every_fill_settled():
    """The whole story on the mock, which honours reduce-only as BingX does: the next exit,
    sent while the earlier exit's fill is still on its way, is larger than what the venue
    still holds and is rejected; the late fill then settles, and the next exit fits."""
    k = dita.Kernel(venue=MockVenue(prices={"BTC-USDT": "60000"}), slots=1, capital=D("1000"))
    enter_out = k.process_intent(dita.KernelIntent("ENTER", 0, "e1", trade_id="t1", asset="BTC-USDT", side="LONG",
                                                   target_size="0.010"))
    assert enter_out.state == "POSITION_OPEN"
    exit_(k, 0, "x1", order_type="LIMIT", limit_price="61000")  # rests above the market
    x1 = k.slot(0).active_exit_order.client_order_id
    k.venue.fill(x1, "0.004")  # filled at the venue; the report is still on its way
    assert cancel(k, 0, "c1").state == "POSITION_OPEN"  # the venue cancels the rest at once
    assert k.venue.positions[("BTC-USDT", "LONG")] == D("0.006")
    rejected = exit_(k, 0, "x2", order_type="LIMIT", limit_price="62000")
    x2 = k.venue.received[-1]["client_order_id"]
    assert (k.venue.received[-1]["quantity"], rejected.state) == ("0.01", "POSITION_OPEN")
    assert k.slot(0).last_order_end == "reduce-only order of 0.01 exceeds the 0.006 of the position left to close"
    [late] = k.poll()
    assert (late.accepted, late.state, k.slot(0).size) == (True, "POSITION_OPEN", D("0.006"))
    assert k.slot(0).prev_exit_client_order_id == x1 and x2 != x1
    assert exit_(k, 0, "x3", order_type="LIMIT", limit_price="62000").state == "EXIT_WORKING"
    assert k.venue.received[-1]["quantity"] == "0.006"
    assert_account_identity(k)


@pytest.mark.parametrize("path", PATHS)
def test_rejected_retries_of_the_exit_do_not_displace_the_order_whose_fill_is_on_its_way(path, tmp_path):
    k, x1, x2 = moved_exit(path, tmp_path)
    # The venue rejects x2 and the retry x3 (say, larger than what it still holds).
    assert k.on_venue_event(dita.VenueEvent("REJECT", "1", x2, reason="reduce-only")).state == "POSITION_OPEN"
    exit_(k, 0, "x3", order_type="LIMIT", limit_price="62000")
    x3 = k.slot(0).active_exit_order.client_order_id
    assert k.on_venue_event(dita.VenueEvent("REJECT", "1", x3, reason="reduce-only")).state == "POSITION_OPEN"
    assert k.slot(0).prev_exit_client_order_id == x1
    late = fill(k, "3", x1, "0.004", "61000")
    assert (late.accepted, late.state, k.slot(0).size) == (True, "POSITION_OPEN", D("0.006"))
    # An exit cancelled after it worked does take the place of the one before it.
    exit_(k, 0, "x4", order_type="LIMIT", limit_price="62000")
    x4 = k.slot(0).active_exit_order.client_order_id
    assert cancel(k, 0, "c4").accepted
    assert k.on_venue_event(dita.VenueEvent("CANCEL_ACK", "1", x4, "V-x4")).state == "POSITION_OPEN"
    exit_(k, 0, "x5", order_type="LIMIT", limit_price="62000")
    assert k.slot(0).prev_exit_client_order_id == x4
