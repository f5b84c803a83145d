"""The conformance suite, run on every installed venue (the mock and the paper venue
here), and tested itself: the planner covers every transition of the spec or says why
not, the probe names the candidate the engine chose, a venue that answers differently
fails at the step that differs, and a spec that loses its entry cancel fails the suite."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal

import pytest

import dita
from conftest import make_kernel, run_dita
from dita.conformance import driver
from dita.conformance.driver import Case, ConformanceFailure, Probe, Transition, plan_for, replay
from dita_mock import MockHarness
from test_spec_tools import without_entry_cancel

# The whole suite, parametrised over every installed venue with a harness: the one line a
# plugin repo needs.
from dita.conformance.suite import *  # noqa: E402,F401,F403


def test_every_transition_of_the_spec_is_planned_or_explained():
    plan = plan_for(None)
    desc = dita.load_machine().describe()
    assert plan.transitions == driver.transitions_of(desc)
    assert set(plan.cases) | set(plan.unreachable) == set(plan.transitions)
    assert not set(plan.cases) & set(plan.unreachable)
    for t, case in plan.cases.items():
        assert case.moves and len(case.moves) == len(case.expected)
        assert (t.state, t.event, t.target, t.index) in case.expected[-1]
    # What no path reaches, and why (each reason is checked below, not taken on trust).
    assert sorted(map(str, plan.unreachable)) == [
        "CLOSED --FULL_FILL[3]--> FROZEN", "CLOSED --PARTIALLY_FILLED[3]--> FROZEN",
        "EXIT_CANCEL_PENDING --FULL_FILL[1]--> EXIT_CANCEL_PENDING",
        "EXIT_CANCEL_PENDING --PARTIALLY_FILLED[1]--> EXIT_CANCEL_PENDING",
        "EXIT_CANCEL_PENDING --PARTIALLY_FILLED[8]--> FROZEN",
        "EXIT_WORKING --FULL_FILL[1]--> EXIT_WORKING",
        "EXIT_WORKING --PARTIALLY_FILLED[8]--> FROZEN",
        "FROZEN --CANCEL[2]--> FROZEN", "FROZEN --CANCEL[3]--> FROZEN",
        "POSITION_OPEN --FULL_FILL[1]--> POSITION_OPEN", "POSITION_OPEN --PARTIALLY_FILLED[1]--> POSITION_OPEN",
        "POSITION_OPEN --PARTIALLY_FILLED[8]--> CLOSED"]
    for t, why in plan.unreachable.items():
        if t.state == "CLOSED":
            assert why.startswith("state CLOSED is entered but never stays")
        else:
            # - A late fill of the earlier exit order that empties the position while the
            #   next exit works: the reference venue honours reduce-only, so it rejects that
            #   next exit (larger than what is left to close) and only a synthetic FULL_FILL
            #   gets there. Frozen with an order still working follows from it.
            # - A late partial fill of the exit order before last that closes the trade: a
            #   longer path than the planner's bounded search.
            # - A late entry fill after part of the position was exited ([1]): as long.
            # tests/test_late_exit_fills.py, tests/test_dedup_scope.py and
            # tests/test_sizes_and_records.py drive each by hand, on every kernel path.
            assert why.startswith("no path of up to"), why


def test_closed_never_stays_so_no_event_can_reach_it():
    """CLOSED emits WRITE_TERMINAL and the kernel feeds TERMINAL_WRITTEN back in the same call."""
    k = make_kernel()
    enter = dita.KernelIntent("ENTER", 0, "e1", trade_id="t1", asset="BTC-USDT", side="LONG", target_size="0.01")
    k.process_intent(enter)
    out = k.process_intent(dita.KernelIntent("EXIT", 0, "x1"))
    assert out.transitions[-2:] == (("EXIT_WORKING", "FULL_FILL", "CLOSED"),
                                    ("CLOSED", "TERMINAL_WRITTEN", "TRADE_TERMINAL_WRITTEN"))
    assert out.state == "TRADE_TERMINAL_WRITTEN"


def test_order_requested_can_never_have_a_filled_entry():
    """Why ORDER_REQUESTED's CANCEL_ACK/REJECT/EXPIRED have no "partly filled" candidate (as
    ENTRY_WORKING's do): its own invariant rules a filled entry out."""
    k = make_kernel()
    k.process_intent(dita.KernelIntent("ENTER", 0, "e1", trade_id="t1", asset="BTC-USDT", side="LONG",
                                       target_size="0.01", order_type="LIMIT", limit_price="50000"))
    snap = k.snapshot()["slots"][0]
    snap["state"] = "ORDER_REQUESTED"
    snap["record"].update(entry_filled="0.005", size="0.005", initial_size="0.005", entry_price="50000")
    with pytest.raises(dita.ReconcileError, match="nothing has filled yet"):
        k.reconcile({0: snap})


def test_the_probe_names_the_candidate_the_engine_chooses():
    text = driver.spec_text(None)
    probe = Probe(text)
    k = make_kernel()
    k.process_intent(dita.KernelIntent("ENTER", 0, "e1", trade_id="t1", asset="BTC-USDT", side="LONG",
                                       target_size="0.010", order_type="LIMIT", limit_price="50000"))
    slot, shared = k.slot(0), k.account.as_dict()
    assert slot.fsm_state == "ENTRY_WORKING"

    def fill(size, coid="e1"):
        ev = dita.VenueEvent("PARTIALLY_FILLED", f"f{size}{coid}", coid, filled_size=Decimal(size),
                             fill_price=Decimal("50000"))
        return probe.which(slot.fsm_state, slot.record, shared, "PARTIALLY_FILLED", ev)

    # A fill of nothing is refused by the event's payload_checks, before any candidate; then
    # states.ENTRY_WORKING.on.PARTIALLY_FILLED: freeze_if_not_entry, entry_overfill,
    # entry_fill_completes, the partial fill
    assert [fill("0"), fill("0.004", coid="other"), fill("0.011"), fill("0.010"), fill("0.004")] == [None, 0, 1, 2, 3]
    for size, index in (("0.010", 2), ("0.004", 3)):
        ev = dita.VenueEvent("PARTIALLY_FILLED", f"real{size}", "e1", filled_size=Decimal(size),
                             fill_price=Decimal("50000"))
        k2 = make_kernel()
        k2.process_intent(dita.KernelIntent("ENTER", 0, "e1", trade_id="t1", asset="BTC-USDT", side="LONG",
                                            target_size="0.010", order_type="LIMIT", limit_price="50000"))
        target = desc_target("ENTRY_WORKING", "PARTIALLY_FILLED", index)
        assert k2.on_venue_event(ev).transitions == (("ENTRY_WORKING", "PARTIALLY_FILLED", target),)


def desc_target(state, event, index):
    desc = dita.load_machine().describe()
    return next(s for s in desc["states"] if s["name"] == state)["on"][event][index][1]


def test_a_plan_survives_the_disk_cache_unchanged():
    plan = plan_for(None)
    again = driver._plan_from_json(driver._plan_to_json(plan))
    assert (again.transitions, again.unreachable) == (plan.transitions, plan.unreachable)
    assert {t: (c.moves, c.expected) for t, c in again.cases.items()} == \
        {t: (c.moves, c.expected) for t, c in plan.cases.items()}


# ---------------------------------------------------------------------------- a venue that differs

class SplitFillHarness(MockHarness):
    """Reports a harness fill as two fills: not what the suite asks for."""

    def fill(self, client_order_id, quantity, price=None):
        half = Decimal(quantity) / 2
        self.venue.fill(client_order_id, half, price)
        self.venue.fill(client_order_id, Decimal(quantity) - half, price)


class SilentAckHarness(MockHarness):
    """A venue that never acknowledges an order."""

    def new_venue(self):
        venue = super().new_venue()
        submit = venue.submit
        venue.submit = lambda order: [e for e in submit(order) if e.kind != "ORDER_ACK"]
        return venue


def case_for(name):
    plan = plan_for(None)
    return next(c for t, c in plan.cases.items() if f"{t.state}.{t.event}[{t.index}]" == name)


def test_a_venue_that_splits_a_fill_fails_the_replay_with_the_reason():
    with pytest.raises(ConformanceFailure, match=r"harness.fill\('e1', 0\.004\) must make the venue report exactly "
                                                 r"one fill of 0\.004 for that order"):
        replay(case_for("ORDER_REQUESTED.PARTIALLY_FILLED[3]"), SplitFillHarness(), None)


def test_the_well_formed_check_names_what_a_venue_event_gets_wrong():
    from dita.conformance.suite import well_formed

    def ev(kind, **kw):
        return dita.VenueEvent(kind, kw.pop("event_id", "v1"), kw.pop("coid", "e1"), "V-1", **kw)

    issued = {"e1"}
    assert well_formed(ev("FULL_FILL", filled_size=Decimal("0.01"), fill_price=Decimal("60000"), fee=Decimal("0.2")), issued) == []
    assert well_formed(ev("CANCEL_ACK", filled_size=Decimal("0"), fee=Decimal("0")), issued) == []
    assert well_formed(ev("CANCEL_ACK", filled_size=Decimal("0.004"), fill_price=Decimal("60000")), issued) == [
        "CANCEL_ACK reports no fill, yet carries filled_size=0.004; report the fill as PARTIALLY_FILLED or "
        "FULL_FILL before it"]
    assert well_formed(ev("ORDER_ACK", fee=Decimal("0.1")), issued) == [
        "ORDER_ACK reports no fill, yet carries fee=0.1; report the fill as PARTIALLY_FILLED or FULL_FILL before it"]
    assert well_formed(ev("PARTIALLY_FILLED", filled_size=0.004, fill_price=Decimal("60000")), issued) == [
        "filled_size 0.004 is a float, not an exact Decimal", "a fill needs a positive filled_size, got 0.004"]
    assert well_formed(ev("FILLED", event_id="", coid="zz"), issued) == [
        "kind 'FILLED' is none of PARTIALLY_FILLED, FULL_FILL, ORDER_ACK, CANCEL_ACK, CANCEL_REJECT, REJECT, EXPIRED",
        "event_id '' is not a non-empty string", "client_order_id 'zz' is not an order the kernel sent"]


def test_a_venue_that_never_acknowledges_fails_at_the_step():
    t = Transition("ORDER_REQUESTED", "ORDER_ACK", 0, "ENTRY_WORKING")
    case = Case(t, ("enter", "deliver:o1:ORDER_ACK"),
                ((("IDLE", "ENTER", "ORDER_REQUESTED", desc_index("IDLE", "ENTER")),),
                 (("ORDER_REQUESTED", "ORDER_ACK", "ENTRY_WORKING", 0),)))
    assert replay(case, MockHarness(), None).history[-1] == ("deliver:o1:ORDER_ACK", case.expected[-1])
    with pytest.raises(ConformanceFailure, match=r"deliver:o1:ORDER_ACK: the venue has not reported ORDER_ACK "
                                                 r"for order o1"):
        replay(case, SilentAckHarness(), None)
    # the planned path (the `open` shortcut applies everything the venue reports) differs at step 1
    with pytest.raises(ConformanceFailure, match=r"step 1 \(open:1\) after \[\(nothing\)\]: expected transitions "
                                                 r"IDLE --ENTER\[11\]--> ORDER_REQUESTED, ORDER_REQUESTED --ORDER_ACK"):
        replay(case_for("ORDER_REQUESTED.ORDER_ACK[0]"), SilentAckHarness(), None)


class CodedRejectHarness(MockHarness):
    """Puts an exchange code in front of the scripted reject reason, as BingX does."""

    def reject_next_submit(self, reason="rejected by the conformance suite"):
        super().reject_next_submit(f"EX 4001: {reason}")


class ReasonlessRejectHarness(MockHarness):
    """Drops the scripted reject reason."""

    def reject_next_submit(self, reason="rejected by the conformance suite"):
        super().reject_next_submit("rejected")


def test_a_reject_reason_may_carry_the_venues_code_but_must_keep_the_scripted_text():
    test_a_rejected_order_leaves_the_slot_free_for_the_next_trade(CodedRejectHarness(), None)  # noqa: F405
    with pytest.raises(AssertionError, match="lacks the scripted 'insufficient margin'"):
        test_a_rejected_order_leaves_the_slot_free_for_the_next_trade(ReasonlessRejectHarness(), None)  # noqa: F405


def desc_index(state, event):
    desc = dita.load_machine().describe()
    cands = next(s for s in desc["states"] if s["name"] == state)["on"][event]
    return next(i for i, c in enumerate(cands) if c[0] == "take")


# ---------------------------------------------------------------------------- the suite as a whole

def test_the_suite_fails_for_a_spec_without_the_entry_cancel_candidate(tmp_path):
    spec = without_entry_cancel(tmp_path)
    run = run_dita("conformance", "--venue", "mock", "--spec", spec, cwd=tmp_path)
    assert run.returncode == 1, run.stdout[-3000:]
    failed = {line.split("::")[1].split(" ")[0] for line in run.stdout.splitlines() if line.startswith("FAILED ")}
    # Exactly the behaviour that needs a cancelled or rejected entry to free the slot; the
    # transition replays follow the mutated spec, so they pass.
    assert failed == {"test_cancel_of_a_working_entry_returns_the_slot_to_idle[mock]",
                      "test_a_refused_cancel_leaves_the_order_working_and_it_can_be_cancelled_again[mock]",
                      "test_a_rejected_order_leaves_the_slot_free_for_the_next_trade[mock]"}
    assert "venue mock: " in run.stdout and ", 3 failed, " in run.stdout and "transitions covered: " in run.stdout


def test_an_unknown_venue_is_a_usage_error_that_names_the_installed_ones(tmp_path):
    run = run_dita("conformance", "--venue", "nosuch", cwd=tmp_path)
    assert run.returncode == 1
    assert run.stderr.startswith("dita: no conformance harness named 'nosuch' (registered: ")
    assert "mock" in run.stderr.splitlines()[0]


def test_the_pytest_plugin_is_inert_for_other_tests(tmp_path):
    (tmp_path / "test_plain.py").write_text("def test_plain():\n    assert 1 + 1 == 2\n")
    # a project's own `venue` fixture is its own: its tests are not multiplied per venue
    (tmp_path / "test_own_venue.py").write_text(
        "import pytest\n\n@pytest.fixture\ndef venue():\n    return 'mine'\n\n"
        "def test_own(venue):\n    assert venue == 'mine'\n")
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", "test_plain.py",
                          "test_own_venue.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout
    assert "2 passed" in run.stdout and "dita conformance" not in run.stdout
    assert "test_own_venue.py::test_own PASSED" in run.stdout
    listed = subprocess.run([sys.executable, "-m", "pytest", "--help"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert "--dita-venue=NAME" in listed.stdout  # loaded through the pytest11 entry point


def test_a_plugin_repo_runs_the_suite_with_one_line(tmp_path):
    (tmp_path / "test_conformance.py").write_text("from dita.conformance.suite import *  # noqa\n")
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--dita-venue", "mock",
                          "-k", "cancel or duplicate", "test_conformance.py"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:]
    assert "venue mock: " in run.stdout and " 0 failed" in run.stdout
    assert "[paper]" not in run.stdout
