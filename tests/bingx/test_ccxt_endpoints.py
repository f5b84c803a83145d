"""The rest of what bots commonly ask BingX, driven through CCXT's own ``bingx`` class: market
data, order and fill history, batch orders, margin type, closing all positions; stable
position ids; money figures printed as BingX prints them; the rate limits at their edge.

Every expected figure here follows from the simulated market (its mark prices as set, and
this account's fills): nothing is canned."""

from __future__ import annotations

import random
import re
import time
from decimal import Decimal as D

import ccxt
import pytest

from .conftest import raw_call, requests_to

SYMBOL = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"
MSG_MIN_VALUE = "Please ensure that the minimum nominal value of the order placed must be greater than 2u"


def _data(ex):
    """The ``data`` of the last answer CCXT received, as the simulator sent it."""
    return ex.last_json_response["data"]


# ---------------------------------------------------------------- market data


def test_ticker_book_and_klines_come_from_the_market_and_its_trades(make_sim, exchange):
    sim = make_sim(liquidity={"BTC-USDT": "0.004"})
    ex = exchange(sim)
    ex.load_markets()
    ex.create_order(SYMBOL, "limit", "buy", 0.01, 59900, {"clientOrderId": "bid"})    # rests
    ex.create_order(SYMBOL, "limit", "sell", 0.002, 60100, {"clientOrderId": "ask"})  # rests
    ex.create_order(SYMBOL, "market", "buy", 0.002)   # the market's one trade: 0.002 at 60000
    for price in ("60050", "59950", "60020"):         # none of them reaches a resting order
        sim.set_price("BTC-USDT", price)

    t = ex.fetch_ticker(SYMBOL)
    assert (t["open"], t["high"], t["low"], t["last"], t["change"], t["percentage"]) == (
        60000.0, 60050.0, 59950.0, 60020.0, 20.0, 0.03)   # 20 / 60000 = 0.0333 %
    assert (t["baseVolume"], t["quoteVolume"]) == (0.002, 120.0)
    # Best bid and ask: the market's quote at the mark, as much as the liquidity allows.
    assert (t["bid"], t["bidVolume"], t["ask"], t["askVolume"]) == (60020.0, 0.004, 60020.0, 0.004)
    raw = _data(ex)
    assert (raw["lastPrice"], raw["lastQty"], raw["quoteVolume"], raw["priceChangePercent"]) == (
        "60020.0", "0.0020", "120.00000", "0.03")
    assert ex.fetch_tickers([SYMBOL])[SYMBOL]["last"] == 60020.0   # no symbol: a list of all

    book = ex.fetch_order_book(SYMBOL)
    assert book["bids"] == [[60020.0, 0.004], [59900.0, 0.01]]     # the mark, then our resting bid
    assert book["asks"] == [[60020.0, 0.004], [60100.0, 0.002]]
    assert _data(ex)["asks"] == [["60100.0", "0.0020"], ["60020.0", "0.0040"]]   # BingX: farthest first

    for timeframe in ("1m", "1d"):
        candles = ex.fetch_ohlcv(SYMBOL, timeframe)
        step = ex.parse_timeframe(timeframe) * 1000
        assert [c[0] % step for c in candles] == [0] * len(candles)
        assert [b[0] - a[0] for a, b in zip(candles, candles[1:])] == [step] * (len(candles) - 1)
        assert candles[0][1] == 60000.0 and candles[-1][4] == 60020.0   # first price, current price
        assert (max(c[2] for c in candles), min(c[3] for c in candles)) == (60050.0, 59950.0)
        assert sum(D(str(c[5])) for c in candles) == D("0.002")
    kline = _data(ex)[-1]
    assert (kline["close"], kline["volume"]) == ("60020.0", "0.0020")


def test_with_unlimited_liquidity_the_book_shows_more_than_any_order_could_take(sim, exchange):
    ex = exchange(sim)
    ex.load_markets()
    book = ex.fetch_order_book(SYMBOL, 5)
    assert book["bids"] == book["asks"] == [[60000.0, 16666.6666]]   # 10^9 USDT at 60000, to the step
    assert requests_to(sim, "depth", authenticated=True)[-1]["params"]["limit"] == "5"
    with pytest.raises(ccxt.BadRequest):   # 80014
        ex.fetch_ohlcv(SYMBOL, "1M")       # months have no fixed length: not served


# ---------------------------------------------------------------- history, fills, single open order


def test_closed_and_cancelled_orders_and_fills_match_what_happened(make_sim, exchange):
    sim = make_sim(liquidity={"BTC-USDT": "0.004"})
    ex = exchange(sim)
    ex.load_markets()
    a = ex.create_order(SYMBOL, "limit", "buy", 0.01, 59990, {"clientOrderId": "hist-a"})
    sim.set_price("BTC-USDT", "59980")                  # 0.004 of a fills at 59990 (maker)
    ex.cancel_order(a["id"], SYMBOL)
    b = ex.create_order(SYMBOL, "market", "buy", 0.002, None, {"clientOrderId": "hist-b"})   # 59980, taker
    c = ex.create_order(SYMBOL, "limit", "sell", 0.002, 61000, {"clientOrderId": "hist-c"})  # rests

    (closed,) = ex.fetch_closed_orders(SYMBOL)
    assert (closed["id"], closed["clientOrderId"], closed["status"], closed["type"], closed["filled"]) == (
        b["id"], "hist-b", "closed", "market", 0.002)
    assert (closed["average"], closed["cost"], closed["fee"]["cost"]) == (59980.0, 119.96, 0.05998)
    (cancelled,) = ex.fetch_canceled_orders(SYMBOL)
    assert (cancelled["id"], cancelled["status"], cancelled["filled"], cancelled["remaining"]) == (
        a["id"], "canceled", 0.004, 0.006)
    assert (cancelled["price"], cancelled["average"], cancelled["cost"]) == (59990.0, 59990.0, 239.96)
    history = {o["clientOrderId"]: o for o in _data(ex)["orders"]}
    assert set(history) == {"hist-a", "hist-b"}   # the history holds ended orders only
    assert (history["hist-a"]["cumQuote"], history["hist-a"]["commission"], history["hist-a"]["avgPrice"]) == (
        "239.96000", "-0.047992", "59990.0")

    trades = ex.fetch_my_trades(SYMBOL)
    assert [(t["order"], t["side"], t["amount"], t["price"], t["cost"], t["fee"]["cost"], t["takerOrMaker"])
            for t in trades] == [(a["id"], "buy", 0.004, 59990.0, 239.96, 0.047992, "maker"),
                                 (b["id"], "buy", 0.002, 59980.0, 119.96, 0.05998, "taker")]
    assert len({t["id"] for t in trades}) == 2 and all(t["timestamp"] for t in trades)
    fills = _data(ex)["fill_orders"]
    assert [(f["volume"], f["amount"], f["commission"]) for f in fills] == [
        ("0.0040", "239.96000", "-0.047992"), ("0.0020", "119.96000", "-0.059980")]
    # An order's figures are the sums of its fills', to the last digit.
    for f in fills:
        order = sim.order(f["clientOrderID"])
        same = [g for g in fills if g["orderId"] == str(order["orderId"])]
        assert sum(D(g["amount"]) for g in same) == D(order["cumQuote"])
        assert sum(D(g["commission"]) for g in same) == D(order["commission"])

    still_open = raw_call(sim, "GET", "/openApi/swap/v2/trade/openOrder",
                          {"symbol": "BTC-USDT", "clientOrderId": "hist-c"}).json()["data"]["order"]
    assert (str(still_open["orderId"]), still_open["status"], still_open["origQty"]) == (c["id"], "PENDING", "0.0020")
    ended = raw_call(sim, "GET", "/openApi/swap/v2/trade/openOrder", {"symbol": "BTC-USDT", "orderId": b["id"]}).json()
    assert (ended["code"], ended["msg"]) == (80016, "order not exist")


# ---------------------------------------------------------------- batch orders


def test_batch_orders_are_placed_and_cancelled_one_by_one(sim, exchange):
    ex = exchange(sim)
    ex.load_markets()
    placed = ex.create_orders([
        {"symbol": SYMBOL, "type": "limit", "side": "buy", "amount": 0.01, "price": 58000,
         "params": {"clientOrderId": "batch-1"}},
        {"symbol": SYMBOL, "type": "limit", "side": "sell", "amount": 0.002, "price": 62000,
         "params": {"clientOrderId": "batch-2"}},
        {"symbol": SYMBOL, "type": "limit", "side": "buy", "amount": 0.0001, "price": 10000,   # 1 USDT < 2
         "params": {"clientOrderId": "batch-3"}},
    ])
    # The place answer's documented fields (BINGX.md §2.2) hold no status: CCXT says None.
    assert [(o["clientOrderId"], o["status"], o["side"], o["price"]) for o in placed] == [
        ("batch-1", None, "buy", 58000.0), ("batch-2", None, "sell", 62000.0)]
    assert [o["id"] for o in placed] == [str(sim.order(f"batch-{i}")["orderId"]) for i in (1, 2)]
    assert _data(ex)["failed"] == [{"index": 2, "clientOrderID": "batch-3", "code": 101400, "msg": MSG_MIN_VALUE}]
    with pytest.raises(ccxt.InvalidOrder):   # every order refused: the batch is, with the first code
        ex.create_orders([{"symbol": SYMBOL, "type": "limit", "side": "buy", "amount": 0.0001, "price": 10000}])
    assert len(sim.orders()) == 2

    cancelled = ex.cancel_orders([placed[0]["id"], "1"], SYMBOL)
    assert [(o["id"], o["status"]) for o in cancelled] == [(placed[0]["id"], "canceled")]
    assert _data(ex)["failed"] == [{"orderId": 1, "errorCode": 109414, "errorMessage": "order not exist"}]
    cancelled = ex.cancel_orders([], SYMBOL, {"clientOrderIds": ["batch-2"]})
    assert [(o["clientOrderId"], o["status"]) for o in cancelled] == [("batch-2", "canceled")]
    assert requests_to(sim, "batch_cancel")[-1]["params"]["clientOrderIDList"] == '["batch-2"]'
    assert [o["status"] for o in sim.orders()] == ["CANCELLED", "CANCELLED"]


# ---------------------------------------------------------------- margin type, close all


def test_margin_type_is_per_symbol_and_isolated_pnl_stays_in_its_margin(sim, exchange):
    ex = exchange(sim)
    ex.load_markets()
    assert ex.fetch_margin_mode(SYMBOL)["marginMode"] == "cross"
    assert ex.set_margin_mode("isolated", SYMBOL) == {"code": 0, "msg": ""}   # no data, as BingX answers
    assert requests_to(sim, "margin_type")[-1]["params"]["marginType"] == "ISOLATED"
    assert (ex.fetch_margin_mode(SYMBOL)["marginMode"], ex.fetch_margin_mode(ETH)["marginMode"]) == (
        "isolated", "cross")
    ex.create_order(SYMBOL, "market", "buy", 0.01)
    (position,) = ex.fetch_positions([SYMBOL])
    assert position["marginMode"] == "isolated"
    with pytest.raises(ccxt.BadRequest):   # 109400: not while the symbol has a position
        ex.set_margin_mode("cross", SYMBOL)

    sim.set_price("BTC-USDT", "61000")     # +10 USDT, unrealised, in the isolated position
    ex.fetch_balance({"type": "swap"})
    usdt = _data(ex)[0]
    assert (usdt["balance"], usdt["unrealizedProfit"], usdt["equity"], usdt["usedMargin"]) == (
        "99999.7000", "10.0000", "100009.7000", "120.0000")
    assert usdt["availableMargin"] == "99879.7000"   # balance - usedMargin: the 10 is not spendable


def two_positions(ex):
    """A long 0.01 BTC and a short 0.5 ETH position, opened at market; their ids by symbol."""
    ex.load_markets()
    ex.create_order(SYMBOL, "market", "buy", 0.01)
    ex.create_order(ETH, "market", "sell", 0.5)
    return ex, {p["symbol"]: p["id"] for p in ex.fetch_positions()}


def test_close_all_positions_closes_each_with_a_market_order(sim, exchange):
    ex, ids = two_positions(exchange(sim))
    assert set(ids) == {SYMBOL, ETH}

    closed = ex.close_all_positions()
    assert sorted(p["id"] for p in closed) == sorted(ids.values())   # CCXT reads the ids as position ids
    assert _data(ex) == {"success": [int(i) for i in ids.values()], "failed": None}
    assert (sim.position("BTC-USDT"), sim.position("ETH-USDT")) == (0, 0)
    assert ex.fetch_positions() == []
    closing = [o for o in sim.orders() if o["clientOrderId"] == "" and o["reduceOnly"]]
    assert [(o["symbol"], o["side"], o["type"], o["status"], o["executedQty"], o["avgPrice"]) for o in closing] == [
        ("BTC-USDT", "SELL", "MARKET", "FILLED", "0.0100", "60000.0"),
        ("ETH-USDT", "BUY", "MARKET", "FILLED", "0.50", "3000.00")]
    # Four taker fills at 0.05%: 0.3 + 0.3 (BTC) + 0.75 + 0.75 (ETH); the mark never moved.
    assert sim.account()["balance"] == D("100000") - D("2.1")
    assert ex.close_all_positions() == []   # nothing left to close


# ---------------------------------------------------------------- position ids


def test_a_position_keeps_its_id_while_it_is_open(sim, exchange):
    ex, ids = two_positions(exchange(sim))
    assert all(i.isdigit() and int(i) > 2 ** 53 for i in ids.values()) and ids[SYMBOL] != ids[ETH]
    assert [p["id"] for p in ex.fetch_positions([ETH])] == [ids[ETH]]   # the same, whatever the listing

    ex.create_order(SYMBOL, "market", "buy", 0.002)   # adds to the position: still the same one
    assert {p["symbol"]: p["id"] for p in ex.fetch_positions()} == ids
    ex.create_order(SYMBOL, "market", "sell", 0.012, None, {"reduceOnly": True})   # closes it
    assert [(p["symbol"], p["id"]) for p in ex.fetch_positions()] == [(ETH, ids[ETH])]

    ex.create_order(SYMBOL, "market", "buy", 0.01)    # a new position, a new id
    reopened = {p["symbol"]: p["id"] for p in ex.fetch_positions()}
    assert reopened[ETH] == ids[ETH] and reopened[SYMBOL] not in ids.values()
    ex.create_order(SYMBOL, "market", "sell", 0.02)   # one-way: long 0.01 becomes short 0.01
    (flipped,) = ex.fetch_positions([SYMBOL])
    assert (flipped["side"], flipped["contracts"]) == ("short", 0.01)
    assert flipped["id"] not in (reopened[SYMBOL], ids[SYMBOL], ids[ETH])


# ---------------------------------------------------------------- how numbers are printed

USDT_FIELDS = ("balance", "equity", "unrealizedProfit", "realisedProfit", "availableMargin", "usedMargin",
               "freezedMargin")
FOUR_DECIMALS = re.compile(r"^-?\d+\.\d{4}$")


def _check_usdt(entry, fields):
    for name in fields:
        assert FOUR_DECIMALS.match(entry[name]) and entry[name] != "-0.0000", (name, entry[name])


def test_money_figures_have_fixed_decimals_and_add_up(make_sim, exchange):
    sim = make_sim(liquidity={"BTC-USDT": "0.004"})
    ex = exchange(sim)
    ex.load_markets()
    order = ex.create_order(SYMBOL, "limit", "buy", 0.01, 59990)
    for price in ("59980", "59970", "59960"):   # 0.004, 0.004, 0.002 at 59990 (maker)
        sim.set_price("BTC-USDT", price)
    ex.create_order(SYMBOL, "limit", "buy", 0.01, 61000, {"timeInForce": "IOC"})   # 0.004 at 59960 (taker)

    ex.fetch_order(order["id"], SYMBOL)
    raw = _data(ex)["order"]
    # 599.9 exactly (quantity + price decimals: the same count after every fill); fees 0.11998.
    assert (raw["cumQuote"], raw["commission"], raw["avgPrice"], raw["profit"]) == (
        "599.90000", "-0.119980", "59990.0", "0.0000")

    ex.fetch_positions()
    (p,) = _data(ex)
    # 0.014 BTC for 839.74 USDT: the average 59981.428571... is printed to the price tick.
    assert (p["avgPrice"], p["initialMargin"], p["unrealizedProfit"], p["pnlRatio"], p["positionValue"]) == (
        "59981.4", "167.9480", "-0.3000", "-0.0018", "839.4400")
    ex.fetch_balance({"type": "swap"})
    (usdt,) = _data(ex)
    _check_usdt(usdt, USDT_FIELDS)
    assert (usdt["balance"], usdt["unrealizedProfit"], usdt["equity"], usdt["usedMargin"]) == (
        "99999.7601", "-0.3000", "99999.4601", "167.9480")   # fees 0.11998 + 0.11992
    assert D(usdt["equity"]) == D(usdt["balance"]) + D(usdt["unrealizedProfit"])
    assert D(usdt["availableMargin"]) == D(usdt["equity"]) - D(usdt["usedMargin"]) - D(usdt["freezedMargin"])
    assert (usdt["unrealizedProfit"], usdt["usedMargin"]) == (p["unrealizedProfit"], p["initialMargin"])


def test_a_margin_that_does_not_divide_evenly_is_rounded_and_zero_is_never_negative(sim, exchange):
    ex = exchange(sim)
    ex.load_markets()
    ex.set_leverage(7, SYMBOL, {"side": "BOTH"})
    ex.create_order(SYMBOL, "market", "sell", 0.02)   # 1200 USDT at leverage 7: 171.428571...
    sim.set_price("BTC-USDT", "60000.001")            # the short loses 0.00002: rounds to zero
    ex.fetch_positions()
    (p,) = _data(ex)
    assert (p["initialMargin"], p["unrealizedProfit"], p["pnlRatio"], p["realisedProfit"]) == (
        "171.4286", "0.0000", "0.0000", "0.0000")
    ex.fetch_balance({"type": "swap"})
    (usdt,) = _data(ex)
    _check_usdt(usdt, USDT_FIELDS)
    assert (usdt["balance"], usdt["usedMargin"], usdt["availableMargin"], usdt["unrealizedProfit"]) == (
        "99999.4000", "171.4286", "99827.9714", "0.0000")


# ---------------------------------------------------------------- rate limits at their edge


def test_the_sliding_window_lets_a_client_at_the_rate_through_and_refuses_a_faster_one(sim):
    limit = (5, 1.0)   # query order: 5 a second
    jitter = random.Random(7)

    def refused(bucket, arrivals):
        return [t for t in arrivals if sim._throttle(bucket, limit, t)]

    # Sent every 200 ms by the client's clock, arriving up to 20 ms early or late.
    at_rate = [100 + k * 0.2 + jitter.uniform(-0.02, 0.02) for k in range(200)]
    assert refused("at-rate", at_rate) == []
    # CCXT spaces requests by a whole-millisecond clock: 200 "ms" can be 199.5 ms of real time.
    assert refused("ccxt", [200 + k * 0.1995 for k in range(200)]) == []
    # Faster than the rate: 6 a second is refused at its 6th request, and again after.
    faster = refused("faster", [300 + k / 6 for k in range(30)])
    assert faster and faster[0] == 300 + 5 / 6
    assert refused("burst", [400.0] * 6) == [400.0]   # a burst above the count, as before


def test_ccxt_pacing_itself_at_the_documented_rate_is_never_throttled(sim, exchange):
    ex = exchange(sim)
    ex.load_markets()
    order = ex.create_order(SYMBOL, "limit", "buy", 0.01, 59000)
    assert ex.rateLimit * ex.api["swap"]["v2"]["private"]["get"]["trade/order"]["cost"] == 200   # 5 a second
    started = time.monotonic()
    for _ in range(20):
        assert ex.fetch_order(order["id"], SYMBOL)["status"] == "open"
    assert time.monotonic() - started >= 19 * 0.19   # it did pace itself
    assert sim.throttled == 0

    ex.rateLimit = 60   # 120 ms between queries: 8 a second
    with pytest.raises((ccxt.RateLimitExceeded, ccxt.OperationFailed)):
        for _ in range(10):
            ex.fetch_order(order["id"], SYMBOL)
    assert sim.throttled == 1
