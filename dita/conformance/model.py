"""The reference venue: what the conformance suite expects a venue to do, in ~100 lines.

The suite plans its transition paths on this venue (it is fast, deterministic and copyable),
then replays each path on the venue under test, which must answer the same way:

- ``submit``: ``REJECT`` if a reject was scripted, with a reason that contains the scripted
  one verbatim (a venue may add to it, e.g. the exchange's error code; this model adds
  nothing); otherwise ``ORDER_ACK``, then, for an order that is marketable (MARKET, or
  LIMIT at or through the market), one fill of all of it.
  A LIMIT order away from the market rests. A reduce-only order larger than what its
  position has left to close (the position its fills made, less the remainders of the
  reduce-only orders already working on it) is answered ``REJECT``, as a venue that honours
  reduce-only must: otherwise an exit sent while a late fill is still on its way could
  close more than is held.
- ``cancel``: if a fill-before-cancel was scripted, the order's remainder fills first; a
  cancel of an order that is no longer working, or a scripted cancel reject, is answered
  ``CANCEL_REJECT``; otherwise ``CANCEL_ACK``.
- a harness ``fill`` is one fill event: ``FULL_FILL`` if it completes the order, else
  ``PARTIALLY_FILLED``; it arrives through ``poll``.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from dita.conformance import VenueHarness
from dita.types import Instrument, VenueEvent
from dita.venue import Venue


def _grid(value: Decimal, step: Decimal, rounding) -> str:
    return format((Decimal(value) / step).to_integral_value(rounding=rounding) * step, "f")


class ModelVenue(Venue):
    """An in-memory venue with one instrument; its state is plain data, so it deep-copies."""

    INSTRUMENT = Instrument(Decimal("0.1"), Decimal("0.001"), Decimal("0.001"), None)

    def __init__(self, price="100"):
        self.market = {"TEST-USDT": Decimal(price)}
        self.orders: dict[str, dict] = {}
        self.requests: list[dict] = []
        self._pending: list[VenueEvent] = []
        self._reject: list[str] = []
        self._cancel_reject: list[str] = []
        self._fill_before_cancel = 0
        #: (asset, position side) -> the position the fills made.
        self.positions: dict[tuple[str, str], Decimal] = {}

    def instruments(self):
        return {"TEST-USDT": self.INSTRUMENT}

    def copy(self) -> "ModelVenue":
        """An independent copy (orders are flat dicts; requests and events are never mutated)."""
        new = object.__new__(ModelVenue)
        new.__dict__.update(self.__dict__)
        new.market = dict(self.market)
        new.orders = {k: dict(o) for k, o in self.orders.items()}
        new.positions = dict(self.positions)
        new.requests = list(self.requests)
        new._pending = list(self._pending)
        new._reject = list(self._reject)
        new._cancel_reject = list(self._cancel_reject)
        return new

    def format_price(self, asset, price, side):
        return _grid(price, self.INSTRUMENT.price_increment, ROUND_FLOOR if side == "BUY" else ROUND_CEILING)

    def format_quantity(self, asset, quantity):
        return _grid(quantity, self.INSTRUMENT.size_increment, ROUND_FLOOR)

    def _event(self, o, kind, **kw):
        o["events"] += 1
        return VenueEvent(kind, f"{o['coid']}:{o['events']}", o["coid"], venue_order_id=o["id"], **kw)

    def _fill(self, o, qty, price=None):
        o["filled"] += qty
        key = (o["asset"], o["position_side"])
        self.positions[key] = self.positions.get(key, Decimal(0)) + (-qty if o["reduce_only"] else qty)
        if o["filled"] == o["quantity"]:
            o["live"] = False
        px = price if price is not None else (o["price"] or self.market[o["asset"]])
        return self._event(o, "FULL_FILL" if not o["live"] else "PARTIALLY_FILLED", filled_size=qty, fill_price=px,
                           fee=Decimal(0))

    def submit(self, order):
        price = None if order.limit_price is None else self.format_price(order.asset, order.limit_price, order.side)
        self.requests.append({"action": "submit", "asset": order.asset, "side": order.side,
                              "order_type": order.order_type,
                              "quantity": self.format_quantity(order.asset, order.quantity), "price": price,
                              "client_order_id": order.client_order_id, "reduce_only": bool(order.reduce_only)})
        o = {"coid": order.client_order_id, "id": f"R{len(self.orders) + 1}", "asset": order.asset,
             "side": order.side, "type": order.order_type, "quantity": Decimal(order.quantity),
             "price": None if price is None else Decimal(price), "filled": Decimal(0), "live": True, "events": 0,
             "position_side": order.position_side, "reduce_only": bool(order.reduce_only)}
        key = (o["asset"], o["position_side"])
        closing = sum((w["quantity"] - w["filled"] for w in self.orders.values()
                       if w["live"] and w["reduce_only"] and (w["asset"], w["position_side"]) == key), Decimal(0))
        self.orders[o["coid"]] = o
        if self._reject:
            o["live"] = False
            return [self._event(o, "REJECT", reason=self._reject.pop(0))]
        if o["reduce_only"] and o["quantity"] > self.positions.get(key, Decimal(0)) - closing:
            o["live"] = False
            return [self._event(o, "REJECT", reason="reduce-only order exceeds the position left to close")]
        events = [self._event(o, "ORDER_ACK")]
        mkt = self.market[o["asset"]]
        if o["price"] is None or (mkt <= o["price"] if o["side"] == "BUY" else mkt >= o["price"]):
            events.append(self._fill(o, o["quantity"], mkt))
        return events

    def cancel(self, order):
        self.requests.append({"action": "cancel", "asset": order.asset, "side": order.side,
                              "order_type": order.order_type, "quantity": None, "price": None,
                              "client_order_id": order.client_order_id, "reduce_only": bool(order.reduce_only)})
        o = self.orders.get(order.client_order_id)
        if o is None or o["asset"] != order.asset:
            return [VenueEvent("CANCEL_REJECT", f"cancel:{order.client_order_id}:unknown", order.client_order_id,
                               reason="unknown order")]
        events = []
        if self._fill_before_cancel and o["live"]:
            self._fill_before_cancel -= 1
            events.append(self._fill(o, o["quantity"] - o["filled"]))
        if not o["live"]:
            return events + [self._event(o, "CANCEL_REJECT", reason="order is not working")]
        if self._cancel_reject:
            return events + [self._event(o, "CANCEL_REJECT", reason=self._cancel_reject.pop(0))]
        o["live"] = False
        return events + [self._event(o, "CANCEL_ACK")]

    def poll(self):
        out, self._pending = self._pending, []
        return out

    def query(self, order):
        return []


class ModelHarness(VenueHarness):
    """The harness of :class:`ModelVenue`."""

    name = "reference"
    asset = "TEST-USDT"

    def new_venue(self):
        self.venue = ModelVenue()
        return self.venue

    def copy(self) -> "ModelHarness":
        new = ModelHarness()
        new.venue = self.venue.copy()
        return new

    def price(self, asset):
        return self.venue.market[asset]

    def set_price(self, asset, price):
        v = self.venue
        v.market[asset] = Decimal(price)
        for o in v.orders.values():
            if o["live"] and o["asset"] == asset and o["price"] is not None and (
                    v.market[asset] <= o["price"] if o["side"] == "BUY" else v.market[asset] >= o["price"]):
                v._pending.append(v._fill(o, o["quantity"] - o["filled"]))

    def fill(self, client_order_id, quantity, price=None):
        o = self.venue.orders[client_order_id]
        quantity = Decimal(quantity)
        if not (o["live"] and 0 < quantity <= o["quantity"] - o["filled"]):
            raise ValueError(f"cannot fill {quantity} of {client_order_id}")
        self.venue._pending.append(self.venue._fill(o, quantity, None if price is None else Decimal(price)))

    def reject_next_submit(self, reason="rejected by the conformance suite"):
        self.venue._reject.append(reason)

    def reject_next_cancel(self, reason="cancel rejected by the conformance suite"):
        self.venue._cancel_reject.append(reason)

    def fill_before_next_cancel(self):
        self.venue._fill_before_cancel += 1

    def received(self):
        return [dict(r) for r in self.venue.requests]
