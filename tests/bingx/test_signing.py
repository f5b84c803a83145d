"""Signing as BINGX.md describes it, on both sides: the venue signs, the simulator verifies."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from urllib.parse import parse_qsl

import httpx
import pytest

from dita_bingx import wire

from .conftest import KEY, SECRET, raw_call, requests_to

DOC_SECRET = "mheO6dR8ovSsxZQCOYEFCtelpuxcWGTfHw7te326y6jOwq5WpvFQ9JNljoTwBXZGv5It07m9RXSPpDQEK2w"


def test_signature_matches_the_v2_docs_test_vector():
    message = "symbol=BTC-USDT&timestamp=1667872120843&side=LONG&leverage=6"
    assert wire.sign(DOC_SECRET, message) == "4f581ecdb1fa09b9d6e57886b6f70cffed17f82b93399722939e49a38edec2bf"


def test_the_v3_docs_example_signature_is_wrong_as_bingx_md_says():
    message = "recvWindow=0&symbol=BTC-USDT&timestamp=1696751141337"
    signature = wire.sign(DOC_SECRET, message)
    assert signature.startswith("f8d88360") and signature.endswith("a7a2")
    assert not signature.startswith("1e63e8cf")


def test_the_venue_signs_the_sorted_raw_query_and_sends_the_signature_last(sim, venue):
    venue.balance()
    request = requests_to(sim, "balance")[-1]
    query = request["query"]
    signed_part, _, signature = query.rpartition("&signature=")
    keys = [k for k, _ in parse_qsl(signed_part)]
    assert keys == sorted(keys) == ["recvWindow", "timestamp"]
    assert signature == hmac.new(SECRET.encode(), signed_part.encode(), hashlib.sha256).hexdigest()
    assert request["authenticated"] is True


def test_an_order_request_carries_every_parameter_in_the_signed_query(sim, venue):
    venue.instruments()
    from dita import Order
    from decimal import Decimal as D
    venue.submit(Order(client_order_id="dita-s1", asset="BTC-USDT", side="BUY", position_side="LONG",
                       order_type="LIMIT", quantity=D("0.0100"), limit_price=D("59000.0"), reduce_only=False,
                       leverage=None, role="ENTRY", slot_id=0, trade_id="t1"))
    query = requests_to(sim, "place_order")[-1]["query"]
    signed_part, _, signature = query.rpartition("&signature=")
    assert dict(parse_qsl(signed_part)) == {
        "clientOrderID": "dita-s1", "positionSide": "BOTH", "price": "59000.0", "quantity": "0.0100", "side": "BUY",
        "symbol": "BTC-USDT", "timeInForce": "GTC", "type": "LIMIT", "recvWindow": "5000",
        "timestamp": dict(parse_qsl(signed_part))["timestamp"]}
    assert signature == wire.sign(SECRET, signed_part)


# ---------------------------------------------------------------- the simulator accepts what real clients send

ORDER = "/openApi/swap/v2/trade/openOrders"


def _ok(response):
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["code"] == 0, body
    return body


def test_simulator_accepts_the_sorted_query_ccxt_sends(sim):
    _ok(raw_call(sim, "GET", ORDER, {"symbol": "BTC-USDT"}))


def test_simulator_accepts_parameters_in_any_order(sim):
    ts = str(int(time.time() * 1000))
    _ok(raw_call(sim, "GET", ORDER, {"timestamp": ts, "symbol": "BTC-USDT"}, order="as-given"))


def test_simulator_accepts_a_signature_over_the_unencoded_value_of_an_encoded_query(sim):
    # A space in a value travels as %20; CCXT signs the raw value.
    ts = str(int(time.time() * 1000))
    raw = f"clientOrderId=a b&symbol=BTC-USDT&timestamp={ts}"
    query = f"clientOrderId=a%20b&symbol=BTC-USDT&timestamp={ts}&signature={wire.sign(SECRET, raw)}"
    response = raw_call(sim, "GET", "/openApi/swap/v2/trade/order", query_override=query)
    assert response.json()["code"] == 80016   # authenticated; the order simply does not exist


def test_simulator_accepts_a_form_body(sim):
    ts = str(int(time.time() * 1000))
    form = f"symbol=BTC-USDT&timestamp={ts}"
    body = form + "&signature=" + wire.sign(SECRET, form)
    response = httpx.request("GET", sim.base_url + ORDER, headers={"X-BX-APIKEY": KEY,
                             "Content-Type": "application/x-www-form-urlencoded"}, content=body.encode(), timeout=5)
    _ok(response)


def test_simulator_accepts_a_json_body_signed_over_the_sorted_pairs(sim):
    ts = int(time.time() * 1000)
    signature = wire.sign(SECRET, f"symbol=BTC-USDT&timestamp={ts}")
    body = json.dumps({"timestamp": ts, "symbol": "BTC-USDT", "signature": signature})
    response = httpx.request("GET", sim.base_url + ORDER, headers={"X-BX-APIKEY": KEY, "Content-Type": "application/json"},
                             content=body.encode(), timeout=5)
    _ok(response)


def test_simulator_accepts_query_and_body_concatenated_without_an_ampersand(sim):
    ts = str(int(time.time() * 1000))
    query, body = "symbol=BTC-USDT", f"timestamp={ts}"
    signature = wire.sign(SECRET, query + body)   # the v2 docs' mixed example
    response = httpx.request("GET", f"{sim.base_url}{ORDER}?{query}&signature={signature}",
                             headers={"X-BX-APIKEY": KEY, "Content-Type": "application/x-www-form-urlencoded"},
                             content=body.encode(), timeout=5)
    _ok(response)


@pytest.mark.parametrize("change, code, msg", [
    ({"secret": "another-secret"}, 100001, "Signature verification failed due to signature mismatch"),
    ({"key": None}, 100413, "Null apiKey"),
    ({"key": "someone-else"}, 100413, "Incorrect apiKey"),
    ({"timestamp": -6_000}, 100421, "Null timestamp or timestamp mismatch"),   # older than recvWindow 5000
    ({"timestamp": +3_000}, 100421, "Null timestamp or timestamp mismatch"),   # from the future
    ({"timestamp": False}, 100421, "Null timestamp or timestamp mismatch"),    # missing
])
def test_simulator_refuses_bad_credentials_and_stale_requests_with_bingx_codes(sim, change, code, msg):
    offset = change.get("timestamp")
    if isinstance(offset, int) and not isinstance(offset, bool):
        change = {"timestamp": int(time.time() * 1000) + offset}
    response = raw_call(sim, "GET", ORDER, {"symbol": "BTC-USDT"}, **change)
    assert response.status_code == 200
    body = response.json()
    assert (body["code"], body["msg"]) == (code, msg)
    assert requests_to(sim, "open_orders", authenticated=True) == []


def test_simulator_refuses_a_request_without_signature(sim):
    response = httpx.get(f"{sim.base_url}{ORDER}?symbol=BTC-USDT&timestamp={int(time.time() * 1000)}",
                         headers={"X-BX-APIKEY": KEY}, timeout=5)
    assert response.json()["code"] == 100412 and response.json()["msg"] == "Null signature"


def test_a_wider_recv_window_admits_an_older_timestamp(sim):
    old = int(time.time() * 1000) - 20_000
    assert raw_call(sim, "GET", ORDER, {"recvWindow": 30000}, timestamp=old).json()["code"] == 0
    assert raw_call(sim, "GET", ORDER, {"recvWindow": 70000}, timestamp=old).json()["code"] == 80014
