"""Against the real BingX VST demo exchange (virtual USDT). Runs only when BINGX_API_KEY and
BINGX_API_SECRET are set, for a VST account; it places one LIMIT buy far below the market
and cancels it."""

from __future__ import annotations

import os
import uuid
from decimal import ROUND_CEILING, Decimal as D

import pytest

import dita
from dita_bingx import wire

pytestmark = pytest.mark.skipif(
    not (os.environ.get("BINGX_API_KEY") and os.environ.get("BINGX_API_SECRET")),
    reason="live VST test: set BINGX_API_KEY and BINGX_API_SECRET of a BingX VST (demo) account")


def test_vst_resting_order_is_placed_seen_and_cancelled():
    k = dita.Kernel(venue="bingx", capital=D("1000"), venue_options={"demo": True})
    venue = k.venue
    try:
        assert venue.base_url == wire.VST_URL
        instrument = venue.instruments()["BTC-USDT"]
        assert "USDT" in venue.balance()
        price = D(venue.format_price("BTC-USDT", venue.mark_price("BTC-USDT") * D("0.8"), "BUY"))
        minimum = max(instrument.min_size, instrument.size_increment)
        if instrument.min_notional:   # comfortably above the minimum order value
            needed = (instrument.min_notional * D("1.5") / price / instrument.size_increment)
            minimum = max(minimum, needed.to_integral_value(rounding=ROUND_CEILING) * instrument.size_increment)
        run = uuid.uuid4().hex[:12]   # BingX keeps client order ids unique per account, forever
        out = k.process_intent(dita.KernelIntent("ENTER", 0, f"vst-{run}", trade_id=run, asset="BTC-USDT",
                                                 side="LONG", target_size=minimum, order_type="LIMIT",
                                                 limit_price=price))
        assert out.state == "ENTRY_WORKING", k.slot(0).record.get("last_order_end")
        order = k.order(venue.client_order_id(dita.KernelIntent("CANCEL", 0, f"vst-{run}")))
        assert [e.kind for e in venue.query(order)] == ["ORDER_ACK"]
        assert k.poll() == []
        out = k.process_intent(dita.KernelIntent("CANCEL", 0, f"vst-c-{run}"))
        assert out.state == "IDLE", k.slot(0).record.get("last_order_end")
    finally:
        venue.close()
