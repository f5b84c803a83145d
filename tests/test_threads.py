"""A kernel called from several threads at once (a strategy thread sending intents, a
websocket thread delivering events): every call runs whole, none fails because another was
in progress (it used to raise "RuntimeError: Already borrowed" when a thread switch landed
inside the engine), and with a journal the records keep the calls' order, so a replay
rebuilds the same kernel."""

from __future__ import annotations

import sys
import threading
from decimal import Decimal as D

import pytest

import dita
from conftest import assert_account_identity
from dita_mock import MockVenue

THREADS, TRADES = 6, 40


def trade_loop(k, slot, trades, errors):
    try:
        for i in range(trades):
            tid = f"s{slot}-{i}"
            k.process_intent(dita.KernelIntent("ENTER", slot, f"e-{tid}", trade_id=tid, asset="BTC-USDT", side="LONG",
                                               target_size="0.01"))
            entry = k.slot(slot).entry_client_order_id
            k.on_venue_event(dita.VenueEvent("ORDER_ACK", f"a-{tid}", entry, "V"))
            k.on_venue_event(dita.VenueEvent("FULL_FILL", f"f-{tid}", entry, "V", D("0.01"), D("60000"), D("0.01")))
            k.process_intent(dita.KernelIntent("EXIT", slot, f"x-{tid}", trade_id=tid))
            exit_order = k.slot(slot).exit_client_order_id
            out = k.on_venue_event(dita.VenueEvent("FULL_FILL", f"xf-{tid}", exit_order, "V", D("0.01"),
                                                   D("60010"), D("0.01")))
            assert out.state == "TRADE_TERMINAL_WRITTEN", (out.state, out.message)
    except Exception as exc:  # collected: an exception in a thread would otherwise vanish
        errors.append(f"slot {slot}: {type(exc).__name__}: {exc}")


@pytest.fixture
def switching():
    """Thread switches as often as the interpreter allows, so that they land inside calls."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


@pytest.mark.parametrize("journaled", [False, True])
def test_calls_from_several_threads_each_run_whole(journaled, tmp_path, switching):
    path = tmp_path / "run.sqlite"
    venue = MockVenue(prices={"BTC-USDT": "60000"}, silent=True)
    k = dita.Kernel(venue=venue, slots=THREADS, capital=D("100000"), journal=path if journaled else None)
    errors: list[str] = []
    threads = [threading.Thread(target=trade_loop, args=(k, slot, TRADES, errors)) for slot in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(k.trades) == THREADS * TRADES
    # Each trade: +0.01 x 10 gross, 0.02 of fees.
    a = k.account
    assert (a.gross_realized_pnl, a.fees_paid) == (D("0.1") * THREADS * TRADES, D("0.02") * THREADS * TRADES)
    assert_account_identity(k)
    if journaled:
        snap = k.snapshot()
        k.close()
        again = dita.Kernel.recover(path, venue=MockVenue(prices={"BTC-USDT": "60000"}, silent=True), sync=False)
        assert again.snapshot() == snap


def test_a_payload_that_calls_the_engine_back_is_refused_not_deadlocked():
    machine = dita.load_machine()
    rt = dita.Runtime(machine, 1)

    class Sneaky:
        intent_id = "c1"

        @property
        def trade_id(self):
            rt.state(0)  # calls the runtime while it is reading this payload
            return None

    with pytest.raises(dita.EngineError, match="called again from inside one of its own calls"):
        rt.apply(0, "CANCEL", Sneaky())
    assert rt.state(0) == "IDLE" and rt.seen_count(0) == 0


class HeldCancel(MockVenue):
    """A cancel that stays at the venue until the test lets it go; its answer comes later."""

    def __init__(self, **kw):
        super().__init__(silent=True, **kw)
        self.inside, self.go = threading.Event(), threading.Event()

    def cancel(self, order):
        self.inside.set()
        self.go.wait(10)
        return super().cancel(order)


def test_an_event_from_another_thread_waits_for_the_intent_in_progress():
    """Without a journal, on_venue_event is the engine's native dispatcher, which takes no
    Python lock: a fill delivered while a CANCEL was inside the venue call was applied in the
    middle of it, and the CANCEL's outcome reported a state its own transitions did not
    explain. The intent reserves the runtime: the fill waits, then applies after it."""
    k = dita.Kernel(venue=HeldCancel(prices={"BTC-USDT": "60000"}), capital=D("1000"))
    out = k.process_intent(dita.KernelIntent("ENTER", 0, "e1", trade_id="t1", asset="BTC-USDT", side="LONG",
                                             target_size="0.010", order_type="LIMIT", limit_price="59000"))
    k.on_venue_event(dita.VenueEvent("ORDER_ACK", "a1", "e1", "M1"))
    assert k.slot(0).fsm_state == "ENTRY_WORKING", out
    results = {}
    strategy = threading.Thread(target=lambda: results.update(
        cancel=k.process_intent(dita.KernelIntent("CANCEL", 0, "c1"))))
    websocket = threading.Thread(target=lambda: results.update(
        fill=k.on_venue_event(dita.VenueEvent("FULL_FILL", "f1", "e1", "M1", D("0.010"), D("59000"), D("0.01")))))
    strategy.start()
    assert k.venue.inside.wait(10)
    websocket.start()
    websocket.join(0.3)
    assert websocket.is_alive() and "fill" not in results   # waiting for the CANCEL to end
    k.venue.go.set()
    strategy.join(10)
    websocket.join(10)
    assert results["cancel"].state == "ENTRY_CANCEL_PENDING"
    assert results["cancel"].transitions == (("ENTRY_WORKING", "CANCEL", "ENTRY_CANCEL_PENDING"),)
    assert results["fill"].transitions == (("ENTRY_CANCEL_PENDING", "FULL_FILL", "POSITION_OPEN"),)
    assert k.slot(0).size == D("0.010")
