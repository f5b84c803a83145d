"""The API key and secret never appear in a log line, an exception, a repr, a vars()
dump, an event, an outcome or a kernel snapshot."""

from __future__ import annotations

import json
import logging
from decimal import Decimal as D

import pytest

import dita
from dita_bingx import BingXSimulator, BingXVenue

from .conftest import cancel, enter, exit_, wait_for

KEY = "KEY-leakcheck-71f3e9a2"
SECRET = "SECRET-leakcheck-c04d5b88"


def _strings(obj, depth=0, seen=None):
    """Every string reachable through vars(), containers and reprs, as a dump would find them."""
    seen = set() if seen is None else seen
    if id(obj) in seen or depth > 12:
        return
    seen.add(id(obj))
    yield repr(obj)
    if isinstance(obj, (str, bytes)):
        yield obj if isinstance(obj, str) else obj.decode("latin-1")
        return
    if isinstance(obj, dict):
        for k, v in list(obj.items()):
            yield from _strings(k, depth + 1, seen)
            yield from _strings(v, depth + 1, seen)
        return
    if isinstance(obj, (list, tuple, set, frozenset)) or type(obj).__name__ == "deque":
        for v in list(obj):
            yield from _strings(v, depth + 1, seen)
        return
    try:
        attributes = vars(obj)
    except TypeError:
        return
    yield from _strings(attributes, depth + 1, seen)


def _assert_clean(texts, where):
    for text in texts:
        assert KEY not in text and SECRET not in text, f"credentials leaked in {where}: {text[:200]!r}"


@pytest.fixture
def leak_sim():
    with BingXSimulator(api_key=KEY, api_secret=SECRET, liquidity={"BTC-USDT": "0.004"}) as s:
        yield s


def test_credentials_never_leak_through_a_session_with_failures(leak_sim, caplog, tmp_path):
    sim = leak_sim
    caplog.set_level(logging.DEBUG)   # every logger: dita_bingx, the simulator, httpx, httpcore
    journal = tmp_path / "journal" / "session.sqlite"
    journal.parent.mkdir()
    k = dita.Kernel(venue="bingx", capital=D("1000"), journal=journal, venue_options={
        "base_url": sim.base_url, "api_key": KEY, "api_secret": SECRET, "retry_backoff": 0.01, "recv_window": 200})
    texts, errors = [], []
    try:
        sim.inject("place_order", "5xx")
        outcomes = [enter(k, "e0", trade="t0", size="0.010")]   # no order at BingX: the slot waits ...
        wait_for(lambda: outcomes.extend(k.poll()) or len(outcomes) > 1, "the lost order is settled", limit=10)
        assert k.slot(0).fsm_state == "IDLE"                    # ... then a REJECT, with a reason
        assert "HTTP 503" in k.slot(0).record["last_order_end"]
        sim.inject("place_order", "drop_after_accept")
        outcomes.append(enter(k, size="0.010", order_type="LIMIT", limit_price="59990", ratios=("0.5", "0.5")))
        sim.inject("open_orders", "429")
        sim.set_price("BTC-USDT", "59980")
        outcomes += k.poll()
        sim.inject("open_orders", "malformed")
        with pytest.raises(dita.VenueError) as info:
            k.poll()
        errors.append(info.value)
        outcomes.append(cancel(k))
        outcomes.append(exit_(k, "x1"))
        outcomes.append(exit_(k, "x2"))
        k.venue._offset_ms = None
        sim.inject("server_time", "drop_before_accept")
        k.venue.balance()
        assert k.slot(0).fsm_state == "TRADE_TERMINAL_WRITTEN"   # the session really ran
        for out in outcomes:
            texts.append(repr(out))
            texts += [repr(e) for e in out.emitted_events]
        texts.append(json.dumps(k.snapshot(), default=str))
        texts.append(repr(k.venue))
        texts.append(str(vars(k.venue)))
        texts += list(_strings(k.venue))
        texts += list(_strings(k))
        for error in errors:
            texts += [str(error), repr(error), repr(error.__context__), repr(error.__cause__)]
        texts.append(caplog.text)
        texts += [r.getMessage() for r in caplog.records]
    finally:
        k.close()   # commits the journal, closes the venue it built
    # The journal, its WAL and anything beside it, byte by byte (it holds the whole session).
    files = list(journal.parent.iterdir())
    assert journal in files and journal.stat().st_size > 0
    texts += [f.read_bytes().decode("latin-1") for f in files]
    assert any("SUBMIT_ORDER" in t for t in texts[-len(files):])  # the session is in there
    assert any("HTTP 503" in t for t in texts)                    # the failures did produce text
    assert any(r.name.startswith("httpx") for r in caplog.records)
    _assert_clean(texts, "the session")


def test_the_dump_would_find_a_key_hidden_deep_in_an_object_graph():
    # Positive control for _strings: otherwise the leak test could pass by seeing nothing.
    class Holder:
        def __init__(self, inner):
            self.inner = inner

    buried = Holder({"level": [Holder((1, {"x": Holder(KEY)}))]})
    with pytest.raises(AssertionError, match="credentials leaked"):
        _assert_clean(list(_strings(buried)), "the control")


def test_exceptions_carry_no_http_objects_with_headers(leak_sim):
    venue = BingXVenue(api_key=KEY, api_secret=SECRET, base_url=leak_sim.base_url, retry_backoff=0.01)
    try:
        leak_sim.inject("balance", "drop_before_accept")
        with pytest.raises(dita.VenueError) as info:
            venue.balance()
        assert "connection failed: RemoteProtocolError" in str(info.value)
        assert info.value.__context__ is None and info.value.__cause__ is None
    finally:
        venue.close()


def test_credentials_from_the_environment_work_and_stay_hidden(leak_sim, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("BINGX_API_KEY", KEY)
    monkeypatch.setenv("BINGX_API_SECRET", SECRET)
    venue = BingXVenue(base_url=leak_sim.base_url)
    try:
        assert venue.balance()["USDT"]["balance"] == D("100000")
        _assert_clean([repr(venue), str(vars(venue)), caplog.text, *_strings(venue)], "an env-configured venue")
        with pytest.raises(TypeError, match="cannot be pickled or copied"):
            import copy
            copy.deepcopy(venue._creds)
    finally:
        venue.close()


def test_missing_credentials_are_named(monkeypatch):
    monkeypatch.delenv("BINGX_API_KEY", raising=False)
    monkeypatch.delenv("BINGX_API_SECRET", raising=False)
    with pytest.raises(dita.VenueError) as info:
        BingXVenue(api_secret=SECRET)
    assert str(info.value) == ("BingX venue: api_key missing. Hint: pass them in venue_options or set "
                               "BINGX_API_KEY / BINGX_API_SECRET")
    with pytest.raises(dita.VenueError, match="api_key and api_secret missing"):
        BingXVenue()
