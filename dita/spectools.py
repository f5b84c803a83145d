"""Spec tooling: ``dita spec check`` (every problem of a spec at once) and ``dita spec graph``.

Loading a spec (:func:`dita.load_machine`) refuses what cannot run: YAML and schema errors,
and what the engine's compiler finds (unknown states, fields, events, type errors, ...).
:func:`check_file` adds the lint a machine can run with but a trading kernel should not:
states that can never be reached, states from which the initial state can never be reached
again (a slot that gets stuck there: the old kernel's flaw 2), (state, event) pairs neither
taken nor explicitly refused, and initial-state invariants that the defaults break.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import deque
from pathlib import Path

from dita import _engine
from dita.errors import DitaError, SpecError, SpecProblem
from dita.spec import _line, compile_text, packaged_spec_path, parse

#: Every code ``dita spec check`` prints, with what it means. The codes are stable.
PROBLEM_CODES = {
    # reading and structure (Python, before the engine sees the spec)
    "unreadable": "the file cannot be read",
    "yaml_error": "the file is not valid YAML",
    "schema_error": "the document does not match spec/fsm.schema.json",
    "unknown_key": "a key the schema does not know (often a misspelling)",
    # semantics (the engine's compiler)
    "unknown_type": "a field type that does not exist (the schema reports it first, as schema_error; "
                    "the engine's own check shows when a spec is compiled without the schema)",
    "missing_default": "a non-nullable field without a default",
    "type_error": "a value or expression of the wrong type",
    "syntax_error": "an expression or message that does not parse",
    "unknown_function": "an expression calls a function that does not exist",
    "unknown_field": "an expression, assignment or effect names a field that does not exist",
    "unknown_effect": "a state emits an effect that is not declared under effects",
    "missing_field": "an effect call leaves out one of the effect's fields",
    "unknown_diagnostic": "a refusal names a diagnostic not declared under diagnostics.codes",
    "unknown_event": "a state takes or refuses an event that is not declared under events",
    "unknown_target": "a candidate's target is not a state",
    "duplicate_handling": "a state both takes and refuses an event, or refuses it twice",
    "unreachable_candidate": "a candidate after an unguarded one, which can never be chosen",
    "initial_state": "not exactly one state is marked initial",
    "refuse_with_actions": "a refusing candidate that also assigns, emits effects or has a target",
    # lint (dita spec check only: the engine would run such a machine)
    "unreachable_state": "no sequence of transitions leads from the initial state to this state",
    "stuck_state": "from this state the initial state can never be reached again, and it is not terminal",
    "unhandled_event": "a state neither takes nor explicitly refuses an event",
    "initial_invariant": "an invariant does not hold for the initial state with the default record",
}


def _targets(desc: dict) -> dict[str, list[str]]:
    """State -> the states its take-candidates lead to (itself for a candidate without target)."""
    return {s["name"]: [c[1] for cands in s["on"].values() for c in cands if c[0] == "take"] for s in desc["states"]}


def _closure(start: str, edges: dict[str, list[str]]) -> set[str]:
    seen, todo = {start}, deque([start])
    while todo:
        for nxt in edges.get(todo.popleft(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def lint_machine(machine, root=None, doc: dict | None = None) -> list[SpecProblem]:
    """The graph and invariant checks of a compiled machine (see the module docstring)."""
    desc = machine.describe()
    initial = desc["initial"]
    states = [s["name"] for s in desc["states"]]
    terminal = {s["name"] for s in desc["states"] if s["terminal"]}
    edges = _targets(desc)
    problems: list[SpecProblem] = []

    reachable = _closure(initial, edges)
    for name in states:
        if name not in reachable:
            problems.append(SpecProblem(f"states.{name}", "unreachable_state",
                                        f"state {name} is unreachable from the initial state {initial}",
                                        _line(root, f"states.{name}"),
                                        "add a transition that targets it, or remove it"))
    reverse: dict[str, list[str]] = {n: [] for n in states}
    for src, dsts in edges.items():
        for dst in dsts:
            reverse[dst].append(src)
    returns = _closure(initial, reverse)
    for name in states:
        if name in reachable and name not in returns and name not in terminal:
            onward = sorted(_closure(name, edges) - {name})
            problems.append(SpecProblem(
                f"states.{name}", "stuck_state",
                f"from state {name} the initial state {initial} can never be reached again: a slot that enters it "
                f"is stuck (it can only reach {', '.join(onward) or 'itself'})",
                _line(root, f"states.{name}"),
                f"add a transition that leads back towards {initial}, or mark the state `terminal: true` "
                "if stopping there is intended"))
    for s in desc["states"]:
        handled = set(s["on"]) | set(s["refuse"])
        for event in desc["events"]:
            if event not in handled:
                problems.append(SpecProblem(
                    f"states.{s['name']}.on.{event}", "unhandled_event",
                    f"state {s['name']} neither takes nor refuses event {event}",
                    _line(root, f"states.{s['name']}"),
                    "take it under `on:` or name the diagnostic it gets under `refuse:`"))
    try:
        _engine.Runtime(machine, 1)
    except _engine.EngineError as exc:
        for violation in str(exc).split("; "):
            problems.append(_invariant_problem(violation, initial, doc, root))
    return problems


def _invariant_problem(violation: str, initial: str, doc: dict | None, root) -> SpecProblem:
    """Maps an engine violation ("... invariant `check` of STATE (message)") to its YAML path."""
    path = f"states.{initial}.invariants"
    check = violation.split("`")[1] if violation.count("`") >= 2 else None
    if doc is not None and check is not None:
        for i, inv in enumerate(doc.get("invariants") or ()):
            if inv.get("check") == check:
                path = f"invariants[{i}]"
        for i, inv in enumerate((doc.get("states", {}).get(initial) or {}).get("invariants") or ()):
            if inv.get("check") == check:
                path = f"states.{initial}.invariants[{i}]"
    message = violation.split(": ", 1)[1] if ": " in violation else violation
    return SpecProblem(path, "initial_invariant",
                       f"{message} does not hold in the initial state with the default record",
                       _line(root, path), "fix the field defaults or the invariant")


def check_text(text: str, source: str = "<spec>") -> list[SpecProblem]:
    """Every problem of spec text: structure, semantics, then (if it compiles) the lint."""
    try:
        doc, root = parse(text, source)
        machine = compile_text(text, source)
    except SpecError as exc:
        return list(exc.problems)
    return lint_machine(machine, root, doc)


def check_file(path: str | Path) -> list[SpecProblem]:
    """:func:`check_text` of a file; an unreadable file is one ``unreadable`` problem."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        return [SpecProblem("(document)", "unreadable", f"cannot read the spec: {reason}")]
    return check_text(text, str(path))


# ---------------------------------------------------------------------------- graph

def _edges(desc: dict) -> list[tuple[str, str, list[str]]]:
    """(source, target, events) in the spec's order, one entry per pair of states."""
    out: dict[tuple[str, str], list[str]] = {}
    for s in desc["states"]:
        for event, cands in s["on"].items():
            for kind, target, _guarded in cands:
                if kind == "take":
                    events = out.setdefault((s["name"], target), [])
                    if event not in events:
                        events.append(event)
    return [(src, dst, events) for (src, dst), events in out.items()]


def mermaid(machine) -> str:
    """The lifecycle as a Mermaid ``stateDiagram-v2`` (renders in GitHub markdown)."""
    desc = machine.describe()
    lines = ["stateDiagram-v2", f"    [*] --> {desc['initial']}"]
    for src, dst, events in _edges(desc):
        lines.append(f"    {src} --> {dst} : {', '.join(events)}")
    for s in desc["states"]:
        if s["terminal"]:
            lines.append(f"    {s['name']} --> [*]")
    return "\n".join(lines) + "\n"


def dot(machine) -> str:
    """The lifecycle as a Graphviz ``dot`` digraph."""
    desc = machine.describe()
    lines = [f'digraph "{desc["name"]}" {{', "    rankdir=LR;",
             '    node [shape=box, style=rounded, fontname="Helvetica"];',
             '    edge [fontname="Helvetica", fontsize=10];',
             '    "[*]" [shape=point, width=0.15];', f'    "[*]" -> "{desc["initial"]}";']
    for s in desc["states"]:
        if s["terminal"]:
            lines.append(f'    "{s["name"]}" [peripheries=2];')
    for src, dst, events in _edges(desc):
        lines.append(f'    "{src}" -> "{dst}" [label="{chr(10).join(events)}"];'.replace("\n", "\\n"))
    lines.append("}")
    return "\n".join(lines) + "\n"


def svg(machine) -> str:
    """The lifecycle as SVG, drawn by Graphviz ``dot`` (which must be on PATH)."""
    exe = shutil.which("dot")
    if exe is None:
        raise DitaError("--format svg needs Graphviz's `dot` program, which is not on PATH. "
                        "Hint: install Graphviz (e.g. `apt-get install graphviz`), or use --format dot or mermaid")
    run = subprocess.run([exe, "-Tsvg"], input=dot(machine), capture_output=True, text=True)
    if run.returncode != 0:
        raise DitaError(f"Graphviz `dot` failed (exit {run.returncode}): {run.stderr.strip()}")
    return run.stdout


GRAPH_FORMATS = {"mermaid": mermaid, "dot": dot, "svg": svg}


def default_spec() -> Path:
    return packaged_spec_path()
