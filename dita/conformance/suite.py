"""The conformance tests every venue plugin must pass.

Run them with ``dita conformance [--venue NAME]``, or from a plugin's own tests with a
one-line test file::

    from dita.conformance.suite import *  # noqa: F401,F403

Every test takes the ``harness`` fixture, so it runs once per installed venue that
registered a harness (``--dita-venue NAME`` narrows it). Three groups:

- ``test_transition``: one test per transition of the spec (``--dita-spec`` to use another
  spec), replaying the shortest driver path to it on the venue
  (:mod:`dita.conformance.driver`); a transition no path reaches is skipped with the reason.
- the behaviour DESIGN.md promises: cancels, races, multi-leg exits, settlement,
  duplicates, unknown orders;
- the formatters and the wire: every price and size on the instrument's grid, LIMIT prices
  never moved against the trader, sizes below the minimum refused before anything is sent,
  the full intent received, what the venue received equal to what the slot records.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import pytest

from dita.conformance.driver import (ENTRY_OFFSET, EXIT_OFFSET, Transition, WrappedVenue, lot_size, plan_for,
                                     replay)
from dita.kernel import Kernel
from dita.types import KernelIntent, VenueEvent



# ---------------------------------------------------------------------------- helpers

class RecordingVenue(WrappedVenue):
    """The venue under test, with every event it reports kept (to deliver them again)."""

    def __init__(self, inner):
        super().__init__(inner)
        self.events: list[VenueEvent] = []

    def _keep(self, events):
        events = list(events or ())
        self.events.extend(events)
        return events

    def submit(self, order):
        return self._keep(self.inner.submit(order))

    def cancel(self, order):
        return self._keep(self.inner.cancel(order))

    def poll(self):
        return self._keep(self.inner.poll())

    def query(self, order):
        return self.inner.query(order)


class Desk:
    """A kernel of two slots on the harness's venue, with the suite's habits: sizes in lots
    (a multiple of the instrument's step, above every minimum), entries resting below the
    market and exits above it unless asked otherwise."""

    def __init__(self, harness, spec=None):
        self.harness = harness
        self.raw = harness.new_venue()
        self.venue = RecordingVenue(self.raw)
        self.k = Kernel(venue=self.venue, slots=2, capital=Decimal("1000"), spec=spec)
        instruments = self.raw.instruments()
        self.asset = getattr(harness, "asset", None) or next(iter(instruments))
        self.inst = instruments[self.asset]
        self.tick, self.step = self.inst.price_increment, self.inst.size_increment
        self.market = Decimal(harness.price(self.asset))
        self.lot = lot_size(self.inst, self.market)
        self.n = 0

    def _id(self, prefix):
        self.n += 1
        return f"{prefix}{self.n}"

    def poll(self):
        """Applies everything the venue has reported; returns the outcomes."""
        return self.k.poll()

    def enter(self, slot=0, lots=8, size=None, side="LONG", order_type="LIMIT", price=None, ratios=()):
        if order_type == "LIMIT" and price is None:
            price = self.market * (ENTRY_OFFSET if side == "LONG" else EXIT_OFFSET)
        out = self.k.process_intent(KernelIntent(
            "ENTER", slot, self._id("e"), trade_id=self._id("t"), asset=self.asset, side=side,
            target_size=size if size is not None else self.lot * lots, order_type=order_type,
            limit_price=price if order_type == "LIMIT" else None, exit_leg_ratios=ratios))
        self.poll()
        return out

    def exit(self, slot=0, order_type="LIMIT", price=None):
        side = self.k.slot(slot).side
        if order_type == "LIMIT" and price is None:
            price = self.market * (EXIT_OFFSET if side == "LONG" else ENTRY_OFFSET)
        out = self.k.process_intent(KernelIntent("EXIT", slot, self._id("x"), order_type=order_type,
                                                 limit_price=price if order_type == "LIMIT" else None))
        self.poll()
        return out

    def cancel(self, slot=0):
        out = self.k.process_intent(KernelIntent("CANCEL", slot, self._id("c")))
        self.poll()
        return out

    def order(self, slot=0, role="entry"):
        coid = self.k.slot(slot).record[f"{role}_client_order_id"]
        return self.k.order(coid)

    def fill(self, order, quantity, price=None):
        """The venue fills ``quantity`` of ``order`` (at its limit price unless told); applied."""
        self.harness.fill(order.client_order_id, quantity, price if price is not None else order.limit_price)
        return self.poll()

    def open(self, slot=0, lots=8, ratios=(), side="LONG"):
        """A position of ``lots`` lots, entered at the entry order's limit price."""
        self.enter(slot, lots=lots, ratios=ratios, side=side)
        order = self.order(slot)
        self.fill(order, order.quantity)
        assert self.k.slot(slot).fsm_state == "POSITION_OPEN", self.k.slot(slot)
        return order


def check_wire(kernel: Kernel, harness) -> list[dict]:
    """Every request the venue received: on the instrument's grid, and exactly what the
    kernel sent (and so what the slot records), routed with the order's own asset."""
    received = harness.received()
    instruments = kernel.venue.instruments()
    for n, r in enumerate(received):
        where = f"request {n + 1} ({r.get('action')} {r.get('client_order_id')})"
        order = kernel.order(r["client_order_id"])
        assert order is not None, f"{where}: the venue received an order id the kernel never sent"
        assert r["asset"] == order.asset, f"{where}: routed to {r['asset']!r}, the order's asset is {order.asset!r}"
        inst = instruments[order.asset]
        if r["action"] == "submit":
            q = Decimal(r["quantity"])
            assert q % inst.size_increment == 0, f"{where}: quantity {r['quantity']} is not a multiple of {inst.size_increment}"
            assert q == order.quantity, f"{where}: the venue received quantity {r['quantity']}, the slot records {order.quantity}"
            if r["price"] is not None:
                p = Decimal(r["price"])
                assert p % inst.price_increment == 0, f"{where}: price {r['price']} is not a multiple of {inst.price_increment}"
                assert p == order.limit_price, f"{where}: the venue received price {r['price']}, the slot records {order.limit_price}"
            else:
                assert order.order_type == "MARKET", f"{where}: a {order.order_type} order reached the venue without a price"
            assert (r["side"], r["order_type"], bool(r["reduce_only"])) == (order.side, order.order_type, order.reduce_only), \
                f"{where}: received {r['side']} {r['order_type']} reduce_only={r['reduce_only']}, the kernel sent " \
                f"{order.side} {order.order_type} reduce_only={order.reduce_only}"
        else:
            assert r["action"] == "cancel", f"{where}: unknown action {r['action']!r}"
    return received


def _state(desk, slot=0):
    return desk.k.slot(slot).fsm_state


# ---------------------------------------------------------------------------- transitions

@pytest.mark.dita_requires("LIMIT")
def test_transition(harness, dita_transition: Transition, dita_spec, request):
    """The shortest driver path to this transition of the spec, replayed on the venue:
    every step must cause exactly the transitions it caused on the reference venue."""
    plan = plan_for(dita_spec)
    if dita_transition in plan.unreachable:
        pytest.skip(f"unreachable: {plan.unreachable[dita_transition]}")
    case = plan.cases[dita_transition]
    request.node.user_properties.append(("dita_synthetic", case.synthetic))
    session = replay(case, harness, dita_spec)
    t = dita_transition
    assert (t.state, t.event, t.target, t.index) in session.history[-1][1]
    check_wire(session.kernel, harness)


# ---------------------------------------------------------------------------- behaviour

@pytest.mark.dita_requires("LIMIT")
def test_cancel_of_a_working_entry_returns_the_slot_to_idle(harness, dita_spec):
    d = Desk(harness, dita_spec)
    d.enter()
    order = d.order()
    out = d.cancel()
    assert out.accepted and _state(d) == "IDLE", d.k.slot(0)
    s = d.k.slot(0)
    assert (s.size, s.active_entry_order) == (0, None)
    assert d.k.account.capital == Decimal("1000")
    cancel = [r for r in check_wire(d.k, harness) if r["action"] == "cancel"]
    assert [(r["client_order_id"], r["asset"]) for r in cancel] == [(order.client_order_id, d.asset)]


@pytest.mark.dita_requires("LIMIT")
def test_cancel_of_a_partly_filled_entry_keeps_exactly_the_filled_size(harness, dita_spec):
    d = Desk(harness, dita_spec)
    d.enter(lots=8)
    order = d.order()
    d.fill(order, d.lot * 3)
    assert _state(d) == "ENTRY_WORKING" and d.k.slot(0).size == d.lot * 3
    d.cancel()
    s = d.k.slot(0)
    assert (s.fsm_state, s.size, s.initial_size, s.entry_price) == ("POSITION_OPEN", d.lot * 3, d.lot * 3,
                                                                    order.limit_price)
    a = d.k.account
    assert a.capital == a.starting_capital + a.realized_pnl and a.realized_pnl == -a.fees_paid
    check_wire(d.k, harness)


@pytest.mark.dita_requires("LIMIT")
def test_cancel_of_a_working_exit_returns_to_the_open_position(harness, dita_spec):
    d = Desk(harness, dita_spec)
    d.open(lots=8)
    d.exit()
    assert _state(d) == "EXIT_WORKING"
    exit_order = d.order(role="exit")
    d.cancel()
    s = d.k.slot(0)
    assert (s.fsm_state, s.size, s.active_exit_order) == ("POSITION_OPEN", d.lot * 8, None)
    assert [r["client_order_id"] for r in check_wire(d.k, harness) if r["action"] == "cancel"] == \
        [exit_order.client_order_id]


@pytest.mark.dita_requires("LIMIT")
def test_a_fill_that_races_the_cancel_wins(harness, dita_spec):
    d = Desk(harness, dita_spec)
    d.enter(lots=8)
    harness.fill_before_next_cancel()
    d.cancel()
    s = d.k.slot(0)
    assert (s.fsm_state, s.size, s.initial_size) == ("POSITION_OPEN", d.lot * 8, d.lot * 8)
    check_wire(d.k, harness)


@pytest.mark.dita_requires("LIMIT")
def test_a_refused_cancel_leaves_the_order_working_and_it_can_be_cancelled_again(harness, dita_spec):
    d = Desk(harness, dita_spec)
    d.enter()
    harness.reject_next_cancel("busy")
    d.cancel()
    assert _state(d) == "ENTRY_WORKING" and d.k.slot(0).active_entry_order is not None
    d.cancel()
    assert _state(d) == "IDLE"
    check_wire(d.k, harness)


@pytest.mark.dita_requires("LIMIT")
def test_a_rejected_order_leaves_the_slot_free_for_the_next_trade(harness, dita_spec):
    d = Desk(harness, dita_spec)
    harness.reject_next_submit("insufficient margin")
    d.enter()
    s = d.k.slot(0)
    assert (s.size, s.active_entry_order) == (0, None)
    # The venue's reason may add to the scripted one (an exchange's error code), not replace it.
    assert "insufficient margin" in (s.last_order_end or ""), \
        f"the slot records the reject reason {s.last_order_end!r}, which lacks the scripted 'insufficient margin'"
    out = d.enter()
    assert out.accepted, out
    check_wire(d.k, harness)


@pytest.mark.dita_requires("LIMIT")
@pytest.mark.parametrize("ratios", [(), ("0.5", "0.5"), ("0.3", "0.3", "0.4")], ids=["1-leg", "2-legs", "3-legs"])
def test_multi_leg_exit_leaves_no_dust(harness, dita_spec, ratios):
    d = Desk(harness, dita_spec)
    ratios = tuple(Decimal(r) for r in ratios)
    d.open(lots=7, ratios=ratios)
    initial = d.k.slot(0).initial_size
    legs = []
    for i in range(max(len(ratios), 1)):
        d.exit()
        order = d.order(role="exit")
        legs.append(order.quantity)
        if i + 1 < len(ratios):  # leg i is initial x ratio_i, rounded down to the size step
            expected = (initial * ratios[i] / d.step).to_integral_value(rounding=ROUND_FLOOR) * d.step
            assert order.quantity == expected, (i, order.quantity, expected)
        else:                    # the last leg takes all that remains
            assert order.quantity == d.k.slot(0).size
        d.fill(order, order.quantity)
    s = d.k.slot(0)
    assert (s.fsm_state, s.size, s.closed, sum(legs)) == ("TRADE_TERMINAL_WRITTEN", 0, True, initial)
    assert [t["trade_id"] for t in d.k.trades] == [s.trade_id]
    check_wire(d.k, harness)


@pytest.mark.dita_requires("LIMIT")
def test_every_exit_fill_settles_into_the_account_at_once(harness, dita_spec):
    d = Desk(harness, dita_spec)
    entry = d.open(lots=8)
    d.exit()
    exit_order = d.order(role="exit")
    for lots in (2, 3, 3):
        before = d.k.account
        d.fill(exit_order, d.lot * lots)
        after = d.k.account
        gross = (exit_order.limit_price - entry.limit_price) * d.lot * lots
        fee = after.fees_paid - before.fees_paid
        assert fee >= 0
        assert after.gross_realized_pnl - before.gross_realized_pnl == gross
        assert after.realized_pnl - before.realized_pnl == gross - fee
        assert after.capital == after.starting_capital + after.realized_pnl
    assert _state(d) == "TRADE_TERMINAL_WRITTEN" and d.k.slot(0).size == 0
    check_wire(d.k, harness)


@pytest.mark.dita_requires("LIMIT")
def test_a_duplicate_of_every_event_changes_nothing(harness, dita_spec):
    d = Desk(harness, dita_spec)
    d.enter(lots=8)
    d.fill(d.order(), d.lot * 2)
    d.fill(d.order(), d.lot * 6)
    d.exit()
    d.fill(d.order(role="exit"), d.lot * 3)
    assert _state(d) == "EXIT_WORKING"
    slot, account = d.k.slot(0).record, d.k.account.as_dict()
    assert len(d.venue.events) >= 5
    for event in d.venue.events:
        out = d.k.on_venue_event(event)
        assert (out.accepted, out.diagnostic_code, out.transitions) == (False, "DUPLICATE_EVENT", ()), event
    assert (d.k.slot(0).record, d.k.account.as_dict()) == (slot, account)


FILL_KINDS = ("PARTIALLY_FILLED", "FULL_FILL")
ORDER_KINDS = ("ORDER_ACK", "CANCEL_ACK", "CANCEL_REJECT", "REJECT", "EXPIRED")


def well_formed(event: VenueEvent, issued: set[str]) -> list[str]:
    """What is wrong with one venue event, in words (nothing: an empty list)."""
    problems = []
    if event.kind not in FILL_KINDS + ORDER_KINDS:
        problems.append(f"kind {event.kind!r} is none of {', '.join(FILL_KINDS + ORDER_KINDS)}")
    if not isinstance(event.event_id, str) or not event.event_id:
        problems.append(f"event_id {event.event_id!r} is not a non-empty string")
    if event.client_order_id not in issued:
        problems.append(f"client_order_id {event.client_order_id!r} is not an order the kernel sent")
    for name in ("filled_size", "fill_price", "fee"):
        value = getattr(event, name)
        if value is not None and not isinstance(value, Decimal):
            problems.append(f"{name} {value!r} is a {type(value).__name__}, not an exact Decimal")
    if event.kind in FILL_KINDS:
        for name in ("filled_size", "fill_price"):
            if not isinstance(getattr(event, name), Decimal) or getattr(event, name) <= 0:
                problems.append(f"a fill needs a positive {name}, got {getattr(event, name)!r}")
    elif event.kind in ORDER_KINDS:
        # The kernel refuses these: the money riding on them would never reach the account.
        for name in ("filled_size", "fee"):
            if getattr(event, name) not in (None, 0):
                problems.append(f"{event.kind} reports no fill, yet carries {name}={getattr(event, name)}; "
                                f"report the fill as PARTIALLY_FILLED or FULL_FILL before it")
    return problems


@pytest.mark.dita_requires("LIMIT")
def test_every_event_the_venue_reports_is_well_formed(harness, dita_spec):
    """Over a session that acknowledges, fills in parts, cancels and exits in legs: each event
    is a kind the lifecycle knows, for an order the kernel sent, with a stable id, exact
    decimals, and a fill (size, price, fee) on fill events only."""
    d = Desk(harness, dita_spec)
    d.enter(lots=8)
    d.fill(d.order(), d.lot * 3)
    d.cancel()
    assert _state(d) == "POSITION_OPEN"
    d.exit()
    d.fill(d.order(role="exit"), d.lot)
    d.cancel()
    d.exit()
    d.fill(d.order(role="exit"), d.lot * 2)
    assert _state(d) == "TRADE_TERMINAL_WRITTEN"
    issued = {r["client_order_id"] for r in harness.received() if r["action"] == "submit"}
    kinds = {e.kind for e in d.venue.events}
    assert {"ORDER_ACK", "CANCEL_ACK"} <= kinds and kinds & set(FILL_KINDS), kinds
    problems = [f"{e!r}: {p}" for e in d.venue.events for p in well_formed(e, issued)]
    assert problems == [], "\n".join(problems)


def test_an_event_for_an_order_nobody_issued_is_refused(harness, dita_spec):
    d = Desk(harness, dita_spec)
    before = d.k.slot(0).record
    out = d.k.on_venue_event(VenueEvent("FULL_FILL", "ghost-1", "never-issued", filled_size=d.lot,
                                        fill_price=d.market, fee=Decimal(0)))
    assert (out.accepted, out.diagnostic_code, out.slot_id, out.transitions) == (False, "UNKNOWN_ORDER", None, ())
    assert d.k.slot(0).record == before and d.k.account.capital == Decimal("1000")


@pytest.mark.dita_requires("MARKET")
def test_a_market_entry_fills(harness, dita_spec):
    d = Desk(harness, dita_spec)
    out = d.enter(lots=4, order_type="MARKET")
    assert out.accepted
    s = d.k.slot(0)
    assert (s.fsm_state, s.size, s.initial_size) == ("POSITION_OPEN", d.lot * 4, d.lot * 4)
    assert harness.received()[0]["price"] is None
    check_wire(d.k, harness)


@pytest.mark.dita_requires("LIMIT")
def test_a_market_move_fills_the_resting_orders_it_crosses(harness, dita_spec):
    d = Desk(harness, dita_spec)
    d.enter(lots=8)
    order = d.order()
    harness.set_price(d.asset, order.limit_price - d.tick)
    d.poll()
    s = d.k.slot(0)
    assert s.size > 0 and s.size == s.entry_filled <= order.quantity
    assert s.fsm_state == ("POSITION_OPEN" if s.size == order.quantity else "ENTRY_WORKING")
    check_wire(d.k, harness)


# ---------------------------------------------------------------------------- formatters and the wire

# Where a price or size is put within one tick or step when probing the formatters: on the
# grid, a hair above, the fractions that separate rounding down from rounding to the nearest
# (below, at and above one half), and a hair below the next tick or step.
OFF_GRID_FRACTIONS = (Decimal(0), Decimal("0.01"), Decimal("0.37"), Decimal("0.5"), Decimal("0.58"),
                      Decimal("0.99"), Decimal("0.999999"))


def _off_grid_price(d, side_factor):
    """A price near the market with a fraction of a tick on it."""
    return d.market * side_factor + d.tick * Decimal("0.37")


@pytest.mark.dita_requires("LIMIT")
def test_limit_prices_are_on_the_grid_and_never_move_against_the_trader(harness, dita_spec):
    d = Desk(harness, dita_spec)
    buy_at, sell_at = _off_grid_price(d, ENTRY_OFFSET), _off_grid_price(d, EXIT_OFFSET)
    d.enter(slot=0, side="LONG", price=buy_at)      # a BUY: never rounded up
    buy = d.order(0)
    if "hedge_mode" not in d.k.venue.capabilities:
        d.cancel(0)   # a venue that nets the sides takes no SHORT beside a working LONG
    d.enter(slot=1, side="SHORT", price=sell_at)    # a SELL: never rounded down
    sell = d.order(1)
    assert (buy.side, sell.side) == ("BUY", "SELL")
    assert buy.limit_price == (buy_at / d.tick).to_integral_value(rounding=ROUND_FLOOR) * d.tick, \
        f"a BUY at {buy_at} went out at {buy.limit_price}"
    assert sell.limit_price == (sell_at / d.tick).to_integral_value(rounding=ROUND_CEILING) * d.tick, \
        f"a SELL at {sell_at} went out at {sell.limit_price}"
    prices = [Decimal(r["price"]) for r in check_wire(d.k, harness) if r["action"] == "submit"]
    assert prices == [buy.limit_price, sell.limit_price]
    # One fraction of a tick cannot tell a rounding direction from rounding to the nearest
    # tick (or half up, half even): probe the formatter over the whole tick.
    base = (d.market / d.tick).to_integral_value(rounding=ROUND_FLOOR) * d.tick
    for side_factor in (ENTRY_OFFSET, EXIT_OFFSET):
        on_grid = (base * side_factor / d.tick).to_integral_value(rounding=ROUND_FLOOR) * d.tick
        for fraction in OFF_GRID_FRACTIONS:
            asked = on_grid + d.tick * fraction
            down, up = on_grid, on_grid + (d.tick if fraction else 0)
            buy_text, sell_text = d.raw.format_price(d.asset, asked, "BUY"), d.raw.format_price(d.asset, asked, "SELL")
            assert Decimal(buy_text) == down, f"a BUY at {asked} is formatted as {buy_text}, not {down}"
            assert Decimal(sell_text) == up, f"a SELL at {asked} is formatted as {sell_text}, not {up}"


@pytest.mark.dita_requires("LIMIT")
def test_an_entry_against_another_slots_side_is_refused_where_the_venue_nets_the_sides(harness, dita_spec):
    d = Desk(harness, dita_spec)
    d.enter(slot=0, side="LONG", price=_off_grid_price(d, ENTRY_OFFSET))
    out = d.enter(slot=1, side="SHORT", price=_off_grid_price(d, EXIT_OFFSET))
    sent = [r["action"] for r in harness.received()]
    if "hedge_mode" in d.k.venue.capabilities:   # the sides are kept apart: both trades stand
        assert (out.accepted, sent) == (True, ["submit", "submit"]), out.message
        return
    # One net position per asset: the SHORT would reduce slot 0's LONG instead of opening its own.
    assert (out.accepted, out.diagnostic_code, out.state) == (False, "POSITION_CONFLICT", "IDLE"), out.message
    assert "slot 0" in out.message and sent == ["submit"]
    d.enter(slot=1, side="LONG", price=_off_grid_price(d, ENTRY_OFFSET))   # the same side is fine
    assert [r["action"] for r in harness.received()] == ["submit", "submit"]


@pytest.mark.dita_requires("LIMIT")
def test_sizes_are_rounded_down_to_the_size_step(harness, dita_spec):
    d = Desk(harness, dita_spec)
    asked = d.lot * 5 + d.step * Decimal("0.37")
    d.enter(size=asked)
    order = d.order()
    assert order.quantity == d.lot * 5, f"size {asked} went out as {order.quantity}"
    assert d.k.slot(0).entry_quantity == order.quantity
    assert [r["quantity"] for r in check_wire(d.k, harness)] == [d.raw.format_quantity(d.asset, asked)]
    # One fraction of a step cannot tell rounding down from rounding to the nearest step (or
    # half up, half even): probe the formatter over the whole step, up to just below the next.
    for fraction in OFF_GRID_FRACTIONS:
        asked = d.lot * 5 + d.step * fraction
        text = d.raw.format_quantity(d.asset, asked)
        assert Decimal(text) == d.lot * 5, f"size {asked} is formatted as {text}, not {d.lot * 5}"


def test_sizes_below_the_minimum_are_refused_before_anything_is_sent(harness, dita_spec):
    d = Desk(harness, dita_spec)
    minimum = max(d.inst.min_size, d.step)
    out = d.enter(size=minimum / 2, order_type="MARKET")
    assert (out.accepted, out.diagnostic_code, out.state) == (False, "BELOW_MIN_SIZE", "IDLE")
    assert harness.received() == []
    # Just below the minimum too: a size rounded to the nearest step (or up) would reach it.
    for fraction in OFF_GRID_FRACTIONS[1:]:
        asked = minimum - d.step + d.step * fraction
        out = d.enter(size=asked, order_type="MARKET")
        assert (out.accepted, out.diagnostic_code, out.state) == (False, "BELOW_MIN_SIZE", "IDLE"), \
            f"size {asked}, below the minimum {minimum}, was {out.diagnostic_code}: {out.message}"
        assert harness.received() == []


@pytest.mark.dita_requires("LIMIT", "reduce_only")
def test_the_venue_receives_the_full_intent(harness, dita_spec):
    d = Desk(harness, dita_spec)
    d.open(lots=8)
    d.exit()
    entry, exit_order = d.order(), d.order(role="exit")
    submits = [r for r in check_wire(d.k, harness) if r["action"] == "submit"]
    assert [(r["client_order_id"], r["side"], r["order_type"], Decimal(r["price"]), r["reduce_only"])
            for r in submits] == [(entry.client_order_id, "BUY", "LIMIT", entry.limit_price, False),
                                  (exit_order.client_order_id, "SELL", "LIMIT", exit_order.limit_price, True)]
    s = d.k.slot(0)
    assert (Decimal(submits[1]["quantity"]), Decimal(submits[1]["price"])) == (s.exit_quantity, s.exit_limit_price)


@pytest.mark.dita_requires("LIMIT")
def test_a_cancel_is_routed_with_the_slots_own_asset(harness, dita_spec):
    d = Desk(harness, dita_spec)
    d.enter(slot=1)
    entry = d.order(1)
    d.cancel(slot=1)
    cancels = [r for r in check_wire(d.k, harness) if r["action"] == "cancel"]
    assert [(r["client_order_id"], r["asset"]) for r in cancels] == [(entry.client_order_id, d.k.slot(1).asset)]
    assert d.k.slot(1).asset == d.asset and entry.trade_id != d.asset


__all__ = [name for name in dir() if name.startswith("test_")]
