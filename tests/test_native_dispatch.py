"""The venue-event fast path: without a journal, ``Kernel.on_venue_event`` is the engine's
native dispatcher. It must give exactly what the general (Python) path gives — the same
outcomes, slots, account, journal-free order progress — for good and bad events alike."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

import dita
from conftest import D, enter, exit_, make_kernel
from dita_mock import MockVenue


def quiet_kernel(general: bool):
    k = dita.Kernel(venue=MockVenue(prices={"BTC-USDT": "60000"}, silent=True), slots=2, capital=D("1000"))
    if general:
        del k.on_venue_event  # the class's method: the general path
    return k


def outcome_fields(o):
    return (o.accepted, o.diagnostic_code, o.state, o.slot_id, tuple(o.transitions), tuple(o.emitted_events),
            tuple((e, c) for e, c, _m in o.refused_events), o.message)


def script(k):
    """Intents and venue events of every kind, good and bad; yields what each call gave."""
    V = dita.VenueEvent
    yield enter(k, 0, "e1", "t1", size="0.010", order_type="LIMIT", limit_price="59000")
    e1 = k.slot(0).active_entry_order.client_order_id
    yield enter(k, 1, "e2", "t2", size="0.004", order_type="LIMIT", limit_price="59000")
    e2 = k.slot(1).active_entry_order.client_order_id
    events = [
        V("ORDER_ACK", "a1", e1, "V1"),
        V("ORDER_ACK", "a1", e1, "V1"),                                         # duplicate
        V("PARTIALLY_FILLED", "f1", e1, "V1", D("0.004"), D("59000.5"), D("0.01")),
        V("PARTIALLY_FILLED", "f1", e1, "V1", D("0.004"), D("59000.5"), D("0.01")),  # duplicate
        V("PARTIALLY_FILLED", "f2", e1, "V1", D("0.1"), D("59000"), D("0.01")),       # overfill
        V("PARTIALLY_FILLED", "f3", e1, "V1", D("0"), D("59000"), D("0.01")),         # bad size
        V("PARTIALLY_FILLED", "f4", "nobody", "V9", D("0.001"), D("59000"), None),    # unknown order
        V("PARTIALLY_FILLED", "f5", e1, "V1", D("0.002"), D("58999.5"), None),        # no fee
        V("CANCEL_REJECT", "r1", e1, "V1", reason="too late"),                        # stale
        V("FULL_FILL", "f6", e1, "V1", D("0.004"), D("59001"), D("0.02")),
        V("FULL_FILL", "g1", e2, "V2", D("0.004"), D("59000"), D("0.01")),
    ]
    for ev in events:
        yield k.on_venue_event(ev)
    yield exit_(k, 0, "x1", order_type="LIMIT", limit_price="61000")
    x1 = k.slot(0).active_exit_order.client_order_id
    for ev in [
        V("ORDER_ACK", "xa", x1, "VX"),
        V("PARTIALLY_FILLED", "xf1", x1, "VX", D("0.003"), D("61000"), D("0.01")),
        V("PARTIALLY_FILLED", "late", e1, "V1", D("0.001"), D("59000"), D("0")),      # late entry fill: overfill
        V("FULL_FILL", "xf2", x1, "VX", D("0.007"), D("61000.5"), D("0.02")),         # closes: effects
        V("FULL_FILL", "xf2", x1, "VX", D("0.007"), D("61000.5"), D("0.02")),         # ended trade: duplicate
    ]:
        yield k.on_venue_event(ev)
    yield enter(k, 0, "e3", "t3", size="0.002", order_type="LIMIT", limit_price="59000")
    for ev in [
        V("FULL_FILL", "xf2", x1, "VX", D("0.007"), D("61000.5"), D("0.02")),         # ended order, re-delivered
        V("PARTIALLY_FILLED", "new", x1, "VX", D("0.001"), D("61000"), D("0")),       # ended order, filled: overfill
    ]:
        yield k.on_venue_event(ev)


def test_the_native_dispatcher_gives_what_the_general_path_gives():
    fast, general = quiet_kernel(False), quiet_kernel(True)
    assert "on_venue_event" in vars(fast) and "on_venue_event" not in vars(general)
    got_fast = [outcome_fields(o) for o in script(fast)]
    got_general = [outcome_fields(o) for o in script(general)]
    assert got_fast == got_general
    codes = [o[1] for o in got_fast]
    for code in ("DUPLICATE_EVENT", "OVERFILL", "INVALID_EVENT", "UNKNOWN_ORDER", "STALE_EVENT"):
        assert code in codes
    assert got_fast[-1][1] == "OVERFILL"
    assert fast.slot(0).fsm_state == "ORDER_REQUESTED" and fast.slot(1).fsm_state == "POSITION_OPEN"
    snap_fast, snap_general = fast.snapshot(), general.snapshot()
    assert snap_fast == snap_general
    e1 = snap_fast["slots"][1]["record"]["entry_client_order_id"]
    assert fast.order_progress(e1) == general.order_progress(e1) == dita.OrderProgress(
        D("0.004"), D("236.000"), D("0.01"))


def test_the_native_dispatcher_refuses_bad_input_with_the_same_clear_error():
    k = quiet_kernel(False)
    enter(k, 0, "e1", "t1", order_type="LIMIT", limit_price="59000")
    coid = k.slot(0).active_entry_order.client_order_id
    before = k.snapshot()
    with pytest.raises(dita.InvalidInputError, match="on_venue_event takes a dita.VenueEvent, got dict"):
        k.on_venue_event({"kind": "ORDER_ACK"})
    with pytest.raises(dita.InvalidInputError, match="filled_size"):
        k.on_venue_event(dita.VenueEvent("PARTIALLY_FILLED", "f1", coid, "V1", "lots", D("1"), None))
    with pytest.raises(dita.InvalidInputError, match="'FILLED' is not a venue event"):
        k.on_venue_event(dita.VenueEvent("FILLED", "f1", coid, "V1"))
    assert k.snapshot() == before


@pytest.mark.parametrize("text", [
    "0.002", "1", "0.1", "1.000", "1E-3", "12345678901234567890.5", "0.0000000000000000000000000001",
    "79228162514264337593543950335", "2E+2", "1.0E+1", "0E-5", "-0", "-12.5", "9999999999999999999.9",
])
def test_decimals_are_read_exactly_whatever_their_form(text):
    """The engine reads a Decimal straight from its object when it can; every form must
    give exactly the number its text names."""
    value = Decimal(text)
    rt = dita._engine.Runtime(make_kernel().machine, 1, {"starting_capital": value, "capital": value})
    assert rt.shared()["capital"] == value
    assert Decimal(rt.shared_snapshot()["capital"]) == value


@pytest.mark.parametrize("text", ["NaN", "sNaN", "Infinity", "-Infinity"])
def test_a_decimal_that_is_not_a_number_is_refused_by_name(text):
    k = quiet_kernel(False)
    enter(k, 0, "e1", "t1", order_type="LIMIT", limit_price="59000")
    coid = k.slot(0).active_entry_order.client_order_id
    before = k.snapshot()
    with pytest.raises(dita.InvalidInputError, match=f"fill_price' must be a finite decimal number, got \"{text}\""):
        k.on_venue_event(dita.VenueEvent("PARTIALLY_FILLED", "f1", coid, "V1", D("0.001"), Decimal(text), None))
    assert k.snapshot() == before


@pytest.mark.parametrize("general", [False, True])
@pytest.mark.parametrize("field, text", [
    ("filled_size", "0.0010000000000000000000000000001"),   # 31 places: would round to 0.001
    ("fill_price", "4.9E-28"),                               # 29 places
    ("fee", "79228162514264337593543950336"),                # beyond 96 bits
])
def test_a_decimal_with_more_digits_than_the_engine_holds_is_refused_not_rounded(general, field, text):
    k = quiet_kernel(general)
    enter(k, 0, "e1", "t1", order_type="LIMIT", limit_price="59000")
    coid = k.slot(0).active_entry_order.client_order_id
    before = k.snapshot()
    fields = dict(filled_size=D("0.001"), fill_price=D("59000"), fee=D("0.01"))
    fields[field] = Decimal(text)
    with pytest.raises(dita.InvalidInputError, match=f"{field}': \"{re.escape(text)}\" cannot be held exactly"):
        k.on_venue_event(dita.VenueEvent("PARTIALLY_FILLED", "f1", coid, "V1", **fields))
    assert k.snapshot() == before


@pytest.mark.parametrize("general", [False, True])
def test_a_fill_whose_settlement_would_be_rounded_is_not_applied_and_freezes_the_slot(general):
    """capital - 1.5E-27 needs 31 digits: rounding it would leave capital != start + realized.
    Nothing of the fill is applied; as it is real money, the slot is frozen for reconcile."""
    k = quiet_kernel(general)
    enter(k, 0, "e1", "t1", order_type="LIMIT", limit_price="59000")
    coid = k.slot(0).active_entry_order.client_order_id
    before = k.snapshot()
    out = k.on_venue_event(dita.VenueEvent("PARTIALLY_FILLED", "f1", coid, "V1", D("0.001"), D("59000"), D("1.5E-27")))
    assert (out.accepted, out.diagnostic_code, out.state) == (False, "EVALUATION_ERROR", "FROZEN")
    assert "cannot be held exactly" in out.message and "the slot is frozen for reconcile" in out.message
    after = k.snapshot()
    assert after["account"] == before["account"] and after["slots"][1] == before["slots"][1]
    unfrozen = dict(after["slots"][0]["record"], frozen_reason=None)
    assert unfrozen == before["slots"][0]["record"] and after["slots"][0]["record"]["frozen_reason"]
    assert k.account.capital == D("1000") + k.account.realized_pnl


@pytest.mark.parametrize("general", [False, True])
@pytest.mark.parametrize("kind", [None, 5, b"FULL_FILL"])
def test_an_event_kind_that_is_not_a_string_is_refused_by_name(general, kind):
    k = quiet_kernel(general)
    enter(k, 0, "e1", "t1", order_type="LIMIT", limit_price="59000")
    coid = k.slot(0).active_entry_order.client_order_id
    before = k.snapshot()
    with pytest.raises(dita.InvalidInputError, match=f"venue event 'f1' for order '{coid}': kind must be the name of a venue event"):
        k.on_venue_event(dita.VenueEvent(kind, "f1", coid, "V1", D("0.001"), D("59000"), D("0.01")))
    assert k.snapshot() == before


def test_a_journaled_kernel_takes_the_general_path(tmp_path):
    k = dita.Kernel(venue=MockVenue(prices={"BTC-USDT": "60000"}, silent=True), slots=1, capital=D("1000"),
                    journal=tmp_path / "j.sqlite")
    assert "on_venue_event" not in vars(k)
    enter(k, 0, "e1", "t1", order_type="LIMIT", limit_price="59000")
    coid = k.slot(0).active_entry_order.client_order_id
    out = k.on_venue_event(dita.VenueEvent("PARTIALLY_FILLED", "f1", coid, "V1", D("0.004"), D("59000"), D("0.01")))
    assert out.accepted and out.state == "ENTRY_WORKING"
    kinds = [r.kind for r in k.journal.records()]
    assert kinds[-3:] == ["apply", "transition", "settlement"]
    k.close()


# --- random sequences: both paths, step by step -------------------------------------------

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

# Fills dominate, as at a real venue; the odd kinds, sizes and strangers test the refusals.
KINDS = ["PARTIALLY_FILLED"] * 4 + ["FULL_FILL"] * 2 + ["ORDER_ACK", "CANCEL_ACK", "CANCEL_REJECT", "REJECT", "EXPIRED"]
SIZES = [D("0.002")] * 4 + [D("0.004"), D("0.001"), D("0.01"), D("0"), D("-0.001")]
steps = st.lists(st.one_of(
    st.tuples(st.just("event"), st.sampled_from(KINDS), st.integers(0, 1),
              st.sampled_from(["entry", "exit", "exit", "stranger"]), st.integers(0, 8), st.sampled_from(SIZES),
              st.sampled_from([None, D("0.01"), D("0")])),
    st.tuples(st.just("intent"), st.sampled_from(["ENTER", "EXIT", "EXIT", "CANCEL"]), st.integers(0, 1)),
), min_size=1, max_size=60)


def apply_step(k, step, n):
    if step[0] == "intent":
        _, action, slot = step
        if action == "ENTER":
            return enter(k, slot, f"e{n}", f"t{n}", size="0.004", order_type="LIMIT", limit_price="59000")
        if action == "EXIT":
            return exit_(k, slot, f"x{n}", order_type="LIMIT", limit_price="61000")
        return k.process_intent(dita.KernelIntent("CANCEL", slot, f"c{n}"))
    _, kind, slot, role, num, size, fee = step
    view = k.slot(slot)
    order = view.active_entry_order if role == "entry" else view.active_exit_order if role == "exit" else None
    # Without a working order of that role: the slot's latest order, ended or not.
    coid = order.client_order_id if order is not None else (k._slot_orders.get(slot) or ["stranger"])[-1]
    if role == "stranger":
        coid = "stranger"
    fill = kind in ("PARTIALLY_FILLED", "FULL_FILL")
    return k.on_venue_event(dita.VenueEvent(kind, f"{coid}:{num}", coid, "V", size if fill else None,
                                            D("60000") if fill else None, fee if fill else None))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_random_sequences_give_the_same_outcomes_on_both_paths(sequence):
    fast, general = quiet_kernel(False), quiet_kernel(True)
    sequence = [("intent", "ENTER", 0), ("intent", "ENTER", 1)] + sequence
    for n, step in enumerate(sequence):
        results = []
        for k in (fast, general):
            try:
                results.append(("ok", outcome_fields(apply_step(k, step, n))))
            except dita.InvalidInputError as exc:
                results.append(("error", str(exc)))
        assert results[0] == results[1], step
    assert fast.snapshot() == general.snapshot()


def test_a_dropped_kernel_is_collected_despite_the_dispatcher_pointing_back_at_it():
    """The engine's dispatcher holds the kernel's fallback method: a reference cycle through
    a Rust object, which the garbage collector must be able to see and break."""
    import gc
    import weakref

    k = quiet_kernel(False)
    enter(k, 0, "e1", "t1", order_type="LIMIT", limit_price="59000")
    ref = weakref.ref(k)
    del k
    gc.collect()
    assert ref() is None


def test_a_silent_mock_executes_and_records_requests_but_answers_none():
    k = quiet_kernel(False)
    out = enter(k, 0, "e1", "t1", size="0.004", order_type="MARKET")
    assert out.accepted and out.state == "ORDER_REQUESTED" and out.emitted_events == ()
    coid = k.slot(0).active_entry_order.client_order_id
    assert [r["action"] for r in k.venue.received] == ["submit"]
    assert k.venue.orders[coid].filled == D("0.004")  # the mock executed it; the test reports it
    out = k.on_venue_event(dita.VenueEvent("FULL_FILL", "f1", coid, "M1", D("0.004"), D("60000"), D("0")))
    assert out.state == "POSITION_OPEN" and k.slot(0).size == D("0.004")


def test_an_event_with_empty_slots_is_read_as_the_general_path_reads_it():
    """The dispatcher reads a VenueEvent's slots in place; an attribute never set counts as
    missing (None), exactly as on the general path."""
    got = []
    for general in (False, True):
        k = quiet_kernel(general)
        enter(k, 0, "e1", "t1", order_type="LIMIT", limit_price="59000")
        ev = dita.VenueEvent.__new__(dita.VenueEvent)  # only three of its slots set
        ev.kind, ev.event_id, ev.client_order_id = "ORDER_ACK", "a1", k.slot(0).active_entry_order.client_order_id
        got.append((outcome_fields(k.on_venue_event(ev)), k.snapshot()))
    assert got[0] == got[1]
    assert got[0][0][:3] == (True, "OK", "ENTRY_WORKING")


def test_a_change_to_the_event_class_sends_the_dispatcher_back_to_getattr(monkeypatch):
    """Slot offsets are only trusted while the class is unchanged: replace the descriptor
    of `filled_size` and the dispatcher must read what getattr now gives."""
    k = quiet_kernel(False)
    enter(k, 0, "e1", "t1", size="0.010", order_type="LIMIT", limit_price="59000")
    coid = k.slot(0).active_entry_order.client_order_id
    first = dita.VenueEvent("PARTIALLY_FILLED", "f1", coid, "V1", D("0.004"), D("59000"), D("0.01"))
    second = dita.VenueEvent("PARTIALLY_FILLED", "f2", coid, "V1", D("0.004"), D("59000"), D("0.01"))
    assert k.on_venue_event(first).accepted
    assert k.slot(0).size == D("0.004")
    monkeypatch.setattr(dita.VenueEvent, "filled_size", property(lambda self: D("0.001")))
    assert k.on_venue_event(second).accepted
    assert k.slot(0).size == D("0.005"), "the stale slot would have given 0.008"


def test_a_restored_kernel_keeps_writing_terminal_records_to_its_trades():
    """The dispatcher appends terminal records to the kernel's own list: after a restore
    the restored records (their decimals Decimals again, not the snapshot's text) and the
    new ones are in that one list, in order."""
    def round_trip(k, n):
        V = dita.VenueEvent
        enter(k, 0, f"e{n}", f"t{n}", size="0.002", order_type="LIMIT", limit_price="59000")
        coid = k.slot(0).active_entry_order.client_order_id
        k.on_venue_event(V("FULL_FILL", f"f{n}", coid, "V1", D("0.002"), D("59000"), D("0.01")))
        exit_(k, 0, f"x{n}", order_type="LIMIT", limit_price="61000")
        x = k.slot(0).active_exit_order.client_order_id
        return k.on_venue_event(V("FULL_FILL", f"xf{n}", x, "VX", D("0.002"), D("61000"), D("0.01")))

    k = quiet_kernel(False)
    out = round_trip(k, 1)
    assert out.transitions[-1] == ("CLOSED", "TERMINAL_WRITTEN", "TRADE_TERMINAL_WRITTEN")
    restored = dita.Kernel.restore(k.snapshot(), venue=MockVenue(prices={"BTC-USDT": "60000"}, silent=True))
    round_trip(restored, 2)
    assert [(t["trade_id"], t["slot_id"], t["realized_pnl"]) for t in restored.trades] == [
        ("t1", 0, D("3.98")), ("t2", 0, D("3.98"))]
    with pytest.raises(AttributeError):
        restored.trades = []


@pytest.mark.parametrize("path", ["native", "general", "journaled"])
@pytest.mark.parametrize("kind", ["CANCEL", "EXIT", "ENTER", "TERMINAL_WRITTEN", "FILL"])
def test_an_event_named_like_an_intent_or_the_kernels_own_answer_is_not_a_venue_event(path, kind, tmp_path):
    """A venue cannot make the kernel cancel, exit, enter or end a trade by naming the event
    so: on every path it is refused as no venue event, naming the ones there are."""
    if path == "journaled":
        k = dita.Kernel(venue=MockVenue(prices={"BTC-USDT": "60000"}, silent=True), capital=D("1000"),
                        journal=tmp_path / "run.sqlite")
    else:
        k = quiet_kernel(path == "general")
    enter(k, 0, "e1", "t1", order_type="LIMIT", limit_price="59000")
    coid = k.slot(0).active_entry_order.client_order_id
    before, sent = k.snapshot(), len(k.venue.received)
    with pytest.raises(dita.InvalidInputError, match=re.escape(
            f"{kind!r} is not a venue event (venue events: ORDER_ACK, PARTIALLY_FILLED, FULL_FILL, CANCEL_ACK, "
            "CANCEL_REJECT, REJECT, EXPIRED)")):
        k.on_venue_event(dita.VenueEvent(kind, "v1", coid, "V1"))
    assert k.snapshot() == before and len(k.venue.received) == sent
