"""The simulator checks what BingX checks and answers in BingX's shapes, codes and spellings."""

from __future__ import annotations

import threading
import time
from decimal import Decimal as D

import httpx
import pytest

from dita_bingx import BingXSimulator
from dita_bingx.simulator import _load_default_contracts

from .conftest import contracts, raw_call

ORDER = "/openApi/swap/v2/trade/order"


def _place(sim, **params):
    base = {"symbol": "BTC-USDT", "side": "BUY", "positionSide": "BOTH", "type": "LIMIT", "quantity": "0.0100",
            "price": "59000.0"}
    base.update(params)
    return raw_call(sim, "POST", ORDER, {k: v for k, v in base.items() if v is not None}).json()


def _query(sim, **params):
    return raw_call(sim, "GET", ORDER, {"symbol": "BTC-USDT", **params}).json()


def test_public_endpoints_need_no_signature_and_answer_in_bingx_shapes(sim):
    body = httpx.get(sim.base_url + "/openApi/swap/v2/quote/contracts", timeout=5).json()
    assert (body["code"], body["msg"]) == (0, "")
    assert body["data"] == _load_default_contracts()
    btc = body["data"][0]
    assert (btc["quantityPrecision"], btc["tradeMinQuantity"], btc["apiStateOpen"]) == (4, 0.0001, "true")
    mark = httpx.get(sim.base_url + "/openApi/swap/v2/quote/premiumIndex?symbol=BTC-USDT", timeout=5).json()["data"]
    assert (mark["symbol"], mark["markPrice"]) == ("BTC-USDT", "60000")
    assert isinstance(httpx.get(sim.base_url + "/openApi/swap/v2/server/time", timeout=5).json()["data"]["serverTime"], int)
    missing = httpx.get(sim.base_url + "/openApi/swap/v9/nothing", timeout=5)
    assert missing.status_code == 404 and missing.json()["code"] == 100400


@pytest.mark.parametrize("params, code, msg", [
    ({"quantity": None}, 80014, "Invalid parameters, err: parameter quantity is must"),
    ({"price": None}, 80014, "Invalid parameters, err: parameter price is must"),
    ({"symbol": "NOPE-USDT"}, 109425, "NOPE-USDT not exist"),
    ({"positionSide": "LONG"}, 109400, "In the One-way mode, the 'PositionSide' field can only be set to BOTH."),
    ({"quantity": "5e-05"}, 101400, "The minimum order amount is 0.0001 BTC."),   # parsed, truncated to 0
    ({"symbol": "TRX-USDT", "quantity": "5", "price": "0.25000"}, 101400,
     "Please ensure that the minimum nominal value of the order placed must be greater than 2u"),
    ({"reduceOnly": "true", "side": "SELL"}, 101290,
     "The Reduce Only order can only decrease the position. Please adjust the order quantity or cancel the Reduce Only setting."),
    ({"timeInForce": "PostOnly", "price": "60100.0"}, 101215,
     "The Maker (Post Only) order ensures that the user is always the maker. If the order would immediately match "
     "with available orders in the market, it will be canceled."),
    ({"quantity": "10"}, 101204, "Insufficient margin"),    # 600000 USDT at leverage 5 against 100000
    ({"type": "STOP_MARKET"}, 109400, "order type STOP_MARKET is not supported by this simulator (LIMIT, MARKET)"),
    ({"timeInForce": "GTX"}, 80014, "Invalid parameters, err: timeInForce must be one of FOK, GTC, IOC, PostOnly, got 'GTX'"),
])
def test_place_order_refusals_use_bingx_codes(sim, params, code, msg):
    body = _place(sim, **params)
    assert (body["code"], body["msg"]) == (code, msg)
    assert sim.orders() == []


def test_client_order_ids_are_lowercased_and_unique_per_account(sim):
    first = _place(sim, clientOrderID="MyOrder-1")
    assert first["code"] == 0 and first["data"]["order"]["clientOrderID"] == "myorder-1"
    time.sleep(1.05)   # past the one-submission-per-second rule (109201): the id is simply taken
    again = _place(sim, clientOrderId="myorder-1")   # the other spelling, other case: the same id
    assert (again["code"], again["msg"]) == (101481, "clientOrderID cannot be repeated")
    assert _place(sim, clientOrderID="x" * 41)["code"] == 80014
    assert len(sim.orders()) == 1


DOCUMENTED_PLACE_ANSWER = {"symbol", "orderId", "side", "positionSide", "type", "clientOrderID", "workingType"}


def test_a_place_answer_holds_only_the_documented_fields_unless_asked_for_more(make_sim):
    # BINGX.md §2.2: the documented answer has no status, executedQty or avgPrice ("newer
    # responses may add" them). A client that counts on them would miss fills on the exchange.
    sim = make_sim()
    order = _place(sim, type="MARKET", price=None, quantity="0.0100", clientOrderID="m")["data"]["order"]
    assert DOCUMENTED_PLACE_ANSWER <= set(order) and not {"status", "executedQty", "avgPrice"} & set(order)
    assert sim.order("m")["status"] == "FILLED"
    full = make_sim(place_answer="full")
    order = _place(full, type="MARKET", price=None, quantity="0.0100", clientOrderID="m")["data"]["order"]
    assert (order["status"], order["executedQty"], order["avgPrice"]) == ("FILLED", "0.0100", "60000.0")
    with pytest.raises(ValueError, match="place_answer must be one of full, documented"):
        BingXSimulator(place_answer="some")


def test_busy_after_accept_carries_the_order_out_and_answers_system_busy(sim):
    sim.inject("place_order", "busy_after_accept")
    body = _place(sim, type="MARKET", price=None, quantity="0.0100", clientOrderID="b")
    assert (body["code"], body["msg"]) == (109500, "The current system is busy, please try again later")
    assert sim.order("b")["status"] == "FILLED" and sim.position("BTC-USDT") == D("0.0100")
    sim.inject("place_order", "busy_after_accept", code=80012)
    assert _place(sim, clientOrderID="b2")["code"] == 80012 and sim.order("b2")["status"] == "PENDING"


def test_over_precise_values_are_truncated_as_bingx_documents(sim):
    body = _place(sim, quantity="0.01239", price="59000.17", clientOrderID="t1")
    order = _query(sim, clientOrderId="t1")["data"]["order"]
    assert (order["origQty"], order["price"]) == ("0.0123", "59000.1")
    assert body["code"] == 0 and order["status"] == "PENDING"


def test_strict_mode_refuses_over_precise_values(make_sim):
    sim = make_sim(strict=True)
    body = _place(sim, price="59000.17")
    assert (body["code"], body["msg"]) == (109400, "price 59000.17 has more decimals than the price precision 1 of BTC-USDT")
    assert _place(sim, quantity="0.01239")["code"] == 109400
    assert _place(sim)["code"] == 0


def test_quantities_in_exponent_notation_are_read_exactly(make_sim):
    # CCXT-python sends quantity=5e-05 for 0.00005.
    sim = make_sim(contracts=contracts(BTC_USDT={"quantityPrecision": 5, "tradeMinQuantity": 0.00001, "tradeMinUSDT": 1}))
    assert _place(sim, quantity="5e-05", clientOrderID="tiny")["code"] == 0
    assert _query(sim, clientOrderId="tiny")["data"]["order"]["origQty"] == "0.00005"


def test_order_lifecycle_spellings_and_big_integer_ids(sim):
    placed = _place(sim, clientOrderID="life")["data"]["order"]
    assert placed["orderId"] > 2 ** 53 and isinstance(placed["orderId"], int)
    order = _query(sim, orderId=str(placed["orderId"]))["data"]["order"]
    # Nothing traded yet, printed as BingX does (BINGX.md §2.4 and the captured BTC order).
    assert (order["status"], order["executedQty"], order["avgPrice"], order["cumQuote"], order["commission"],
            order["profit"]) == ("PENDING", "0.0000", "0.0", "0", "0.000000", "0.0000")
    assert order["clientOrderId"] == "life"
    opened = raw_call(sim, "GET", "/openApi/swap/v2/trade/openOrders", {}).json()["data"]["orders"]
    assert [o["orderId"] for o in opened] == [placed["orderId"]]
    cancelled = raw_call(sim, "DELETE", ORDER, {"symbol": "BTC-USDT", "clientOrderID": "life"}).json()
    assert cancelled["data"]["order"]["status"] == "CANCELLED"   # two L's in REST
    again = raw_call(sim, "DELETE", ORDER, {"symbol": "BTC-USDT", "clientOrderID": "life"}).json()
    assert (again["code"], again["msg"]) == (80018, "order is already cancelled")
    assert _query(sim, clientOrderId="nobody") == {"code": 80016, "msg": "order not exist", "data": {}}
    unknown = raw_call(sim, "DELETE", ORDER, {"symbol": "BTC-USDT", "clientOrderID": "nobody"}).json()
    assert (unknown["code"], unknown["msg"]) == (109414, "order not exist")
    wrong_symbol = _query(sim, symbol="ETH-USDT", clientOrderId="life")
    assert wrong_symbol["code"] == 80016


def test_limited_liquidity_fills_resting_orders_partly_on_each_move(make_sim):
    sim = make_sim(liquidity={"BTC-USDT": "0.004"})
    _place(sim, clientOrderID="a", quantity="0.0100", price="59000.0")
    _place(sim, clientOrderID="b", quantity="0.0020", price="59100.0")
    fills = sim.set_price("BTC-USDT", "58900")
    # The better-priced buy first, each at its own limit price, 0.004 in all.
    assert [(f["client_order_id"], f["quantity"], f["price"]) for f in fills] == [
        ("b", D("0.0020"), D("59100.0")), ("a", D("0.002"), D("59000.0"))]
    assert sim.set_price("BTC-USDT", "59050") == []   # back above a's limit: nothing crosses
    fills = sim.set_price("BTC-USDT", "58950")
    assert [(f["client_order_id"], f["quantity"]) for f in fills] == [("a", D("0.004"))]
    a = sim.order("a")
    assert (a["status"], a["executedQty"], D(a["cumQuote"])) == ("PARTIALLY_FILLED", "0.0060", D("354"))
    # Maker fee 0.02% of 354 USDT, negative as BingX reports a paid fee.
    assert D(a["commission"]) == D("-0.0708")


def test_market_orders_fill_at_once_at_the_mark_with_the_taker_fee(sim):
    sim.set_price("BTC-USDT", "60000.5")
    body = _place(sim, type="MARKET", price=None, quantity="0.0100", clientOrderID="m")
    order = sim.order("m")
    assert body["code"] == 0 and order["status"] == "FILLED"
    # The taker fee, 0.05% of 600.005 = 0.3000025, is charged as BingX prints it: 6 decimals.
    assert (order["executedQty"], order["avgPrice"], order["cumQuote"], order["commission"]) == (
        "0.0100", "60000.5", "600.00500", "-0.300003")
    assert sim.account()["fees_paid"] == D("0.300003")


def test_positions_and_balance_follow_the_fills(sim):
    _place(sim, type="MARKET", price=None, quantity="0.0100")
    sim.set_price("BTC-USDT", "61000")
    positions = raw_call(sim, "GET", "/openApi/swap/v2/user/positions", {}).json()["data"]
    assert len(positions) == 1
    p = positions[0]
    assert (p["symbol"], p["positionSide"], p["positionAmt"], p["avgPrice"], p["unrealizedProfit"], p["leverage"]) == (
        "BTC-USDT", "LONG", "0.0100", "60000.0", "10.0000", 5)
    balance = raw_call(sim, "GET", "/openApi/swap/v3/user/balance", {}).json()["data"]
    usdt = balance[0]
    fee = D("0.0100") * D("60000") * D("0.0005")
    assert D(usdt["balance"]) == D("100000") - fee
    assert D(usdt["equity"]) == D("100000") - fee + D("10")
    assert D(usdt["usedMargin"]) == D("120")   # 600 USDT at leverage 5
    assert D(usdt["availableMargin"]) == D("100000") - fee + D("10") - D("120")
    # Closing at 61000 realises the 10 USDT.
    assert _place(sim, type="MARKET", price=None, side="SELL", reduceOnly="true", quantity="0.0100")["code"] == 0
    assert sim.position("BTC-USDT") == 0 and sim.account()["realised"] == D("10")
    assert raw_call(sim, "GET", "/openApi/swap/v2/user/positions", {}).json()["data"] == []


def test_leverage_is_set_per_symbol_and_checked(sim):
    set_ = raw_call(sim, "POST", "/openApi/swap/v2/trade/leverage", {"symbol": "BTC-USDT", "side": "BOTH", "leverage": "10"})
    assert set_.json()["data"] == {"leverage": 10, "symbol": "BTC-USDT"}
    got = raw_call(sim, "GET", "/openApi/swap/v2/trade/leverage", {"symbol": "BTC-USDT"}).json()["data"]
    assert (got["longLeverage"], got["shortLeverage"], got["maxLongLeverage"]) == (10, 10, 125)
    wrong_side = raw_call(sim, "POST", "/openApi/swap/v2/trade/leverage", {"symbol": "BTC-USDT", "side": "LONG",
                                                                          "leverage": "10"}).json()
    assert wrong_side["code"] == 109400
    too_high = raw_call(sim, "POST", "/openApi/swap/v2/trade/leverage", {"symbol": "BTC-USDT", "side": "BOTH",
                                                                        "leverage": "200"}).json()
    assert (too_high["code"], too_high["msg"]) == (109400, "leverage must be between 1 and 125 for BTC-USDT")


def test_hedge_mode_rules(make_sim):
    sim = make_sim(position_mode="hedge")
    assert _place(sim, positionSide="BOTH")["code"] == 109400
    assert _place(sim, positionSide="LONG", reduceOnly="true")["msg"] == "In the Hedge mode, the 'ReduceOnly' field can not be filled."
    close = _place(sim, side="SELL", positionSide="LONG")   # closing a LONG that does not exist
    assert (close["code"], close["msg"]) == (101205, "No position to close")
    assert _place(sim, type="MARKET", price=None, positionSide="LONG")["code"] == 0
    assert _place(sim, type="MARKET", price=None, side="SELL", positionSide="SHORT")["code"] == 0
    assert (sim.position("BTC-USDT", "LONG"), sim.position("BTC-USDT", "SHORT")) == (D("0.0100"), D("0.0100"))
    mode = raw_call(sim, "GET", "/openApi/swap/v1/positionSide/dual", {}).json()["data"]
    assert mode == {"dualSidePosition": "true"}


def test_fok_that_cannot_fill_entirely_fills_nothing(make_sim):
    sim = make_sim(liquidity={"BTC-USDT": "0.004"})
    body = _place(sim, price="60100.0", timeInForce="FOK", clientOrderID="fok")
    assert body["code"] == 0 and (sim.order("fok")["status"], sim.order("fok")["executedQty"]) == ("CANCELLED", "0.0000")
    body = _place(sim, price="60100.0", timeInForce="IOC", clientOrderID="ioc")
    assert (sim.order("ioc")["status"], sim.order("ioc")["executedQty"]) == ("CANCELLED", "0.0040")


def test_test_orders_are_checked_but_not_placed(sim):
    body = raw_call(sim, "POST", ORDER + "/test", {"symbol": "BTC-USDT", "side": "BUY", "positionSide": "BOTH",
                                                   "type": "MARKET", "quantity": "0.0100"}).json()
    assert body["code"] == 0 and sim.orders() == []


def test_the_documented_rates_are_enforced_with_http_429(sim):
    answers = [raw_call(sim, "GET", "/openApi/swap/v2/trade/openOrders", {}) for _ in range(6)]
    assert [a.status_code for a in answers] == [200] * 5 + [429]   # 5 a second per UID
    assert answers[-1].json()["code"] == 100410 and sim.throttled == 1


def test_fault_injection_refuses_unknown_names(sim):
    with pytest.raises(ValueError, match="unknown endpoint 'order'"):
        sim.inject("order", "5xx")
    with pytest.raises(ValueError, match="unknown fault 'explode'"):
        sim.inject("place_order", "explode")
    with pytest.raises(ValueError, match="needs code= and msg="):
        sim.inject("place_order", "error")
    sim.inject("place_order", "429", count=2)
    assert sim.pending_faults() == [("place_order", "429", 2)]


def test_the_simulator_needs_credentials_and_known_symbols():
    with pytest.raises(ValueError, match="non-empty api_key and api_secret"):
        BingXSimulator(api_key="", api_secret="s")
    with pytest.raises(ValueError, match="does not list 'NOPE-USDT'"):
        BingXSimulator(prices={"NOPE-USDT": "1"})
    sim = BingXSimulator()
    with pytest.raises(RuntimeError, match="not started"):
        sim.base_url


def test_a_simulator_bug_answers_500_and_is_logged(sim, monkeypatch, caplog):
    def broken(params):
        raise KeyError("oops")

    monkeypatch.setattr(sim, "_ep_server_time", broken)
    response = httpx.get(sim.base_url + "/openApi/swap/v2/server/time", timeout=5)
    assert (response.status_code, response.json()["code"]) == (500, 100500)
    assert "simulator: GET /openApi/swap/v2/server/time failed" in caplog.text and "KeyError" in caplog.text


def test_the_same_client_order_id_is_refused_within_one_second(sim):
    # BINGX.md §3: 109201 "The same order number is only allowed to be submitted once within 1 second."
    assert _place(sim, clientOrderID="s1")["code"] == 0
    again = _place(sim, clientOrderID="S1")
    assert (again["code"], again["msg"]) == (109201, "The same order number is only allowed to be submitted once "
                                                     "within 1 second.")
    time.sleep(1.05)
    assert _place(sim, clientOrderID="s1")["code"] == 101481   # later: the id is simply taken
    assert len(sim.orders()) == 1


def test_a_place_held_at_the_exchange_holds_its_id_from_its_arrival(sim):
    # A place still queued (delay fault) counts from its arrival: a second one within the
    # second is refused, and the first is carried out afterwards.
    sim.inject("place_order", "delay", seconds=0.5)
    first = threading.Thread(target=_place, args=(sim,), kwargs={"clientOrderID": "q1"})
    first.start()
    time.sleep(0.2)
    assert _place(sim, clientOrderID="q1")["code"] == 109201
    first.join()
    assert sim.order("q1")["status"] == "PENDING" and len(sim.orders()) == 1
