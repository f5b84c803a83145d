"""``dita journal show`` / ``dita journal replay`` on a real journal."""

from __future__ import annotations

from decimal import Decimal as D

import dita
from conftest import cancel, enter, exit_
from dita.cli import main
from dita_mock import MockVenue


def _journal(tmp_path):
    path = tmp_path / "run.sqlite"
    k = dita.Kernel(venue=MockVenue(prices={"BTC-USDT": "60000"}, entry_fill_ratio="0.5", fee_rate="0.001"),
                    slots=2, capital=D("1000"), journal=path)
    assert enter(k, size="0.010", order_type="LIMIT", limit_price="60000").state == "ENTRY_WORKING"
    assert cancel(k).state == "POSITION_OPEN"
    k.checkpoint()
    assert exit_(k).state == "TRADE_TERMINAL_WRITTEN"
    assert enter(k, slot=1, intent="e2", trade="t2", size="0.002").state == "ENTRY_WORKING"  # half fills
    account = k.account
    k.close()
    return path, account


def test_journal_show_prints_every_record_and_filters_by_trade(tmp_path, capsys):
    path, _ = _journal(tmp_path)
    assert main(["journal", "show", str(path)]) == 0
    out = capsys.readouterr().out
    assert "SUBMIT_ORDER" in out and "CANCEL_ORDER" in out and "WRITE_TERMINAL" in out
    assert "IDLE --ENTER--> ORDER_REQUESTED" in out
    assert "checkpoint" in out and "state of 2 slot(s), capital 999.7, 1 order(s), 0 trade(s)" in out
    assert main(["journal", "show", str(path), "--trade", "t2"]) == 0
    only_t2 = capsys.readouterr().out
    assert "e2" in only_t2 and "CANCEL_ORDER" not in only_t2
    assert main(["journal", "show", str(path), "--trade", "nope"]) == 1


def test_journal_replay_verifies_and_prints_the_final_account(tmp_path, capsys):
    path, account = _journal(tmp_path)
    assert main(["journal", "replay", str(path)]) == 0
    out = capsys.readouterr().out
    assert "every verdict, transition and checkpoint matched" in out
    assert f"capital {account.capital}" in out and "TRADE_TERMINAL_WRITTEN" in out and "ENTRY_WORKING" in out


def test_a_missing_journal_is_one_line_not_a_traceback(tmp_path, capsys):
    assert main(["journal", "show", str(tmp_path / "missing.sqlite")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("dita: journal not found:") and "Traceback" not in err


def test_show_trade_prints_every_record_of_the_trade_past_a_refused_enter(tmp_path, capsys):
    # A refused ENTER on the busy slot (t2) must not take the slot's later records from t1:
    # t1's exit, its settlement and its terminal record are t1's.
    path = tmp_path / "run.sqlite"
    k = dita.Kernel(venue=MockVenue(prices={"BTC-USDT": "60000"}, fee_rate="0.001"), slots=1, capital=D("1000"),
                    journal=path)
    assert enter(k).state == "POSITION_OPEN"
    assert enter(k, intent="e2", trade="t2").diagnostic_code == "SLOT_BUSY"
    assert enter(k, intent="e1", trade="t3").diagnostic_code == "DUPLICATE_EVENT"   # refused before its verdict
    assert exit_(k).state == "TRADE_TERMINAL_WRITTEN"
    assert enter(k, intent="e4", trade="t4").state == "POSITION_OPEN"
    k.close()
    with dita.journal.Journal.open(path) as j:
        records = list(j.records())
    assert main(["journal", "show", str(path), "--trade", "t1"]) == 0
    t1 = capsys.readouterr().out
    for text in ("EXIT x1", "SUBMIT_ORDER client_order_id=x1", "FULL_FILL x1:2", "WRITE_TERMINAL",
                 "CLOSED --TERMINAL_WRITTEN--> TRADE_TERMINAL_WRITTEN"):
        assert text in t1, f"--trade t1 left out {text!r}:\n{t1}"
    assert "e2" not in t1 and "e4" not in t1
    settlements = sum(r.kind == "settlement" for r in records[:-3])
    assert f"{settlements} settlement" in t1
    assert main(["journal", "show", str(path), "--trade", "t2"]) == 0
    t2 = capsys.readouterr().out
    assert "ENTER e2" in t2 and "REFUSED SLOT_BUSY" in t2 and "1 apply, 1 intent" in t2
    assert main(["journal", "show", str(path), "--trade", "t4"]) == 0
    assert "x1" not in capsys.readouterr().out


def test_show_trade_on_a_continued_file_knows_the_trades_from_its_opening_checkpoint(tmp_path, capsys):
    path = tmp_path / "run.sqlite"
    k = dita.Kernel(venue=MockVenue(prices={"BTC-USDT": "60000"}), slots=1, capital=D("1000"), journal=path)
    assert enter(k).state == "POSITION_OPEN"
    second = k.rotate_journal()
    assert exit_(k).state == "TRADE_TERMINAL_WRITTEN"
    k.close()
    assert main(["journal", "show", str(second), "--trade", "t1"]) == 0
    assert "WRITE_TERMINAL" in capsys.readouterr().out


def test_replay_counts_every_closed_trade_whatever_the_history_limit(tmp_path, capsys):
    path = tmp_path / "run.sqlite"
    k = dita.Kernel(venue=MockVenue(prices={"BTC-USDT": "60000"}), slots=2, capital=D("1000"), journal=path,
                    history_limit=2)
    for t in range(6):
        assert enter(k, intent=f"e{t}", trade=f"t{t}").state == "POSITION_OPEN"
        assert exit_(k, intent=f"x{t}").state == "TRADE_TERMINAL_WRITTEN"
    assert len(k.trades) == 2   # the kernel remembers two; the journal has all six
    k.close()
    assert main(["journal", "replay", str(path)]) == 0
    assert "; 6 trade(s) closed\n" in capsys.readouterr().out
