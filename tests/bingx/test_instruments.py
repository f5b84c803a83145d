"""Instruments from the contracts endpoint, the two formatters, and client order ids."""

from __future__ import annotations

import re
from decimal import Decimal as D

import pytest

import dita
from dita_bingx import BingXVenue

from .conftest import contracts, enter, exit_, requests_to


def test_instruments_come_from_the_contracts_endpoint(venue):
    instruments = venue.instruments()
    assert set(instruments) == {"BTC-USDT", "ETH-USDT", "TRX-USDT", "XRP-USDT", "DOGE-USDT", "ADA-USDT"}
    assert instruments["BTC-USDT"] == dita.Instrument(D("0.1"), D("0.0001"), D("0.0001"), D("2"))
    assert instruments["ETH-USDT"] == dita.Instrument(D("0.01"), D("0.01"), D("0.01"), D("2"))
    assert instruments["DOGE-USDT"] == dita.Instrument(D("0.00001"), D("1"), D("1"), D("2"))
    contract = venue.contract("BTC-USDT")
    assert (contract.api_open, contract.api_close, contract.max_long_leverage) == (True, True, 125)


def test_instruments_are_cached_and_refreshed_on_demand(sim, venue):
    venue.instruments()
    venue.instruments()
    venue.format_price("BTC-USDT", D("60000.04"), "BUY")
    assert len(requests_to(sim, "contracts")) == 1
    sim.set_contracts(contracts(BTC_USDT={"pricePrecision": 2, "tradeMinQuantity": 0.001}))
    assert venue.instruments()["BTC-USDT"].price_increment == D("0.1")   # still the cached listing
    refreshed = venue.refresh_instruments()
    assert refreshed["BTC-USDT"] == dita.Instrument(D("0.01"), D("0.0001"), D("0.001"), D("2"))
    assert len(requests_to(sim, "contracts")) == 2


def test_contracts_with_every_value_as_a_string_parse_the_same(make_sim, make_venue):
    # CCXT's fixture copy of this response has every value as a string.
    stringly = [{k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in c.items()} for c in contracts()]
    venue = make_venue(make_sim(contracts=stringly))
    assert venue.instruments()["BTC-USDT"] == dita.Instrument(D("0.1"), D("0.0001"), D("0.0001"), D("2"))


@pytest.mark.parametrize("field, value, message", [
    ("pricePrecision", "one", "BingX contract BTC-USDT: pricePrecision must be a number, got 'one'"),
    ("quantityPrecision", 2.5, "BingX contract BTC-USDT: quantityPrecision must be a whole number, got 2.5"),
    ("tradeMinQuantity", [1], "BingX contract BTC-USDT: tradeMinQuantity must be a number, got list [1]"),
    ("apiStateOpen", "maybe", "BingX contract BTC-USDT: apiStateOpen must be true or false, got 'maybe'"),
])
def test_a_contract_with_wrong_field_types_is_a_clear_venue_error(make_sim, make_venue, field, value, message):
    venue = make_venue(make_sim(contracts=contracts(BTC_USDT={field: value})))
    with pytest.raises(dita.VenueError) as info:
        venue.instruments()
    assert str(info.value) == message


@pytest.mark.parametrize("asset, price, side, wire", [
    ("BTC-USDT", "65432.15", "BUY", "65432.1"),     # a buy never pays more than asked
    ("BTC-USDT", "65432.15", "SELL", "65432.2"),    # a sell never receives less
    ("BTC-USDT", "65432.1", "BUY", "65432.1"),      # on the tick: unchanged
    ("BTC-USDT", "65432.1", "SELL", "65432.1"),
    ("BTC-USDT", "1E+5", "BUY", "100000.0"),        # plain text, never exponent notation
    ("ETH-USDT", "3456.785", "SELL", "3456.79"),
    ("ETH-USDT", "3456.789999", "BUY", "3456.78"),
    ("TRX-USDT", "0.00001234", "BUY", "0.00001"),
    ("TRX-USDT", "0.00001234", "SELL", "0.00002"),
    ("XRP-USDT", "0.5", "BUY", "0.5000"),
])
def test_format_price_rounds_to_the_tick_never_against_the_trader(venue, asset, price, side, wire):
    assert venue.format_price(asset, D(price), side) == wire


def test_format_price_takes_str_int_and_float_without_float_artefacts(venue):
    assert venue.format_price("ETH-USDT", "3000.015", "SELL") == "3000.02"
    assert venue.format_price("ETH-USDT", 3000, "BUY") == "3000.00"
    assert venue.format_price("ETH-USDT", 0.1 + 0.2, "BUY") == "0.30"   # 0.30000000000000004 stays a buy at 0.30


@pytest.mark.parametrize("asset, quantity, wire", [
    ("BTC-USDT", "0.123456", "0.1234"),    # truncated to the step
    ("BTC-USDT", "0.12349999", "0.1234"),
    ("BTC-USDT", "5E-5", "0.0000"),        # below one step
    ("ETH-USDT", "1E+1", "10.00"),
    ("DOGE-USDT", "12.9", "12"),
    ("DOGE-USDT", "100", "100"),
    ("BTC-USDT", "-0", "0.0000"),          # a negative zero is sent as 0, never as -0
    ("BTC-USDT", "-0E-8", "0.0000"),
    ("DOGE-USDT", "-0.0", "0"),
])
def test_format_quantity_truncates_to_the_step_as_plain_text(venue, asset, quantity, wire):
    assert venue.format_quantity(asset, D(quantity)) == wire


@pytest.mark.parametrize("call, message", [
    (lambda v: v.format_price("NOPE-USDT", D("1"), "BUY"), "BingX does not list 'NOPE-USDT'"),
    (lambda v: v.format_price("BTC-USDT", D("-1"), "BUY"), "price for BTC-USDT must be positive, got -1"),
    (lambda v: v.format_price("BTC-USDT", D("1"), "LONG"), "side must be BUY or SELL, got 'LONG'"),
    (lambda v: v.format_price("BTC-USDT", D("0.04"), "BUY"), "price 0.04 for BTC-USDT rounds to 0.0 on BingX's tick 0.1"),
    (lambda v: v.format_quantity("BTC-USDT", D("-0.1")), "quantity for BTC-USDT must not be negative, got -0.1"),
    (lambda v: v.format_quantity("BTC-USDT", "abc"), "quantity must be a decimal number, got 'abc'"),
    # Too many digits for decimal's context to put on the grid: a clear refusal, not
    # decimal.InvalidOperation.
    (lambda v: v.format_price("BTC-USDT", D("1E+30"), "BUY"),
     "price 1E+30 for BTC-USDT is too large to put on BingX's tick 0.1"),
    (lambda v: v.format_price("ETH-USDT", D("1E+30"), "SELL"),
     "price 1E+30 for ETH-USDT is too large to put on BingX's tick 0.01"),
    (lambda v: v.format_quantity("BTC-USDT", D("1E+30")),
     "quantity 1E+30 for BTC-USDT is too large to put on BingX's size step 0.0001"),
])
def test_formatters_refuse_bad_input_naming_what_is_wrong(venue, call, message):
    with pytest.raises(dita.InvalidInputError) as info:
        call(venue)
    assert str(info.value).startswith(message)


def _intent(intent_id):
    return dita.KernelIntent("CANCEL", 0, intent_id)


def test_client_order_id_keeps_a_valid_intent_id_readable(venue):
    assert venue.client_order_id(_intent("e1")) == "dita-e1"
    assert venue.client_order_id(_intent("entry_2-b")) == "dita-entry_2-b"


def test_client_order_ids_obey_bingx_rules_and_never_collide(venue):
    ids = ["e1", "E1", "h_e1", "x" * 35, "x" * 36, "Ünïcode id", "a b", "UPPER", "upper", ""]
    results = [venue.client_order_id(_intent(i)) for i in ids]
    for coid in results:
        # 1-40 characters; BingX lowercases ids, so only lowercase survives a round trip.
        assert re.fullmatch(r"[a-z0-9_-]{1,40}", coid), coid
    assert len(set(results)) == len(ids)          # "E1" and "e1" must not become the same order
    assert results[3] == "dita-" + "x" * 35       # exactly 40 characters: still readable
    assert len(results[4]) == 40 and results[4].startswith("dita-h_")
    assert [venue.client_order_id(_intent(i)) for i in ids] == results   # deterministic


def test_client_order_id_prefix_is_an_option(sim, make_venue):
    venue = make_venue(sim, client_order_id_prefix="bot7-")
    assert venue.client_order_id(_intent("e1")) == "bot7-e1"
    with pytest.raises(dita.InvalidInputError, match="client_order_id_prefix must be 1-12 characters"):
        make_venue(sim, client_order_id_prefix="Bad Prefix")


@pytest.mark.parametrize("options, message", [
    ({"position_mode": "both"}, "position_mode must be one of one-way, hedge, got 'both'"),
    ({"time_in_force": "GTX"}, "time in force must be GTC, IOC, FOK or PostOnly, got 'GTX'"),
    ({"recv_window": 90000}, "recv_window is at most 60000 ms on BingX, got 90000"),
    ({"base_url": "open-api.bingx.com"}, "base_url must be an http(s) URL, got 'open-api.bingx.com'"),
    ({"timeout": "10"}, "timeout must be a non-negative number of seconds, got '10'"),
])
def test_bad_options_are_refused_naming_the_option(sim, make_venue, options, message):
    with pytest.raises(dita.InvalidInputError) as info:
        make_venue(sim, **options)
    assert message in str(info.value)


def test_hedge_mode_is_declared_only_by_a_venue_in_hedge_mode(sim, make_venue):
    # One-way mode nets LONG and SHORT of a symbol into one position: without hedge_mode
    # the kernel refuses an entry against another slot's side (see test_sessions).
    one_way, hedge = make_venue(sim), make_venue(sim, position_mode="hedge")
    assert one_way.capabilities == frozenset({"MARKET", "LIMIT", "reduce_only"})
    assert hedge.capabilities == frozenset({"MARKET", "LIMIT", "reduce_only", "hedge_mode"})
    assert BingXVenue.capabilities == frozenset({"MARKET", "LIMIT", "reduce_only"})   # the class is unchanged
    assert make_venue(sim).capabilities == one_way.capabilities


def test_live_and_demo_hosts(monkeypatch):
    monkeypatch.delenv("BINGX_API_KEY", raising=False)
    live = BingXVenue(api_key="k", api_secret="s")
    demo = BingXVenue(api_key="k", api_secret="s", demo=True)
    try:
        assert live.base_url == "https://open-api.bingx.com"
        assert demo.base_url == "https://open-api-vst.bingx.com"
    finally:
        live.close()
        demo.close()


@pytest.mark.parametrize("status, opening, closing", [
    (0, "BingX lists BTC-USDT as offline (status 0): no order is taken", "offline"),
    (5, "BingX lists BTC-USDT as not online yet (status 5): no order is taken", "not online yet"),
    (25, "BingX lists BTC-USDT as close only (status 25): no opening order is taken", None),
])
def test_a_contract_that_is_not_online_takes_no_order_it_forbids(make_sim, make_kernel, status, opening, closing):
    """BINGX.md 2.1: status 1 online, 0 offline, 5 pre-online, 25 close only. Refused before
    anything is sent (a REJECT naming the status); a close-only symbol still takes exits."""
    sim = make_sim()
    k = make_kernel(sim)
    assert enter(k, size="0.010").state == "POSITION_OPEN"     # opened while it was online
    sim.set_contracts(contracts(BTC_USDT={"status": status}))
    k.venue.refresh_instruments()
    k2 = make_kernel(sim)   # a second kernel tries to open
    k2.venue.refresh_instruments()
    out = enter(k2, intent_id="k2e1", size="0.010")
    assert out.state == "IDLE" and k2.slot(0).record["last_order_end"] == opening
    places = len(requests_to(sim, "place_order"))
    out = exit_(k)
    if closing is None:
        assert out.state == "TRADE_TERMINAL_WRITTEN" and sim.position("BTC-USDT") == 0
    else:
        assert out.state == "POSITION_OPEN" and closing in k.slot(0).record["last_order_end"]
        assert len(requests_to(sim, "place_order")) == places
