"""The engine's limits, through the Python API: how deep an expression may nest, and numbers
at the edge of what a decimal holds. Each limit gives a clear error and changes nothing;
none may crash the process."""

from __future__ import annotations

import decimal
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from decimal import Decimal
from hypothesis import example, given, settings
from hypothesis import strategies as st

import dita

MAX_DEPTH = 200
HERE = str(Path(__file__).parent)


def machine_json(assign: dict[str, str], fields: dict | None = None, record: dict | None = None) -> str:
    """A one-state machine that assigns `assign` on its only event GO (YAML is a superset of JSON)."""
    return json.dumps({
        "version": 1,
        "machine": "limits",
        "record": record or {"x": {"type": "decimal", "default": "0"}},
        "events": {"GO": {"fields": fields or {"a": {"type": "decimal"}}}},
        "diagnostics": {
            "ok": "OK", "duplicate": "DUP", "invariant_violation": "BROKEN", "no_candidate": "NONE",
            "unhandled": "UNHANDLED", "evaluation_error": "CANNOT_EVALUATE",
            "codes": {"OK": "", "DUP": "", "BROKEN": "", "NONE": "", "UNHANDLED": "", "CANNOT_EVALUATE": ""},
        },
        "states": {"S": {"initial": True, "on": {"GO": [{"assign": assign}]}}},
    })


def load(tmp_path, assign, **kw):
    path = tmp_path / "limits.yaml"
    path.write_text(machine_json(assign, **kw))
    return dita.load_machine(path)


def nested_shapes(levels: int) -> dict[str, str]:
    """Expressions `levels` deep (the height of their tree) of every shape that nests."""
    n = levels
    return {
        "a chain of +": " + ".join(["event.a"] * n),
        "a chain of /": " / ".join(["event.a"] * n),
        "a right-deep sum": "event.a + (" * (n - 1) + "event.a" + ")" * (n - 1),
        "parentheses": "(" * n + "event.a" + ")" * n,
        "signs": "-" * (n - 1) + "event.a",
        "calls": "abs(" * (n - 1) + "event.a" + ")" * (n - 1),
        "branches": "if(event.a > 0, " * (n - 2) + "event.a" + ", 0)" * (n - 2),
    }


def run_isolated(tmp_path, code: str) -> subprocess.CompletedProcess:
    """Runs `code` in a fresh interpreter, so that a crash fails this test instead of pytest."""
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(code))
    return subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)


def test_an_expression_nested_too_deeply_is_a_spec_error_not_a_crash(tmp_path):
    code = f"""
        import json, sys
        from pathlib import Path
        import dita
        sys.path.insert(0, {HERE!r})
        from test_engine_limits import machine_json, nested_shapes
        out = {{}}
        for levels in ({MAX_DEPTH + 2}, 10_000):
            for shape, src in nested_shapes(levels).items():
                Path("deep.yaml").write_text(machine_json({{"x": src}}))
                try:
                    dita.load_machine("deep.yaml")
                    out[f"{{shape}} {{levels}}"] = "loaded"
                except dita.SpecError as e:
                    p = e.problems[0]
                    out[f"{{shape}} {{levels}}"] = [len(e.problems), p.path, p.code, p.message[:200]]
        print(json.dumps(out))
    """
    proc = run_isolated(tmp_path, code)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    out = json.loads(proc.stdout)
    assert len(out) == 2 * len(nested_shapes(10))
    for case, got in out.items():
        assert got != "loaded", case
        count, path, code_, message = got
        assert (count, path, code_) == (1, "states.S.on.GO[0].assign.x", "syntax_error"), case
        assert f"nests more than {MAX_DEPTH} levels deep" in message, (case, message)


def test_the_deepest_accepted_expressions_run_on_a_small_thread_stack(tmp_path):
    """At the limit every shape loads and evaluates, on a thread with a 256 KiB stack (the
    release build needs at most about half of it, measured)."""
    code = f"""
        import json, sys, threading
        from decimal import Decimal
        from pathlib import Path
        import dita
        sys.path.insert(0, {HERE!r})
        from test_engine_limits import machine_json, nested_shapes
        out = {{}}
        def work():
            for shape, src in nested_shapes({MAX_DEPTH}).items():
                Path("deep.yaml").write_text(machine_json({{"x": src}}))
                rt = dita.Runtime(dita.load_machine("deep.yaml"), 1)
                accepted, code, *_ = rt.apply(0, "GO", {{"a": Decimal("1.5")}})
                out[shape] = [accepted, code, str(rt.record(0)["x"])]
        threading.stack_size(256 * 1024)
        t = threading.Thread(target=work)
        t.start()
        t.join()
        print(json.dumps(out))
    """
    proc = run_isolated(tmp_path, code)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    out = json.loads(proc.stdout)
    assert out.pop("a chain of /")[:2] == [True, "OK"]
    assert out == {
        "a chain of +": [True, "OK", "300"],
        "a right-deep sum": [True, "OK", "300"],
        "parentheses": [True, "OK", "1.5"],
        "signs": [True, "OK", "-1.5"],
        "calls": [True, "OK", "1.5"],
        "branches": [True, "OK", "1.5"],
    }


def test_a_long_flat_sum_past_the_limit_gets_the_clear_error(tmp_path):
    """A sum of a few hundred terms is a chain as deep as it is long: refused with the limit
    named, and split over assignments it works."""
    with pytest.raises(dita.SpecError, match=f"nests more than {MAX_DEPTH} levels deep"):
        load(tmp_path, {"x": " + ".join(["event.a"] * 300)})
    m = load(tmp_path, {"x": " + ".join(["event.a"] * 150), "y": "x + " + " + ".join(["event.a"] * 150)},
             record={"x": {"type": "decimal", "default": "0"}, "y": {"type": "decimal", "default": "0"}})
    rt = dita.Runtime(m, 1)
    assert rt.apply(0, "GO", {"a": 1})[:2] == (True, "OK")
    assert rt.record(0)["y"] == 300


# --- floor_to ---------------------------------------------------------------------------

WIDE = decimal.Context(prec=200)


def decimals(positive: bool = False):
    """Numbers the engine can hold: up to 96 bits of digits, up to 28 places."""
    sign = st.just(False) if positive else st.booleans()
    return st.builds(lambda m, places, neg: Decimal((1 if neg else 0, tuple(map(int, str(m))), -places)),
                     st.integers(0, 2**96 - 1) | st.integers(0, 10**6), st.integers(0, 28), sign)


def holdable(d: Decimal) -> bool:
    """Whether a decimal of at most 28 places and 96 bits of digits equals `d`."""
    sign, digits, exp = d.normalize(WIDE).as_tuple()
    coefficient = int("".join(map(str, digits)))
    return coefficient * 10 ** max(exp, 0) < 2**96 and -exp <= 28 if coefficient else True


@pytest.fixture(scope="module")
def floor_machine(tmp_path_factory):
    return load(tmp_path_factory.mktemp("floor"), {"x": "floor_to(event.a, event.step)"},
                fields={"a": {"type": "decimal"}, "step": {"type": "decimal"}})


@settings(max_examples=500, deadline=None)
@given(x=decimals(), step=decimals(positive=True).filter(lambda d: d > 0))
@example(x=Decimal("2.9999999999999999999999999999"), step=Decimal("3"))  # x / step rounds up to 1
@example(x=Decimal("-2.9999999999999999999999999999"), step=Decimal("3"))
@example(x=Decimal("-129918481.5992802"), step=Decimal("6.8E-20"))  # fits, but not at the step's places
@example(x=Decimal("1.5"), step=Decimal("7E-28"))
@example(x=Decimal("-79228162514264337593543950335"), step=Decimal("10"))  # below the smallest decimal
def test_floor_to_is_the_exact_floor_and_never_exceeds_its_value(floor_machine, x, step):
    want = WIDE.multiply(WIDE.divide(x, step).to_integral_value(rounding=decimal.ROUND_FLOOR), step)
    rt = dita.Runtime(floor_machine, 1)
    accepted, code, _s, _t, _fx, message = rt.apply(0, "GO", {"a": x, "step": step})
    if accepted:
        got = rt.record(0)["x"]
        assert got == want and got <= x, (x, step, got, want)
    else:
        assert code == "CANNOT_EVALUATE", message
        assert not holdable(want), (x, step, want, message)
        assert rt.record(0)["x"] == 0, "nothing changed"


# --- where rounding is allowed ----------------------------------------------------------

BIG = Decimal("1234567890123456789.123456789")
NEAR_ONE = Decimal("1.000000001")  # BIG * NEAR_ONE needs 38 digits: a decimal holds 28-29


@pytest.fixture(scope="module")
def branch_machine(tmp_path_factory):
    return load(tmp_path_factory.mktemp("branch"),
                {"x": "if(event.split, event.a / 2, event.a * event.b)", "y": "(event.a * event.b) / 1"},
                fields={"split": {"type": "bool"}, "a": {"type": "decimal"}, "b": {"type": "decimal"}},
                record={"x": {"type": "decimal", "default": "0"}, "y": {"type": "decimal", "default": "0"}})


def test_a_division_elsewhere_in_an_expression_does_not_let_a_product_round(branch_machine):
    """Only `/`, `round`, `floor_to` and what is beneath them may round: a product in the other
    branch of an `if` is refused as it would be with no division in the expression."""
    rt = dita.Runtime(branch_machine, 1)
    accepted, code, *_, message = rt.apply(0, "GO", {"split": False, "a": BIG, "b": NEAR_ONE})
    assert (accepted, code) == (False, "CANNOT_EVALUATE")
    assert "cannot be held exactly" in message and "refused, not rounded" in message, message
    assert rt.record(0)["x"] == 0 and rt.record(0)["y"] == 0, "nothing changed"
    # The division's branch, and a product that is an operand of `/`, round as before.
    accepted, code, *_ = rt.apply(0, "GO", {"split": True, "a": BIG, "b": NEAR_ONE})
    assert (accepted, code) == (True, "OK")
    assert rt.record(0)["x"] == BIG / 2
    assert rt.record(0)["y"] == Decimal("1234567891358024679.2469135781")


# --- numbers exact once their trailing zeros go ------------------------------------------

@pytest.fixture(scope="module")
def copy_machine(tmp_path_factory):
    return load(tmp_path_factory.mktemp("copy"), {"x": "event.a"})


@pytest.mark.parametrize("given, value", [
    (Decimal("0E-40"), 0),
    (Decimal("-0E-40"), 0),
    ("0E-40", 0),
    ("0e999999", 0),
    (Decimal("0e999999"), 0),
    ("0.00000000000000000000000000000000000", 0),
    (Decimal("0.00000000000000000000000000000000000"), 0),
    (Decimal("14551915228366851806640625000.0"), Decimal("14551915228366851806640625000")),
    ("14551915228366851806640625000.0", Decimal("14551915228366851806640625000")),
    (Decimal("-1.50000000000000000000000000000000"), Decimal("-1.5")),
])
def test_a_number_exact_once_its_trailing_zeros_go_is_accepted_as_that_number(copy_machine, given, value):
    """Zeros after the point past 28 places or 96 bits of digits, and a zero of any exponent,
    change nothing: the number is held exactly, from text or from a Decimal."""
    rt = dita.Runtime(copy_machine, 1)
    rt.apply(0, "GO", {"a": 7})
    accepted, code, *_ = rt.apply(0, "GO", {"a": given})
    assert (accepted, code) == (True, "OK")
    got = rt.record(0)["x"]
    assert got == value and got.is_signed() == (value < 0), (given, got)  # a zero keeps no sign


@pytest.mark.parametrize("given", [
    Decimal("1E-29"), "1.00000000000000000000000000001", Decimal("79228162514264337593543950336.0"),
    "1e29", Decimal("1E+999999"), 10**40, -(10**40),
])
def test_a_number_that_cannot_be_held_exactly_is_refused_saying_so(copy_machine, given):
    rt = dita.Runtime(copy_machine, 1)
    with pytest.raises(dita.EngineError, match=r"field 'a'.*cannot be held exactly.*refused, not rounded") as e:
        rt.apply(0, "GO", {"a": given})
    assert "must be a decimal number" not in str(e.value)
    assert rt.record(0)["x"] == 0, "nothing changed"


def test_a_problem_with_a_long_expression_quotes_its_beginning(tmp_path):
    """Every problem quoted its expression whole: a generated expression of thousands of
    terms made each message about it tens of kilobytes."""
    source = " + ".join(["1"] * 150) + " + true"
    with pytest.raises(dita.SpecError) as err:
        load(tmp_path, {"x": source})
    [problem] = err.value.problems
    assert problem.code == "type_error"
    assert len(problem.message) < 400 and f"... ({len(source)} characters)" in problem.message
