"""What goes out on the wire and what a closed trade's record says, where sizes and prices
do not divide evenly: legs from ratios written rounded (1/3), a position off the venue's
size step, a limit price below the price step, a late entry fill after an exit."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

import dita
from conftest import assert_account_identity
from dita import KernelIntent as KI
from dita import VenueEvent as VE
from dita_mock import MockVenue

THIRD = D(1) / 3   # 0.3333333333333333333333333333: 1/3 as a decimal can only be written


@pytest.mark.parametrize("size, legs", [
    ("0.009", ["0.003", "0.003", "0.003"]),
    ("3", ["1", "1", "1"]),
    ("30", ["10", "10", "10"]),
    ("0.010", ["0.003", "0.003", "0.004"]),
])
def test_legs_from_ratios_written_rounded_are_the_legs_meant(size, legs):
    """Three legs of 1/3 each: 3 x 0.333...3 is 0.999...9, which floored a whole step below
    the 1 meant (0.999, 0.999, 1.002), while 0.009 gave 0.003 each: the same ratios gave
    uneven legs depending on the size. The leg is rounded to 20 places before the step."""
    venue = MockVenue(prices={"BTC-USDT": "60000"})
    k = dita.Kernel(venue=venue, capital=D(10**6))
    k.process_intent(KI("ENTER", 0, "e", trade_id="t", asset="BTC-USDT", side="LONG", target_size=D(size),
                        exit_leg_ratios=(THIRD, THIRD, 1 - 2 * THIRD)))
    for i in range(3):
        assert k.process_intent(KI("EXIT", 0, f"x{i}")).accepted
    sent = [r["quantity"] for r in venue.received if r["reduce_only"]]
    assert [D(q) for q in sent] == [D(q) for q in legs]
    assert k.slot(0).fsm_state == "TRADE_TERMINAL_WRITTEN" and k.slot(0).size == 0
    assert_account_identity(k)


def test_a_position_off_the_size_step_is_exited_on_the_step_and_the_slot_records_what_was_sent():
    """A fill off the venue's size step (0.0055 where the step is 0.001) made the exit order
    0.0055 in the slot while the venue received 0.005: the slot no longer knew what was sent.
    Every quantity goes out on the step; the part below one step, which no order can close,
    is refused with a message that says so."""
    venue = MockVenue(prices={"BTC-USDT": "60000"}, silent=True)
    k = dita.Kernel(venue=venue, capital=D(10000))
    k.process_intent(KI("ENTER", 0, "e", trade_id="t", asset="BTC-USDT", side="LONG", target_size=D("0.01"),
                        order_type="LIMIT", limit_price=D("60000")))
    assert k.on_venue_event(VE("PARTIALLY_FILLED", "f1", "e", None, D("0.0055"), D("60000"), D(0))).accepted
    k.process_intent(KI("CANCEL", 0, "c"))
    assert k.on_venue_event(VE("CANCEL_ACK", "a1", "e")).state == "POSITION_OPEN"

    out = k.process_intent(KI("EXIT", 0, "x1"))
    assert out.state == "EXIT_WORKING"
    assert venue.received[-1]["quantity"] == "0.005"
    assert k.slot(0).active_exit_order.quantity == D("0.005") == k.slot(0).record["exit_quantity"]
    assert k.on_venue_event(VE("FULL_FILL", "g1", "x1", None, D("0.005"), D("61000"), D(0))).state == "POSITION_OPEN"
    assert k.slot(0).size == D("0.0005")

    before = k.snapshot()
    out = k.process_intent(KI("EXIT", 0, "x2"))
    assert (out.accepted, out.diagnostic_code) == (False, "BELOW_MIN_SIZE")
    assert out.message.endswith("the position 0.0005 is less than one size step (0.001) of BTC-USDT at the venue: "
                                "no order can close it; close it at the venue and reconcile the slot")
    assert k.snapshot() == before and len(venue.received) == 3


def test_a_limit_price_below_the_price_step_is_refused_saying_so():
    venue = MockVenue(prices={"BTC-USDT": "60000"})
    k = dita.Kernel(venue=venue, capital=D(10000))
    out = k.process_intent(KI("ENTER", 0, "e", trade_id="t", asset="BTC-USDT", side="LONG", target_size=D("0.01"),
                              order_type="LIMIT", limit_price=D("0.01")))
    assert (out.accepted, out.diagnostic_code, out.state) == (False, "INVALID_INTENT", "IDLE")
    assert "limit_price 0.01 is 0" in out.message and "price step (0.1) of BTC-USDT" in out.message
    assert venue.received == []


def test_the_record_of_a_trade_with_a_late_entry_fill_after_an_exit_gives_the_entry_fills_average():
    """An entry fill that raced the entry's cancel arrives after an exit fill: the slot's
    average cost moves on from what is still held (so each exit settles against the cost of
    what it sells), but the trade's record must give the average of all its entry fills —
    1180, not the 1200 it gave — so that record and PnL agree: bought 11.8, sold 11.8."""
    venue = MockVenue(prices={"BTC-USDT": "1000"}, silent=True)
    k = dita.Kernel(venue=venue, capital=D(10000))
    k.process_intent(KI("ENTER", 0, "e", trade_id="t", asset="BTC-USDT", side="LONG", target_size=D("0.010"),
                        order_type="LIMIT", limit_price=D("1000"), exit_leg_ratios=(D("0.5"), D("0.5"))))
    k.on_venue_event(VE("PARTIALLY_FILLED", "f1", "e", None, D("0.004"), D("1000"), D(0)))
    k.process_intent(KI("CANCEL", 0, "c"))
    k.on_venue_event(VE("CANCEL_ACK", "a1", "e"))
    k.process_intent(KI("EXIT", 0, "x1"))
    k.on_venue_event(VE("PARTIALLY_FILLED", "g1", "x1", None, D("0.001"), D("1100"), D(0)))
    k.on_venue_event(VE("PARTIALLY_FILLED", "f2", "e", None, D("0.006"), D("1300"), D(0)))   # raced the cancel
    assert k.slot(0).entry_price == D("1200")   # the cost of the 0.009 held: 0.003 at 1000, 0.006 at 1300
    k.on_venue_event(VE("PARTIALLY_FILLED", "g2", "x1", None, D("0.001"), D("1100"), D(0)))
    k.process_intent(KI("EXIT", 0, "x2"))
    k.on_venue_event(VE("FULL_FILL", "h1", "x2", None, D("0.008"), D("1200"), D(0)))
    [record] = k.trades
    assert D(record["initial_size"]) == D("0.010")
    assert D(record["entry_price"]) == D("1180")
    assert D(record["gross_pnl"]) == 0
    assert_account_identity(k)



def test_the_late_entry_fill_after_an_exit_assigns_what_every_entry_fill_does():
    """That candidate writes entry_fill_assign out (its own field must come first, which a
    YAML merge does not allow): the two must not drift apart."""
    import yaml

    templates = yaml.safe_load(dita.packaged_spec_path().read_text())["templates"]
    after_exit = dict(templates["late_entry_fill_after_exit"]["assign"])
    assert list(after_exit)[0] == "entry_vwap"
    del after_exit["entry_vwap"]
    assert after_exit == templates["entry_fill_assign"]
    assert list(after_exit) == list(templates["entry_fill_assign"])


@pytest.mark.parametrize("path", ["native", "general", "journaled"])
@pytest.mark.parametrize("kind", ["PARTIALLY_FILLED", "FULL_FILL"])
@pytest.mark.parametrize("arrives_in", ["EXIT_WORKING", "EXIT_CANCEL_PENDING", "POSITION_OPEN"])
def test_a_late_entry_fill_after_an_exit_in_each_state_it_can_reach(arrives_in, kind, path, tmp_path):
    """The conformance planner's bounded search does not reach these (an entry fill, its
    cancel, an exit fill, then the entry's late fill): driven here, in every state the late
    fill can find, on every kernel path. The position grows, its average cost moves on from
    the exited part, and the record gives the average of all entry fills."""
    venue = MockVenue(prices={"BTC-USDT": "1000"}, silent=True)
    journal = tmp_path / "run.sqlite" if path == "journaled" else None
    k = dita.Kernel(venue=venue, capital=D(10000), journal=journal)
    if path == "general":
        del k.on_venue_event
    k.process_intent(KI("ENTER", 0, "e", trade_id="t", asset="BTC-USDT", side="LONG", target_size=D("0.010"),
                        order_type="LIMIT", limit_price=D("1000"), exit_leg_ratios=(D("0.5"), D("0.5"))))
    k.on_venue_event(VE("PARTIALLY_FILLED", "f1", "e", None, D("0.004"), D("1000"), D("0.01")))
    k.process_intent(KI("CANCEL", 0, "c"))
    k.on_venue_event(VE("CANCEL_ACK", "a1", "e"))
    k.process_intent(KI("EXIT", 0, "x1"))                      # leg 1: 0.002
    if arrives_in == "POSITION_OPEN":
        k.on_venue_event(VE("FULL_FILL", "g1", "x1", None, D("0.002"), D("1100"), D("0.01")))
    else:
        k.on_venue_event(VE("PARTIALLY_FILLED", "g1", "x1", None, D("0.001"), D("1100"), D("0.01")))
        if arrives_in == "EXIT_CANCEL_PENDING":
            k.process_intent(KI("CANCEL", 0, "c2"))
    assert k.slot(0).fsm_state == arrives_in
    held = k.slot(0).size
    out = k.on_venue_event(VE(kind, "f2", "e", None, D("0.006"), D("1300"), D("0.01")))
    assert (out.accepted, out.transitions) == (True, ((arrives_in, kind, arrives_in),))
    s = k.slot(0)
    assert s.size == held + D("0.006") and s.initial_size == D("0.010")
    assert s.entry_price == (D("1000") * held + D("1300") * D("0.006")) / (held + D("0.006"))
    assert s.record["entry_vwap"] == D("1180")
    assert_account_identity(k)
    if path == "journaled":
        k.close()
        again = dita.Kernel.recover(journal, venue=venue, sync=False)
        assert again.snapshot() == k.snapshot()
