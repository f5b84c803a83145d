#!/usr/bin/env python3
"""bench_journal.py - what the SQLite journal costs, printed beside the in-memory figure.

Rows (medians over --repeats rounds; each round is a fresh kernel and a fresh journal file
in a temporary directory):

  journal append+flush (full)      records/s written through Journal.append + flush, one
                                   commit per flush of --per-flush records (synchronous=FULL)
  journal append+flush (batched)   the same with durability "batched" (commits every
                                   batch_records, synchronous=NORMAL)
  on_venue_event, no journal       ns per partial-fill event through Kernel.on_venue_event
  on_venue_event, journal full     the same, journaled, every call durable before it returns
  on_venue_event, journal batched  the same, journaled in batches

The events are partial fills of one LIMIT entry order far larger than the fills, so every
event is a real fill (apply + transition + settlement records: 3 records per event).
Run: python benchmarks/bench_journal.py [--events N] [--repeats R]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import dita
from dita.journal import Journal


class QuietVenue(dita.Venue):
    """Accepts orders and answers nothing: the timed events are the only venue events."""

    name = "quiet"

    def format_price(self, asset, price, side):
        return str(price)

    def format_quantity(self, asset, quantity):
        return str(quantity)

    def instruments(self):
        return {"BTC-USDT": dita.Instrument(Decimal("0.1"), Decimal("0.001"), Decimal("0.001"), Decimal("5"))}

    def submit(self, order):
        return []

    def cancel(self, order):
        return []

    def poll(self):
        return []

    def query(self, order):
        return []


def kernel_round(events: int, journal: Path | None, durability: str) -> float:
    k = dita.Kernel(venue=QuietVenue(), slots=1, capital=Decimal("1000000000"), journal=journal,
                    durability=durability)
    k.process_intent(dita.KernelIntent("ENTER", 0, "e1", trade_id="t1", asset="BTC-USDT", side="LONG",
                                       target_size=Decimal("1000000"), order_type="LIMIT",
                                       limit_price=Decimal("50000.0")))
    lot, px, fee = Decimal("0.002"), Decimal("50000.0"), Decimal("0.02")
    evs = [dita.VenueEvent("PARTIALLY_FILLED", f"f{i}", "e1", "V1", lot, px, fee) for i in range(events)]
    gc.disable()
    t0 = time.perf_counter_ns()
    for ev in evs:
        k.on_venue_event(ev)
    dt = time.perf_counter_ns() - t0
    gc.enable()
    k.close()
    assert k.slot(0).size == lot * events, "every event must have filled"
    return dt / events


def journal_round(records: int, path: Path, durability: str, per_flush: int) -> float:
    j = Journal.create(path, {"slots": 1}, durability=durability)
    data = {"event": "PARTIALLY_FILLED", "payload": {"event_id": "f1", "client_order_id": "e1",
                                                       "filled_size": "0.002", "fill_price": "50000.0"}}
    t0 = time.perf_counter_ns()
    for i in range(records):
        j.append("apply", 0, data)
        if i % per_flush == per_flush - 1:
            j.flush()
    j.close()
    dt = time.perf_counter_ns() - t0
    with Journal.open(path) as check:
        assert check.last_seq == records
    return records / (dt / 1e9)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--per-flush", type=int, default=3, help="records per flush point (3 = one fill event)")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        n = 0

        def fresh() -> Path:
            nonlocal n
            n += 1
            return Path(tmp) / f"j{n}.sqlite"

        for mode in ("full", "batched"):
            rates = [journal_round(args.events * 3, fresh(), mode, args.per_flush) for _ in range(args.repeats)]
            rows.append((f"journal append+flush ({mode})", f"{statistics.median(rates):,.0f} records/s"))
        base = statistics.median(kernel_round(args.events, None, "full") for _ in range(args.repeats))
        rows.append(("on_venue_event, no journal", f"{base:,.0f} ns/event"))
        for mode in ("full", "batched"):
            t = statistics.median(kernel_round(args.events, fresh(), mode) for _ in range(args.repeats))
            rows.append((f"on_venue_event, journal {mode}", f"{t:,.0f} ns/event (+{t - base:,.0f} for the journal)"))
    print(f"# bench_journal: {args.events} fill events x {args.repeats} repeats (median), "
          f"{args.per_flush} records per flush point in the append rows")
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
