"""A venue plugin that answers badly: what the kernel does with each answer it cannot take.
The call's own outcome is never lost to an exception, the slot stays where it can still act
(cancel, wait for a proper answer), and events a poll handed over are never dropped because
one of them was bad."""

from __future__ import annotations

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
