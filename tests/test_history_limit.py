"""history_limit: a long-running kernel keeps a bounded past (ended orders, terminal records),
forgets the oldest, refuses their events as UNKNOWN_ORDER, and replays exactly as it ran."""

from __future__ import annotations

import json
from decimal import Decimal as D

import pytest

import dita
from conftest import assert_account_identity, enter, exit_
from dita_mock import MockVenue


def _venue():
    return MockVenue(prices={"BTC-USDT": "60000"}, fee_rate="0.0004")


def _trade(k, n, slot=0):
    """A MARKET entry, then a LIMIT exit that rests and fills when the price crosses it (its
    fill comes back through poll, on the engine's native path when there is no journal)."""
    assert enter(k, slot=slot, intent=f"e{n}", trade=f"t{n}", size="0.004").state == "POSITION_OPEN"
    assert exit_(k, slot=slot, intent=f"x{n}", order_type="LIMIT", limit_price="60100").state == "EXIT_WORKING"
    k.venue.set_price("BTC-USDT", "60200")
    assert [o.state for o in k.poll()] == ["TRADE_TERMINAL_WRITTEN"]
    k.venue.set_price("BTC-USDT", "60000")


def test_only_the_most_recent_ended_orders_and_trade_records_are_kept(tmp_path):
    bounded = dita.Kernel(venue=_venue(), capital=D("1000"), history_limit=3)
    unbounded = dita.Kernel(venue=_venue(), capital=D("1000"))
    for k in (bounded, unbounded):
        for n in range(6):
            _trade(k, n)
        assert enter(k, intent="e6", trade="t6", size="0.004").state == "POSITION_OPEN"
    # The account and the slot do not depend on what is remembered.
    for part in ("account", "slots", "slot_orders"):
        assert bounded.snapshot()[part] == unbounded.snapshot()[part], part
    assert_account_identity(bounded)
    assert [t["trade_id"] for t in bounded.trades] == ["t3", "t4", "t5"]
    assert len(unbounded.trades) == 6
    snap = bounded.snapshot()
    assert list(snap["ended_orders"]) == ["x4", "e5", "x5"]  # the three most recent ended orders
    assert set(snap["orders"]) == {"x4", "e5", "x5", "e6"}   # and the current trade's
    assert snap["history_limit"] == 3
    assert bounded.order("e0") is None and bounded.order("x4") is not None
    assert len(unbounded.snapshot()["orders"]) == 13


def test_a_forgotten_orders_event_is_refused_a_kept_ones_is_a_duplicate():
    k = dita.Kernel(venue=_venue(), capital=D("1000"), history_limit=2)
    fills = {}
    for n in range(4):
        _trade(k, n)
        fills[n] = [ev for ev in k.venue.query(k.order(f"x{n}")) if ev.kind in ("PARTIALLY_FILLED", "FULL_FILL")]
    assert enter(k, intent="e4", trade="t4", size="0.004").state == "POSITION_OPEN"
    before = k.snapshot()
    out = k.on_venue_event(fills[3][0])  # x3 is kept: it applied this fill
    assert (out.accepted, out.diagnostic_code) == (False, "DUPLICATE_EVENT")
    out = k.on_venue_event(fills[0][0])  # x0 is forgotten
    assert (out.accepted, out.diagnostic_code) == (False, "UNKNOWN_ORDER")
    assert "forgotten" in out.message and "last 2 ended" in out.message
    assert k.snapshot() == before


def test_the_limit_is_journaled_and_recovery_and_restore_keep_it(tmp_path):
    path = tmp_path / "run.sqlite"
    k = dita.Kernel(venue=_venue(), slots=2, capital=D("1000"), journal=path, history_limit=2, checkpoint_every=40)
    for n in range(8):
        _trade(k, n, slot=n % 2)
    live = k.snapshot()
    k.close()
    for from_checkpoint in (True, False):
        k2 = dita.Kernel.recover(path, venue=_venue(), from_checkpoint=from_checkpoint)
        assert k2.snapshot() == live
        k2.close()
    k3 = dita.Kernel.recover(path, venue=_venue())
    for n in range(8, 12):
        _trade(k3, n, slot=n % 2)
    assert len(k3.snapshot()["ended_orders"]) == 2 and len(k3.trades) == 2
    k3.close()
    k4 = dita.Kernel.restore(json.loads(json.dumps(live)), venue=_venue())
    for n in range(8, 12):
        _trade(k4, n, slot=n % 2)
    assert len(k4.snapshot()["ended_orders"]) == 2 and [t["trade_id"] for t in k4.trades] == ["t10", "t11"]


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "10"])
def test_a_bad_limit_is_refused_by_name(tmp_path, bad):
    with pytest.raises(dita.InvalidInputError, match="history_limit must be a positive int or None"):
        dita.Kernel(venue=_venue(), journal=tmp_path / "run.sqlite", history_limit=bad)
    assert not (tmp_path / "run.sqlite").exists()
    snap = dita.Kernel(venue=_venue()).snapshot()
    snap["history_limit"] = bad
    with pytest.raises(dita.ReconcileError, match="history_limit must be a positive int or None"):
        dita.Kernel.restore(snap, venue=_venue())
