"""The SQLite journal: what it holds, recovery by replay, fills missed while down, durability."""

from __future__ import annotations

import gc
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


def _session(k):
    """Partial LIMIT entry, cancel of the rest, a duplicate fill, a two-leg exit."""
    assert enter(k, size="0.010", order_type="LIMIT", limit_price="60000", ratios=("0.5", "0.5")).accepted
    assert cancel(k).state == "POSITION_OPEN"
    assert exit_(k, intent="x1").accepted
    fill = k.venue.set_price("BTC-USDT", "60500")
    for out in k.poll():
        assert out.accepted
    if fill:
        assert k.on_venue_event(fill[0]).diagnostic_code == "DUPLICATE_EVENT"
    assert exit_(k, intent="x2").accepted


def _rows(path):
    with sqlite3.connect(path) as c:
        return c.execute("SELECT seq, kind, slot, data FROM records ORDER BY seq").fetchall()


def test_every_step_is_journaled_in_order_and_recovery_rebuilds_the_same_kernel(tmp_path):
    path = tmp_path / "run.sqlite"
    venue = _venue(entry_fill_ratio="0.6", exit_fill_ratio="0.5", fee_rate="0.0004")
    k = dita.Kernel(venue=venue, slots=2, capital=D("1000"), journal=path)
    _session(k)
    before = k.snapshot()
    k.close()

    rows = _rows(path)
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1))
    kinds = {r[1] for r in rows}
    assert {"intent", "apply", "transition", "effect", "settlement"} <= kinds
    first_effect = next(r for r in rows if r[1] == "effect")
    assert json.loads(first_effect[3])["effect"] == "SUBMIT_ORDER"
    # The order was journaled before the venue's answer (its ACK) was applied.
    ack = next(r for r in rows if r[1] == "apply" and json.loads(r[3])["event"] == "ORDER_ACK")
    assert first_effect[0] < ack[0]
    settlements = [json.loads(r[3]) for r in rows if r[1] == "settlement"]
    assert settlements[-1]["capital"] == str(before["account"]["capital"])

    k2 = dita.Kernel.recover(path, venue=venue)
    assert k2.snapshot() == before
    # The second exit leg still works: the venue is asked about it, and what it reports was
    # already applied before the "crash", so nothing applies twice.
    assert k2.recovery_report == [{"slot": 0, "client_order_id": "x2", "applied": ["DUPLICATE_EVENT"] * 2,
                                   "state": "EXIT_WORKING"}]
    assert k2.snapshot() == before
    assert_account_identity(k2)
    # The journal continues where it stopped.
    assert k2.process_intent(dita.KernelIntent("ENTER", 1, "e9", trade_id="t9", asset="BTC-USDT", side="LONG",
                                               target_size="0.002")).accepted
    k2.close()
    seqs = [r[0] for r in _rows(path)]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) > len(rows)


def test_fills_that_happen_while_the_kernel_is_down_are_applied_once_on_recovery(tmp_path):
    path = tmp_path / "run.sqlite"
    venue = _venue(entry_fill_ratio="0")
    k = dita.Kernel(venue=venue, slots=1, capital=D("1000"), journal=path)
    assert enter(k, size="0.010", order_type="LIMIT", limit_price="59000").state == "ENTRY_WORKING"
    coid = k.slot(0).active_entry_order.client_order_id
    k.venue.poll()
    del k  # the process "dies" here: nothing more is journaled
    gc.collect()  # and, as a dead process's would, its journal's writer lock goes

    venue.fill(coid, "0.004", "59000")  # the venue keeps trading meanwhile
    venue.fill(coid, "0.006", "59000")
    venue.poll()  # and those reports are gone from the push channel: only a query finds them

    k2 = dita.Kernel.recover(path, venue=venue)
    s = k2.slot(0)
    assert s.fsm_state == "POSITION_OPEN" and s.size == D("0.010") and s.entry_price == D("59000")
    assert k2.recovery_report[0]["client_order_id"] == coid
    assert k2.recovery_report[0]["state"] == "POSITION_OPEN"
    # Asking again applies nothing twice.
    again = k2.sync_with_venue()
    assert again == []
    for ev in venue.query(k2.order(coid)):
        assert k2.on_venue_event(ev).diagnostic_code == "DUPLICATE_EVENT"
    assert k2.slot(0).size == D("0.010")
    assert_account_identity(k2)
    k2.close()


def test_a_tampered_journal_is_refused_naming_the_record(tmp_path):
    path = tmp_path / "run.sqlite"
    k = dita.Kernel(venue=_venue(), slots=1, capital=D("1000"), journal=path)
    assert enter(k, size="0.010").state == "POSITION_OPEN"
    k.close()
    with sqlite3.connect(path) as c:
        seq, data = c.execute("SELECT seq, data FROM records WHERE kind='apply' AND data LIKE '%FULL_FILL%'").fetchone()
        d = json.loads(data)
        d["payload"]["filled_size"] = "0.02"  # more than the order's quantity
        c.execute("UPDATE records SET data=? WHERE seq=?", (json.dumps(d), seq))
    with pytest.raises(dita.JournalError, match=f"record {seq}"):
        dita.Kernel.recover(path, venue=_venue())


@pytest.mark.parametrize("from_checkpoint", [True, False])
@pytest.mark.parametrize("deleted", ["effect", "apply", "settlement"])
def test_a_record_deleted_from_the_journal_is_named(deleted, from_checkpoint, tmp_path):
    """Deleting the record of an order sent (its effect), of a fill applied or of a
    settlement went unnoticed by a replay, which rebuilt a history the file no longer held."""
    path = tmp_path / "run.sqlite"
    k = dita.Kernel(venue=_venue(), slots=1, capital=D("1000"), journal=path)
    assert enter(k, size="0.010").state == "POSITION_OPEN"
    k.checkpoint() if not from_checkpoint else None
    assert exit_(k).state == "TRADE_TERMINAL_WRITTEN"
    k.close()
    with sqlite3.connect(path) as c:
        [(seq,)] = c.execute("SELECT MAX(seq) FROM records WHERE kind=?", (deleted,)).fetchall()
        c.execute("DELETE FROM records WHERE seq=?", (seq,))
    with pytest.raises(dita.JournalError, match=f"record {seq} is missing \\(the next is {seq + 1}\\): the journal was edited"):
        dita.Kernel.recover(path, venue=_venue(), from_checkpoint=from_checkpoint)


def test_journal_errors_are_clear(tmp_path):
    with pytest.raises(dita.JournalError, match="journal not found"):
        dita.Kernel.recover(tmp_path / "nope.sqlite", venue=_venue())
    path = tmp_path / "run.sqlite"
    dita.Kernel(venue=_venue(), journal=path).close()
    k = dita.Kernel.recover(path, venue=_venue())
    assert k.process_intent(dita.KernelIntent("CANCEL", 0, "c0")).diagnostic_code == "NO_WORKING_ORDER"
    k.close()
    with pytest.raises(dita.JournalError, match="already holds records"):
        dita.Kernel(venue=_venue(), journal=path)
    for journal in (tmp_path / "x.sqlite", None):
        with pytest.raises(dita.InvalidInputError, match="durability must be one of full, batched, got 'sometimes'"):
            dita.Kernel(venue=_venue(), journal=journal, durability="sometimes")
    assert not (tmp_path / "x.sqlite").exists()   # refused before any file was made


def test_the_journal_never_holds_venue_options_or_raw_exchange_payloads(tmp_path):
    secret = "S3CRET-do-not-store-4f1c"

    class KeyedMock(MockVenue):
        def __init__(self, api_secret, **kw):
            super().__init__(**kw)
            self._api_secret = api_secret

        def submit(self, order):
            events = super().submit(order)
            for ev in events:
                ev.raw = {"echo": self._api_secret}  # an exchange payload we must not keep
            return events

    path = tmp_path / "run.sqlite"
    k = dita.Kernel(venue=KeyedMock(secret, prices={"BTC-USDT": "60000"}), journal=path)
    assert enter(k, size="0.010").state == "POSITION_OPEN"
    k.close()
    for f in tmp_path.iterdir():
        assert secret.encode() not in f.read_bytes(), f.name


def test_batched_mode_commits_a_window_and_everything_on_close(tmp_path):
    path = tmp_path / "run.sqlite"
    venue = _venue(entry_fill_ratio="0")
    k = dita.Kernel(venue=venue, slots=1, capital=D("1000"), journal=path, durability="batched")
    k.journal.batch_records, k.journal.batch_ms = 10_000, 60_000.0
    assert enter(k, size="0.010", order_type="LIMIT", limit_price="59000").accepted
    committed_after_submit = len(_rows(path))
    assert committed_after_submit > 0  # the order's records went to disk before the venue saw it
    coid = k.slot(0).active_entry_order.client_order_id
    k.venue.poll()
    for i in range(5):
        venue.fill(coid, "0.001", "59000")
    for out in k.poll():
        assert out.accepted
    assert len(_rows(path)) == committed_after_submit  # fills wait for the batch
    assert k.journal.last_seq > committed_after_submit
    k.close()
    assert len(_rows(path)) == k.journal.last_seq
    k2 = dita.Kernel.recover(path, venue=venue)
    assert k2.slot(0).size == D("0.005")
    k2.close()


def test_a_rebuilt_kernel_tells_the_venue_what_it_already_applied_of_each_working_order(tmp_path):
    resumed = []

    class Resuming(MockVenue):
        def resume(self, order, applied):
            resumed.append((order.client_order_id, applied))

    path = tmp_path / "run.sqlite"
    venue = Resuming(prices={"BTC-USDT": "60000"}, entry_fill_ratio="0")
    k = dita.Kernel(venue=venue, slots=2, capital=D("1000"), journal=path)
    assert enter(k, size="0.010", order_type="LIMIT", limit_price="59000").accepted
    coid = k.slot(0).active_entry_order.client_order_id
    venue.fill(coid, "0.004", "59000")
    venue.fill(coid, "0.002", "58999.5")
    for out in k.poll():
        assert out.accepted
    want = dita.OrderProgress(D("0.006"), D("0.004") * 59000 + D("0.002") * D("58999.5"), D(0))
    assert k.order_progress(coid) == want
    snap = k.snapshot()
    k.close()

    k2 = dita.Kernel.recover(path, venue=venue)
    assert resumed == [(coid, want)]
    resumed.clear()
    k3 = dita.Kernel.restore(json.loads(json.dumps(snap)), venue=venue)
    assert resumed == [(coid, want)] and k3.order_progress(coid) == want
    k2.close()


def test_every_failed_cancel_is_applied_so_the_slot_can_always_cancel_again():
    class FlakyCancel(MockVenue):
        failures = 2

        def cancel(self, order):
            if self.failures:
                self.failures -= 1
                raise ConnectionError("venue unreachable")
            return super().cancel(order)

    k = dita.Kernel(venue=FlakyCancel(prices={"BTC-USDT": "60000"}, entry_fill_ratio="0"), capital=D("1000"))
    assert enter(k, size="0.010", order_type="LIMIT", limit_price="59000").state == "ENTRY_WORKING"
    for n in (1, 2):
        out = cancel(k, intent=f"c{n}")
        assert out.accepted and out.state == "ENTRY_WORKING", out
        assert out.transitions[-1] == ("ENTRY_CANCEL_PENDING", "CANCEL_REJECT", "ENTRY_WORKING")
    assert cancel(k, intent="c3").state == "IDLE"


def test_a_slot_the_venue_contradicts_after_recovery_is_frozen_reported_and_journaled(tmp_path):
    path = tmp_path / "run.sqlite"
    venue = _venue(entry_fill_ratio="0")
    k = dita.Kernel(venue=venue, slots=2, capital=D("1000"), journal=path)
    assert enter(k, size="0.010", order_type="LIMIT", limit_price="59000").state == "ENTRY_WORKING"
    coid = k.slot(0).active_entry_order.client_order_id
    k.close()

    class Contradicting(MockVenue):
        def query(self, order):  # the exchange now claims more was filled than was ordered
            return [dita.VenueEvent("PARTIALLY_FILLED", "odd-1", order.client_order_id, "V9", D("0.02"), D("59000"))]

    k2 = dita.Kernel.recover(path, venue=Contradicting(prices={"BTC-USDT": "60000"}))
    s = k2.slot(0)
    assert s.fsm_state == "FROZEN" and "OVERFILL" in s.frozen_reason and coid in s.frozen_reason
    assert s.size == 0 and k2.slot(1).fsm_state == "IDLE"  # nothing guessed, the other slot untouched
    assert k2.recovery_report == [{"slot": 0, "client_order_id": coid, "applied": ["OVERFILL"],
                                   "frozen": s.frozen_reason, "state": "FROZEN"}]
    assert k2.process_intent(dita.KernelIntent("EXIT", 0, "x9")).diagnostic_code == "SLOT_FROZEN"
    # Its entry order still works at the venue: a frozen slot still sends its cancel.
    sent = len(k2.venue.received)
    out = k2.process_intent(dita.KernelIntent("CANCEL", 0, "c9"))
    assert (out.accepted, out.state) == (True, "FROZEN")
    assert [(r["action"], r["client_order_id"]) for r in k2.venue.received[sent:]] == [("cancel", coid)]
    snap = k2.snapshot()
    k2.close()
    # The freeze is in the journal: an offline replay rebuilds it.
    from dita.cli_journal import OfflineVenue
    k3 = dita.Kernel.recover(path, venue=OfflineVenue(), read_only=True)
    assert k3.snapshot() == snap
    k3.close()


# ------------------------------------------------------------- what the journal can record


def test_an_intent_carrying_data_json_cannot_hold_is_refused_when_built():
    """Metadata and timestamps are journaled with the intent and kept in snapshots (JSON)."""
    with pytest.raises(dita.InvalidInputError, match=r"metadata must be JSON data .*object value <object object"):
        dita.KernelIntent("ENTER", 0, "i1", trade_id="t1", asset="BTC-USDT", side="LONG", target_size="0.01",
                          metadata={"strategy": object()})
    with pytest.raises(dita.InvalidInputError, match=r"timestamp must be JSON data .*set value"):
        dita.KernelIntent("CANCEL", 0, "c1", timestamp={1, 2})


def test_decimals_and_dates_in_metadata_survive_a_snapshot_and_a_replay_alike(tmp_path):
    import datetime
    path = tmp_path / "run.sqlite"
    k = dita.Kernel(venue=_venue(), capital=D("1000"), journal=path)
    at = datetime.datetime(2026, 11, 25, 9, 30, tzinfo=datetime.timezone.utc)
    out = k.process_intent(dita.KernelIntent("ENTER", 0, "i1", trade_id="t1", asset="BTC-USDT", side="LONG",
                                             target_size="0.01", metadata={"edge": D("0.25"), "at": at},
                                             timestamp=at))
    assert out.state == "POSITION_OPEN"
    snap = k.snapshot()
    json.dumps(snap)  # JSON, as promised: the Decimal and the datetime are text in it
    assert snap["orders"]["i1"]["metadata"] == {"edge": "0.25", "at": "2026-11-25T09:30:00+00:00"}
    k.close()
    again = dita.Kernel.recover(path, venue=_venue(), sync=False)
    assert again.snapshot() == snap


class OddTimestamps(MockVenue):
    """Answers a submit with events whose timestamp is an object no journal can write."""

    def submit(self, order):
        events = super().submit(order)
        for e in events:
            e.timestamp = object()
        return events


def test_an_event_the_journal_cannot_record_is_refused_before_it_is_applied(tmp_path):
    path = tmp_path / "run.sqlite"
    k = dita.Kernel(venue=_venue(), capital=D("1000"), journal=path)
    enter(k, size="0.010", order_type="LIMIT", limit_price="59000")
    coid, before, seq = k.slot(0).entry_client_order_id, k.snapshot(), k.journal.last_seq
    fill = dita.VenueEvent("PARTIALLY_FILLED", "f1", coid, "M1", D("0.004"), D("59000"), timestamp=object())
    with pytest.raises(dita.InvalidInputError, match=r"venue event 'f1' cannot be journaled: object value"):
        k.on_venue_event(fill)
    assert (k.snapshot(), k.journal.last_seq) == (before, seq), "nothing applied, nothing written"
    fill.timestamp = 1764063000123  # epoch milliseconds, as exchanges send them
    assert k.on_venue_event(fill).state == "ENTRY_WORKING" and k.slot(0).size == D("0.004")
    k.close()
    assert dita.Kernel.recover(path, venue=_venue(), sync=False).snapshot() == k.snapshot()


def test_a_venue_answer_the_journal_cannot_record_is_refused_in_the_outcome(tmp_path):
    path = tmp_path / "run.sqlite"
    k = dita.Kernel(venue=OddTimestamps(prices={"BTC-USDT": "60000"}), capital=D("1000"), journal=path)
    out = enter(k, size="0.010")
    assert (out.accepted, out.state) == (True, "ORDER_REQUESTED")
    assert [(e.kind, code) for e, code, _ in out.refused_events] == [("ORDER_ACK", "INVALID_EVENT"),
                                                                      ("FULL_FILL", "INVALID_EVENT")]
    assert out.refused_events[0][2].startswith("cannot be journaled: object value")
    assert k.slot(0).size == 0
    k.close()
    again = dita.Kernel.recover(path, venue=OddTimestamps(prices={"BTC-USDT": "60000"}), sync=False)
    assert again.snapshot() == k.snapshot()


def test_a_record_that_cannot_be_written_takes_no_sequence_number(tmp_path):
    from dita.journal import Journal
    j = Journal.create(tmp_path / "j.sqlite", {})
    first = j.append("note", None, {"a": 1})
    with pytest.raises(TypeError, match="cannot be journaled"):
        j.append("note", None, {"b": object()})
    assert j.append("note", None, {"c": 2}) == first + 1
    j.close()


# ------------------------------------------------------------------- one writer per journal


def test_a_journal_has_one_writer_at_a_time_and_readers_may_look(tmp_path):
    import subprocess
    import sys

    from dita.journal import Journal
    path = tmp_path / "run.sqlite"
    k = dita.Kernel(venue=_venue(), capital=D("1000"), journal=path)
    assert enter(k, size="0.010").state == "POSITION_OPEN"
    with pytest.raises(dita.JournalError, match="is being written by another kernel .* close that kernel first"):
        dita.Kernel.recover(path, venue=_venue())
    # Another process cannot either (the lock is the system's, not this process's).
    probe = subprocess.run([sys.executable, "-c", "import sys, dita; dita.Kernel.recover(sys.argv[1], venue='mock')",
                            str(path)], capture_output=True, text=True, cwd=tmp_path)  # not the source folder
    assert probe.returncode != 0 and "is being written by another kernel" in probe.stderr
    # Reading while it is written is fine (dita journal show, a monitor), and so is an
    # audit that rebuilds the kernel without taking the journal over.
    with Journal.open(path) as reader:
        assert [r.kind for r in reader.records()][:1] == ["intent"]
    audit = dita.Kernel.recover(path, venue=_venue(), sync=False, read_only=True)
    assert audit.journal is None and audit.snapshot()["slots"] == k.snapshot()["slots"]
    with pytest.raises(dita.InvalidInputError, match="read_only recovery takes no sync"):
        dita.Kernel.recover(path, venue=_venue(), read_only=True, sync=True)
    # An audit changes nothing: what it did would be journaled nowhere.
    audit = dita.Kernel.recover(path, venue=_venue(), read_only=True)
    with pytest.raises(dita.DitaError, match="recovered read_only"):
        enter(audit, slot=0, intent="e9", trade="t9")
    with pytest.raises(dita.DitaError, match="recovered read_only"):   # events too, native path included
        audit.on_venue_event(dita.VenueEvent("FULL_FILL", "f9", "e1", "M1", "0.010", "60000"))
    assert audit.venue.received == [] and audit.snapshot()["slots"] == k.snapshot()["slots"]
    before = k.snapshot()
    k.close()
    again = dita.Kernel.recover(path, venue=_venue())
    assert again.snapshot()["slots"] == before["slots"]
    again.close()


def test_a_refused_second_writer_leaves_the_live_writers_journal_whole(tmp_path):
    """The writer lock lives beside the journal: a refused writer that locked and closed the
    database file itself would drop SQLite's own locks of the live writer (POSIX drops every
    lock of a process on a file when any descriptor of it closes), and a reader in another
    process would then checkpoint and delete the write-ahead log under it: the records the
    live writer committed after that reached no file."""
    import subprocess
    import sys

    path = tmp_path / "run.sqlite"
    k = dita.Kernel(venue=_venue(), slots=3, capital=D("1000"), journal=path)
    assert enter(k, slot=0, intent="e0", trade="t0").state == "POSITION_OPEN"
    for second in (lambda: dita.Kernel(venue=_venue(), slots=3, journal=path),
                   lambda: dita.Kernel.recover(path, venue=_venue())):
        with pytest.raises(dita.JournalError, match="is being written by another kernel"):
            second()
    count = "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT COUNT(*) FROM records').fetchone()[0])"
    reader = subprocess.run([sys.executable, "-c", count, str(path)], capture_output=True, text=True, cwd=tmp_path)
    assert reader.returncode == 0, reader.stderr
    assert enter(k, slot=1, intent="e1", trade="t1").state == "POSITION_OPEN"
    assert enter(k, slot=2, intent="e2", trade="t2").state == "POSITION_OPEN"
    # Every record the live writer committed is in the file for anyone who opens it now.
    again = subprocess.run([sys.executable, "-c", count, str(path)], capture_output=True, text=True, cwd=tmp_path)
    assert int(again.stdout) == k.journal.last_seq
    assert path.with_name("run.sqlite.lock").exists()   # the lock's own file
    audit = dita.Kernel.recover(path, venue=_venue(), sync=False, read_only=True)
    assert [audit.slot(i).fsm_state for i in range(3)] == ["POSITION_OPEN"] * 3


@pytest.mark.parametrize("edit, error", [
    (lambda d: d["payload"].update(fill_price="61000") if d.get("event") == "FULL_FILL" else None,
     "the journal sent {'effect': 'WRITE_TERMINAL', .*'entry_price': '60000'"),
    (lambda d: d["payload"].update(fee="0.5") if d.get("event") == "FULL_FILL" else None,
     "the journal settled the account at capital"),
    (lambda d: d["args"].update(quantity="0.020") if d.get("effect") == "SUBMIT_ORDER" else None,
     "the journal sent"),
])
def test_a_replay_checks_the_recorded_settlements_and_effects(tmp_path, edit, error):
    """An edited fill, fee or order in the journal rebuilds another account, or sends
    another order, than the original run did: the replay says where, instead of passing."""
    path = tmp_path / "run.sqlite"
    k = dita.Kernel(venue=_venue(fee_rate="0.0004"), capital=D("1000"), journal=path)
    assert enter(k, size="0.010").state == "POSITION_OPEN"
    assert exit_(k).state == "TRADE_TERMINAL_WRITTEN"
    k.close()
    with sqlite3.connect(path) as c:
        for seq, data in c.execute("SELECT seq, data FROM records WHERE kind IN ('apply', 'effect')").fetchall():
            d = json.loads(data)
            if edit(d) is None and json.dumps(d) != data:
                c.execute("UPDATE records SET data=? WHERE seq=?", (json.dumps(d), seq))
    with pytest.raises(dita.JournalError, match=error):
        dita.Kernel.recover(path, venue=_venue(), sync=False, read_only=True)


def test_a_replay_checks_the_starting_capital_against_the_recorded_settlements(tmp_path):
    path = tmp_path / "run.sqlite"
    with dita.Kernel(venue=_venue(fee_rate="0.0004"), capital=D("1000"), journal=path) as k:
        assert enter(k, size="0.010").state == "POSITION_OPEN"
    with sqlite3.connect(path) as c:
        c.execute("UPDATE meta SET value=? WHERE key='starting_capital'", (json.dumps("20000"),))
    with pytest.raises(dita.JournalError, match=r"capital 999.76 \(replay: 19999.76\)"):
        dita.Kernel.recover(path, venue=_venue(), sync=False, read_only=True)


def test_a_damaged_journal_is_a_journal_error_naming_it(tmp_path, capsys):
    path = tmp_path / "run.sqlite"
    with dita.Kernel(venue=_venue(), capital=D("1000"), journal=path) as k:
        for n in range(40):
            assert enter(k, intent=f"e{n}", trade=f"t{n}", size="0.003").accepted
            assert exit_(k, intent=f"x{n}").state == "TRADE_TERMINAL_WRITTEN"
    with sqlite3.connect(path) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = path.stat().st_size
    with open(path, "r+b") as f:   # a bad page in the middle of the records
        f.seek(size // 2)
        f.write(b"\xde\xad\xbe\xef" * 64)
    with pytest.raises(dita.JournalError, match=r"run.sqlite is damaged: reading .*malformed"):
        dita.Kernel.recover(path, venue=_venue(), sync=False, from_checkpoint=False)
    from dita.cli import main
    assert main(["journal", "replay", str(path)]) == 1
    assert "run.sqlite is damaged" in capsys.readouterr().err


class _Crash(BaseException):
    """The process dies: nothing after it runs (not an error the kernel could catch)."""


class DiesBeforeTheCancelLeaves(MockVenue):
    dying = True

    def cancel(self, order):
        if self.dying:
            raise _Crash()
        return super().cancel(order)


@pytest.mark.parametrize("role", ["entry", "exit"])
def test_a_cancel_journaled_but_never_sent_is_sent_again_on_recovery(tmp_path, role):
    """The crash comes after the cancel is on disk and before it leaves: the venue never hears
    of it, the order works on. Recovered, the slot would wait for an answer that cannot come
    and refuse every new CANCEL as pending: an order the trader could not pull."""
    path = tmp_path / "run.sqlite"
    venue = DiesBeforeTheCancelLeaves(prices={"BTC-USDT": "60000"})
    k = dita.Kernel(venue=venue, capital=D("1000"), journal=path)
    if role == "entry":
        assert enter(k, size="0.010", order_type="LIMIT", limit_price="59000").state == "ENTRY_WORKING"
    else:
        assert enter(k, size="0.010").state == "POSITION_OPEN"
        assert exit_(k, order_type="LIMIT", limit_price="61000").state == "EXIT_WORKING"
    coid = k.slot(0).record[f"{role}_client_order_id"]
    with pytest.raises(_Crash):
        cancel(k)
    k.journal.close()   # the process is gone: its lock with it
    assert venue.orders[coid].status == "NEW"   # the venue never heard of the cancel
    venue.dying = False
    again = dita.Kernel.recover(path, venue=venue)
    sent = venue.received[-1]
    assert (sent["action"], sent["client_order_id"], sent["asset"]) == ("cancel", coid, "BTC-USDT")
    assert venue.orders[coid].status == "CANCELED"
    assert again.slot(0).fsm_state == ("IDLE" if role == "entry" else "POSITION_OPEN")
    entry = next(e for e in again.recovery_report if e["client_order_id"] == coid)
    assert entry["cancel_sent_again"] == ["OK"] and entry["state"] == again.slot(0).fsm_state
    live = again.snapshot()
    again.close()
    assert dita.Kernel.recover(path, venue=venue, sync=False).snapshot() == live   # journaled as applied


@pytest.mark.parametrize("journaled", [False, True])
def test_a_closed_kernel_refuses_every_change_before_making_it_and_can_still_be_read(tmp_path, journaled):
    k = dita.Kernel(venue=_venue(entry_fill_ratio="0"), capital=D("1000"),
                    journal=tmp_path / "run.sqlite" if journaled else None)
    assert enter(k, size="0.010", order_type="LIMIT", limit_price="59000").state == "ENTRY_WORKING"
    handler = k.on_venue_event   # as a websocket client holds it (the native dispatcher, unjournaled)
    k.close()
    with pytest.raises(dita.JournalError if journaled else dita.DitaError, match="this kernel was closed"):
        handler(dita.VenueEvent("PARTIALLY_FILLED", "f0", "e1", "M1", "0.004", "59000"))
    before = k.snapshot()   # reading stays possible
    frozen = {"state": "FROZEN", "record": dict(before["slots"][0]["record"], frozen_reason="by hand")}
    error = dita.JournalError if journaled else dita.DitaError
    calls = [lambda: enter(k, intent="e2", trade="t2"), lambda: cancel(k),
             lambda: k.on_venue_event(dita.VenueEvent("PARTIALLY_FILLED", "f1", "e1", "M1", "0.004", "59000")),
             k.poll, k.sync_with_venue, lambda: k.reconcile({0: frozen})]
    if journaled:
        calls += [k.checkpoint, k.rotate_journal]
    for call in calls:
        with pytest.raises(error, match="this kernel was closed"):
            call()
    assert k.snapshot() == before and k.slot(0).fsm_state == "ENTRY_WORKING"
    assert [r["action"] for r in k.venue.received] == ["submit"]


def test_a_closed_kernel_refuses_to_go_on_without_its_journal(tmp_path):
    k = dita.Kernel(venue=_venue(), capital=D("1000"), journal=tmp_path / "run.sqlite")
    k.close()
    with pytest.raises(dita.JournalError, match="this kernel was closed .* Kernel.recover goes on from the journal"):
        enter(k)
    with pytest.raises(dita.JournalError, match="this kernel was closed"):
        k.on_venue_event(dita.VenueEvent("ORDER_ACK", "a1", "e1"))
    assert k.slot(0).fsm_state == "IDLE"


def test_a_journal_reached_through_a_symbolic_link_has_the_same_one_writer(tmp_path):
    path = tmp_path / "run.sqlite"
    k = dita.Kernel(venue=_venue(), capital=D("1000"), journal=path)
    link = tmp_path / "current.sqlite"
    link.symlink_to(path)
    with pytest.raises(dita.JournalError, match="is being written by another kernel"):
        dita.Kernel.recover(link, venue=_venue())
    k.close()
    assert not (tmp_path / "current.sqlite.lock").exists()


def test_sync_with_venue_sends_again_a_cancel_the_journal_holds_but_the_venue_never_got(tmp_path):
    path = tmp_path / "run.sqlite"
    venue = DiesBeforeTheCancelLeaves(prices={"BTC-USDT": "60000"})
    k = dita.Kernel(venue=venue, capital=D("1000"), journal=path)
    assert enter(k, size="0.010", order_type="LIMIT", limit_price="59000").state == "ENTRY_WORKING"
    with pytest.raises(_Crash):
        cancel(k)
    k.journal.close()
    venue.dying = False
    again = dita.Kernel.recover(path, venue=venue, sync=False)
    assert again.slot(0).fsm_state == "ENTRY_CANCEL_PENDING" and venue.orders["e1"].status == "NEW"
    report = again.sync_with_venue()
    assert [e.get("cancel_sent_again") for e in report] == [["OK"]] and again.slot(0).fsm_state == "IDLE"


def test_a_journal_holding_an_intent_todays_checks_refuse_still_replays(tmp_path):
    """History is rebuilt as it happened: an intent accepted when it was sent (here a
    reference_price of 0, which intents now refuse) replays."""
    path = tmp_path / "run.sqlite"
    with dita.Kernel(venue=_venue(), capital=D("1000"), journal=path) as k:
        assert enter(k, size="0.010").state == "POSITION_OPEN"
        live = k.snapshot()
    with sqlite3.connect(path) as c:
        seq, data = c.execute("SELECT seq, data FROM records WHERE kind='intent'").fetchone()
        c.execute("UPDATE records SET data=? WHERE seq=?", (json.dumps({**json.loads(data), "reference_price": "0"}), seq))
    again = dita.Kernel.recover(path, venue=_venue(), sync=False, from_checkpoint=False, read_only=True)
    assert again.snapshot()["slots"] == live["slots"] and again.order("e1").intent.reference_price == 0


@pytest.mark.parametrize("stage", ["file", "tables"])
def test_a_journal_left_unfinished_by_a_kill_during_its_creation_says_so_and_can_be_started_anew(stage, tmp_path):
    """A process killed while Kernel(journal=...) created the file leaves an empty database
    (or its tables without their meta): recovering says there is nothing to recover and what
    to do, and a new kernel takes the path."""
    path = tmp_path / "run.sqlite"
    conn = sqlite3.connect(path)
    if stage == "tables":
        from dita.journal import _SCHEMA   # what creation writes first, before its meta
        conn.executescript(_SCHEMA)
    conn.close()
    with pytest.raises(dita.JournalError, match="was never finished: .* holds nothing to recover; start a new kernel"):
        dita.Kernel.recover(path, venue="mock")
    k = dita.Kernel(venue="mock", journal=path)
    k.close()
    assert dita.Kernel.recover(path, venue="mock").slots == 1


def test_a_journal_written_before_nan_was_refused_still_recovers_and_checkpoints(tmp_path):
    """Older versions let a float NaN into an intent's metadata; such a journal replays, and
    the recovered kernel can snapshot and checkpoint (new input with a NaN is refused)."""
    path = tmp_path / "run.sqlite"
    k = dita.Kernel(venue=MockVenue(prices={"BTC-USDT": "60000"}), capital=D("1000"), journal=path)
    k.process_intent(dita.KernelIntent("ENTER", 0, "e1", trade_id="t1", asset="BTC-USDT", side="LONG",
                                       target_size="0.010", metadata={"signal": 0.5}))
    k.close()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE records SET data = replace(data, '\"signal\":0.5', '\"signal\":NaN') WHERE kind = 'intent'")
    assert conn.execute("SELECT count(*) FROM records WHERE data LIKE '%NaN%'").fetchone()[0] == 1
    conn.close()
    again = dita.Kernel.recover(path, venue=k.venue, sync=False)
    assert again.slot(0).fsm_state == "POSITION_OPEN"
    json.dumps(again.snapshot())      # carried as it was recorded
    again.checkpoint()
    again.close()


def test_recovery_talks_to_the_venue_the_journal_was_written_against(tmp_path):
    """A recovery queries the venue about every order the journal left working: the venue
    given by name by default is the journal's own, and another one is refused, since it
    would report the orders unknown while they still work at the real venue."""
    path = tmp_path / "run.sqlite"
    k = dita.Kernel(venue="paper", slots=1, capital=D("1000"), journal=path)
    entry = enter(k, asset="SOL-USDT", size="1", order_type="LIMIT", limit_price="50")
    assert entry.state == "ENTRY_WORKING", entry
    k.close()

    with pytest.raises(dita.InvalidInputError, match=r"written against venue 'paper', not 'mock'.*venue='paper'"):
        dita.Kernel.recover(path, venue="mock")
    named = MockVenue(prices={"BTC-USDT": "60000"})
    named.name = "mock"  # as the registry names the venues it builds
    with pytest.raises(dita.InvalidInputError, match=r"written against venue 'paper', not 'mock'"):
        dita.Kernel.recover(path, venue=named)
    # Nothing was taken over by the refused recoveries: the journal recovers as before.
    k2 = dita.Kernel.recover(path, sync=False)
    assert k2.venue.name == "paper" and k2.slot(0).fsm_state == "ENTRY_WORKING"
    k2.close()
    # An offline audit asks no venue, so any stand-in will do.
    audit = dita.Kernel.recover(path, venue=MockVenue(prices={"BTC-USDT": "60000"}), read_only=True)
    assert audit.slot(0).fsm_state == "ENTRY_WORKING"


def test_a_journal_of_a_kernel_given_a_venue_object_recovers_by_the_venues_registered_name(tmp_path):
    """A kernel built from a venue object recorded its class name ('MockVenue', 'BingXVenue'),
    which then matched no venue a recovery could build or name: recovery refused it and
    pointed at a name that could never load. The registered name is recorded now, and a
    journal that holds a class name recovers by the name registered for that class."""
    path = tmp_path / "run.sqlite"
    k = dita.Kernel(venue=MockVenue(prices={"BTC-USDT": "60000"}), slots=1, capital=D("1000"), journal=path)
    assert enter(k, size="0.010", order_type="LIMIT", limit_price="59000").state == "ENTRY_WORKING"
    k.close()
    with sqlite3.connect(path) as c:
        assert json.loads(c.execute("SELECT value FROM meta WHERE key='venue'").fetchone()[0]) == "mock"
        c.execute("UPDATE meta SET value=? WHERE key='venue'", (json.dumps("MockVenue"),))   # as journals had it
    for venue in (None, "mock", MockVenue(prices={"BTC-USDT": "60000"})):
        again = dita.Kernel.recover(path, venue=venue, sync=False)
        assert type(again.venue) is MockVenue and again.slot(0).fsm_state == "ENTRY_WORKING"
        again.close()
    with pytest.raises(dita.InvalidInputError, match=r"written against venue 'MockVenue', not 'paper'.*venue='mock'"):
        dita.Kernel.recover(path, venue="paper")
