"""``dita journal show`` and ``dita journal replay``."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from typing import Mapping

from rich.console import Console
from rich.table import Table

from dita.errors import VenueError
from dita.journal import Journal, journal_chain
from dita.venue import Venue


class OfflineVenue(Venue):
    """Stands in for the venue when a journal is only read: a replay sends nothing, so any
    attempt to reach a venue is an error, never a silent no-op."""

    name = "offline"

    def _refuse(self, *args, **kwargs):
        raise VenueError("offline replay: no venue is connected")

    format_price = format_quantity = submit = cancel = query = _refuse

    def instruments(self) -> Mapping:
        return {}

    def poll(self) -> list:
        return []


class PipeConsole(Console):
    """A rich console that lets a closed pipe reach ``dita.cli.main`` as ``BrokenPipeError``:
    rich would exit with status 1 on its own, where every other command ends with the
    broken-pipe status, so `dita ... | head` ends the same whatever the command."""

    def on_broken_pipe(self) -> None:
        self.quiet = True   # nothing more to write: the reader is gone
        raise BrokenPipeError


def _console() -> Console:
    # Piped or captured output gets room for whole state names instead of rich's 80 columns.
    return PipeConsole(soft_wrap=True, width=None if sys.stdout.isatty() else 160)


def _summary(kind: str, data) -> str:
    if kind == "intent":
        parts = [data.get("action"), data.get("intent_id")]
        for key in ("asset", "side", "target_size", "order_type", "limit_price"):
            if data.get(key) not in (None, [], {}):
                parts.append(f"{key}={data[key]}")
        return " ".join(str(p) for p in parts)
    if kind == "apply":
        p = data.get("payload") or {}
        verdict = "" if data.get("accepted") else f" REFUSED {data.get('diagnostic')}"
        if data.get("source") == "venue":
            fill = f" {p.get('filled_size')} @ {p.get('fill_price')}" if p.get("filled_size") else ""
            return f"{data['event']} {p.get('event_id')} order {p.get('client_order_id')}{fill}{verdict}"
        return f"{data['event']} ({data.get('source')}){verdict}"
    if kind == "transition":
        return " --{}--> ".join([data[0], data[2]]).format(data[1])
    if kind == "effect":
        a = data.get("args") or {}
        keys = ("client_order_id", "side", "order_type", "quantity", "limit_price", "reduce_only")
        return data["effect"] + " " + " ".join(f"{k}={a[k]}" for k in keys if a.get(k) is not None)
    if kind == "checkpoint":
        account = data.get("account") or {}
        return (f"state of {len(data.get('slots') or ())} slot(s), capital {account.get('capital')}, "
                f"{len(data.get('orders') or {})} order(s), {len(data.get('trades') or ())} trade(s)")
    if kind == "settlement":
        return f"capital {data.get('capital')} realized {data.get('realized_pnl')} fees {data.get('fees_paid')}"
    return " ".join(f"{k}={v}" for k, v in data.items()) if isinstance(data, dict) else str(data)


def _trades_of(records) -> list:
    """The trade each record belongs to (None for records of no slot). A trade owns its slot
    from its accepted ENTER to the next accepted ENTER there, so its exits, settlements and
    terminal record are all its own. A refused ENTER (the slot is busy, the size too small, a
    repeated intent) belongs to the trade it names but takes the slot from nobody: only the
    ENTER's verdict, the apply record after it, moves the slot to a new trade."""
    owner: dict[int, object] = {}     # slot -> the trade its records belong to
    pending: dict[int, object] = {}   # slot -> the trade of an ENTER awaiting its verdict
    trades = []
    for r in records:
        slot, trade = r.slot, None
        if r.kind == "checkpoint" and isinstance(r.data, dict):
            # A file that continues another opens with a checkpoint: the slots' trades come from it.
            for sid, state in enumerate(r.data.get("slots") or ()):
                record = state.get("record") if isinstance(state, dict) else None
                if sid not in owner and isinstance(record, dict) and record.get("trade_id") is not None:
                    owner[sid] = record["trade_id"]
        elif slot is None:
            pass
        elif r.kind == "intent" and r.data.get("action") == "ENTER":
            trade = pending[slot] = r.data.get("trade_id")
        elif r.kind == "apply" and r.data.get("event") == "ENTER" and slot in pending:
            trade = pending.pop(slot)
            if r.data.get("accepted"):
                owner[slot] = trade
        else:
            pending.pop(slot, None)   # an ENTER refused before its verdict was journaled
            trade = owner.get(slot)
        trades.append(trade)
    return trades


def show(args: argparse.Namespace) -> int:
    """Prints a journal's records as a table (optionally one trade's only)."""
    console = _console()
    with Journal.open(args.path) as j:
        meta = j.meta()
        records = list(j.records())
    if args.trade:
        records = [r for r, trade in zip(records, _trades_of(records)) if trade == args.trade]
    chain = ""
    if meta.get("continues"):
        chain += f"; continues {meta['continues'].get('journal')} (from its record {meta['continues'].get('checkpoint')})"
    if meta.get("continued_in"):
        chain += f"; continued in {meta['continued_in']}"
    table = Table(title=f"journal {args.path}: machine {meta.get('machine')}, {meta.get('slots')} slot(s), "
                        f"starting capital {meta.get('starting_capital')}, venue {meta.get('venue')}{chain}")
    for col in ("seq", "slot", "kind", "what"):
        table.add_column(col, justify="right" if col in ("seq", "slot") else "left")
    for r in records:
        table.add_row(str(r.seq), "" if r.slot is None else str(r.slot), r.kind, _summary(r.kind, r.data))
    console.print(table)
    counts = Counter(r.kind for r in records)
    console.print(", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no records")
    if args.trade and not records:
        console.print(f"no records for trade {args.trade!r}")
        return 1
    return 0


def replay(args: argparse.Namespace) -> int:
    """Rebuilds the kernel from a journal's first record, checking every recorded verdict,
    transition and checkpoint, and prints the final slots and account. A rotated journal is
    replayed through every later file of its chain. Nothing is sent anywhere."""
    from dita.kernel import Kernel

    console = _console()
    files, _ = journal_chain(args.path)
    k = Kernel.recover(args.path, venue=OfflineVenue(), sync=False, from_checkpoint=False, read_only=True)
    try:
        n = closed = 0
        for path in files:
            with Journal.open(path) as j:
                n += j.last_seq
                # Counted in the records, not from k.trades: with a history_limit the kernel
                # keeps only the last few terminal records, and the journal has every one.
                closed += sum(r.kind == "effect" and r.data.get("effect") == "WRITE_TERMINAL" for r in j.records())
                if path == files[0]:
                    earlier = (j.meta().get("continues") or {}).get("journal")
        where = args.path if len(files) == 1 else f"{len(files)} files ({files[0].name} ... {files[-1].name})"
        console.print(f"replayed {n} records of {where}: every verdict, transition and checkpoint matched")
        table = Table(title="slots")
        for col in ("slot", "state", "trade", "asset", "side", "size", "entry price", "realized PnL"):
            table.add_column(col)
        for sid in range(k.slots):
            s = k.slot(sid)
            table.add_row(str(sid), s.fsm_state, str(s.trade_id or ""), str(s.asset or ""), str(s.side or ""),
                          str(s.size), str(s.entry_price or ""), str(s.realized_pnl))
        console.print(table)
        a = k.account
        console.print(f"account: capital {a.capital} = {a.starting_capital} + realized {a.realized_pnl} "
                      f"(gross {a.gross_realized_pnl} - fees {a.fees_paid}); {closed} trade(s) closed"
                      + (f" in these records (earlier ones closed in {earlier})" if earlier else ""))
    finally:
        k.close()
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("journal", help="read a journal", description="Read a DITA journal.")
    jsub = p.add_subparsers(dest="journal_command", required=True)
    s = jsub.add_parser("show", help="the records as a table", description=show.__doc__)
    s.add_argument("path")
    s.add_argument("--trade", help="only the records of this trade id")
    s.set_defaults(func=show)
    r = jsub.add_parser("replay", help="rebuild and verify; print slots and account", description=replay.__doc__)
    r.add_argument("path")
    r.set_defaults(func=replay)
