"""Shared fixtures: kernels on the mock venue, built directly (not through entry points)."""

from __future__ import annotations

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
