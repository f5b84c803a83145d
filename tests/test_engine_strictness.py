"""The engine's limits and strictness: tables proportional to what a machine can do,
allocations sized by the caller that fail cleanly, invariants that other instances'
writes to the shared record could break, de-duplication keys that round-trip through a
snapshot, truthful dispatch answers, and input that is refused instead of guessed at.

Each machine here is small and written in the test: the engine knows nothing of trading."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
from decimal import Decimal as D

import pytest

import dita

DIAGNOSTICS = {
    "ok": "OK", "duplicate": "DUP", "invariant_violation": "BROKEN", "no_candidate": "NONE",
    "unhandled": "UNHANDLED", "evaluation_error": "EVAL",
    "codes": {"OK": "", "DUP": "", "BROKEN": "", "NONE": "", "UNHANDLED": "", "EVAL": ""},
}


def machine(tmp_path, **parts):
    """A machine from a spec made of `parts` (record, shared, events, states, ...)."""
    doc = {"version": 1, "machine": "test", "record": {}, "events": {}, "diagnostics": DIAGNOSTICS, **parts}
    path = tmp_path / "machine.yaml"
    path.write_text(json.dumps(doc))
    return dita.load_machine(path)


def run_python(code: str) -> subprocess.CompletedProcess:
    # Outside the source folder, whose dita/ (without its compiled engine) would shadow the installed one.
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300,
                          cwd=tempfile.gettempdir())


# ------------------------------------------------------------------ sizes and allocations

def test_a_machine_with_many_states_and_events_takes_memory_in_proportion_to_its_transitions():
    """300 states and 300 events and no transitions once took 450 MB (a cell for every
    (state, event, state)); at 3000 x 3000 it aborted the process."""
    out = run_python("""
        import json, resource
        from dita import _engine
        n = 300
        doc = {"version": 1, "machine": "wide", "record": {},
               "events": {f"E{i}": {} for i in range(n)},
               "diagnostics": {"ok": "OK", "duplicate": "OK", "invariant_violation": "OK", "no_candidate": "OK",
                               "unhandled": "OK", "evaluation_error": "OK", "codes": {"OK": ""}},
               "states": {f"S{i}": {"initial": i == 0, "on": {"E0": [{"target": "S0"}]} if i == 1 else {}} for i in range(n)}}
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        m = _engine.Machine.from_json(json.dumps(doc))
        rt = _engine.Runtime(m, 2)
        assert rt.apply(0, "E0")[:3] == (False, "OK", "S0")
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print((after - before) // 1024)
    """)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) < 100, f"compiling took {out.stdout.strip()} MB"


@pytest.mark.parametrize("count", [2**34, 2**40, 2**62])
def test_a_runtime_too_large_to_allocate_is_a_clear_error_not_an_abort(tmp_path, count):
    m = machine(tmp_path, states={"A": {"initial": True}})
    with pytest.raises(dita.EngineError, match=f"cannot allocate {count} instances"):
        dita.Runtime(m, count)


# ------------------------------------------------------------------ other instances' invariants

def counter(tmp_path):
    """A shared total that OPEN instances add to; a LOCKED instance needs it below 5, and
    below its own cap (an invariant that reads both records); everyone needs it at most
    the cap of their own (a global invariant that reads both)."""
    return machine(
        tmp_path,
        record={"cap": {"type": "int", "default": 50}},
        shared={"total": {"type": "int", "default": 0}},
        events={"LOCK": {}, "ADD": {"fields": {"n": {"type": "int"}}}, "PING": {},
                "CAP": {"fields": {"cap": {"type": "int"}}}},
        invariants=[{"check": "shared.total <= cap", "message": "the total stays within every cap"}],
        states={
            "OPEN": {"initial": True, "on": {
                "LOCK": [{"target": "LOCKED"}],
                "ADD": [{"assign": {"shared.total": "shared.total + event.n"}}],
                "CAP": [{"assign": {"cap": "event.cap"}}],
            }},
            "LOCKED": {
                "invariants": [{"check": "shared.total < 5", "message": "a locked total is small"},
                               {"check": "shared.total + cap < 60", "message": "a locked total and cap are small"}],
                "on": {"PING": [{}], "CAP": [{"assign": {"cap": "event.cap"}}],
                       "ADD": [{"assign": {"shared.total": "shared.total + event.n"}}]},
            },
        },
    )


def test_a_shared_write_that_would_break_a_state_invariant_of_another_instance_is_refused(tmp_path):
    rt = dita.Runtime(counter(tmp_path), 3)
    rt.apply(1, "LOCK")
    rt.apply(1, "CAP", {"cap": 50})
    out = rt.apply(0, "ADD", {"n": 10})
    assert out[:4] == (False, "BROKEN", "OPEN", None)
    assert "instance 1" in out[5] and "`shared.total < 5`" in out[5] and "LOCKED" in out[5], out[5]
    assert out[5].endswith("nothing changed")
    assert rt.shared()["total"] == 0 and rt.state(0) == "OPEN"
    assert rt.apply(0, "ADD", {"n": 4})[0] is True
    rt.replace({1: rt.snapshot(1)})  # the runtime's own snapshot stays valid


def test_an_invariant_reading_another_instances_record_and_the_shared_one_is_checked_for_it(tmp_path):
    rt = dita.Runtime(counter(tmp_path), 3)
    rt.apply(2, "LOCK")
    rt.apply(2, "CAP", {"cap": 57})  # LOCKED: total + cap < 60, so the total must stay below 3
    out = rt.apply(0, "ADD", {"n": 3})
    assert out[:2] == (False, "BROKEN") and "instance 2" in out[5] and "shared.total + cap < 60" in out[5], out[5]
    rt.apply(1, "CAP", {"cap": 1})   # OPEN, but the global invariant needs the total within its cap
    out = rt.apply(0, "ADD", {"n": 2})
    assert out[:2] == (False, "BROKEN") and "instance 1" in out[5] and "shared.total <= cap" in out[5], out[5]
    assert rt.apply(0, "ADD", {"n": 1})[0] is True
    assert rt.shared()["total"] == 1
    for i in range(3):
        rt.replace({i: rt.snapshot(i)})


def test_the_instance_that_leaves_a_state_no_longer_counts_for_its_invariants(tmp_path):
    m = machine(
        tmp_path,
        shared={"total": {"type": "int", "default": 0}},
        events={"LOCK": {}, "BUMP": {}},
        states={
            "OPEN": {"initial": True, "on": {"LOCK": [{"target": "LOCKED"}]}},
            "LOCKED": {"invariants": [{"check": "shared.total < 1", "message": "locked at zero"}],
                       "on": {"BUMP": [{"target": "OPEN", "assign": {"shared.total": "shared.total + 1"}}]}},
        },
    )
    rt = dita.Runtime(m, 2)
    rt.apply(0, "LOCK")
    assert rt.apply(0, "BUMP")[:3] == (True, "OK", "OPEN")  # it leaves LOCKED: nobody is there
    rt2 = dita.Runtime(m, 2)
    rt2.apply(0, "LOCK")
    rt2.apply(1, "LOCK")
    out = rt2.apply(0, "BUMP")
    assert out[:2] == (False, "BROKEN") and "instance 1" in out[5], out[5]


# ------------------------------------------------------------------ de-duplication keys in snapshots

def hits(tmp_path, with_ping):
    events = {"HIT": {"dedup_key": "id", "dedup_scope": "batch",
                      "fields": {"id": {"type": "string"}, "batch": {"type": "string", "nullable": True}}}}
    if with_ping:
        events["PING"] = {"dedup_key": "id", "fields": {"id": {"type": "string"}}}
    return machine(tmp_path, events=events,
                   states={"A": {"initial": True, "on": {name: [{}] for name in events}}})


@pytest.mark.parametrize("with_ping", [False, True])
def test_a_key_with_a_null_scope_round_trips_through_a_snapshot(tmp_path, with_ping):
    m = hits(tmp_path, with_ping)
    rt = dita.Runtime(m, 1)
    assert rt.apply(0, "HIT", {"id": "x", "batch": None})[0] is True
    assert rt.apply(0, "HIT", {"id": "y", "batch": "b"})[0] is True
    snap = rt.snapshot(0)
    assert snap["seen"] == [["id", "x", "batch", None], ["id", "y", "batch", "b"]]
    again = dita.Runtime(m, 1)
    again.replace({0: json.loads(json.dumps(snap))})   # as a journal holds it
    assert again.snapshot(0) == snap
    assert again.apply(0, "HIT", {"id": "x", "batch": None})[1] == "DUP"
    assert again.apply(0, "HIT", {"id": "y", "batch": "b"})[1] == "DUP"
    if with_ping:
        assert again.apply(0, "PING", {"id": "x"})[0] is True, "PING's keys are not HIT's"


def test_a_key_in_the_older_two_part_form_still_restores(tmp_path):
    """Snapshots written before the null scope was spelled out hold [key field, value]."""
    rt = dita.Runtime(hits(tmp_path, False), 1)
    rt.replace({0: {"state": "A", "record": {}, "seen": [["id", "x"]]}})
    assert rt.apply(0, "HIT", {"id": "x", "batch": None})[1] == "DUP"
    assert rt.apply(0, "HIT", {"id": "x", "batch": "b"})[0] is True


# ------------------------------------------------------------------ dispatch answers

class Signal:
    __slots__ = ("kind", "key", "id")

    def __init__(self, kind, key, id):
        self.kind, self.key, self.id = kind, key, id


def test_a_refused_answer_says_the_event_it_answers_was_applied_and_stands(tmp_path):
    m = machine(
        tmp_path,
        events={"GO": {"dedup_key": "id", "fields": {"id": {"type": "string"}}}, "ACK": {}},
        effects={"FX": {"fields": {}}},
        states={"A": {"initial": True, "on": {"GO": [{"target": "B", "effects": [{"effect": "FX"}]}]}},
                "B": {"on": {"GO": [{}]}}},
    )
    rt = dita.Runtime(m, 1)
    sink = []
    rt.configure_dispatch(Signal, "kind", "key", dita._engine.Outcome, lambda event, applied: "fallback", [],
                          {"FX": ("ACK", sink, None)})
    rt.route("k", 0)
    with pytest.raises(dita.EngineError) as err:
        rt.dispatch(Signal("GO", "k", "e1"))
    text = str(err.value)
    assert rt.state(0) == "B" and sink == [{}] and rt.seen_count(0) == 1
    assert "A --GO--> B" in text and "stands" in text and "now in state B" in text, text
    assert "nothing changed" not in text, text
    assert "ACK" in text and "state B does not handle event ACK" in text, text


# ------------------------------------------------------------------ strict input

def strict(tmp_path):
    return machine(
        tmp_path,
        record={"n": {"type": "int", "default": 0}, "note": {"type": "string", "nullable": True}},
        shared={"total": {"type": "int", "default": 0}, "label": {"type": "string", "default": "x"}},
        events={"SET": {"fields": {"n": {"type": "int"}, "reason": {"type": "string", "nullable": True}}},
                "LIST": {"fields": {"xs": {"type": "decimal_list"}}},
                "AMOUNT": {"fields": {"d": {"type": "decimal"}}}},
        states={"A": {"initial": True, "on": {"SET": [{"assign": {"n": "event.n", "note": "event.reason"}}],
                                               "LIST": [{}], "AMOUNT": [{}]}}},
    )


def test_a_dict_payload_with_a_key_the_event_does_not_declare_is_refused(tmp_path):
    rt = dita.Runtime(strict(tmp_path), 1)
    with pytest.raises(dita.EngineError, match=r"event SET: unknown field 'reasn' \(fields: n, reason\)"):
        rt.apply(0, "SET", {"n": 1, "reasn": "typo"})
    assert rt.record(0) == {"n": 0, "note": None}
    assert rt.apply(0, "SET", {"n": 1, "reason": "ok"})[0] is True


@pytest.mark.parametrize("value", [b"12", {D(1): 1}, {D(1)}, range(3), memoryview(b"1"), frozenset(), (x for x in [D(1)])])
def test_a_decimal_list_is_a_list_or_a_tuple(tmp_path, value):
    rt = dita.Runtime(strict(tmp_path), 1)
    with pytest.raises(dita.EngineError, match="field 'xs' must be a list of decimals"):
        rt.apply(0, "LIST", {"xs": value})
    assert rt.apply(0, "LIST", {"xs": [D(1), "2"]})[0] is True
    assert rt.apply(0, "LIST", {"xs": (D(1),)})[0] is True


def test_replace_takes_whole_snapshots_only(tmp_path):
    rt = dita.Runtime(strict(tmp_path), 2)
    rt.apply(0, "SET", {"n": 3, "reason": "r"})
    full = rt.snapshot(0)
    with pytest.raises(dita.EngineError, match="instance 0: record lacks field 'note'"):
        rt.replace({0: {"state": "A", "record": {"n": 3}, "seen": []}})
    with pytest.raises(dita.EngineError, match="instance 0: snapshot has no 'seen'"):
        rt.replace({0: {"state": "A", "record": full["record"]}})
    with pytest.raises(dita.EngineError, match="shared: shared lacks field 'label'"):
        rt.replace({}, {"total": 1})
    with pytest.raises(dita.EngineError, match="instance keys must be ints from 0, got bool True"):
        rt.replace({True: full})
    assert rt.snapshot(0) == full and rt.snapshot(1)["record"] == {"n": 0, "note": None}
    rt.replace({1: full}, {"total": 1, "label": "y"})
    assert rt.snapshot(1) == full and rt.shared() == {"total": 1, "label": "y"}
    # A caller that means to give part of a record says so: the rest takes the defaults.
    rt.replace({1: {"state": "A", "record": {"n": 5}, "seen": []}}, record_defaults=True)
    assert rt.record(1) == {"n": 5, "note": None}


def test_numbers_out_of_range_name_the_field_or_the_argument(tmp_path):
    rt = dita.Runtime(strict(tmp_path), 1)
    with pytest.raises(dita.EngineError, match=r"event SET: field 'n' must be an int from -2\*\*63 to 2\*\*63-1, got 9223372036854775808"):
        rt.apply(0, "SET", {"n": 2**63})
    for bad in (-1, 2**64):
        with pytest.raises(dita.EngineError, match=f"instance must be an int from 0 to 0, got {bad}"):
            rt.apply(bad, "SET", {"n": 1})
    with pytest.raises(dita.EngineError, match="event AMOUNT: field 'd' .*too large to hold exactly"):
        rt.apply(0, "AMOUNT", {"d": 10**40})
    assert rt.record(0)["n"] == 0
