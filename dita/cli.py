"""The ``dita`` command."""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal

import dita
from dita import cli_journal


def _show(label: str, out: dita.KernelOutcome) -> None:
    verdict = "accepted" if out.accepted else f"REFUSED {out.diagnostic_code}"
    print(f"\n> {label}: {verdict} -> slot state {out.state}")
    if out.message and not out.accepted:
        print(f"    {out.message}")
    for frm, event, to in out.transitions:
        print(f"    {frm:<22} --{event:<17}--> {to}")
    for event, code, message in out.refused_events:
        print(f"    venue event {event.kind} {event.event_id} refused: {code}: {message}")


def demo(args: argparse.Namespace) -> int:
    """A scripted session on the mock venue: partial entry, cancel, two-leg exit."""
    k = dita.Kernel(venue="mock", slots=2, capital=Decimal("1000"), venue_options={
        "prices": {"BTC-USDT": "60000"}, "entry_fill_ratio": "0.6", "exit_fill_ratio": "0.5", "fee_rate": "0.0004"})
    print(f"DITA {dita.__version__} demo on venue 'mock', spec {dita.packaged_spec_path().name}, capital 1000")
    intent = dita.KernelIntent
    _show("ENTER LONG 0.0205 BTC-USDT LIMIT 60000.57 (the venue rounds size and price; 60% fills at once)",
          k.process_intent(intent("ENTER", 0, "i1", trade_id="t1", asset="BTC-USDT", side="LONG",
                                  target_size="0.0205", order_type="LIMIT", limit_price="60000.57",
                                  exit_leg_ratios=("0.5", "0.5"))))
    print(f"    venue received: {k.venue.received[-1]}")
    _show("CANCEL the rest of the entry", k.process_intent(intent("CANCEL", 0, "i2")))
    s = k.slot(0)
    print(f"    position {s.size} @ {s.entry_price}, capital {k.account.capital}")
    _show("ENTER again on the busy slot", k.process_intent(intent("ENTER", 0, "i3", trade_id="t2", asset="BTC-USDT",
                                                                   side="LONG", target_size="0.01")))
    _show("EXIT leg 1 at MARKET (half of it fills at once)", k.process_intent(intent("EXIT", 0, "i4")))
    fill = k.venue.set_price("BTC-USDT", "60500")[0]
    for out in k.poll():
        _show("market moves to 60500: the rest of leg 1 fills", out)
    _show("the same fill reported again", k.on_venue_event(fill))
    _show("EXIT leg 2: LIMIT 61000 rests", k.process_intent(intent("EXIT", 0, "i5", order_type="LIMIT", limit_price="61000")))
    k.venue.set_price("BTC-USDT", "61000")
    for out in k.poll():
        _show("market moves to 61000: leg 2 fills", out)
    a = k.account
    print(f"\naccount: capital {a.capital} = {a.starting_capital} + realized {a.realized_pnl} "
          f"(gross {a.gross_realized_pnl} - fees {a.fees_paid})")
    for t in k.trades:
        print(f"trade {t['trade_id']}: {t['side']} {t['initial_size']} {t['asset']} @ {t['entry_price']}, "
              f"realized {t['realized_pnl']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dita", description="DITA execution kernel")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="run a scripted session on the mock venue", description=demo.__doc__)
    p.set_defaults(func=demo)
    cli_journal.add_commands(sub)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except dita.DitaError as exc:
        print(f"dita: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
