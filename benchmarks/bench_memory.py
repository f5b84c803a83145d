#!/usr/bin/env python3
"""bench_memory.py - what a long-running kernel keeps, and what its recovery costs, with and
without ``history_limit`` and journal checkpoints.

Runs TRADES round trips (ENTER then EXIT, MARKET, over SLOTS slots) against a venue that fills
every order at once and keeps nothing itself, so that what grows is the kernel's own. Prints,
for each configuration:

  kept B/trade     memory the kernel still holds per trade once the run is over: Python
                   objects (tracemalloc) and the whole process (resident set, which includes
                   the engine's Rust allocations), measured as the growth over the second
                   half of the run, divided by its trades (the limit is reached by then)
  orders / trades  orders and terminal records the kernel holds at the end
  snapshot         size of snapshot() as JSON
  recover          Kernel.recover of the run's journal: from its latest checkpoint, and
                   from its first record (a full replay), in seconds

  python benchmarks/bench_memory.py [--trades 10000] [--slots 4] [--limit 1000] [--checkpoint-every 5000]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import tempfile
import time
import tracemalloc
from decimal import Decimal
from pathlib import Path

import dita
from dita.types import Instrument

ASSET = "BTC-USDT"
PRICE = Decimal("50000")


class FillingVenue(dita.Venue):
    """Acknowledges and fills every order at once, at one price, and remembers nothing."""

    def format_price(self, asset, price, side):
        return str(price)

    def format_quantity(self, asset, quantity):
        return str(quantity)

    def instruments(self):
        return {ASSET: Instrument(Decimal("0.1"), Decimal("0.001"))}

    def submit(self, order):
        coid = order.client_order_id
        return [dita.VenueEvent("ORDER_ACK", f"{coid}:ack", coid, f"V{coid}"),
                dita.VenueEvent("FULL_FILL", f"{coid}:fill", coid, f"V{coid}", order.quantity, PRICE, Decimal("0.02"))]

    def cancel(self, order):
        return [dita.VenueEvent("CANCEL_ACK", f"{order.client_order_id}:cancel", order.client_order_id)]

    def poll(self):
        return []

    def query(self, order):
        return []


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run(trades: int, slots: int, limit: int | None, checkpoint_every: int | None, journal: Path | None) -> dict:
    gc.collect()
    k = dita.Kernel(venue=FillingVenue(), slots=slots, capital=Decimal("1000000"), journal=journal,
                    durability="batched", checkpoint_every=checkpoint_every, history_limit=limit)
    warm = trades // 2
    size = Decimal("0.010")
    tracemalloc.start()
    py0 = rss0 = 0
    for i in range(trades):
        if i == warm:
            gc.collect()
            py0, rss0 = tracemalloc.get_traced_memory()[0], _rss()
        slot = i % slots
        out = k.process_intent(dita.KernelIntent("ENTER", slot, f"e{i}", trade_id=f"t{i}", asset=ASSET, side="LONG",
                                                 target_size=size, order_type="MARKET"))
        assert out.accepted and out.state == "POSITION_OPEN", out
        out = k.process_intent(dita.KernelIntent("EXIT", slot, f"x{i}", order_type="MARKET"))
        assert out.accepted and out.state == "TRADE_TERMINAL_WRITTEN", out
    gc.collect()
    py1, rss1 = tracemalloc.get_traced_memory()[0], _rss()
    tracemalloc.stop()
    counted = trades - warm
    snap = k.snapshot()
    result = {"limit": limit, "checkpoint_every": checkpoint_every, "py_per_trade": (py1 - py0) / counted,
              "rss_per_trade": (rss1 - rss0) / counted, "orders": len(snap["orders"]), "trades": len(snap["trades"]),
              "snapshot_bytes": len(json.dumps(snap))}
    a = k.account
    assert a.capital == a.starting_capital + a.realized_pnl and a.fees_paid == Decimal("0.04") * trades
    k.close()
    if journal is not None:
        for key, from_checkpoint in (("recover_checkpoint_s", True), ("recover_full_s", False)):
            t = time.perf_counter()
            k2 = dita.Kernel.recover(journal, venue=FillingVenue(), sync=False, from_checkpoint=from_checkpoint)
            result[key] = time.perf_counter() - t
            assert k2.snapshot() == snap
            k2.close()
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trades", type=int, default=10000)
    ap.add_argument("--slots", type=int, default=4)
    ap.add_argument("--limit", type=int, default=1000, help="history_limit of the bounded runs")
    ap.add_argument("--checkpoint-every", type=int, default=5000, help="records between checkpoints")
    args = ap.parse_args(argv)
    print(f"# bench_memory: {args.trades} round trips over {args.slots} slots, journal durability=batched")
    header = ("history_limit", "checkpoints", "kept B/trade (py)", "kept B/trade (rss)", "orders", "trades",
              "snapshot", "recover: checkpoint / full")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        configs = [(None, None), (None, args.checkpoint_every), (args.limit, args.checkpoint_every)]
        for n, (limit, every) in enumerate(configs):
            r = run(args.trades, args.slots, limit, every, Path(tmp) / f"run{n}.sqlite")
            rec = (f"{r['recover_checkpoint_s']:.2f} s / {r['recover_full_s']:.2f} s" if every
                   else f"- / {r['recover_full_s']:.2f} s")
            rows.append((str(limit), f"every {every} records" if every else "none", f"{max(0, r['py_per_trade']):,.0f}",
                         f"{max(0, r['rss_per_trade']):,.0f}", f"{r['orders']:,}", f"{r['trades']:,}",
                         f"{r['snapshot_bytes'] / 1e6:.2f} MB", rec))
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
