"""The proof: an unmodified CCXT ``bingx`` client trades against the simulator. Where CCXT
and the simulator disagree, the simulator is wrong."""

from __future__ import annotations

from decimal import Decimal as D

import ccxt
import pytest

from .conftest import enter, requests_to

SYMBOL = "BTC/USDT:USDT"


def test_ccxt_loads_markets_places_fetches_sees_a_partial_fill_and_cancels(make_sim, exchange):
    sim = make_sim(liquidity={"BTC-USDT": "0.004"})
    ex = exchange(sim)

    markets = ex.load_markets()
    btc = markets[SYMBOL]
    assert (btc["id"], btc["active"], btc["contractSize"]) == ("BTC-USDT", True, 1)
    assert (btc["precision"]["amount"], btc["precision"]["price"]) == (0.0001, 0.1)
    assert (btc["limits"]["amount"]["min"], btc["limits"]["cost"]["min"]) == (0.0001, 2)
    assert requests_to(sim, "contracts") and not requests_to(sim, "currencies")   # sandbox: contracts only

    order = ex.create_order(SYMBOL, "limit", "buy", 0.01, 59990, {"clientOrderId": "CcxtOrder1"})
    exchange_order = sim.order("ccxtorder1")
    assert order["id"] == str(exchange_order["orderId"])
    # The documented place answer (BINGX.md §2.2) has no status or executedQty: CCXT says None.
    assert (order["clientOrderId"], order["status"], order["filled"]) == ("ccxtorder1", None, None)
    sent = requests_to(sim, "place_order")[-1]["params"]
    assert (sent["clientOrderID"], sent["positionSide"], sent["price"], sent["quantity"]) == (
        "CcxtOrder1", "BOTH", "59990", "0.01")

    fetched = ex.fetch_order(order["id"], SYMBOL)
    assert (fetched["status"], fetched["amount"], fetched["price"], fetched["filled"], fetched["side"]) == (
        "open", 0.01, 59990.0, 0.0, "buy")

    sim.set_price("BTC-USDT", "59980")   # crosses the limit; only 0.004 is there
    fetched = ex.fetch_order(order["id"], SYMBOL)
    assert (fetched["status"], fetched["filled"], fetched["remaining"], fetched["average"]) == (
        "open", 0.004, 0.006, 59990.0)
    assert fetched["fee"] == {"currency": "USDT", "cost": 0.047992}   # maker 0.02% of 0.004 x 59990
    assert [o["id"] for o in ex.fetch_open_orders(SYMBOL)] == [order["id"]]

    cancelled = ex.cancel_order(order["id"], SYMBOL)
    assert (cancelled["id"], cancelled["status"], cancelled["filled"]) == (order["id"], "canceled", 0.004)
    assert sim.order("ccxtorder1")["status"] == "CANCELLED"
    assert ex.fetch_open_orders(SYMBOL) == []

    (position,) = ex.fetch_positions([SYMBOL])
    assert (position["symbol"], position["side"], position["contracts"], position["entryPrice"]) == (
        SYMBOL, "long", 0.004, 59990.0)
    usdt = ex.fetch_balance({"type": "swap"})["USDT"]
    assert usdt["used"] == 47.992   # 0.004 x 59990 at leverage 5
    # CCXT: free = availableMargin, total = free + used; the mark (59980) is 10 below the entry.
    # BingX prints USDT amounts with 4 decimals: 100000 - 0.047992 is shown as 99999.9520.
    assert D(str(usdt["total"])) == D("99999.9520") + (D("59980") - D("59990")) * D("0.004")
    assert isinstance(ex.fetch_time(), int)


def test_ccxt_cancels_by_client_order_id_and_market_orders_fill(make_sim, exchange):
    sim = make_sim()
    ex = exchange(sim)
    ex.load_markets()
    ex.create_order(SYMBOL, "limit", "sell", 0.002, 61000, {"clientOrderId": "rest-1"})
    cancelled = ex.cancel_order(None, SYMBOL, {"clientOrderId": "rest-1"})
    assert cancelled["status"] == "canceled"
    assert requests_to(sim, "cancel_order")[-1]["params"]["clientOrderID"] == "rest-1"
    market = ex.create_order(SYMBOL, "market", "buy", 0.002)
    fetched = ex.fetch_order(market["id"], SYMBOL)
    assert (fetched["status"], fetched["filled"], fetched["average"]) == ("closed", 0.002, 60000.0)
    closing = ex.create_order(SYMBOL, "market", "sell", 0.002, None, {"reduceOnly": True})
    assert requests_to(sim, "place_order")[-1]["params"]["reduceOnly"] == "true"
    assert ex.fetch_order(closing["id"], SYMBOL)["status"] == "closed"
    assert sim.position("BTC-USDT") == 0


@pytest.mark.parametrize("make_request, error", [
    (lambda ex: ex.create_order(SYMBOL, "limit", "buy", 0.0001, 10000), ccxt.InvalidOrder),   # 1 USDT < 2
    (lambda ex: ex.create_order(SYMBOL, "limit", "buy", 10, 60000), ccxt.InsufficientFunds),
    (lambda ex: ex.fetch_order("1", SYMBOL), ccxt.OrderNotFound),
])
def test_ccxt_maps_the_simulators_refusals_to_its_own_exceptions(make_sim, exchange, make_request, error):
    sim = make_sim()
    ex = exchange(sim)
    ex.load_markets()
    with pytest.raises(error):
        make_request(ex)
    assert sim.orders() == []


def test_ccxt_duplicate_id_and_bad_secret(make_sim, exchange):
    sim = make_sim()
    ex = exchange(sim)
    ex.load_markets()
    ex.create_order(SYMBOL, "limit", "buy", 0.01, 59000, {"clientOrderId": "dup"})
    with pytest.raises(ccxt.DuplicateOrderId):
        ex.create_order(SYMBOL, "limit", "buy", 0.01, 59000, {"clientOrderId": "DUP"})
    intruder = exchange(sim, secret="not-the-secret")
    intruder.load_markets()
    with pytest.raises(ccxt.AuthenticationError):
        intruder.fetch_open_orders(SYMBOL)


def test_ccxt_sees_the_orders_the_kernel_placed(make_sim, exchange, make_kernel):
    sim = make_sim()
    k = make_kernel(sim)
    enter(k, size="0.010", order_type="LIMIT", limit_price="59000")
    ex = exchange(sim)
    ex.load_markets()
    (order,) = ex.fetch_open_orders(SYMBOL)
    assert (order["clientOrderId"], order["amount"], order["price"], order["id"]) == (
        "dita-e1", 0.01, 59000.0, k.slot(0).entry_venue_order_id)
