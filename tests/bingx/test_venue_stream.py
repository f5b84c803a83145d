"""The venue's user data stream (option ``stream``): fills of resting orders reach the kernel
through ``k.poll()`` from the WebSocket, with exactly the events the REST path gives, and
without REST requests while the stream is healthy; a dropped connection, an expired or
deleted key, a lost frame or an unreadable one make ``poll()`` ask REST, and nothing is lost
or reported twice; ``close()`` ends the thread and deletes the key."""

from __future__ import annotations

import json
import logging
import time
from decimal import Decimal as D

import pytest

import dita

from .conftest import KEY, SECRET, cancel, enter, exit_, raw_call, requests_to, venue_options, wait_for
from .test_secrets import _strings

SYMBOL = "BTC-USDT"
LIMIT = 5.0   # seconds any one expected thing may take (it normally takes milliseconds)
REST_READS = ("open_orders", "query_order")


@pytest.fixture
def session(make_sim, make_kernel):
    """``session(stream, **venue_options)``: a simulator (0.004 BTC trades per price move,
    Ping every 0.2 s) and a kernel on it, the venue's events recorded; with the stream on,
    returned once it is connected."""

    def build(stream, sim_options=None, **options):
        sim = make_sim(liquidity={SYMBOL: "0.004"}, ping_interval=0.2, **(sim_options or {}))
        options.setdefault("stream_backoff", 0.05)
        k = make_kernel(sim, capital="1000", stream=stream, **options)
        k.events = record(k.venue)
        if stream:
            wait_for(lambda: k.venue.stream_status()["connected"], "the stream connected", LIMIT)
        return sim, k

    return build


def record(venue):
    """Every event the venue hands the kernel, in order."""
    seen = []
    for name in ("submit", "cancel", "poll", "query"):
        def wrapped(*args, _call=getattr(venue, name)):
            events = _call(*args)
            seen.extend(events)
            return events
        setattr(venue, name, wrapped)
    return seen


def poll_until(k, condition, what):
    """Polls the kernel until ``condition()``; the outcomes, or a failure after LIMIT s."""
    outs = []
    deadline = time.monotonic() + LIMIT
    while True:
        outs += k.poll()
        if condition():
            return outs
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.01)


def filled(k, size):
    return lambda: (o := k.slot(0).active_entry_order) is None or o.filled_size == D(size)


def wire_events(events):
    """What the kernel applies of each event (it keeps decimals normalized), as text."""
    return [(e.kind, e.event_id, *(None if v is None else format(v.normalize(), "f")
                                   for v in (e.filled_size, e.fill_price, e.fee))) for e in events]


def rest_reads(sim, since=0):
    return [r for r in list(sim.requests)[since:] if r["endpoint"] in REST_READS]


def fills_three_times(sim, k, between=None):
    """A resting 0.010 BTC buy at 59990.0 filled 0.004, 0.004, 0.002 by three price moves;
    ``between(step)`` runs before each move."""
    enter(k, size="0.010", order_type="LIMIT", limit_price="59990.07")
    for step, (price, size) in enumerate((("59980", "0.004"), ("59970", "0.008"), ("59960", "0.010"))):
        if between is not None:
            between(step)
        sim.set_price(SYMBOL, price)
        poll_until(k, filled(k, size), f"{size} filled")
    assert k.slot(0).fsm_state == "POSITION_OPEN" and k.slot(0).size == D("0.010")


def assert_books_agree(sim, k):
    """The kernel's figures are the exchange's, to the last digit, and no fill came twice."""
    fills = [e for e in k.events if e.kind in ("PARTIALLY_FILLED", "FULL_FILL")]
    assert len({e.event_id for e in k.events}) == len(k.events), "an event was reported twice"
    order = sim.order("dita-e1")
    assert sum(e.filled_size for e in fills) == D(order["executedQty"]) == k.slot(0).size
    assert sum(e.filled_size * e.fill_price for e in fills) == D(order["cumQuote"])
    assert sum(e.fee for e in fills) == -D(order["commission"]) == k.account.fees_paid


def test_resting_limit_fills_come_through_the_stream_as_the_rest_path_reports_them(session):
    rest_sim, rest = session(stream=False)
    fills_three_times(rest_sim, rest)
    sim, k = session(stream=True, stream_check_interval=60)
    placed = len(sim.requests)
    fills_three_times(sim, k)

    assert wire_events(k.events) == wire_events(rest.events)
    assert [e.kind for e in k.events] == ["ORDER_ACK", "PARTIALLY_FILLED", "PARTIALLY_FILLED", "FULL_FILL"]
    assert rest_reads(sim, placed) == []   # neither open orders nor a query: the stream told it all
    assert len(rest_reads(rest_sim)) >= 3   # the REST path asks every poll
    assert_books_agree(sim, k)
    assert (k.account.capital, k.account.fees_paid) == (rest.account.capital, rest.account.fees_paid)
    assert k.venue.stream_status()["gaps"] == 0


def test_fills_seen_by_both_rest_and_the_stream_are_reported_once(session):
    rest_sim, rest = session(stream=False)
    fills_three_times(rest_sim, rest)
    # Every poll asks REST as well: each fill reaches the venue twice, in either order.
    sim, k = session(stream=True, stream_check_interval=0)
    fills_three_times(sim, k)
    wait_for(lambda: sim.order("dita-e1")["status"] == "FILLED" and not k.venue.poll(), "nothing more to report")
    assert wire_events(k.events) == wire_events(rest.events)
    assert_books_agree(sim, k)
    assert k.venue.stream_status()["gaps"] == 0


def test_a_lost_frame_is_a_gap_and_rest_reports_both_fills_once(session):
    sim, k = session(stream=True, stream_check_interval=60)
    # The first fill's ORDER_TRADE_UPDATE never arrives; the second one's z (0.008) is not
    # 0 + its l (0.004): the venue asks REST, which reports 0.008 at once.
    enter(k, size="0.010", order_type="LIMIT", limit_price="59990.07")
    sim.drop_stream_frames(1)
    sim.set_price(SYMBOL, "59980")
    sim.set_price(SYMBOL, "59970")
    poll_until(k, filled(k, "0.008"), "both fills")
    since = len(sim.requests)
    sim.set_price(SYMBOL, "59960")   # checked over REST once, the order is the stream's again
    poll_until(k, filled(k, "0.010"), "the last fill")
    assert rest_reads(sim, since) == []
    fills = [(e.event_id.rsplit(":", 1)[1], e.filled_size) for e in k.events if e.kind in ("PARTIALLY_FILLED", "FULL_FILL")]
    assert fills == [("0.008", D("0.0080")), ("0.01", D("0.002"))]
    assert k.venue.stream_status()["gaps"] == 1
    assert_books_agree(sim, k)


def test_a_frame_lost_without_trace_is_found_by_the_periodic_rest_check(session):
    sim, k = session(stream=True, stream_check_interval=0.5)
    enter(k, size="0.010", order_type="LIMIT", limit_price="59990.07")
    sim.drop_stream_frames(1)
    sim.set_price(SYMBOL, "59980")   # its only update is lost: no later one shows the gap
    since = len(sim.requests)
    poll_until(k, filled(k, "0.004"), "the lost fill found")
    assert rest_reads(sim, since), "only REST could have found it"
    assert k.venue.stream_status()["gaps"] == 0


@pytest.mark.parametrize("how", ["dropped", "deleted"])
def test_a_lost_connection_falls_back_to_rest_and_loses_nothing(session, how):
    rest_sim, rest = session(stream=False)
    fills_three_times(rest_sim, rest)
    sim, k = session(stream=True, stream_check_interval=60)
    status = k.venue.stream_status
    enter(k, size="0.010", order_type="LIMIT", limit_price="59990.07")
    sim.set_price(SYMBOL, "59980")
    poll_until(k, filled(k, "0.004"), "the first fill")
    if how == "dropped":   # the connection ends, the key stays valid: the same key again
        sim.close_streams()
    else:   # the key is deleted: the connection ends, and the key is refused (404): a new key
        key = sim.streams()[0]["listenKey"]
        assert raw_call(sim, "DELETE", "/openApi/user/auth/userDataStream", {"listenKey": key}).status_code == 200
    sim.set_price(SYMBOL, "59970")   # its frame is queued behind the Close (or has no key): never sent
    # Not a poll until the venue is connected again: the new connection never carried that
    # fill, so the order is checked over REST.
    wait_for(lambda: status()["connections"] == 2 and status()["connected"], "a new connection", LIMIT)
    since = len(sim.requests)
    poll_until(k, filled(k, "0.008"), "the fill made while the connection was lost")
    assert rest_reads(sim, since), "only REST could have found it"
    since = len(sim.requests)
    sim.set_price(SYMBOL, "59960")
    poll_until(k, filled(k, "0.010"), "the last fill")
    assert rest_reads(sim, since) == []   # the new connection follows the order again
    assert wire_events(k.events) == wire_events(rest.events)
    assert_books_agree(sim, k)
    assert status()["listen_keys"] == (1 if how == "dropped" else 2)


def test_an_expired_key_is_replaced_and_a_fill_while_it_was_gone_arrives_once(session):
    sim, k = session(stream=True, sim_options={"listen_key_ttl": 0.5}, stream_keepalive=60, stream_check_interval=60,
                     stream_backoff=0.5)
    status = k.venue.stream_status
    enter(k, size="0.010", order_type="LIMIT", limit_price="59990.07")
    wait_for(lambda: not status()["connected"], "the key expired", LIMIT)
    sim.set_price(SYMBOL, "59980")   # no valid key: this fill is streamed to nobody
    poll_until(k, filled(k, "0.004"), "0.004 filled")
    assert rest_reads(sim), "only REST could have found it"
    wait_for(lambda: status()["listen_keys"] == 2 and status()["connected"], "a new key after expiry", LIMIT)
    k.poll()   # the order is checked over REST once more, then followed by the new connection
    since = len(sim.requests)
    sim.set_price(SYMBOL, "59970")
    poll_until(k, filled(k, "0.008"), "0.008 filled")
    assert rest_reads(sim, since) == []
    assert_books_agree(sim, k)


def test_the_key_is_extended_before_it_expires(session):
    sim, k = session(stream=True, sim_options={"listen_key_ttl": 0.6}, stream_keepalive=0.2)
    puts = lambda: [r for r in requests_to(sim, "listen_key") if r["method"] == "PUT"]   # noqa: E731
    wait_for(lambda: len(puts()) >= 5, "five extensions: 1 s, well past the key's own 0.6 s", LIMIT)
    status = k.venue.stream_status()
    assert (status["listen_keys"], status["connections"], status["connected"]) == (1, 1, True)
    assert status["extensions"] >= 4 and all(r["answer"] == 200 for r in puts())


def test_an_unreadable_frame_makes_poll_ask_rest(session):
    sim, k = session(stream=True, stream_check_interval=60)
    enter(k, size="0.010", order_type="LIMIT", limit_price="59990.07")
    since = len(sim.requests)
    k.poll()
    assert rest_reads(sim, since) == []
    k.venue._stream_message(None, b"\x1f\x8b not gzip after all")
    k.poll()
    assert [r["endpoint"] for r in rest_reads(sim, since)] == ["open_orders"]
    k.poll()
    assert len(rest_reads(sim, since)) == 1   # checked once: the stream follows it again


def test_a_restored_kernel_with_the_stream_hears_only_what_it_had_not_applied(session):
    sim, k = session(stream=True, stream_check_interval=60)
    enter(k, size="0.010", order_type="LIMIT", limit_price="59990.07")
    sim.set_price(SYMBOL, "59980")
    poll_until(k, filled(k, "0.004"), "the first fill")
    snapshot = k.snapshot()
    k.venue.close()
    sim.set_price(SYMBOL, "59970")   # while no venue listens
    k2 = dita.Kernel.restore(snapshot, venue="bingx", venue_options=venue_options(
        sim, stream=True, stream_check_interval=60, stream_backoff=0.05))
    try:
        wait_for(lambda: k2.venue.stream_status()["connected"], "the new venue's stream", LIMIT)
        poll_until(k2, filled(k2, "0.008"), "the fill made while no kernel listened")   # over REST
        since = len(sim.requests)
        sim.set_price(SYMBOL, "59960")
        poll_until(k2, filled(k2, "0.010"), "the last fill")
        assert rest_reads(sim, since) == []   # resumed, checked once, then the stream's
        order = sim.order("dita-e1")
        assert k2.slot(0).size == D(order["executedQty"]) == D("0.010")
        assert k2.account.fees_paid == -D(order["commission"])
    finally:
        k2.venue.close()


def session_steps(sim, k):
    """Partial entry, cancel, a MARKET leg, a LIMIT leg filled in two moves."""
    enter(k, size="0.010", order_type="LIMIT", limit_price="59990.07", ratios=("0.5", "0.5"))
    sim.set_price(SYMBOL, "59980")
    poll_until(k, filled(k, "0.004"), "the entry's first fill")
    cancel(k)
    exit_(k, "x1")
    sim.set_liquidity(SYMBOL, "0.001")
    exit_(k, "x2", order_type="LIMIT", limit_price="60100.04")
    sim.set_price(SYMBOL, "60200")
    poll_until(k, lambda: k.slot(0).active_exit_order.filled_size == D("0.001"), "the last leg's first fill")
    sim.set_price(SYMBOL, "60150")
    poll_until(k, lambda: k.slot(0).closed, "the trade closed")


def test_a_session_ends_with_the_same_account_slots_and_trades_with_and_without_the_stream(session):
    results = []
    for stream in (False, True):
        sim, k = session(stream=stream, stream_check_interval=60)
        session_steps(sim, k)
        snap = k.snapshot()
        results.append((json.dumps(snap["account"], sort_keys=True, default=str),
                        json.dumps(snap["slots"], sort_keys=True, default=str),
                        json.dumps(snap["trades"], sort_keys=True, default=str), wire_events(k.events)))
    assert results[0] == results[1]


def test_close_deletes_the_key_ends_the_thread_and_never_shows_the_key(session, caplog):
    caplog.set_level(logging.DEBUG)
    sim, k = session(stream=True)
    venue = k.venue
    [stream] = sim.streams()
    key = stream["listenKey"]
    wait_for(lambda: sim.streams()[0]["pongs"] >= 1, "a Pong", LIMIT)   # Ping is answered
    reachable = list(_strings(venue))   # while connected: nothing reachable names the key or credentials
    assert not [text for text in reachable if key in text or KEY in text or SECRET in text]
    thread = venue._stream_thread
    venue.close()
    assert sim.streams() == [] and not thread.is_alive()
    assert [r["method"] for r in requests_to(sim, "listen_key")] == ["POST", "DELETE"]
    deleted = requests_to(sim, "listen_key")[-1]
    assert (deleted["params"]["listenKey"], deleted["answer"]) == (key, 200)
    status = venue.stream_status()
    assert (status["connected"], status["connections"]) == (False, 1)
    logged = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("dita_bingx.simulator"))
    shown = logged + repr(venue) + str(status) + repr(vars(venue))
    assert key not in shown
