"""Fixtures for the BingX plugin tests: a simulator per test, venues and kernels on it."""

from __future__ import annotations

import copy
import json
import time
from decimal import Decimal

import pytest

import dita
from dita_bingx import BingXSimulator, BingXVenue
from dita_bingx.simulator import _load_default_contracts

KEY = "tk-3f9a1c"
SECRET = "ts-5d0b7e2a"
D = Decimal


def venue_options(sim, **options):
    # Short backoffs keep the retry tests quick; the behaviour is the same.
    return {"base_url": sim.base_url, "api_key": KEY, "api_secret": SECRET, "retry_backoff": 0.01, **options}


@pytest.fixture
def sim():
    with BingXSimulator(api_key=KEY, api_secret=SECRET) as s:
        yield s


@pytest.fixture
def make_sim():
    """Builds simulators with options; all are closed after the test."""
    made = []

    def build(**options):
        options.setdefault("api_key", KEY)
        options.setdefault("api_secret", SECRET)
        s = BingXSimulator(**options).start()
        made.append(s)
        return s

    yield build
    for s in made:
        s.close()


@pytest.fixture
def exchange():
    """Builds CCXT bingx clients pointed at a simulator, as BINGX.md §5 describes."""
    import ccxt

    clients = []

    def build(sim, key=KEY, secret=SECRET):
        ex = ccxt.bingx({"apiKey": key, "secret": secret})
        ex.set_sandbox_mode(True)   # before overriding: it swaps urls['api'] for urls['test']
        for name, url in list(ex.urls["api"].items()):
            if isinstance(url, str):
                ex.urls["api"][name] = sim.base_url + "/openApi"
        ex.options["defaultType"] = "swap"
        ex.enableLastJsonResponse = True   # so tests can read the exact strings the simulator sent
        clients.append(ex)
        return ex

    yield build
    for ex in clients:
        ex.session.close()


@pytest.fixture
def make_venue():
    made = []

    def build(sim, **options):
        v = BingXVenue(**venue_options(sim, **options))
        made.append(v)
        return v

    yield build
    for v in made:
        v.close()


@pytest.fixture
def venue(sim, make_venue):
    return make_venue(sim)


@pytest.fixture
def make_kernel():
    """Kernels on the registered ``bingx`` venue (through the entry point, as users build them)."""
    made = []

    def build(sim, capital="1000", slots=1, **options):
        k = dita.Kernel(venue="bingx", slots=slots, capital=D(capital), venue_options=venue_options(sim, **options))
        made.append(k)
        return k

    yield build
    for k in made:
        k.venue.close()


def contracts(**changes):
    """The packaged contracts with some fields changed: ``contracts(BTC_USDT={"tradeMinQuantity": 0.001})``."""
    data = copy.deepcopy(_load_default_contracts())
    for key, fields in changes.items():
        symbol = key.replace("_", "-")
        for c in data:
            if c["symbol"] == symbol:
                c.update(fields)
    return data


def intent(action, intent_id, slot=0, **fields):
    return dita.KernelIntent(action, slot, intent_id, **fields)


def enter(k, intent_id="e1", slot=0, trade="t1", asset="BTC-USDT", side="LONG", size="0.010", order_type="MARKET",
          limit_price=None, ratios=(), **fields):
    return k.process_intent(intent("ENTER", intent_id, slot, trade_id=trade, asset=asset, side=side, target_size=size,
                                   order_type=order_type, limit_price=limit_price, exit_leg_ratios=ratios, **fields))


def exit_(k, intent_id="x1", slot=0, order_type="MARKET", limit_price=None, **fields):
    return k.process_intent(intent("EXIT", intent_id, slot, order_type=order_type, limit_price=limit_price, **fields))


def cancel(k, intent_id="c1", slot=0):
    return k.process_intent(intent("CANCEL", intent_id, slot))


def requests_to(sim, endpoint, authenticated=True):
    return [r for r in sim.requests if r["endpoint"] == endpoint and r["authenticated"] == authenticated]


def wait_for(condition, what, limit=5.0):
    """Waits for something a server thread does; fails (not a timing assertion) if it never happens."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.01)


def assert_account_identity(k):
    a = k.account
    assert a.capital == a.starting_capital + a.realized_pnl
    assert a.realized_pnl == a.gross_realized_pnl - a.fees_paid


def slot_snapshot(k, slot=0):
    return json.dumps(k.snapshot()["slots"][slot], sort_keys=True, default=str)


def raw_call(sim, method, path, params=None, *, body=None, content_type=None, signed=True, key=KEY, secret=SECRET,
             timestamp=None, sign_text=None, order=None, query_override=None):
    """A hand-built BingX request (what another client would send), for simulator tests.

    ``order``: parameter order in the query (default sorted); ``sign_text``: sign this text
    instead of the query; ``body``: form or JSON text sent as the body."""
    import httpx
    from dita_bingx import wire

    params = dict(params or {})
    if signed and "timestamp" not in params and timestamp is not False:
        params["timestamp"] = str(timestamp if timestamp is not None else int(time.time() * 1000))
    items = [(k, wire.wire_value(v)) for k, v in (params.items() if order == "as-given" else sorted(params.items()))]
    query = wire.encoded(items)
    headers = {}
    if signed:
        text = sign_text if sign_text is not None else wire.canonical(items)
        query = (query + "&" if query else "") + "signature=" + wire.sign(secret, text)
        if key is not None:
            headers["X-BX-APIKEY"] = key
    if query_override is not None:
        query = query_override
    if content_type:
        headers["Content-Type"] = content_type
    response = httpx.request(method, f"{sim.base_url}{path}" + (f"?{query}" if query else ""), headers=headers,
                             content=body.encode() if body is not None else None, timeout=5)
    return response
