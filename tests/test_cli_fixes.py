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
