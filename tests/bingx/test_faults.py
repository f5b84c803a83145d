"""Failures: lost answers never make a second order, and an order BingX did not have when
asked keeps its slot waiting until it can no longer arrive; throttling is absorbed within
the documented limits (a 418 ban is not retried); a client order id taken by another order
is never adopted; 5xx and unreadable answers to reads are clear errors; and the slot always
ends in the state the exchange confirms."""

from __future__ import annotations

import time
from decimal import Decimal as D

import pytest

import dita

from .conftest import cancel, contracts, enter, requests_to, slot_snapshot, venue_options, wait_for


def _places(sim):
    return [r for r in sim.requests if r["endpoint"] == "place_order"]


# ---------------------------------------------------------------- lost answers on submit


def test_answer_dropped_after_the_order_was_accepted_gives_exactly_one_order(sim, make_kernel):
    k = make_kernel(sim)
    sim.inject("place_order", "drop_after_accept")
    out = enter(k, size="0.010")   # MARKET: it filled at once, the answer was lost
    assert out.state == "POSITION_OPEN"
    assert [e.kind for e in out.emitted_events] == ["ORDER_ACK", "FULL_FILL"]
    assert len(sim.orders()) == 1 and len(_places(sim)) == 1
    assert k.slot(0).size == D("0.010") and sim.position("BTC-USDT") == D("0.010")
    # It was settled by asking for the client order id.
    assert requests_to(sim, "query_order")[0]["params"]["clientOrderId"] == "dita-e1"


def test_request_dropped_before_it_was_accepted_is_sent_again_after_checking(sim, make_kernel):
    k = make_kernel(sim)
    sim.inject("place_order", "drop_before_accept")
    out = enter(k, size="0.010", order_type="LIMIT", limit_price="59000")
    assert out.state == "ENTRY_WORKING"
    places = _places(sim)
    assert [(p["fault"], p["answer"]) for p in places] == [("drop_before_accept", None), (None, 0)]
    # The query came between the two attempts.
    order = [r["endpoint"] for r in sim.requests if r["endpoint"] in ("place_order", "query_order")]
    assert order == ["place_order", "query_order", "place_order"]
    assert len(sim.orders()) == 1


def test_a_request_delayed_past_the_timeout_still_gives_one_order(sim, make_kernel):
    k = make_kernel(sim, timeout=0.3)
    sim.inject("place_order", "delay", seconds=0.8)   # held before the exchange looks at it
    out = enter(k, size="0.010", order_type="LIMIT", limit_price="59000")
    assert out.state == "ENTRY_WORKING"
    # The retry waits out BingX's one-submission-per-second rule; by then the late first
    # attempt was carried out, so the retry is refused as a duplicate and the query finds it.
    assert {p["fault"]: p["answer"] for p in _places(sim)} == {"delay": 0, None: 101481}
    assert len(sim.orders()) == 1


def test_an_answer_delayed_past_the_timeout_is_resolved_by_query(sim, make_kernel):
    k = make_kernel(sim, timeout=0.3)
    sim.inject("place_order", "delay", seconds=0.8, after_accept=True)
    out = enter(k, size="0.010", order_type="LIMIT", limit_price="59000")
    assert out.state == "ENTRY_WORKING"
    assert len(_places(sim)) == 1 and len(sim.orders()) == 1


@pytest.mark.parametrize("fault", ["http_error_after_accept", "malformed_after_accept", "wrong_types"])
def test_an_unreadable_answer_to_an_accepted_order_is_resolved_by_query(sim, make_kernel, fault):
    k = make_kernel(sim)
    sim.inject("place_order", fault)
    out = enter(k, size="0.010", order_type="LIMIT", limit_price="59000")
    assert out.state == "ENTRY_WORKING"
    assert k.slot(0).entry_venue_order_id == str(sim.order("dita-e1")["orderId"])
    assert len(_places(sim)) == 1 and len(sim.orders()) == 1


def _settled(k, limit=10):
    """Polls until the kernel hears something; returns what it heard."""
    outcomes = []

    def heard():
        outcomes.extend(k.poll())
        return outcomes

    wait_for(heard, "poll settles the lost order", limit=limit)
    return outcomes


@pytest.mark.parametrize("fault, text", [
    ("5xx", "HTTP 503 Service Unavailable: '<html><body>503 Service Temporarily Unavailable</body></html>'"),
    ("malformed", "HTTP 200 with a body that is not JSON: '{\"code\":0,\"msg\":\"\",\"data\":{\"order\":{\"symbol\":\"BTC-'"),
])
def test_a_5xx_or_malformed_answer_to_an_order_not_found_waits_for_recv_window_then_is_rejected(
        sim, make_kernel, fault, text):
    # Not found when asked is not "never placed": a request queued behind the gateway that
    # answered can still be carried out until it is recvWindow old. Reported as refused at
    # once, it could open a position after the slot was freed (and entered again).
    k = make_kernel(sim, recv_window=200)
    sim.inject("place_order", fault)
    out = enter(k, size="0.010", order_type="LIMIT", limit_price="59000")
    assert (out.state, out.emitted_events) == ("ORDER_REQUESTED", ())
    assert k.slot(0).active_entry_order.client_order_id == "dita-e1"
    assert len(_places(sim)) == 1   # not sent again: the first may still arrive
    assert requests_to(sim, "query_order")[0]["params"]["clientOrderId"] == "dita-e1"
    outcomes = _settled(k)
    assert [o.transitions for o in outcomes] == [(("ORDER_REQUESTED", "REJECT", "IDLE"),)]
    assert k.slot(0).record["last_order_end"] == (
        f"BingX POST /openApi/swap/v2/trade/order (order dita-e1): {text}; BingX had no order dita-e1 when asked; "
        "the order never reached BingX: no order dita-e1 200 ms after it was sent")
    event = k.venue.query(k.order("dita-e1"))[-1]
    assert (event.kind, event.event_id) == ("REJECT", "bingx:dita-e1:lost")
    assert sim.orders() == [] and len(_places(sim)) == 1
    s = k.slot(0)
    assert (s.size, s.active_entry_order, k.account.capital) == (0, None, D("1000"))


def test_a_place_lost_on_every_attempt_waits_for_recv_window_then_is_rejected(sim, make_kernel):
    k = make_kernel(sim, recv_window=200, submit_attempts=2)
    sim.inject("place_order", "drop_before_accept", count=2)
    out = enter(k, size="0.010", order_type="LIMIT", limit_price="59000")
    assert (out.state, out.emitted_events) == ("ORDER_REQUESTED", ())
    # Each attempt only after asking for the client order id; then no third attempt.
    order = [(r["endpoint"], r["answer"]) for r in sim.requests if r["endpoint"] in ("place_order", "query_order")]
    assert order == [("place_order", None), ("query_order", 80016), ("place_order", None), ("query_order", 80016)]
    assert [o.transitions for o in _settled(k)] == [(("ORDER_REQUESTED", "REJECT", "IDLE"),)]
    assert k.slot(0).record["last_order_end"] == (
        "BingX POST /openApi/swap/v2/trade/order (order dita-e1): connection failed: RemoteProtocolError: Server "
        "disconnected without sending a response.; BingX had no order dita-e1 when asked; the order never reached "
        "BingX: no order dita-e1 200 ms after it was sent")
    assert sim.orders() == [] and len(_places(sim)) == 2


def test_an_order_that_arrives_after_bingx_said_it_had_none_is_followed_by_the_waiting_slot(sim, make_kernel):
    k = make_kernel(sim, slots=2, capital="2000", timeout=0.3, submit_attempts=1)
    sim.inject("place_order", "delay", seconds=0.8)
    out = enter(k, size="0.010")   # MARKET
    # No answer, and BingX had no such order when asked: the slot waits for it.
    assert (out.state, out.emitted_events) == ("ORDER_REQUESTED", ())
    # Meanwhile neither this slot nor another (opposite side, same symbol) can trade on.
    again = enter(k, "e2", trade="t2", size="0.010")
    assert (again.accepted, again.diagnostic_code) == (False, "SLOT_BUSY")
    other = enter(k, "s1", slot=1, trade="ts", side="SHORT", size="0.010")
    assert (other.accepted, other.diagnostic_code) == (False, "POSITION_CONFLICT")
    wait_for(lambda: sim.order("dita-e1") is not None, "the late request was carried out")
    outs = k.poll()
    assert [(o.accepted, o.transitions) for o in outs] == [
        (True, (("ORDER_REQUESTED", "ORDER_ACK", "ENTRY_WORKING"),)),
        (True, (("ENTRY_WORKING", "FULL_FILL", "POSITION_OPEN"),))]
    assert k.slot(0).size == D("0.010") == sim.position("BTC-USDT")
    assert k.slot(1).fsm_state == "IDLE"
    assert len(sim.orders()) == 1 and len(_places(sim)) == 1


def test_when_nobody_can_tell_the_slot_waits_and_poll_settles_it(sim, make_kernel):
    k = make_kernel(sim)
    sim.inject("place_order", "drop_after_accept")
    sim.inject("query_order", "5xx", count=3)
    out = enter(k, size="0.010", order_type="LIMIT", limit_price="59000")
    assert out.state == "ORDER_REQUESTED" and out.emitted_events == ()
    outs = k.poll()
    assert [o.transitions for o in outs] == [(("ORDER_REQUESTED", "ORDER_ACK", "ENTRY_WORKING"),)]
    assert len(sim.orders()) == 1


def test_an_order_that_never_arrived_is_rejected_once_recv_window_has_passed(sim, make_kernel):
    k = make_kernel(sim, recv_window=100)
    sim.inject("place_order", "drop_before_accept")
    sim.inject("query_order", "5xx", count=3)
    assert enter(k, size="0.010", order_type="LIMIT", limit_price="59000").state == "ORDER_REQUESTED"
    outcomes = []

    def settled():
        outcomes.extend(k.poll())
        return outcomes

    wait_for(settled, "poll settles the lost order", limit=10)
    assert [o.transitions for o in outcomes] == [(("ORDER_REQUESTED", "REJECT", "IDLE"),)]
    assert k.slot(0).record["last_order_end"] == "the order never reached BingX: no order dita-e1 100 ms after it was sent"
    assert sim.orders() == []


# ---------------------------------------------------------------- throttling


def test_a_burst_of_429_is_retried_and_gives_one_order(sim, make_kernel):
    k = make_kernel(sim)
    sim.inject("place_order", "429", count=3)
    out = enter(k, size="0.010", order_type="LIMIT", limit_price="59000")
    assert out.state == "ENTRY_WORKING"
    assert [p["answer"] for p in _places(sim)] == [429, 429, 429, 0]
    assert k.venue.retries == 3 and len(sim.orders()) == 1


def test_throttling_that_outlasts_the_retries_is_a_reject_and_nothing_is_placed(sim, make_kernel):
    k = make_kernel(sim, max_retries=2)
    sim.inject("place_order", "429", count=3)
    out = enter(k, size="0.010", order_type="LIMIT", limit_price="59000")
    assert out.state == "IDLE"
    assert k.slot(0).record["last_order_end"] == ("BingX POST /openApi/swap/v2/trade/order (order dita-e1): "
                                                  "still throttled (HTTP 429) after 2 retries")
    assert sim.orders() == [] and len(_places(sim)) == 3


def test_http_418_is_not_retried_a_place_is_rejected_at_once(sim, make_kernel):
    # 418: banned for sending on after 429s; every retry would prolong the ban.
    k = make_kernel(sim)
    sim.inject("place_order", "http_error", status=418)
    out = enter(k, size="0.010", order_type="LIMIT", limit_price="59000")
    assert out.transitions == (("IDLE", "ENTER", "ORDER_REQUESTED"), ("ORDER_REQUESTED", "REJECT", "IDLE"))
    assert k.slot(0).record["last_order_end"] == (
        "BingX POST /openApi/swap/v2/trade/order (order dita-e1): HTTP 418: this IP is banned for sending after "
        "rate-limit answers (about 5 minutes); not retried")
    assert [p["answer"] for p in _places(sim)] == [418]
    assert k.venue.retries == 0 and sim.orders() == [] and requests_to(sim, "query_order") == []


def test_http_418_on_a_read_is_raised_at_once(sim, venue):
    sim.inject("balance", "http_error", status=418, count=2)
    with pytest.raises(dita.VenueError) as info:
        venue.balance()
    assert str(info.value) == ("BingX GET /openApi/swap/v3/user/balance (the balance): HTTP 418: this IP is banned "
                               "for sending after rate-limit answers (about 5 minutes); not retried")
    assert [r["answer"] for r in sim.requests if r["endpoint"] == "balance"] == [418]
    assert venue.retries == 0


def test_http_418_on_a_cancel_is_a_cancel_reject_and_the_order_keeps_working(sim, make_kernel):
    k = make_kernel(sim)
    assert enter(k, size="0.010", order_type="LIMIT", limit_price="59000").state == "ENTRY_WORKING"
    sim.inject("cancel_order", "http_error", status=418)
    out = cancel(k)
    assert out.transitions[-1] == ("ENTRY_CANCEL_PENDING", "CANCEL_REJECT", "ENTRY_WORKING")
    assert k.slot(0).record["last_order_end"] == (
        "BingX DELETE /openApi/swap/v2/trade/order (the cancel of dita-e1): HTTP 418: this IP is banned for sending "
        "after rate-limit answers (about 5 minutes); not retried")
    assert [r["answer"] for r in requests_to(sim, "cancel_order", authenticated=False)] == [418]
    assert sim.order("dita-e1")["status"] == "PENDING" and k.venue.retries == 0


BUSY = [80012, 100410, 100500, 109500, 110500, 109429]   # BINGX.md §3: busy, or rate limit in the body


@pytest.mark.parametrize("code", BUSY)
def test_a_place_answered_busy_is_sent_again_only_after_asking_for_it(sim, make_kernel, code):
    k = make_kernel(sim)
    sim.inject("place_order", "error", code=code, msg="The current system is busy, please try again later")
    assert enter(k, size="0.010", order_type="LIMIT", limit_price="59000").state == "ENTRY_WORKING"
    calls = [(r["endpoint"], r["answer"]) for r in sim.requests if r["endpoint"] in ("place_order", "query_order")]
    assert calls == [("place_order", code), ("query_order", 80016), ("place_order", 0)]
    # Sent again only after BingX's one-submission-per-second window (BINGX.md §3, 109201).
    places = _places(sim)
    assert places[1]["time"] - places[0]["time"] >= 1000
    assert len(sim.orders()) == 1 and k.venue.retries == 1


@pytest.mark.parametrize("code", BUSY)
def test_a_place_answered_busy_after_bingx_carried_it_out_is_followed_not_rejected(sim, make_kernel, code):
    """Audit fault 1: BingX placed (and filled) the order but answered "system busy". The
    venue sent it again at once, the retry was refused as a duplicate id, and that refusal
    became a REJECT ("taken by another order ... nothing was placed"): the slot went IDLE
    with a position open at BingX that nothing followed."""
    k = make_kernel(sim)
    sim.inject("place_order", "busy_after_accept", code=code)
    out = enter(k, size="0.010")   # MARKET: filled at once
    assert out.state == "POSITION_OPEN"
    assert [e.kind for e in out.emitted_events] == ["ORDER_ACK", "FULL_FILL"]
    assert [p["answer"] for p in _places(sim)] == [code]   # found by asking: not sent again
    assert k.slot(0).size == D("0.010") == sim.position("BTC-USDT") and len(sim.orders()) == 1


def test_a_duplicate_id_after_a_busy_answer_is_looked_up_never_rejected(sim, make_kernel):
    # BingX carried out the place it answered "busy", but did not show it to the first
    # query: the retry is refused as a duplicate, and that refusal is settled by asking.
    k = make_kernel(sim)
    sim.inject("place_order", "busy_after_accept")
    sim.inject("query_order", "error", code=80016, msg="order not exist")
    out = enter(k, size="0.010", order_type="LIMIT", limit_price="59000")
    assert out.transitions == (("IDLE", "ENTER", "ORDER_REQUESTED"), ("ORDER_REQUESTED", "ORDER_ACK", "ENTRY_WORKING"))
    assert [p["answer"] for p in _places(sim)] == [109500, 101481]
    assert k.slot(0).entry_venue_order_id == str(sim.order("dita-e1")["orderId"]) and len(sim.orders()) == 1


def test_a_place_still_busy_after_every_retry_waits_for_recv_window_then_is_rejected(sim, make_kernel):
    # Busy is not "not placed": the slot waits until no attempt can be carried out any more.
    k = make_kernel(sim, max_retries=1, recv_window=200)
    sim.inject("place_order", "error", code=109500, msg="The current system is busy, please try again later", count=2)
    out = enter(k, size="0.010", order_type="LIMIT", limit_price="59000")
    assert (out.state, out.emitted_events) == ("ORDER_REQUESTED", ())
    assert [p["answer"] for p in _places(sim)] == [109500, 109500]
    assert [o.transitions for o in _settled(k)] == [(("ORDER_REQUESTED", "REJECT", "IDLE"),)]
    assert k.slot(0).record["last_order_end"].endswith("the order never reached BingX: no order dita-e1 200 ms after it "
                                                       "was sent")
    assert sim.orders() == []


def test_80012_wrapping_a_refusal_is_a_refusal_not_busy(sim, make_kernel):
    # BINGX.md §3: insufficient margin sometimes comes as 80012 wrapping {"Code":101253,...}.
    k = make_kernel(sim)
    sim.inject("place_order", "error", code=80012, msg='{"Code":101253,"Msg":"margin is not enough"}')
    out = enter(k, size="0.010", order_type="LIMIT", limit_price="59000")
    assert out.state == "IDLE"
    assert k.slot(0).record["last_order_end"] == 'BingX 80012: {"Code":101253,"Msg":"margin is not enough"}'
    assert len(_places(sim)) == 1 and requests_to(sim, "query_order") == []


def test_busy_codes_on_reads_are_retried_like_throttling(sim, venue):
    sim.inject("balance", "error", code=109500, msg="The current system is busy, please try again later")
    assert venue.balance()["USDT"]["balance"] == D("100000")
    assert [r["answer"] for r in requests_to(sim, "balance")] == [109500, 0] and venue.retries == 1


def test_the_venue_paces_itself_below_the_documented_rates(sim, make_kernel):
    k = make_kernel(sim, slots=12, capital="100000")
    for i in range(12):   # more than the 10 orders a second BingX allows
        enter(k, f"e{i}", slot=i, trade=f"t{i}", size="0.001", order_type="LIMIT", limit_price="59000")
    assert sim.throttled == 0 and k.venue.retries == 0
    assert len(sim.orders()) == 12
    assert {k.slot(i).fsm_state for i in range(12)} == {"ENTRY_WORKING"}


def test_real_throttling_is_absorbed_by_backing_off(sim, make_kernel):
    k = make_kernel(sim, slots=12, capital="100000", pace=False, retry_backoff=0.25)
    for i in range(12):
        enter(k, f"e{i}", slot=i, trade=f"t{i}", size="0.001", order_type="LIMIT", limit_price="59000")
    assert sim.throttled >= 2 and k.venue.retries == sim.throttled   # the exchange's own limit answered 429
    assert len(sim.orders()) == 12
    assert {k.slot(i).fsm_state for i in range(12)} == {"ENTRY_WORKING"}


# ---------------------------------------------------------------- poll failures


@pytest.mark.parametrize("fault, text", [
    ("5xx", "BingX GET /openApi/swap/v2/trade/openOrders (open orders): HTTP 503 Service Unavailable"),
    ("malformed", "BingX GET /openApi/swap/v2/trade/openOrders (open orders): HTTP 200 with a body that is not JSON"),
    ("wrong_types", "BingX open orders: orders[0] must be an object, got ["),
])
def test_poll_with_an_unusable_answer_raises_a_clear_error_and_changes_nothing(sim, make_kernel, fault, text):
    k = make_kernel(sim)
    enter(k, size="0.010", order_type="LIMIT", limit_price="59000")
    sim.fill("dita-e1", "0.004")
    before = k.snapshot()
    sim.inject("open_orders", fault)
    with pytest.raises(dita.VenueError) as info:
        k.poll()
    assert str(info.value).startswith(text)
    assert k.snapshot() == before
    # Once BingX answers properly, the fill is reported, once.
    assert [o.transitions for o in k.poll()] == [(("ENTRY_WORKING", "PARTIALLY_FILLED", "ENTRY_WORKING"),)]
    assert k.poll() == [] and k.slot(0).size == D("0.004")


def test_a_query_answer_with_wrong_types_is_a_clear_error(sim, venue):
    venue.instruments()
    order = dita.Order(client_order_id="dita-q", asset="BTC-USDT", side="BUY", position_side="LONG", order_type="LIMIT",
                       quantity=D("0.0100"), limit_price=D("59000.0"), reduce_only=False, leverage=None, role="ENTRY",
                       slot_id=0, trade_id="t")
    venue.submit(order)
    sim.inject("query_order", "wrong_types")
    with pytest.raises(dita.VenueError, match=r"BingX order dita-q: orderId must be a positive integer, got \["):
        venue.query(order)


def test_a_stale_clock_is_realigned_with_server_time(sim, make_venue):
    venue = make_venue(sim, sync_time=False)
    venue._offset_ms = -20_000   # as if the local clock ran 20 s behind
    assert venue.balance()["USDT"]["balance"] == D("100000")
    balance = requests_to(sim, "balance", authenticated=False)
    assert [r["answer"] for r in balance] == [100421]   # refused once, then signed with server time


# ---------------------------------------------------------------- cancel


def _resting(k):
    out = enter(k, size="0.010", order_type="LIMIT", limit_price="59000")
    assert out.state == "ENTRY_WORKING"


def test_cancel_refused_by_the_exchange_leaves_the_order_working(sim, make_kernel):
    k = make_kernel(sim)
    _resting(k)
    sim.inject("cancel_order", "error", code=109400, msg="cannot cancel now")
    out = cancel(k)
    assert out.transitions[-1] == ("ENTRY_CANCEL_PENDING", "CANCEL_REJECT", "ENTRY_WORKING")
    assert k.slot(0).record["last_order_end"] == "BingX 109400: cannot cancel now"
    assert sim.order("dita-e1")["status"] == "PENDING"
    assert cancel(k, "c2").state == "IDLE"


def test_a_cancel_refused_again_after_a_restart_is_news_not_a_duplicate(sim, make_kernel):
    """The refusal's event id counted per process: after a restart (a new venue resuming the
    order) the next refusal had the old one's id, the kernel dropped it as a duplicate and
    the slot waited for good in ENTRY_CANCEL_PENDING with the order working at BingX."""
    k = make_kernel(sim)
    _resting(k)
    sim.inject("cancel_order", "error", code=109400, msg="cannot cancel now")
    first = cancel(k)
    assert first.transitions[-1] == ("ENTRY_CANCEL_PENDING", "CANCEL_REJECT", "ENTRY_WORKING")
    restarted = dita.Kernel.restore(k.snapshot(), venue="bingx", venue_options=venue_options(sim))
    k.venue.close()
    try:
        sim.inject("cancel_order", "error", code=109400, msg="cannot cancel now")
        again = cancel(restarted, "c2")
        assert again.transitions[-1] == ("ENTRY_CANCEL_PENDING", "CANCEL_REJECT", "ENTRY_WORKING")
        # (The resumed order's acknowledgement, reported again, is the only duplicate.)
        assert [(e.kind, code) for e, code, _ in again.refused_events] in ([], [("ORDER_ACK", "DUPLICATE_EVENT")])
        assert first.emitted_events[-1].event_id != again.emitted_events[-1].event_id
        assert cancel(restarted, "c3").state == "IDLE"
        assert sim.order("dita-e1")["status"] == "CANCELLED"
    finally:
        restarted.venue.close()


def test_a_fill_racing_the_cancel_wins(sim, make_kernel):
    k = make_kernel(sim)
    _resting(k)
    sim.fill("dita-e1", "0.003")
    sim.inject("cancel_order", "fill_before_cancel")
    out = cancel(k)
    # The venue saw 0.010 executed where it had reported nothing: one fill of 0.010, then
    # BingX's refusal of the cancel (the contract of dita.conformance.model: the racing fill
    # first, then CANCEL_REJECT). The kernel applied the fill first, so the refusal comes
    # too late to change anything and is refused as stale.
    assert [(e.kind, e.filled_size, e.reason) for e in out.emitted_events] == [
        ("FULL_FILL", D("0.0100"), None), ("CANCEL_REJECT", None, "BingX 80018: order is already filled")]
    assert [(e.kind, code) for e, code, _ in out.refused_events] == [("CANCEL_REJECT", "STALE_EVENT")]
    assert out.state == "POSITION_OPEN" and k.slot(0).size == D("0.010")
    assert requests_to(sim, "cancel_order")[0]["answer"] == 80018   # "order is already filled"


def test_a_cancel_whose_answer_is_lost_on_an_order_that_filled_is_refused_after_the_fill(sim, make_kernel):
    k = make_kernel(sim)
    _resting(k)
    sim.fill("dita-e1", "0.010")                  # the kernel has not heard of it yet
    sim.inject("cancel_order", "5xx")
    out = cancel(k)
    assert [e.kind for e in out.emitted_events] == ["FULL_FILL", "CANCEL_REJECT"]
    assert out.emitted_events[1].reason.endswith("the order dita-e1 is no longer working at BingX (filled)")
    assert out.state == "POSITION_OPEN" and k.slot(0).size == D("0.010")


def test_a_cancel_of_an_order_that_already_ended_is_refused_without_a_request(sim, make_kernel):
    # The kernel sends such a cancel when it has not applied the end yet (reports of one
    # order can be applied late); BingX would refuse it (109414 "order not exist").
    k = make_kernel(sim)
    sim.inject("place_order", "error", code=101204, msg="Insufficient margin")
    assert enter(k, order_type="LIMIT", limit_price="59000").state == "IDLE"
    events = k.venue.cancel(k.order("dita-e1"))
    assert [(e.kind, e.reason) for e in events] == [
        ("CANCEL_REJECT", "order dita-e1 is no longer working at BingX (rejected)")]
    assert len({e.event_id for e in events + k.venue.cancel(k.order("dita-e1"))}) == 2   # each answer is new
    assert requests_to(sim, "cancel_order") == []


def test_cancel_whose_answer_is_lost_is_settled_by_query(sim, make_kernel):
    k = make_kernel(sim)
    _resting(k)
    sim.inject("cancel_order", "drop_after_accept")
    out = cancel(k)
    assert out.state == "IDLE" and out.emitted_events[-1].kind == "CANCEL_ACK"
    assert len(requests_to(sim, "cancel_order")) == 1


def test_cancel_that_never_arrived_is_sent_again(sim, make_kernel):
    k = make_kernel(sim)
    _resting(k)
    sim.inject("cancel_order", "5xx")
    assert cancel(k).state == "IDLE"
    assert [r["answer"] for r in sim.requests if r["endpoint"] == "cancel_order"] == [503, 0]


def test_cancel_when_bingx_cannot_be_reached_keeps_the_order_working(sim, make_kernel):
    k = make_kernel(sim)
    _resting(k)
    sim.inject("cancel_order", "5xx")
    sim.inject("query_order", "5xx")
    out = cancel(k)
    assert out.transitions[-1] == ("ENTRY_CANCEL_PENDING", "CANCEL_REJECT", "ENTRY_WORKING")
    assert "HTTP 503" in k.slot(0).record["last_order_end"]
    assert sim.order("dita-e1")["status"] == "PENDING"


# ---------------------------------------------------------------- client order ids already taken


TAKEN = ("BingX 101481: clientOrderID cannot be repeated: client order id dita-e1 is taken by another order on "
         "this account (another kernel, or an earlier session with the same intent ids? give each its own "
         "client_order_id_prefix); nothing was placed")


def test_a_reused_intent_id_never_adopts_an_older_order(sim, make_kernel):
    old = make_kernel(sim)
    assert enter(old, size="0.010").state == "POSITION_OPEN"   # "e1" -> dita-e1, filled
    new = make_kernel(sim)                                      # a new session reusing intent ids
    time.sleep(1.05)   # later than BingX's one-submission-per-second window: the id is simply taken
    out = enter(new, size="0.020")
    assert out.transitions == (("IDLE", "ENTER", "ORDER_REQUESTED"), ("ORDER_REQUESTED", "REJECT", "IDLE"))
    assert new.slot(0).record["last_order_end"] == TAKEN
    assert new.slot(0).size == 0 and len(sim.orders()) == 1
    assert sim.position("BTC-USDT") == D("0.010")


def test_a_second_kernel_with_the_same_intent_ids_never_takes_the_other_kernels_order(sim, make_kernel):
    # Two kernels on one account, both with the default prefix: the same intent gives the
    # same client order id. The second one's identical order, moments later, is refused by
    # BingX as a duplicate; it must not adopt the first kernel's order as its own.
    first = make_kernel(sim)
    assert enter(first, size="0.010", order_type="LIMIT", limit_price="59000").state == "ENTRY_WORKING"
    second = make_kernel(sim)
    time.sleep(1.05)   # later than BingX's one-submission-per-second window: the id is simply taken
    out = enter(second, size="0.010", order_type="LIMIT", limit_price="59000")
    assert out.transitions == (("IDLE", "ENTER", "ORDER_REQUESTED"), ("ORDER_REQUESTED", "REJECT", "IDLE"))
    assert [(e.kind, e.event_id, e.venue_order_id) for e in out.emitted_events] == [
        ("REJECT", "bingx:dita-e1:rejected", None)]
    assert second.slot(0).record["last_order_end"] == TAKEN
    assert [p["answer"] for p in _places(sim)] == [0, 101481]
    assert requests_to(sim, "query_order") == []   # refused at once: nothing to look up
    # The first kernel's fill is not the second's ...
    sim.fill("dita-e1", "0.004")
    assert second.poll() == [] and second.slot(0).size == 0
    assert [o.state for o in first.poll()] == ["ENTRY_WORKING"] and first.slot(0).size == D("0.004")
    # ... and the second kernel cannot cancel the first one's order.
    assert (cancel(second).accepted, requests_to(sim, "cancel_order")) == (False, [])
    assert sim.order("dita-e1")["status"] == "PARTIALLY_FILLED" and len(sim.orders()) == 1


def test_an_identical_but_older_order_is_not_taken_for_ours_after_a_lost_answer(sim, make_kernel):
    old = make_kernel(sim)
    enter(old, size="0.010", order_type="LIMIT", limit_price="59000")
    sim._by_coid["dita-e1"].time -= 60_000   # the earlier session placed it a minute ago
    new = make_kernel(sim)
    sim.inject("place_order", "drop_before_accept")   # the query by client order id finds the old one
    out = enter(new, size="0.010", order_type="LIMIT", limit_price="59000")
    assert out.state == "IDLE"
    assert new.slot(0).record["last_order_end"] == (
        "BingX POST /openApi/swap/v2/trade/order (order dita-e1): connection failed: RemoteProtocolError: Server "
        "disconnected without sending a response.; client order id dita-e1 belongs to another, earlier order at BingX")
    assert new.slot(0).active_entry_order is None
    assert sim.order("dita-e1")["status"] == "PENDING" and old.slot(0).fsm_state == "ENTRY_WORKING"


def test_a_retry_refused_as_a_duplicate_finds_our_own_earlier_attempt(sim, make_kernel):
    # On a second attempt the id may be taken by our first one, whose answer was lost (BingX
    # may not show an order at once): the query settles it, and the order is followed.
    k = make_kernel(sim)
    sim.inject("place_order", "drop_after_accept")
    sim.inject("query_order", "error", code=80016, msg="order not exist")
    out = enter(k, size="0.010", order_type="LIMIT", limit_price="59000")
    assert out.transitions == (("IDLE", "ENTER", "ORDER_REQUESTED"), ("ORDER_REQUESTED", "ORDER_ACK", "ENTRY_WORKING"))
    assert [(p["fault"], p["answer"]) for p in _places(sim)] == [("drop_after_accept", 0), (None, 101481)]
    assert k.slot(0).entry_venue_order_id == str(sim.order("dita-e1")["orderId"])
    assert len(sim.orders()) == 1
    sim.fill("dita-e1", "0.010")
    assert [o.state for o in k.poll()] == ["POSITION_OPEN"] and k.slot(0).size == D("0.010")


def test_a_taken_id_that_cannot_be_checked_on_a_retry_leaves_the_slot_waiting(sim, make_kernel):
    k = make_kernel(sim)
    sim.inject("place_order", "drop_before_accept")
    sim.inject("place_order", "error", code=101481, msg="clientOrderID cannot be repeated")
    sim.inject("query_order", "error", code=80016, msg="order not exist")   # before the retry
    sim.inject("query_order", "5xx", count=3)                                # after the refusal
    out = enter(k, size="0.010", order_type="LIMIT", limit_price="59000")
    assert (out.state, out.emitted_events) == ("ORDER_REQUESTED", ())   # maybe placed, maybe not: poll() settles
    assert [p["answer"] for p in _places(sim)] == [None, 101481]


def test_a_failure_before_the_order_is_sent_leaves_nothing_behind(sim, make_kernel):
    k = make_kernel(sim)
    sim.inject("leverage", "5xx")
    out = enter(k, size="0.010", leverage="3")
    assert out.state == "IDLE"
    assert "HTTP 503" in k.slot(0).record["last_order_end"]
    assert k.slot(0).record["last_order_end"].endswith("; the order was not sent")
    assert requests_to(sim, "place_order") == [] and requests_to(sim, "query_order") == []
    assert enter(k, "e2", trade="t2", size="0.010", leverage="3").state == "POSITION_OPEN"


def test_repeated_cancel_failures_each_reach_the_kernel(sim, make_kernel):
    # Raising would not do: the kernel gives every failed cancel of one order the same
    # event id, so a second failure would be refused and the slot would wait forever.
    k = make_kernel(sim)
    _resting(k)
    for n in (1, 2):
        sim.inject("cancel_order", "5xx")
        sim.inject("query_order", "5xx")
        out = cancel(k, f"c{n}")
        assert out.transitions[-1] == ("ENTRY_CANCEL_PENDING", "CANCEL_REJECT", "ENTRY_WORKING")
        assert out.refused_events == ()
    assert cancel(k, "c3").state == "IDLE"


def test_one_unreadable_order_never_holds_back_the_others(sim, make_kernel, caplog):
    k = make_kernel(sim, slots=2, capital="2000")
    enter(k, "a1", slot=0, trade="ta", size="0.010", order_type="LIMIT", limit_price="59000")
    enter(k, "b1", slot=1, trade="tb", size="0.010", order_type="LIMIT", limit_price="59000")
    sim.fill("dita-a1", "0.010")   # a1 leaves the open orders: the venue must query it
    sim.fill("dita-b1", "0.004")   # b1 is still open: its fill is in the open-order list
    sim.inject("query_order", "5xx")
    outs = k.poll()
    assert [(o.slot_id, o.state) for o in outs] == [(1, "ENTRY_WORKING")]   # b1's fill arrives regardless
    assert "HTTP 503" in caplog.text and "retried on the next poll" in caplog.text
    assert [(o.slot_id, o.state) for o in k.poll()] == [(0, "POSITION_OPEN")]   # and a1's the next time


def test_fills_reported_together_at_a_repeating_average_price_come_as_two_exact_fills(make_sim, make_kernel):
    """Three fills (59710, 59715, 59715) seen in one poll are 179.14 for 0.003, an average of
    59713.33... They once came as one fill at that repeating price (which later made the
    trade's arithmetic outgrow a decimal), then at it rounded to 12 places (which changed the
    money). Now: 0.0029 at the rounded average and one size step at the price that makes
    the value exact."""
    sim = make_sim(liquidity={"BTC-USDT": "0"})   # nothing fills but what the test fills
    k = make_kernel(sim)
    assert enter(k, size="0.003", side="SHORT", order_type="LIMIT", limit_price="59700").state == "ENTRY_WORKING"
    for price in ("59710", "59715", "59715"):
        sim.fill("dita-e1", "0.001", price)
    outs = k.poll()
    assert all(o.accepted for o in outs)
    events = [e for o in outs for e in o.emitted_events]
    assert [(e.kind, e.filled_size, e.fill_price) for e in events] == [
        ("PARTIALLY_FILLED", D("0.0029"), D("59713.333333333333")), ("FULL_FILL", D("0.0001"), D("59713.333333333343"))]
    assert sum(e.filled_size * e.fill_price for e in events) == D("179.14")
    assert k.slot(0).size == D("0.003")


# ---------------------------------------------------------------- the one-submission-per-second rule


SAME_ORDER = "The same order number is only allowed to be submitted once within 1 second."


def test_a_retry_refused_as_too_soon_waits_for_the_first_attempt_still_on_its_way(sim, make_kernel):
    """Audit fault 2: the first attempt is held at BingX past the timeout; the query finds
    nothing, and the retry is refused with 109201 (the same order number within 1 s, BINGX.md
    §3). That refusal was a REJECT, and the first attempt then filled: slot IDLE, position open."""
    k = make_kernel(sim, timeout=0.3)
    sim.inject("place_order", "delay", seconds=1.8)
    sim.inject("place_order", "error", code=109201, msg=SAME_ORDER)
    out = enter(k, size="0.010")   # MARKET
    assert (out.state, out.emitted_events) == ("ORDER_REQUESTED", ())
    wait_for(lambda: sim.order("dita-e1") is not None, "the first attempt was carried out")
    outs = k.poll()
    assert [o.transitions for o in outs] == [(("ORDER_REQUESTED", "ORDER_ACK", "ENTRY_WORKING"),),
                                            (("ENTRY_WORKING", "FULL_FILL", "POSITION_OPEN"),)]
    assert k.slot(0).size == D("0.010") == sim.position("BTC-USDT") and len(sim.orders()) == 1


def test_a_retry_refused_as_too_soon_whose_first_attempt_never_arrives_is_rejected_after_recv_window(
        sim, make_kernel):
    k = make_kernel(sim, recv_window=200)
    sim.inject("place_order", "drop_before_accept")
    sim.inject("place_order", "error", code=109201, msg=SAME_ORDER)
    out = enter(k, size="0.010", order_type="LIMIT", limit_price="59000")
    assert (out.state, out.emitted_events) == ("ORDER_REQUESTED", ())
    assert [o.transitions for o in _settled(k)] == [(("ORDER_REQUESTED", "REJECT", "IDLE"),)]
    assert k.slot(0).record["last_order_end"] == (
        f"BingX 109201: {SAME_ORDER} (a retry, after an attempt that may have been carried out); BingX had no order "
        "dita-e1 when asked; the order never reached BingX: no order dita-e1 200 ms after it was sent")
    assert sim.orders() == []


def test_a_retry_is_sent_only_after_bingxs_one_second_window(sim, make_kernel):
    # The simulator refuses a second place with the same id within 1 s (109201): the venue's
    # retry after a lost request waits that out, and is carried out.
    k = make_kernel(sim)
    sim.inject("place_order", "drop_before_accept")
    assert enter(k, size="0.010", order_type="LIMIT", limit_price="59000").state == "ENTRY_WORKING"
    assert [p["answer"] for p in _places(sim)] == [None, 0]


# ---------------------------------------------------------------- a precision changed since the contracts were loaded


def test_an_order_bingx_truncated_after_a_precision_change_is_ours_after_a_lost_answer(sim, make_kernel):
    """Audit fault 3: BTC's quantity precision went from 4 to 3 after the venue loaded the
    contracts. BingX takes 0.0105 as 0.010 (BINGX.md §2.1: truncated, still placed); the answer
    was lost, and the query's origQty 0.010 did not equal 0.0105, so the venue took its own
    filled order for another one's and rejected it: slot IDLE, position open at BingX."""
    k = make_kernel(sim, capital="10000")
    k.venue.instruments()
    sim.set_contracts(contracts(BTC_USDT={"quantityPrecision": 3, "tradeMinQuantity": 0.001}))
    sim.inject("place_order", "drop_after_accept")
    out = enter(k, size="0.0105")   # MARKET
    assert [(e.kind, e.filled_size) for e in out.emitted_events] == [
        ("ORDER_ACK", None), ("PARTIALLY_FILLED", D("0.010")), ("EXPIRED", None)]
    assert out.state == "POSITION_OPEN" and k.slot(0).size == D("0.010") == sim.position("BTC-USDT")
    assert len(sim.orders()) == 1 and len(_places(sim)) == 1
    # BingX showed a truncated order: the contracts are loaded again before the next one.
    assert k.venue.contract("BTC-USDT").size_increment == D("0.001")


@pytest.mark.parametrize("sent, shown, ours", [
    ("0.0105", "0.0105", True), ("0.0105", "0.010", True), ("0.0105", "0.01", True), ("0.0105", "0", False),
    ("0.0105", "0.011", False), ("0.0105", "0.0106", False), ("0.0105", "0.0104", False), ("25", "25", True),
    ("25.7", "25", True), ("25.7", "20", False), ("59000.17", "59000.1", True), ("59000.17", "59000.2", False),
])
def test_a_truncation_of_what_was_sent_is_ours_and_nothing_else(sent, shown, ours):
    from dita_bingx.venue import _truncation_of

    assert _truncation_of(D(sent), D(shown)) is ours


def test_a_truncated_limit_order_is_ours_but_another_price_is_not(sim, make_kernel):
    k = make_kernel(sim)
    k.venue.instruments()
    sim.set_contracts(contracts(BTC_USDT={"pricePrecision": 0}))
    sim.inject("place_order", "drop_after_accept")
    out = enter(k, size="0.010", order_type="LIMIT", limit_price="59000.5")   # shown as 59000
    assert out.state == "ENTRY_WORKING" and sim.order("dita-e1")["price"] == "59000"
    other = make_kernel(sim)   # an older order under the same id, at another price
    sim._by_coid["dita-e1"].price = D("58000")
    sim.inject("place_order", "drop_before_accept")
    out = enter(other, size="0.010", order_type="LIMIT", limit_price="59000")
    assert out.state == "IDLE" and "belongs to another, earlier order" in other.slot(0).record["last_order_end"]
