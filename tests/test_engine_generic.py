"""The engine is generic: another machine runs through the same API, and the engine's
source holds no trading word."""

from __future__ import annotations

import re
from decimal import Decimal as D
from pathlib import Path

import pytest

import dita

HERE = Path(__file__).parent
ROOT = HERE.parent


@pytest.fixture
def light():
    machine = dita.load_machine(HERE / "machines" / "traffic_light.yaml")
    return dita.Runtime(machine, 2)


def tick(rt, i, tick_id, seconds="10"):
    return rt.apply(i, "TIMER", {"tick_id": tick_id, "seconds": D(seconds)})


def test_traffic_light_runs_its_cycle(light):
    assert light.state(0) == "GREEN"
    assert tick(light, 0, "a")[:4] == (True, "OK", "GREEN", ("GREEN", "TIMER", "GREEN"))
    assert light.record(0)["green_seconds"] == D("10")
    accepted, code, state, transition, effects, message = light.apply(0, "BUTTON", {})
    assert (accepted, state, effects) == (True, "GREEN", ())
    out = tick(light, 0, "b")
    assert out[2:4] == ("YELLOW", ("GREEN", "TIMER", "YELLOW"))
    assert out[4] == [("LAMP", {"colour": "yellow"})]
    out = tick(light, 0, "c")
    assert out[2] == "RED"
    assert out[4] == [("LAMP", {"colour": "red"}), ("BEEP", {})]
    assert light.record(0)["waiting"] is False
    out = tick(light, 0, "d")
    assert out[2] == "GREEN" and light.record(0)["cycles"] == 1
    assert light.state(1) == "GREEN", "instances are independent"


def test_traffic_light_diagnostics_come_from_its_own_spec(light):
    tick(light, 0, "a")
    out = tick(light, 0, "a")
    assert out[:3] == (False, "DUPLICATE_TICK", "GREEN")
    assert light.apply(0, "CARS", {"count": -3})[1:] == ("BAD_DATA", "GREEN", None, (), "event CARS: a count of -3 cars makes no sense")
    assert light.apply(0, "CARS", {"count": 4})[0] is True
    assert light.shared()["cars_passed"] == 4
    light.apply(0, "FAULT", {"reason": None})
    assert light.apply(0, "TIMER", {"tick_id": "z", "seconds": 1})[:3] == (False, "IGNORED", "FLASHING")
    assert light.apply(0, "RESET", {})[2] == "GREEN"


def test_a_payload_check_refuses_the_event_in_every_state_before_de_duplication(light):
    """An event's payload_checks are said once for all states: the light refuses a negative
    count of cars whatever it shows (YELLOW would otherwise add it, RED refuse it as stopped
    cars), and a refused tick leaves its id free for the corrected one."""
    def cars(count):
        return light.apply(0, "CARS", {"count": count})

    shown = []
    for expected in ("GREEN", "YELLOW", "RED"):
        assert light.state(0) == expected
        before = (light.record(0), light.shared(), light.seen_count(0))
        assert cars(-2)[:2] == (False, "BAD_DATA")
        assert (light.record(0), light.shared(), light.seen_count(0)) == before, "nothing changed"
        shown.append(cars(3)[1])  # a good count: what the state itself says
        bad_tick = light.apply(0, "TIMER", {"tick_id": f"t-{expected}", "seconds": D("-5")})
        assert bad_tick == (False, "BAD_DATA", expected, None, (), "event TIMER: a tick of -5 seconds runs time backwards")
        light.apply(0, "BUTTON", {})
        # The same tick id, now well-formed: not a duplicate of the refused one.
        assert light.apply(0, "TIMER", {"tick_id": f"t-{expected}", "seconds": D("10")})[:2] == (True, "OK")
    assert shown == ["OK", "OK", "CARS_STOPPED"]
    assert light.shared()["cars_passed"] == 6
    light.apply(0, "FAULT", {"reason": None})
    assert cars(-1)[1:3] == ("BAD_DATA", "FLASHING") and cars(1)[1:3] == ("IGNORED", "FLASHING")


def test_the_engine_source_has_no_trading_words():
    # "order", "position" and "exit" are left out: they are also plain programming words
    # (sort order, Iterator::position, process::exit) and appear as such.
    words = ["IDLE", "ENTER", "FILL", "PNL", "TRADE", "SLOT", "CAPITAL", "VENUE", "PRICE", "ASSET", "FEE",
             "LEVERAGE", "CANCEL", "BUY", "SELL", "LONG", "SHORT", "ACCOUNT", "SETTLE", "MARGIN", "QUOTE"]
    # A word on its own or as part of an identifier (on_enter, FULL_FILL, pnlTotal), not
    # inside another word (shortest).
    pattern = re.compile(r"(?<![a-zA-Z])(" + "|".join(words) + r")s?(?![a-z])", re.IGNORECASE)
    # The engine is the library (src/) and its manifest; examples/ holds a benchmark that
    # drives the trade spec through it, which is allowed to speak of trading.
    sources = sorted((ROOT / "fsm_engine" / "src").rglob("*.rs")) + [ROOT / "fsm_engine" / "Cargo.toml"]
    if not (ROOT / "fsm_engine" / "src").exists():
        pytest.skip("the engine's source is not beside the tests")
    hits = []
    for path in sources:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            for m in pattern.finditer(line):
                hits.append(f"{path.relative_to(ROOT)}:{n}: {m.group(0)}")
    assert hits == []


def test_a_rust_problem_never_crashes_python(light):
    with pytest.raises(dita.EngineError, match="no instance 9"):
        tick(light, 9, "x")
    with pytest.raises(dita.EngineError, match="unknown event 'JUMP'"):
        light.apply(0, "JUMP", {})
    with pytest.raises(dita.EngineError, match="field 'seconds' must be a decimal number, got .soon."):
        light.apply(0, "TIMER", {"tick_id": "x", "seconds": "soon"})
    with pytest.raises(dita.EngineError, match="'count' must be an int"):
        light.apply(0, "CARS", {"count": True})
    with pytest.raises(ValueError):  # EngineError is a ValueError
        light.apply(0, "TIMER", {"tick_id": "x"})
    assert light.state(0) == "GREEN" and light.record(0)["green_seconds"] == 0


class Signal:
    """A traffic-light event object for the engine's dispatcher: which light, what happened."""

    __slots__ = ("kind", "light", "tick_id", "seconds", "count", "reason")

    def __init__(self, kind, light, tick_id=None, seconds=None):
        self.kind, self.light, self.tick_id, self.seconds = kind, light, tick_id, seconds
        self.count = self.reason = None


def dispatching(light, answers):
    fallbacks = []
    light.configure_dispatch(Signal, "kind", "light", dita._engine.Outcome,
                             lambda event, applied: fallbacks.append((event.kind, applied)) or "fallback", [], answers)
    light.route("north", 0)
    return fallbacks


def test_the_dispatcher_answers_an_effect_itself_when_told_how(light):
    """A LAMP effect answered by the dispatcher: its fields go to a list, then BUTTON is
    applied to the same light, all in the one call; no fallback is called."""
    lamps = []
    fallbacks = dispatching(light, {"LAMP": ("BUTTON", lamps, "light")})
    tick(light, 0, "a", "30")
    tick(light, 0, "b")
    assert light.state(0) == "RED" and light.record(0)["waiting"] is False
    out = light.dispatch(Signal("TIMER", "north", "c", D("5")))
    assert (out.accepted, out.state, out.instance) == (True, "GREEN", 0)
    assert out.transitions == (("RED", "TIMER", "GREEN"), ("GREEN", "BUTTON", "GREEN"))
    assert lamps == [{"colour": "green", "light": 0}]
    assert light.record(0)["waiting"] is True and fallbacks == []
    # When any effect has no answer (RED's BEEP), none is answered here: the fallback gets
    # the applied event and performs them all.
    light.route("south", 1)
    tick(light, 1, "a", "30")
    assert light.dispatch(Signal("TIMER", "south", "b", D("1"))) == "fallback"
    assert fallbacks[0][0] == "TIMER" and fallbacks[0][1][4] == [("LAMP", {"colour": "red"}), ("BEEP", {})]
    assert light.state(1) == "RED" and len(lamps) == 1


def test_an_answer_the_machine_refuses_is_an_error_naming_it(light):
    lamps = []
    dispatching(light, {"LAMP": ("BUTTON", lamps, None)})
    # GREEN -> YELLOW lights the yellow lamp; YELLOW refuses BUTTON.
    with pytest.raises(dita.EngineError, match="effect LAMP was answered with BUTTON, which instance 0 refused"):
        light.dispatch(Signal("TIMER", "north", "a", D("30")))
    assert lamps == [{"colour": "yellow"}]


@pytest.mark.parametrize("answers, error", [
    ({"GLOW": ("BUTTON", [], None)}, "answers: unknown effect 'GLOW'"),
    ({"LAMP": ("PRESS", [], None)}, "answers\\['LAMP'\\]: unknown event 'PRESS'"),
    ({"LAMP": ("CARS", [], None)}, "event CARS takes a payload"),
    ({"LAMP": ("RESET", [], None)}, "event RESET can emit effects"),
    ({"LAMP": ("BUTTON", "lamps", None)}, "must be \\(event name, list, instance key or None\\)"),
])
def test_answers_the_dispatcher_cannot_give_are_refused_when_configured(light, answers, error):
    with pytest.raises(dita.EngineError, match=error):
        dispatching(light, answers)
