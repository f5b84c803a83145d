"""``dita demo``: a realistic, journaled session end to end, shown as it happens.

The market is moved through the venue's conformance harness, so the same script runs on
any installed venue that ships one. The default is the BingX simulator (a real HTTP server
on loopback, reached through the real ``dita-bingx`` plugin); without it, the mock.

The session: a LIMIT entry that fills partly, a cancel of the rest, an intent the slot
refuses, a two-leg exit whose first leg fills in two parts, the same fill reported twice
(ignored), and the journal replayed at the end to show it rebuilds the same kernel.
"""

from __future__ import annotations

import tempfile
from decimal import Decimal
from pathlib import Path

from rich.console import Console
from rich.table import Table

import dita
from dita.plugins import default_registry

PREFERRED_VENUES = ("bingx", "mock")


def pick_venue(requested: str | None) -> str:
    available = default_registry().harness_entries()
    if requested:
        if requested not in available:
            raise dita.DitaError(f"no venue {requested!r} with a harness is installed (installed: "
                                 f"{', '.join(sorted(available)) or 'none'})")
        return requested
    for name in PREFERRED_VENUES:
        if name in available:
            return name
    if not available:
        raise dita.DitaError("no venue with a harness is installed: pip install ./plugins/dita-mock")
    return sorted(available)[0]


def _on_grid(value: Decimal, step: Decimal, up: bool = False) -> Decimal:
    units = value / step
    units = units.to_integral_value(rounding="ROUND_CEILING" if up else "ROUND_FLOOR")
    return units * step


class Demo:
    def __init__(self, console: Console, venue_name: str, journal: Path):
        self.console = console
        self.harness = default_registry().create_harness(venue_name)
        self.venue = self.harness.new_venue()
        self.asset = self.harness.asset or next(iter(self.venue.instruments()))
        self.kernel = dita.Kernel(venue=self.venue, slots=2, capital=Decimal("10000"), journal=journal)
        self.journal = journal
        self.step_no = 0
        self.seen_events: list[dita.VenueEvent] = []

    def show(self, label: str, outcomes) -> None:
        """One step of the timeline: what was asked, the verdict, every transition."""
        if isinstance(outcomes, dita.KernelOutcome):
            outcomes = [outcomes]
        self.step_no += 1
        if not outcomes:
            self.console.print(f"[bold]{self.step_no}. {label}[/]: nothing new (the venue answered within the call)")
        for out in outcomes:
            verdict = "[green]accepted[/]" if out.accepted else f"[red]refused {out.diagnostic_code}[/]"
            self.console.print(f"[bold]{self.step_no}. {label}[/]: {verdict} -> slot {out.slot_id} [cyan]{out.state}[/]")
            if out.message and not out.accepted:
                self.console.print(f"     {out.message}")
            for frm, event, to in out.transitions:
                self.console.print(f"     {frm:<22} --{event}--> {to}")
            for event, code, message in out.refused_events:
                self.console.print(f"     venue event {event.kind} {event.event_id} refused: {code}")

    def poll(self, label: str) -> list:
        """What the venue reports, applied one by one (and kept, to show a re-delivery)."""
        events = list(self.venue.poll())
        self.seen_events += events
        self.show(label, [self.kernel.on_venue_event(ev) for ev in events])
        return events

    def run(self) -> int:
        k, h, asset, c = self.kernel, self.harness, self.asset, self.console
        inst = self.venue.instruments()[asset]
        price = h.price(asset)
        # A size of a few minimums (and comfortably above the minimum notional), on the grid.
        floor = max(inst.min_size * 20, (inst.min_notional or Decimal(0)) * 4 / price)
        size = _on_grid(floor, inst.size_increment, up=True)
        first_fill = _on_grid(size * Decimal("0.4"), inst.size_increment)
        entry_px = _on_grid(price * Decimal("0.999"), inst.price_increment)
        c.rule(f"DITA {dita.__version__} demo on venue '{h.name}' ({type(self.venue).__module__})")
        c.print(f"market {asset} {price}; capital {k.account.capital}; journal {self.journal}")

        intent = dita.KernelIntent
        self.show(f"ENTER LONG {size} {asset} LIMIT {entry_px} (rests below the market)",
                  k.process_intent(intent("ENTER", 0, "demo-e1", trade_id="T1", asset=asset, side="LONG",
                                          target_size=size, order_type="LIMIT", limit_price=entry_px,
                                          exit_leg_ratios=("0.5", "0.5"))))
        entry = k.slot(0).active_entry_order
        h.fill(entry.client_order_id, first_fill, entry_px)
        self.poll(f"the venue fills {first_fill} of the entry")
        self.show("CANCEL the rest of the entry", k.process_intent(intent("CANCEL", 0, "demo-c1")))
        self.poll("the venue confirms the cancel")
        s = k.slot(0)
        c.print(f"     position {s.size} {asset} @ {s.entry_price}")
        self.show("ENTER again on the busy slot",
                  k.process_intent(intent("ENTER", 0, "demo-e2", trade_id="T2", asset=asset, side="LONG",
                                          target_size=size)))

        exit_px = _on_grid(price * Decimal("1.002"), inst.price_increment, up=True)
        self.show(f"EXIT leg 1 of 2: LIMIT {exit_px} (rests above the market)",
                  k.process_intent(intent("EXIT", 0, "demo-x1", order_type="LIMIT", limit_price=exit_px)))
        leg = k.slot(0).active_exit_order
        part = _on_grid(leg.quantity / 2, inst.size_increment)
        if part >= inst.size_increment and part < leg.quantity:
            h.fill(leg.client_order_id, part, exit_px)
            self.poll(f"the venue fills {part} of leg 1")
        h.set_price(asset, exit_px)
        self.poll(f"the market rises to {exit_px}: the rest of leg 1 fills")
        # The same report arriving twice (a reconnect, a replayed stream): applied once.
        first = next((ev for ev in self.seen_events if ev.client_order_id == leg.client_order_id
                      and ev.kind in ("PARTIALLY_FILLED", "FULL_FILL")), None)
        if first is not None:
            self.show("the first fill of leg 1 is reported again", k.on_venue_event(first))
        self.show("EXIT leg 2 of 2: MARKET", k.process_intent(intent("EXIT", 0, "demo-x2")))
        self.poll("the venue reports the market exit")

        a = k.account
        table = Table(title="account")
        for col in ("capital", "starting capital", "realized PnL", "gross PnL", "fees"):
            table.add_column(col, justify="right")
        table.add_row(str(a.capital), str(a.starting_capital), str(a.realized_pnl), str(a.gross_realized_pnl),
                      str(a.fees_paid))
        c.print(table)
        for t in k.trades:
            c.print(f"trade {t['trade_id']}: {t['side']} {t['initial_size']} {t['asset']} @ {t['entry_price']}, "
                    f"realized {t['realized_pnl']}")
        before = k.snapshot()
        k.close()
        again = dita.Kernel.recover(self.journal, venue=self.venue, sync=False)
        same = again.snapshot() == before
        again.close()
        c.print(f"journal: {self.journal} ({again.journal.last_seq} records); replayed: "
                f"{'[green]same kernel[/]' if same else '[red]DIFFERENT[/]'}")
        c.print(f"see it with: dita journal show {self.journal}")
        return 0 if same and a.capital == a.starting_capital + a.realized_pnl else 1

    def close(self) -> None:
        self.harness.close()


def run(venue: str | None = None, journal: str | None = None, console: Console | None = None) -> int:
    console = console or Console(soft_wrap=True)
    name = pick_venue(venue)
    path = Path(journal) if journal else Path(tempfile.mkdtemp(prefix="dita-demo-")) / "demo.sqlite"
    demo = Demo(console, name, path)
    try:
        return demo.run()
    finally:
        demo.close()

