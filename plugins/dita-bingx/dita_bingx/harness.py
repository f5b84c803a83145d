"""The conformance harness: how the core's conformance suite drives a BingX market.

Each :meth:`BingXHarness.new_venue` starts a fresh simulator (a fresh market and account)
and returns a :class:`BingXVenue` pointed at it; the other methods act on the market of the
venue made last.
"""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Any

import dita
from dita.conformance import VenueHarness

from dita_bingx.simulator import BingXSimulator
from dita_bingx.venue import BingXVenue

# Refusal codes used for scripted rejects: documented, and definitive refusals (BINGX.md §3).
SUBMIT_REJECT_CODE = 101204
CANCEL_REJECT_CODE = 109400


class BingXHarness(VenueHarness):
    """``BingXHarness()``: the conformance suite's handle on a simulated BingX market."""

    name = "bingx"
    asset = "BTC-USDT"

    def __init__(self):
        self._sims: list[BingXSimulator] = []
        self._venues: list[BingXVenue] = []
        self.sim: BingXSimulator | None = None

    def new_venue(self) -> dita.Venue:
        key, secret = "harness-" + secrets.token_hex(6), secrets.token_hex(16)
        # A large balance: the suite's sizes should never meet a margin refusal by accident.
        sim = BingXSimulator(api_key=key, api_secret=secret, balance="10000000").start()
        venue = BingXVenue(api_key=key, api_secret=secret, base_url=sim.base_url, retry_backoff=0.02, timeout=5.0)
        venue.name = self.name
        self._sims.append(sim)
        self._venues.append(venue)
        self.sim = sim
        return venue

    def _market(self) -> BingXSimulator:
        if self.sim is None:
            raise RuntimeError("BingXHarness: call new_venue() first")
        return self.sim

    def price(self, asset: str) -> Decimal:
        return self._market().price(asset)

    def set_price(self, asset: str, price: Any) -> None:
        self._market().set_price(asset, price)

    def fill(self, client_order_id: str, quantity: Any, price: Any = None) -> None:
        self._market().fill(client_order_id, quantity, price)

    def reject_next_submit(self, reason: str = "Insufficient margin") -> None:
        self._market().inject("place_order", "error", code=SUBMIT_REJECT_CODE, msg=reason)

    def reject_next_cancel(self, reason: str = "the order cannot be cancelled now") -> None:
        self._market().inject("cancel_order", "error", code=CANCEL_REJECT_CODE, msg=reason)

    def fill_before_next_cancel(self) -> None:
        self._market().inject("cancel_order", "fill_before_cancel")

    def received(self) -> list[dict]:
        """Every place and cancel request the exchange accepted as authentic, normalized."""
        sim = self._market()
        orders = {o["clientOrderId"]: o for o in sim.orders()}
        out = []
        for entry in list(sim.requests):
            if not entry["authenticated"] or entry["endpoint"] not in ("place_order", "cancel_order"):
                continue
            p = entry["params"]
            coid = p.get("clientOrderID") or p.get("clientOrderId")
            if entry["endpoint"] == "place_order":
                out.append({"action": "submit", "asset": p.get("symbol"), "side": p.get("side"),
                            "order_type": p.get("type"), "quantity": p.get("quantity"), "price": p.get("price"),
                            "client_order_id": coid, "reduce_only": p.get("reduceOnly") == "true"})
            else:
                known = orders.get((coid or "").lower()) or {}
                out.append({"action": "cancel", "asset": p.get("symbol"), "side": known.get("side"),
                            "order_type": known.get("type"), "quantity": None, "price": None,
                            "client_order_id": coid, "reduce_only": bool(known.get("reduceOnly", False))})
        return out

    def close(self) -> None:
        for venue in self._venues:
            venue.close()
        for sim in self._sims:
            sim.close()
        self._venues.clear()
        self._sims.clear()
        self.sim = None
