"""``dita demo``: the README's main job, on every installed venue that ships a harness."""

from __future__ import annotations

import pytest

import dita
from dita.cli import main
from dita.cli_journal import OfflineVenue
from dita.plugins import default_registry


@pytest.mark.parametrize("harness_name", sorted(default_registry().harness_entries()))
def test_the_demo_runs_the_whole_session_and_leaves_a_journal_that_replays(harness_name, tmp_path, capsys):
    path = tmp_path / "demo.sqlite"
    assert main(["demo", "--venue", harness_name, "--journal", str(path)]) == 0
    out = capsys.readouterr().out
    assert "ENTRY_WORKING          --PARTIALLY_FILLED--> ENTRY_WORKING" in out       # a partial entry
    assert "ENTRY_CANCEL_PENDING   --CANCEL_ACK--> POSITION_OPEN" in out            # the rest cancelled
    assert "refused SLOT_BUSY" in out                                             # a refused intent
    assert "EXIT_WORKING           --PARTIALLY_FILLED--> EXIT_WORKING" in out       # a partial exit leg
    assert "refused DUPLICATE_EVENT" in out                                       # a duplicate ignored
    assert "CLOSED                 --TERMINAL_WRITTEN--> TRADE_TERMINAL_WRITTEN" in out
    assert f"journal: {path}" in out and "same kernel" in out
    k = dita.Kernel.recover(path, venue=OfflineVenue(), read_only=True)
    a = k.account
    assert k.slot(0).fsm_state == "TRADE_TERMINAL_WRITTEN" and len(k.trades) == 1
    assert a.capital == a.starting_capital + a.realized_pnl and a.fees_paid > 0
    k.close()


def test_an_unknown_demo_venue_is_one_line(capsys):
    assert main(["demo", "--venue", "nope"]) == 1
    assert capsys.readouterr().err.startswith("dita: no venue 'nope' with a harness is installed")
