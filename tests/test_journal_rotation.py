"""Journal rotation: the kernel continues its journal in a new file that opens with its state,
so that no file grows without bound; recovery follows the chain of files, a full replay goes
through all of them, and a rotation that a crash or an error cuts short loses nothing."""

from __future__ import annotations

import json
import logging
import sqlite3
from decimal import Decimal as D

import pytest

import dita
from conftest import assert_account_identity, enter, exit_
from dita.cli import main
from dita.journal import journal_chain
from dita_mock import MockVenue


def _venue():
    return MockVenue(prices={"BTC-USDT": "60000"}, fee_rate="0.0004")


def _rows(path):
    with sqlite3.connect(path) as c:
        return c.execute("SELECT seq, kind, data FROM records ORDER BY seq").fetchall()


def _meta(path):
    with sqlite3.connect(path) as c:
        return {k: json.loads(v) for k, v in c.execute("SELECT key, value FROM meta")}


def _round_trip(k, slot, n):
    assert enter(k, slot=slot, intent=f"re{n}", trade=f"rt{n}", size="0.004").state == "POSITION_OPEN"
    assert exit_(k, slot=slot, intent=f"rx{n}").state == "TRADE_TERMINAL_WRITTEN"


def _mid_trade_kernel(path, **kw):
    """A kernel whose slot 0 has a position with a resting LIMIT exit (and a partial fill
    applied to it), after a closed trade in slot 1."""
    venue = _venue()
    k = dita.Kernel(venue=venue, slots=2, capital=D("1000"), journal=path, **kw)
    _round_trip(k, 1, 1)
    assert enter(k, size="0.010").state == "POSITION_OPEN"
    assert exit_(k, order_type="LIMIT", limit_price="61000").state == "EXIT_WORKING"
    coid = k.slot(0).active_exit_order.client_order_id
    venue.fill(coid, "0.004", "61000")
    assert [o.diagnostic_code for o in k.poll()] == ["OK"]
    return k, venue, coid


def test_rotation_continues_the_journal_in_a_new_file_that_opens_with_the_kernels_state(tmp_path):
    path = tmp_path / "run.sqlite"
    k, venue, exit_coid = _mid_trade_kernel(path)
    applied_fill = next(ev for ev in venue.query(k.order(exit_coid)) if ev.kind == "PARTIALLY_FILLED")
    at_rotation = k.snapshot()

    new_path = k.rotate_journal()
    assert new_path == tmp_path / "run.2.sqlite" and k.journal.path == new_path

    # The old file ends with a checkpoint of the state, the new one opens with the same one,
    # and each names the other by a path relative to their folder.
    old_rows, new_rows = _rows(path), _rows(new_path)
    assert old_rows[-1][1] == "checkpoint" and [r[1] for r in new_rows] == ["checkpoint"]
    assert json.loads(old_rows[-1][2]) == json.loads(new_rows[0][2]) == json.loads(json.dumps(at_rotation))
    assert _meta(path)["continued_in"] == "run.2.sqlite"
    assert _meta(new_path)["continues"] == {"journal": "run.sqlite", "checkpoint": old_rows[-1][0]}
    assert _meta(new_path)["last_checkpoint"] == 1
    for key in ("machine", "slots", "starting_capital", "spec_text", "history_limit"):
        assert _meta(new_path)[key] == _meta(path)[key]

    # The old file is written no more; the rest of the trade goes into the new one.
    venue.set_price("BTC-USDT", "61500")
    assert [o.state for o in k.poll()] == ["TRADE_TERMINAL_WRITTEN"]
    _round_trip(k, 1, 2)
    assert _rows(path) == old_rows and len(_rows(new_path)) > 1
    live = k.snapshot()
    k.close()

    # Recovery from either file continues the latest; from its latest checkpoint or through
    # every record of every file, it arrives at the same kernel.
    for start in (path, new_path):
        for from_checkpoint in (True, False):
            k2 = dita.Kernel.recover(start, venue=venue, sync=False, from_checkpoint=from_checkpoint)
            try:
                assert k2.journal.path == new_path
                assert k2.snapshot() == live
                assert_account_identity(k2)
            finally:
                k2.close()
    # The de-duplication carried across the rotation: a fill applied before it is refused.
    k3 = dita.Kernel.recover(path, venue=venue)
    assert k3.on_venue_event(applied_fill).diagnostic_code == "DUPLICATE_EVENT"
    k3.close()


def test_a_full_replay_checks_that_each_file_opens_with_the_state_of_the_file_before(tmp_path):
    path = tmp_path / "run.sqlite"
    k, _venue_, _ = _mid_trade_kernel(path)
    new_path = k.rotate_journal(tmp_path / "next.sqlite")
    assert new_path.name == "next.sqlite"
    k.close()
    # Tamper with the old file's history: the new file's opening checkpoint no longer
    # follows from it. Recovery from the latest checkpoint never reads the old file.
    seq, _, data = next(r for r in _rows(path) if r[1] == "apply" and json.loads(r[2])["event"] == "FULL_FILL")
    d = json.loads(data)
    d["payload"]["event_id"] += "-changed"   # the account is the same; the de-dup keys are not
    with sqlite3.connect(path) as c:
        c.execute("UPDATE records SET data=? WHERE seq=?", (json.dumps(d), seq))
    with pytest.raises(dita.JournalError, match=r"replay diverged at journal record \d+ \(of run.sqlite\)"):
        dita.Kernel.recover(path, venue=_venue(), sync=False, from_checkpoint=False)
    k2 = dita.Kernel.recover(path, venue=_venue(), sync=False)
    assert k2.journal.path == new_path
    k2.close()
    # The new file alone replays from the checkpoint it opens with.
    k3 = dita.Kernel.recover(new_path, venue=_venue(), sync=False, from_checkpoint=False)
    assert k3.slot(0).fsm_state == "EXIT_WORKING"
    k3.close()


def test_a_full_replay_refuses_a_file_that_does_not_open_with_the_state_the_chain_arrived_at(tmp_path):
    path = tmp_path / "run.sqlite"
    k, _venue_, _ = _mid_trade_kernel(path)
    new_path = k.rotate_journal()
    k.close()
    # The new file's opening checkpoint says the closed trade's entry price was another one:
    # nothing in its own invariants can tell, but it does not follow from the old file.
    seq, _, data = _rows(new_path)[0]
    d = json.loads(data)
    d["trades"][0]["entry_price"] = "59999"
    with sqlite3.connect(new_path) as c:
        c.execute("UPDATE records SET data=? WHERE seq=?", (json.dumps(d), seq))
    with pytest.raises(dita.JournalError, match=r"replay diverged at journal record 1 \(of run.2.sqlite\)"):
        dita.Kernel.recover(path, venue=_venue(), sync=False, from_checkpoint=False)
    k2 = dita.Kernel.recover(path, venue=_venue(), sync=False)  # from the checkpoint: nothing to compare with
    assert k2.trades[0]["entry_price"] == D("59999")
    k2.close()


def test_rotate_every_keeps_every_file_bounded_and_the_chain_recovers(tmp_path, capsys):
    path = tmp_path / "run.sqlite"
    venue = _venue()
    k = dita.Kernel(venue=venue, slots=2, capital=D("1000"), journal=path, rotate_every=60, checkpoint_every=25)
    for n in range(20):
        _round_trip(k, n % 2, n)
    live = k.snapshot()
    latest = k.journal.path
    k.close()
    files, stale = journal_chain(path)
    assert not stale and files[-1] == latest
    assert [f.name for f in files] == ["run.sqlite"] + [f"run.{i}.sqlite" for i in range(2, len(files) + 1)]
    assert len(files) >= 4
    # A rotation happens at the end of the first call after which the file holds 60 records,
    # and one call of this session journals fewer than 30: no file reaches 90.
    per_call = 30
    for f in files:
        assert len(_rows(f)) < 60 + per_call, f
    for f in files[1:]:
        assert _rows(f)[0][1] == "checkpoint"
    for from_checkpoint in (True, False):
        k2 = dita.Kernel.recover(path, venue=venue, sync=False, from_checkpoint=from_checkpoint, rotate_every=60)
        assert k2.snapshot() == live and k2.journal.path == latest
        k2.close()

    assert main(["journal", "replay", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{len(files)} files (run.sqlite ... {latest.name})" in out and "every verdict" in out
    assert main(["journal", "show", str(files[1])]) == 0
    out = capsys.readouterr().out
    assert "continues run.sqlite" in out and "continued in run.3.sqlite" in out


def test_a_rotation_a_crash_cut_short_leaves_the_complete_old_file_to_recover_from(tmp_path):
    path = tmp_path / "run.sqlite"
    k, venue, _ = _mid_trade_kernel(path)
    at_rotation = k.snapshot()
    new_path = k.rotate_journal()
    k.close()
    # As if the process died after the old file named the new one but before the new one's
    # checkpoint was committed: the new file holds no record.
    with sqlite3.connect(new_path) as c:
        c.execute("DELETE FROM records")
        c.execute("DELETE FROM meta WHERE key='last_checkpoint'")
    assert journal_chain(path) == ([path], True)
    k2 = dita.Kernel.recover(path, venue=venue, sync=False)
    assert k2.journal.path == path and k2.snapshot() == at_rotation
    # Continuing the old file drops the stale link with its next write.
    _round_trip(k2, 1, 7)
    assert journal_chain(path) == ([path], False)
    k2.close()


def test_a_rotation_that_fails_leaves_the_kernel_on_its_journal(tmp_path, monkeypatch):
    path = tmp_path / "run.sqlite"
    k, venue, _ = _mid_trade_kernel(path)
    before = k.snapshot()
    rows = _rows(path)

    # Paths that cannot be used are refused before the journal in use is touched.
    with pytest.raises(dita.JournalError, match="is the journal in use"):
        k.rotate_journal(path)
    other = tmp_path / "other.sqlite"
    with dita.Kernel(venue=_venue(), journal=other) as k_other:
        _round_trip(k_other, 0, 1)
    with pytest.raises(dita.JournalError, match="already holds records"):
        k.rotate_journal(other)
    assert _rows(path) == rows and k.journal.path == path and "continued_in" not in _meta(path)

    # The new file's checkpoint cannot be written: the old file stays in use and names no
    # next file once its next write is committed.
    real = dita.Journal.append_checkpoint

    def failing(self, snapshot):
        if self.path.name in ("run.2.sqlite", "mine.sqlite"):
            raise dita.JournalError("disk full")
        return real(self, snapshot)

    monkeypatch.setattr(dita.Journal, "append_checkpoint", failing)
    with pytest.raises(dita.JournalError, match="disk full"):
        k.rotate_journal()
    assert not (tmp_path / "run.2.sqlite").exists()  # the file it started, which nothing names
    # A file that was there before (empty, so it could be used) is the owner's: it stays.
    mine = tmp_path / "mine.sqlite"
    mine.touch()
    with pytest.raises(dita.JournalError, match="disk full"):
        k.rotate_journal(mine)
    assert mine.exists()
    monkeypatch.setattr(dita.Journal, "append_checkpoint", real)
    assert k.journal.path == path and k.snapshot() == before
    _round_trip(k, 1, 5)
    assert _meta(path).get("continued_in") is None
    live = k.snapshot()
    k.close()
    k2 = dita.Kernel.recover(path, venue=venue, sync=False, from_checkpoint=False)
    assert k2.journal.path == path and k2.snapshot() == live
    k2.close()


def test_an_automatic_rotation_that_fails_leaves_the_calls_outcome_and_is_tried_again(tmp_path, monkeypatch, caplog):
    """The call's work is applied and journaled before its upkeep: a rotation failing then
    must not turn a submitted order into an exception the strategy would read as a refusal."""
    path = tmp_path / "run.sqlite"
    venue = _venue()
    k = dita.Kernel(venue=venue, slots=2, capital=D("1000"), journal=path, rotate_every=3)
    real = dita.Journal.append_checkpoint

    def failing(self, snapshot):
        if self.path != path:  # the new file's opening checkpoint
            raise dita.JournalError("disk full")
        return real(self, snapshot)

    monkeypatch.setattr(dita.Journal, "append_checkpoint", failing)
    with caplog.at_level(logging.ERROR, logger="dita"):
        out = enter(k, size="0.004")
    assert out.accepted and out.state == "POSITION_OPEN"
    assert [t[1] for t in out.transitions] == ["ENTER", "ORDER_ACK", "FULL_FILL"]
    assert [(r["action"], r["client_order_id"], r["quantity"]) for r in venue.received] == [
        ("submit", k.slot(0).entry_client_order_id, "0.004")]
    assert isinstance(k.upkeep_error, dita.JournalError) and "disk full" in str(k.upkeep_error)
    assert "the automatic checkpoint or rotation failed" in caplog.text and "disk full" in caplog.text
    assert k.journal.path == path and not list(tmp_path.glob("run.2*"))

    # Tried again after the next call, which keeps its outcome too; no trail of files.
    out = exit_(k)
    assert out.accepted and out.state == "TRADE_TERMINAL_WRITTEN"
    assert isinstance(k.upkeep_error, dita.JournalError)
    assert k.journal.path == path and not list(tmp_path.glob("run.2*"))

    # Once the disk has room, the next call rotates and the error is cleared.
    monkeypatch.setattr(dita.Journal, "append_checkpoint", real)
    assert enter(k, slot=1, intent="e2", trade="t2", size="0.004").state == "POSITION_OPEN"
    assert k.upkeep_error is None and k.journal.path == tmp_path / "run.2.sqlite"
    live = k.snapshot()
    k.close()
    k2 = dita.Kernel.recover(path, venue=venue, sync=False)
    assert k2.journal.path == tmp_path / "run.2.sqlite" and k2.snapshot() == live
    assert_account_identity(k2)
    k2.close()


@pytest.mark.parametrize("from_checkpoint", [True, False])
def test_a_recovery_racing_the_live_writers_rotation_never_becomes_a_second_writer(tmp_path, monkeypatch,
                                                                                  from_checkpoint):
    """The live writer rotates between the moment a recovery has read the chain and the
    moment it locks the file the chain ended in: that file is free by then, but the journal
    lives on in the next one, still written. Holding the old end would make two writers of
    one account and fork the chain."""
    import dita.journal as journal_module
    import dita.kernel

    path = tmp_path / "run.sqlite"
    live, venue, _ = _mid_trade_kernel(path)
    live.rotate_journal()
    real = journal_module.journal_chain
    rotated = []

    def chain_then_rotate(start):
        chain = real(start)
        if not rotated:   # the live kernel rotates right after the recovery read the chain
            rotated.append(live.rotate_journal())
        return chain

    monkeypatch.setattr(journal_module, "journal_chain", chain_then_rotate)
    monkeypatch.setattr(dita.kernel, "journal_chain", chain_then_rotate)
    with pytest.raises(dita.JournalError, match="is being written by another kernel"):
        dita.Kernel.recover(path, venue=_venue(), sync=False, from_checkpoint=from_checkpoint)
    assert rotated == [tmp_path / "run.3.sqlite"] and live.journal.path == rotated[0]
    _round_trip(live, 1, 7)                       # the live kernel goes on, alone
    state = live.snapshot()
    live.close()
    monkeypatch.setattr(journal_module, "journal_chain", real)
    monkeypatch.setattr(dita.kernel, "journal_chain", real)
    again = dita.Kernel.recover(path, venue=venue, sync=False, from_checkpoint=False)
    assert again.journal.path == rotated[0] and again.snapshot() == state
    again.close()


def test_rotation_options_are_checked(tmp_path):
    for bad in (0, -1, True, 1.5, "10"):
        with pytest.raises(dita.InvalidInputError, match="rotate_every must be a positive int"):
            dita.Kernel(venue=_venue(), journal=tmp_path / "x.sqlite", rotate_every=bad)
    with pytest.raises(dita.InvalidInputError, match="rotate_every needs a journal"):
        dita.Kernel(venue=_venue(), rotate_every=100)
    assert not (tmp_path / "x.sqlite").exists()
    k = dita.Kernel(venue=_venue())
    with pytest.raises(dita.JournalError, match="keeps none"):
        k.rotate_journal()


def test_rotated_files_take_the_next_free_name_of_the_chain(tmp_path):
    k = dita.Kernel(venue=_venue(), journal=tmp_path / "session")
    (tmp_path / "session.2").write_text("someone else's file")  # never touched
    assert k.rotate_journal() == tmp_path / "session.3"
    assert k.rotate_journal() == tmp_path / "session.4"
    assert (tmp_path / "session.2").read_text() == "someone else's file"
    k.close()
    assert journal_chain(tmp_path / "session")[0] == [tmp_path / "session", tmp_path / "session.3",
                                                      tmp_path / "session.4"]
