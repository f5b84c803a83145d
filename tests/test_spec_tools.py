"""`dita spec check` and `dita spec graph`: every problem code has a fixture that raises
exactly it; the packaged spec passes; a spec that loses its entry-cancel candidate is
named stuck; the diagrams come from the spec, and the docs show the current one."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import dita
from dita import _engine, spectools
from dita.cli import main
from dita.spec import _Loader

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "tests" / "specs"
FIXTURES = sorted(p for p in SPECS.glob("*.yaml") if p.stem != "valid_order")


def check(capsys, *paths):
    code = main(["spec", "check", *map(str, paths)])
    return code, capsys.readouterr().out


@pytest.mark.parametrize("fixture", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_each_invalid_spec_raises_exactly_its_code(fixture, capsys):
    expected = "schema_error" if fixture.stem == "unknown_type" else fixture.stem
    assert [p.code for p in spectools.check_file(fixture)] == [expected]
    code, out = check(capsys, fixture)
    assert code == 1
    assert out.splitlines()[0] == f"1 problem in {fixture}"
    assert re.findall(r"\[([a-z_]+)\]$", out, re.M) == [expected]
    if fixture.stem not in ("unreadable", "initial_state"):
        assert re.search(r"\(line \d+\): ", out), out


def test_unknown_type_is_caught_by_the_engine_too_when_the_schema_is_skipped():
    import yaml

    doc = yaml.load((SPECS / "unknown_type.yaml").read_text(), Loader=_Loader)
    with pytest.raises(_engine.SpecError) as info:
        _engine.Machine.from_json(json.dumps(doc))
    # (the field it declares is then unknown to the expressions that use it, too)
    assert [(p[0], p[1]) for p in info.value.problems if p[1] != "unknown_field"] == [("record.quantity.type", "unknown_type")]


def test_every_problem_code_has_a_fixture():
    assert set(spectools.PROBLEM_CODES) == {p.stem for p in FIXTURES}


def _engine_codes() -> set[str]:
    """The problem codes the Rust compiler can emit: the second argument of every
    ``self.add(...)``, and every ``code: "..."`` / ``problem("...")``."""
    codes = set()
    for src in (ROOT / "fsm_engine" / "src").glob("*.rs"):
        text = src.read_text()
        codes |= set(re.findall(r'code:\s*"([a-z_]+)"', text)) | set(re.findall(r'\bproblem\(\s*"([a-z_]+)"', text))
        for m in re.finditer(r"self\.add\(", text):
            depth, args, current, i, in_str = 0, [], "", m.end(), False
            while True:
                ch = text[i]
                if in_str:
                    in_str = ch != '"' or text[i - 1] == "\\"
                elif ch == '"':
                    in_str = True
                elif ch in "([{":
                    depth += 1
                elif ch in ")]}":
                    if depth == 0:
                        args.append(current)
                        break
                    depth -= 1
                elif ch == "," and depth == 0:
                    args.append(current)
                    current = ""
                    i += 1
                    continue
                current += ch
                i += 1
            if len(args) > 1 and re.fullmatch(r'\s*"([a-z_]+)"\s*', args[1]):
                codes.add(args[1].strip().strip('"'))
    return codes


@pytest.mark.skipif(not (ROOT / "fsm_engine" / "src").is_dir(), reason="needs the engine's source tree")
def test_every_code_the_engine_emits_is_documented():
    codes = _engine_codes()
    assert {"unknown_target", "type_error", "initial_state", "schema_error"} <= codes  # the scan works
    assert codes - set(spectools.PROBLEM_CODES) == set()


def test_the_packaged_spec_passes_every_check(capsys):
    code, out = check(capsys)
    desc = dita.load_machine().describe()
    takes = sum(c[0] == "take" for s in desc["states"] for cands in s["on"].values() for c in cands)
    assert code == 0
    assert out == (f"{dita.packaged_spec_path()}: OK ({len(desc['states'])} states, {len(desc['events'])} events, "
                   f"{takes} transitions)\n")


def test_several_files_are_checked_at_once_and_any_problem_fails(capsys):
    code, out = check(capsys, SPECS / "valid_order.yaml", SPECS / "stuck_state.yaml", SPECS / "unhandled_event.yaml")
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == f"{SPECS / 'valid_order.yaml'}: OK (3 states, 3 events, 5 transitions)"
    assert f"1 problem in {SPECS / 'stuck_state.yaml'}" in lines and f"1 problem in {SPECS / 'unhandled_event.yaml'}" in lines


ENTRY_CANCEL_TO_IDLE = """    - target: IDLE
      assign:
        entry_live: "false"
        last_order_end: "event.reason"
"""


def without_entry_cancel(tmp_path) -> Path:
    """kernel.yaml without the candidates that take a cancelled (or rejected, expired)
    entry with nothing filled back to IDLE (before and after the venue's acknowledgement):
    the old kernel's flaw 2, written in the spec."""
    text = dita.packaged_spec_path().read_text()
    assert text.count(ENTRY_CANCEL_TO_IDLE) == 2
    path = tmp_path / "kernel-without-entry-cancel.yaml"
    path.write_text(text.replace(ENTRY_CANCEL_TO_IDLE, ""))
    return path


def test_a_spec_without_the_entry_cancel_candidate_names_the_stuck_states(tmp_path, capsys):
    path = without_entry_cancel(tmp_path)
    dita.load_machine(path)  # it still compiles: only the lint sees the flaw
    problems = spectools.check_file(path)
    assert {p.code for p in problems} == {"stuck_state"}
    stuck = {p.path.removeprefix("states.") for p in problems}
    assert {"ORDER_REQUESTED", "ENTRY_WORKING", "ENTRY_CANCEL_PENDING"} <= stuck
    # every state but the initial one and the terminal FROZEN
    assert stuck == set(dita.load_machine(path).states) - {"IDLE", "FROZEN"}
    code, out = check(capsys, path)
    assert code == 1 and "states.ENTRY_CANCEL_PENDING (line " in out
    assert "from state ENTRY_CANCEL_PENDING the initial state IDLE can never be reached again" in out


# ---------------------------------------------------------------------------- graphs

ORDER_MERMAID = """stateDiagram-v2
    [*] --> NEW
    NEW --> OPEN : PLACE
    OPEN --> DONE : FILL
    OPEN --> OPEN : FILL
    OPEN --> NEW : CANCEL
    DONE --> OPEN : PLACE
"""


def test_mermaid_diagram_of_a_spec(capsys):
    assert main(["spec", "graph", str(SPECS / "valid_order.yaml")]) == 0
    assert capsys.readouterr().out == ORDER_MERMAID


def test_dot_diagram_marks_terminal_states(tmp_path, capsys):
    out = tmp_path / "order.dot"
    assert main(["spec", "graph", str(SPECS / "unreachable_state.yaml"), "--format", "dot", "-o", str(out)]) == 0
    text = out.read_text()
    assert capsys.readouterr().out == ""
    assert text.startswith('digraph "order" {') and '"[*]" -> "NEW";' in text
    assert '"OPEN" -> "DONE" [label="FILL"];' in text and '"ARCHIVED" [peripheries=2];' in text


def test_svg_without_graphviz_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setattr(spectools.shutil, "which", lambda name: None)
    assert main(["spec", "graph", "--format", "svg"]) == 1
    assert capsys.readouterr().err == (
        "dita: --format svg needs Graphviz's `dot` program, which is not on PATH. Hint: install Graphviz "
        "(e.g. `apt-get install graphviz`), or use --format dot or mermaid\n")


@pytest.mark.skipif(spectools.shutil.which("dot") is None, reason="Graphviz `dot` is not installed")
def test_svg_with_graphviz(capsys):
    assert main(["spec", "graph", str(SPECS / "valid_order.yaml"), "--format", "svg"]) == 0
    svg = capsys.readouterr().out
    assert "<svg" in svg and ">DONE</text>" in svg and ">PLACE</text>" in svg


def test_a_bad_spec_cannot_be_drawn_and_says_why(capsys):
    assert main(["spec", "graph", str(SPECS / "unknown_target.yaml")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"dita: 1 problem in {SPECS / 'unknown_target.yaml'}") and "[unknown_target]" in err


@pytest.mark.parametrize("doc", ["README.md", "docs/lifecycle.md"])
def test_the_docs_show_the_lifecycle_of_the_packaged_spec(doc):
    text = (ROOT / doc).read_text()
    blocks = re.findall(r"```mermaid\n(.*?)```", text, re.S)
    assert spectools.mermaid(dita.load_machine()) in blocks, \
        f"{doc} shows an outdated diagram; regenerate it with `dita spec graph`"


def test_the_command_line_says_in_one_line_what_it_cannot_do(tmp_path, capsys):
    """A diagram that cannot be written, a spec for the conformance suite that does not
    load: one `dita:` line and exit 1, not a traceback (or a pytest collection error)."""
    assert main(["spec", "graph", "-o", str(tmp_path / "missing" / "x.mmd")]) == 1
    assert capsys.readouterr().err == f"dita: cannot write {tmp_path / 'missing' / 'x.mmd'}: No such file or directory\n"
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    assert main(["conformance", "--venue", "mock", "--spec", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"dita: 1 problem in {bad}") and "yaml_error" in err and "Traceback" not in err
