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
