"""A snapshot names the venue its orders live at, and a restore talks to that venue: before,
``Kernel.restore(snap)`` built a mock venue whatever the snapshot came from, so a kernel
restored from a live session without ``venue=`` told a venue that had never seen them about
its working orders, and could cancel none of them."""

from __future__ import annotations

import json
from decimal import Decimal as D

import pytest

import dita
from conftest import enter
from dita_mock import MockVenue


def _paper(order_type="LIMIT", limit_price="100"):
    """A kernel on the paper venue (a registered plugin other than the mock; SOL at 142.37),
    its entry resting below the market."""
    k = dita.Kernel(venue="paper", capital=D("1000"))
    out = enter(k, size="0.5", asset="SOL-USDT", order_type=order_type, limit_price=limit_price)
    return k, out


def test_a_snapshot_names_its_venue_and_a_restore_without_venue_talks_to_it():
    k, out = _paper()
    assert out.state == "ENTRY_WORKING"
    snap = json.loads(json.dumps(k.snapshot()))
    assert snap["venue"] == "paper"
    restored = dita.Kernel.restore(snap)
    assert type(restored.venue).__name__ == "PaperVenue" and restored.venue.name == "paper"
    assert restored.snapshot() == snap
    # The restored kernel's cancel goes to the venue the snapshot names.
    coid = restored.slot(0).active_entry_order.client_order_id
    assert restored.process_intent(dita.KernelIntent("CANCEL", 0, "c1")).accepted
    assert [(r["action"], r["clientId"]) for r in restored.venue.wire] == [("cancel", coid)]


def test_a_venue_of_another_name_is_refused_while_an_order_works_and_nothing_is_built():
    k, _ = _paper()
    snap = k.snapshot()
    coid = k.slot(0).active_entry_order.client_order_id
    before = json.dumps(snap, sort_keys=True)
    with pytest.raises(dita.InvalidInputError, match=rf"venue 'paper', not 'mock'.*{coid}.*pass venue='paper'"):
        dita.Kernel.restore(snap, venue="mock")
    with pytest.raises(dita.InvalidInputError, match=r"venue 'paper', not 'mock'"):
        dita.Kernel.restore(snap, venue=MockVenue(prices={"SOL-USDT": "142.37"}))
    assert json.dumps(snap, sort_keys=True) == before
    # The same name, or an unnamed stand-in of the caller's own, is taken.
    assert dita.Kernel.restore(snap, venue="paper").slot(0).fsm_state == "ENTRY_WORKING"


def test_a_snapshot_with_no_order_working_restores_onto_any_venue():
    k, out = _paper(order_type="MARKET", limit_price=None)
    assert out.state == "POSITION_OPEN"
    snap = k.snapshot()
    restored = dita.Kernel.restore(snap, venue="mock", venue_options={"prices": {"SOL-USDT": "142.37"}})
    assert restored.slot(0).size == D("0.5") and restored.snapshot()["venue"] == "mock"
    assert restored.account.capital == k.account.capital


def test_a_snapshot_that_names_no_venue_needs_one_while_an_order_works():
    k, _ = _paper()
    old = {key: value for key, value in k.snapshot().items() if key != "venue"}   # as snapshots were
    with pytest.raises(dita.InvalidInputError, match=r"the snapshot does not say which venue .*pass venue="):
        dita.Kernel.restore(old)
    assert dita.Kernel.restore(old, venue="paper").slot(0).fsm_state == "ENTRY_WORKING"
    idle = dita.Kernel(venue="paper").snapshot()
    del idle["venue"]
    assert dita.Kernel.restore(idle).venue.name == "mock"   # nothing at any venue: the default


def test_a_read_only_replay_names_the_journals_venue_not_its_stand_in(tmp_path):
    path = tmp_path / "run.sqlite"
    k = dita.Kernel(venue="paper", capital=D("1000"), journal=path)
    enter(k, size="0.5", asset="SOL-USDT", order_type="LIMIT", limit_price="100")
    live = k.snapshot()
    k.close()
    from dita.cli_journal import OfflineVenue
    replayed = dita.Kernel.recover(path, venue=OfflineVenue(), read_only=True)
    assert replayed.snapshot() == live and replayed.snapshot()["venue"] == "paper"
    replayed.close()
    # A full replay by a stand-in arrives at checkpoints that name the real venue.
    k2 = dita.Kernel.recover(path, sync=False)
    k2.checkpoint()
    k2.close()
    again = dita.Kernel.recover(path, venue=OfflineVenue(), read_only=True, from_checkpoint=False)
    assert again.slot(0).fsm_state == "ENTRY_WORKING"


def test_a_snapshot_of_a_kernel_on_the_callers_own_venue_class_restores_onto_a_named_venue():
    """A venue class no plugin registers (a test's scripted mock) has no name to check."""
    class Scripted(MockVenue):
        pass

    k = dita.Kernel(venue=Scripted(prices={"BTC-USDT": "60000"}), capital=D("1000"))
    assert enter(k, size="0.010", order_type="LIMIT", limit_price="50000").state == "ENTRY_WORKING"
    snap = k.snapshot()
    assert snap["venue"] == "Scripted"
    restored = dita.Kernel.restore(snap, venue="mock", venue_options={"prices": {"BTC-USDT": "60000"}})
    assert restored.slot(0).fsm_state == "ENTRY_WORKING"
    with pytest.raises(dita.InvalidInputError, match=r"venue 'Scripted', which names no one registered venue"):
        dita.Kernel.restore(snap)
