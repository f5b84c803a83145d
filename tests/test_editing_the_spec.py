"""docs/editing-the-spec.md, followed: a copy of kernel.yaml gains a state (ENTRY_REJECTED)
and the entry's REJECT leads there; the copy passes `dita spec check`, `dita spec graph`
draws it, a kernel built with `spec=` runs the new behaviour with the engine as installed
(nothing is rebuilt), and the conformance suite covers the new transitions."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import dita
from conftest import run_dita
from dita.cli import main
from dita_mock import MockVenue

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "editing-the-spec.md"

TEMPLATE = '''  entry_rejected: &entry_rejected
    - *stale_entry_end
    - guard: "entry_filled > 0"
      target: POSITION_OPEN
      assign:
        entry_live: "false"
        last_order_end: "event.reason"
    - target: ENTRY_REJECTED
      assign:
        entry_live: "false"
        last_order_end: "event.reason"
  entry_rejected_before_fills: &entry_rejected_before_fills
    - *stale_entry_end
    - target: ENTRY_REJECTED
      assign:
        entry_live: "false"
        last_order_end: "event.reason"
'''

STATE = '''  ENTRY_REJECTED:
    description: The venue rejected the entry before anything filled. The slot is free.
    invariants:
      - {check: "size == 0 and not entry_live and not exit_live", message: "a rejected entry holds nothing"}
    on:
      ENTER: *enter
      PARTIALLY_FILLED: *idle_fills
      FULL_FILL: *idle_fills
    refuse:
      NO_WORKING_ORDER: [CANCEL]
      NO_POSITION: [EXIT]
      STALE_EVENT: [ORDER_ACK, CANCEL_ACK, CANCEL_REJECT, REJECT, EXPIRED]
      INVALID_EVENT: [TERMINAL_WRITTEN]

'''


def edited_spec(tmp_path) -> Path:
    """The edit of docs/editing-the-spec.md, applied to a copy of the packaged spec."""
    text = dita.packaged_spec_path().read_text()
    assert text.count("  exit_ended: &exit_ended\n") == 1 and text.count("      REJECT: *entry_ended\n") == 2
    assert text.count("      REJECT: *entry_ended_before_fills\n") == 1
    text = text.replace("  exit_ended: &exit_ended\n", TEMPLATE + "  exit_ended: &exit_ended\n")
    text = text.replace("      REJECT: *entry_ended\n", "      REJECT: *entry_rejected\n")
    text = text.replace("      REJECT: *entry_ended_before_fills\n", "      REJECT: *entry_rejected_before_fills\n")
    text = text.replace("  FROZEN:\n", STATE + "  FROZEN:\n")
    path = tmp_path / "kernel.yaml"
    path.write_text(text)
    return path


def test_the_doc_shows_the_edit_this_test_makes():
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S)
    assert TEMPLATE in blocks and STATE.rstrip("\n") + "\n" in blocks
    assert "      REJECT: *entry_rejected\n" in blocks and "      REJECT: *entry_rejected_before_fills\n" in blocks


def test_the_edited_spec_passes_the_checks_and_draws_the_new_state(tmp_path, capsys):
    spec = edited_spec(tmp_path)
    assert main(["spec", "check", str(spec)]) == 0
    assert re.fullmatch(rf"{re.escape(str(spec))}: OK \(11 states, 11 events, \d+ transitions\)\n",
                        capsys.readouterr().out)
    assert main(["spec", "graph", str(spec)]) == 0
    graph = capsys.readouterr().out
    for edge in ("ORDER_REQUESTED --> ENTRY_REJECTED : REJECT", "ENTRY_WORKING --> ENTRY_REJECTED : REJECT",
                 "ENTRY_REJECTED --> ORDER_REQUESTED : ENTER", "ORDER_REQUESTED --> IDLE : CANCEL_ACK, EXPIRED"):
        assert f"    {edge}\n" in graph


def test_a_kernel_runs_the_new_transition_without_rebuilding_the_engine(tmp_path):
    spec = edited_spec(tmp_path)

    def rejected_entry(spec_path):
        venue = MockVenue(prices={"BTC-USDT": "60000"})
        k = dita.Kernel(venue=venue, capital=Decimal("1000"), spec=spec_path)
        venue.script_reject("post-only would cross")
        out = k.process_intent(dita.KernelIntent("ENTER", 0, "e1", trade_id="t1", asset="BTC-USDT", side="LONG",
                                                 target_size="0.01"))
        return k, out

    k, out = rejected_entry(spec)
    assert out.transitions == (("IDLE", "ENTER", "ORDER_REQUESTED"), ("ORDER_REQUESTED", "REJECT", "ENTRY_REJECTED"))
    assert (out.state, k.slot(0).last_order_end) == ("ENTRY_REJECTED", "post-only would cross")
    again = k.process_intent(dita.KernelIntent("ENTER", 0, "e2", trade_id="t2", asset="BTC-USDT", side="LONG",
                                               target_size="0.01"))
    assert again.transitions[0] == ("ENTRY_REJECTED", "ENTER", "ORDER_REQUESTED")
    assert (again.state, k.slot(0).size) == ("POSITION_OPEN", Decimal("0.010"))
    # the packaged spec, same calls: back to IDLE
    _, before = rejected_entry(None)
    assert before.transitions[-1] == ("ORDER_REQUESTED", "REJECT", "IDLE")


def test_the_conformance_suite_covers_the_new_transitions(tmp_path):
    spec = edited_spec(tmp_path)
    run = run_dita("conformance", "--venue", "mock", "--spec", spec, "--", "-vv", "-k", "test_transition",
                   cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:]
    passed = set(re.findall(r"::test_transition\[mock-(\S+)\] PASSED", run.stdout))
    for t in ("ORDER_REQUESTED.REJECT[1]", "ENTRY_WORKING.REJECT[2]", "ENTRY_CANCEL_PENDING.REJECT[2]",
              "ENTRY_REJECTED.ENTER[11]", "ENTRY_REJECTED.PARTIALLY_FILLED[0]"):
        assert t in passed, t
    assert re.search(r"transitions covered: (\d+)/(\d+)", run.stdout)


def test_forgetting_enter_in_the_new_state_is_reported_as_the_doc_says(tmp_path, capsys):
    spec = edited_spec(tmp_path)
    spec.write_text(spec.read_text().replace(STATE, STATE.replace("      ENTER: *enter\n", "")))
    assert main(["spec", "check", str(spec)]) == 1
    out = capsys.readouterr().out
    shown = re.search(r"```\n1 problem in my-kernel.yaml\n(.*?)```", DOC.read_text(), re.S)[1]
    # (the line number moves whenever kernel.yaml grows; the rest is exactly as shown)
    assert re.sub(r"line \d+", "line N", out) == re.sub(r"line \d+", "line N", f"1 problem in {spec}\n" + shown)
