"""dita-mock: an in-process venue with a controllable market.

Marketable orders (MARKET, or LIMIT at or through the market) fill at once by
``entry_fill_ratio`` / ``exit_fill_ratio`` of their size; what does not fill rests, as
does a LIMIT order away from the market. ``set_price`` fills, entirely, the resting
orders the new price crosses; ``fill`` reports one fill of any size, for tests. As it declares,
the mock honours reduce-only: it keeps each (asset, position side)'s position from its fills
and rejects a reduce-only order larger than what the position has left to close (what
other working reduce-only orders do not already close), as BingX does. ``script_reject``,
``script_cancel_reject`` and ``script_fill_before_cancel`` make the venue misbehave on
purpose, for tests. With ``silent=True`` the venue records and executes every request
but answers none of them: the caller delivers the venue's events itself (tests and
benchmarks of ``Kernel.on_venue_event``). :class:`MockHarness` lets the conformance suite
drive it.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import dita
from dita import Instrument, Order, Venue, VenueEvent
from dita.conformance import VenueHarness

DEFAULT_INSTRUMENTS = {
    "BTC-USDT": Instrument(Decimal("0.1"), Decimal("0.001"), Decimal("0.001"), Decimal("5")),
    "ETH-USDT": Instrument(Decimal("0.01"), Decimal("0.01"), Decimal("0.01"), Decimal("5")),
    "TRX-USDT": Instrument(Decimal("0.000001"), Decimal("1"), Decimal("1"), Decimal("2")),
}
_GENERIC = Instrument(Decimal("0.01"), Decimal("0.001"), Decimal("0.001"), None)


def _plain(d: Decimal) -> str:
    """Decimal as plain text, never in exponent notation."""
    return format(d, "f")


def _step(value: Decimal, step: Decimal, rounding) -> Decimal:
    return (value / step).to_integral_value(rounding=rounding) * step


@dataclass
class MockOrder:
    order: Order
    venue_order_id: str
    filled: Decimal = Decimal(0)
    status: str = "NEW"
    events: list = field(default_factory=list)

    @property
    def remaining(self) -> Decimal:
        return self.order.quantity - self.filled


def _option(name: str, value) -> Decimal:
    """A decimal option, or a ValueError naming it."""
    try:
        result = Decimal(str(value))
    except ArithmeticError:
        raise ValueError(f"{name} must be a decimal number, got {value!r}") from None
    if not result.is_finite():
        raise ValueError(f"{name} must be finite, got {value!r}")
    return result


class MockVenue(Venue):
    # Its positions are kept per (asset, position side): a SHORT never nets against a LONG.
    capabilities = frozenset({"MARKET", "LIMIT", "reduce_only", "hedge_mode"})

    def __init__(self, prices=None, entry_fill_ratio="1", exit_fill_ratio="1", fee_rate="0", instruments=None,
                 silent=False):
        self.silent = bool(silent)
        self.prices = {a: _option(f"prices[{a!r}]", p) for a, p in (prices or {"BTC-USDT": "60000"}).items()}
        self.entry_fill_ratio = _option("entry_fill_ratio", entry_fill_ratio)
        self.exit_fill_ratio = _option("exit_fill_ratio", exit_fill_ratio)
        for name, r in (("entry_fill_ratio", self.entry_fill_ratio), ("exit_fill_ratio", self.exit_fill_ratio)):
            if not Decimal(0) <= r <= Decimal(1):
                raise ValueError(f"{name} must be between 0 and 1, got {r}")
        self.fee_rate = _option("fee_rate", fee_rate)
        self._instruments = dict(DEFAULT_INSTRUMENTS)
        self._instruments.update(instruments or {})
        for asset in self.prices:
            self._instruments.setdefault(asset, _GENERIC)
        self.orders: dict[str, MockOrder] = {}
        self.received: list[dict] = []   # every request as it would go on the wire
        self._pending: list[VenueEvent] = []
        self._ids = itertools.count(1)
        self._reject_next: list[str] = []
        self._cancel_reject_next: list[str] = []
        self._fill_before_cancel = 0
        #: (asset, position side) -> the position the mock's fills made.
        self.positions: dict[tuple[str, str], Decimal] = {}

    # -- declaration -------------------------------------------------------------------
    def instruments(self):
        return dict(self._instruments)

    def format_price(self, asset, price, side):
        tick = self._instruments[asset].price_increment
        return _plain(_step(Decimal(price), tick, ROUND_FLOOR if side == "BUY" else ROUND_CEILING))

    def format_quantity(self, asset, quantity):
        return _plain(_step(Decimal(quantity), self._instruments[asset].size_increment, ROUND_FLOOR))

    # -- scripting ---------------------------------------------------------------------
    def script_reject(self, reason="insufficient margin"):
        """The next submit is rejected with ``reason``."""
        self._reject_next.append(reason)

    def script_cancel_reject(self, reason="order is being processed"):
        """The next cancel is refused; the order keeps working."""
        self._cancel_reject_next.append(reason)

    def script_fill_before_cancel(self):
        """The next cancel races a fill: the order's remainder fills before the cancel lands."""
        self._fill_before_cancel += 1

    def set_price(self, asset, price):
        """Moves the market; resting LIMIT orders the price crosses fill. Returns the events
        (they also wait for ``poll``)."""
        self.prices[asset] = Decimal(str(price))
        out = []
        for mo in list(self.orders.values()):
            if mo.status in ("NEW", "PARTIALLY_FILLED") and mo.order.asset == asset and self._crosses(mo.order):
                out += self._fill(mo, Decimal(1), at=mo.order.limit_price or self.prices[asset])
        self._pending += out
        return out

    def fill(self, client_order_id, quantity, price=None):
        """Reports one fill of ``quantity`` of a working order (it waits for ``poll``)."""
        mo = self.orders[client_order_id]
        quantity = Decimal(str(quantity))
        if not Decimal(0) < quantity <= mo.remaining:
            raise ValueError(f"fill of {quantity} for {client_order_id}: {mo.remaining} remains")
        at = Decimal(str(price)) if price is not None else (mo.order.limit_price or self.prices[mo.order.asset])
        events = self._fill(mo, None, at, quantity=quantity)
        self._pending += events
        return events

    # -- trading -----------------------------------------------------------------------
    def _event(self, mo, kind, **kw):
        ev = VenueEvent(kind, f"{mo.order.client_order_id}:{len(mo.events) + 1}", mo.order.client_order_id,
                        venue_order_id=mo.venue_order_id, **kw)
        mo.events.append(ev)
        return ev

    def _ratio(self, order):
        return self.exit_fill_ratio if order.reduce_only else self.entry_fill_ratio

    def _crosses(self, order):
        if order.order_type == "MARKET":
            return True
        px = self.prices[order.asset]
        return px <= order.limit_price if order.side == "BUY" else px >= order.limit_price

    def _fill(self, mo, ratio, at, quantity=None):
        """Fills ``quantity`` of the order, or its remainder times ``ratio`` on the size step."""
        if quantity is not None:
            qty = quantity
        else:
            step = self._instruments[mo.order.asset].size_increment
            qty = _step(mo.remaining * ratio, step, ROUND_FLOOR) if ratio < 1 else mo.remaining
            if qty <= 0:
                qty = mo.remaining if ratio > 0 else Decimal(0)
        if qty <= 0:
            return []
        mo.filled += qty
        key = (mo.order.asset, mo.order.position_side)
        self.positions[key] = self.positions.get(key, Decimal(0)) + (-qty if mo.order.reduce_only else qty)
        done = mo.filled == mo.order.quantity
        mo.status = "FILLED" if done else "PARTIALLY_FILLED"
        fee = qty * at * self.fee_rate
        return [self._event(mo, "FULL_FILL" if done else "PARTIALLY_FILLED", filled_size=qty, fill_price=at, fee=fee)]

    def submit(self, order):
        events = self._submit(order)
        return [] if self.silent else events

    def cancel(self, order):
        events = self._cancel(order)
        return [] if self.silent else events

    def _submit(self, order):
        wire = {"action": "submit", "client_order_id": order.client_order_id, "asset": order.asset,
                "side": order.side, "position_side": order.position_side, "type": order.order_type,
                "quantity": self.format_quantity(order.asset, order.quantity), "reduce_only": order.reduce_only,
                "leverage": None if order.leverage is None else _plain(order.leverage)}
        if order.limit_price is not None:
            wire["price"] = self.format_price(order.asset, order.limit_price, order.side)
        self.received.append(wire)
        if order.client_order_id in self.orders:
            raise dita.VenueError(f"duplicate client order id {order.client_order_id!r}")
        mo = MockOrder(order, f"M{next(self._ids)}")
        self.orders[order.client_order_id] = mo
        if self._reject_next:
            mo.status = "REJECTED"
            return [self._event(mo, "REJECT", reason=self._reject_next.pop(0))]
        if order.reduce_only and order.quantity > (closable := self._closable(order)):
            mo.status = "REJECTED"
            return [self._event(mo, "REJECT", reason=f"reduce-only order of {_plain(order.quantity)} exceeds the "
                                                      f"{_plain(closable)} of the position left to close")]
        events = [self._event(mo, "ORDER_ACK")]
        if self._crosses(order):
            events += self._fill(mo, self._ratio(order), at=self.prices[order.asset])
        return events

    def _closable(self, order):
        """What a new reduce-only order may close: the position, less the remainders of the
        reduce-only orders already working on it."""
        key = (order.asset, order.position_side)
        working = sum((mo.remaining for mo in self.orders.values()
                       if mo.order.reduce_only and mo.order is not order and mo.status in ("NEW", "PARTIALLY_FILLED")
                       and (mo.order.asset, mo.order.position_side) == key), Decimal(0))
        return self.positions.get(key, Decimal(0)) - working

    def _cancel(self, order):
        self.received.append({"action": "cancel", "client_order_id": order.client_order_id, "asset": order.asset,
                              "venue_order_id": order.venue_order_id})
        mo = self.orders.get(order.client_order_id)
        if mo is None or mo.order.asset != order.asset:
            # A fresh id each time, in every process: each refusal is news (see the BingX venue).
            return [VenueEvent("CANCEL_REJECT", f"cancel-unknown:{order.client_order_id}:{uuid.uuid4().hex[:16]}",
                               order.client_order_id, reason=f"no order {order.client_order_id} on {order.asset}")]
        events = []
        if self._fill_before_cancel and mo.status in ("NEW", "PARTIALLY_FILLED"):
            self._fill_before_cancel -= 1
            events += self._fill(mo, Decimal(1), at=mo.order.limit_price or self.prices[mo.order.asset])
        if mo.status not in ("NEW", "PARTIALLY_FILLED"):
            return events + [self._event(mo, "CANCEL_REJECT", reason=f"order is {mo.status}")]
        if self._cancel_reject_next:
            return events + [self._event(mo, "CANCEL_REJECT", reason=self._cancel_reject_next.pop(0))]
        mo.status = "CANCELED"
        return events + [self._event(mo, "CANCEL_ACK")]

    def poll(self):
        out, self._pending = self._pending, []
        return out

    def query(self, order):
        mo = self.orders.get(order.client_order_id)
        return list(mo.events) if mo else []


class MockHarness(VenueHarness):
    """How the conformance suite drives the mock: every control maps onto the mock's own."""

    name = "mock"
    asset = "BTC-USDT"

    def new_venue(self):
        self.venue = MockVenue(prices={"BTC-USDT": "60000", "ETH-USDT": "3000"}, fee_rate="0.0004")
        return self.venue

    def price(self, asset):
        return self.venue.prices[asset]

    def set_price(self, asset, price):
        self.venue.set_price(asset, price)

    def fill(self, client_order_id, quantity, price=None):
        self.venue.fill(client_order_id, quantity, price)

    def reject_next_submit(self, reason="rejected by the conformance suite"):
        self.venue.script_reject(reason)

    def reject_next_cancel(self, reason="cancel rejected by the conformance suite"):
        self.venue.script_cancel_reject(reason)

    def fill_before_next_cancel(self):
        self.venue.script_fill_before_cancel()

    def received(self):
        out = []
        for wire in self.venue.received:
            if wire["action"] == "submit":
                out.append({"action": "submit", "asset": wire["asset"], "side": wire["side"],
                            "order_type": wire["type"], "quantity": wire["quantity"], "price": wire.get("price"),
                            "client_order_id": wire["client_order_id"], "reduce_only": wire["reduce_only"]})
            else:
                # The mock's cancel request carries ids and asset only; the order says the rest.
                mo = self.venue.orders.get(wire["client_order_id"])
                order = mo.order if mo else None
                out.append({"action": "cancel", "asset": wire["asset"], "side": order.side if order else None,
                            "order_type": order.order_type if order else None, "quantity": None, "price": None,
                            "client_order_id": wire["client_order_id"],
                            "reduce_only": order.reduce_only if order else False})
        return out


@dita.hookimpl
def dita_register_venues(register):
    register("mock", MockVenue)


@dita.hookimpl
def dita_register_harnesses(register):
    register("mock", MockHarness)
