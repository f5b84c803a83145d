"""Journal checkpoints: recovery starts from the latest one and applies only what follows it;
a full replay arrives at the state each one recorded, or names the record where it did not."""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal as D

import pytest

import dita
from conftest import assert_account_identity, cancel, enter, exit_
from dita_mock import MockVenue


def _venue(**kw):
    kw.setdefault("prices", {"BTC-USDT": "60000"})
    return MockVenue(**kw)


def _rows(path):
    with sqlite3.connect(path) as c:
        return c.execute("SELECT seq, kind, slot, data FROM records ORDER BY seq").fetchall()


def _round_trip(k, slot, n):
    assert enter(k, slot=slot, intent=f"re{n}", trade=f"rt{n}", size="0.004").state == "POSITION_OPEN"
    assert exit_(k, slot=slot, intent=f"rx{n}").state == "TRADE_TERMINAL_WRITTEN"


def test_recovery_starts_from_the_latest_checkpoint_and_applies_only_the_records_after_it(tmp_path):
    path = tmp_path / "run.sqlite"
    venue = _venue(fee_rate="0.0004")
    k = dita.Kernel(venue=venue, slots=2, capital=D("1000"), journal=path)
    # Slot 0: a LIMIT entry that fills in part, the rest cancelled, then a resting exit leg.
    assert enter(k, size="0.010", order_type="LIMIT", limit_price="59000", ratios=("0.5", "0.5")).accepted
    venue.fill(k.slot(0).active_entry_order.client_order_id, "0.006", "59000")
    for out in k.poll():
        assert out.accepted, out
    assert cancel(k).state == "POSITION_OPEN"
    assert exit_(k, intent="x1", order_type="LIMIT", limit_price="61000").state == "EXIT_WORKING"
    # Slot 1: a whole trade, then the next one: the first trade's orders have ended.
    _round_trip(k, 1, 1)
    assert enter(k, slot=1, intent="e2", trade="t2", size="0.002", order_type="LIMIT",
                 limit_price="59000").state == "ENTRY_WORKING"
    ended_coid = next(coid for coid, o in k._orders.items() if o.trade_id == "rt1" and o.role == "ENTRY")
    ended_fill = next(ev for ev in venue.query(k.order(ended_coid)) if ev.kind in ("PARTIALLY_FILLED", "FULL_FILL"))
    exit_coid = k.slot(0).active_exit_order.client_order_id

    seq = k.checkpoint()
    assert seq == k.journal.last_seq == k.journal.last_checkpoint().seq
    assert k.journal.meta()["last_checkpoint"] == seq
    # What happens after the checkpoint: the resting exit and the new entry fill.
    venue.set_price("BTC-USDT", "58500")
    venue.set_price("BTC-USDT", "61500")
    for out in k.poll():
        assert out.accepted, out
    assert k.slot(1).fsm_state == "POSITION_OPEN" and k.slot(0).fsm_state == "POSITION_OPEN"
    live = k.snapshot()
    k.close()

    # A record before the checkpoint is damaged: recovery from the checkpoint never reads it,
    # a full replay stops at it.
    rows = _rows(path)
    bad_seq, _, _, data = next(r for r in rows if r[1] == "apply" and json.loads(r[3])["event"] == "FULL_FILL")
    assert bad_seq < seq
    d = json.loads(data)
    d["payload"]["filled_size"] = "1"
    with sqlite3.connect(path) as c:
        c.execute("UPDATE records SET data=? WHERE seq=?", (json.dumps(d), bad_seq))
    with pytest.raises(dita.JournalError, match=f"record {bad_seq}"):
        dita.Kernel.recover(path, venue=venue, from_checkpoint=False)

    k2 = dita.Kernel.recover(path, venue=venue)
    assert k2.snapshot() == live
    assert_account_identity(k2)
    # What the checkpoint carried still de-duplicates a re-delivered fill of an order of the
    # ended trade, and what was replayed after it one of the exit leg that filled since.
    assert k2.on_venue_event(ended_fill).diagnostic_code == "DUPLICATE_EVENT"
    exit_fills = [ev for ev in venue.query(k2.order(exit_coid)) if ev.kind in ("PARTIALLY_FILLED", "FULL_FILL")]
    assert exit_fills and all(k2.on_venue_event(ev).diagnostic_code == "DUPLICATE_EVENT" for ev in exit_fills)
    assert k2.snapshot() == live
    # And the kernel goes on, its journal too.
    assert exit_(k2, slot=1, intent="x9").state == "TRADE_TERMINAL_WRITTEN"
    k2.close()
    assert [r[0] for r in _rows(path)] == list(range(1, len(_rows(path)) + 1))


def test_a_full_replay_checks_every_checkpoint_and_names_one_that_differs(tmp_path):
    path = tmp_path / "run.sqlite"
    k = dita.Kernel(venue=_venue(fee_rate="0.001"), slots=1, capital=D("1000"), journal=path)
    _round_trip(k, 0, 1)
    first = k.checkpoint()
    _round_trip(k, 0, 2)
    k.close()
    k2 = dita.Kernel.recover(path, venue=_venue(fee_rate="0.001"), from_checkpoint=False)
    assert k2._last_checkpoint == first  # it was checked on the way
    k2.close()

    with sqlite3.connect(path) as c:
        data = json.loads(c.execute("SELECT data FROM records WHERE seq=?", (first,)).fetchone()[0])
        data["account"]["capital"] = str(D(data["account"]["capital"]) + 1)
        c.execute("UPDATE records SET data=? WHERE seq=?", (json.dumps(data), first))
    with pytest.raises(dita.JournalError, match=f"replay diverged at journal record {first} .*checkpoint"):
        dita.Kernel.recover(path, venue=_venue(), from_checkpoint=False)
    # Recovering from it checks it against the spec's invariants: the account no longer adds up.
    with pytest.raises(dita.JournalError, match=rf"(?s)record {first}: the checkpoint does not hold.*shared.capital == shared.starting_capital"):
        dita.Kernel.recover(path, venue=_venue())


def test_checkpoint_every_writes_them_between_calls_and_goes_on_after_recovery(tmp_path):
    path = tmp_path / "run.sqlite"
    k = dita.Kernel(venue=_venue(), slots=2, capital=D("1000"), journal=path, checkpoint_every=25)
    for n in range(8):
        _round_trip(k, n % 2, n)
    live = k.snapshot()
    k.close()
    rows = _rows(path)
    cps = [i for i, r in enumerate(rows) if r[1] == "checkpoint"]
    assert len(cps) >= 3
    gaps = [rows[b][0] - rows[a][0] for a, b in zip(cps, cps[1:])]
    assert all(g > 25 for g in gaps), gaps
    # Between calls: what follows a checkpoint is the next call's first record.
    assert all(i + 1 == len(rows) or rows[i + 1][1] == "intent" for i in cps)
    for from_checkpoint in (True, False):
        k2 = dita.Kernel.recover(path, venue=_venue(), from_checkpoint=from_checkpoint)
        assert k2.snapshot() == live
        k2.close()

    k3 = dita.Kernel.recover(path, venue=_venue(), checkpoint_every=25)
    assert k3._last_checkpoint == rows[cps[-1]][0]
    for n in range(8, 12):
        _round_trip(k3, n % 2, n)
    assert k3.journal.last_checkpoint().seq > rows[cps[-1]][0]
    k3.close()


def test_a_checkpoint_commits_what_a_batched_journal_still_held(tmp_path):
    path = tmp_path / "run.sqlite"
    k = dita.Kernel(venue=_venue(), slots=1, capital=D("1000"), journal=path, durability="batched")
    k.journal.batch_records, k.journal.batch_ms = 10_000, 60_000.0
    _round_trip(k, 0, 1)
    assert len(_rows(path)) < k.journal.last_seq
    seq = k.checkpoint()
    assert len(_rows(path)) == seq == k.journal.last_seq
    k.close()


def test_checkpoint_options_are_checked_before_anything_is_created(tmp_path):
    with pytest.raises(dita.JournalError, match="keeps none"):
        dita.Kernel(venue=_venue()).checkpoint()
    path = tmp_path / "run.sqlite"
    for bad in (0, -3, 2.5, True, "10"):
        with pytest.raises(dita.InvalidInputError, match="checkpoint_every must be a positive int"):
            dita.Kernel(venue=_venue(), journal=path, checkpoint_every=bad)
    with pytest.raises(dita.InvalidInputError, match="checkpoint_every needs a journal"):
        dita.Kernel(venue=_venue(), checkpoint_every=10)
    assert not path.exists()
    dita.Kernel(venue=_venue(), journal=path).close()
    with pytest.raises(dita.InvalidInputError, match="checkpoint_every must be a positive int"):
        dita.Kernel.recover(path, venue=_venue(), checkpoint_every=0)
