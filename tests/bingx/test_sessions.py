"""Full kernel sessions through ``dita.Kernel(venue="bingx", ...)`` against the simulator:
slot states, exact sizes and figures, the account identity, and what the exchange received."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

import dita

from .conftest import (
    KEY, SECRET, assert_account_identity, cancel, contracts, enter, exit_, requests_to,
)


def _orders_sent(sim):
    keep = ("symbol", "side", "type", "quantity", "price", "timeInForce", "positionSide", "reduceOnly", "clientOrderID")
    return [{k: r["params"][k] for k in keep if k in r["params"]} for r in requests_to(sim, "place_order")]


def test_partial_entry_then_cancel_then_two_leg_exit(make_sim, make_kernel):
    sim = make_sim(liquidity={"BTC-USDT": "0.004"})
    k = make_kernel(sim, capital="1000")
    start = sim.account()["balance"]

    out = enter(k, size="0.010", order_type="LIMIT", limit_price="59990.07", ratios=("0.5", "0.5"))
    assert (out.accepted, out.state) == (True, "ENTRY_WORKING")
    assert out.transitions == (("IDLE", "ENTER", "ORDER_REQUESTED"), ("ORDER_REQUESTED", "ORDER_ACK", "ENTRY_WORKING"))
    entry = k.slot(0).active_entry_order
    assert (entry.client_order_id, entry.quantity, entry.limit_price) == ("dita-e1", D("0.0100"), D("59990.0"))
    assert entry.venue_order_id == str(sim.order("dita-e1")["orderId"])

    # The market trades through the limit, but only 0.004 is there to buy.
    assert [f["quantity"] for f in sim.set_price("BTC-USDT", "59980")] == [D("0.004")]
    outs = k.poll()
    assert [(o.state, o.transitions) for o in outs] == [
        ("ENTRY_WORKING", (("ENTRY_WORKING", "PARTIALLY_FILLED", "ENTRY_WORKING"),))]
    assert k.poll() == []   # nothing new: nothing applied twice
    s = k.slot(0)
    assert (s.size, s.entry_price, s.active_entry_order.filled_size) == (D("0.004"), D("59990.0"), D("0.004"))
    assert k.account.fees_paid == D("0.047992")   # maker 0.02% of 0.004 x 59990

    out = cancel(k)
    assert out.state == "POSITION_OPEN"
    assert out.transitions == (("ENTRY_WORKING", "CANCEL", "ENTRY_CANCEL_PENDING"),
                               ("ENTRY_CANCEL_PENDING", "CANCEL_ACK", "POSITION_OPEN"))
    assert sim.order("dita-e1")["status"] == "CANCELLED"
    s = k.slot(0)
    assert (s.size, s.initial_size, s.active_entry_order) == (D("0.004"), D("0.004"), None)

    # Leg 1 of 2: half of what the entry filled, at MARKET; it fills in the same call.
    out = exit_(k, "x1")
    assert out.state == "POSITION_OPEN"
    assert out.transitions[-2:] == (("EXIT_WORKING", "ORDER_ACK", "EXIT_WORKING"),
                                    ("EXIT_WORKING", "FULL_FILL", "POSITION_OPEN"))
    assert k.slot(0).size == D("0.002")
    assert k.account.realized_pnl == D("-0.02") - D("0.047992") - D("0.05998")   # taker 0.05% of 0.002 x 59980
    assert_account_identity(k)

    # Leg 2: the rest, LIMIT 60100.04 -> a sell rounds up to 60100.1; it rests, then fills in two moves.
    sim.set_liquidity("BTC-USDT", "0.001")
    out = exit_(k, "x2", order_type="LIMIT", limit_price="60100.04")
    assert out.state == "EXIT_WORKING"
    assert k.slot(0).active_exit_order.limit_price == D("60100.1")
    sim.set_price("BTC-USDT", "60200")
    assert [o.state for o in k.poll()] == ["EXIT_WORKING"]
    s = k.slot(0)
    assert (s.size, s.active_exit_order.filled_size) == (D("0.001"), D("0.001"))
    capital_after_part = k.account.capital
    # Maker 0.02% of 0.001 x 60100.1 is 0.01202002; BingX charges commission to 6 decimals.
    assert capital_after_part == D("1000") + D("-0.02") + D("0.1101") - D("0.047992") - D("0.05998") - D("0.012020")
    sim.set_price("BTC-USDT", "60150")
    outs = k.poll()
    assert outs[-1].state == "TRADE_TERMINAL_WRITTEN"
    assert outs[-1].transitions == (("EXIT_WORKING", "FULL_FILL", "CLOSED"), ("CLOSED", "TERMINAL_WRITTEN", "TRADE_TERMINAL_WRITTEN"))

    a = k.account
    fees = D("0.047992") + D("0.05998") + 2 * D("0.012020")
    gross = D("-0.02") + 2 * D("0.1101")
    assert (a.gross_realized_pnl, a.fees_paid, a.realized_pnl) == (gross, fees, gross - fees)
    assert a.capital == D("1000") + gross - fees == D("1000.068188")
    assert_account_identity(k)
    # The exchange's own books agree to the last digit.
    assert sim.account()["balance"] - start == a.realized_pnl
    assert sim.position("BTC-USDT") == 0
    assert k.trades[-1]["realized_pnl"] == gross - fees and k.slot(0).closed

    assert _orders_sent(sim) == [
        {"symbol": "BTC-USDT", "side": "BUY", "type": "LIMIT", "quantity": "0.0100", "price": "59990.0",
         "timeInForce": "GTC", "positionSide": "BOTH", "clientOrderID": "dita-e1"},
        {"symbol": "BTC-USDT", "side": "SELL", "type": "MARKET", "quantity": "0.0020", "positionSide": "BOTH",
         "reduceOnly": "true", "clientOrderID": "dita-x1"},
        {"symbol": "BTC-USDT", "side": "SELL", "type": "LIMIT", "quantity": "0.0020", "price": "60100.1",
         "timeInForce": "GTC", "positionSide": "BOTH", "reduceOnly": "true", "clientOrderID": "dita-x2"},
    ]
    cancels = requests_to(sim, "cancel_order")
    assert [{k: r["params"][k] for k in ("symbol", "clientOrderID")} for r in cancels] == [
        {"symbol": "BTC-USDT", "clientOrderID": "dita-e1"}]


def test_short_market_round_trip_with_leverage(sim, make_kernel):
    k = make_kernel(sim, capital="500")
    out = enter(k, side="SHORT", size="0.05", asset="ETH-USDT", leverage="3")
    assert out.state == "POSITION_OPEN"
    assert sim.position("ETH-USDT") == D("-0.05")
    leverage = requests_to(sim, "leverage")
    assert [r["params"]["leverage"] for r in leverage] == ["3"] and leverage[0]["params"]["side"] == "BOTH"
    assert [r["method"] for r in sim.requests if r["endpoint"] in ("leverage", "place_order")] == ["POST", "POST"]
    sim.set_price("ETH-USDT", "2900")
    out = exit_(k)
    assert out.state == "TRADE_TERMINAL_WRITTEN"
    # entry 0.05 @ 3000, exit 0.05 @ 2900, taker 0.05% each way
    fees = D("0.05") * D("3000") * D("0.0005") + D("0.05") * D("2900") * D("0.0005")
    assert k.account.gross_realized_pnl == D("5")
    assert k.account.capital == D("500") + D("5") - fees
    assert sim.position("ETH-USDT") == 0
    # Same leverage on the next trade: not set again.
    enter(k, "e2", trade="t2", side="SHORT", size="0.05", asset="ETH-USDT", leverage="3")
    assert len(requests_to(sim, "leverage")) == 1


def test_hedge_mode_sends_position_sides_and_no_reduce_only(make_sim, make_kernel):
    sim = make_sim(position_mode="hedge")
    k = make_kernel(sim, position_mode="hedge")
    assert enter(k, side="LONG", size="0.010").state == "POSITION_OPEN"
    assert exit_(k).state == "TRADE_TERMINAL_WRITTEN"
    sent = _orders_sent(sim)
    assert [(o["side"], o["positionSide"], "reduceOnly" in o) for o in sent] == [("BUY", "LONG", False),
                                                                                  ("SELL", "LONG", False)]
    assert sim.position("BTC-USDT", "LONG") == 0


def test_two_slots_on_two_assets_get_their_own_fills(sim, make_kernel):
    k = make_kernel(sim, slots=2, capital="2000")
    enter(k, "a1", slot=0, trade="ta", asset="BTC-USDT", size="0.010", order_type="LIMIT", limit_price="59000")
    enter(k, "b1", slot=1, trade="tb", asset="ETH-USDT", side="SHORT", size="0.10", order_type="LIMIT", limit_price="3100")
    sim.set_price("ETH-USDT", "3150")
    outs = k.poll()
    assert [(o.slot_id, o.state) for o in outs] == [(1, "POSITION_OPEN")]
    assert (k.slot(0).fsm_state, k.slot(1).size) == ("ENTRY_WORKING", D("0.10"))
    sim.set_price("BTC-USDT", "58900")
    assert [(o.slot_id, o.state) for o in k.poll()] == [(0, "POSITION_OPEN")]
    assert (k.slot(0).entry_price, k.slot(1).entry_price) == (D("59000.0"), D("3100.00"))


def test_market_order_below_minimum_value_is_refused_before_anything_is_sent(sim, make_kernel):
    k = make_kernel(sim)
    # 5 TRX at 0.25 is 1.25 USDT; BingX's minimum is 2. The kernel has no price to check
    # a MARKET order against, so the venue checks it with the mark price.
    out = enter(k, asset="TRX-USDT", size="5")
    assert out.state == "IDLE"
    assert out.transitions[-1] == ("ORDER_REQUESTED", "REJECT", "IDLE")
    reason = k.slot(0).record["last_order_end"]
    assert reason == ("order value 1.25 USDT (5 x 0.25) is below BingX's minimum order value 2 USDT for TRX-USDT "
                      "(tradeMinUSDT)")
    assert requests_to(sim, "place_order") == [] and sim.orders() == []
    assert k.account.capital == D("1000")
    # With a reference price the kernel refuses it itself, naming the minimum too.
    out = enter(k, "e2", asset="TRX-USDT", size="5", reference_price="0.25")
    assert (out.accepted, out.diagnostic_code) == (False, "BELOW_MIN_NOTIONAL")


def test_order_below_minimum_quantity_is_refused_before_anything_is_sent(make_sim, make_venue):
    sim = make_sim(contracts=contracts(BTC_USDT={"tradeMinQuantity": 0.001}))
    venue = make_venue(sim)
    order = dita.Order(client_order_id="dita-small", asset="BTC-USDT", side="BUY", position_side="LONG",
                       order_type="LIMIT", quantity=D("0.0005"), limit_price=D("59000.0"), reduce_only=False,
                       leverage=None, role="ENTRY", slot_id=0, trade_id="t1")
    events = venue.submit(order)
    assert [(e.kind, e.reason) for e in events] == [
        ("REJECT", "quantity 0.0005 is below BingX's minimum order quantity 0.001 for BTC-USDT (tradeMinQuantity)")]
    assert requests_to(sim, "place_order") == []
    assert venue.query(order) == events   # the refusal is the order's whole history


def test_an_order_off_the_grid_is_refused_not_silently_changed(sim, venue):
    order = dita.Order(client_order_id="dita-grid", asset="BTC-USDT", side="BUY", position_side="LONG",
                       order_type="LIMIT", quantity=D("0.01234"), limit_price=D("59000.0"), reduce_only=False,
                       leverage=None, role="ENTRY", slot_id=0, trade_id="t1")
    assert venue.submit(order)[0].reason == "quantity 0.01234 is not a multiple of BingX's size step 0.0001 for BTC-USDT"
    assert requests_to(sim, "place_order") == []


def test_whole_number_leverage_only(sim, make_kernel):
    k = make_kernel(sim)
    out = enter(k, leverage="2.5")
    assert out.state == "IDLE"
    assert k.slot(0).record["last_order_end"] == "BingX takes whole-number leverage of at least 1, got 2.5"
    assert requests_to(sim, "leverage") == [] and requests_to(sim, "place_order") == []


def test_exchange_refusal_becomes_a_reject_with_code_and_message(make_sim, make_kernel):
    sim = make_sim(balance="50")
    k = make_kernel(sim)
    out = enter(k, size="0.010")   # 600 USDT at leverage 5 needs 120 of margin
    assert out.state == "IDLE"
    assert out.emitted_events[-1].kind == "REJECT"
    assert k.slot(0).record["last_order_end"] == "BingX 101204: Insufficient margin"
    assert len(requests_to(sim, "place_order")) == 1 and sim.orders() == []


def test_time_in_force_from_the_intent_ioc_leaves_the_filled_part(make_sim, make_kernel):
    sim = make_sim(liquidity={"BTC-USDT": "0.003"})
    k = make_kernel(sim)
    out = enter(k, size="0.010", order_type="LIMIT", limit_price="60100", metadata={"time_in_force": "ioc"})
    # Marketable: 0.003 fills at once, BingX cancels the rest (IOC).
    assert out.state == "POSITION_OPEN"
    assert [e.kind for e in out.emitted_events] == ["ORDER_ACK", "PARTIALLY_FILLED", "EXPIRED"]
    assert k.slot(0).size == D("0.003")
    assert requests_to(sim, "place_order")[0]["params"]["timeInForce"] == "IOC"


def test_a_limit_order_filled_on_arrival_is_learned_at_the_next_poll_from_the_documented_answer(sim, make_kernel):
    # The documented place answer (BINGX.md §2.2) does not say the order filled: the venue
    # acknowledges it, and the next poll finds it gone from the open orders and asks.
    k = make_kernel(sim)
    out = enter(k, size="0.010", order_type="LIMIT", limit_price="60100")   # marketable: fills at once
    assert out.state == "ENTRY_WORKING" and sim.order("dita-e1")["status"] == "FILLED"
    (filled,) = k.poll()
    assert filled.transitions == (("ENTRY_WORKING", "FULL_FILL", "POSITION_OPEN"),)
    assert (k.slot(0).size, filled.emitted_events[0].fill_price) == (D("0.010"), D("60000.0"))
    assert sim.position("BTC-USDT") == D("0.0100")


def test_a_place_answer_with_the_order_status_is_followed_at_once(make_sim, make_kernel):
    sim = make_sim(place_answer="full")
    k = make_kernel(sim)
    assert enter(k, size="0.010", order_type="LIMIT", limit_price="60100").state == "POSITION_OPEN"


def test_post_only_that_would_take_is_rejected_by_the_exchange(sim, make_kernel):
    k = make_kernel(sim, time_in_force="PostOnly")
    out = enter(k, size="0.010", order_type="LIMIT", limit_price="60100")
    assert out.state == "IDLE"
    assert k.slot(0).record["last_order_end"].startswith("BingX 101215: The Maker (Post Only) order")
    assert enter(k, "e2", trade="t2", size="0.010", order_type="LIMIT", limit_price="59000").state == "ENTRY_WORKING"


def test_fills_are_deltas_whose_value_matches_the_exchange(sim, make_kernel):
    k = make_kernel(sim)
    enter(k, size="0.0100", order_type="LIMIT", limit_price="59000")
    for qty, price in (("0.0030", "58990.3"), ("0.0030", "58995.7"), ("0.0040", "58999.9")):
        sim.fill("dita-e1", qty, price)
        k.poll()
    events = k.venue.query(k.order("dita-e1"))
    fills = [e for e in events if e.kind in ("PARTIALLY_FILLED", "FULL_FILL")]
    assert [(e.kind, e.filled_size, e.fill_price) for e in fills] == [
        ("PARTIALLY_FILLED", D("0.0030"), D("58990.3")), ("PARTIALLY_FILLED", D("0.0030"), D("58995.7")),
        ("FULL_FILL", D("0.0040"), D("58999.9"))]
    exchange = sim.order("dita-e1")
    assert sum(e.filled_size * e.fill_price for e in fills) == D(exchange["cumQuote"])
    assert sum(e.fee for e in fills) == -D(exchange["commission"])
    s = k.slot(0)
    assert (s.fsm_state, s.size) == ("POSITION_OPEN", D("0.0100"))
    assert s.entry_price == D(exchange["cumQuote"]) / D("0.0100")


def test_poll_and_query_are_idempotent(sim, make_kernel):
    k = make_kernel(sim)
    enter(k, size="0.010", order_type="LIMIT", limit_price="59000")
    sim.fill("dita-e1", "0.004")
    first = k.poll()
    assert [o.transitions for o in first] == [(("ENTRY_WORKING", "PARTIALLY_FILLED", "ENTRY_WORKING"),)]
    before = k.snapshot()
    assert k.poll() == [] and k.poll() == []
    history = k.venue.query(k.order("dita-e1"))
    assert [e.event_id for e in history] == [f"bingx:{k.slot(0).entry_venue_order_id}:ack",
                                             f"bingx:{k.slot(0).entry_venue_order_id}:fill:0.004"]
    # Every event of the order, applied again: each is recognised and changes nothing.
    assert [k.on_venue_event(e).diagnostic_code for e in history] == ["DUPLICATE_EVENT", "DUPLICATE_EVENT"]
    assert k.snapshot() == before
    assert k.venue.query(k.order("dita-e1")) == history   # stable ids, same events


# ---------------------------------------------------------------- a kernel restored from a snapshot


def _restored(sim, k):
    snapshot = k.snapshot()
    k.venue.close()
    return dita.Kernel.restore(snapshot, venue="bingx", venue_options={
        "base_url": sim.base_url, "api_key": KEY, "api_secret": SECRET})


def test_a_restored_kernel_follows_an_order_with_nothing_filled(sim, make_kernel):
    k = make_kernel(sim)
    enter(k, size="0.010", order_type="LIMIT", limit_price="59000")
    k2 = _restored(sim, k)   # Kernel.restore hands the working order to the new venue (Venue.resume)
    try:
        outs = k2.poll()     # the new venue finds the order at BingX: its ACK again, nothing new
        assert [o.diagnostic_code for o in outs] == ["DUPLICATE_EVENT"]
        sim.fill("dita-e1", "0.004")
        outs = k2.poll()
        assert [(o.diagnostic_code, o.transitions) for o in outs] == [
            ("OK", (("ENTRY_WORKING", "PARTIALLY_FILLED", "ENTRY_WORKING"),))]
        assert cancel(k2).state == "POSITION_OPEN" and k2.slot(0).size == D("0.004")
    finally:
        k2.venue.close()


def test_a_restored_kernel_is_told_only_the_fills_beyond_what_it_applied(sim, make_kernel):
    k = make_kernel(sim)
    enter(k, size="0.010", order_type="LIMIT", limit_price="59000")
    sim.fill("dita-e1", "0.004")
    k.poll()
    assert k.order_progress("dita-e1").filled_size == D("0.004")
    k2 = _restored(sim, k)
    try:
        sim.fill("dita-e1", "0.002", "58990")   # 0.006 in all; the kernel applied 0.004 of it
        events = k2.venue.query(k2.order("dita-e1"))
        fills = [e for e in events if e.kind in ("PARTIALLY_FILLED", "FULL_FILL")]
        assert [(e.filled_size, e.fill_price) for e in fills] == [(D("0.002"), D("58990"))]
        for e in events:
            k2.on_venue_event(e)
        s = k2.slot(0)
        assert s.size == D("0.006")   # not 0.010: nothing double counted
        expected = (D("0.004") * 59000 + D("0.002") * 58990) / D("0.006")   # a repeating decimal
        assert s.entry_price.quantize(D("1e-20")) == expected.quantize(D("1e-20"))
        assert k2.order_progress("dita-e1").filled_size == D("0.006")
    finally:
        k2.venue.close()


def test_a_bad_time_in_force_in_the_intent_is_refused_before_sending(sim, make_kernel):
    k = make_kernel(sim)
    out = enter(k, size="0.010", order_type="LIMIT", limit_price="59000", metadata={"time_in_force": "GTX"})
    assert out.state == "IDLE"
    assert k.slot(0).record["last_order_end"] == ("metadata time_in_force: time in force must be GTC, IOC, FOK or "
                                                  "PostOnly, got 'GTX'")
    assert requests_to(sim, "place_order") == []


def test_an_order_bingx_reports_filled_short_of_its_quantity_ends_and_the_slot_hears_it(sim, make_kernel):
    k = make_kernel(sim)
    enter(k, size="0.010", order_type="LIMIT", limit_price="59000")
    sim.fill("dita-e1", "0.004")
    with sim._lock:   # BingX ends it as FILLED with 0.004 of 0.010 executed (trimmed, say)
        sim._by_coid["dita-e1"].status = "FILLED"
    outs = k.poll()
    assert [o.transitions for o in outs] == [(("ENTRY_WORKING", "PARTIALLY_FILLED", "ENTRY_WORKING"),),
                                             (("ENTRY_WORKING", "EXPIRED", "POSITION_OPEN"),)]
    oid = sim.order("dita-e1")["orderId"]
    assert [(e.kind, e.event_id, e.filled_size, e.reason) for e in k.venue.query(k.order("dita-e1"))] == [
        ("ORDER_ACK", f"bingx:{oid}:ack", None, None),
        ("PARTIALLY_FILLED", f"bingx:{oid}:fill:0.004", D("0.004"), None),
        ("EXPIRED", f"bingx:{oid}:expired", None, "BingX reports the order FILLED with 0.0040 of 0.01 executed")]
    s = k.slot(0)
    assert (s.fsm_state, s.size, s.active_entry_order) == ("POSITION_OPEN", D("0.004"), None)
    assert sim.position("BTC-USDT") == D("0.004")
    assert k.poll() == []   # reported once
    assert exit_(k).state == "TRADE_TERMINAL_WRITTEN" and sim.position("BTC-USDT") == 0


def test_a_size_or_price_too_large_for_the_grid_is_refused_and_nothing_is_sent(sim, make_kernel):
    k = make_kernel(sim)
    with pytest.raises(dita.InvalidInputError) as info:
        enter(k, size="1E+30")
    assert str(info.value) == "quantity 1E+30 for BTC-USDT is too large to put on BingX's size step 0.0001"
    with pytest.raises(dita.InvalidInputError) as info:
        enter(k, "e2", size="0.010", order_type="LIMIT", limit_price="1E+30")
    assert str(info.value) == "price 1E+30 for BTC-USDT is too large to put on BingX's tick 0.1"
    assert requests_to(sim, "place_order") == [] and k.slot(0).fsm_state == "IDLE"
    assert enter(k, "e3", size="0.010").state == "POSITION_OPEN"


# ---------------------------------------------------------------- two slots on one symbol

CONFLICT = ("the venue nets LONG and SHORT of BTC-USDT into one position, and slot 0 holds or works a trade on the "
            "other side: this entry would reduce that position instead of opening its own; trade both sides only "
            "where they are kept apart (hedge mode)")


def test_one_way_mode_refuses_an_entry_against_another_slots_position(sim, make_kernel):
    # One-way mode keeps one net position per symbol: a SHORT beside slot 0's LONG would
    # close that LONG at BingX while the kernel counted two positions.
    k = make_kernel(sim, slots=3, capital="3000")
    assert enter(k, slot=0, side="LONG", size="0.010").state == "POSITION_OPEN"
    out = enter(k, "s1", slot=1, trade="ts1", side="SHORT", size="0.010")
    assert (out.accepted, out.diagnostic_code, out.state, out.transitions) == (False, "POSITION_CONFLICT", "IDLE", ())
    assert out.message == CONFLICT
    assert len(requests_to(sim, "place_order")) == 1   # nothing sent
    assert sim.position("BTC-USDT") == D("0.010") == k.slot(0).size
    # The same side in another slot adds to the position.
    assert enter(k, "l2", slot=2, trade="tl2", side="LONG", size="0.005").state == "POSITION_OPEN"
    assert sim.position("BTC-USDT") == D("0.015")
    assert exit_(k, "x2", slot=2).state == "TRADE_TERMINAL_WRITTEN"
    assert enter(k, "s2", slot=1, trade="ts2", side="SHORT", size="0.010").diagnostic_code == "POSITION_CONFLICT"
    # Once slot 0's trade is closed, nothing stands against a SHORT.
    assert exit_(k, "x0", slot=0).state == "TRADE_TERMINAL_WRITTEN"
    assert sim.position("BTC-USDT") == 0
    out = enter(k, "s3", slot=1, trade="ts3", side="SHORT", size="0.010")
    assert (out.accepted, out.state) == (True, "POSITION_OPEN")
    assert sim.position("BTC-USDT") == D("-0.010") and k.slot(1).size == D("0.010")
    assert [(o["side"], o["quantity"], o["clientOrderID"]) for o in _orders_sent(sim)] == [
        ("BUY", "0.0100", "dita-e1"), ("BUY", "0.0050", "dita-l2"), ("SELL", "0.0050", "dita-x2"),
        ("SELL", "0.0100", "dita-x0"), ("SELL", "0.0100", "dita-s3")]


def test_one_way_mode_refuses_an_entry_against_another_slots_working_order(sim, make_kernel):
    k = make_kernel(sim, slots=2, capital="2000")
    assert enter(k, slot=0, side="LONG", size="0.010", order_type="LIMIT", limit_price="59000").state == "ENTRY_WORKING"
    out = enter(k, "s1", slot=1, trade="ts", side="SHORT", size="0.010", order_type="LIMIT", limit_price="61000")
    assert (out.accepted, out.diagnostic_code, out.message) == (False, "POSITION_CONFLICT", CONFLICT)
    assert len(requests_to(sim, "place_order")) == 1
    assert cancel(k).state == "IDLE"
    out = enter(k, "s2", slot=1, trade="ts", side="SHORT", size="0.010", order_type="LIMIT", limit_price="61000")
    assert out.state == "ENTRY_WORKING"
    assert [(o["status"], o["side"]) for o in sim.orders()] == [("CANCELLED", "BUY"), ("PENDING", "SELL")]


def test_hedge_mode_keeps_a_long_and_a_short_of_one_symbol_apart(make_sim, make_kernel):
    sim = make_sim(position_mode="hedge")
    k = make_kernel(sim, slots=2, capital="2000", position_mode="hedge")
    assert enter(k, slot=0, side="LONG", size="0.010").state == "POSITION_OPEN"
    out = enter(k, "s1", slot=1, trade="ts", side="SHORT", size="0.020")
    assert (out.accepted, out.state) == (True, "POSITION_OPEN")
    assert (sim.position("BTC-USDT", "LONG"), sim.position("BTC-USDT", "SHORT")) == (D("0.010"), D("0.020"))
    assert (k.slot(0).size, k.slot(1).size) == (D("0.010"), D("0.020"))
    # Each exit closes its own side only.
    assert exit_(k, "x1", slot=1).state == "TRADE_TERMINAL_WRITTEN"
    assert (sim.position("BTC-USDT", "LONG"), sim.position("BTC-USDT", "SHORT")) == (D("0.010"), 0)
    assert [(o["side"], o["positionSide"]) for o in _orders_sent(sim)] == [
        ("BUY", "LONG"), ("SELL", "SHORT"), ("BUY", "SHORT")]


# ---------------------------------------------------------------- fills reported together: exact money


DOGE_FILLS = (("1000000", "0.09990"), ("1000000", "0.09980"), ("1000000", "0.09981"))


def _doge_entry(make_sim, make_kernel, size="3000000"):
    """A DOGE entry filled three times between two polls: 299510 USDT for 3M coins, an
    average of 0.0998366... (repeating)."""
    sim = make_sim(balance="100000000", liquidity={"DOGE-USDT": "0"})   # nothing fills but what the test fills
    sim.set_price("DOGE-USDT", "0.10000")
    k = make_kernel(sim, capital="100000")
    assert enter(k, asset="DOGE-USDT", size=size, order_type="LIMIT", limit_price="0.09990").state == "ENTRY_WORKING"
    for qty, price in DOGE_FILLS:
        sim.fill("dita-e1", qty, price)
    return sim, k


def test_fills_reported_together_keep_the_money_exact(make_sim, make_kernel):
    """Audit fault 4: the three fills came as one at their average price rounded to 12
    places (0.099836666667), so the entry cost 299510.000001 and the trade's gross PnL was
    6489.999999 where the cash flows (306000 - 299510) and BingX say 6490."""
    sim, k = _doge_entry(make_sim, make_kernel)
    events = [e for o in k.poll() for e in o.emitted_events]
    fills = [(e.kind, e.event_id.split(":", 2)[2], e.filled_size, e.fill_price, e.fee) for e in events]
    fee = D("59.902")   # maker 0.02% of 299510
    # The first part's price takes the places the last step needs to stay within a
    # billionth of the average (12 would put it at 0.099835666667, a millionth off).
    assert fills == [("PARTIALLY_FILLED", "fill:2999999", D("2999999"), D("0.09983666666666667"), fee),
                     ("FULL_FILL", "fill:3000000", D("1"), D("0.09983666665666667"), D("0"))]
    assert sum(e.filled_size * e.fill_price for e in events) == D("299510")
    assert k.order_progress("dita-e1").filled_value == D("299510")
    assert k.poll() == []   # the same figures again: nothing new
    assert [e.event_id for e in k.venue.query(k.order("dita-e1"))][-2:] == [e.event_id for e in events]
    exit_(k, order_type="LIMIT", limit_price="0.10200")
    sim.fill("dita-x1", "3000000", "0.10200")
    k.poll()
    assert k.slot(0).size == 0
    assert k.trades[-1]["gross_pnl"] == D("6490") == sim.account()["realised"]


def test_fills_of_a_cheap_coin_reported_together_stay_at_market_prices(make_sim, make_kernel):
    """90 million coins at 1.2e-5: with the first part's price at 12 places, the last coin
    carried its rounding times 90 million and was reported at 0.000042343333, 3.4 times any
    price traded. Both prices now stay within a billionth of the average, the money exact."""
    from dita_bingx.simulator import _load_default_contracts

    contracts = [dict(c) for c in _load_default_contracts()]
    pepe = dict(contracts[0], symbol="PEPE-USDT", contractId="999", quantityPrecision=0, pricePrecision=8,
                tradeMinQuantity=1, tradeMinUSDT=2, asset="PEPE", displayName="PEPE-USDT")
    sim = make_sim(contracts=contracts + [pepe], balance="100000000", liquidity={"PEPE-USDT": "0"})
    sim.set_price("PEPE-USDT", "0.00001240")
    k = make_kernel(sim, capital="1000000")
    assert enter(k, asset="PEPE-USDT", size="90000000", order_type="LIMIT", limit_price="0.00001240").accepted
    sim.fill("dita-e1", "30000000", "0.00001233")
    sim.fill("dita-e1", "60000000", "0.00001235")
    events = [e for o in k.poll() for e in o.emitted_events]
    assert [e.filled_size for e in events] == [D("89999999"), D("1")]
    average = D("1110.9") / D("90000000")
    for e in events:
        assert abs(e.fill_price - average) <= average * D("1e-9"), e
    assert sum(e.filled_size * e.fill_price for e in events) == D("1110.9")
    assert k.slot(0).size == D("90000000")


def test_a_venue_resumed_between_the_two_parts_reports_the_second_as_before(make_sim, make_kernel, make_venue):
    # Event ids are the cumulative quantities: a kernel that applied only the first part (it
    # stopped in between) is told the second with the same id, size and price.
    sim, k = _doge_entry(make_sim, make_kernel)
    first, second = [e for o in k.poll() for e in o.emitted_events]
    venue = make_venue(sim)
    venue.resume(k.order("dita-e1"), dita.OrderProgress(filled_size=first.filled_size,
                                                        filled_value=first.filled_size * first.fill_price,
                                                        fees=first.fee))
    fills = [e for e in venue.query(k.order("dita-e1")) if e.kind in ("PARTIALLY_FILLED", "FULL_FILL")]
    assert [(e.event_id, e.filled_size, e.fill_price, e.fee) for e in fills] == [
        (second.event_id, second.filled_size, second.fill_price, second.fee)]


def test_a_restored_kernel_after_split_fills_adds_only_what_is_new(make_sim, make_kernel):
    sim, k = _doge_entry(make_sim, make_kernel, size="4000000")
    assert len([e for o in k.poll() for e in o.emitted_events]) == 2
    k2 = _restored(sim, k)
    try:
        sim.fill("dita-e1", "1000000", "0.09990")
        outs = [o for o in k2.poll() if o.diagnostic_code == "OK"]
        assert [(e.filled_size, e.fill_price) for o in outs for e in o.emitted_events] == [(D("1000000"), D("0.09990"))]
        assert k2.order_progress("dita-e1").filled_value == D("399410")   # 299510 + 99900, exactly
        assert k2.slot(0).size == D("4000000")
    finally:
        k2.venue.close()
