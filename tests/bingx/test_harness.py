"""The conformance harness and the plugin's hooks (venue, command, harness)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from decimal import Decimal as D
from pathlib import Path

import httpx
import pluggy
import pytest

import dita
import dita_bingx
from dita.plugins import VenueRegistry
from dita_bingx import simulator
from dita_bingx.harness import BingXHarness

from .conftest import cancel, enter, exit_


@pytest.fixture
def harness():
    h = BingXHarness()
    yield h
    h.close()


def test_harness_drives_a_kernel_through_every_scripted_behaviour(harness):
    assert harness.name == "bingx"
    k = dita.Kernel(venue=harness.new_venue(), capital=D("1000"))
    assert harness.price("BTC-USDT") == D("60000")

    assert enter(k, size="0.010", order_type="LIMIT", limit_price="59000").state == "ENTRY_WORKING"
    coid = k.slot(0).active_entry_order.client_order_id
    harness.fill(coid, "0.004")                       # exactly that much, at the limit
    assert [o.state for o in k.poll()] == ["ENTRY_WORKING"]
    assert (k.slot(0).size, k.slot(0).entry_price) == (D("0.004"), D("59000.0"))
    harness.set_price("BTC-USDT", "58900")            # the move crosses the rest
    assert [o.state for o in k.poll()] == ["POSITION_OPEN"]
    assert k.slot(0).size == D("0.010")

    harness.reject_next_submit("margin is not enough")
    out = exit_(k, "x1")
    assert out.state == "POSITION_OPEN"
    assert k.slot(0).record["last_order_end"] == "BingX 101204: margin is not enough"

    assert exit_(k, "x2", order_type="LIMIT", limit_price="65000").state == "EXIT_WORKING"
    harness.reject_next_cancel("busy")
    assert cancel(k, "c1").state == "EXIT_WORKING"
    assert k.slot(0).record["last_order_end"] == "BingX 109400: busy"
    harness.fill_before_next_cancel()
    out = cancel(k, "c2")
    assert out.state == "TRADE_TERMINAL_WRITTEN"      # the exit filled before the cancel reached it
    assert k.account.gross_realized_pnl == (D("65000") - D("59000")) * D("0.010")

    assert harness.received() == [
        {"action": "submit", "asset": "BTC-USDT", "side": "BUY", "order_type": "LIMIT", "quantity": "0.0100",
         "price": "59000.0", "client_order_id": "dita-e1", "reduce_only": False},
        {"action": "submit", "asset": "BTC-USDT", "side": "SELL", "order_type": "MARKET", "quantity": "0.0100",
         "price": None, "client_order_id": "dita-x1", "reduce_only": True},
        {"action": "submit", "asset": "BTC-USDT", "side": "SELL", "order_type": "LIMIT", "quantity": "0.0100",
         "price": "65000.0", "client_order_id": "dita-x2", "reduce_only": True},
        {"action": "cancel", "asset": "BTC-USDT", "side": "SELL", "order_type": "LIMIT", "quantity": None,
         "price": None, "client_order_id": "dita-x2", "reduce_only": True},
        {"action": "cancel", "asset": "BTC-USDT", "side": "SELL", "order_type": "LIMIT", "quantity": None,
         "price": None, "client_order_id": "dita-x2", "reduce_only": True},
    ]
    k2 = dita.Kernel(venue=harness.new_venue(), capital=D("1000"))   # a fresh market
    assert harness.received() == [] and harness.price("BTC-USDT") == D("60000")
    assert enter(k2, size="0.010").state == "POSITION_OPEN"


def test_harness_needs_a_venue_first(harness):
    with pytest.raises(RuntimeError, match="call new_venue"):
        harness.price("BTC-USDT")


def test_the_plugin_registers_its_venue_through_the_entry_point():
    registry = VenueRegistry()
    entry = registry.entries()["bingx"]
    assert (entry.factory, entry.distribution) == (dita_bingx.BingXVenue, "dita-bingx")


def test_the_plugin_implements_only_declared_hooks_and_registers_venue_harness_and_command():
    # Every hook the plugin implements is declared by the core (check_pending would refuse
    # a misspelt one): the venue, the conformance harness and the command.
    pm = pluggy.PluginManager("dita")
    pm.add_hookspecs(dita.hookspecs)
    pm.register(dita_bingx)
    pm.check_pending()
    assert {caller.name for caller in pm.get_hookcallers(dita_bingx)} == {
        "dita_register_venues", "dita_register_harnesses", "dita_add_commands"}

    # Through the registry the CLI and the suite use, from the installed entry point.
    registry = VenueRegistry()
    assert [r for r in registry.refusals() if r.distribution == "dita-bingx"] == []
    assert registry.entries()["bingx"].factory is dita_bingx.BingXVenue
    entry = registry.harness_entries()["bingx"]
    assert (entry.factory, entry.distribution) == (BingXHarness, "dita-bingx")
    harness = registry.create_harness("bingx")
    try:
        assert isinstance(harness, BingXHarness) and harness.name == "bingx"
    finally:
        harness.close()
    parser = argparse.ArgumentParser(prog="dita")
    registry.add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["bingx-sim", "--port", "0", "--api-key", "k", "--price", "BTC-USDT=61000"])
    assert (args.func, args.port, args.api_key, args.price) == (simulator.run, 0, "k", ["BTC-USDT=61000"])


def test_the_dita_command_offers_bingx_sim():
    script = Path(sys.executable).with_name("dita")
    result = subprocess.run([str(script), "bingx-sim", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: dita bingx-sim")
    for option in ("--port", "--api-key", "--api-secret", "--price"):
        assert option in result.stdout
    assert "warning" not in result.stderr
    listed = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert "bingx-sim" in listed.stdout


def test_the_simulator_command_serves_until_terminated():
    proc = subprocess.Popen([sys.executable, "-m", "dita_bingx.simulator", "--port", "0", "--api-key", "cli-key",
                             "--api-secret", "cli-secret", "--price", "BTC-USDT=61000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=os.path.dirname(__file__))
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("BingX simulator listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        mark = httpx.get(url + "/openApi/swap/v2/quote/premiumIndex?symbol=BTC-USDT", timeout=5).json()
        assert mark["data"]["markPrice"] == "61000"
        with dita_bingx.BingXVenue(api_key="cli-key", api_secret="cli-secret", base_url=url) as venue:
            assert venue.balance()["USDT"]["balance"] == D("100000")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err


def test_the_console_script_is_installed_and_documents_its_options():
    script = Path(sys.executable).with_name("dita-bingx-sim")
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    for option in ("--port", "--api-key", "--api-secret", "--price", "--liquidity", "--strict", "--hedge"):
        assert option in result.stdout


def test_the_simulator_command_refuses_bad_values():
    with pytest.raises(SystemExit, match="--price takes SYMBOL=VALUE, got 'BTC-USDT'"):
        simulator.main(["--price", "BTC-USDT"])
    assert simulator.main(["--price", "NOPE-USDT=1"]) == 2
