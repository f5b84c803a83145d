"""Shared fixtures: kernels on the mock venue, built directly (not through entry points)."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal

import pytest

import dita
from dita_mock import MockVenue

D = Decimal


def make_kernel(slots=1, capital="1000", **venue_options):
    venue_options.setdefault("prices", {"BTC-USDT": "60000", "ETH-USDT": "3000"})
    return dita.Kernel(venue=MockVenue(**venue_options), slots=slots, capital=D(capital))


def enter(k, slot=0, intent="e1", trade="t1", size="0.010", side="LONG", asset="BTC-USDT", order_type="MARKET",
          limit_price=None, ratios=()):
    return k.process_intent(dita.KernelIntent("ENTER", slot, intent, trade_id=trade, asset=asset, side=side,
                                              target_size=size, order_type=order_type, limit_price=limit_price,
                                              exit_leg_ratios=ratios))


def exit_(k, slot=0, intent="x1", order_type="MARKET", limit_price=None):
    return k.process_intent(dita.KernelIntent("EXIT", slot, intent, order_type=order_type, limit_price=limit_price))


def cancel(k, slot=0, intent="c1"):
    return k.process_intent(dita.KernelIntent("CANCEL", slot, intent))


def assert_account_identity(k):
    a = k.account
    assert a.capital == a.starting_capital + a.realized_pnl
    assert a.realized_pnl == a.gross_realized_pnl - a.fees_paid


@pytest.fixture
def kernel():
    return make_kernel()


@pytest.fixture(scope="session", autouse=True)
def _conformance_plan_cache(tmp_path_factory):
    """The conformance suite caches its transition paths on disk; this run plans afresh, in
    a cache of its own that the subprocesses it starts share."""
    os.environ["DITA_CACHE_DIR"] = str(tmp_path_factory.mktemp("dita-cache"))


def run_dita(*args, cwd, env=None, timeout=300):
    """``dita ARGS`` in a subprocess (outside the source folder, which has no engine)."""
    return subprocess.run([sys.executable, "-m", "dita", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)
