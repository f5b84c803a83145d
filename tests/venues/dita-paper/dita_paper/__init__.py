"""dita-paper: a paper-trading venue, the one docs/adding-a-venue.md builds.

Its own small design: prices and sizes live as integers (ticks and lots of the
instrument), so nothing off the grid can exist inside the venue; the wire text has the
instrument's fixed number of decimals, as exchanges print it. A LIMIT order rests until
the market crosses it, then fills entirely at its price; a MARKET order fills at once at
the market. As it declares, it honours reduce-only: a reduce-only order larger than what
its position has left to close is rejected.
"""

from __future__ import annotations

import itertools
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import dita
from dita.conformance import VenueHarness

INSTRUMENTS = {
    "SOL-USDT": dita.Instrument(Decimal("0.01"), Decimal("0.1"), Decimal("0.1"), Decimal("5")),
    "DOGE-USDT": dita.Instrument(Decimal("0.00001"), Decimal("1"), Decimal("10"), Decimal("5")),
}
START_PRICES = {"SOL-USDT": Decimal("142.37"), "DOGE-USDT": Decimal("0.15234")}


def _places(step: Decimal) -> int:
    return max(0, -step.normalize().as_tuple().exponent)


class PaperVenue(dita.Venue):
    capabilities = frozenset({"MARKET", "LIMIT", "reduce_only"})

    def __init__(self, prices=None, fee_rate="0.0005"):
        self.ticks = {a: self._to_ticks(a, Decimal(str(p))) for a, p in (prices or START_PRICES).items()}
        self.fee_rate = Decimal(fee_rate)
        self.book: dict[str, dict] = {}      # client order id -> order
        self.wire: list[dict] = []           # every request, as sent
        self.outbox: list[dita.VenueEvent] = []
        self.ids = itertools.count(1)
        self.scripted_rejects: list[str] = []
        self.scripted_cancel_rejects: list[str] = []
        self.fills_before_cancel = 0
        self.positions: dict[tuple[str, str], int] = {}  # (asset, position side) -> lots

    # -- the declaration ---------------------------------------------------------------
    def instruments(self):
        return dict(INSTRUMENTS)

    def _to_ticks(self, asset, price, rounding=ROUND_FLOOR) -> int:
        return int((price / INSTRUMENTS[asset].price_increment).to_integral_value(rounding=rounding))

    def _to_lots(self, asset, qty) -> int:
        return int((qty / INSTRUMENTS[asset].size_increment).to_integral_value(rounding=ROUND_FLOOR))

    def _price_text(self, asset, ticks: int) -> str:
        tick = INSTRUMENTS[asset].price_increment
        return f"{ticks * tick:.{_places(tick)}f}"

    def _size_text(self, asset, lots: int) -> str:
        step = INSTRUMENTS[asset].size_increment
        return f"{lots * step:.{_places(step)}f}"

    def format_price(self, asset, price, side):
        # A buy never pays more than asked, a sell never receives less.
        rounding = ROUND_FLOOR if side == "BUY" else ROUND_CEILING
        return self._price_text(asset, self._to_ticks(asset, Decimal(price), rounding))

    def format_quantity(self, asset, quantity):
        return self._size_text(asset, self._to_lots(asset, Decimal(quantity)))

    # -- trading -----------------------------------------------------------------------
    def _event(self, o, kind, **fields):
        o["reports"] += 1
        return dita.VenueEvent(kind, f"{o['id']}-{o['reports']}", o["coid"], venue_order_id=o["id"], **fields)

    def _fill(self, o, lots: int, ticks: int):
        o["filled"] += lots
        key = (o["asset"], o["position_side"])
        self.positions[key] = self.positions.get(key, 0) + (-lots if o["reduce_only"] else lots)
        done = o["filled"] == o["lots"]
        if done:
            o["status"] = "FILLED"
        qty = Decimal(self._size_text(o["asset"], lots))
        price = Decimal(self._price_text(o["asset"], ticks))
        return self._event(o, "FULL_FILL" if done else "PARTIALLY_FILLED", filled_size=qty, fill_price=price,
                           fee=qty * price * self.fee_rate)

    def _crossed(self, o) -> bool:
        market = self.ticks[o["asset"]]
        return o["ticks"] is None or (market <= o["ticks"] if o["side"] == "BUY" else market >= o["ticks"])

    def submit(self, order):
        request = {"action": "submit", "symbol": order.asset, "side": order.side, "type": order.order_type,
                   "qty": self.format_quantity(order.asset, order.quantity), "clientId": order.client_order_id,
                   "reduceOnly": order.reduce_only,
                   "price": None if order.limit_price is None else
                   self.format_price(order.asset, order.limit_price, order.side)}
        self.wire.append(request)
        o = {"coid": order.client_order_id, "id": f"P{next(self.ids)}", "asset": order.asset, "side": order.side,
             "type": order.order_type, "lots": self._to_lots(order.asset, Decimal(request["qty"])),
             "ticks": None if request["price"] is None else self._to_ticks(order.asset, Decimal(request["price"])),
             "filled": 0, "status": "NEW", "reports": 0, "reduce_only": order.reduce_only,
             "position_side": order.position_side}
        self.book[o["coid"]] = o
        if self.scripted_rejects:
            o["status"] = "REJECTED"
            return [self._event(o, "REJECT", reason=self.scripted_rejects.pop(0))]
        if o["reduce_only"] and o["lots"] > self._closable_lots(o):
            o["status"] = "REJECTED"
            return [self._event(o, "REJECT", reason="reduce-only order exceeds the position left to close")]
        events = [self._event(o, "ORDER_ACK")]
        if self._crossed(o):
            events.append(self._fill(o, o["lots"] - o["filled"], self.ticks[o["asset"]]))
        return events

    def _closable_lots(self, new) -> int:
        """The position of the new order's side, less what working reduce-only orders close."""
        key = (new["asset"], new["position_side"])
        working = sum(o["lots"] - o["filled"] for o in self.book.values() if o is not new and o["reduce_only"]
                      and o["status"] == "NEW" and (o["asset"], o["position_side"]) == key)
        return self.positions.get(key, 0) - working

    def cancel(self, order):
        self.wire.append({"action": "cancel", "symbol": order.asset, "clientId": order.client_order_id})
        o = self.book.get(order.client_order_id)
        if o is None or o["asset"] != order.asset:
            return [dita.VenueEvent("CANCEL_REJECT", f"cancel-{next(self.ids)}", order.client_order_id,
                                    reason=f"no order {order.client_order_id} on {order.asset}")]
        events = []
        if self.fills_before_cancel and o["status"] == "NEW":
            self.fills_before_cancel -= 1
            events.append(self._fill(o, o["lots"] - o["filled"], o["ticks"] or self.ticks[o["asset"]]))
        if o["status"] != "NEW":
            return events + [self._event(o, "CANCEL_REJECT", reason=f"order is {o['status']}")]
        if self.scripted_cancel_rejects:
            return events + [self._event(o, "CANCEL_REJECT", reason=self.scripted_cancel_rejects.pop(0))]
        o["status"] = "CANCELED"
        return events + [self._event(o, "CANCEL_ACK")]

    def poll(self):
        out, self.outbox = self.outbox, []
        return out

    def query(self, order):
        return []  # paper trading keeps no history; every answer is delivered at once or by poll

    # -- the market (driven by the harness) ----------------------------------------------
    def move(self, asset, price):
        self.ticks[asset] = self._to_ticks(asset, Decimal(str(price)))
        for o in self.book.values():
            if o["status"] == "NEW" and o["asset"] == asset and self._crossed(o):
                self.outbox.append(self._fill(o, o["lots"] - o["filled"], o["ticks"]))


class PaperHarness(VenueHarness):
    name = "paper"
    asset = "SOL-USDT"
    venue_class = PaperVenue

    def new_venue(self):
        self.venue = self.venue_class()
        return self.venue

    def price(self, asset):
        return Decimal(self.venue._price_text(asset, self.venue.ticks[asset]))

    def set_price(self, asset, price):
        self.venue.move(asset, price)

    def fill(self, client_order_id, quantity, price=None):
        v = self.venue
        o = v.book[client_order_id]
        lots = v._to_lots(o["asset"], Decimal(quantity))
        if o["status"] != "NEW" or not 0 < lots <= o["lots"] - o["filled"]:
            raise ValueError(f"cannot fill {quantity} of {client_order_id}")
        ticks = v._to_ticks(o["asset"], Decimal(price)) if price is not None else (o["ticks"] or v.ticks[o["asset"]])
        v.outbox.append(v._fill(o, lots, ticks))

    def reject_next_submit(self, reason="rejected by the conformance suite"):
        self.venue.scripted_rejects.append(reason)

    def reject_next_cancel(self, reason="cancel rejected by the conformance suite"):
        self.venue.scripted_cancel_rejects.append(reason)

    def fill_before_next_cancel(self):
        self.venue.fills_before_cancel += 1

    def received(self):
        out = []
        for w in self.venue.wire:
            o = self.venue.book.get(w["clientId"], {})
            out.append({"action": w["action"], "asset": w["symbol"], "side": w.get("side", o.get("side")),
                        "order_type": w.get("type", o.get("type")), "quantity": w.get("qty"),
                        "price": w.get("price"), "client_order_id": w["clientId"],
                        "reduce_only": bool(w.get("reduceOnly", o.get("reduce_only", False)))})
        return out


@dita.hookimpl
def dita_register_venues(register):
    register("paper", PaperVenue)


@dita.hookimpl
def dita_register_harnesses(register):
    register("paper", PaperHarness)
