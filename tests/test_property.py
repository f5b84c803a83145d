"""Property test: a hypothesis state machine drives a kernel of 2-3 slots on the mock venue
with random intents and venue events, and checks after every step that the slots, the
account and the venue agree exactly.

Steps: ENTER (MARKET, or LIMIT below / above the market; sizes on and off the size grid;
one, two or three exit legs), malformed ENTERs, EXIT (MARKET or LIMIT), CANCEL; price moves
that fill resting orders, partial or whole fills of working orders, reported at once or
later; cancels that race those fills; scripted rejects, cancel rejects and fill-before-cancel
races; re-delivery of applied events and intents (DUPLICATE_EVENT), events for orders
nobody issued (UNKNOWN_ORDER), and a resync that feeds everything ``query`` returns.

The machine plays a strategy that drains the venue's pending reports (``poll``) before it
sends a new order (ENTER or EXIT), but not before a CANCEL, a price move, a fill or a
re-delivered event: fills may stay pending across those, so cancels race fills in every
order. (One exception, a race no strategy can avoid: an EXIT that rests is sent while a
late fill of the cancelled entry is still on its way.) Everything the mock does is
explainable, so a FROZEN slot is always a failure here, and every fill the mock reports
must be applied.

The model kept beside the kernel (all exact Decimals, built from what the venue reported
and the kernel accepted, never read back from the kernel):
- per client order id: its slot, trade and role, and the fill quantity the kernel applied;
- the fees of every applied fill (the account must have paid exactly those);
- per trade: the entry and exit notional, to check a closed trade's gross PnL;
- per slot: the events and intents applied in its current trade (a re-delivery of any of
  them must be refused as DUPLICATE_EVENT and change nothing).

Kept out on purpose, because the spec freezes the slot there (open questions, not covered
here): an event of a trade that already ended, delivered again after its slot started the
next trade (the de-dup set is emptied per trade, so it is not a duplicate any more); and a
late fill of a cancelled exit order that arrives after the next exit order was sent (the
slot knows only its current exit order).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from decimal import ROUND_FLOOR, Decimal as D, localcontext
from unittest import mock

import yaml
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import dita
import dita.kernel
from conftest import cancel, enter, exit_, make_kernel
from dita.spec import load_machine, packaged_spec_path

FEE_RATE = D("0.0004")
ASSETS = ("BTC-USDT", "ETH-USDT")
START_PRICE = {"BTC-USDT": D("60000"), "ETH-USDT": D("3000")}
# Price moves, relative to the starting price.
MOVES = (D("0.95"), D("0.98"), D("0.995"), D("1"), D("1.005"), D("1.02"), D("1.05"))
# LIMIT prices, relative to the market when the intent is sent (below / above it).
LIMIT_OFFSETS = (D("-0.04"), D("-0.01"), D("-0.005"), D("0.005"), D("0.01"), D("0.04"))
# Sizes; the off-grid ones check that the slot records exactly what the venue received.
SIZES = {
    "BTC-USDT": (D("0.001"), D("0.004"), D("0.010"), D("0.0157"), D("0.25")),
    "ETH-USDT": (D("0.01"), D("0.05"), D("0.333"), D("1.2")),
}
LEG_RATIOS = ((), (D("0.5"), D("0.5")), (D("0.3"), D("0.3"), D("0.4")))
FILL_RATIOS = ("0", "0.5", "1")
FILL_KINDS = ("PARTIALLY_FILLED", "FULL_FILL")
VENUE_KINDS = ("ORDER_ACK", "PARTIALLY_FILLED", "FULL_FILL", "CANCEL_ACK", "CANCEL_REJECT", "REJECT", "EXPIRED")
SETTLED_STATES = ("CLOSED", "TRADE_TERMINAL_WRITTEN")  # their record is also in k.trades
# The mock answers submit and cancel at once, so these states never outlive a call.
TRANSIENT_STATES = ("ORDER_REQUESTED", "ENTRY_CANCEL_PENDING", "EXIT_CANCEL_PENDING", "CLOSED")
# Gross PnL uses the volume-weighted entry price, a division: it may round in the 28th digit.
VWAP_TOLERANCE = D("1e-12")


def _spec_states() -> set[str]:
    doc = yaml.safe_load(packaged_spec_path().read_text())
    return set(doc["states"])


SPEC_STATES = _spec_states()


def exact(fn):
    """Runs a check in a decimal context wide enough that its own sums never round: the
    account identity must hold exactly, not merely up to Python's default 28 digits."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with localcontext() as ctx:
            ctx.prec = 200
            return fn(*args, **kwargs)
    return wrapper


@functools.lru_cache(maxsize=1)
def _packaged_machine():
    return load_machine(None)


def _new_kernel(**kwargs) -> dita.Kernel:
    """conftest's make_kernel, without re-reading the packaged spec for every example:
    dita.Kernel() parses, schema-checks and compiles the spec file on every construction
    (about 0.2 s, which would be most of this test's time and make shrinking crawl).
    The compiled machine is the same every time; only its loading is short-cut, and only
    while this kernel is built."""
    with mock.patch.object(dita.kernel, "load_machine", lambda spec: _packaged_machine()):
        return make_kernel(**kwargs)


def _floor(value: D, step: D) -> D:
    return (value / step).to_integral_value(rounding=ROUND_FLOOR) * step


def _is_fill(ev) -> bool:
    return ev.kind in FILL_KINDS


class KernelMachine(RuleBasedStateMachine):

    # ------------------------------------------------------------------ set-up

    @initialize(n_slots=st.sampled_from([2, 3]), entry_ratio=st.sampled_from(FILL_RATIOS),
                exit_ratio=st.sampled_from(FILL_RATIOS))
    def setup(self, n_slots, entry_ratio, exit_ratio):
        self.n = n_slots
        self.k = _new_kernel(slots=n_slots, capital="1000", fee_rate=str(FEE_RATE),
                             entry_fill_ratio=entry_ratio, exit_fill_ratio=exit_ratio)
        self.v = self.k.venue
        assert set(self.k.machine.states) == SPEC_STATES
        self.ids = 0
        self.order_info: dict[str, dict] = {}          # coid -> {slot, trade, role}
        self.delivered: dict[str, D] = defaultdict(D)  # coid -> fill quantity the kernel applied
        self.fees = D(0)                               # fees of every applied fill
        self.trade_fees: dict[str, D] = defaultdict(D)
        self.entry_notional: dict[str, D] = defaultdict(D)
        self.exit_notional: dict[str, D] = defaultdict(D)
        self.trade_side: dict[str, str] = {}
        self.slot_trade: dict[int, str | None] = {s: None for s in range(n_slots)}
        self.slot_orders: dict[int, list[str]] = {s: [] for s in range(n_slots)}
        self.live_events: dict[int, list] = {s: [] for s in range(n_slots)}   # applied in the current trade
        self.live_intents: dict[int, list] = {s: [] for s in range(n_slots)}  # accepted in the current trade
        self.sent_orders: list[str] = []               # intent ids of every accepted ENTER / EXIT
        self.applied_ids: set[str] = set()             # event ids the kernel applied
        self.refused_ids: dict[str, str] = {}          # event id -> diagnostic, mock events the kernel refused
        self.pending: list = []                        # mock events waiting for poll()
        self.closed_trades = 0                         # CLOSED transitions seen
        self.checked_trades = 0                        # k.trades entries already checked

    # ------------------------------------------------------------------ helpers

    def _next(self, prefix: str) -> str:
        self.ids += 1
        return f"{prefix}{self.ids}"

    def _slot(self, data, *useful: str, racing: bool = False) -> int:
        """A slot; three times in four one in a state where the intent can be accepted
        (when there is one), else any slot, so refusals are exercised too. With ``racing``,
        slots whose orders have fills on their way come first, so the intent races them."""
        fit = [s for s in range(self.n) if self.k.slot(s).fsm_state in useful]
        if racing:
            pending = {self.order_info[e.client_order_id]["slot"] for e in self.pending}
            fit = [s for s in fit if s in pending] or fit
        if fit and data.draw(st.integers(0, 3), label="prefer a fitting slot"):
            return data.draw(st.sampled_from(fit), label="slot")
        return data.draw(st.integers(0, self.n - 1), label="slot")

    def _instrument(self, asset):
        return self.v.instruments()[asset]

    def _limit(self, asset, offset: D) -> D:
        """A LIMIT price off the venue's grid (the kernel must quantize it)."""
        tick = self._instrument(asset).price_increment
        return self.v.prices[asset] * (1 + offset) + tick * D("0.3")

    def _assert_unchanged(self, out, before, received_before, expected_code=None):
        assert not out.accepted, out
        if expected_code is not None:
            assert out.diagnostic_code == expected_code, out
        assert self.k.snapshot() == before, f"refused {out.diagnostic_code} but the kernel changed"
        assert len(self.v.received) == received_before, "a refused call reached the venue"

    def _check_chain(self, out, start_state):
        """The call's transitions follow each other and end in the reported state."""
        state = start_state
        for src, _ev, dst in out.transitions:
            assert src == state, (out.transitions, start_state)
            state = dst
            if dst == "CLOSED":
                self.closed_trades += 1
        assert out.state == state == self.k.slot(out.slot_id).fsm_state, out

    @exact
    def _absorb(self, ev, slot: int):
        """Book one event the kernel applied."""
        info = self.order_info[ev.client_order_id]
        assert info["slot"] == slot
        self.live_events[slot].append(ev)
        self.applied_ids.add(ev.event_id)
        if _is_fill(ev):
            q, p, fee = ev.filled_size, ev.fill_price, ev.fee
            assert fee == q * p * FEE_RATE  # the mock charges exactly this
            self.delivered[ev.client_order_id] += q
            self.fees += fee
            self.trade_fees[info["trade"]] += fee
            notional = self.entry_notional if info["role"] == "ENTRY" else self.exit_notional
            notional[info["trade"]] += q * p

    def _absorb_call(self, out, slot: int):
        """Book the venue events an intent's call produced and applied."""
        refused = {ev.event_id: code for ev, code, _msg in out.refused_events}
        for ev in out.emitted_events:
            assert self.order_info[ev.client_order_id]["slot"] == slot
            if ev.event_id in refused:
                # The only mock answer a slot may refuse: the cancel the venue turned down
                # because the order filled first (the fill already moved the slot on).
                assert (ev.kind, refused[ev.event_id]) == ("CANCEL_REJECT", "STALE_EVENT"), out.refused_events
                self.refused_ids[ev.event_id] = refused[ev.event_id]
            else:
                self._absorb(ev, slot)

    def _deliver_pending(self):
        expected, self.pending = self.pending, []
        outs = self.k.poll()
        assert len(outs) == len(expected)
        for ev, out in zip(expected, outs):
            slot = self.order_info[ev.client_order_id]["slot"]
            assert out.slot_id == slot
            if ev.event_id in self.applied_ids:  # already applied through query()
                assert (out.accepted, out.diagnostic_code) == (False, "DUPLICATE_EVENT"), out
                continue
            # A fill the mock reports is real and explainable: it is always applied.
            assert out.accepted and out.diagnostic_code == "OK", (ev, out, self.k.slot(slot).record)
            for src, kind, dst in out.transitions:
                if dst == "CLOSED":
                    self.closed_trades += 1
                if kind in FILL_KINDS:
                    event(f"{self.order_info[ev.client_order_id]['role']} fill delivered: {src} -> {dst}")
            self._absorb(ev, slot)

    def _new_trade(self, slot: int, trade: str, coid: str, side: str):
        self.slot_trade[slot] = trade
        self.slot_orders[slot] = [coid]
        self.live_events[slot] = []
        self.live_intents[slot] = []
        self.trade_side[trade] = side
        self.order_info[coid] = {"slot": slot, "trade": trade, "role": "ENTRY"}

    def _wire(self, action, coid):
        sent = [w for w in self.v.received if w["action"] == action and w["client_order_id"] == coid]
        assert sent, f"the venue never received {action} {coid}"
        return sent[-1]

    # ------------------------------------------------------------------ intents

    @rule(data=st.data(), side=st.sampled_from(["LONG", "SHORT"]), asset=st.sampled_from(ASSETS),
          order_type=st.sampled_from(["MARKET", "LIMIT"]), offset=st.sampled_from(LIMIT_OFFSETS),
          ratios=st.sampled_from(LEG_RATIOS))
    def enter_trade(self, data, side, asset, order_type, offset, ratios):
        self._deliver_pending()
        slot = self._slot(data, "IDLE", "TRADE_TERMINAL_WRITTEN")
        size = data.draw(st.sampled_from(SIZES[asset]), label="size")
        limit = self._limit(asset, offset) if order_type == "LIMIT" else None
        state = self.k.slot(slot).fsm_state
        before, received = self.k.snapshot(), len(self.v.received)
        intent, trade = self._next("i"), self._next("t")
        out = enter(self.k, slot=slot, intent=intent, trade=trade, size=size, side=side, asset=asset,
                    order_type=order_type, limit_price=limit, ratios=ratios)
        if state not in ("IDLE", "TRADE_TERMINAL_WRITTEN"):
            self._assert_unchanged(out, before, received, "SLOT_BUSY")
            return
        assert out.accepted and out.diagnostic_code == "OK", out
        self._check_chain(out, state)
        self._new_trade(slot, trade, intent, side)
        self.sent_orders.append(intent)
        self._absorb_call(out, slot)
        # The venue received the full intent, quantized by its own formatters.
        order_side = "BUY" if side == "LONG" else "SELL"
        wire = self._wire("submit", intent)
        assert (wire["asset"], wire["side"], wire["position_side"], wire["type"], wire["reduce_only"]) == (
            asset, order_side, side, order_type, False)
        assert D(wire["quantity"]) == D(self.v.format_quantity(asset, size))
        if limit is None:
            assert "price" not in wire
        else:
            assert D(wire["price"]) == D(self.v.format_price(asset, limit, order_side))
        rec = self.k.slot(slot).record
        assert rec["entry_quantity"] == D(wire["quantity"])
        assert rec["entry_limit_price"] == (None if limit is None else D(wire["price"]))
        assert tuple(rec["exit_leg_ratios"]) == ratios
        event(f"ENTER {order_type} -> {out.state}")

    def _enter_malformed(self, data):
        """Malformed ENTERs are refused (SLOT_BUSY first on a busy slot) and change nothing."""
        slot = self._slot(data)
        kind = data.draw(st.sampled_from(["ratios", "market_price", "side"]), label="malformed")
        kwargs = {"ratios": (D("0.5"), D("0.6"))} if kind == "ratios" else (
            {"limit_price": D("60000")} if kind == "market_price" else {"side": "FLAT"})
        state = self.k.slot(slot).fsm_state
        before, received = self.k.snapshot(), len(self.v.received)
        out = enter(self.k, slot=slot, intent=self._next("i"), trade=self._next("t"), **kwargs)
        code = "INVALID_INTENT" if state in ("IDLE", "TRADE_TERMINAL_WRITTEN") else "SLOT_BUSY"
        self._assert_unchanged(out, before, received, code)

    @rule(data=st.data(), order_type=st.sampled_from(["MARKET", "LIMIT"]), offset=st.sampled_from(LIMIT_OFFSETS))
    def exit_leg(self, data, order_type, offset):
        slot = self._slot(data, "POSITION_OPEN", racing=True)
        rec = self.k.slot(slot).record
        # A race the strategy cannot avoid: the entry's cancel was acknowledged but a fill
        # of the entry is still on its way when the exit is sent. The exit rests (a LIMIT
        # away from the market), and the late entry fill then lands in EXIT_WORKING.
        # (Exits that could fill at once are sent after a poll: if they closed the trade
        # before the entry fill arrived, the spec freezes the slot, by design.)
        pending_here = {e.client_order_id for e in self.pending}
        rests = order_type == "LIMIT" and (offset > 0) == (rec["side"] == "LONG")
        race = (rests and rec["entry_client_order_id"] in pending_here
                and not pending_here & set(self.slot_orders[slot][1:])
                and data.draw(st.booleans(), label="exit before the entry's late fill arrives"))
        if not race:
            self._deliver_pending()
        view = self.k.slot(slot)
        state, rec = view.fsm_state, view.record
        before, received = self.k.snapshot(), len(self.v.received)
        limit = self._limit(rec["asset"], offset) if order_type == "LIMIT" and rec["asset"] else None
        intent = self._next("x")
        out = exit_(self.k, slot=slot, intent=intent, order_type=order_type, limit_price=limit)
        if state != "POSITION_OPEN":
            entry_part_filled = state in ("ENTRY_WORKING", "ENTRY_CANCEL_PENDING") and rec["size"] > 0
            code = "ORDER_WORKING" if state in ("EXIT_WORKING", "EXIT_CANCEL_PENDING") or entry_part_filled else "NO_POSITION"
            self._assert_unchanged(out, before, received, code)
            return
        assert out.accepted and out.diagnostic_code == "OK", out
        self._check_chain(out, state)
        self.order_info[intent] = {"slot": slot, "trade": self.slot_trade[slot], "role": "EXIT"}
        self.slot_orders[slot].append(intent)
        self.sent_orders.append(intent)
        self._absorb_call(out, slot)
        # The leg: initial_size x ratio on the size grid, less what the leg already filled;
        # the last leg, or one that would be or leave dust, takes all that is open.
        inst = self._instrument(rec["asset"])
        least = max(inst.min_size, inst.size_increment)
        size, ratios, leg = rec["size"], rec["exit_leg_ratios"], rec["active_leg_index"]
        if leg + 1 >= len(ratios):
            target = size
        else:
            target = _floor(rec["initial_size"] * ratios[leg], inst.size_increment) - rec["leg_filled"]
        expected = size if target < least or size - target < least else target
        assert 0 < expected <= size and (size - expected == 0 or size - expected >= least)
        wire = self._wire("submit", intent)
        exit_side = "SELL" if rec["side"] == "LONG" else "BUY"
        assert (wire["asset"], wire["side"], wire["position_side"], wire["type"], wire["reduce_only"]) == (
            rec["asset"], exit_side, rec["side"], order_type, True)
        assert D(wire["quantity"]) == expected, (wire, rec)
        if limit is not None:
            assert D(wire["price"]) == D(self.v.format_price(rec["asset"], limit, exit_side))
        event(f"EXIT leg {leg}/{len(ratios)} {order_type} -> {out.state}")
        if race:
            self._deliver_pending()
            event(f"EXIT raced a late entry fill -> {self.k.slot(slot).fsm_state}")

    @rule(data=st.data())
    def cancel_order(self, data):
        self._cancel(self._slot(data, "ENTRY_WORKING", "EXIT_WORKING", racing=True))

    def _cancel(self, slot: int):
        view = self.k.slot(slot)
        state = view.fsm_state
        working = view.active_entry_order or view.active_exit_order
        before, received = self.k.snapshot(), len(self.v.received)
        intent = self._next("c")
        out = cancel(self.k, slot=slot, intent=intent)
        if state not in ("ENTRY_WORKING", "EXIT_WORKING"):
            self._assert_unchanged(out, before, received, "NO_WORKING_ORDER")
            return
        assert out.accepted and out.diagnostic_code == "OK", out
        self._check_chain(out, state)
        self.live_intents[slot].append(dita.KernelIntent("CANCEL", slot, intent))
        self._absorb_call(out, slot)
        # Routed with the slot's own asset and order ids.
        wire = self._wire("cancel", working.client_order_id)
        assert (wire["asset"], wire["venue_order_id"]) == (view.asset, working.venue_order_id)
        allowed = ("IDLE", "POSITION_OPEN", "ENTRY_WORKING") if state == "ENTRY_WORKING" else (
            "POSITION_OPEN", "EXIT_WORKING", "TRADE_TERMINAL_WRITTEN")
        assert out.state in allowed, out
        event(f"CANCEL {state} -> {out.state}")

    def _resend_intent(self, data):
        """An intent sent again (same intent id) is a duplicate: refused, nothing changes."""
        choices = list(self.sent_orders)
        choices += [(s, i) for s in range(self.n) for i in self.live_intents[s]]
        pick = data.draw(st.sampled_from(choices), label="intent")
        before, received = self.k.snapshot(), len(self.v.received)
        if isinstance(pick, str):  # an ENTER or EXIT: the order it became was sent once
            info = self.order_info[pick]
            action = "ENTER" if info["role"] == "ENTRY" else "EXIT"
            intent = dita.KernelIntent(action, info["slot"], pick, trade_id="again", asset="BTC-USDT", side="LONG",
                                       target_size=D("0.001"))
        else:
            intent = pick[1]
        out = self.k.process_intent(intent)
        self._assert_unchanged(out, before, received, "DUPLICATE_EVENT")

    # ------------------------------------------------------------------ the venue

    @rule(asset=st.sampled_from(ASSETS), move=st.sampled_from(MOVES), deliver=st.booleans())
    def move_price(self, asset, move, deliver):
        self.pending += self.v.set_price(asset, START_PRICE[asset] * move)
        if deliver:
            self._deliver_pending()

    def _working_venue_orders(self):
        return sorted(c for c, mo in self.v.orders.items() if mo.status in ("NEW", "PARTIALLY_FILLED"))

    @precondition(lambda self: self._working_venue_orders())
    @rule(data=st.data(), share=st.sampled_from([D("0.2"), D("0.3"), D("0.5"), D("1")]),
          at_market=st.booleans(), then=st.sampled_from(["deliver", "wait", "cancel races it", "cancel, wait"]))
    def venue_fill(self, data, share, at_market, then):
        """The venue fills part or all of a working order. The report is delivered at once,
        or waits, or the strategy cancels the order before the report reaches the kernel
        (the cancel is acknowledged if part of the order was left, and the fill lands after,
        at once or later)."""
        self._venue_fill(data, share, at_market, then)

    @precondition(lambda self: self._working_venue_orders())
    @rule(data=st.data(), share=st.sampled_from([D("0.2"), D("0.5")]), at_market=st.booleans(),
          then=st.sampled_from(["cancel races it", "cancel, wait"]))
    def venue_partial_fill_races_cancel(self, data, share, at_market, then):
        """As venue_fill, always a partial fill racing a cancel (the richest path, so it
        gets its own rule to be drawn more often)."""
        self._venue_fill(data, share, at_market, then)

    def _venue_fill(self, data, share, at_market, then):
        coid = data.draw(st.sampled_from(self._working_venue_orders()), label="order")
        mo = self.v.orders[coid]
        step = self._instrument(mo.order.asset).size_increment
        qty = _floor(mo.remaining * share, step) or mo.remaining
        price = self.v.prices[mo.order.asset] if at_market else None
        self.pending += self.v.fill(coid, qty, price)
        if then.startswith("cancel"):
            self._cancel(self.order_info[coid]["slot"])
        if then in ("deliver", "cancel races it"):
            self._deliver_pending()

    def _resync_by_query(self, data):
        """The strategy asks the venue for every event of one order of a live trade and
        feeds them all: those applied are duplicates, those refused stay refused, and those
        still pending are applied now (and are duplicates when poll() brings them)."""
        slots = [s for s in range(self.n) if self.slot_orders[s]]
        slot = data.draw(st.sampled_from(slots), label="slot")
        coid = data.draw(st.sampled_from(self.slot_orders[slot]), label="order")
        for ev in self.v.query(self.k.order(coid)):
            before, received = self.k.snapshot(), len(self.v.received)
            state = self.k.slot(slot).fsm_state
            out = self.k.on_venue_event(ev)
            assert out.slot_id == slot
            if ev.event_id in self.applied_ids:
                self._assert_unchanged(out, before, received, "DUPLICATE_EVENT")
            elif ev.event_id in self.refused_ids:
                self._assert_unchanged(out, before, received)
            else:
                assert ev.event_id in {e.event_id for e in self.pending}, ev
                assert out.accepted and out.diagnostic_code == "OK", (ev, out)
                self._check_chain(out, state)
                self._absorb(ev, slot)

    def _redeliver_event(self, data):
        """An event the slot applied in its current trade, delivered again: DUPLICATE_EVENT."""
        slots = [s for s in range(self.n) if self.live_events[s]]
        slot = data.draw(st.sampled_from(slots), label="slot")
        ev = data.draw(st.sampled_from(self.live_events[slot]), label="event")
        before, received = self.k.snapshot(), len(self.v.received)
        out = self.k.on_venue_event(ev)
        self._assert_unchanged(out, before, received, "DUPLICATE_EVENT")
        assert out.slot_id == slot

    def _event_for_unknown_order(self, data):
        kind = data.draw(st.sampled_from(VENUE_KINDS), label="kind")
        size = data.draw(st.sampled_from([D("0.001"), D("0.01"), D("1")]), label="size")
        before, received = self.k.snapshot(), len(self.v.received)
        fill = {"filled_size": size, "fill_price": D("60000"), "fee": D("0.01")} if kind in FILL_KINDS else {}
        ev = dita.VenueEvent(kind, self._next("ghost-ev"), self._next("ghost-order"), venue_order_id="G1", **fill)
        out = self.k.on_venue_event(ev)
        self._assert_unchanged(out, before, received, "UNKNOWN_ORDER")
        assert (out.state, out.slot_id) == (None, None)

    @rule(data=st.data())
    def noise(self, data):
        """Input the kernel must refuse without changing anything, or re-delivery."""
        kinds = ["malformed ENTER", "event for an unknown order"]
        if self.sent_orders or any(self.live_intents.values()):
            kinds.append("intent sent again")
        if any(self.live_events.values()):
            kinds.append("event delivered again")
        if any(self.slot_orders.values()):
            kinds.append("resync by query")
        kind = data.draw(st.sampled_from(kinds), label="noise")
        {"malformed ENTER": self._enter_malformed, "event for an unknown order": self._event_for_unknown_order,
         "intent sent again": self._resend_intent, "event delivered again": self._redeliver_event,
         "resync by query": self._resync_by_query}[kind](data)

    @rule(script=st.sampled_from(["reject", "cancel reject", "fill before cancel"]))
    def venue_misbehaves(self, script):
        """The next submit is rejected / the next cancel refused / the next cancel races a fill."""
        if script == "reject" and not self.v._reject_next:
            self.v.script_reject("insufficient margin")
        elif script == "cancel reject" and not self.v._cancel_reject_next:
            self.v.script_cancel_reject("order is being processed")
        elif script == "fill before cancel" and not self.v._fill_before_cancel:
            self.v.script_fill_before_cancel()

    # ------------------------------------------------------------------ invariants

    @invariant()
    @exact
    def states_are_the_specs_and_never_frozen(self):
        for s in range(self.n):
            view = self.k.slot(s)
            assert view.fsm_state in SPEC_STATES
            assert view.fsm_state != "FROZEN", f"slot {s} frozen: {view.record['frozen_reason']}"
            assert view.fsm_state not in TRANSIENT_STATES, (s, view.fsm_state)

    @invariant()
    @exact
    def account_identity_and_fees(self):
        a = self.k.account
        assert a.starting_capital == D("1000")
        assert a.capital == a.starting_capital + a.realized_pnl, (
            f"capital {a.capital} != {a.starting_capital} + {a.realized_pnl}: off by "
            f"{a.capital - a.starting_capital - a.realized_pnl}")
        assert a.realized_pnl == a.gross_realized_pnl - a.fees_paid
        assert a.fees_paid == self.fees
        # Every trade's figures are in the account: finished ones through k.trades, the
        # others through their slot (a slot's record is reset when its next trade starts).
        live = [self.k.slot(s).record for s in range(self.n) if self.k.slot(s).fsm_state not in SETTLED_STATES]
        for field, total in (("realized_pnl", a.realized_pnl), ("gross_pnl", a.gross_realized_pnl),
                             ("fees_paid", a.fees_paid)):
            assert sum((t[field] for t in self.k.trades), D(0)) + sum((r[field] for r in live), D(0)) == total, field

    @invariant()
    @exact
    def slots_match_what_the_venue_reported(self):
        for s in range(self.n):
            view = self.k.slot(s)
            rec, state = view.record, view.fsm_state
            assert rec["realized_pnl"] == rec["gross_pnl"] - rec["fees_paid"]
            assert rec["closed"] == (state in SETTLED_STATES)  # CLOSED sets it, and only CLOSED
            if state == "IDLE":
                assert rec["size"] == 0 and not rec["closed"]
                assert view.active_entry_order is None and view.active_exit_order is None
            elif state == "POSITION_OPEN":
                assert rec["size"] > 0 and rec["entry_price"] > 0 and not rec["closed"]
                assert view.active_entry_order is None and view.active_exit_order is None
            elif state == "ENTRY_WORKING":
                assert view.active_entry_order is not None and view.active_exit_order is None
                assert rec["size"] == rec["entry_filled"] < rec["entry_quantity"]
            elif state == "EXIT_WORKING":
                assert view.active_exit_order is not None and view.active_entry_order is None
                assert rec["size"] > 0 and rec["exit_filled"] < rec["exit_quantity"]
            elif state == "TRADE_TERMINAL_WRITTEN":
                assert rec["closed"] and rec["size"] == 0
                assert view.active_entry_order is None and view.active_exit_order is None
            trade = self.slot_trade[s]
            if trade is None:
                assert state == "IDLE" and rec["trade_id"] is None
                continue
            assert rec["trade_id"] == trade
            orders = self.slot_orders[s]
            entered = sum((self.delivered[c] for c in orders if self.order_info[c]["role"] == "ENTRY"), D(0))
            exited = sum((self.delivered[c] for c in orders if self.order_info[c]["role"] == "EXIT"), D(0))
            assert rec["initial_size"] == entered and rec["size"] == entered - exited, (s, rec)
            assert rec["fees_paid"] == self.trade_fees[trade]
            # The venue's own count, less what it reported but the kernel has not seen yet.
            venue_net = D(0)
            for c in orders:
                unseen = sum((e.filled_size for e in self.pending if e.client_order_id == c
                              and e.event_id not in self.applied_ids), D(0))
                filled = self.v.orders[c].filled - unseen
                assert filled == self.delivered[c], (c, filled, self.delivered[c])
                venue_net += filled if self.order_info[c]["role"] == "ENTRY" else -filled
            assert venue_net == rec["size"]

    @invariant()
    @exact
    def venue_and_kernel_agree_on_working_orders(self):
        kernel_live = set()
        for s in range(self.n):
            view = self.k.slot(s)
            for order in (view.active_entry_order, view.active_exit_order):
                if order is not None:
                    kernel_live.add(order.client_order_id)
                    assert self.order_info[order.client_order_id]["slot"] == s
        pending = {e.client_order_id for e in self.pending if e.event_id not in self.applied_ids}
        for coid, mo in self.v.orders.items():
            if mo.status in ("NEW", "PARTIALLY_FILLED"):
                assert coid in kernel_live, f"order {coid} works at the venue, but no slot knows it"
            elif coid in kernel_live:
                # The venue ended it by filling it; the fills are on their way.
                assert mo.status == "FILLED" and coid in pending, (coid, mo.status)

    @invariant()
    @exact
    def finished_trades_are_exact(self):
        assert len(self.k.trades) == self.closed_trades
        for t in self.k.trades[self.checked_trades:]:
            trade = t["trade_id"]
            assert t["realized_pnl"] == t["gross_pnl"] - t["fees_paid"]
            assert t["fees_paid"] == self.trade_fees[trade]
            sign = 1 if self.trade_side[trade] == "LONG" else -1
            # Closed: everything entered was exited, so the gross is exit value - entry value.
            expected = (self.exit_notional[trade] - self.entry_notional[trade]) * sign
            assert abs(t["gross_pnl"] - expected) <= VWAP_TOLERANCE, (t, expected)
            entered = sum((self.delivered[c] for c, i in self.order_info.items()
                           if i["trade"] == trade and i["role"] == "ENTRY"), D(0))
            assert t["initial_size"] == entered > 0
        self.checked_trades = len(self.k.trades)


# About 5 s when the kernel is right. 300 examples rather than 150: the account's rounding
# drift (capital off start + realized PnL by ~1e-26 once an entry fills at two prices whose
# average does not terminate) is found by about half the runs of 150, most runs of 300.
# One shrunk failure is reported, not every distinct one: shrinking several takes minutes.
KernelMachine.TestCase.settings = settings(
    max_examples=300, stateful_step_count=40, deadline=None, report_multiple_bugs=False,
    suppress_health_check=[HealthCheck.too_slow],
)
test_kernel_state_machine = KernelMachine.TestCase
