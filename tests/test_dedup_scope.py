"""De-duplication is scoped: a venue event is known by its event id within its order, an
intent by its intent id. A venue that numbers each order's events 1, 2, 3... is understood,
an intent id never swallows a venue event with the same text, and a true re-delivery (same
order, same event id) is still refused and changes nothing — on the native path, the general
path and the journaled path alike."""

from __future__ import annotations

import json
import re

import pytest

import dita
from conftest import D, assert_account_identity, cancel, enter, exit_
from dita_mock import MockVenue


def quiet_kernel(path, tmp_path):
    venue = MockVenue(prices={"BTC-USDT": "60000"}, silent=True)
    journal = tmp_path / "j.sqlite" if path == "journaled" else None
    k = dita.Kernel(venue=venue, slots=1, capital=D("1000"), journal=journal)
    if path == "general":
        del k.on_venue_event  # the class's method: the general path
    return k


PATHS = ["native", "general", "journaled"]


def working_entry(path, tmp_path):
    """A kernel whose slot 0 has a resting LIMIT entry of 0.010; the entry's client order id."""
    k = quiet_kernel(path, tmp_path)
    enter(k, 0, "e1", "t1", size="0.010", order_type="LIMIT", limit_price="59000")
    return k, k.slot(0).active_entry_order.client_order_id


def fill(k, event_id, coid, size, price, fee="0.01", kind="PARTIALLY_FILLED"):
    return k.on_venue_event(dita.VenueEvent(kind, event_id, coid, "V-" + coid, D(size), D(price), D(fee)))


@pytest.mark.parametrize("path", PATHS)
def test_event_ids_numbered_per_order_are_applied_once_per_order(path, tmp_path):
    k, entry = working_entry(path, tmp_path)
    assert k.on_venue_event(dita.VenueEvent("ORDER_ACK", "1", entry, "V-e")).accepted
    assert fill(k, "2", entry, "0.004", "59000").accepted
    assert fill(k, "3", entry, "0.006", "59000", kind="FULL_FILL").state == "POSITION_OPEN"
    exit_(k, 0, "x1", order_type="LIMIT", limit_price="61000")
    out_order = k.slot(0).active_exit_order.client_order_id
    # The exit order's events reuse the ids "1", "2", "3" of the entry's: other order, other events.
    ack = k.on_venue_event(dita.VenueEvent("ORDER_ACK", "1", out_order, "V-x"))
    assert (ack.accepted, ack.state) == (True, "EXIT_WORKING")
    assert fill(k, "2", out_order, "0.004", "61000").accepted
    closed = fill(k, "3", out_order, "0.006", "61000", kind="FULL_FILL")
    assert (closed.accepted, closed.state) == (True, "TRADE_TERMINAL_WRITTEN")
    assert k.account.realized_pnl == D("20") - D("0.04")  # 0.010 x 2000 gross, four fees
    assert_account_identity(k)
    # A true re-delivery of the exit's last fill is still refused, naming its order.
    before = k.snapshot()
    again = fill(k, "3", out_order, "0.006", "61000", kind="FULL_FILL")
    assert (again.accepted, again.diagnostic_code) == (False, "DUPLICATE_EVENT")
    assert k.snapshot() == before


@pytest.mark.parametrize("path", PATHS)
def test_a_redelivered_fill_within_a_trade_is_refused_and_changes_nothing(path, tmp_path):
    k, entry = working_entry(path, tmp_path)
    assert fill(k, "f1", entry, "0.004", "59000").accepted
    before = k.snapshot()
    dup = fill(k, "f1", entry, "0.004", "59000")
    assert (dup.accepted, dup.diagnostic_code, dup.state) == (False, "DUPLICATE_EVENT", "ENTRY_WORKING")
    assert "'f1'" in dup.message or '"f1"' in dup.message
    assert entry in dup.message  # the order it was de-duplicated within
    assert k.snapshot() == before and k.slot(0).size == D("0.004")


@pytest.mark.parametrize("path", PATHS)
def test_an_intent_id_never_swallows_a_venue_event_with_the_same_text(path, tmp_path):
    k = quiet_kernel(path, tmp_path)
    enter(k, 0, "k0", "t1", size="0.010", order_type="LIMIT", limit_price="59000")
    entry = k.slot(0).active_entry_order.client_order_id
    assert k.on_venue_event(dita.VenueEvent("ORDER_ACK", "k0", entry, "V-e")).accepted  # same text as the ENTER
    assert cancel(k, 0, "k1").state == "ENTRY_CANCEL_PENDING"
    ack = k.on_venue_event(dita.VenueEvent("CANCEL_ACK", "k1", entry, "V-e"))  # same text as the CANCEL
    assert (ack.accepted, ack.state) == (True, "IDLE")
    # and the other way round: an intent whose id an event already used
    enter(k, 0, "e2", "t2", size="0.010", order_type="LIMIT", limit_price="59000")
    entry2 = k.slot(0).active_entry_order.client_order_id
    assert k.on_venue_event(dita.VenueEvent("ORDER_ACK", "c9", entry2, "V-e2")).accepted
    assert cancel(k, 0, "c9").accepted


@pytest.mark.parametrize("path", PATHS)
def test_the_scoped_keys_survive_snapshot_and_restore(path, tmp_path):
    k, entry = working_entry(path, tmp_path)
    assert fill(k, "1", entry, "0.004", "59000").accepted
    snap = json.loads(json.dumps(k.snapshot()))
    assert sorted(map(tuple, snap["slots"][0]["seen"])) == [("event_id", "1", "client_order_id", entry), ("intent_id", "e1")]
    k2 = dita.Kernel.restore(snap, venue=MockVenue(prices={"BTC-USDT": "60000"}, silent=True))
    assert fill(k2, "1", entry, "0.004", "59000").diagnostic_code == "DUPLICATE_EVENT"
    assert fill(k2, "2", entry, "0.006", "59000", kind="FULL_FILL").state == "POSITION_OPEN"


def test_a_snapshot_with_a_malformed_or_unknown_dedup_entry_is_refused_by_name(tmp_path):
    k = quiet_kernel("native", tmp_path)
    enter(k, 0, "e1", "t1", size="0.010", order_type="LIMIT", limit_price="59000")
    snap = json.loads(json.dumps(k.snapshot()))
    for bad, words in [("e1", "a de-duplication entry is [key field, value]"),
                       (["trade_id", "t1"], "no event de-duplicates by trade_id"),
                       (["event_id", "1", "venue_order_id", "V"], "no event de-duplicates by event_id within venue_order_id")]:
        broken = json.loads(json.dumps(snap))
        broken["slots"][0]["seen"] = [bad]
        with pytest.raises(dita.ReconcileError, match=re.escape(words)):
            dita.Kernel.restore(broken, venue=MockVenue(prices={"BTC-USDT": "60000"}, silent=True))


# ------------------------------------------------------------ a frozen slot can still cancel


def frozen_with_a_working_exit(path, tmp_path):
    """Exit x1 is cancelled and acknowledged, exit x2 is sent, then a fill of all of x1 that
    raced its cancel arrives: it would close the position under the working x2, so the slot
    freezes for a human, with x2 still working."""
    k, entry = working_entry(path, tmp_path)
    assert fill(k, "1", entry, "0.010", "59000", kind="FULL_FILL").state == "POSITION_OPEN"
    exit_(k, 0, "x1", order_type="LIMIT", limit_price="61000")
    x1 = k.slot(0).active_exit_order.client_order_id
    cancel(k, 0, "c1")
    assert k.on_venue_event(dita.VenueEvent("CANCEL_ACK", "2", x1, "V-x1")).state == "POSITION_OPEN"
    exit_(k, 0, "x2", order_type="LIMIT", limit_price="62000")
    x2 = k.slot(0).active_exit_order.client_order_id
    late = fill(k, "3", x1, "0.010", "61000", kind="FULL_FILL")
    assert (late.accepted, late.state) == (True, "FROZEN")
    return k, x1, x2


@pytest.mark.parametrize("path", PATHS)
def test_a_frozen_slot_still_sends_the_cancel_of_its_working_order(path, tmp_path):
    k, x1, x2 = frozen_with_a_working_exit(path, tmp_path)
    reason = k.slot(0).record["frozen_reason"]
    assert reason == (f"fill of 0.01 at 61000 for earlier exit order {x1} closes the position while exit order {x2} "
                      f"still works: cancel it, then reconcile")
    sent_before = len(k.venue.received)
    out = cancel(k, 0, "c2")
    assert (out.accepted, out.state, out.transitions) == (True, "FROZEN", (("FROZEN", "CANCEL", "FROZEN"),))
    sent = k.venue.received[sent_before:]
    assert [(r["action"], r["client_order_id"], r["asset"]) for r in sent] == [("cancel", x2, "BTC-USDT")]
    # Everything else still waits for reconcile.
    assert exit_(k, 0, "x3").diagnostic_code == "SLOT_FROZEN"
    assert k.on_venue_event(dita.VenueEvent("CANCEL_ACK", "4", x2, "V-x2")).diagnostic_code == "SLOT_FROZEN"


@pytest.mark.parametrize("path", PATHS)
def test_a_frozen_slot_with_nothing_working_refuses_cancel_saying_why(path, tmp_path):
    k, entry = working_entry(path, tmp_path)
    assert fill(k, "1", entry, "0.006", "59000").state == "ENTRY_WORKING"
    cancel(k, 0, "c0")
    assert k.on_venue_event(dita.VenueEvent("CANCEL_ACK", "c", entry, "V")).state == "POSITION_OPEN"
    exit_(k, 0, "x1", order_type="LIMIT", limit_price="61000")
    x1 = k.slot(0).active_exit_order.client_order_id
    assert fill(k, "2", x1, "0.006", "61000", kind="FULL_FILL").state == "TRADE_TERMINAL_WRITTEN"
    enter(k, 0, "e2", "t2", size="0.010", order_type="LIMIT", limit_price="59000")
    entry2 = k.slot(0).active_entry_order.client_order_id
    cancel(k, 0, "c1")
    assert k.on_venue_event(dita.VenueEvent("CANCEL_ACK", "1", entry2, "V")).state == "IDLE"
    # A fill of the first trade's entry order (within its quantity) now cannot be placed:
    # frozen, nothing working.
    assert fill(k, "9", entry, "0.001", "59000").state == "FROZEN"
    before = k.snapshot()
    out = cancel(k, 0, "c2")
    assert (out.accepted, out.diagnostic_code, out.state) == (False, "SLOT_FROZEN", "FROZEN")
    assert "with no order working; reconcile it" in out.message
    assert k.snapshot() == before
