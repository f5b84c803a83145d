"""Bad specs are refused at load time with every problem, its path, line and code."""

from __future__ import annotations

from pathlib import Path

import pytest

import dita

LIGHT = (Path(__file__).parent / "machines" / "traffic_light.yaml").read_text()


def problems_of(text):
    with pytest.raises(dita.SpecError) as info:
        dita.spec.compile_text(text, "light.yaml")
    return info.value


def mutate(old, new, count=1):
    assert LIGHT.count(old) >= 1, old
    return LIGHT.replace(old, new, count)


@pytest.mark.parametrize("old, new, code, path", [
    ("TIMER: [{target: RED}]", "TIMER: [{target: REDD}]", "unknown_target", "states.YELLOW.on.TIMER[0].target"),
    ('assign: {green_seconds: "green_seconds + event.seconds"}', 'assign: {green_seconds: "green_seconds + true"}',
     "type_error", "states.GREEN.on.TIMER[1].assign.green_seconds"),
    ('"waiting or green_seconds + event.seconds >= 30"', '"waiting or green_seconds + event.secs >= 30"',
     "unknown_field", "states.GREEN.on.TIMER[0].guard"),
    ('guard: "event.count < 0"', 'guard: "event.cnt < 0"', "unknown_field", "events.CARS.payload_checks[0].guard"),
    ('guard: "event.count < 0"', 'guard: "event.count"', "type_error", "events.CARS.payload_checks[0].guard"),
    ('guard: "event.count < 0"', 'guard: "event.count < "', "syntax_error", "events.CARS.payload_checks[0].guard"),
    ('guard: "event.count < 0"', 'guard: "sqrt(event.count) < 0"', "unknown_function", "events.CARS.payload_checks[0].guard"),
    ("IGNORED: [BUTTON]", "IGNORED: [BUTTONS]", "unknown_event", "states.YELLOW.refuse.IGNORED[0]"),
    ("{effect: BEEP}", "{effect: BOOP}", "unknown_effect", "states.RED.on_entry.effects[1].effect"),
    ("CARS_STOPPED: [CARS]", "CARS_HALTED: [CARS]", "unknown_diagnostic", "states.RED.refuse.CARS_HALTED"),
    ("FAULT: [{target: FLASHING}]\n  YELLOW", "FAULT: [{target: FLASHING}]\n    refuse: {IGNORED: [FAULT]}\n  YELLOW",
     "duplicate_handling", "states.GREEN.on.FAULT"),
    ("  GREEN:\n    initial: true", "  GREEN:\n    initial: false", "initial_state", "states"),
    ("cycles: {type: int, default: 0,", "cycles: {type: integer, default: 0,", "schema_error", "record.cycles.type"),
    ("  BUTTON:\n    fields: {}", "  BUTTON:\n    feilds: {}", "unknown_key", "events.BUTTON"),
    ("    dedup_key: tick_id\n", "    dedup_key: tick_id\n    dedup_scope: lamp_id\n", "unknown_field", "events.TIMER.dedup_scope"),
    ("    dedup_key: tick_id\n", "    dedup_key: tick_id\n    dedup_scope: seconds\n", "type_error", "events.TIMER.dedup_scope"),
    ("    dedup_key: tick_id\n", "    dedup_key: tick_id\n    dedup_scope: tick_id\n", "type_error", "events.TIMER.dedup_scope"),
    ("    dedup_key: tick_id\n", "    dedup_scope: tick_id\n", "unknown_field", "events.TIMER.dedup_scope"),
    ('guard: "event.count < 0"', 'guard: "cycles < 0"', "unknown_field", "events.CARS.payload_checks[0].guard"),
    ("refuse: BAD_DATA\n        message: \"a count", "refuse: BAD_DATAA\n        message: \"a count",
     "unknown_diagnostic", "events.CARS.payload_checks[0].refuse"),
    ("refuse: BAD_DATA\n        message: \"a count", "refuses: BAD_DATA\n        message: \"a count",
     "unknown_key", "events.CARS.payload_checks[0]"),
    ("{event.count} cars", "{cycles} cars", "unknown_field", "events.CARS.payload_checks[0].message"),
])
def test_each_problem_is_named_with_path_line_and_code(old, new, code, path):
    err = problems_of(mutate(old, new))
    found = [(p.code, p.path) for p in err.problems]
    assert (code, path) in found, found
    problem = next(p for p in err.problems if p.code == code)
    assert problem.line is not None and problem.line > 1
    assert f"[{code}]" in str(err) and "light.yaml" in str(err)


def test_a_payload_check_may_read_its_event_only_and_says_so():
    # Its answer must be the same in every state, so a record or shared field is refused.
    for field in ("cycles", "shared.cars_passed"):
        err = problems_of(mutate('guard: "event.count < 0"', f'guard: "{field} < 0"'))
        assert [p.message for p in err.problems] == [
            f"'{field}' is not an event field: a payload check reads its event's fields only in `{field} < 0`"]


def test_all_problems_are_reported_at_once():
    text = mutate("TIMER: [{target: RED}]", "TIMER: [{target: REDD}]")
    text = text.replace('guard: "event.count < 0"', 'guard: "event.count + 1"')
    err = problems_of(text)
    assert sorted(p.code for p in err.problems) == ["type_error", "unknown_target"]
    target = next(p for p in err.problems if p.code == "unknown_target")
    assert target.hint.startswith("known states are GREEN, YELLOW, RED, FLASHING")
    assert isinstance(err, ValueError)


def test_a_kernel_with_a_bad_spec_is_refused_and_nothing_is_built(tmp_path):
    bad = tmp_path / "kernel.yaml"
    text = dita.packaged_spec_path().read_text().replace("target: POSITION_OPEN", "target: POSITON_OPEN", 1)
    bad.write_text(text)
    with pytest.raises(dita.SpecError, match=r"unknown state 'POSITON_OPEN' \[unknown_target\]"):
        dita.Kernel(venue=__import__("dita_mock").MockVenue(), spec=bad)


def test_yaml_1_1_booleans_do_not_bite():
    # PyYAML would read the key `on:` as True and `no` as False; specs use YAML 1.2 booleans.
    machine = dita.spec.compile_text(LIGHT.replace("reason: {type: string, nullable: true}",
                                                   "reason: {type: string, nullable: true, description: no}"))
    assert machine.states == ["GREEN", "YELLOW", "RED", "FLASHING"]


def test_the_packaged_spec_compiles_and_names_the_trade_lifecycle():
    m = dita.load_machine()
    assert m.name == "trade_slot" and m.initial == "IDLE"
    for state in ["IDLE", "ORDER_REQUESTED", "ENTRY_WORKING", "POSITION_OPEN", "EXIT_WORKING", "CLOSED",
                  "TRADE_TERMINAL_WRITTEN"]:
        assert state in m.states
    for code in ["OK", "SLOT_BUSY", "NO_WORKING_ORDER", "NO_POSITION", "UNKNOWN_ORDER", "DUPLICATE_EVENT",
                 "OVERFILL", "STALE_EVENT", "INVALID_INTENT", "INVARIANT_VIOLATION"]:
        assert code in m.diagnostics


def test_every_state_handles_every_event_explicitly():
    """No (state, event) pair of the trade spec is left to the engine's default."""
    desc = dita.load_machine().describe()
    events = set(desc["events"])
    for state in desc["states"]:
        handled = set(state["on"]) | set(state["refuse"])
        assert handled == events, (state["name"], sorted(events - handled))


def test_a_key_written_twice_is_refused_naming_both_lines():
    """YAML keeps the last of two equal keys silently: a second `TIMER:` handler, or a second
    assignment of one field, would drop the first without a word."""
    text = mutate('    dedup_key: tick_id\n', '    dedup_key: tick_id\n    dedup_key: lamp_id\n')
    err = problems_of(text)
    [problem] = err.problems
    assert problem.code == "yaml_error" and "found the key 'dedup_key' twice" in problem.message
    first = text.splitlines().index("    dedup_key: tick_id") + 1
    assert f"first on line {first}" in problem.message and problem.line == first + 1


def test_a_merge_may_still_be_overridden_by_a_key_of_the_mapping():
    # `<<: *anchor` then a key of the same name is how the packaged spec specialises its
    # templates: not a key written twice.
    machine = dita.spec.compile_text(dita.packaged_spec_path().read_text())
    assert machine.name == "trade_slot"


def test_a_spec_whose_aliases_expand_beyond_reason_is_refused_before_it_is_expanded():
    """Nine levels of ten aliases each are a few hundred bytes of YAML and a billion values:
    the schema check and its message used to expand them (1.5 GB in 10 s at seven levels)."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 10):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 10) + "]")
    text = LIGHT.replace("description:", "templates:\n  " + "\n  ".join(lines) + "\ndescription:", 1)
    err = problems_of(text)
    assert [p.code for p in err.problems] == ["too_large"]
    assert "expands to more than 1,000,000 values" in err.problems[0].message


def test_a_spec_that_contains_itself_is_refused():
    text = LIGHT.replace("description:", "templates: &loop [*loop]\ndescription:", 1)
    err = problems_of(text)
    assert "refers to a value that contains it" in str(err)
