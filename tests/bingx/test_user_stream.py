"""The simulator's user data stream (BINGX.md §2.9): the listenKey endpoints and the
WebSocket at ``/swap-market``. First ccxt.pro's own ``bingx`` client watches orders, trades,
balance and positions; then a plain WebSocket client checks the wire: gzip frames, Ping,
key lifetimes, every event exactly as sent."""

from __future__ import annotations

import asyncio
import gzip
import inspect
import json
import re
import time
from decimal import Decimal as D

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from .conftest import KEY, SECRET, raw_call, wait_for

SYMBOL = "BTC/USDT:USDT"
LISTEN = "/openApi/user/auth/userDataStream"
ORDER = "/openApi/swap/v2/trade/order"
LIMIT = 5.0   # seconds any one expected frame may take (it normally takes milliseconds)


def ws_url(sim, key):
    return f"ws://127.0.0.1:{sim.port}/swap-market?listenKey={key}"


# ---------------------------------------------------------------- ccxt.pro


def pro_client(sim):
    """ccxt.pro's bingx pointed at the simulator, REST as the ``exchange`` fixture does it."""
    import ccxt.pro

    ex = ccxt.pro.bingx({"apiKey": KEY, "secret": SECRET})
    ex.set_sandbox_mode(True)
    for name, url in list(ex.urls["api"].items()):
        if isinstance(url, str):
            ex.urls["api"][name] = sim.base_url + "/openApi"
    for name in {"linear"} | ({"swap"} & set(ex.urls["api"]["ws"])):
        ex.urls["api"]["ws"][name] = f"ws://127.0.0.1:{sim.port}/swap-market"
    ex.options["defaultType"] = "swap"
    return ex


def run(sim, scenario):
    """Runs ``scenario(ex)`` with a ccxt.pro client, and closes the client."""
    async def main():
        ex = pro_client(sim)
        try:
            await ex.load_markets()
            await asyncio.wait_for(scenario(ex), 30)
        finally:
            await ex.close()

    asyncio.run(main())


async def connected(sim):
    deadline = time.monotonic() + LIMIT
    while not sim.streams():
        assert time.monotonic() < deadline, "ccxt never connected to the user stream"
        await asyncio.sleep(0.01)


async def during(sim, watch, action=None):
    """Starts ``watch`` (a watch_* call), waits until it listens, does ``action`` and
    returns what the watch yields next: so the update the action causes is not missed."""
    pending = asyncio.ensure_future(watch)
    await asyncio.sleep(0)
    await connected(sim)
    if action is not None:
        done = action()
        if inspect.isawaitable(done):
            await done
    return await asyncio.wait_for(pending, LIMIT)


def test_watch_orders_follows_a_resting_order_through_partial_fills_to_its_cancel(make_sim):
    sim = make_sim(liquidity={"BTC-USDT": "0.004"}, ping_interval=0.2)

    async def scenario(ex):
        placed = {}

        async def place():
            placed.update(await ex.create_order(SYMBOL, "limit", "buy", 0.01, 59900, {"clientOrderId": "Rest-1"}))

        [o] = await during(sim, ex.watch_orders(SYMBOL), place)
        assert (o["id"], o["clientOrderId"]) == (placed["id"], "rest-1")   # BingX lowercases client ids
        assert (o["status"], o["type"], o["side"], o["price"], o["amount"]) == ("open", "limit", "buy", 59900.0, 0.01)
        assert (o["filled"], o["remaining"], o["average"]) == (0.0, 0.01, None)
        assert (o["info"]["x"], o["info"]["X"]) == ("NEW", "NEW")

        [o] = await during(sim, ex.watch_orders(SYMBOL), lambda: sim.set_price("BTC-USDT", "59850"))
        assert (o["status"], o["filled"], o["remaining"], o["average"]) == ("open", 0.004, 0.006, 59900.0)
        assert (o["info"]["x"], o["info"]["X"], o["info"]["z"], o["info"]["ap"]) == (
            "TRADE", "PARTIALLY_FILLED", "0.00400000", "59900.00000000")
        assert o["fee"] == {"currency": "USDT", "cost": 0.04792}   # this fill's: 239.6 x 0.0002 (maker)

        [o] = await during(sim, ex.watch_orders(SYMBOL), lambda: sim.set_price("BTC-USDT", "59800"))
        assert (o["status"], o["filled"], o["remaining"], o["average"]) == ("open", 0.008, 0.002, 59900.0)

        [o] = await during(sim, ex.watch_orders(SYMBOL), lambda: ex.cancel_order(placed["id"], SYMBOL))
        assert (o["id"], o["status"], o["filled"], o["remaining"], o["average"]) == (
            placed["id"], "canceled", 0.008, 0.002, 59900.0)
        assert (o["info"]["x"], o["info"]["X"]) == ("CANCELED", "CANCELED")   # one L, as BingX's stream spells it
        rest = await ex.fetch_order(placed["id"], SYMBOL)
        assert (rest["status"], rest["filled"], rest["info"]["status"]) == ("canceled", 0.008, "CANCELLED")

    run(sim, scenario)


def test_watch_my_trades_yields_each_fill_once_with_its_amount_price_fee_and_rest_id(make_sim):
    sim = make_sim(liquidity={"BTC-USDT": "0.004"}, ping_interval=0.2)

    async def scenario(ex):
        placed = {}

        async def place():
            placed.update(await ex.create_order(SYMBOL, "limit", "buy", 0.01, 59900))

        assert await during(sim, ex.watch_orders(SYMBOL), place)
        seen = []
        for mark, amount in (("59850", 0.004), ("59800", 0.004), ("59890", 0.002)):   # each move fills 0.004 at most
            [t] = await during(sim, ex.watch_my_trades(SYMBOL), lambda: sim.set_price("BTC-USDT", mark))
            assert (t["order"], t["symbol"], t["side"], t["amount"], t["price"]) == (
                placed["id"], SYMBOL, "buy", amount, 59900.0)
            assert t["cost"] == float(D(str(amount)) * 59900)
            assert t["fee"] == {"currency": "USDT", "cost": float(D(str(amount)) * 59900 * D("0.0002"))}   # maker
            # A copy: CCXT reads no trade id from the stream (it looks for t / tradeId, BingX
            # sends td), so its cache keeps every trade under id None and updates one dict.
            seen.append(dict(t))
        assert [t["info"]["X"] for t in seen] == ["PARTIALLY_FILLED", "PARTIALLY_FILLED", "FILLED"]
        assert [t["info"]["z"] for t in seen] == ["0.00400000", "0.00800000", "0.01000000"]

        [t] = await during(sim, ex.watch_my_trades(SYMBOL), lambda: ex.create_order(SYMBOL, "market", "sell", 0.01))
        assert (t["side"], t["amount"], t["price"], t["cost"]) == ("sell", 0.01, 59890.0, 598.9)
        assert t["fee"] == {"currency": "USDT", "cost": 0.29945}   # 598.9 x 0.0005 (taker)
        assert t["info"]["rp"] == "-0.10000000"   # bought at 59900, sold at 59890
        seen.append(dict(t))

        rest = await ex.fetch_my_trades(SYMBOL)
        assert [t["id"] for t in seen] == [None] * 4
        assert [t["info"]["td"] for t in seen] == [t["id"] for t in rest] == ["1", "2", "3", "4"]
        assert [(t["amount"], t["price"], t["fee"]["cost"]) for t in seen] == [
            (t["amount"], t["price"], t["fee"]["cost"]) for t in rest]

    run(sim, scenario)


def test_watch_balance_and_positions_show_a_fill_as_rest_does(make_sim):
    sim = make_sim(ping_interval=0.2)

    async def scenario(ex):
        # watch_balance first: after another watch on the same connection, CCXT waits for a
        # balance snapshot it never fetches.
        balance = asyncio.ensure_future(ex.watch_balance())
        await connected(sim)
        assert await ex.watch_positions() == []   # CCXT's REST snapshot: nothing open
        positions = asyncio.ensure_future(ex.watch_positions())
        await asyncio.sleep(0)
        await ex.create_order(SYMBOL, "market", "buy", 0.01)   # 600 USDT at 60000, fee 0.3
        ws_balance, [ws_position] = await asyncio.wait_for(asyncio.gather(balance, positions), LIMIT)
        rest_balance, [rest_position] = await ex.fetch_balance(), await ex.fetch_positions()

        assert ws_balance["USDT"]["free"] == rest_balance["USDT"]["total"] == 99999.7
        assert ws_balance["USDT"]["info"] == {"a": "USDT", "wb": "99999.70000000", "cw": "99999.70000000",
                                              "bc": "-0.30000000"}
        assert D(ws_balance["USDT"]["info"]["wb"]) == D(rest_balance["info"]["data"][0]["balance"])
        fields = ("symbol", "side", "contracts", "entryPrice", "unrealizedPnl", "marginMode")
        assert [ws_position[f] for f in fields] == [rest_position[f] for f in fields] == [
            SYMBOL, "long", 0.01, 60000.0, 0.0, "cross"]
        assert ws_position["info"] == {"s": "BTC-USDT", "pa": "0.0100", "ep": "60000.0", "up": "0.00000000",
                                       "mt": "cross", "iw": "0.00000000", "ps": "LONG", "cr": "0.00000000"}

        sim.set_price("BTC-USDT", "60100")
        balance = asyncio.ensure_future(ex.watch_balance())
        positions = asyncio.ensure_future(ex.watch_positions())
        await asyncio.sleep(0)
        await ex.create_order(SYMBOL, "market", "sell", 0.01, None, {"reduceOnly": True})   # +1 USDT, fee 0.3005
        ws_balance, [ws_position] = await asyncio.wait_for(asyncio.gather(balance, positions), LIMIT)
        rest_balance = await ex.fetch_balance()
        assert ws_balance["USDT"]["free"] == rest_balance["USDT"]["total"] == 100000.3995
        assert ws_balance["USDT"]["info"]["bc"] == "0.69950000"
        assert (ws_position["contracts"], ws_position["side"], ws_position["info"]["cr"]) == (0.0, "long", "1.00000000")
        assert await ex.fetch_positions() == []

    run(sim, scenario)


# ---------------------------------------------------------------- the wire, with a plain client


def frames(ws, count, limit=LIMIT):
    """The next ``count`` events (decoded), each checked to be a binary gzip frame of JSON;
    the stream's Ping frames are skipped."""
    out = []
    deadline = time.monotonic() + limit
    while len(out) < count:
        frame = ws.recv(timeout=max(0.0, deadline - time.monotonic()))
        assert isinstance(frame, bytes), f"a text frame: {frame!r}"
        text = gzip.decompress(frame).decode()
        if text != "Ping":
            out.append(json.loads(text))
    return out


def stream(sim, key):
    return connect(ws_url(sim, key), proxy=None, compression=None, open_timeout=LIMIT, close_timeout=LIMIT)


def new_key(sim):
    answer = raw_call(sim, "POST", LISTEN)   # signed, as CCXT sends it
    assert answer.status_code == 200
    return answer.json()["listenKey"]


def key_call(sim, method, key, signed=False, api_key=KEY):
    """PUT / DELETE with listenKey in the query, signed or with the API key header alone."""
    if signed:
        return raw_call(sim, method, LISTEN, {"listenKey": key}, key=api_key)
    return httpx.request(method, f"{sim.base_url}{LISTEN}", params={"listenKey": key},
                         headers={"X-BX-APIKEY": api_key}, timeout=LIMIT)


def place(sim, **params):
    answer = raw_call(sim, "POST", ORDER, {"symbol": "BTC-USDT", "positionSide": "BOTH", **params}).json()
    assert answer["code"] == 0, answer
    return answer["data"]["order"]["orderId"]


def without_times(event):
    """The event with its clock readings (E, T and the order's T) checked and set aside."""
    event = json.loads(json.dumps(event))
    now = int(time.time() * 1000)
    assert 0 <= now - event.pop("E") < 10_000
    for holder in (event, event.get("o", {})):
        if "T" in holder:
            assert 0 <= now - holder.pop("T") < 10_000
    return event


def test_listen_key_endpoints_answer_as_bingx_documents(make_sim):
    sim = make_sim(rate_limits=False)   # more than the 10 requests a second allowed
    signed = raw_call(sim, "POST", LISTEN)   # CCXT signs it
    unsigned = httpx.post(f"{sim.base_url}{LISTEN}", headers={"X-BX-APIKEY": KEY})   # the docs send only the key
    for answer in (signed, unsigned):
        assert answer.status_code == 200
        assert list(answer.json()) == ["listenKey"]   # bare: no code, msg or data
        assert re.fullmatch(r"[0-9a-f]{64}", answer.json()["listenKey"])
    assert signed.json() != unsigned.json()

    refusals = [httpx.post(f"{sim.base_url}{LISTEN}", headers={"X-BX-APIKEY": "other"}),
                httpx.post(f"{sim.base_url}{LISTEN}"),
                raw_call(sim, "POST", LISTEN, secret="wrong")]
    assert [(r.status_code, r.json()["code"], r.json()["msg"]) for r in refusals] == [
        (200, 100413, "Incorrect apiKey"), (200, 100413, "Null apiKey"),
        (200, 100001, "Signature verification failed due to signature mismatch")]

    key = unsigned.json()["listenKey"]
    extended = [key_call(sim, "PUT", key), key_call(sim, "PUT", key, signed=True),
                httpx.put(f"{sim.base_url}{LISTEN}", json={"listenKey": key}, headers={"X-BX-APIKEY": KEY})]
    assert [(r.status_code, r.content) for r in extended] == [(200, b"")] * 3   # only a status, as documented
    assert httpx.put(f"{sim.base_url}{LISTEN}", headers={"X-BX-APIKEY": KEY}).status_code == 204   # no key sent
    assert key_call(sim, "PUT", "0" * 64).status_code == 404
    assert key_call(sim, "PUT", key, api_key="other").json()["code"] == 100413

    assert key_call(sim, "DELETE", key, signed=True).status_code == 200
    assert [key_call(sim, "PUT", key).status_code, key_call(sim, "DELETE", key).status_code] == [404, 404]
    deleted = httpx.request("DELETE", f"{sim.base_url}{LISTEN}", json={"listenKey": signed.json()["listenKey"]},
                            headers={"X-BX-APIKEY": KEY})
    assert deleted.status_code == 200
    assert key_call(sim, "PUT", signed.json()["listenKey"]).status_code == 404


def test_an_order_is_pushed_new_then_one_trade_per_fill_then_the_account_after_each(make_sim):
    sim = make_sim(liquidity={"BTC-USDT": "0.004"}, ping_interval=30)
    with stream(sim, new_key(sim)) as ws:
        wait_for(lambda: sim.streams(), "the stream is registered")
        order_id = place(sim, type="LIMIT", side="BUY", quantity="0.01", price="59900", clientOrderID="Buy-1")
        [new] = frames(ws, 1)
        sim.set_price("BTC-USDT", "59850")   # fills 0.004
        sim.set_price("BTC-USDT", "59800")   # fills 0.004 more
        trade1, account1, trade2, account2 = frames(ws, 4)

    order = {"s": "BTC-USDT", "c": "buy-1", "i": order_id, "S": "BUY", "o": "LIMIT", "q": "0.01000000",
             "p": "59900.00000000", "sp": "0.00000000", "wt": "MARK_PRICE", "ps": "BOTH", "N": "USDT", "ro": False,
             "sg": False, "ti": 0}
    assert isinstance(new["o"]["i"], int) and order_id > 2 ** 53   # a JSON integer beyond a double's precision
    assert without_times(new) == {"e": "ORDER_TRADE_UPDATE", "o": {
        **order, "x": "NEW", "X": "NEW", "ap": "0.00000000", "z": "0.00000000", "l": "0.00000000",
        "L": "0.00000000", "n": "0.00000000", "rp": "0.00000000", "td": "0", "tv": "0.00000000"}}
    fill = {"x": "TRADE", "X": "PARTIALLY_FILLED", "ap": "59900.00000000", "l": "0.00400000", "L": "59900.00000000",
            "n": "-0.04792000", "rp": "0.00000000", "tv": "239.60000000"}
    assert without_times(trade1) == {"e": "ORDER_TRADE_UPDATE", "o": {**order, **fill, "z": "0.00400000", "td": "1"}}
    assert without_times(trade2) == {"e": "ORDER_TRADE_UPDATE", "o": {**order, **fill, "z": "0.00800000", "td": "2"}}
    assert trade1["o"]["T"] <= trade2["o"]["T"]

    balance = raw_call(sim, "GET", "/openApi/swap/v3/user/balance").json()["data"][0]
    [position] = raw_call(sim, "GET", "/openApi/swap/v2/user/positions").json()["data"]
    assert without_times(account2) == {"e": "ACCOUNT_UPDATE", "a": {
        "m": "ORDER", "B": [{"a": "USDT", "wb": "99999.90420000", "cw": "99999.90420000", "bc": "-0.04792000"}],
        "P": [{"s": "BTC-USDT", "pa": "0.0080", "ep": "59900.0", "up": "-0.80000000", "mt": "cross",
               "iw": "0.00000000", "ps": "LONG", "cr": "0.00000000"}]}}
    # What REST says now: the same wallet and position.
    assert (D(balance["balance"]), D(position["unrealizedProfit"])) == (D("99999.9042"), D("-0.8"))
    assert (position["positionAmt"], position["avgPrice"], position["positionSide"]) == ("0.0080", "59900.0", "LONG")
    assert account1["a"]["B"][0]["wb"] == "99999.95210000" and account1["a"]["P"][0]["pa"] == "0.0040"
    fills = raw_call(sim, "GET", "/openApi/swap/v2/trade/allFillOrders", {"symbol": "BTC-USDT"}).json()["data"]
    assert [f["tradeId"] for f in fills["fill_orders"]] == [trade1["o"]["td"], trade2["o"]["td"]]


def test_every_way_an_order_ends_early_is_pushed_as_canceled(make_sim):
    sim = make_sim(liquidity={"BTC-USDT": "0.004"}, ping_interval=30)
    with stream(sim, new_key(sim)) as ws:
        wait_for(lambda: sim.streams(), "the stream is registered")
        single = place(sim, type="LIMIT", side="BUY", quantity="0.001", price="50000")
        batch = place(sim, type="LIMIT", side="BUY", quantity="0.001", price="50001")
        every = place(sim, type="LIMIT", side="BUY", quantity="0.001", price="50002")
        ioc = place(sim, type="LIMIT", side="BUY", quantity="0.01", price="60000", timeInForce="IOC")   # 0.004 fills
        assert raw_call(sim, "DELETE", ORDER, {"symbol": "BTC-USDT", "orderId": single}).json()["code"] == 0
        assert raw_call(sim, "DELETE", "/openApi/swap/v2/trade/batchOrders",
                        {"symbol": "BTC-USDT", "orderIdList": f"[{batch}]"}).json()["code"] == 0
        assert raw_call(sim, "DELETE", "/openApi/swap/v2/trade/allOpenOrders", {"symbol": "BTC-USDT"}).json()["code"] == 0
        got = frames(ws, 10)

    seen = [(e["e"], e.get("o", {}).get("i"), e.get("o", {}).get("x"), e.get("o", {}).get("X")) for e in got]
    assert seen == [
        ("ORDER_TRADE_UPDATE", single, "NEW", "NEW"), ("ORDER_TRADE_UPDATE", batch, "NEW", "NEW"),
        ("ORDER_TRADE_UPDATE", every, "NEW", "NEW"), ("ORDER_TRADE_UPDATE", ioc, "NEW", "NEW"),
        ("ORDER_TRADE_UPDATE", ioc, "TRADE", "PARTIALLY_FILLED"), ("ACCOUNT_UPDATE", None, None, None),
        ("ORDER_TRADE_UPDATE", ioc, "CANCELED", "CANCELED"),   # the IOC remainder
        ("ORDER_TRADE_UPDATE", single, "CANCELED", "CANCELED"), ("ORDER_TRADE_UPDATE", batch, "CANCELED", "CANCELED"),
        ("ORDER_TRADE_UPDATE", every, "CANCELED", "CANCELED")]
    assert got[6]["o"]["z"] == "0.00400000"   # the remainder ends with what filled


def test_close_all_positions_pushes_its_market_order_and_the_closed_position(make_sim):
    sim = make_sim(ping_interval=30)
    place(sim, type="MARKET", side="SELL", quantity="0.01")
    sim.set_price("BTC-USDT", "59000")
    with stream(sim, new_key(sim)) as ws:
        wait_for(lambda: sim.streams(), "the stream is registered")
        assert raw_call(sim, "POST", "/openApi/swap/v2/trade/closeAllPositions").json()["code"] == 0
        new, trade, account = frames(ws, 3)
    assert (new["o"]["x"], new["o"]["S"], new["o"]["o"], trade["o"]["X"], trade["o"]["rp"]) == (
        "NEW", "BUY", "MARKET", "FILLED", "10.00000000")   # short 0.01 from 60000, bought back at 59000
    assert account["a"]["P"] == [{"s": "BTC-USDT", "pa": "0.0000", "ep": "0.0", "up": "0.00000000", "mt": "cross",
                                  "iw": "0.00000000", "ps": "SHORT", "cr": "10.00000000"}]


def test_ping_comes_as_a_gzip_frame_every_interval_and_pong_is_taken(make_sim):
    sim = make_sim(ping_interval=0.2)
    with stream(sim, new_key(sim)) as ws:
        started = time.monotonic()
        pings = []
        for _ in range(3):
            frame = ws.recv(timeout=LIMIT)
            pings.append(time.monotonic())
            assert isinstance(frame, bytes) and gzip.decompress(frame) == b"Ping"
        assert pings[0] - started < 1.0
        assert all(0.1 < b - a < 1.0 for a, b in zip(pings, pings[1:]))
        ws.send("Pong")
        wait_for(lambda: sim.streams()[0]["pongs"] == 1, "the Pong is received")
        place(sim, type="MARKET", side="BUY", quantity="0.01")
        assert [e["o"]["x"] for e in frames(ws, 2)] == ["NEW", "TRADE"]   # still served


def test_a_key_that_does_not_exist_is_refused_at_the_handshake(sim):
    with pytest.raises(InvalidStatus) as refused:
        stream(sim, "0" * 64)
    assert refused.value.response.status_code == 404
    with pytest.raises(InvalidStatus) as refused:
        stream(sim, "")
    assert refused.value.response.status_code == 404
    assert sim.streams() == []


def test_a_deleted_key_closes_its_connections_and_is_refused_after(make_sim):
    sim = make_sim(ping_interval=30)
    key = new_key(sim)
    with stream(sim, key) as ws:
        wait_for(lambda: sim.streams(), "the stream is registered")
        assert key_call(sim, "DELETE", key, signed=True).status_code == 200
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=LIMIT)
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1000, "listenKey deleted")
    with pytest.raises(InvalidStatus) as refused:
        stream(sim, key)
    assert refused.value.response.status_code == 404
    assert key_call(sim, "PUT", key).status_code == 404


def test_an_expired_key_is_told_so_and_closed_and_put_keeps_a_key_alive(make_sim):
    sim = make_sim(listen_key_ttl=1.5, ping_interval=30)
    kept, lapsing = new_key(sim), new_key(sim)
    with stream(sim, kept) as ws_kept, stream(sim, lapsing) as ws_lapsing:
        time.sleep(0.75)
        assert key_call(sim, "PUT", kept).status_code == 200   # now valid until 2.25 s
        [expired] = frames(ws_lapsing, 1)   # at 1.5 s
        assert expired["e"] == "listenKeyExpired" and expired["listenKey"] == lapsing
        assert abs(expired["E"] - time.time() * 1000) < 2000
        with pytest.raises(ConnectionClosed) as closed:
            ws_lapsing.recv(timeout=LIMIT)
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1000, "listenKey expired")
        assert key_call(sim, "PUT", lapsing).status_code == 404
        # The extended key outlives its first hour (here 1.5 s) and still hears the account,
        # until its extension runs out too.
        place(sim, type="MARKET", side="BUY", quantity="0.01")
        got = frames(ws_kept, 4)
        assert [e["e"] for e in got] == ["ORDER_TRADE_UPDATE", "ORDER_TRADE_UPDATE", "ACCOUNT_UPDATE",
                                         "listenKeyExpired"]
        assert got[-1] == {"e": "listenKeyExpired", "E": got[-1]["E"], "listenKey": kept}
    with pytest.raises(InvalidStatus):
        stream(sim, kept)


def test_every_connection_of_every_valid_key_gets_every_event(make_sim):
    sim = make_sim(ping_interval=30)
    first, second = new_key(sim), new_key(sim)
    with stream(sim, first) as a, stream(sim, first) as b, stream(sim, second) as c:
        wait_for(lambda: len(sim.streams()) == 3, "three streams registered")
        place(sim, type="MARKET", side="BUY", quantity="0.01")
        place(sim, type="LIMIT", side="SELL", quantity="0.01", price="61000")
        got = [frames(ws, 4) for ws in (a, b, c)]
    assert got[0] == got[1] == got[2]
    assert [e["e"] for e in got[0]] == ["ORDER_TRADE_UPDATE", "ORDER_TRADE_UPDATE", "ACCOUNT_UPDATE",
                                         "ORDER_TRADE_UPDATE"]


def test_closing_the_simulator_closes_its_streams_at_once(make_sim):
    sim = make_sim(ping_interval=30)
    with stream(sim, new_key(sim)) as ws:
        wait_for(lambda: sim.streams(), "the stream is registered")
        started = time.monotonic()
        sim.close()
        assert time.monotonic() - started < 2.0
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=LIMIT)
    assert closed.value.rcvd.code == 1001


def test_a_plain_http_get_of_the_stream_path_is_refused(sim):
    answer = httpx.get(ws_url(sim, new_key(sim)))
    assert answer.status_code == 400
