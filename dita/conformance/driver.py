"""Model-based transition coverage: shortest driver paths to every transition of a spec.

A *transition* is one take-candidate of the spec: ``(state, event, index)`` in
``states.<state>.on.<event>[index]``. Like XState's model-based testing, the planner runs a
breadth-first search from the initial state, here over a kernel driving the reference venue
(:mod:`dita.conformance.model`), with a fixed vocabulary of *driver moves*: intents through
``process_intent``, harness actions (fill part or all of an order, script a reject, a cancel
reject, a fill that races the cancel), and the delivery of any one pending venue report to
``kernel.on_venue_event`` — in any order, since venues report late and out of order — plus
two shortcuts (``open``/``close``: an order that fills at once, all its reports applied)
that keep paths short. Two *synthetic* moves make events no harness action asks for: the
venue ending a working order on its own (``EXPIRED``, or a ``CANCEL_ACK``/``REJECT`` nobody
requested), and a fill delivered under the other fill kind (the spec decides by
quantities, not by names). A path uses at most one, and only when no path without one
exists.

Which candidate fired is not guessed from ``(from, event, to)``: before each venue event is
applied, the slot is copied into a *probe machine* (the same spec with every candidate
turned into a refusal naming its index) and the engine itself says which candidate would be
chosen. The answers of the venue under test are collected rather than applied at once (a
venue may answer later; see :class:`DeferringVenue`), so every event is applied alone.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from dataclasses import dataclass, field, replace
from decimal import ROUND_CEILING, Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from dita import _engine
from dita.kernel import Kernel
from dita.spec import compile_text, packaged_spec_path, parse
from dita.types import KernelIntent, VenueEvent
from dita.venue import Venue

# Entry orders rest this far below the market, exit orders this far above: they never
# cross by themselves, so fills happen exactly when the suite makes them.
ENTRY_OFFSET = Decimal("0.98")
EXIT_OFFSET = Decimal("1.02")
ENTRY_LOTS = 8          # an entry is this many lots; partial fills halve what remains
MAX_DEPTH = 11
MIN_DEPTH = 6           # searched in full even if a shallower depth found nothing new
MAX_TRADES = 2           # a second trade reaches every "order of an earlier trade" case
MAX_PENDING = 3
MAX_CONFIGURATIONS = 12000  # per search; for the packaged spec 40000 finds nothing more
SYNTHETIC_MOVES = ("venue_ends", "relabel")


class ConformanceFailure(AssertionError):
    """The venue under test did not behave as the path needs; the message says where."""


@dataclass(frozen=True, order=True)
class Transition:
    state: str
    event: str
    index: int
    target: str

    @property
    def path(self) -> str:
        return f"states.{self.state}.on.{self.event}[{self.index}]"

    def __str__(self) -> str:
        return f"{self.state} --{self.event}[{self.index}]--> {self.target}"


def spec_text(spec: str | Path | None) -> str:
    return Path(spec if spec is not None else packaged_spec_path()).read_text()


def transitions_of(desc: dict) -> list[Transition]:
    """Every take-candidate of a described machine, in the spec's order."""
    out = []
    for s in desc["states"]:
        for event, cands in s["on"].items():
            for i, (kind, target, _guarded) in enumerate(cands):
                if kind == "take":
                    out.append(Transition(s["name"], event, i, target))
    return out


class Probe:
    """Tells which candidate of the spec an event would choose, by asking the engine."""

    def __init__(self, text: str):
        doc, _root = parse(text)
        doc = {k: v for k, v in doc.items() if k != "templates"}
        widest = 0
        for state in doc["states"].values():
            for event, cands in (state.get("on") or {}).items():
                widest = max(widest, len(cands))
                state["on"][event] = [
                    {**({"guard": c["guard"]} if "guard" in c else {}), "refuse": f"PROBE_{i}"}
                    for i, c in enumerate(cands)]
            state.pop("on_entry", None)
        doc["diagnostics"]["codes"].update({f"PROBE_{i}": "probe" for i in range(widest)})
        self.machine = _engine.Machine.from_json(json.dumps(doc))
        self.rt = _engine.Runtime(self.machine, 1)

    def which(self, state: str, record: dict, shared: dict, kind: str, payload: Any) -> int | None:
        self.rt.replace({0: {"state": state, "record": record, "seen": []}}, shared)
        result = self.rt.apply(0, kind, payload)
        code = result[1]
        return int(code[6:]) if isinstance(code, str) and code.startswith("PROBE_") else None


class WrappedVenue(Venue):
    """A venue around another (``inner``): the declarations are the inner venue's own, so
    what the wrapper adds (deferring, recording) never changes a price, a size or an id."""

    def __init__(self, inner: Venue):
        self.inner, self.name, self.capabilities = inner, inner.name, inner.capabilities

    def format_price(self, asset, price, side):
        return self.inner.format_price(asset, price, side)

    def format_quantity(self, asset, quantity):
        return self.inner.format_quantity(asset, quantity)

    def instruments(self):
        return self.inner.instruments()

    def client_order_id(self, intent):
        return self.inner.client_order_id(intent)


class DeferringVenue(WrappedVenue):
    """Wraps a venue so that its answers are collected instead of returned to the kernel:
    the suite then hands each to the kernel alone, in the order a path needs. A venue that
    raises is answered as the kernel would answer it (REJECT / CANCEL_REJECT)."""

    def __init__(self, inner: Venue):
        super().__init__(inner)
        self.outbox: list[VenueEvent] = []
        self.submitted: list = []
        self._failures = 0

    def _call(self, method, order):
        try:
            self.outbox.extend(getattr(self.inner, method)(order) or ())
        except Exception as exc:  # mirrors Kernel._call_venue: a failure is an answer
            self._failures += 1
            if method == "submit":   # the order may stand all the same: what does the venue know of it?
                known = self.inner.query(order) or ()
                if known:
                    self.outbox.extend(known)
                    return []
            kind = "REJECT" if method == "submit" else "CANCEL_REJECT"
            self.outbox.append(VenueEvent(kind, f"suite:{method}-failed:{order.client_order_id}:{self._failures}",
                                          order.client_order_id, reason=f"{type(exc).__name__}: {exc}"))
        return []

    def submit(self, order):
        self.submitted.append(order)
        return self._call("submit", order)

    def cancel(self, order):
        return self._call("cancel", order)

    def poll(self):
        self.outbox.extend(self.inner.poll() or ())
        return []

    def query(self, order):
        return self.inner.query(order)


@dataclass
class OrderInfo:
    label: str
    coid: str
    role: str
    trade: int
    quantity: Decimal
    venue_filled: Decimal = Decimal(0)
    venue_live: bool = True


def lot_size(instrument, price: Decimal) -> Decimal:
    """The smallest size every order and fill of the suite is a multiple of."""
    step = instrument.size_increment
    lot = max(instrument.min_size, step)
    if instrument.min_notional:
        lot = max(lot, instrument.min_notional / (price * ENTRY_OFFSET))
    return (lot / step).to_integral_value(rounding=ROUND_CEILING) * step


class Session:
    """One kernel (one slot) driving a harness's fresh venue through driver moves."""

    def __init__(self, harness, spec: str | Path | None, probe: Probe, desc: dict):
        self.harness = harness
        self.inner = harness.new_venue()
        self.venue = DeferringVenue(self.inner)
        self.spec = spec if spec is not None else packaged_spec_path()
        self.kernel = Kernel(venue=self.venue, slots=1, capital=Decimal("1000"), spec=self.spec)
        self.probe = probe
        self.desc = desc
        self._handles = {s["name"]: set(s["on"]) for s in desc["states"]}
        self._unique = {}
        for t in transitions_of(desc):
            self._unique.setdefault((t.state, t.event, t.target), []).append(t)
        instruments = self.inner.instruments()
        self.asset = getattr(harness, "asset", None) or next(iter(instruments))
        if self.asset not in instruments:
            raise ConformanceFailure(f"the harness trades {self.asset!r}, which venue.instruments() does not list")
        self.instrument = instruments[self.asset]
        self.lot = lot_size(self.instrument, Decimal(harness.price(self.asset)))
        self.pending: list[VenueEvent] = []
        self.delivered: list[VenueEvent] = []
        self.orders: list[OrderInfo] = []
        self.trade = 0
        self.counter = 0
        self.history: list[tuple[str, tuple]] = []

    # ------------------------------------------------------------------ observation

    def _identify(self, observed, first_index: int | None) -> tuple:
        out = []
        for n, (frm, event, to) in enumerate(observed):
            if n == 0 and first_index is not None:
                out.append((frm, event, to, first_index))
                continue
            same = self._unique.get((frm, event, to), [])
            out.append((frm, event, to, same[0].index if len(same) == 1 else None))
        return tuple(out)

    def _collect(self) -> None:
        self.venue.poll()
        by_coid = {o.coid: o for o in self.orders}
        for order in self.venue.submitted:
            info = OrderInfo(f"o{len(self.orders) + 1}", order.client_order_id, order.role, self.trade,
                             Decimal(order.quantity))
            self.orders.append(info)
            by_coid[info.coid] = info
        self.venue.submitted.clear()
        for ev in self.venue.outbox:
            info = by_coid.get(ev.client_order_id)
            if info is not None:
                if ev.kind in ("PARTIALLY_FILLED", "FULL_FILL") and ev.filled_size is not None:
                    info.venue_filled += Decimal(ev.filled_size)
                    if info.venue_filled >= info.quantity:
                        info.venue_live = False
                elif ev.kind in ("REJECT", "CANCEL_ACK", "EXPIRED"):
                    info.venue_live = False
            self.pending.append(ev)
        self.venue.outbox.clear()

    def intent(self, intent: KernelIntent) -> tuple:
        out = self.kernel.process_intent(intent)
        self._collect()
        return self._identify(out.transitions, None)

    def deliver(self, event: VenueEvent) -> tuple:
        slot = self.kernel.slot(0)
        shared = self.kernel.account.as_dict()
        index = self.probe.which(slot.fsm_state, slot.record, shared, event.kind, event)
        out = self.kernel.on_venue_event(event)
        self.delivered.append(event)
        self._collect()
        if out.transitions and index is not None:
            t = out.transitions[0]
            cands = next(s for s in self.desc["states"] if s["name"] == t[0])["on"].get(t[1], [])
            if not (index < len(cands) and cands[index][0] == "take" and cands[index][1] == t[2]):
                raise ConformanceFailure(f"internal: the probe chose candidate {index} of {t[0]}.{t[1]}, "
                                         f"the kernel made {t}")
        return self._identify(out.transitions, index if out.transitions else None)

    # ------------------------------------------------------------------ moves

    def _next_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def _latest(self, role: str) -> OrderInfo | None:
        for o in reversed(self.orders):
            if o.role == role and o.trade == self.trade:
                return o
        return None

    def _price(self, offset: Decimal) -> Decimal:
        return Decimal(self.harness.price(self.asset)) * offset

    def _enter(self, ratios=()) -> tuple:
        self.trade += 1
        return self.intent(KernelIntent("ENTER", 0, self._next_id("e"), trade_id=f"t{self.trade}", asset=self.asset,
                                        side="LONG", target_size=self.lot * ENTRY_LOTS, order_type="LIMIT",
                                        limit_price=self._price(ENTRY_OFFSET), exit_leg_ratios=ratios))

    def _exit(self) -> tuple:
        return self.intent(KernelIntent("EXIT", 0, self._next_id("x"), order_type="LIMIT",
                                        limit_price=self._price(EXIT_OFFSET)))

    def _cancel(self) -> tuple:
        return self.intent(KernelIntent("CANCEL", 0, self._next_id("c")))

    def _fill_quantity(self, order: OrderInfo, part: bool) -> Decimal | None:
        remaining = order.quantity - order.venue_filled
        if not order.venue_live or remaining <= 0:
            return None
        if not part:
            return remaining
        half = (remaining / 2 / self.lot).to_integral_value(rounding="ROUND_FLOOR") * self.lot
        return half if 0 < half < remaining else None

    def _pending_of(self, label: str, kind: str) -> int | None:
        coid = next((o.coid for o in self.orders if o.label == label), None)
        return next((i for i, ev in enumerate(self.pending) if ev.client_order_id == coid and ev.kind == kind), None)

    def moves(self) -> list[str]:
        """The moves that make sense now (the spec says which intents the state takes)."""
        state = self.kernel.slot(0).fsm_state
        takes = self._handles.get(state, set())
        out = []
        if "ENTER" in takes and self.trade < MAX_TRADES:
            out += ["enter", "enter_rejected", "open:1", "open:2"]
        if "EXIT" in takes:
            out += ["exit", "exit_rejected", "close"]
        if "CANCEL" in takes:
            out += ["cancel", "cancel_rejected", "cancel_racing_fill"]
        for role in ("ENTRY", "EXIT"):
            order = self._latest(role)
            if order is not None:
                if self._fill_quantity(order, True) is not None:
                    out.append(f"fill_part:{role}")
                if self._fill_quantity(order, False) is not None:
                    out.append(f"fill_rest:{role}")
        label_of = {o.coid: o.label for o in self.orders}
        seen = set()
        for ev in self.pending:
            key = (label_of.get(ev.client_order_id, "?"), ev.kind)
            if key not in seen:
                seen.add(key)
                out.append(f"deliver:{key[0]}:{key[1]}")
                if ev.kind in ("PARTIALLY_FILLED", "FULL_FILL"):
                    out.append(f"relabel:{key[0]}:{key[1]}")
        record = self.kernel.slot(0).record
        for kind in ("EXPIRED", "CANCEL_ACK", "REJECT"):
            if kind in takes:
                for role in ("ENTRY", "EXIT"):
                    # Offered while the kernel counts the order as working, even if the venue
                    # already filled it: reports of one order can arrive in any order.
                    if self._latest(role) is not None and record.get(f"{role.lower()}_live"):
                        out.append(f"venue_ends:{kind}:{role}")
        if len(self.pending) >= MAX_PENDING:
            out = [m for m in out if m.startswith(("deliver:", "relabel:"))]
        return out

    def apply(self, move: str) -> tuple:
        """Performs one move; returns the transitions it caused, each ``(from, event, to, index)``."""
        name, *args = move.split(":")
        h = self.harness
        if name == "enter":
            observed = self._enter()
        elif name in ("open", "close"):
            # Shortcuts (they keep paths short): an order that fills at once, all of whose
            # reports are applied in the order the venue made them; other reports stay pending.
            before = len(self.orders)
            if name == "open":
                observed = self._enter((Decimal("0.5"), Decimal("0.5")) if args[0] == "2" else ())
            else:
                observed = self._exit()
            if len(self.orders) == before:
                raise ConformanceFailure(f"{move}: the kernel sent no order")
            order = self.orders[-1]
            qty = self._fill_quantity(order, False)
            if qty is None:
                raise ConformanceFailure(f"{move}: order {order.label} is not working at the venue")
            h.fill(order.coid, qty)
            self._collect()
            while (i := next((n for n, ev in enumerate(self.pending) if ev.client_order_id == order.coid), None)) \
                    is not None:
                observed += self.deliver(self.pending.pop(i))
        elif name == "enter_rejected":
            h.reject_next_submit("rejected by the conformance suite")
            observed = self._enter()
        elif name == "exit":
            observed = self._exit()
        elif name == "exit_rejected":
            h.reject_next_submit("rejected by the conformance suite")
            observed = self._exit()
        elif name == "cancel":
            observed = self._cancel()
        elif name == "cancel_rejected":
            h.reject_next_cancel("cancel rejected by the conformance suite")
            observed = self._cancel()
        elif name == "cancel_racing_fill":
            h.fill_before_next_cancel()
            observed = self._cancel()
        elif name in ("fill_part", "fill_rest"):
            order = self._latest(args[0])
            qty = self._fill_quantity(order, name == "fill_part") if order else None
            if qty is None:
                raise ConformanceFailure(f"{move}: no working {args[0].lower()} order to fill")
            before = len(self.pending)
            h.fill(order.coid, qty)
            self._collect()
            made = self.pending[before:]
            if len(made) != 1 or made[0].kind not in ("PARTIALLY_FILLED", "FULL_FILL") \
                    or made[0].client_order_id != order.coid or Decimal(made[0].filled_size) != qty:
                raise ConformanceFailure(
                    f"harness.fill({order.coid!r}, {qty}) must make the venue report exactly one fill of {qty} "
                    f"for that order (seen through venue.poll()); it reported {made}")
            observed = ()
        elif name in ("deliver", "relabel"):
            label, kind = args
            i = self._pending_of(label, kind)
            if i is None:
                raise ConformanceFailure(f"{move}: the venue has not reported {kind} for order {label}; "
                                         f"reported and not yet applied: {self.pending}")
            event = self.pending.pop(i)
            if name == "relabel":
                event = copy.copy(event)
                event.kind = "FULL_FILL" if kind == "PARTIALLY_FILLED" else "PARTIALLY_FILLED"
            observed = self.deliver(event)
        elif name == "venue_ends":
            # The venue ends the order on its own (time in force, a post-only or risk reject,
            # an operator's cancel). No harness action asks for that, so the event is made here.
            kind, role = args
            order = self._latest(role)
            order.venue_live = False
            observed = self.deliver(VenueEvent(kind, self._next_id(f"suite-{kind.lower()}:{order.coid}:"), order.coid,
                                               reason=f"{kind} sent by the conformance suite (synthetic)"))
        else:
            raise ValueError(f"unknown driver move {move!r}")
        self.history.append((move, observed))
        return observed

    def key(self) -> tuple:
        """An abstraction of the configuration, for the planner to visit each once."""
        slot = self.kernel.slot(0)
        r = slot.record

        def positive(name):
            v = r.get(name)
            return v is not None and v > 0

        def tag(o: OrderInfo) -> str:
            latest = self._latest(o.role)
            return ("cur" if o.trade == self.trade else "old") + o.role + ("" if latest is o else "~")

        by_coid = {o.coid: o for o in self.orders}
        # Only the latest entry and exit order of the trade can be filled by a move; of the
        # others only their pending reports matter.
        orders = tuple((role, o.venue_live, o.venue_filled > 0) for role in ("ENTRY", "EXIT")
                       if (o := self._latest(role)) is not None)
        pending = tuple(sorted((tag(by_coid[ev.client_order_id]) if ev.client_order_id in by_coid else "?", ev.kind)
                               for ev in self.pending))
        record = (slot.fsm_state, r.get("entry_live"), r.get("exit_live"), positive("size"),
                  positive("entry_filled"), r.get("entry_filled") == r.get("entry_quantity"), positive("exit_filled"),
                  min(r.get("active_leg_index") or 0, 2), len(r.get("exit_leg_ratios") or ()), bool(r.get("closed")))
        return record, orders, pending

    def clone(self) -> "Session":
        """A copy to branch from (planning only: the reference harness copies itself)."""
        new = object.__new__(Session)
        new.__dict__.update(self.__dict__)
        new.harness = self.harness.copy()
        new.inner = new.harness.venue
        new.venue = DeferringVenue(new.inner)
        new.kernel = Kernel.restore(self.kernel.snapshot(), venue=new.venue, spec=self.spec)
        new.pending = list(self.pending)        # events are never mutated (relabel copies)
        new.delivered = list(self.delivered)
        new.orders = [replace(o) for o in self.orders]
        new.history = list(self.history)
        return new


@dataclass
class Case:
    """A path to one transition: the moves, and the transitions each must cause."""

    transition: Transition
    moves: tuple[str, ...]
    expected: tuple[tuple, ...]

    @property
    def synthetic(self) -> bool:
        return any(m.split(":")[0] in SYNTHETIC_MOVES for m in self.moves)


@dataclass
class Plan:
    transitions: list[Transition]
    cases: dict[Transition, Case] = field(default_factory=dict)
    unreachable: dict[Transition, str] = field(default_factory=dict)
    configurations: int = 0


def _graph_unreachable(desc: dict) -> set[str]:
    from dita.spectools import _closure, _targets

    return {s["name"] for s in desc["states"]} - _closure(desc["initial"], _targets(desc))


@lru_cache(maxsize=8)
def _plan_text(text: str, spec_key: str | None) -> Plan:
    from dita.conformance.model import ModelHarness

    desc = compile_text(text).describe()
    plan = Plan(transitions_of(desc))
    wanted = set(plan.transitions)
    root = Session(ModelHarness(), spec_key, Probe(text), desc)
    rests: dict[str, int] = {}
    # Two breadth-first searches: with venue moves only, then, for what is left, with one
    # synthetic move per path. Each search stops when everything is found, at the budget,
    # or (past MIN_DEPTH) after a whole depth that found nothing new: what is left then is
    # very likely unreachable, and is reported so.
    for allow_synthetic in (False, True):
        seen = {root.key()}
        level, depth, last_find = [root], 0, 0
        budget = plan.configurations + MAX_CONFIGURATIONS
        while level and depth < min(MAX_DEPTH, max(MIN_DEPTH, last_find + 2)) and wanted - set(plan.cases):
            found_before, following = len(plan.cases), []
            for node in level:
                state = node.kernel.slot(0).fsm_state
                rests[state] = rests.get(state, 0) + 1
                used = any(m.split(":")[0] in SYNTHETIC_MOVES for m, _ in node.history)
                for move in node.moves():
                    if move.split(":")[0] in SYNTHETIC_MOVES and (used or not allow_synthetic):
                        continue
                    if plan.configurations >= budget:
                        break
                    child = node.clone()
                    plan.configurations += 1
                    try:
                        observed = child.apply(move)
                    except ConformanceFailure:
                        continue
                    for frm, event, to, index in observed:
                        t = Transition(frm, event, index, to) if index is not None else None
                        if t in wanted and t not in plan.cases:
                            plan.cases[t] = Case(t, tuple(m for m, _ in child.history),
                                                 tuple(obs for _, obs in child.history))
                    k = child.key()
                    if k not in seen:
                        seen.add(k)
                        following.append(child)
            level, depth = following, depth + 1
            if len(plan.cases) > found_before:
                last_find = depth
    dead_states = _graph_unreachable(desc)
    for t in plan.transitions:
        if t in plan.cases:
            continue
        if t.state in dead_states:
            why = f"state {t.state} is unreachable from {desc['initial']} in the spec's graph"
        elif t.state not in rests:
            why = (f"state {t.state} is entered but never stays: the kernel leaves it within the same call, "
                   f"so no event can be delivered to it")
        else:
            why = (f"no path of up to {MAX_DEPTH} driver moves makes its guard hold after the earlier candidates "
                   f"of {t.state}.{t.event} fail ({plan.configurations} configurations searched, "
                   f"{rests[t.state]} of them in {t.state})")
        plan.unreachable[t] = why
    return plan


def plan_for(spec: str | Path | None = None) -> Plan:
    """The transition paths of a spec (None: the packaged one), computed once per process
    and kept in a cache on disk keyed by the spec's text and this planner's own code."""
    text = spec_text(spec)
    path = _cache_file(text)
    if path is not None:
        try:
            return _plan_from_json(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            pass  # no cache, or one from another layout: plan again
    plan = _plan_text(text, None if spec is None else str(spec))
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(_plan_to_json(plan)))
            tmp.replace(path)
        except OSError:
            pass  # the cache is an optimisation only
    return plan


def _cache_file(text: str) -> Path | None:
    """``$DITA_CACHE_DIR`` (default ``~/.cache/dita``); ``DITA_CACHE_DIR=""`` turns it off."""
    root = os.environ.get("DITA_CACHE_DIR")
    if root == "":
        return None
    base = Path(root) if root else Path.home() / ".cache" / "dita"
    digest = hashlib.sha256(text.encode())
    for module in ("driver.py", "model.py"):
        digest.update(Path(__file__).with_name(module).read_bytes())
    digest.update(_engine.__version__.encode())
    return base / f"plan-{digest.hexdigest()[:32]}.json"


def _t(t: Transition) -> list:
    return [t.state, t.event, t.index, t.target]


def _plan_to_json(plan: Plan) -> dict:
    return {"transitions": [_t(t) for t in plan.transitions], "configurations": plan.configurations,
            "cases": [{"transition": _t(c.transition), "moves": list(c.moves),
                       "expected": [[list(x) for x in step] for step in c.expected]} for c in plan.cases.values()],
            "unreachable": [[_t(t), why] for t, why in plan.unreachable.items()]}


def _plan_from_json(data: dict) -> Plan:
    plan = Plan([Transition(*t) for t in data["transitions"]], configurations=data["configurations"])
    for c in data["cases"]:
        t = Transition(*c["transition"])
        plan.cases[t] = Case(t, tuple(c["moves"]), tuple(tuple(tuple(x) for x in step) for step in c["expected"]))
    plan.unreachable = {Transition(*t): why for t, why in data["unreachable"]}
    return plan


def replay(case: Case, harness, spec: str | Path | None) -> Session:
    """Runs a case against the harness's venue; raises :class:`ConformanceFailure` on the
    first move whose transitions differ from the plan."""
    text = spec_text(spec)
    desc = compile_text(text).describe()
    session = Session(harness, spec, _probe(text), desc)
    for n, (move, expected) in enumerate(zip(case.moves, case.expected)):
        observed = session.apply(move)
        if observed != expected:
            done = "; ".join(m for m, _ in session.history[:-1]) or "(nothing)"
            raise ConformanceFailure(
                f"step {n + 1} ({move}) after [{done}]: expected transitions {_fmt(expected)}, "
                f"the kernel made {_fmt(observed)}; last venue reports: {session.pending[-3:] or session.delivered[-3:]}")
    return session


@lru_cache(maxsize=8)
def _probe(text: str) -> Probe:
    return Probe(text)


def _fmt(transitions: tuple) -> str:
    if not transitions:
        return "none"
    return ", ".join(f"{f} --{e}[{'?' if i is None else i}]--> {t}" for f, e, t, i in transitions)
