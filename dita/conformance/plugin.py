"""The conformance suite's pytest plugin (entry point ``pytest11``: ``dita``).

Inert unless a test asks for one of its fixtures (``venue``, ``harness``,
``dita_venue_name``; a project's own fixture of the same name wins and is left alone): such a test is parametrised over every installed venue that
registered a conformance harness, narrowed with ``--dita-venue NAME`` (repeatable).
``--dita-spec PATH`` runs the suite against another spec than the packaged one. Tests
marked ``@pytest.mark.dita_requires("LIMIT", ...)`` are skipped for a venue that does not
declare those capabilities. At the end, a per-venue summary is printed, with the
transitions of the spec the venue covered.

dita itself is imported only when a test needs it, so an environment where dita is
installed pays nothing for this plugin in unrelated test runs.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

VENUE_FIXTURES = {"venue", "harness", "dita_venue_name"}
_RESULTS = pytest.StashKey[dict]()


def pytest_addoption(parser):
    group = parser.getgroup("dita", "DITA venue conformance")
    group.addoption("--dita-venue", action="append", default=[], metavar="NAME",
                    help="run the conformance tests only for this venue (repeatable)")
    group.addoption("--dita-spec", default=None, metavar="PATH",
                    help="run the conformance tests against this spec instead of the packaged one")


def pytest_configure(config):
    config.addinivalue_line("markers", "dita_requires(*capabilities): skip for a venue that does not declare "
                                       "these capabilities (see dita.venue.KNOWN_CAPABILITIES)")
    config.stash[_RESULTS] = defaultdict(lambda: {"passed": 0, "failed": 0, "skipped": 0, "transitions": {},
                                                  "unreachable": {}})


def _venue_names(config) -> list[str]:
    from dita.plugins import default_registry

    registry = default_registry()
    harnesses = registry.harness_entries()
    wanted = config.getoption("--dita-venue")
    for name in wanted:
        if name not in harnesses:
            venues = registry.entries()
            why = (f"venue {name!r} is installed but registered no conformance harness "
                   f"(hook dita_register_harnesses)" if name in venues else
                   f"no venue {name!r} with a conformance harness is installed")
            known = ", ".join(sorted(harnesses)) or "none"
            refused = "".join(f"; refused: {r.message}" for r in registry.refusals())
            raise pytest.UsageError(f"--dita-venue {name}: {why} (venues with a harness: {known}){refused}")
    return list(wanted) if wanted else sorted(harnesses)


def _asks_for_ours(metafunc) -> bool:
    """Whether the test uses this plugin's venue fixtures (a project may define its own
    ``venue`` fixture; its tests are then left alone)."""
    if "dita_venue_name" in metafunc.fixturenames:
        return True
    # pytest has no public way to see which definition of a fixture a test gets.
    defs = getattr(metafunc, "_arg2fixturedefs", None)
    for name in VENUE_FIXTURES & set(metafunc.fixturenames):
        chosen = defs.get(name) if defs is not None else None
        if not chosen or getattr(chosen[-1].func, "__module__", __name__) == __name__:
            return True
    return False


def pytest_generate_tests(metafunc):
    if not _asks_for_ours(metafunc):
        return
    names = _venue_names(metafunc.config)
    # With no venue at all, one parameter that skips says so, rather than pytest's
    # anonymous "got empty parameter set".
    metafunc.parametrize("dita_venue_name", names or [None], ids=names or ["no-venue"])
    if "dita_transition" in metafunc.fixturenames:
        from dita.conformance.driver import transitions_of
        from dita.spec import load_machine

        transitions = transitions_of(load_machine(metafunc.config.getoption("--dita-spec")).describe())
        metafunc.parametrize("dita_transition", transitions,
                             ids=[f"{t.state}.{t.event}[{t.index}]" for t in transitions])


@pytest.fixture
def dita_spec(request):
    """The spec the suite runs against (None: the packaged one)."""
    return request.config.getoption("--dita-spec")


@pytest.fixture
def harness(dita_venue_name, request):
    """A new conformance harness of the venue under test, closed after the test."""
    if dita_venue_name is None:
        pytest.skip("no installed venue registered a conformance harness")
    from dita.plugins import default_registry
    from dita.venue import Venue

    registry = default_registry()
    entry = registry.entries().get(dita_venue_name)
    declared = (entry.capabilities if entry is not None else None)
    declared = declared if declared is not None else Venue.capabilities
    for mark in request.node.iter_markers("dita_requires"):
        missing = [c for c in mark.args if c not in declared]
        if missing:
            pytest.skip(f"venue {dita_venue_name!r} does not declare {', '.join(missing)}")
    h = registry.create_harness(dita_venue_name)
    try:
        yield h
    finally:
        h.close()


@pytest.fixture
def venue(harness):
    """A fresh venue on a fresh market, from the harness."""
    return harness.new_venue()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    params = getattr(getattr(item, "callspec", None), "params", {})
    venue = params.get("dita_venue_name")
    if venue is not None:
        r = item.config.stash[_RESULTS][venue]
        tests = r.setdefault("tests", {})
        if report.failed:
            outcome = "failed"
        elif report.skipped:
            outcome = "skipped"
        elif report.when == "call":
            outcome = "passed"
        else:
            outcome = None
        if outcome is not None and tests.get(item.nodeid) != "failed":
            tests[item.nodeid] = outcome
            t = params.get("dita_transition")
            if t is not None:
                r["transitions"][t] = outcome
                if outcome == "skipped" and isinstance(report.longrepr, tuple):
                    r["unreachable"][t] = str(report.longrepr[2]).removeprefix("Skipped: ")
                if outcome == "passed" and dict(item.user_properties).get("dita_synthetic"):
                    r.setdefault("synthetic", set()).add(t)
    return report


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    results = config.stash.get(_RESULTS, None)
    if not results:
        return
    tr = terminalreporter
    tr.section("dita conformance")
    for venue, r in sorted(results.items()):
        tests = list(r.get("tests", {}).values())
        tr.write_line(f"venue {venue}: {tests.count('passed')} passed, {tests.count('failed')} failed, "
                      f"{tests.count('skipped')} skipped")
        transitions = r["transitions"]
        if not transitions:
            continue
        covered = [t for t, o in transitions.items() if o == "passed"]
        synthetic = r.get("synthetic", set())
        tr.write_line(f"  transitions covered: {len(covered)}/{len(transitions)}"
                      f" ({len(synthetic)} of them through a synthetic event)")
        for t, o in sorted(transitions.items()):
            if o == "failed":
                tr.write_line(f"  FAILED      {t}")
        for t, why in sorted(r["unreachable"].items()):
            tr.write_line(f"  not covered {t}: {why}")
