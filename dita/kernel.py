"""The kernel: drives the trade-slot machine, performs its effects through a venue.

The engine decides; the kernel executes. Every decision (accept or refuse, the next
state, the order to send, the account settlement) is taken by the spec running in the
engine. The kernel only prepares inputs (quantizing sizes and prices through the venue's
formatters, routing venue events to their slot by client order id), performs the effects
the engine emits and feeds the venue's answers back.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import itertools
import logging
import os
import re
import threading
import types
import uuid
from collections import deque
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable, Mapping

from dita import _engine
from dita.errors import DitaError, InvalidInputError, ReconcileError, VenueError
from dita.journal import (DURABILITY_MODES, Journal, JournalError, as_recorded, claim_journal_chain, journal_chain, journal_problem,
                          release_writer_lock)
from dita.plugins import default_registry
from dita.spec import compile_text, load_machine, packaged_spec_path
from dita.types import (INTENT_ACTIONS, AccountView, Instrument, KernelIntent, KernelOutcome, Order, OrderProgress, SlotView, VenueEvent,
                        to_decimal)
from dita.venue import Venue

_log = logging.getLogger("dita")
#: The states of kernel.yaml in which a slot waits for the answer to a cancel, and the role
#: of the order it cancels (see Kernel._resend_pending_cancels).
_CANCEL_PENDING_STATES = {"ENTRY_CANCEL_PENDING": "ENTRY", "EXIT_CANCEL_PENDING": "EXIT"}

SNAPSHOT_FORMAT = 1
_FILL_EVENTS = frozenset({"PARTIALLY_FILLED", "FULL_FILL"})
# What a venue may repeat about an order without anything being wrong.
_EXPLAINED_REFUSALS = frozenset({"DUPLICATE_EVENT", "STALE_EVENT"})
# Refusals that say the spec could not take an event at all (an expression failed, or the
# result would break an invariant), as opposed to refusing it for what it says.
_UNAPPLIABLE = frozenset({"EVALUATION_ERROR", "INVARIANT_VIOLATION"})


def _dec(x: Any) -> Decimal:
    return x if type(x) is Decimal else Decimal(str(x))


def _positive_decimal(x: Any) -> Decimal | None:
    """``x`` as a positive decimal, or None when it is not one (the engine says what is wrong)."""
    if isinstance(x, bool) or not isinstance(x, (Decimal, int, str)):
        return None
    try:
        d = _dec(x)
    except ArithmeticError:
        return None
    return d if d.is_finite() and d > 0 else None


def _version() -> str:
    from dita import __version__
    return __version__


def _bad_kind(event: VenueEvent, kinds: tuple = ()) -> InvalidInputError:
    if type(event.kind) is str:
        return InvalidInputError(f"venue event {event.event_id!r} for order {event.client_order_id!r}: {event.kind!r} is not "
                                 f"a venue event (venue events: {', '.join(kinds)}); nothing changed")
    return InvalidInputError(f"venue event {event.event_id!r} for order {event.client_order_id!r}: kind must be the name of "
                             f"a venue event (a string), got {type(event.kind).__name__} {event.kind!r}; nothing changed")


def _serialized(method):
    """Runs ``method`` holding the kernel's lock (re-entrant: a venue that answers by
    calling the kernel back, from the same thread, goes straight in). The engine's runtime
    is reserved for the call as well: a venue event delivered from another thread meanwhile
    (through the native dispatcher, which takes no Python lock) waits for the call to end
    instead of being applied in the middle of it."""
    @functools.wraps(method)
    def serialized(self, *args, **kwargs):
        with self._lock:
            return _whole(self, method, args, kwargs)
    return serialized


def _acting(method):
    """:func:`_serialized`, for a call that changes the kernel: refused once it is closed,
    before anything changes (reading a closed kernel, a last snapshot say, stays possible)."""
    @functools.wraps(method)
    def acting(self, *args, **kwargs):
        with self._lock:
            if self._closed:
                self._refuse_closed()
            if self._read_only:
                raise DitaError("this kernel was recovered read_only (an audit): it changes nothing, since nothing "
                                "it did would be journaled; Kernel.recover without read_only continues the journal")
            return _whole(self, method, args, kwargs)
    return acting


def _whole(kernel, method, args, kwargs):
    """Calls ``method`` with the runtime reserved for this thread (the outermost call
    reserves and releases; the kernel's lock is held)."""
    outermost = kernel._depth == 0
    if outermost:
        kernel._rt.reserve()
    kernel._depth += 1
    try:
        return method(kernel, *args, **kwargs)
    finally:
        kernel._depth -= 1
        if outermost:
            kernel._rt.release()


class Kernel:
    """An execution kernel over ``slots`` trade slots and one account.

    :param venue: a registered venue name, or a :class:`dita.Venue` instance.
    :param slots: how many trades can run at once.
    :param capital: starting capital of the account.
    :param journal: path of a new SQLite journal (see :mod:`dita.journal`), or ``None`` to
        keep none. To continue an existing journal, use :meth:`recover`.
    :param spec: path of a spec file; ``None`` is the packaged ``spec/kernel.yaml``.
    :param venue_options: keyword arguments for the venue's factory (never journaled).
    :param durability: ``"full"`` (every record durable before the call returns) or
        ``"batched"`` (a bounded window of records, for throughput); see :mod:`dita.journal`.
    :param checkpoint_every: with a journal, write a checkpoint (see :meth:`checkpoint`) at the
        end of the first call after which this many records were written since the last one;
        ``None`` writes checkpoints only when :meth:`checkpoint` is called.
    :param rotate_every: with a journal, continue it in a new file (see :meth:`rotate_journal`)
        at the end of the first call after which the file in use holds this many records, so
        that no file grows without bound; ``None`` rotates only when :meth:`rotate_journal`
        is called. A checkpoint or rotation that fails at the end of a call does not take
        that call's outcome away (its work is applied and journaled already): the call
        returns normally, the failure is logged (logger ``dita``) and kept in
        :attr:`upkeep_error`, and the checkpoint or rotation is tried again at the end of the
        next call.
    :param history_limit: how much of the past the kernel keeps in memory (and in snapshots
        and checkpoints): the orders of ended trades, with the event ids they applied and their
        fill progress, and the trades' terminal records, at most this many of each, the most
        recent; the journal keeps everything. An event for a forgotten order is refused as
        ``UNKNOWN_ORDER`` and changes nothing. ``None`` (the default) keeps everything, so a
        long-running kernel grows with its history.
    """

    def __init__(self, venue: str | Venue = "mock", slots: int = 1, capital: Any = 0, journal: Any = None,
                 spec: str | Path | None = None, venue_options: Mapping[str, Any] | None = None,
                 durability: str = "full", checkpoint_every: int | None = None, history_limit: int | None = None,
                 rotate_every: int | None = None):
        if journal is not None and not isinstance(journal, (str, Path)):
            raise InvalidInputError(f"journal must be a file path or None, got {type(journal).__name__}")
        _check_durability(durability)   # before any file is made
        _check_every("checkpoint_every", checkpoint_every, journal)
        _check_every("rotate_every", rotate_every, journal)
        _check_history_limit(history_limit, InvalidInputError)
        spec_path = Path(spec) if spec is not None else packaged_spec_path()
        try:
            spec_text = spec_path.read_text()
        except OSError:
            spec_text = None  # load_machine below reports the unreadable file
        self._setup(venue, slots, capital, load_machine(spec), spec, venue_options)
        if journal is not None:
            self._attach_journal(Journal.create(journal, {
                "slots": self.slots, "starting_capital": str(self.account.starting_capital),
                "machine": self.machine.name, "spec_text": spec_text, "spec_source": str(spec_path),
                "venue": self._venue_label, "dita_version": _version(),
                "history_limit": history_limit,
            }, durability=durability))
        self._checkpoint_every = checkpoint_every
        self._rotate_every = rotate_every
        self._history_limit = history_limit

    def _setup(self, venue, slots, capital, machine, spec, venue_options) -> None:
        # Calls from several threads (a strategy thread, a websocket thread) run one at a
        # time, each whole: with a journal, the order of the records is the order of the calls.
        self._lock = threading.RLock()
        self._closed = False
        self._read_only = False
        self._depth = 0   # nesting of the serialized calls running now (see _whole)
        if isinstance(slots, bool) or not isinstance(slots, int) or slots < 1:
            raise InvalidInputError(f"slots must be a positive int, got {slots!r}")
        capital = to_decimal(capital, "capital")
        if capital < 0:
            raise InvalidInputError(f"capital must not be negative, got {capital}")
        # The engine first: what it cannot hold (a capital beyond its 96-bit decimals, more
        # slots than memory) is the caller's bad input, refused before a venue is built.
        try:
            self._rt = _engine.Runtime(machine, slots, {"starting_capital": capital, "capital": capital})
        except _engine.EngineError as exc:
            raise InvalidInputError(f"cannot build a kernel of {slots} slot(s) with capital {capital}: {exc}") from None
        self._owns_venue = False  # a venue built here from a name is closed by close()
        if isinstance(venue, Venue):
            if venue_options:
                raise InvalidInputError("venue_options apply only when the venue is given by name")
            self.venue = venue
        elif isinstance(venue, str):
            self.venue = default_registry().create(venue, dict(venue_options or {}))
            self._owns_venue = True
        else:
            raise InvalidInputError(f"venue must be a venue name or a dita.Venue, got {type(venue).__name__}")
        self.machine = machine
        self.spec_path = spec
        self._venue_label = _venue_name(self.venue)   # what journals and snapshots call it
        # Venue events are routed by client order id inside the engine; the accepted fills of
        # each routed order are appended to its list in self._fills (see order_progress).
        self._trades: list[dict] = []           # terminal records of closed trades (see trades)
        # A trade's terminal record is written by the dispatcher itself when no journal
        # must see it first: the record goes to self._trades, then TERMINAL_WRITTEN.
        # The spec's events a venue may report: not the strategy's intents, not the kernel's
        # own answer to an effect.
        self._venue_kinds = tuple(e for e in self.machine.describe()["events"]
                                  if e not in INTENT_ACTIONS and e != "TERMINAL_WRITTEN")
        self._rt.configure_dispatch(VenueEvent, "kind", "client_order_id", KernelOutcome,
                                    self._venue_event_fallback, sorted(_FILL_EVENTS),
                                    {"WRITE_TERMINAL": ("TERMINAL_WRITTEN", self._trades, "slot_id")},
                                    list(self._venue_kinds))
        self.slots = slots
        self._order_slot: dict[str, int] = {}   # every client order id ever issued -> its slot
        self._orders: dict[str, Order] = {}     # client order id -> the order as submitted
        # What was applied of each order's fills, for Venue.resume: the accepted fill events
        # of the orders of current trades (appending is all the hot path does), folded into
        # [size, value, fees] when asked and once the trade ends.
        self._fills: dict[str, list[VenueEvent]] = {}
        self._progress: dict[str, list[Decimal]] = {}
        # The orders of each slot's current trade, and, per order of an ended trade, the
        # event ids that trade applied: the engine forgets them when the slot starts a new
        # trade (its de-duplication is per trade), but a venue may still re-deliver them.
        self._slot_orders: dict[int, list[str]] = {}
        self._ended: dict[str, frozenset[str]] = {}
        # Orders whose submit raised and whose fate the venue could not tell yet: client
        # order id -> the failure. poll() asks the venue again (see _submit_failed).
        self._unconfirmed: dict[str, str] = {}
        # Working orders a recovery could not ask the venue about: poll() asks again and
        # applies what the venue reports (without concluding anything from silence).
        self._unasked: set[str] = set()
        self._journal: Journal | None = None
        self._replaying = False
        self._checkpoint_every: int | None = None
        self._rotate_every: int | None = None
        self._last_checkpoint = 0  # the journal's seq at the latest checkpoint
        self._history_limit: int | None = None
        #: The exception of the last automatic checkpoint or rotation, if it failed and has
        #: not succeeded since (see the ``rotate_every`` parameter); ``None`` otherwise.
        self.upkeep_error: Exception | None = None
        # Without a journal, venue events take the engine's native path: this instance's
        # on_venue_event is the engine's dispatcher, which applies a routed event with no
        # effects entirely in Rust and hands anything else to _venue_event_fallback.
        self.on_venue_event = self._rt.dispatch

    def _attach_journal(self, journal: Journal) -> None:
        """Journals everything from now on; every venue event then takes the general path."""
        self._journal = journal
        self.__dict__.pop("on_venue_event", None)

    def _refuse_closed(self) -> None:
        if self._journal is not None:
            self._check_open(self._journal)
        raise DitaError("this kernel was closed: nothing more can be applied (a closed kernel can still be read)")

    @staticmethod
    def _check_open(journal: Journal) -> None:
        if journal.closed:
            raise JournalError(f"this kernel was closed (its journal {journal.path} with it): nothing more can be "
                               "applied and journaled; Kernel.recover goes on from the journal")

    @property
    def journal(self) -> Journal | None:
        """The journal this kernel writes, or ``None``."""
        return self._journal

    @_serialized
    def close(self) -> None:
        """Commits and closes the journal (if any), and the venue if this kernel built it
        from its name (a venue object handed in stays open: it belongs to the caller)."""
        self._closed = True
        # The engine's native dispatcher would go on applying events (through a handler taken
        # before close, too): every event now takes the Python path, which refuses.
        self.__dict__.pop("on_venue_event", None)
        self._rt.shut()
        try:
            if self._journal is not None:
                self._journal.close()
        finally:
            close_venue = getattr(self.venue, "close", None)
            if self._owns_venue and callable(close_venue):
                close_venue()

    def __enter__(self) -> "Kernel":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ reading

    def slot(self, slot_id: int) -> SlotView:
        self._check_slot(slot_id)
        return SlotView(slot_id, self._rt.state(slot_id), self._rt.record(slot_id))

    @property
    def account(self) -> AccountView:
        return AccountView(self._rt.shared())

    @property
    def trades(self) -> list[dict]:
        """The terminal records of closed trades, oldest first: the closing fill's
        WRITE_TERMINAL fields (decimals as Decimal) and ``slot_id``; with a ``history_limit``,
        the most recent that many. A property, not an attribute, because the engine's
        dispatcher appends to the kernel's list (trimmed when a slot starts its next trade). Each
        read is a copy."""
        limit = self._history_limit
        kept = self._trades[-limit:] if limit is not None and len(self._trades) > limit else self._trades
        return [dict(t) for t in kept]   # copies: editing them must not rewrite the history

    def order(self, client_order_id: str) -> Order | None:
        """The order the kernel sent under ``client_order_id``, if any."""
        return self._orders.get(client_order_id)

    def _check_slot(self, slot_id: Any) -> None:
        if isinstance(slot_id, bool) or not isinstance(slot_id, int) or not 0 <= slot_id < self.slots:
            raise InvalidInputError(f"unknown slot {slot_id!r}: this kernel has {self.slots} slot(s), 0..{self.slots - 1}")

    # ------------------------------------------------------------------ intents

    @_acting
    def process_intent(self, intent: KernelIntent) -> KernelOutcome:
        """Applies an intent, performs what the engine decided, applies the venue's answers."""
        out = self._process_intent(intent)
        if self._journal is not None:
            self._upkeep_journal()
        return out

    def _process_intent(self, intent: KernelIntent) -> KernelOutcome:
        if not isinstance(intent, KernelIntent):
            raise InvalidInputError(f"process_intent takes a dita.KernelIntent, got {type(intent).__name__}")
        # The kernel keeps the intent with the order it becomes: its own copy, so that the
        # caller changing its metadata afterwards changes neither that nor the snapshots.
        intent = copy.deepcopy(intent)
        self._check_slot(intent.slot_id)
        slot = intent.slot_id
        journal = self._journal
        if journal is not None:
            self._check_open(journal)
            record = intent.to_dict()
            problem = journal_problem(record)
            if problem is not None:
                raise InvalidInputError(f"intent {intent.intent_id!r} cannot be journaled: {problem}")
            journal.append("intent", slot, record)
        try:
            payload = self._intent_payload(intent)
            if isinstance(payload, KernelOutcome):
                return payload
            try:
                result = self._apply(slot, intent.action, payload, "intent")
            except _engine.EngineError as exc:
                raise InvalidInputError(f"slot {slot}, intent {intent.action}: {exc}") from None
            return self._finish(slot, result, intent)
        finally:
            if journal is not None:
                journal.flush()

    def _apply(self, slot: int, kind: str, payload: Any, source: str) -> tuple:
        """Applies one event to the engine and journals what it took and decided."""
        result = self._engine_apply(slot, kind, payload)
        journal = self._journal
        if journal is not None:
            data = payload.to_dict() if isinstance(payload, VenueEvent) else payload
            if isinstance(payload, VenueEvent):
                data.pop("raw", None)  # the exchange's own payload: not ours to keep
            journal.append("apply", slot, {"event": kind, "payload": data, "source": source,
                                           "accepted": result[0], "diagnostic": result[1]})
            if result[3]:
                journal.append("transition", slot, list(result[3]))
                if result[0] and kind in _FILL_EVENTS:
                    journal.append("settlement", slot, {k: str(v) for k, v in self._rt.shared().items()})
        return result

    def _refused(self, slot: int | None, code: str, message: str) -> KernelOutcome:
        state = self._rt.state(slot) if slot is not None else None
        return KernelOutcome(False, code, state, slot, message=message)

    def _instrument(self, asset: str) -> Instrument | None:
        return self.venue.instruments().get(asset)

    def _formatted(self, formatter: str, asset: str, value: Decimal, *args: Any) -> Decimal:
        """What the venue's formatter makes of ``value``: the exact number it will send. A
        formatter that fails, or answers with something that is not a plain decimal, is an
        error naming the venue, the formatter and the value (never a bare decimal exception)."""
        name = self.venue.name or type(self.venue).__name__
        try:
            text = getattr(self.venue, formatter)(asset, value, *args)
        except DitaError:
            raise
        except Exception as exc:
            raise InvalidInputError(f"venue {name!r}: {formatter}({asset!r}, {value}) failed: "
                                    f"{type(exc).__name__}: {exc}") from exc
        try:
            return to_decimal(text if isinstance(text, str) else None, f"{formatter}({asset!r}, {value})")
        except InvalidInputError:
            raise InvalidInputError(f"venue {name!r}: {formatter}({asset!r}, {value}) returned {text!r}, "
                                    "not the text of a decimal number") from None

    def _intent_payload(self, intent: KernelIntent) -> dict | KernelOutcome:
        slot = intent.slot_id
        if intent.action == "CANCEL":
            return {"intent_id": intent.intent_id, "trade_id": intent.trade_id, "asset": intent.asset,
                    "side": intent.side}
        coid = self.venue.client_order_id(intent)
        if coid in self._order_slot:
            return self._refused(slot, "DUPLICATE_EVENT",
                                 f"intent {intent.intent_id!r} already became order {coid!r}; an intent is sent once")
        if intent.action == "ENTER":
            asset = intent.asset
            order_side = {"LONG": "BUY", "SHORT": "SELL"}.get(intent.side)
        else:
            asset = self._rt.field(slot, "asset")
            order_side = {"LONG": "SELL", "SHORT": "BUY"}.get(self._rt.field(slot, "side"))
        instrument = self._instrument(asset) if asset else None
        if instrument is None and (asset or intent.action == "ENTER"):
            return self._refused(slot, "INVALID_INTENT", f"venue {self.venue.name or type(self.venue).__name__!r} does not trade {asset!r}")
        limit_price = intent.limit_price
        if limit_price is not None and limit_price > 0 and order_side is not None:
            # The slot records exactly what the venue will receive.
            given, limit_price = limit_price, self._formatted("format_price", asset, limit_price, order_side)
            if limit_price <= 0:
                return self._refused(slot, "INVALID_INTENT", (
                    f"limit_price {given} is {limit_price} on the venue's price step "
                    f"({instrument.price_increment}) of {asset}: a LIMIT order needs a positive price"))
        if intent.action == "EXIT":
            return {
                "intent_id": intent.intent_id, "trade_id": intent.trade_id, "asset": intent.asset,
                "side": intent.side, "target_size": intent.target_size, "order_type": intent.order_type,
                "limit_price": limit_price, "client_order_id": coid,
                "size_increment": instrument.size_increment if instrument else None,
                "min_size": max(instrument.min_size, instrument.size_increment) if instrument else None,
            }
        size = intent.target_size
        if size > 0 and instrument is not None:
            size = self._formatted("format_quantity", asset, size)
        return {
            "intent_id": intent.intent_id, "trade_id": intent.trade_id, "asset": asset, "side": intent.side,
            "requested_size": intent.target_size, "target_size": size, "order_type": intent.order_type, "limit_price": limit_price,
            "leverage": intent.leverage, "exit_leg_ratios": intent.exit_leg_ratios,
            "reference_price": intent.reference_price, "client_order_id": coid,
            "min_size": max(instrument.min_size, instrument.size_increment),
            "min_notional": instrument.min_notional,
            "opposing_slot": self._opposing_slot(slot, asset, intent.side),
        }

    def _opposing_slot(self, slot: int, asset: str, side: str) -> int | None:
        """Where the venue keeps one net position per asset (it does not declare ``hedge_mode``,
        as BingX in one-way mode): another slot with a position or a working order in ``asset``
        on the other side. Two such trades would net out at the venue while the slots count
        two positions, and neither could exit (its reduce-only order finds nothing to reduce)."""
        if "hedge_mode" in (getattr(self.venue, "capabilities", None) or ()) or side not in ("LONG", "SHORT"):
            return None
        rt = self._rt
        for other in range(len(rt)):
            if other == slot or rt.field(other, "asset") != asset or rt.field(other, "side") in (None, side):
                continue
            if rt.field(other, "size") > 0 or rt.field(other, "entry_live") or rt.field(other, "exit_live"):
                return other
        return None

    # ------------------------------------------------------------------ venue events

    def on_venue_event(self, event: VenueEvent) -> KernelOutcome:
        """Applies one venue event to the slot that owns its order.

        Without a journal each kernel binds this name to the engine's native dispatcher,
        which calls back :meth:`_venue_event_fallback` for whatever it does not finish
        itself; the result is the same either way."""
        return self._venue_event_fallback(event, None)

    @_acting
    def _venue_event_fallback(self, event: VenueEvent, applied: tuple | None) -> KernelOutcome:
        """The general path of a venue event. ``applied`` is the engine's result when the
        dispatcher already applied the event (and logged its fill) but left its effects."""
        if applied is not None:
            slot = self._order_slot[event.client_order_id]
            return self._finish(slot, self._freeze_if_unappliable(slot, event, applied), None)
        if type(event) is not VenueEvent:
            if not isinstance(event, VenueEvent):
                raise InvalidInputError(f"on_venue_event takes a dita.VenueEvent, got {type(event).__name__}")
            event = _plain_event(event)
        if self._journal is not None:
            return self._on_venue_event_journaled(event)
        slot = self._order_slot.get(event.client_order_id)
        if slot is None:
            if type(event.client_order_id) is not str or type(event.kind) is not str:
                raise InvalidInputError(f"venue event {event.event_id!r}: kind and client_order_id are required strings, "
                                        f"got {event.kind!r} and {event.client_order_id!r}")
            return KernelOutcome(False, "UNKNOWN_ORDER", None, None, message=(
                self._unknown_order(event)))
        if type(event.kind) is not str or event.kind not in self._venue_kinds:
            raise _bad_kind(event, self._venue_kinds)
        if self._ended and event.client_order_id in self._ended:
            dup = self._ended_order_refusal(event, slot)
            if dup is not None:
                return dup
        try:
            result = self._rt.apply(slot, event.kind, event)
        except _engine.EngineError as exc:
            raise InvalidInputError(f"venue event {event.event_id!r} for slot {slot}: {exc}") from None
        if result[0] and event.kind in _FILL_EVENTS:
            self._note_fill(event)
        return self._finish(slot, self._freeze_if_unappliable(slot, event, result), None)

    def _engine_apply(self, slot: int, kind: str, payload: Any) -> tuple:
        """The engine's apply, remembering what an ending trade applied when a new one starts."""
        if kind != "ENTER" or not self._slot_orders.get(slot):
            return self._rt.apply(slot, kind, payload)
        seen = self._rt.snapshot(slot)["seen"]
        result = self._rt.apply(slot, kind, payload)
        if result[0]:
            self._end_trade_orders(slot, seen)
        return result

    def _end_trade_orders(self, slot: int, seen: list) -> None:
        """The slot no longer carries the trade its orders belong to (a new trade started, or
        a reconcile gave it another): they become ended orders, whose late events get the
        ended-order checks. ``seen`` is the slot's de-dup keys of that trade."""
        # The event ids each order applied (venue events are de-duplicated within their
        # order: [key field, id, scope field, order id]).
        applied: dict[str, set[str]] = {}
        for entry in seen:
            if len(entry) == 4 and entry[2] == "client_order_id":
                applied.setdefault(entry[3], set()).add(entry[1])
        for coid in self._slot_orders.pop(slot, ()):
            self._ended[coid] = frozenset(applied.get(coid, ()))
            self._fold(coid)
            self._fills.pop(coid, None)
            self._rt.unroute(coid)  # its events now need the ended-order checks
        if self._history_limit is not None:
            self._forget_beyond(self._history_limit)

    def _forget_beyond(self, limit: int) -> None:
        """Forgets the oldest ended orders and terminal records beyond ``limit`` of each. Done
        when a trade ends (at the next ENTER of its slot), in a replay exactly as it was live."""
        for coid in list(itertools.islice(self._ended, max(0, len(self._ended) - limit))):
            del self._ended[coid]
            for kept in (self._orders, self._order_slot, self._progress):
                kept.pop(coid, None)
        if len(self._trades) > limit:
            del self._trades[:len(self._trades) - limit]  # the same list the dispatcher appends to

    def _unknown_order(self, event: VenueEvent) -> str:
        forgotten = (f", or one it has forgotten (it keeps the orders of the last {self._history_limit} ended)"
                     if self._history_limit is not None else "")
        return (f"{event.kind} {event.event_id!r} is for order {event.client_order_id!r}, which this kernel never "
                f"issued{forgotten}; nothing changed")

    def _ended_order_refusal(self, event: VenueEvent, slot: int) -> KernelOutcome | None:
        """The refusal of an event for an ended trade's order that cannot be real news: one
        the trade already applied (a re-delivery), or a fill beyond what the venue received
        (an overfill). Either is refused without touching the slot's current trade; any
        other fill of the order is real money, which the spec freezes the slot for."""
        coid = event.client_order_id
        applied = self._ended.get(coid)
        if applied is None:
            return None
        if event.event_id in applied:
            return KernelOutcome(False, "DUPLICATE_EVENT", self._rt.state(slot), slot, message=(
                f"{event.kind} {event.event_id!r} of order {coid!r} was already applied to the trade "
                "that order belonged to, which has ended; nothing changed"))
        order = self._orders.get(coid)
        size = _positive_decimal(event.filled_size) if event.kind in _FILL_EVENTS else None
        if order is None or size is None or not isinstance(order.quantity, Decimal):
            return None
        filled = self._fold(coid)[0]
        if filled + size <= order.quantity:
            return None
        return KernelOutcome(False, "OVERFILL", self._rt.state(slot), slot, message=(
            f"fill of {size} exceeds order {coid!r} of an ended trade: {filled} of {order.quantity} already "
            "filled; nothing changed"))

    def _freeze_if_unappliable(self, slot: int, event: VenueEvent, result: tuple) -> tuple:
        """A fill the spec could not take at all (an expression failed on its numbers, or the
        result would break an invariant) is real money the slot cannot account for: the slot
        is frozen for a human to reconcile, as DESIGN asks of a fill the slot cannot place,
        instead of going on as if the venue had not filled. Returns the result, its message
        saying so."""
        accepted, code, state, transition, effects, message = result
        if accepted or code not in _UNAPPLIABLE or event.kind not in _FILL_EVENTS or self._replaying:
            return result
        if self._rt.state(slot) == "FROZEN":
            return result
        reason = (f"the venue reported {event.kind} {event.event_id!r} of {event.filled_size} at {event.fill_price} for "
                  f"order {event.client_order_id}, which this slot cannot take ({code}: {message})")
        # The fill is remembered as seen: once the operator has reconciled the slot with it,
        # its re-delivery (a poll, a recovery asking the venue) is a duplicate, not news.
        self._freeze(slot, reason, seen=["event_id", event.event_id, "client_order_id", event.client_order_id])
        message = message.replace("; nothing changed", "; nothing of it was applied")
        return (accepted, code, "FROZEN", transition, effects,
                f"{message}; a fill is real money, so the slot is frozen for reconcile")

    def _freeze_if_unreadable_fill(self, event: Any, why: str) -> tuple[int | None, str]:
        """A fill the venue itself handed over (a poll, the answer to an order or a query)
        whose numbers the slot cannot take (a size, price or fee that cannot be held exactly)
        is still money the venue says moved: the slot of its order is frozen for a human to
        reconcile, as for a fill the spec cannot take, instead of going on as if nothing had
        filled. (A fill given by hand to ``on_venue_event`` raises to its caller instead; one
        whose amounts are not numbers at all is a malformed message, refused as such.)
        Its event id is remembered as seen, so that its re-delivery (a poll, a recovery asking
        the venue) is a duplicate. Returns the slot (None if the event names no known order),
        the diagnostic code and the message."""
        fill = type(event) is VenueEvent and event.kind in _FILL_EVENTS and _amounts_are_numbers(event)
        slot = self._order_slot.get(event.client_order_id) if fill and type(event.client_order_id) is str else None
        if slot is None or self._replaying:
            return slot, "INVALID_EVENT", why
        known = type(event.event_id) is str and event.event_id != ""
        seen = ["event_id", event.event_id, "client_order_id", event.client_order_id] if known else None
        if seen is not None and seen in self._rt.snapshot(slot)["seen"]:
            return slot, "DUPLICATE_EVENT", (f"event {event.kind} with event_id {event.event_id!r} for order "
                                             f"{event.client_order_id} was already reported; nothing changed")
        if self._rt.state(slot) == "FROZEN":
            return slot, "INVALID_EVENT", why
        reason = (f"the venue reported {event.kind} {event.event_id!r} of {event.filled_size!r} at "
                  f"{event.fill_price!r} (fee {event.fee!r}) for order {event.client_order_id}, which this slot "
                  f"cannot read: {why}")
        self._freeze(slot, reason, seen=seen)
        return slot, "INVALID_EVENT", f"{why}; a fill is real money, so slot {slot} is frozen for reconcile"

    def _on_venue_event_journaled(self, event: VenueEvent) -> KernelOutcome:
        out = self._apply_venue_event_journaled(event)
        self._upkeep_journal()
        return out

    def _apply_venue_event_journaled(self, event: VenueEvent) -> KernelOutcome:
        journal = self._journal
        self._check_open(journal)
        # Checked before anything is applied: an event the engine took but the journal could
        # not record would be missing from every replay.
        recorded = {k: v for k, v in event.to_dict().items() if k != "raw"}
        problem = journal_problem(recorded)
        if problem is not None:
            raise InvalidInputError(f"venue event {event.event_id!r} cannot be journaled: {problem}")
        try:
            slot = self._order_slot.get(event.client_order_id)
            if slot is None:
                journal.append("unrouted", None, recorded)
                if type(event.client_order_id) is not str or type(event.kind) is not str:
                    raise InvalidInputError(f"venue event {event.event_id!r}: kind and client_order_id are required "
                                            f"strings, got {event.kind!r} and {event.client_order_id!r}")
                return KernelOutcome(False, "UNKNOWN_ORDER", None, None, message=self._unknown_order(event))
            if type(event.kind) is not str or event.kind not in self._venue_kinds:
                raise _bad_kind(event, self._venue_kinds)
            dup = self._ended_order_refusal(event, slot)
            if dup is not None:
                journal.append("duplicate" if dup.diagnostic_code == "DUPLICATE_EVENT" else "overfill", slot, recorded)
                return dup
            try:
                result = self._apply(slot, event.kind, event, "venue")
            except _engine.EngineError as exc:
                raise InvalidInputError(f"venue event {event.event_id!r} for slot {slot}: {exc}") from None
            if result[0] and event.kind in _FILL_EVENTS:
                self._note_fill(event)
            return self._finish(slot, self._freeze_if_unappliable(slot, event, result), None)
        finally:
            journal.flush()

    def _note_fill(self, event: VenueEvent) -> None:
        """Keeps an applied fill (the dispatcher does this itself for routed orders)."""
        fills = self._fills.get(event.client_order_id)
        if fills is None:
            self._fills[event.client_order_id] = [event]
        else:
            fills.append(event)

    def _fold(self, coid: str) -> list[Decimal]:
        """The order's applied fills as [size, value, fees] (its kept fills folded in)."""
        p = self._progress.get(coid) or [Decimal(0), Decimal(0), Decimal(0)]
        fills = self._fills.get(coid)
        if fills:
            for ev in fills:
                size = _dec(ev.filled_size)
                p = [p[0] + size, p[1] + size * _dec(ev.fill_price), p[2] + (_dec(ev.fee) if ev.fee is not None else 0)]
            fills.clear()  # the same list stays the order's log in the engine's route
        if p[0] or coid in self._progress:
            self._progress[coid] = p
        return p

    def _route(self, coid: str, slot: int) -> None:
        self._rt.route(coid, slot, self._fills.setdefault(coid, []))

    def _sync_routes(self) -> None:
        """Routes every order of a current trade to its slot (after a restore or reconcile);
        orders of ended trades stay unrouted so that their events get the ended-order checks."""
        self._rt.clear_routes()
        for coid, slot in self._order_slot.items():
            if coid not in self._ended:
                self._route(coid, slot)

    def order_progress(self, client_order_id: str) -> OrderProgress:
        """What this kernel has applied of an order's fills (size, value, fees)."""
        return OrderProgress(*self._fold(client_order_id))

    def _resume_venue(self) -> None:
        """Tells the venue, for every order a slot still considers working, how much of it
        this kernel has already applied (see :meth:`Venue.resume`)."""
        for sid in range(self.slots):
            view = self.slot(sid)
            for ov in (view.active_entry_order, view.active_exit_order):
                order = self._orders.get(ov.client_order_id) if ov is not None else None
                if order is not None:
                    self.venue.resume(order, self.order_progress(order.client_order_id))

    @_acting
    def poll(self) -> list[KernelOutcome]:
        """Pulls the venue's pending events (fills of resting orders, ...) and applies them.
        The venue has handed them over, so one the kernel cannot take (not a VenueEvent, or
        malformed) does not stop the others: it comes back as a refused outcome
        (``INVALID_EVENT``) that says why. One outcome per event, in order; its
        ``emitted_events`` begins with that event (a fill's size, price, fee and id)."""
        events = self._settle_unconfirmed() + self._ask_again()
        return self._apply_all(events + _venue_answer(self.venue.poll()))

    def _ask_again(self) -> list:
        """The venue's events for each working order a recovery could not ask about."""
        events: list = []
        for coid in sorted(self._unasked):
            order = self._orders.get(coid)
            if order is None or not self._still_working(coid):
                self._unasked.discard(coid)
                continue
            try:
                events += _venue_answer(self.venue.query(order))
            except Exception as exc:   # still cannot be asked: the next poll tries again
                _log.warning("order %s: the venue still cannot be asked (%s: %s)", coid, type(exc).__name__, exc)
                continue
            self._unasked.discard(coid)
        return events

    def _settle_unconfirmed(self) -> list:
        """Asks the venue again about each order whose submit raised and whose query failed."""
        events: list = []
        for coid, failure in list(self._unconfirmed.items()):
            order = self._orders.get(coid)
            if order is None or not self._still_working(coid):
                del self._unconfirmed[coid]
                continue
            answer = self._submit_outcome(order, failure)
            if answer is not None:
                del self._unconfirmed[coid]
                events += answer
        return events

    def _still_working(self, coid: str) -> bool:
        slot = self._order_slot.get(coid)
        view = self.slot(slot) if slot is not None else None
        return view is not None and any(o is not None and o.client_order_id == coid
                                        for o in (view.active_entry_order, view.active_exit_order))

    def _apply_all(self, events: list) -> list[KernelOutcome]:
        """Applies events the venue handed over; each outcome's ``emitted_events`` starts with
        the event it is about (the caller did not build it, so it sees it there)."""
        out = []
        for ev in events:
            try:
                o = self.on_venue_event(ev)
            except InvalidInputError as exc:
                slot, code, message = self._freeze_if_unreadable_fill(ev, str(exc))
                o = KernelOutcome(False, code, self._rt.state(slot) if slot is not None else None, slot,
                                  message=message)
            shown = (ev,) if isinstance(ev, VenueEvent) else ()
            out.append(KernelOutcome(o.accepted, o.diagnostic_code, o.state, o.slot_id, o.transitions,
                                     (*shown, *o.emitted_events), o.refused_events, o.message))
        return out

    # ------------------------------------------------------------------ effects

    def _finish(self, slot: int, result: tuple, intent: KernelIntent | None) -> KernelOutcome:
        accepted, code, _state, tr, effects, message = result
        transitions = [tr] if tr else []
        emitted: list[VenueEvent] = []
        refused: list[tuple[VenueEvent, str, str | None]] = []
        pending: deque[VenueEvent] = deque()
        self._perform(slot, effects, intent, transitions, pending)
        while pending:
            event = pending.popleft()
            if type(event) is not VenueEvent and isinstance(event, VenueEvent):
                event = _plain_event(event)
            if type(event) is not VenueEvent:
                # The order may well be placed: the slot keeps waiting for a proper answer
                # (a later poll, or sync_with_venue), and can still cancel it.
                refused.append((event, "INVALID_EVENT", f"the venue answered with {type(event).__name__} "
                                                        f"{event!r:.100}, not a dita.VenueEvent"))
                continue
            # What the venue produced: every VenueEvent it answered with, applied or refused
            # (a refused one is in ``refused`` too, with why); anything else is only there.
            emitted.append(event)
            if self._journal is not None:
                # As for an event delivered by hand: what the journal cannot record is not applied.
                problem = journal_problem({k: v for k, v in event.to_dict().items() if k != "raw"})
                if problem is not None:
                    refused.append((event, "INVALID_EVENT", f"cannot be journaled: {problem}"))
                    continue
            target = self._order_slot.get(event.client_order_id)
            if target is None:
                if self._journal is not None:
                    self._journal.append("unrouted", None, {k: v for k, v in event.to_dict().items() if k != "raw"})
                refused.append((event, "UNKNOWN_ORDER", "an event for an order this kernel never issued"))
                continue
            if type(event.kind) is not str or event.kind not in self._venue_kinds:
                refused.append((event, "INVALID_EVENT", str(_bad_kind(event, self._venue_kinds))))
                continue
            dup = self._ended_order_refusal(event, target)
            if dup is not None:
                refused.append((event, dup.diagnostic_code, dup.message))
                continue
            try:
                r = self._apply(target, event.kind, event, "venue")
            except _engine.EngineError as exc:
                refused.append((event, *self._freeze_if_unreadable_fill(event, str(exc))[1:]))
                continue
            r = self._freeze_if_unappliable(target, event, r)
            if r[3]:
                transitions.append(r[3])
            if not r[0]:
                refused.append((event, r[1], r[5]))
            elif event.kind in _FILL_EVENTS:
                self._note_fill(event)
            self._perform(target, r[4], None, transitions, pending)
        return KernelOutcome(accepted, code, self._rt.state(slot), slot, tuple(transitions), tuple(emitted),
                             tuple(refused), message)

    def _perform(self, slot: int, effects, intent: KernelIntent | None, transitions: list, pending: deque) -> None:
        for name, args in effects:
            if self._journal is not None and not self._replaying:
                # Write-ahead: the effect is on disk before the venue can act on it.
                self._journal.append("effect", slot, {"effect": name, "args": args})
                if name != "WRITE_TERMINAL":
                    self._journal.flush(force=True)
            if name == "SUBMIT_ORDER":
                order = Order(
                    client_order_id=args["client_order_id"], asset=args["asset"], side=args["side"],
                    position_side=args["position_side"], order_type=args["order_type"], quantity=args["quantity"],
                    limit_price=args["limit_price"], reduce_only=args["reduce_only"], leverage=args["leverage"],
                    role=args["role"], slot_id=slot, trade_id=self._rt.field(slot, "trade_id"), intent=intent,
                    metadata=dict(intent.metadata) if intent else {},
                )
                self._order_slot[order.client_order_id] = slot
                self._route(order.client_order_id, slot)
                self._orders[order.client_order_id] = order
                self._slot_orders.setdefault(slot, []).append(order.client_order_id)
                if not self._replaying:
                    pending.extend(self._call_venue("submit", order))
            elif name == "CANCEL_ORDER":
                if self._replaying:
                    continue
                sent = self._orders.get(args["client_order_id"]) or self._order_from_slot(slot, args)
                # Routed with the slot's own asset and the ids the slot holds, never a trade id.
                order = Order(**{**sent.__dict__, "asset": args["asset"], "venue_order_id": args["venue_order_id"]})
                pending.extend(self._call_venue("cancel", order))
            elif name == "WRITE_TERMINAL":
                self._trades.append(dict(args, slot_id=slot))
                if self._replaying:
                    continue  # the journal holds the TERMINAL_WRITTEN that followed
                r = self._apply(slot, "TERMINAL_WRITTEN", None, "kernel")
                if r[3]:
                    transitions.append(r[3])
                if not r[0]:
                    raise DitaError(f"slot {slot}: the spec refused TERMINAL_WRITTEN after WRITE_TERMINAL: {r[5]}")
            else:
                raise DitaError(f"the spec emitted effect {name!r}, which this kernel does not perform "
                                "(it performs SUBMIT_ORDER, CANCEL_ORDER and WRITE_TERMINAL)")

    def _order_from_slot(self, slot: int, cancel: Mapping[str, Any]) -> Order:
        """An order the kernel has no record of (a slot reconciled from outside, a snapshot
        without its orders), as the slot records it: enough for the venue to cancel it."""
        r = self._rt.record(slot)
        prefix = "entry" if cancel["role"] == "ENTRY" else "exit"
        return Order(client_order_id=cancel["client_order_id"], asset=cancel["asset"], side=r.get(f"{prefix}_side"),
                     position_side=r.get("side"), order_type=r.get(f"{prefix}_order_type"),
                     quantity=r.get(f"{prefix}_quantity"), limit_price=r.get(f"{prefix}_limit_price"),
                     reduce_only=prefix == "exit", leverage=r.get("leverage"), role=cancel["role"], slot_id=slot,
                     trade_id=r.get("trade_id"), venue_order_id=cancel["venue_order_id"])

    def _call_venue(self, method: str, order: Order) -> list[VenueEvent]:
        """Calls the venue. A failed cancel becomes the CANCEL_REJECT that says so (the order
        still works, and the slot can cancel again); a failed submit is settled by asking the
        venue (see :meth:`_submit_failed`)."""
        try:
            events = getattr(self.venue, method)(order)
        except Exception as exc:  # any venue failure must end in a state the slot can leave
            if method == "submit" and not isinstance(exc, VenueError):
                return self._submit_failed(order, f"submit failed: {type(exc).__name__}: {exc}")
            if method == "submit":
                # A VenueError is the venue's own word that it did not place the order (an id
                # already taken, say): asking by client order id could find another order.
                return [VenueEvent("REJECT", f"kernel:submit-failed:{order.client_order_id}:{uuid.uuid4().hex[:16]}",
                                   order.client_order_id, reason=f"submit refused: {type(exc).__name__}: {exc}")]
            # A fresh id per failure: a second failed cancel of the same order must apply too.
            return [VenueEvent("CANCEL_REJECT", f"kernel:cancel-failed:{order.client_order_id}:{uuid.uuid4().hex[:16]}",
                               order.client_order_id, reason=f"cancel failed: {type(exc).__name__}: {exc}")]
        return _venue_answer(events)

    def _submit_failed(self, order: Order, failure: str) -> list:
        """A submit that raised may still have placed the order (its answer lost on the way
        back), so it is never taken for a refusal on its own: the venue is asked by client
        order id. What it knows of the order is applied; an order it has no record of was
        not placed (a REJECT says why); when it cannot be asked either, the slot keeps
        waiting for the order (it can still be cancelled) and poll() asks again. Freeing
        the slot here would let the strategy enter again beside a live order."""
        answer = self._submit_outcome(order, failure)
        if answer is None:
            self._unconfirmed[order.client_order_id] = failure
            return []
        return answer

    def _submit_outcome(self, order: Order, failure: str) -> list | None:
        """The venue's events for an order whose submit failed, or a REJECT if it has none;
        None when the venue cannot be asked."""
        coid = order.client_order_id
        try:
            events = _venue_answer(self.venue.query(order))
        except Exception as exc:
            _log.warning("order %s: %s; the query failed too (%s: %s): the slot waits for the order and "
                         "poll() asks again", coid, failure, type(exc).__name__, exc)
            return None
        if events:
            return events
        return [VenueEvent("REJECT", f"kernel:submit-failed:{coid}:{uuid.uuid4().hex[:16]}", coid,
                           reason=f"{failure}; the venue has no order {coid} (asked by client order id), "
                                  "so nothing was placed")]

    # ------------------------------------------------------------------ snapshot / restore / reconcile

    @_serialized
    def snapshot(self) -> dict:
        """A complete, JSON-serialisable copy: slots (with their de-dup keys), account, orders."""
        snap = {
            "format": SNAPSHOT_FORMAT,
            "machine": self.machine.name,
            "slots": [self._rt.snapshot(i) for i in range(self.slots)],
            "account": self._rt.shared_snapshot(),
            "orders": {coid: _order_to_json(o) for coid, o in self._orders.items()},
            "order_progress": self._progress_json(),
            "slot_orders": {str(slot): list(coids) for slot, coids in self._slot_orders.items()},
            "ended_orders": {coid: sorted(ids) for coid, ids in self._ended.items()},
            "trades": [{k: (str(v) if isinstance(v, Decimal) else v) for k, v in t.items()} for t in self.trades],
            "history_limit": self._history_limit,
            # Which venue holds the orders: a restore talks to that one by default.
            "venue": self._venue_label,
        }
        if self._unconfirmed:
            # Orders whose submit raised and that the venue could not be asked about yet:
            # poll() keeps asking, after a restore too. (Only when there are some, so that
            # snapshots and checkpoints written before this part existed compare equal.)
            snap["unconfirmed_orders"] = dict(self._unconfirmed)
        if self._unasked:
            # Working orders a recovery could not ask the venue about: poll() asks again,
            # after a restore too (only when there are some, as above).
            snap["unasked_orders"] = sorted(self._unasked)
        return snap

    def _progress_json(self) -> dict:
        for coid in list(self._fills):
            self._fold(coid)
        return {coid: [str(x) for x in p] for coid, p in self._progress.items()}

    @classmethod
    def restore(cls, snapshot: Mapping[str, Any], venue: str | Venue | None = None, spec: str | Path | None = None,
                venue_options: Mapping[str, Any] | None = None) -> "Kernel":
        """A kernel rebuilt from :meth:`snapshot`. Every slot is checked against the spec's
        invariants first; a bad snapshot raises :class:`ReconcileError` naming each violation.

        ``venue`` defaults to the venue the snapshot was taken on (its registered name is in
        the snapshot; ``venue_options`` such as API keys never are). While a slot has an
        order working (or one whose submit the venue has not confirmed), a venue of another
        name is refused: the restored kernel tells the venue about those orders and cancels
        them there, and one that never received them could do neither. A snapshot with no
        order working restores onto any venue; one that names no venue (taken before
        snapshots named it) restores onto ``"mock"`` unless it has orders working."""
        slots = _snapshot_slots(snapshot)
        working = _snapshot_orders_at_venue(snapshot)
        recorded = snapshot.get("venue")
        if venue is None and not recorded and not working:
            venue = "mock"
        # A snapshot of a kernel on the caller's own venue class (a test double: no registered
        # name) says nothing a venue given here could be checked against.
        unchecked = not working or (venue is not None and not _registered_label(recorded))
        venue = _recorded_venue(venue, recorded, "the snapshot",
                                f"the restored kernel tells that venue about {', '.join(working[:3])}"
                                f"{' and more' if len(working) > 3 else ''} and cancels them there", unchecked)
        account = snapshot.get("account") or {}
        k = cls(venue=venue, slots=len(slots), capital=account.get("starting_capital", 0), spec=spec,
                venue_options=venue_options)
        k._load_snapshot(snapshot)
        if working:   # (on the venue the snapshot names, or a stand-in for it)
            k._venue_label = _registered_label(recorded) or k._venue_label
        k._resume_venue()
        return k

    def _load_snapshot(self, snapshot: Mapping[str, Any]) -> None:
        """Takes every part of a snapshot of a kernel with as many slots (slots, account,
        orders, order progress, ended orders, trades); the venue is not told."""
        slots = _snapshot_slots(snapshot)
        history_limit = _check_history_limit(snapshot.get("history_limit"), ReconcileError)
        if len(slots) != self.slots:
            raise ReconcileError([f"the snapshot has {len(slots)} slots, this kernel {self.slots}"])
        machine = snapshot.get("machine", self.machine.name)
        if machine != self.machine.name:
            raise ReconcileError([f"the snapshot is of machine {machine!r}, this kernel runs {self.machine.name!r}"])
        # Everything is read before anything is replaced: a bad part changes nothing.
        # The snapshot holds decimals as text; the terminal record's types are the effect's.
        decimals = {name for name, ty, *_ in self.machine.describe()["effects"].get("WRITE_TERMINAL", ()) if ty == "decimal"}
        parts = {
            "orders": lambda v: {coid: _order_from_json(data) for coid, data in v.items()},
            "trades": lambda v: [{f: (Decimal(x) if f in decimals and isinstance(x, str) else x) for f, x in t.items()}
                                 for t in v],
            "order_progress": lambda v: {coid: [_snapshot_decimal(x) for x in p] for coid, p in v.items()},
            "slot_orders": lambda v: {int(slot): list(coids) for slot, coids in v.items()},
            "ended_orders": lambda v: {coid: frozenset(ids) for coid, ids in v.items()},
            "unconfirmed_orders": lambda v: {str(coid): str(failure) for coid, failure in v.items()},
            "unasked_orders": lambda v: {str(coid) for coid in v},
        }
        read = {}
        for name, parse in parts.items():
            empty = [] if name == "trades" else {}
            try:
                read[name] = parse(snapshot.get(name) or empty)
            except (TypeError, ValueError, ArithmeticError, AttributeError, KeyError) as exc:
                raise ReconcileError([f"snapshot {name}: {type(exc).__name__}: {exc}"]) from None
        account = snapshot.get("account")
        fields = set(self._rt.shared())
        if not isinstance(account, Mapping) or not fields <= set(account):
            missing = sorted(fields - set(account)) if isinstance(account, Mapping) else sorted(fields)
            raise ReconcileError([f"the snapshot's account lacks {', '.join(missing)}: a snapshot holds the whole "
                                  "account (a missing figure would start from zero)"])
        strays = [f"order {coid!r} belongs to slot {o.slot_id!r}, which this kernel does not have"
                  for coid, o in read["orders"].items()
                  if isinstance(o.slot_id, bool) or not isinstance(o.slot_id, int) or not 0 <= o.slot_id < self.slots]
        if strays:
            raise ReconcileError(strays)
        self._replace({i: s for i, s in enumerate(slots)}, account)
        for coid, order in read["orders"].items():
            self._orders[coid] = order
            self._order_slot[coid] = order.slot_id
        self._trades.extend(read["trades"])
        self._progress = read["order_progress"]
        self._fills = {}
        self._slot_orders = read["slot_orders"]
        self._ended = read["ended_orders"]
        self._unconfirmed = {coid: why for coid, why in read["unconfirmed_orders"].items() if coid in self._orders}
        self._unasked = {coid for coid in read["unasked_orders"] if coid in self._orders}
        self._history_limit = history_limit
        self._sync_routes()

    # ------------------------------------------------------------------ checkpoints

    @_acting
    def checkpoint(self) -> int:
        """Writes the kernel's whole state (its :meth:`snapshot`) into the journal and commits
        it; :meth:`recover` then starts from there instead of from the journal's first record.
        Returns the checkpoint's sequence number. Call it between calls (for instance when
        the strategy is idle), or let ``checkpoint_every`` do it."""
        if self._journal is None:
            raise JournalError("checkpoint() writes into the journal, and this kernel keeps none")
        self._journal.flush(force=True)
        self._last_checkpoint = self._journal.append_checkpoint(self._checkpoint_data())
        return self._last_checkpoint

    def _checkpoint_data(self) -> Any:
        """The snapshot exactly as a journal record holds it once read back (plain JSON)."""
        return as_recorded(self.snapshot())

    def _upkeep_journal(self) -> None:
        """At the end of a public call that returned normally: rotate or checkpoint, if due.

        The call's work is applied and journaled by now, so a failure here must not turn its
        outcome into an exception (a strategy would take a submitted order for a refused
        one): it is logged and kept in ``upkeep_error``, and the next call tries again (a
        failed rotation leaves the journal in use as it was; see :meth:`rotate_journal`)."""
        try:
            self._rotate_or_checkpoint_if_due()
        except Exception as exc:
            self.upkeep_error = exc
            _log.error("journal %s: the automatic checkpoint or rotation failed (the call's outcome stands; "
                       "it is tried again after the next call): %s", self._journal.path if self._journal else None,
                       exc, exc_info=True)
        else:
            self.upkeep_error = None

    def _rotate_or_checkpoint_if_due(self) -> None:
        journal = self._journal
        if self._rotate_every is not None and journal.last_seq >= self._rotate_every:
            self.rotate_journal()  # the new file starts with a checkpoint
        elif self._checkpoint_every is not None and journal.last_seq - self._last_checkpoint >= self._checkpoint_every:
            self.checkpoint()

    @_acting
    def rotate_journal(self, path: str | Path | None = None) -> Path:
        """Continues the journal in a new file that starts with a checkpoint of the kernel's
        state, and returns the new file's path. The file in use until now is complete on its
        own (it ends with the same checkpoint) and is written no more: archive it or delete it.
        Each file names the other (``continued_in`` / ``continues`` in its meta, relative to
        its folder), and :meth:`recover` given any file of the chain follows it to the latest.

        ``path`` defaults to the next free name in the chain: ``run.sqlite``, ``run.2.sqlite``,
        ``run.3.sqlite``, ... A path that holds records already is refused and nothing changes.
        Call it between calls, or let ``rotate_every`` do it."""
        old = self._journal
        if old is None:
            raise JournalError("rotate_journal() continues the journal in a new file, and this kernel keeps none")
        new_path = Path(path) if path is not None else _next_free_journal_path(old.path)
        if new_path.resolve() == old.path.resolve():
            raise JournalError(f"{new_path} is the journal in use; give rotate_journal() a new file")
        meta = {k: v for k, v in old.meta().items()
                if k not in ("schema_version", "created_at", "last_checkpoint", "continued_in", "continues")}
        meta["history_limit"] = self._history_limit
        meta["dita_version"] = _version()
        # Created first and empty: a path that cannot be used is refused before the journal
        # in use is touched. A crash from here on leaves a chain that recover() can follow
        # (or, if the new file holds no checkpoint yet, the old file, which is complete).
        existed = new_path.exists()
        new = Journal.create(new_path, meta, durability=old.durability, batch_records=old.batch_records,
                             batch_ms=old.batch_ms)
        try:
            state = self._checkpoint_data()
            old.flush(force=True)
            old.set_meta("continued_in", _relative_to(new.path, old.path.parent))
            ended_at = self._last_checkpoint = old.append_checkpoint(state)
            new.set_meta("continues", {"journal": _relative_to(old.path, new.path.parent), "checkpoint": ended_at})
            self._last_checkpoint = new.append_checkpoint(state)
        except BaseException:
            # Not switched: the journal in use stays in use, and names no next file. The new
            # file, which no file names now, is removed if this rotation made it, so that a
            # rotation tried again after each call while (say) the disk is full leaves no
            # trail of them.
            old.set_meta("continued_in", None)
            new.close()
            if not existed:
                for suffix in ("", "-wal", "-shm", ".lock"):
                    new.path.with_name(new.path.name + suffix).unlink(missing_ok=True)
            raise
        old.close()
        self._journal = new
        return new.path

    # ------------------------------------------------------------------ journal recovery

    @classmethod
    def recover(cls, journal: str | Path, venue: str | Venue | None = None, venue_options: Mapping[str, Any] | None = None,
                durability: str = "full", sync: bool | None = None, from_checkpoint: bool = True,
                checkpoint_every: int | None = None, rotate_every: int | None = None,
                read_only: bool = False) -> "Kernel":
        """Rebuilds a kernel from its journal and continues writing it.

        The state is taken from the journal's latest checkpoint (with ``from_checkpoint``, the
        default, and if it has one; its slots are checked against the spec's invariants), then
        the ``apply`` records after it are applied again, in order, to the engine running the
        spec the journal was written with; every recorded verdict and transition must come
        out the same, and a full replay (``from_checkpoint=False``) must also arrive at the
        state each checkpoint recorded, or :class:`JournalError` names the first record that
        differs. Nothing is sent to the venue during the replay. Then, with ``sync`` (the
        default), every order the slots still consider working is queried at the venue, and
        what happened while the process was down is applied (see :meth:`sync_with_venue`;
        the findings are in ``recovery_report``). ``checkpoint_every`` and ``rotate_every``
        are as for the kernel.

        ``venue`` defaults to the venue the journal was written against (its name is in the
        journal; ``venue_options`` such as API keys never are). A venue of another name is
        refused: the orders in the journal live at the venue that received them, and asking
        another one about them would report them unknown. (A ``read_only`` rebuild asks no
        venue, so any venue, such as an offline stand-in, will do there.)

        A rotated journal (see :meth:`rotate_journal`) is a chain of files: given any of them,
        recovery follows the chain to its latest file, which the kernel then continues
        (``k.journal.path``). A full replay goes through every file from the one given (which,
        if it continues an earlier file, is replayed from the checkpoint it opens with), and
        checks that each next file opens with the state the replay has arrived at.

        A journal has one writer at a time (:class:`JournalError` if another kernel, in any
        process, has it). ``read_only`` rebuilds the kernel without taking the journal over
        (an audit, ``dita journal replay``, while another kernel writes it): the kernel then
        keeps no journal, does not sync (``sync`` defaults to off then; on is refused) and
        refuses every call that would change it, since nothing it did would be recorded."""
        if sync is None:
            sync = not read_only
        if read_only and (sync or checkpoint_every or rotate_every):
            raise InvalidInputError("read_only recovery takes no sync, checkpoint_every or rotate_every: "
                                    "the rebuilt kernel writes no journal")
        _check_durability(durability)
        _check_every("checkpoint_every", checkpoint_every, journal)
        _check_every("rotate_every", rotate_every, journal)
        # The last file is the one this kernel goes on writing: its writer lock is taken
        # before anything is read, so two recoveries never both replay and write it.
        if read_only:
            chain, stale_link = journal_chain(Path(journal))
            lock = None
        else:
            chain, stale_link, lock = claim_journal_chain(Path(journal))
        first = chain[-1] if from_checkpoint else chain[0]
        try:
            j = Journal.open(first, durability=durability)
        except BaseException:
            release_writer_lock(lock)
            raise
        try:
            meta = j.meta()
            text = meta.get("spec_text")
            machine = compile_text(text, meta.get("spec_source", "<journal>")) if text else load_machine(None)
            venue = _recorded_venue(venue, meta.get("venue"), f"journal {journal}",
                                    "recovery asks that venue about them", read_only)
            k = cls.__new__(cls)
            k._setup(venue, int(meta["slots"]), meta["starting_capital"], machine, None, venue_options)
            # The journal's orders live at its venue, also when a stand-in replays it.
            k._venue_label = _registered_label(meta.get("venue")) or k._venue_label
            k._history_limit = _check_history_limit(meta.get("history_limit"), JournalError)
            start = j.last_checkpoint() if from_checkpoint else None
            if start is None and meta.get("continues") is not None:
                # This file continues another: its history before here is in that one.
                start = j.first_record()
                if start is None or start.kind != "checkpoint":
                    raise JournalError(f"journal {j.path} continues {meta['continues'].get('journal')} but does not "
                                       "open with a checkpoint")
            if start is not None:
                try:
                    k._load_snapshot(start.data)
                except ReconcileError as exc:
                    raise JournalError(f"journal {j.path}, record {start.seq}: the checkpoint does not hold: "
                                       f"{exc}") from None
                k._last_checkpoint = start.seq
            k._replay(j, after=start.seq if start is not None else 0)
            if not from_checkpoint:
                # The later files: each opens with a checkpoint, which _replay checks against
                # the state rebuilt from the files before it.
                for path in chain[1:]:
                    j.close()
                    j = Journal.open(path, durability=durability)
                    k._last_checkpoint = 0
                    k._replay(j)
            if stale_link and not read_only:
                j.set_meta("continued_in", None)
        except BaseException:
            j.close()
            release_writer_lock(lock)
            raise
        if read_only:
            j.close()
            k.recovery_report = []
            k._read_only = True
            k._rt.shut()   # venue events too are refused
            return k
        j.adopt_writer_lock(lock)
        k._checkpoint_every = checkpoint_every
        k._rotate_every = rotate_every
        k._attach_journal(j)
        k._resume_venue()
        k.recovery_report = k.sync_with_venue() if sync else []
        return k

    @_acting
    def _resend_pending_cancels(self, report: list[dict]) -> None:
        """A cancel the journal holds may never have left the process (the crash came
        between journaling it and sending it), and then nobody would ever send it: the slot
        would wait for its answer with the order working, refusing a new CANCEL as pending.
        So each slot still waiting for a cancel after the venue was asked about its orders
        sends it again (one the venue already has is refused or confirmed, harmlessly). The
        answers are applied and noted in the order's ``report`` entry (``cancel_sent_again``)."""
        for sid in range(self.slots):
            role = _CANCEL_PENDING_STATES.get(self._rt.state(sid))
            if role is None:
                continue
            view = self.slot(sid)
            working = view.active_entry_order if role == "ENTRY" else view.active_exit_order
            if working is None:
                continue
            coid = working.client_order_id
            cancel = {"role": role, "client_order_id": coid, "venue_order_id": working.venue_order_id,
                      "asset": view.asset}
            sent = self._orders.get(coid) or self._order_from_slot(sid, cancel)
            order = Order(**{**sent.__dict__, "asset": view.asset, "venue_order_id": working.venue_order_id})
            outcomes = self._apply_all(self._call_venue("cancel", order))
            entry = next((e for e in report if e["slot"] == sid and e["client_order_id"] == coid), None)
            if entry is None:
                entry = {"slot": sid, "client_order_id": coid}
                report.append(entry)
            entry["cancel_sent_again"] = [o.diagnostic_code for o in outcomes]
            entry["state"] = self.slot(sid).fsm_state

    def _replay(self, journal: Journal, after: int = 0) -> None:
        self._replaying = True
        intent = None
        last = None
        effects: deque = deque()   # the effects of the last input, which the records that follow list
        next_seq = after + 1
        try:
            for rec in journal.records(after):
                # Records are numbered one by one and written whole or not at all (a failed
                # write keeps them for the next): a gap is a record deleted from the file, an
                # effect sent or a fill applied that the replay would never hear of.
                if rec.seq != next_seq:
                    raise JournalError(f"journal {journal.path.name}: record {next_seq}"
                                       f"{'' if rec.seq == next_seq + 1 else f' to {rec.seq - 1}'} is missing "
                                       f"(the next is {rec.seq}): the journal was edited")
                next_seq += 1
                if rec.kind == "intent":
                    intent = KernelIntent.recorded(rec.data)
                elif rec.kind == "apply":
                    d = rec.data
                    try:
                        # A venue event is recorded whole (its kind, its timestamp, ...): read by
                        # attribute, as the event object itself was, since a dict payload must
                        # hold the spec event's fields only.
                        payload = d["payload"]
                        if isinstance(payload, dict) and d["source"] == "venue":
                            payload = types.SimpleNamespace(**payload)
                        last = self._engine_apply(rec.slot, d["event"], payload)
                    except _engine.EngineError as exc:
                        raise JournalError(f"journal record {rec.seq}: the engine refuses its input: {exc}") from None
                    if (last[0], last[1]) != (d["accepted"], d["diagnostic"]):
                        raise JournalError(
                            f"replay diverged at journal record {rec.seq} (slot {rec.slot}, {d['event']}): the journal "
                            f"says {d['diagnostic']}, the engine now says {last[1]}: {last[5]}")
                    self._perform(rec.slot, last[4], intent if d["source"] == "intent" else None, [], deque())
                    effects = deque(as_recorded({"effect": name, "args": args}) for name, args in last[4] or ())
                    if last[0] and d["event"] in _FILL_EVENTS:
                        self._note_fill(VenueEvent(**d["payload"]))
                elif rec.kind == "reconcile":
                    try:
                        self.reconcile({int(sid): snap for sid, snap in rec.data["slots"].items()})
                    except ReconcileError as exc:
                        raise JournalError(f"journal record {rec.seq}: the recorded reconcile no longer "
                                           f"holds: {exc}") from None
                elif rec.kind == "checkpoint":
                    # Which orders still await an answer is not in the journal (the venue's
                    # failures are not inputs): a recovery asks the venue about every order.
                    if _comparable_checkpoint(self._checkpoint_data()) != _comparable_checkpoint(rec.data):
                        raise JournalError(f"replay diverged at journal record {rec.seq} (of {journal.path.name}): the "
                                           "state rebuilt so far is not the state the checkpoint recorded")
                    self._last_checkpoint = rec.seq
                elif rec.kind == "settlement":
                    # The account as the original run settled it: a replay that rebuilds another
                    # (an edited fill or starting capital, an engine that rounds differently)
                    # is not the same history.
                    now = {k: str(v) for k, v in self._rt.shared().items()}
                    if now != rec.data:
                        diff = ", ".join(f"{k} {rec.data.get(k)} (replay: {now.get(k)})" for k in sorted(set(now) | set(rec.data))
                                         if now.get(k) != rec.data.get(k))
                        raise JournalError(f"replay diverged at journal record {rec.seq}: the journal settled the account "
                                           f"at {diff}")
                elif rec.kind == "effect":
                    expected = effects.popleft() if effects else None
                    if expected != rec.data:
                        raise JournalError(f"replay diverged at journal record {rec.seq}: the journal sent {rec.data}, "
                                           f"the replay {expected}")
                elif rec.kind == "transition":
                    if last is None or list(last[3] or ()) != rec.data:
                        raise JournalError(f"replay diverged at journal record {rec.seq}: the journal has transition "
                                           f"{rec.data}, the replay {list(last[3] or ()) if last else None}")
        finally:
            self._replaying = False

    @_acting
    def sync_with_venue(self) -> list[dict]:
        """Asks the venue about every order a slot still considers working and applies what
        it reports (fills that happened while this kernel was not listening apply once, by
        their event ids). Returns one entry per order: slot, client order id, and either the
        outcomes or the error that kept the order from being explained. A slot still waiting
        for a cancel's answer after that sends the cancel again (see
        :meth:`_resend_pending_cancels`)."""
        report = []
        for sid in range(self.slots):
            view = self.slot(sid)
            for order_view in (view.active_entry_order, view.active_exit_order):
                if order_view is None:
                    continue
                coid = order_view.client_order_id
                order = self._orders.get(coid)
                entry = {"slot": sid, "client_order_id": coid}
                if order is None:
                    entry["error"] = "the slot names an order this kernel has no record of"
                    report.append(entry)
                    continue
                try:
                    events = _venue_answer(self.venue.query(order))
                except Exception as exc:  # the venue could not answer: report, do not guess
                    entry["error"] = f"query failed: {type(exc).__name__}: {exc}; poll() asks again"
                    if coid not in self._unconfirmed:   # (poll asks about those already)
                        self._unasked.add(coid)
                    report.append(entry)
                    continue
                # Asked and answered: nothing of it awaits another answer.
                self._unasked.discard(coid)
                self._unconfirmed.pop(coid, None)
                outcomes = self._apply_all(events)
                entry["applied"] = [o.diagnostic_code for o in outcomes]
                unexplained = [(ev, o) for ev, o in zip(events, outcomes)
                               if not o.accepted and o.diagnostic_code not in _EXPLAINED_REFUSALS]
                if unexplained and self.slot(sid).fsm_state != "FROZEN":
                    ev, o = unexplained[0]
                    reason = (f"after recovery the venue reported {ev.kind} {ev.event_id!r} for order {coid}, which "
                              f"this slot refuses ({o.diagnostic_code}: {o.message})")
                    known = isinstance(ev, VenueEvent) and type(ev.event_id) is str and ev.client_order_id == coid
                    self._freeze(sid, reason, seen=["event_id", ev.event_id, "client_order_id", coid] if known else None)
                    entry["frozen"] = reason
                entry["state"] = self.slot(sid).fsm_state
                report.append(entry)
        self._resend_pending_cancels(report)
        return report

    def _freeze(self, slot: int, reason: str, seen: list | None = None) -> None:
        """Puts a slot whose venue state cannot be explained in FROZEN, keeping its record
        (through :meth:`reconcile`, so it is checked and journaled like any replacement),
        with ``seen`` added to its de-duplication keys."""
        snap = self._rt.snapshot(slot)
        snap["state"] = "FROZEN"
        snap["record"]["frozen_reason"] = reason
        if seen is not None and seen not in snap["seen"]:
            snap["seen"].append(seen)
        self.reconcile({slot: snap})

    @_acting
    def reconcile(self, slots: Mapping[int, Any] | Iterable[Any]) -> None:
        """Replaces slots with the given ones (``{slot_id: snapshot}``, or slot views /
        snapshots carrying ``slot_id``), all or nothing. Each is checked against the spec's
        invariants; :class:`ReconcileError` lists every violation and nothing changes.
        A slot given without de-dup keys keeps the ones it has."""
        if isinstance(slots, Mapping):
            items = dict(slots)
        else:
            items = {}
            for s in slots:
                sid = s.slot_id if isinstance(s, SlotView) else (s.get("slot_id") if isinstance(s, Mapping) else None)
                if sid is None:
                    raise ReconcileError([f"cannot tell which slot {s!r} is: give slot_id or a mapping"])
                items[sid] = s
        snaps = {}
        forgotten: list[str] = []
        before: dict[int, dict] = {}
        for sid, s in items.items():
            if isinstance(s, SlotView):
                s = {"state": s.fsm_state, "record": s.record}
            if not isinstance(s, Mapping):
                raise ReconcileError([f"slot {sid!r}: expected a snapshot mapping or a SlotView, got {type(s).__name__}"])
            s = dict(s)
            s.pop("slot_id", None)
            if isinstance(sid, int) and not isinstance(sid, bool) and 0 <= sid < self.slots:
                current = before[sid] = self._rt.snapshot(sid)
                if "seen" not in s:
                    s["seen"] = current["seen"]
                elif not self._replaying:   # a recorded reconcile is history: it was accepted then
                    forgotten.extend(_forgotten_keys(sid, current, s))
            snaps[sid] = s
            if not self._replaying:
                forgotten.extend(self._orders_elsewhere(sid, s))
        self._replace(snaps, None, forgotten)
        if self._journal is not None and not self._replaying:
            self._journal.append("reconcile", None, {"slots": {str(sid): snap for sid, snap in snaps.items()}})
            self._journal.flush()
        for sid, s in snaps.items():
            record = s.get("record") or {}
            if self._slot_orders.get(sid) and record.get("trade_id") != before[sid]["record"].get("trade_id"):
                self._end_trade_orders(sid, before[sid]["seen"])
        for sid, s in snaps.items():
            for coid in _orders_named(s.get("record") or {}):
                self._give_order(coid, sid)
        self._sync_routes()

    def _give_order(self, coid: str, slot: int) -> None:
        """Makes ``coid`` an order of ``slot``'s current trade, as a reconciled record names
        it: moved from the slot that had it (its events are routed to the new one), and
        brought back from the ended orders if a reconcile had ended it (an undo), so that
        the fills it applies from now on count when its trade ends."""
        old = self._order_slot.get(coid)
        self._order_slot[coid] = slot
        order = self._orders.get(coid)
        if order is not None and order.slot_id != slot:
            self._orders[coid] = dataclasses.replace(order, slot_id=slot)
        if old is not None and old != slot and coid in self._slot_orders.get(old, ()):
            self._slot_orders[old].remove(coid)
        if coid in self._ended:
            del self._ended[coid]
        if coid in self._orders and coid not in self._slot_orders.get(slot, ()):
            self._slot_orders.setdefault(slot, []).append(coid)

    def _check_one_slot_per_order(self, snaps: dict) -> None:
        """An order belongs to one slot: a second slot naming it would count its fills twice
        (an operator pasting one slot's snapshot into another), or wait for events routed to
        the first for good. Only the given slots' orders are looked up. (Trade ids are the
        strategy's to choose and may repeat across slots; order ids are the kernel's.)"""
        owners: dict[str, set] = {}
        for sid, snap in snaps.items():
            record = snap.get("record") if isinstance(snap, Mapping) else None
            if not isinstance(record, Mapping):
                continue
            for coid in _orders_named(record):
                owners.setdefault(coid, set()).add(sid)
                other = self._order_slot.get(coid)
                if other is not None and other not in snaps and coid in _orders_named(self._rt.record(other)):
                    owners[coid].add(other)
        problems = [f"order {coid!r} belongs to slots {', '.join(map(str, sorted(sids, key=str)))}: an order belongs "
                    "to one slot" for coid, sids in owners.items() if len(sids) > 1]
        if problems:
            raise ReconcileError(problems)

    def _orders_elsewhere(self, sid: Any, snap: Mapping) -> list[str]:
        """A reconciled slot that keeps an order working but names another asset than the
        order was sent for would send its cancel there (a cancel goes by the slot's asset),
        and the order would go on working: refused, naming both."""
        record = snap.get("record")
        if not isinstance(record, Mapping):
            return []   # malformed: the engine says so
        problems = []
        for coid in _working_orders(record):
            sent = self._orders.get(coid)
            if sent is not None and record.get("asset") != sent.asset:
                problems.append(f"slot {sid}: order {coid} works on {sent.asset}, where it was sent, but the slot "
                                f"names asset {record.get('asset')!r}: its cancel would go there and the order "
                                f"would keep working")
        return problems

    def _replace(self, snaps: dict, shared: Mapping | None, problems: Iterable[str] = ()) -> None:
        """Replaces slots (and the account) all or nothing. ``problems`` found by the caller
        and every one found here are raised together, so that one ReconcileError names all
        that is wrong with what was given."""
        bad = [f"slot {sid!r}: no such slot (this kernel has {self.slots})" for sid in snaps
               if isinstance(sid, bool) or not isinstance(sid, int) or not 0 <= sid < self.slots]
        if bad:
            raise ReconcileError(bad)
        problems = list(problems)
        if not self._replaying:   # a recorded reconcile or checkpoint was accepted when it was made
            try:
                self._check_one_slot_per_order(snaps)
            except ReconcileError as exc:
                problems += exc.violations
        # The engine checks the slots (and applies them only if all hold); if something
        # else is wrong they are put back, so that its findings are reported too.
        before = {sid: self._rt.snapshot(sid) for sid in snaps} if problems else {}
        before_shared = self._rt.shared_snapshot() if problems and shared is not None else None
        try:
            # record_defaults: reconcile takes hand-written records, the rest the spec's defaults.
            self._rt.replace(snaps, dict(shared) if shared is not None else None, record_defaults=True)
        except _engine.EngineError as exc:
            violations = getattr(exc, "violations", None) or [str(exc)]
            raise ReconcileError(problems + [v.replace("instance ", "slot ", 1) for v in violations]) from None
        if problems:
            self._rt.replace(before, before_shared)
            raise ReconcileError(problems)


def _orders_named(record: Mapping) -> list[str]:
    """Every order a slot's record names: its entry, its exit and the exit before it."""
    return [coid for key in ("entry_client_order_id", "exit_client_order_id", "prev_exit_client_order_id")
            if isinstance(coid := record.get(key), str) and coid]


def _working_orders(record: Mapping) -> list[str]:
    return [coid for prefix in ("entry", "exit")
            if record.get(f"{prefix}_live") is True and isinstance(coid := record.get(f"{prefix}_client_order_id"), str)
            and coid]


def _plain_event(event: VenueEvent) -> VenueEvent:
    """A subclass of VenueEvent (an adapter's own, with extra fields) as the VenueEvent it
    is: what the kernel applies and journals are the VenueEvent fields."""
    return VenueEvent(**{name: getattr(event, name, None) for name in VenueEvent.__slots__})


_ORDER_FIELDS = ("entry_client_order_id", "exit_client_order_id", "prev_exit_client_order_id")


def _forgotten_keys(sid: int, current: Mapping, given: Mapping) -> list[str]:
    """A reconcile that keeps a slot's trade, or one of its orders, but drops de-duplication
    keys it holds for them would apply again the events those keys stand for (a fill
    twice): refused, naming them. Keys of orders and trades the slot no longer carries may go."""
    record = given.get("record") if isinstance(given.get("record"), Mapping) else {}
    seen = given.get("seen")
    if not isinstance(seen, (list, tuple)):
        return []   # malformed: the engine says so
    trade = current["record"].get("trade_id")
    same_trade = trade is not None and record.get("trade_id") == trade
    kept_orders = {record.get(f) for f in _ORDER_FIELDS} & {current["record"].get(f) for f in _ORDER_FIELDS} - {None}
    key = lambda k: tuple(k) if isinstance(k, list) else k  # noqa: E731
    kept = {key(k) for k in seen}
    # A key scoped to an order ends with that order's id ([field, value, scope field, scope value]).
    lost = [k for k in current["seen"] if key(k) not in kept
            and (same_trade or (isinstance(k, (list, tuple)) and len(k) == 4 and k[3] in kept_orders))]
    if not lost:
        return []
    shown = ", ".join(str(list(k)) if isinstance(k, (list, tuple)) else repr(k) for k in lost[:5])
    what = f"trade {trade}" if same_trade else f"order{'s' if len(kept_orders) > 1 else ''} {', '.join(sorted(kept_orders))}"
    return [f"slot {sid}: the reconcile keeps {what} but drops {len(lost)} of its de-duplication keys "
            f"({shown}{', ...' if len(lost) > 5 else ''}): the events they stand for would apply again; "
            "give the slot's seen keys (or leave 'seen' out to keep them)"]


def _snapshot_decimal(text: Any) -> Decimal:
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise ValueError(f"{text!r} is not a decimal number")
    return to_decimal(text, "a figure")   # plain decimal text only, finite


def _comparable_checkpoint(snapshot: Any) -> Any:
    """A checkpoint without what a replay cannot rebuild: which orders await an answer or
    could not be asked about (the venue's failures are not inputs) and the venue's name (a read-only recovery may use a
    stand-in; checkpoints written before snapshots named their venue do not have it)."""
    if isinstance(snapshot, dict):
        return {k: v for k, v in snapshot.items() if k not in ("unconfirmed_orders", "unasked_orders", "venue")}
    return snapshot


def _snapshot_slots(snapshot: Any) -> list:
    if not isinstance(snapshot, Mapping) or snapshot.get("format") != SNAPSHOT_FORMAT:
        raise ReconcileError([f"not a DITA snapshot of format {SNAPSHOT_FORMAT}"])
    slots = snapshot.get("slots")
    if not isinstance(slots, list) or not slots:
        raise ReconcileError(["snapshot has no slots"])
    return slots


def _check_history_limit(limit: Any, error: type[Exception]) -> int | None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        message = f"history_limit must be a positive int or None, got {limit!r}"
        raise error([message]) if error is ReconcileError else error(message)
    return limit


def _amounts_are_numbers(event: VenueEvent) -> bool:
    """Whether a fill's size, price and fee are numbers (finite; size and price positive):
    an amount of money, even one the engine cannot hold exactly."""
    try:
        size, price = (Decimal(str(x)) for x in (event.filled_size, event.fill_price))
        fee = Decimal(str(event.fee if event.fee is not None else 0))
    except (ArithmeticError, ValueError, TypeError):
        return False
    kinds = (event.filled_size, event.fill_price, event.fee)
    return (not any(isinstance(x, bool) for x in kinds) and all(d.is_finite() for d in (size, price, fee))
            and size > 0 and price > 0)


def _venue_name(venue: Venue) -> str:
    """How a journal names its venue, so that a recovery can build it again: its registered
    name (also for a venue object whose class a plugin registers), else its class name."""
    if venue.name:
        return venue.name
    try:
        entries = default_registry().entries()
    except Exception:
        entries = {}
    names = sorted(name for name, entry in entries.items() if entry.factory is type(venue))
    return names[0] if len(names) == 1 else type(venue).__name__


def _registered_names(written_with: str) -> set[str]:
    """The registered venue names a journal's venue may be: the name itself, or, for a
    journal that recorded a class name (its kernel was given a venue object), every name
    whose factory is that class."""
    names = set()
    try:
        entries = default_registry().entries()
    except Exception:   # no plugin can be loaded: the name is all there is
        entries = {}
    for name, entry in entries.items():
        if name == written_with or getattr(entry.factory, "__name__", None) == written_with:
            names.add(name)
    return names


def _registered_label(recorded: Any) -> str | None:
    """The registered name a journal's or snapshot's venue goes by, if it has one."""
    known = _registered_names(recorded) if isinstance(recorded, str) and recorded else set()
    return recorded if recorded in known else (sorted(known)[0] if known else None)


def _recorded_venue(venue: str | Venue | None, recorded: Any, source: str, asks: str, free: bool) -> str | Venue:
    """The venue a kernel rebuilt from ``source`` (a journal, a snapshot) talks to: by
    default the one ``source`` records. Another venue is refused unless ``free`` (nothing
    will be asked of it about the recorded orders): the orders live at the venue that
    received them, and one that never did would report them unknown while they still work
    at the real one. ``asks`` says what the rebuilt kernel asks of that venue."""
    recorded = recorded if isinstance(recorded, str) and recorded else None
    known = _registered_names(recorded) if recorded else set()
    if venue is None:
        if len(known) == 1:
            return known.pop()
        if recorded in known:
            return recorded
        raise InvalidInputError(
            f"{source} was written against venue {recorded!r}, which names no one registered venue: "
            "pass venue= (its registered name with venue_options, or the venue object)" if recorded else
            f"{source} does not say which venue it was written against: pass venue=")
    if free or recorded is None:
        return venue
    if isinstance(venue, str):
        same = venue == recorded or venue in known
    else:
        # An object goes by its registered name (its own, or its class's); one that has none
        # is the caller's own construction (a test double, say), on which nothing can be checked.
        given = _venue_name(venue)
        same = given == recorded or given in known or not _registered_names(given)
    if not same:
        given = venue if isinstance(venue, str) else _venue_name(venue)
        suggestion = sorted(known)[0] if known else recorded
        raise InvalidInputError(
            f"{source} was written against venue {recorded!r}, not {given!r}: its orders live "
            f"there, and {asks}; pass venue={suggestion!r} (with its venue_options)")
    return venue


def _snapshot_orders_at_venue(snapshot: Mapping[str, Any]) -> list[str]:
    """The orders a snapshot's slots still consider working, and those whose submit the
    venue has not confirmed yet: a kernel restored from it asks its venue about them."""
    coids = []
    for slot in snapshot.get("slots") or ():
        record = slot.get("record") if isinstance(slot, Mapping) else None
        for prefix in ("entry", "exit"):
            if isinstance(record, Mapping) and record.get(f"{prefix}_live"):
                coids.append(str(record.get(f"{prefix}_client_order_id")))
    unconfirmed = snapshot.get("unconfirmed_orders")
    return coids + [str(c) for c in (unconfirmed if isinstance(unconfirmed, Mapping) else ())]


def _check_durability(durability: Any) -> None:
    if durability not in DURABILITY_MODES:
        raise InvalidInputError(f"durability must be one of {', '.join(DURABILITY_MODES)}, got {durability!r}")


def _check_every(name: str, every: Any, journal: Any) -> None:
    if every is None:
        return
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise InvalidInputError(f"{name} must be a positive int (records) or None, got {every!r}")
    if journal is None:
        raise InvalidInputError(f"{name} needs a journal: it says when to "
                                f"{'write a checkpoint into' if name == 'checkpoint_every' else 'continue'} it")


def _relative_to(path: Path, folder: Path) -> str:
    """``path`` as a link stored in a journal in ``folder``: relative, so that the files of a
    chain can be moved together (and no machine's absolute path is written)."""
    return os.path.relpath(path.resolve(), folder.resolve())


def _next_free_journal_path(current: Path) -> Path:
    """The next name of a journal chain that no file has: run.sqlite -> run.2.sqlite -> run.3.sqlite."""
    m = re.fullmatch(r"(?P<base>.+?)(?:\.(?P<n>\d+))?(?P<ext>\.[^.\d][^.]*)?", current.name)
    base, n, ext = m["base"], int(m["n"] or 1), m["ext"] or ""
    while True:
        n += 1
        candidate = current.with_name(f"{base}.{n}{ext}")
        if not candidate.exists():
            return candidate


def _venue_answer(events: Any) -> list:
    """What a venue call returned, as a list: None is nothing; a lone object (a dict, a
    string) is one item, which the caller then refuses as not a VenueEvent."""
    if events is None:
        return []
    if isinstance(events, (str, bytes, dict, VenueEvent)) or not hasattr(events, "__iter__"):
        return [events]
    return list(events)


def _order_to_json(o: Order) -> dict:
    out = {}
    for k, v in o.__dict__.items():
        if k == "intent":
            v = v.to_dict() if v is not None else None
        elif isinstance(v, Decimal):
            v = str(v)
        out[k] = v
    # Exactly what a journal's replay rebuilds: a Decimal in the intent's metadata is text there.
    return as_recorded(out)


def _order_from_json(d: Mapping[str, Any]) -> Order:
    d = dict(d)
    for k in ("quantity", "limit_price", "leverage"):
        if d.get(k) is not None:
            d[k] = to_decimal(d[k], f"order {d.get('client_order_id')!r} {k}")
    intent = d.pop("intent", None)
    if intent:
        intent = KernelIntent.recorded(intent)
    return Order(**d, intent=intent)
