"""The plugin framework: registration all or nothing, refusals that name the distribution
and the problem, the switches, and every hook documented and tested."""

from __future__ import annotations

import inspect
import re
import textwrap
from pathlib import Path

import pytest

import dita
from dita import hookspecs
from dita.conformance import VenueHarness
from dita.plugins import VenueRegistry
from dita_mock import MockHarness, MockVenue

ROOT = Path(__file__).resolve().parent.parent


def plugin(**hooks):
    """A plugin object with the given hook implementations (marked with @dita.hookimpl)."""
    return type("Plugin", (), {name: staticmethod(dita.hookimpl(fn)) for name, fn in hooks.items()})()


class NoPriceFormatter(dita.Venue):
    format_quantity = MockVenue.format_quantity
    instruments = MockVenue.instruments
    submit = MockVenue.submit
    cancel = MockVenue.cancel
    poll = MockVenue.poll
    query = MockVenue.query


def test_a_plugin_registers_its_venue_and_harness():
    reg = VenueRegistry(load_entry_points=False)
    reg.add_plugin(plugin(dita_register_venues=lambda register: register("m2", MockVenue),
                          dita_register_harnesses=lambda register: register("m2", MockHarness)),
                   name="m2", distribution="dita-m2", version="1.2")
    entry = reg.entries()["m2"]
    # The mock keeps positions per asset and position side, so it declares hedge_mode.
    assert (entry.distribution, entry.version, entry.capabilities) == (
        "dita-m2", "1.2", frozenset({"MARKET", "LIMIT", "reduce_only", "hedge_mode"}))
    assert isinstance(reg.create("m2", {"prices": {"BTC-USDT": "1"}}), MockVenue)
    harness = reg.create_harness("m2")
    assert isinstance(harness, MockHarness) and harness.name == "mock"


def test_a_venue_without_a_formatter_refuses_the_whole_plugin_and_names_it():
    reg = VenueRegistry(load_entry_points=False)
    bad = plugin(dita_register_venues=lambda register: (register("good", MockVenue),
                                                        register("bad", NoPriceFormatter)),
                 dita_register_harnesses=lambda register: register("good", MockHarness))
    with pytest.raises(dita.PluginError) as info:
        reg.add_plugin(bad, name="bad", distribution="dita-bad")
    assert str(info.value) == ("plugin 'dita-bad' is refused: venue 'bad' (NoPriceFormatter) does not implement "
                               "format_price; a venue must declare its format_price formatter")
    assert isinstance(info.value, ImportError)
    # Nothing of it is left behind: not the good venue it registered first, not its harness.
    assert (reg.entries(), reg.harness_entries(), reg.pm.get_plugins()) == ({}, {}, set())
    with pytest.raises(dita.PluginError, match=r"no venue named 'good' \(registered: none installed\)"):
        reg.create("good")


def test_a_name_already_taken_refuses_the_second_plugin():
    reg = VenueRegistry(load_entry_points=False)
    reg.add_plugin(plugin(dita_register_venues=lambda register: register("x", MockVenue)), name="a",
                   distribution="dita-a")
    second = plugin(dita_register_venues=lambda register: register("y", MockVenue),
                    dita_register_harnesses=lambda register: register("x", MockHarness))
    reg.add_plugin(plugin(dita_register_harnesses=lambda register: register("x", MockHarness)), name="h",
                   distribution="dita-h")
    with pytest.raises(dita.PluginError, match=r"plugin 'dita-b' is refused: it registers harness 'x', "
                                               r"already registered by 'dita-h'"):
        reg.add_plugin(second, name="b", distribution="dita-b")
    with pytest.raises(dita.PluginError, match=r"it registers venue 'x', already registered by 'dita-a'"):
        reg.add_plugin(plugin(dita_register_venues=lambda register: register("x", MockVenue)), name="c",
                       distribution="dita-c")
    assert sorted(reg.entries()) == ["x"] and reg.entries()["x"].distribution == "dita-a"


def test_a_misspelt_hook_is_refused_by_check_pending():
    reg = VenueRegistry(load_entry_points=False)
    typo = plugin(dita_register_venue=lambda register: register("t", MockVenue))
    with pytest.raises(dita.PluginError, match=r"plugin 'dita-typo' is refused: .*dita_register_venue"):
        reg.add_plugin(typo, name="typo", distribution="dita-typo")
    assert reg.entries() == {} and reg.pm.get_plugins() == set()


def test_a_plugin_that_implements_no_hook_is_refused_with_a_hint():
    class Unmarked:
        @staticmethod
        def dita_register_venues(register):  # the @dita.hookimpl marker is missing
            register("u", MockVenue)

    with pytest.raises(dita.PluginError, match=r"implements no dita hook \(Hint: mark its hook functions "
                                               r"with @dita.hookimpl\)"):
        VenueRegistry(load_entry_points=False).add_plugin(Unmarked(), name="u", distribution="dita-u")


@pytest.mark.parametrize("factory, message", [
    (type("Caps", (MockVenue,), {"capabilities": frozenset({"LIMIT", "trailing_stop"})}),
     "venue 'v' declares unknown capabilities trailing_stop (known: MARKET, LIMIT, reduce_only, hedge_mode)"),
    (type("NotAVenue", (), {}), "venue 'v' (NotAVenue) is not a subclass of dita.Venue"),
    (42, "the factory of venue 'v' is not callable"),
])
def test_bad_venue_declarations_are_refused_by_name(factory, message):
    with pytest.raises(dita.PluginError) as info:
        VenueRegistry(load_entry_points=False).add_plugin(
            plugin(dita_register_venues=lambda register: register("v", factory)), name="p", distribution="dita-p")
    assert str(info.value) == f"plugin 'dita-p' is refused: {message}"


def test_a_harness_missing_a_method_is_refused():
    class Partial(VenueHarness):
        new_venue = MockHarness.new_venue

    with pytest.raises(dita.PluginError) as info:
        VenueRegistry(load_entry_points=False).add_plugin(
            plugin(dita_register_harnesses=lambda register: register("p", Partial)), name="p", distribution="dita-p")
    assert str(info.value) == (
        "plugin 'dita-p' is refused: harness 'p' (Partial) does not implement fill, fill_before_next_cancel, "
        "price, received, reject_next_cancel, reject_next_submit, set_price")


def test_a_hook_that_raises_refuses_the_plugin_with_the_reason():
    def boom(register):
        register("ok", MockVenue)
        raise RuntimeError("no API key")

    reg = VenueRegistry(load_entry_points=False)
    with pytest.raises(dita.PluginError, match=r"plugin 'dita-boom' is refused: dita_register_venues raised "
                                               r"RuntimeError: no API key"):
        reg.add_plugin(plugin(dita_register_venues=boom), name="boom", distribution="dita-boom")
    assert reg.entries() == {}


# ---------------------------------------------------------------------------- entry points

def install_fake(site: Path, dist: str, module: str, source: str, ep_name: str | None = None) -> None:
    """A distribution on sys.path without pip: a module and its .dist-info."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{module}-0.3.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.3.0\n")
    (info / "entry_points.txt").write_text(f"[dita]\n{ep_name or dist.removeprefix('dita-')} = {module}\n")


GOOD = """
    import dita
    from dita_mock import MockVenue

    class OtherMock(MockVenue):
        capabilities = frozenset({"LIMIT", "hedge_mode"})

    @dita.hookimpl
    def dita_register_venues(register):
        register("other", OtherMock)
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("DITA_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("DITA_DISABLE_PLUGINS", raising=False)
    return tmp_path


def test_plugins_load_through_the_dita_entry_point_group(site):
    install_fake(site, "dita-other", "dita_other", GOOD)
    reg = VenueRegistry()
    entries = reg.entries()
    assert {n: (e.distribution, e.version) for n, e in entries.items() if n in ("mock", "other")} == {
        "mock": ("dita-mock", "0.1.0"), "other": ("dita-other", "0.3.0")}
    assert entries["other"].capabilities == frozenset({"LIMIT", "hedge_mode"})
    assert reg.refusals() == []


def test_a_plugin_that_cannot_be_imported_is_refused_and_the_others_still_load(site):
    install_fake(site, "dita-broken", "dita_broken", "import dita\nimport no_such_module_xyz\n")
    reg = VenueRegistry()
    assert "mock" in reg.entries()
    [refusal] = reg.refusals()
    assert refusal.distribution == "dita-broken"
    assert refusal.message == (
        "plugin 'dita-broken' (entry point 'broken') cannot be imported: ModuleNotFoundError: No module named "
        "'no_such_module_xyz'. Hint: fix or uninstall it, or skip it with DITA_DISABLE_PLUGINS=broken")
    with pytest.raises(dita.PluginError, match="refused plugins: plugin 'dita-broken'"):
        reg.create("broken")


def test_dita_load_plugins_and_dita_disable_plugins(site, monkeypatch):
    install_fake(site, "dita-other", "dita_other", GOOD)
    monkeypatch.setenv("DITA_LOAD_PLUGINS", "dita-other")          # a distribution name
    assert sorted(VenueRegistry().entries()) == ["other"]
    monkeypatch.setenv("DITA_LOAD_PLUGINS", "")                    # none at all
    assert VenueRegistry().entries() == {}
    monkeypatch.delenv("DITA_LOAD_PLUGINS")
    monkeypatch.setenv("DITA_DISABLE_PLUGINS", "mock, other")      # entry-point names
    assert not {"mock", "other"} & set(VenueRegistry().entries())
    monkeypatch.setenv("DITA_DISABLE_PLUGINS", "dita_other")       # normalized like pip does
    names = set(VenueRegistry().entries())
    assert "mock" in names and "other" not in names


# ---------------------------------------------------------------------------- commands

def test_a_plugin_adds_a_command_to_dita(capsys, monkeypatch):
    def add(subparsers):
        p = subparsers.add_parser("hello", help="say hello")
        p.add_argument("who")
        p.set_defaults(func=lambda args: print(f"hello {args.who}") or 7)

    reg = VenueRegistry(load_entry_points=False)
    reg.add_plugin(plugin(dita_add_commands=add), name="hello", distribution="dita-hello")
    monkeypatch.setattr("dita.cli.default_registry", lambda: reg)
    assert dita.cli.main(["hello", "world"]) == 7
    assert capsys.readouterr().out == "hello world\n"


def test_a_plugin_whose_command_fails_to_add_does_not_break_dita(capsys, monkeypatch):
    def clash(subparsers):
        subparsers.add_parser("venues")   # taken by dita itself

    reg = VenueRegistry(load_entry_points=False)
    reg.add_plugin(plugin(dita_add_commands=clash), name="clash", distribution="dita-clash")
    monkeypatch.setattr("dita.cli.default_registry", lambda: reg)
    assert dita.cli.main(["spec", "check"]) == 0
    err = capsys.readouterr().err
    # the clashing command alone is skipped, named with its plugin (tests/test_cli_fixes.py has more)
    assert err.startswith("dita: warning: plugin 'dita-clash': command 'venues' is skipped: `dita venues` "
                          "already exists (built in)")


# ---------------------------------------------------------------------------- meta

HOOKS = sorted(n for n, f in inspect.getmembers(hookspecs, inspect.isfunction) if n.startswith("dita_"))


def test_the_hooks_are_the_agreed_ones():
    assert HOOKS == ["dita_add_commands", "dita_register_harnesses", "dita_register_venues"]


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_with_its_signature_and_tested(hook):
    spec = getattr(hookspecs, hook)
    signature = f"{hook}{inspect.signature(spec).replace(return_annotation=inspect.Signature.empty)}"
    docs = (ROOT / "docs" / "hooks.md").read_text()
    assert f"## {signature}" in docs, f"docs/hooks.md has no heading '## {signature}'"
    assert ":param" in spec.__doc__ and "Example::" in spec.__doc__
    tests = "".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py") if p.name != "test_plugins.py")
    tests += Path(__file__).read_text().split("# ---------------------------------------------------------------------------- meta")[0]
    assert re.search(rf"\b{hook}\b", tests), f"no test uses {hook}"


def test_every_capability_is_explained_and_the_default_is_what_the_kernel_sends():
    from dita.venue import KNOWN_CAPABILITIES

    assert dita.Venue.capabilities == frozenset({"MARKET", "LIMIT", "reduce_only"}) <= set(KNOWN_CAPABILITIES)
    assert all(KNOWN_CAPABILITIES.values())
