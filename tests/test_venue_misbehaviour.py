"""A venue plugin that answers badly: what the kernel does with each answer it cannot take.
The call's own outcome is never lost to an exception, the slot stays where it can still act
(cancel, wait for a proper answer), and events a poll handed over are never dropped because
one of them was bad."""

from __future__ import annotations

import json
from decimal import Decimal as D

import pytest

import dita
from conftest import enter
from dita_mock import MockVenue


class Answers(MockVenue):
    """The mock, with its submit answer rewritten by ``rewrite`` (the order is placed)."""

    rewrite = staticmethod(lambda events: events)

    def submit(self, order):
        return type(self).rewrite(super().submit(order))


def kernel(venue_class, journal=None):
    return dita.Kernel(venue=venue_class(prices={"BTC-USDT": "60000"}), capital=D("1000"), journal=journal)


@pytest.mark.parametrize("answer, shown", [
    (lambda events: [e.to_dict() for e in events], "dict"),
    (lambda events: "ok", "str"),
    (lambda events: events[:1] + [42], "int"),
])
@pytest.mark.parametrize("journaled", [False, True])
def test_an_answer_that_is_not_a_venue_event_is_refused_in_the_outcome(answer, shown, journaled, tmp_path):
    venue_class = type("Bad", (Answers,), {"rewrite": staticmethod(answer)})
    k = kernel(venue_class, tmp_path / "run.sqlite" if journaled else None)
    out = enter(k, size="0.010")
    assert out.accepted, out.message
    bad = [(code, msg) for e, code, msg in out.refused_events]
    assert bad and all(code == "INVALID_EVENT" for code, _ in bad)
    assert f"the venue answered with {shown} " in bad[-1][1] and bad[-1][1].endswith("not a dita.VenueEvent")
    # What the venue produced holds its venue events only: the rest is refused, saying what it was.
    assert all(type(e) is dita.VenueEvent for e in out.emitted_events)
    # The order was sent; the slot waits for a proper answer and can still cancel it.
    assert k.venue.received[0]["action"] == "submit"
    assert out.state in ("ORDER_REQUESTED", "ENTRY_WORKING")
    cancel = k.process_intent(dita.KernelIntent("CANCEL", 0, "c1"))
    assert cancel.accepted and k.venue.received[-1]["action"] == "cancel"
    if journaled:
        k.close()
        again = dita.Kernel.recover(tmp_path / "run.sqlite", venue=venue_class(prices={"BTC-USDT": "60000"}),
                                    sync=False)
        assert again.snapshot() == k.snapshot()


class BatchPoll(MockVenue):
    """A poll that hands over a batch with bad items between good fills."""

    batch: list = []

    def poll(self):
        batch, self.batch = self.batch, []
        return batch


def test_a_bad_event_in_a_polled_batch_does_not_drop_the_fills_after_it():
    k = dita.Kernel(venue=BatchPoll(prices={"BTC-USDT": "60000"}, silent=True), capital=D("1000"))
    enter(k, size="0.010", order_type="LIMIT", limit_price="59000")
    coid = k.slot(0).entry_client_order_id

    def fill(eid, size):
        return dita.VenueEvent("PARTIALLY_FILLED", eid, coid, "M1", D(size), D("59000"))

    k.venue.batch = [fill("f1", "0.002"), {"kind": "PARTIALLY_FILLED"},
                     dita.VenueEvent("PARTIALLY_FILLED", "f2", coid, "M1", "lots", D("59000")), fill("f3", "0.003")]
    outs = k.poll()
    assert [(o.accepted, o.diagnostic_code) for o in outs] == [
        (True, "OK"), (False, "INVALID_EVENT"), (False, "INVALID_EVENT"), (True, "OK")]
    assert outs[1].message == "on_venue_event takes a dita.VenueEvent, got dict"
    assert "field 'filled_size' must be a decimal number" in outs[2].message
    assert k.slot(0).size == D("0.005") and k.order_progress(coid).filled_size == D("0.005")


# ---------------------------------------------------------------- a submit that raises


class PlacesThenLosesTheAnswer(MockVenue):
    """The order is placed, then the answer is lost on the way back: submit raises."""

    def submit(self, order):
        super().submit(order)
        raise TimeoutError("no answer within 10 s")


class RefusesToConnect(MockVenue):
    """Nothing reaches the venue: submit raises before anything is placed."""

    def submit(self, order):
        raise ConnectionError("connection refused")


class CannotBeAskedEither(PlacesThenLosesTheAnswer):
    """The answer is lost and, for a while, the venue cannot be asked about the order."""

    down = True

    def query(self, order):
        if self.down:
            raise ConnectionError("venue unreachable")
        return super().query(order)


@pytest.mark.parametrize("journaled", [False, True])
def test_a_submit_that_raises_after_placing_the_order_is_settled_by_asking_the_venue(journaled, tmp_path):
    """Taking the exception for a refusal would free the slot while the order stands: the
    strategy would enter again beside it and the venue would hold twice the position."""
    k = kernel(PlacesThenLosesTheAnswer, tmp_path / "run.sqlite" if journaled else None)
    out = enter(k, size="0.010")
    assert (out.accepted, out.state) == (True, "POSITION_OPEN")
    assert [t[1] for t in out.transitions] == ["ENTER", "ORDER_ACK", "FULL_FILL"]
    assert k.slot(0).size == D("0.010") == k.venue.positions[("BTC-USDT", "LONG")]
    again = enter(k, intent="e2", trade="t2", size="0.010")
    assert (again.accepted, again.diagnostic_code) == (False, "SLOT_BUSY")
    assert [r["action"] for r in k.venue.received] == ["submit"]
    if journaled:
        k.close()
        rebuilt = dita.Kernel.recover(tmp_path / "run.sqlite", venue=k.venue, sync=False)
        assert rebuilt.snapshot() == k.snapshot()


def test_a_submit_that_raises_before_placing_anything_is_a_reject_that_says_so():
    k = kernel(RefusesToConnect)
    out = enter(k, size="0.010")
    assert (out.accepted, out.state) == (True, "IDLE")
    assert out.transitions[-1] == ("ORDER_REQUESTED", "REJECT", "IDLE")
    assert k.slot(0).record["last_order_end"] == (
        "submit failed: ConnectionError: connection refused; the venue has no order e1 "
        "(asked by client order id), so nothing was placed")
    assert k.venue.positions == {} and k.account.capital == D("1000")


def test_when_the_venue_cannot_be_asked_the_slot_waits_for_the_order_and_poll_settles_it():
    k = kernel(CannotBeAskedEither)
    out = enter(k, size="0.010")
    assert (out.accepted, out.state, out.emitted_events) == (True, "ORDER_REQUESTED", ())
    # The slot is not free while the order may stand, and the order can still be pulled.
    busy = enter(k, intent="e2", trade="t2", size="0.010")
    assert (busy.accepted, busy.diagnostic_code) == (False, "SLOT_BUSY")
    assert k.poll() == []                     # still cannot be asked: still waiting
    assert k.slot(0).fsm_state == "ORDER_REQUESTED"
    k.venue.down = False
    outs = k.poll()                           # asked again: the order and its fill
    assert [o.diagnostic_code for o in outs] == ["OK", "OK"]
    assert k.slot(0).fsm_state == "POSITION_OPEN"
    assert k.slot(0).size == D("0.010") == k.venue.positions[("BTC-USDT", "LONG")]
    assert k.poll() == []                     # settled once


def test_an_order_the_venue_could_not_be_asked_about_is_still_asked_about_after_a_restore():
    """The snapshot carries the order that awaits an answer: a restored kernel's poll()
    settles it, where it used to wait for events that a quiet venue never sends."""
    k = kernel(CannotBeAskedEither)
    assert enter(k, size="0.010").state == "ORDER_REQUESTED"
    snap = json.loads(json.dumps(k.snapshot()))
    assert snap["unconfirmed_orders"] == {"e1": "submit failed: TimeoutError: no answer within 10 s"}
    restored = dita.Kernel.restore(snap, venue=k.venue)
    assert restored.poll() == [] and restored.slot(0).fsm_state == "ORDER_REQUESTED"
    k.venue.down = False
    assert [o.diagnostic_code for o in restored.poll()] == ["OK", "OK"]
    assert restored.slot(0).fsm_state == "POSITION_OPEN"
    assert restored.slot(0).size == D("0.010") == k.venue.positions[("BTC-USDT", "LONG")]
    assert "unconfirmed_orders" not in restored.snapshot()


@pytest.mark.parametrize("checkpoint", [False, True])
def test_a_journal_replays_while_an_order_awaits_an_answer(checkpoint, tmp_path):
    """Which orders await an answer is not journaled (the venue's failures are not inputs):
    a checkpoint taken meanwhile still replays, and recovery asks the venue about the order."""
    k = kernel(CannotBeAskedEither, tmp_path / "run.sqlite")
    assert enter(k, size="0.010").state == "ORDER_REQUESTED"
    if checkpoint:
        k.checkpoint()
    k.close()
    k.venue.down = False
    again = dita.Kernel.recover(tmp_path / "run.sqlite", venue=k.venue)
    assert again.slot(0).fsm_state == "POSITION_OPEN"
    assert again.slot(0).size == D("0.010") == k.venue.positions[("BTC-USDT", "LONG")]


class ExchangeEvent(dita.VenueEvent):
    """An adapter's own event type: a VenueEvent with a field of its own."""

    __slots__ = ("exchange_seq",)

    def __init__(self, *args, exchange_seq=None, **kw):
        super().__init__(*args, **kw)
        self.exchange_seq = exchange_seq


class AnswersWithItsOwnEvents(MockVenue):
    def submit(self, order):
        return [ExchangeEvent(**e.to_dict(), exchange_seq=n) for n, e in enumerate(super().submit(order))]


@pytest.mark.parametrize("journaled", [False, True])
def test_an_adapters_subclass_of_venue_event_is_applied_as_the_venue_event_it_is(journaled, tmp_path):
    """A fill is money: an event of a VenueEvent subclass was refused as INVALID_EVENT."""
    k = kernel(AnswersWithItsOwnEvents, tmp_path / "run.sqlite" if journaled else None)
    out = enter(k, size="0.010")
    assert (out.state, out.refused_events) == ("POSITION_OPEN", ())
    assert [type(e) for e in out.emitted_events] == [dita.VenueEvent, dita.VenueEvent]
    fill = ExchangeEvent("FULL_FILL", "late", "e1", "M1", D("0.001"), D("60000"), exchange_seq=9)
    assert k.on_venue_event(fill).diagnostic_code == "OVERFILL"   # judged like any other event
    assert k.slot(0).size == D("0.010")
    if journaled:
        k.close()
        again = dita.Kernel.recover(tmp_path / "run.sqlite", venue=k.venue, sync=False)
        assert again.snapshot() == k.snapshot()


class RefusesWithAVenueError(MockVenue):
    """Says itself that it placed nothing (an id already taken at the exchange, say)."""

    def submit(self, order):
        raise dita.VenueError(f"client order id {order.client_order_id} is taken")

    def query(self, order):   # another order holds the id: never to be taken for this one
        raise AssertionError("a refusal is not settled by query")


def test_a_venue_error_from_submit_is_the_venues_refusal_and_nothing_is_asked():
    k = kernel(RefusesWithAVenueError)
    out = enter(k, size="0.010")
    assert out.state == "IDLE" and out.transitions[-1] == ("ORDER_REQUESTED", "REJECT", "IDLE")
    assert k.slot(0).record["last_order_end"] == "submit refused: VenueError: client order id e1 is taken"


@pytest.mark.parametrize("path", ["native", "general", "journaled"])
def test_a_fill_the_spec_cannot_take_freezes_the_slot_instead_of_vanishing(path, tmp_path):
    """A fill whose numbers the spec cannot compute (here, a second fee as large as a decimal
    holds overflows the fees paid) was refused and forgotten: the slot went on as if the
    venue had not filled. It is real money: the slot is frozen for reconcile, saying why."""
    k, venue = silent_kernel_on(path, tmp_path)
    coid = k.slot(0).entry_client_order_id
    huge = D("79228162514264337593543950335")
    first = k.on_venue_event(dita.VenueEvent("PARTIALLY_FILLED", "f1", coid, "V1", D("0.004"), D("60000"), huge))
    assert (first.accepted, first.state) == (True, "ENTRY_WORKING")
    out = k.on_venue_event(dita.VenueEvent("PARTIALLY_FILLED", "f2", coid, "V1", D("0.004"), D("60000"), huge))
    assert (out.accepted, out.diagnostic_code, out.state) == (False, "EVALUATION_ERROR", "FROZEN")
    assert "the slot is frozen for reconcile" in out.message
    reason = k.slot(0).record["frozen_reason"]
    assert reason.startswith("the venue reported PARTIALLY_FILLED 'f2' of 0.004 at 60000 for order e1, which this "
                             "slot cannot take (EVALUATION_ERROR: ")
    assert k.slot(0).size == D("0.004")          # the first fill stays applied, nothing of the second
    assert k.process_intent(dita.KernelIntent("CANCEL", 0, "c1")).state == "FROZEN"   # the order can still be pulled
    assert [r["action"] for r in venue.received] == ["submit", "cancel"]
    if path == "journaled":
        k.close()
        again = dita.Kernel.recover(tmp_path / "run.sqlite", venue=venue, sync=False)
        assert again.snapshot() == k.snapshot()


@pytest.mark.parametrize("path", ["native", "general", "journaled"])
def test_a_frozen_unappliable_fill_delivered_again_after_the_operators_fix_is_a_duplicate(path, tmp_path):
    """The fill that froze the slot is remembered as seen: once the operator has booked it
    by reconcile, the venue delivering it again (a poll, a recovery asking about the order)
    must not freeze the slot a second time."""
    k, venue = silent_kernel_on(path, tmp_path)
    coid = k.slot(0).entry_client_order_id
    huge = D("79228162514264337593543950335")
    k.on_venue_event(dita.VenueEvent("PARTIALLY_FILLED", "f1", coid, "V1", D("0.004"), D("60000"), huge))
    bad = dita.VenueEvent("PARTIALLY_FILLED", "f2", coid, "V1", D("0.004"), D("60000"), huge)
    assert k.on_venue_event(bad).state == "FROZEN"
    record = dict(k.slot(0).record, frozen_reason=None)   # the operator books what the venue says
    k.reconcile({0: {"state": "ENTRY_WORKING", "record": record}})
    again = k.on_venue_event(bad)
    assert (again.accepted, again.diagnostic_code, again.state) == (False, "DUPLICATE_EVENT", "ENTRY_WORKING")


@pytest.mark.parametrize("checkpoint", [False, True])
def test_an_order_a_recovery_could_not_ask_about_is_asked_again_by_poll(checkpoint, tmp_path):
    """The submit's answer was lost and the venue is still unreachable when the process
    recovers: poll() asks about the order again once the venue is back (the slot waited in
    ORDER_REQUESTED for good unless a checkpoint happened to carry the order)."""
    venue = CannotBeAskedEither(prices={"BTC-USDT": "60000"})
    k = dita.Kernel(venue=venue, capital=D("1000"), journal=tmp_path / "run.sqlite")
    assert enter(k, size="0.010").state == "ORDER_REQUESTED"
    if checkpoint:
        k.checkpoint()
    k.close()
    again = dita.Kernel.recover(tmp_path / "run.sqlite", venue=venue)
    assert again.slot(0).fsm_state == "ORDER_REQUESTED"
    assert "poll() asks again" in again.recovery_report[0]["error"]
    venue.down = False
    outs = again.poll()
    assert [o.diagnostic_code for o in outs] == ["OK", "OK"]     # the acknowledgement and the fill, once
    assert again.slot(0).size == D("0.010") == venue.positions[("BTC-USDT", "LONG")]
    assert again.poll() == []


def test_an_order_a_recovery_could_not_ask_about_is_still_asked_about_after_a_restore(tmp_path):
    """The snapshot of a recovered kernel carries the working order the venue could not be
    asked about: a kernel restored from it asks in its poll(), where it used to wait in
    ORDER_REQUESTED for events that a quiet venue never sends."""
    venue = CannotBeAskedEither(prices={"BTC-USDT": "60000"})
    k = dita.Kernel(venue=venue, capital=D("1000"), journal=tmp_path / "run.sqlite")
    assert enter(k, size="0.010").state == "ORDER_REQUESTED"
    k.close()
    again = dita.Kernel.recover(tmp_path / "run.sqlite", venue=venue)
    snap = json.loads(json.dumps(again.snapshot()))
    again.close()
    assert snap["unasked_orders"] == ["e1"] and "unconfirmed_orders" not in snap
    restored = dita.Kernel.restore(snap, venue=venue)
    assert restored.poll() == [] and restored.slot(0).fsm_state == "ORDER_REQUESTED"   # still down
    venue.down = False
    assert [o.diagnostic_code for o in restored.poll()] == ["OK", "OK"]
    assert restored.slot(0).size == D("0.010") == venue.positions[("BTC-USDT", "LONG")]
    assert "unasked_orders" not in restored.snapshot()


def silent_kernel_on(path, tmp_path):
    """A kernel on a silent mock with a resting 0.010 entry, on one of the event paths."""
    venue = MockVenue(prices={"BTC-USDT": "60000"}, silent=True)
    k = dita.Kernel(venue=venue, capital=D("1000"), journal=tmp_path / "run.sqlite" if path == "journaled" else None)
    if path == "general":
        del k.on_venue_event
    enter(k, size="0.010", order_type="LIMIT", limit_price="60000")
    return k, venue


@pytest.mark.parametrize("journaled", [False, True])
@pytest.mark.parametrize("delivery", ["poll", "answer"])
def test_a_fill_from_the_venue_whose_numbers_cannot_be_read_freezes_the_slot(delivery, journaled, tmp_path):
    """A fill the venue handed over whose numbers cannot be held exactly (a fee of 30
    places, from a price off the tick) was refused as INVALID_EVENT and dropped: the slot
    went on with nothing filled while the venue held the position. It is real money: the
    slot of its order is frozen for reconcile, and the fill's re-delivery is a duplicate."""
    venue = MockVenue(prices={"BTC-USDT": "60000"}, fee_rate="0.00012345",
                      entry_fill_ratio="1" if delivery == "answer" else "0")
    k = dita.Kernel(venue=venue, capital=D("10000"), journal=tmp_path / "run.sqlite" if journaled else None)
    venue.set_price("BTC-USDT", "59000.123456789012345678901")
    order_type = "MARKET" if delivery == "answer" else "LIMIT"
    out = enter(k, size="0.001", order_type=order_type, limit_price=None if delivery == "answer" else "59000")
    if delivery == "poll":
        assert out.state == "ENTRY_WORKING"
        venue.fill("e1", "0.001", "59000.123456789012345678901")
        [out] = k.poll()
        assert (out.accepted, out.diagnostic_code, out.state, out.slot_id) == (False, "INVALID_EVENT", "FROZEN", 0)
        message = out.message
    else:
        assert out.state == "FROZEN"
        [(_event, code, message)] = out.refused_events
        assert code == "INVALID_EVENT"
    assert "cannot be held exactly" in message and "slot 0 is frozen for reconcile" in message
    reason = k.slot(0).record["frozen_reason"]
    assert reason.startswith("the venue reported FULL_FILL") and "for order e1, which this slot cannot read" in reason
    assert k.slot(0).size == 0                     # nothing of it was guessed at
    assert venue.positions                         # while the venue holds the position
    again = [o.diagnostic_code for o in k._apply_all(venue.query(k.order("e1")))]
    assert again[-1] == "DUPLICATE_EVENT" and k.slot(0).fsm_state == "FROZEN"
    if journaled:
        k.close()
        rebuilt = dita.Kernel.recover(tmp_path / "run.sqlite", venue=venue, sync=False)
        assert rebuilt.snapshot() == k.snapshot()
