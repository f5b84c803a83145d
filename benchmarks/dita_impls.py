"""DITA implementations for the anchors harness (``anchors_fsm.py --extra dita_impls:Class``).

Each class has the shape of the harness's ``Impl`` classes: ``name``, ``available()`` and
``prepare(workload, n) -> (run, check)``; ``run()`` is the timed part and returns how many
events it applied; ``check()`` (untimed) proves the work was done: every slot ended in the
expected state and the account paid exactly one fee per fill.

The workloads are those of the anchors (F = fills, lots of 0.002 at 50000.0, fee 0.02 per
fill, as in anchors_fsm.py), in two modes:

``full`` (``DitaEngineRuntime``, and the Rust ``full`` figure): every event of the anchors'
    sequence, intents included, through ``dita._engine.Runtime.apply(slot, kind, payload)``
    with the payloads the kernel itself builds (captured from a kernel run):
      fill      ENTER, ORDER_ACK, (F-1) x PARTIALLY_FILLED, FULL_FILL       -> POSITION_OPEN  2+F events
      cancel    ENTER, ORDER_ACK, CANCEL_ACK (the venue ended the order)    -> IDLE           3 events
      roundtrip fill, then EXIT, ORDER_ACK, FULL_FILL                        -> CLOSED         5+F events

``venue`` (``DitaKernelPrebuilt``, ``DitaKernelBuildInLoop``, and the Rust ``venue`` figure):
    only venue events are timed, each through ``Kernel.on_venue_event``; the intents go
    through ``Kernel.process_intent`` before the timer, on a venue that answers nothing (so
    that the acknowledgement can be timed too):
      fill      [ENTER]             ORDER_ACK, (F-1) x PARTIALLY_FILLED, FULL_FILL -> POSITION_OPEN   1+F events
      cancel    [ENTER, CANCEL]     ORDER_ACK, CANCEL_ACK                          -> IDLE            2 events
      roundtrip slot A: [ENTER]     ORDER_ACK, F fills                             -> POSITION_OPEN
                slot B: [ENTER, FULL_FILL, EXIT]  ORDER_ACK, FULL_FILL of the exit -> TRADE_TERMINAL_WRITTEN
                (the closing fill makes the kernel write the terminal record and feed
                TERMINAL_WRITTEN back, inside the timed call)                                     3+F events
    [..] = applied before the timer. Intents are not venue events, so the kernel rows count
    fewer events per sequence than the anchors do; ns/event is the cost per venue event.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

ASSET = "BTC-USDT"
LOT = "0.002"       # anchors_fsm.FILL_LOT_MILLI / 1000
PX = "50000.0"      # anchors_fsm.PX
FEE = "0.02"        # the anchors' commission per fill
MARKET_PX = "60000"  # the mock's market: a LIMIT BUY at 50000.0 rests
CAPITAL = "1000"

_D_LOT, _D_PX, _D_FEE = Decimal(LOT), Decimal(PX), Decimal(FEE)


def total_qty(fills: int) -> str:
    return f"{fills * float(LOT):.3f}"


# ---------------------------------------------------------------------------------------
# Plans: what is applied to which slot, before and inside the timer.
# A step is (kind, role, num, qty): an intent (role None) or a venue event for the slot's
# entry or exit order, `num` names its event id, `qty` is a fill's size (None: no fill).
# ---------------------------------------------------------------------------------------

INTENTS = ("ENTER", "EXIT", "CANCEL")


class Plan:
    def __init__(self, workload: str, mode: str, fills: int):
        self.workload, self.mode, self.fills = workload, mode, fills
        total = total_qty(fills)
        entry = [("ORDER_ACK", "entry", "1", None)] + [
            ("PARTIALLY_FILLED" if k < fills else "FULL_FILL", "entry", str(k + 1), LOT) for k in range(1, fills + 1)
        ]
        exit_ = [("EXIT", None, None, None), ("ORDER_ACK", "exit", "1", None), ("FULL_FILL", "exit", "2", total)]
        enter = ("ENTER", None, None, None)
        self.feedback: dict[str, str] = {}
        # lists of (slot offset within the sequence, step)
        if mode == "full":
            seq = {
                "fill": [enter] + entry,
                "cancel": [enter, ("ORDER_ACK", "entry", "1", None), ("CANCEL_ACK", "entry", "c", None)],
                "roundtrip": [enter] + entry + exit_,
            }[workload]
            self.setup, self.timed = [], [(0, s) for s in seq]
            self.finals = [{"fill": "POSITION_OPEN", "cancel": "IDLE", "roundtrip": "CLOSED"}[workload]]
        elif mode == "venue":
            if workload == "fill":
                self.setup, self.timed, self.finals = [(0, enter)], [(0, s) for s in entry], ["POSITION_OPEN"]
            elif workload == "cancel":
                self.setup = [(0, enter), (0, ("CANCEL", None, None, None))]
                self.timed = [(0, ("ORDER_ACK", "entry", "1", None)), (0, ("CANCEL_ACK", "entry", "c", None))]
                self.finals = ["IDLE"]
            elif workload == "roundtrip":
                self.setup = [(0, enter), (1, enter), (1, ("FULL_FILL", "entry", "all", total)), (1, exit_[0])]
                self.timed = [(0, s) for s in entry] + [(1, s) for s in exit_[1:]]
                self.finals = ["POSITION_OPEN", "TRADE_TERMINAL_WRITTEN"]
                self.feedback = {"WRITE_TERMINAL": "TERMINAL_WRITTEN"}
            else:
                raise ValueError(workload)
        else:
            raise ValueError(mode)
        self.per_seq = len(self.finals)  # slots per sequence
        fills_per_seq = sum(1 for _, s in self.setup + self.timed if s[3] is not None)
        self.fees_per_seq = _D_FEE * fills_per_seq

    @property
    def events_per_seq(self) -> int:
        return len(self.timed)

    def describe(self) -> str:
        def names(steps):
            out = []
            for off, s in steps:
                label = f"{'B:' if off else ''}{s[0]}"
                if out and out[-1][0] == label:
                    out[-1][1] += 1
                else:
                    out.append([label, 1])
            return ", ".join(lab if c == 1 else f"{c}x {lab}" for lab, c in out)
        out = f"timed {names(self.timed)}"
        if self.setup:
            out = f"untimed {names(self.setup)}; " + out
        return out


def new_kernel(slots: int):
    import dita

    from dita_mock import MockVenue

    # A silent mock: acknowledgements and fills are the timed events, delivered by the benchmark.
    return dita.Kernel(venue=MockVenue(prices={ASSET: MARKET_PX}, silent=True), slots=slots, capital=Decimal(CAPITAL))


def intent_for(kind: str, slot: int, fills: int):
    import dita

    if kind == "ENTER":
        return dita.KernelIntent("ENTER", slot, f"e{slot}", trade_id=f"t{slot}", asset=ASSET, side="LONG",
                                 target_size=Decimal(total_qty(fills)), order_type="LIMIT", limit_price=_D_PX)
    if kind == "EXIT":
        return dita.KernelIntent("EXIT", slot, f"x{slot}", order_type="MARKET")
    if kind == "CANCEL":
        return dita.KernelIntent("CANCEL", slot, f"c{slot}")
    raise ValueError(kind)


def venue_event_for(step, coid: str):
    import dita

    kind, _role, num, qty = step
    if qty is None:
        return dita.VenueEvent(kind, f"{coid}:{num}", coid, f"V-{coid}")
    return dita.VenueEvent(kind, f"{coid}:{num}", coid, f"V-{coid}", Decimal(qty), _D_PX, _D_FEE)


class _Recorder:
    """Stands in for a kernel's runtime and records what the kernel hands to the engine."""

    def __init__(self, rt):
        self._inner = rt
        self.calls: list[tuple[int, str, Any]] = []

    def apply(self, slot, kind, payload=None):
        self.calls.append((slot, kind, payload))
        return self._inner.apply(slot, kind, payload)

    def __getattr__(self, name):
        return getattr(self._inner, name)


def drive(k, plan: Plan, base: int, steps, coids: dict, check: bool = True) -> list:
    """Applies `steps` to slots base+offset of kernel `k` (intents and venue events)."""
    outs = []
    for off, step in steps:
        slot = base + off
        if step[0] in INTENTS:
            intent = intent_for(step[0], slot, plan.fills)
            if step[0] in ("ENTER", "EXIT"):
                coids[(slot, "entry" if step[0] == "ENTER" else "exit")] = k.venue.client_order_id(intent)
            out = k.process_intent(intent)
        else:
            out = k.on_venue_event(venue_event_for(step, coids[(slot, step[1])]))
        if check and not out.accepted:
            raise AssertionError(f"{plan.workload}/{plan.mode}: {step[0]} refused on slot {slot}: {out!r}")
        outs.append(out)
    return outs


def captured_payloads(plan: Plan) -> tuple[list, list]:
    """(setup, timed) as [(offset, kind, payload)] exactly as the kernel hands them to
    ``Runtime.apply`` (dicts for intents, VenueEvent objects for venue events), from one
    sequence run through a kernel whose runtime is recorded."""
    k = new_kernel(plan.per_seq)
    rec = _Recorder(k._rt)
    k._rt = rec
    del k.on_venue_event  # the general path, which hands every event to Runtime.apply
    coids: dict = {}
    result = []
    for steps in (plan.setup, plan.timed):
        part = []
        for off, step in steps:
            before = len(rec.calls)
            drive(k, plan, 0, [(off, step)], coids)
            slot, kind, payload = rec.calls[before]  # the step's own apply (feedback follows it)
            assert (slot, kind) == (off, step[0]), (slot, kind, off, step)
            part.append((off, kind, payload))
        result.append(part)
    return result[0], result[1]


def _jsonable(v):
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def plans_json(fills: int, workloads, modes=("full", "venue")) -> str:
    """Every plan with its engine payloads as JSON, for the Rust example."""
    import dita

    events = dita.load_machine().describe()["events"]

    def payload(kind, p):
        fields = [f[0] for f in events[kind]]
        if p is None:
            return {}
        get = p.get if isinstance(p, dict) else (lambda name: getattr(p, name, None))
        return {f: _jsonable(get(f)) for f in fields}

    out = []
    for w in workloads:
        for m in modes:
            plan = Plan(w, m, fills)
            setup, timed = captured_payloads(plan)
            out.append({
                "workload": w, "mode": m, "slots_per_seq": plan.per_seq,
                "setup": [[off, kind, payload(kind, p)] for off, kind, p in setup],
                "timed": [[off, kind, payload(kind, p)] for off, kind, p in timed],
                "finals": plan.finals, "feedback": plan.feedback, "fees_per_seq": str(plan.fees_per_seq),
                "describe": plan.describe(),
            })
    return json.dumps({"fills": fills, "capital": CAPITAL, "plans": out}, indent=1)


# ---------------------------------------------------------------------------------------
# The implementations
# ---------------------------------------------------------------------------------------


def _available():
    try:
        import dita  # noqa: F401
        from dita import _engine  # noqa: F401
        import dita_mock  # noqa: F401
    except Exception as exc:
        return False, f"dita / dita-mock not importable: {exc!r}"
    return True, ""


def _check_fees(paid: Decimal, plan: Plan, n: int, who: str):
    want = plan.fees_per_seq * n
    assert paid == want, f"{who} {plan.workload}: fees paid {paid}, expected {want} (one fee per applied fill)"


class DitaEngineRuntime:
    """``dita._engine.Runtime.apply(slot, kind, payload)`` from Python, every event of the
    anchors' sequence (intents too), payloads built before the timer as the kernel builds
    them; one fresh slot per sequence."""

    name = "dita Runtime.apply (py)"

    def available(self):
        return _available()

    def prepare(self, wl, n: int):
        import dita
        from dita import _engine

        plan = Plan(wl.name, "full", wl.fills)
        _setup, timed = captured_payloads(plan)
        seq = [(kind, p) for _off, kind, p in timed]
        cap = Decimal(CAPITAL)
        rt = _engine.Runtime(dita.load_machine(), n, {"starting_capital": cap, "capital": cap})
        per = len(seq)

        def run():
            ap = rt.apply
            for i in range(n):
                for kind, p in seq:
                    ap(i, kind, p)
            return n * per

        def check():
            bad = [i for i in range(n) if rt.state(i) != plan.finals[0]]
            assert not bad, (self.name, wl.name, len(bad), rt.state(bad[0]))
            _check_fees(rt.shared()["fees_paid"], plan, n, self.name)

        return run, check


class _DitaKernel:
    build = False

    def available(self):
        return _available()

    def prepare(self, wl, n: int):
        plan = Plan(wl.name, "venue", wl.fills)
        per = plan.per_seq
        k = new_kernel(n * per)
        coids: dict = {}
        for i in range(n):
            drive(k, plan, i * per, plan.setup, coids)
        ov = k.on_venue_event
        count = n * plan.events_per_seq
        if not self.build:
            rows = [[venue_event_for(step, coids[(i * per + off, step[1])]) for off, step in plan.timed]
                    for i in range(n)]

            def run():
                for row in rows:
                    for ev in row:
                        ov(ev)
                return count

        else:
            from dita import VenueEvent

            # What an adapter has before it builds an event: the message's kind, ids and
            # numbers (decimals already parsed, as nautilus' build+apply reuses its
            # Quantity/Price objects); it builds the event id and the VenueEvent per event.
            px, fee = _D_PX, _D_FEE
            steps = [(off, kind, role, num, None if qty is None else Decimal(qty))
                     for off, (kind, role, num, qty) in plan.timed]
            # The plans time entry-order events on a sequence's first slot and exit-order
            # events on its second one.
            assert all((off, role) in ((0, "entry"), (1, "exit")) for off, _k, role, _n, _q in steps), plan.timed
            slot_coids = [(coids.get((i * per, "entry")), coids.get((i * per + 1, "exit"))) for i in range(n)]

            def run():
                for pair in slot_coids:
                    for off, kind, role, num, qty in steps:
                        coid = pair[0] if role == "entry" else pair[1]
                        if qty is None:
                            ev = VenueEvent(kind, f"{coid}:{num}", coid, f"V-{coid}")
                        else:
                            ev = VenueEvent(kind, f"{coid}:{num}", coid, f"V-{coid}", qty, px, fee)
                        ov(ev)
                return count

        def check():
            rt = k._rt
            bad = [s for s in range(n * per) if rt.state(s) != plan.finals[s % per]]
            assert not bad, (self.name, wl.name, len(bad), bad[0], rt.state(bad[0]))
            for s in (0, n * per - 1):
                assert k.slot(s).fsm_state == plan.finals[s % per]
            _check_fees(k.account.fees_paid, plan, n, self.name)

        return run, check


class DitaKernelPrebuilt(_DitaKernel):
    """``Kernel.on_venue_event(ev)``; the VenueEvent objects are built before the timer."""

    name = "dita kernel apply"
    build = False


class DitaKernelBuildInLoop(_DitaKernel):
    """``Kernel.on_venue_event(VenueEvent(...))``; each event built inside the timed loop."""

    name = "dita kernel build+apply"
    build = True


class NautilusApplyPerOrder:
    """NautilusTrader's ``order.apply`` with each order's events built before the timer, as
    for the kernel rows. The anchors' ``nautilus-cy apply`` row builds one event list and
    applies it to every order, so its events stay in cache while the kernel's (one set per
    order, since the kernel routes by client order id) do not; this row measures NautilusTrader
    under the kernel's conditions. It is an extra, for reading the table: the targets are set
    against the anchors' own rows."""

    name = "nautilus-cy apply (events per order)"

    def available(self):
        try:
            import anchors_fsm  # loaded by the harness that runs this class
        except ImportError as exc:
            return False, f"anchors_fsm not loaded: {exc!r}"
        return anchors_fsm.NautilusCython().available()

    def prepare(self, wl, n: int):
        import anchors_fsm

        nt = anchors_fsm.NautilusCython(build_events_in_loop=False)
        c = nt._ctx()
        total = c.Quantity.from_str(anchors_fsm._total_qty_str(wl.fills))
        specs = list(enumerate(wl.nt_orders))  # (order index, (side, steps))
        rows = [[(nt._order(c, i, side, total), nt._events(c, i, side, steps, total, str(i)))
                 for i, (side, steps) in specs] for _ in range(n)]

        def run():
            cnt = 0
            for row in rows:
                for order, evs in row:
                    ap = order.apply
                    for ev in evs:
                        ap(ev)
                    cnt += len(evs)
            return cnt

        def check():
            for row in (rows[0], rows[-1]):
                got = [nt._status(o) for o, _ in row]
                assert got == wl.nt_final, (self.name, wl.name, got)

        return run, check
