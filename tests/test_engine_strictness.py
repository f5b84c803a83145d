"""The engine's limits and strictness: tables proportional to what a machine can do,
allocations sized by the caller that fail cleanly, invariants that other instances'
writes to the shared record could break, de-duplication keys that round-trip through a
snapshot, truthful dispatch answers, and input that is refused instead of guessed at.

Each machine here is small and written in the test: the engine knows nothing of trading."""

from __future__ import annotations

import json
import subprocess
import sys
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
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)


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
