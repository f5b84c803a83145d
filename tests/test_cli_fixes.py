"""The `dita` command where it met its docs badly: plugin commands that clash with another
command (docs/hooks.md: the other commands still work), a venue that DITA_LOAD_PLUGINS left
out (the message says so instead of "install it"), and output into a pipe its reader has
closed (`dita venues --json | head -1` ends quietly)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import dita
import dita.cli
from conftest import run_dita
from dita.plugins import VenueRegistry


def plugin(**hooks):
    return type("Plugin", (), {name: staticmethod(dita.hookimpl(fn)) for name, fn in hooks.items()})()


def _returns(code):
    return lambda args: code


# ---------------------------------------------------------------------------- colliding plugin commands

def test_a_colliding_command_is_skipped_alone_and_every_other_command_works(capsys, monkeypatch):
    def clash(subparsers):
        subparsers.add_parser("venues", help="clash").set_defaults(func=_returns(5))   # dita's own
        subparsers.add_parser("clash-ok", help="fine").set_defaults(func=_returns(6))

    def other(subparsers):
        subparsers.add_parser("other-cmd", help="another plugin's").set_defaults(func=_returns(7))
        subparsers.add_parser("clash-ok", help="taken by dita-clash")   # a clash between plugins

    reg = VenueRegistry(load_entry_points=False)
    reg.add_plugin(plugin(dita_add_commands=clash), name="clash", distribution="dita-clash")
    reg.add_plugin(plugin(dita_add_commands=other), name="other", distribution="dita-other")
    monkeypatch.setattr("dita.cli.default_registry", lambda: reg)
    assert dita.cli.main(["other-cmd"]) == 7
    assert dita.cli.main(["clash-ok"]) == 6
    err = capsys.readouterr().err
    assert ("dita: warning: plugin 'dita-clash': command 'venues' is skipped: `dita venues` already exists "
            "(built in)") in err
    assert ("dita: warning: plugin 'dita-other': command 'clash-ok' is skipped: `dita clash-ok` already exists "
            "(added by plugin 'dita-clash')") in err
    # the built-in command is still dita's
    monkeypatch.setattr("dita.cli.venues", lambda args: 0)
    parser = dita.cli.build_parser()
    assert parser.parse_args(["venues", "--json"]).json is True


def test_a_plugin_whose_hook_raises_loses_its_own_commands_only(capsys, monkeypatch):
    def half(subparsers):
        subparsers.add_parser("half-done", help="added before the error")
        raise RuntimeError("oops")

    def other(subparsers):
        subparsers.add_parser("other-cmd").set_defaults(func=_returns(7))

    reg = VenueRegistry(load_entry_points=False)
    reg.add_plugin(plugin(dita_add_commands=half), name="half", distribution="dita-half")
    reg.add_plugin(plugin(dita_add_commands=other), name="other", distribution="dita-other")
    monkeypatch.setattr("dita.cli.default_registry", lambda: reg)
    assert dita.cli.main(["other-cmd"]) == 7
    assert ("dita: warning: plugin 'dita-half' could not add its commands: RuntimeError: oops "
            "(its commands 'half-done' are left out)") in capsys.readouterr().err
    with pytest.raises(SystemExit):
        dita.cli.main(["half-done"])
    assert "half-done" not in dita.cli.build_parser().format_help()


@pytest.fixture
def clashing_site(tmp_path):
    """An installed-looking plugin (a .dist-info on PYTHONPATH) adding `venues` and `boom`."""
    site = tmp_path / "site"
    (site / "badcmd_pkg").mkdir(parents=True)
    (site / "badcmd_pkg" / "__init__.py").write_text(
        "import dita\n"
        "def show(args):\n    raise dita.DitaError('boom from plugin')\n"
        "@dita.hookimpl\n"
        "def dita_add_commands(subparsers):\n"
        "    subparsers.add_parser('venues', help='clash').set_defaults(func=show)\n"
        "    subparsers.add_parser('boom', help='raises').set_defaults(func=show)\n")
    info = site / "dita_badcmd-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: dita-badcmd\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[dita]\nbadcmd = badcmd_pkg\n")
    return {"PYTHONPATH": str(site)}


def test_an_installed_plugin_with_a_colliding_command_hides_no_other_plugins_command(tmp_path, clashing_site):
    run = run_dita("bingx-sim", "--help", cwd=tmp_path, env=clashing_site)
    assert run.returncode == 0, run.stderr
    assert "usage: dita bingx-sim" in run.stdout
    assert run.stderr == ("dita: warning: plugin 'dita-badcmd': command 'venues' is skipped: `dita venues` already "
                          "exists (built in). Hint: the plugin must use another name\n")
    boom = run_dita("boom", cwd=tmp_path, env=clashing_site)
    assert (boom.returncode, boom.stderr.splitlines()[-1]) == (1, "dita: boom from plugin")


# ---------------------------------------------------------------------------- DITA_LOAD_PLUGINS

def test_a_venue_left_out_by_dita_load_plugins_says_so(monkeypatch):
    monkeypatch.setenv("DITA_LOAD_PLUGINS", "nosuch")
    monkeypatch.delenv("DITA_DISABLE_PLUGINS", raising=False)
    with pytest.raises(dita.PluginError) as err:
        VenueRegistry().create("mock")
    message = str(err.value)
    assert message.startswith("no venue named 'mock' (registered: none installed)")
    assert ("plugin 'dita-mock' (entry point 'mock') is installed but not loaded: DITA_LOAD_PLUGINS='nosuch' "
            "does not name it") in message
    assert "DITA_LOAD_PLUGINS names 'nosuch', which is no installed plugin" in message
    assert "install its plugin package" not in message


def test_a_venue_left_out_by_dita_disable_plugins_says_so(monkeypatch):
    monkeypatch.delenv("DITA_LOAD_PLUGINS", raising=False)
    monkeypatch.setenv("DITA_DISABLE_PLUGINS", "dita-mock")
    with pytest.raises(dita.PluginError) as err:
        VenueRegistry().create("mock")
    message = str(err.value)
    assert ("plugin 'dita-mock' (entry point 'mock') is installed but not loaded: DITA_DISABLE_PLUGINS='dita-mock' "
            "names it") in message
    assert "which is no installed plugin" not in message and "install its plugin package" not in message


def test_a_venue_that_is_not_installed_still_gets_the_install_hint(monkeypatch):
    monkeypatch.setenv("DITA_LOAD_PLUGINS", "mock")
    with pytest.raises(dita.PluginError) as err:
        VenueRegistry().create("kraken")
    message = str(err.value)
    assert message.startswith("no venue named 'kraken' (registered: mock); not loaded because of "
                              "DITA_LOAD_PLUGINS / DITA_DISABLE_PLUGINS: ")
    assert "'dita-bingx'" in message and message.endswith("; install its plugin package, e.g. dita-kraken")


def test_the_kernel_reports_the_variable_end_to_end(tmp_path):
    code = "import dita\ntry:\n    dita.Kernel(venue='mock')\nexcept dita.PluginError as e:\n    print(e)\n"
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "DITA_LOAD_PLUGINS": "nosuch"})
    assert "DITA_LOAD_PLUGINS='nosuch' does not name it" in run.stdout, run.stdout + run.stderr


# ---------------------------------------------------------------------------- a closed pipe

@pytest.fixture
def journal_path(tmp_path):
    from dita_mock import MockVenue
    from conftest import enter

    path = tmp_path / "run.sqlite"
    k = dita.Kernel(venue=MockVenue(prices={"BTC-USDT": "60000"}), slots=1, capital="1000", journal=path)
    enter(k)
    k.close()
    return path


@pytest.mark.parametrize("args", [["venues", "--json"], ["venues"], ["spec", "graph"], ["spec", "check"],
                                  ["journal", "show", "JOURNAL"], ["journal", "replay", "JOURNAL"]])
def test_output_into_a_closed_pipe_ends_quietly(tmp_path, journal_path, args):
    args = [str(journal_path) if a == "JOURNAL" else a for a in args]
    read_end, write_end = os.pipe()
    os.close(read_end)   # the reader is gone before dita writes a byte: every write meets EPIPE
    try:
        run = subprocess.run([sys.executable, "-m", "dita", *args], cwd=tmp_path, stdout=write_end,
                             stderr=subprocess.PIPE, text=True, timeout=300)
    finally:
        os.close(write_end)
    assert run.stderr == "", run.stderr
    assert run.returncode == dita.cli.EXIT_BROKEN_PIPE


# ---------------------------------------------------------------------------- conformance: rounding direction

ROUNDING_VARIANTS = {
    # the auditor's venue: both formatters round half up (format_quantity('SOL-USDT', '0.58') == '0.6')
    "halfup": ("ROUND_HALF_UP", "ROUND_HALF_UP", "ROUND_HALF_UP",
               ["test_limit_prices_are_on_the_grid_and_never_move_against_the_trader",
                "test_sizes_are_rounded_down_to_the_size_step",
                "test_sizes_below_the_minimum_are_refused_before_anything_is_sent"]),
    # sizes to the nearest step, half to even, prices right
    "sizeeven": ("ROUND_FLOOR", "ROUND_CEILING", "ROUND_HALF_EVEN",
                 ["test_sizes_are_rounded_down_to_the_size_step",
                  "test_sizes_below_the_minimum_are_refused_before_anything_is_sent"]),
    # a buy right, a sell to the nearest tick
    "sellnear": ("ROUND_FLOOR", "ROUND_HALF_UP", "ROUND_FLOOR",
                 ["test_limit_prices_are_on_the_grid_and_never_move_against_the_trader"]),
}


@pytest.mark.parametrize("variant", sorted(ROUNDING_VARIANTS))
def test_the_suite_fails_a_venue_that_rounds_to_the_nearest_step_however_it_breaks_ties(tmp_path, variant):
    buy, sell, size, expected = ROUNDING_VARIANTS[variant]
    name = f"paper-{variant}"
    site = tmp_path / "site"
    (site / f"rounding_{variant}").mkdir(parents=True)
    (site / f"rounding_{variant}" / "__init__.py").write_text(
        "from decimal import Decimal\n"
        "import dita\n"
        "from dita_paper import INSTRUMENTS, PaperHarness, PaperVenue\n"
        "class V(PaperVenue):\n"
        "    def format_price(self, asset, price, side):\n"
        f"        rounding = {buy!r} if side == 'BUY' else {sell!r}\n"
        "        return self._price_text(asset, self._to_ticks(asset, Decimal(price), rounding))\n"
        "    def format_quantity(self, asset, quantity):\n"
        "        step = INSTRUMENTS[asset].size_increment\n"
        f"        return self._size_text(asset, int((Decimal(quantity) / step).to_integral_value({size!r})))\n"
        "class H(PaperHarness):\n"
        f"    name = {name!r}\n"
        "    venue_class = V\n"
        "@dita.hookimpl\n"
        f"def dita_register_venues(register):\n    register({name!r}, V)\n"
        "@dita.hookimpl\n"
        f"def dita_register_harnesses(register):\n    register({name!r}, H)\n")
    info = site / f"dita_rounding_{variant}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: dita-rounding-{variant}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[dita]\n{name} = rounding_{variant}\n")
    run = run_dita("conformance", "--venue", name, "--", "-k", "grid or rounded or minimum", cwd=tmp_path,
                   env={"PYTHONPATH": str(site)})
    failed = sorted(line.split("::")[1].split("[")[0] for line in run.stdout.splitlines() if line.startswith("FAILED "))
    assert failed == expected, run.stdout[-3000:]
