"""The public value types: intents in, venue events in, outcomes out, and read-only views."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Mapping

from dita import _engine
from dita.errors import InvalidInputError
from dita.journal import journal_problem

INTENT_ACTIONS = ("ENTER", "EXIT", "CANCEL")


#: Decimal text as a trader writes it: ASCII digits, one point, an optional sign and
#: exponent. Python's Decimal also reads "0_01" (as 1) and digits of other scripts, which
#: would turn a typo into another size.
_DECIMAL_TEXT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


def to_decimal(value: Any, name: str, *, optional: bool = False) -> Decimal | None:
    """Exact decimal from Decimal, str or int; a float goes through its shortest repr."""
    if value is None:
        if optional:
            return None
        raise InvalidInputError(f"{name} is required")
    if isinstance(value, bool):
        raise InvalidInputError(f"{name} must be a decimal number, got bool {value!r}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        if not _DECIMAL_TEXT.fullmatch(value.strip()):
            raise InvalidInputError(f"{name} must be a decimal number, got {value!r} (digits 0-9, one point, "
                                    "an optional sign and exponent)")
        result = Decimal(value.strip())
    elif isinstance(value, float):
        result = Decimal(repr(value))
    else:
        raise InvalidInputError(f"{name} must be a decimal number, got {type(value).__name__} {value!r}")
    if not result.is_finite():
        raise InvalidInputError(f"{name} must be finite, got {value!r}")
    return result


def _text(value: Any, name: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise InvalidInputError(f"{name} must be a string, got {type(value).__name__} {value!r}")
    return value


# What each action takes besides its ids, asset and side: a field given to an action that
# does not take it is refused, never ignored (a CANCEL with a size or a price would read as
# an amend, which DITA does not offer; an EXIT cannot change what the trade's ENTER set).
_NOT_TAKEN = {
    "ENTER": (),
    "EXIT": ("leverage", "exit_leg_ratios", "reference_price"),
    "CANCEL": ("target_size", "order_type", "limit_price", "leverage", "exit_leg_ratios", "reference_price"),
}
_NOT_TAKEN_WHY = {
    "EXIT": "the trade's ENTER set them",
    "CANCEL": "it cancels whichever order of the slot works, as it stands; there is no amend or cancel/replace",
}


def _refuse_fields_not_taken(intent: "KernelIntent") -> None:
    unset = {"order_type": "MARKET", "exit_leg_ratios": ()}   # the defaults; None for the rest
    shown = lambda v: f"({', '.join(map(str, v))})" if isinstance(v, tuple) else str(v)  # noqa: E731
    given = [f"{name}={shown(getattr(intent, name))}" for name in _NOT_TAKEN[intent.action]
             if getattr(intent, name) != unset.get(name)]
    if given:
        names = ", ".join(_NOT_TAKEN[intent.action])
        raise InvalidInputError(f"{'an' if intent.action == 'EXIT' else 'a'} {intent.action} takes no {names} "
                                f"({_NOT_TAKEN_WHY[intent.action]}): got {', '.join(given)}")


class KernelIntent:
    """What a strategy asks of a slot: ``ENTER``, ``EXIT`` (the next exit leg, or all that is
    left) or ``CANCEL`` (whichever order of the slot works). Numbers are converted to exact
    decimals on construction; a malformed intent raises :class:`InvalidInputError`.

    An intent is a value: it cannot be changed once built (the kernel keeps it with the
    order it became, and the journal holds it as sent). On an EXIT or CANCEL, ``asset`` and
    ``side``, when given, must be the slot's trade's (for ``side``, or BUY/SELL of one of its orders);
    an EXIT's ``target_size``, when given, is the most it may send (exits are sized by the
    trade's ``exit_leg_ratios``). A field the action does not take is refused, not ignored:
    an EXIT takes no ``leverage``, ``exit_leg_ratios`` or ``reference_price``; a CANCEL no
    size, order type, price or any of those (there is no amend)."""

    __slots__ = (
        "action", "slot_id", "trade_id", "intent_id", "asset", "side", "target_size", "order_type",
        "limit_price", "leverage", "exit_leg_ratios", "reference_price", "metadata", "timestamp",
    )

    def __init__(self, action, slot_id, intent_id, trade_id=None, asset=None, side=None, target_size=None,
                 order_type="MARKET", limit_price=None, leverage=None, exit_leg_ratios=(), reference_price=None,
                 metadata=None, timestamp=None):
        put = object.__setattr__   # the instance is frozen from the outside only
        if action not in INTENT_ACTIONS:
            raise InvalidInputError(f"action must be one of {', '.join(INTENT_ACTIONS)}, got {action!r}")
        if isinstance(slot_id, bool) or not isinstance(slot_id, int):
            raise InvalidInputError(f"slot_id must be an int, got {type(slot_id).__name__} {slot_id!r}")
        put(self, "action", action)
        put(self, "slot_id", slot_id)
        put(self, "intent_id", _text(intent_id, "intent_id"))
        put(self, "trade_id", _text(trade_id, "trade_id", optional=action != "ENTER"))
        put(self, "asset", _text(asset, "asset", optional=action != "ENTER"))
        put(self, "side", _text(side, "side", optional=action != "ENTER"))
        put(self, "target_size", to_decimal(target_size, "target_size", optional=action != "ENTER"))
        put(self, "order_type", _text(order_type, "order_type"))
        put(self, "limit_price", to_decimal(limit_price, "limit_price", optional=True))
        for name, value in (("leverage", leverage), ("reference_price", reference_price)):
            number = to_decimal(value, name, optional=True)
            if number is not None and number <= 0:
                raise InvalidInputError(f"{name} must be positive, got {number}")
            put(self, name, number)
        # An ordered sequence: the legs are taken in the order given.
        if isinstance(exit_leg_ratios, (str, bytes, Mapping, set, frozenset)) or not hasattr(exit_leg_ratios, "__iter__"):
            raise InvalidInputError(f"exit_leg_ratios must be a sequence of decimals, got {exit_leg_ratios!r}")
        put(self, "exit_leg_ratios", tuple(to_decimal(r, f"exit_leg_ratios[{i}]") for i, r in enumerate(exit_leg_ratios)))
        _refuse_fields_not_taken(self)
        # Journaled with the intent and kept in snapshots, which are JSON; copied, so that
        # the caller's later changes to its dict change nothing here.
        if metadata is not None and not isinstance(metadata, Mapping):
            raise InvalidInputError(f"metadata must be a mapping (a dict of JSON data), got {type(metadata).__name__} "
                                    f"{metadata!r:.80}")
        for name, value in (("metadata", dict(metadata or {})), ("timestamp", timestamp)):
            problem = journal_problem(value)
            if problem is not None:
                raise InvalidInputError(f"{name} must be JSON data (Decimals, dates and times allowed): {problem}")
            put(self, name, copy.deepcopy(value))

    def __setattr__(self, name, value):
        raise AttributeError(f"a KernelIntent cannot be changed once built (setting {name!r}); build a new one")

    def __delattr__(self, name):
        raise AttributeError(f"a KernelIntent cannot be changed once built (deleting {name!r})")

    @classmethod
    def recorded(cls, data: Mapping[str, Any]) -> "KernelIntent":
        """An intent as a journal recorded it. One a later version's checks would refuse
        (it was accepted when it was sent) is rebuilt as it was: a replay rebuilds history."""
        try:
            return cls(**data)
        except InvalidInputError:
            intent = object.__new__(cls)
            decimals = ("target_size", "limit_price", "leverage", "reference_price")
            for name in cls.__slots__:
                value = data.get(name)
                if name in decimals and value is not None:
                    value = Decimal(value)
                elif name == "exit_leg_ratios":
                    value = tuple(Decimal(r) for r in value or ())
                elif name == "metadata":
                    value = dict(value or {})
                object.__setattr__(intent, name, value)
            return intent

    def __reduce__(self):
        # Copy and pickle build it anew, through the checks above; an intent a journal or a
        # snapshot recorded under older rules is rebuilt as recorded (see `recorded`).
        return KernelIntent.recorded, ({name: getattr(self, name) for name in self.__slots__},)

    def to_dict(self) -> dict:
        out = {}
        for name in self.__slots__:
            v = getattr(self, name)
            if isinstance(v, Decimal):
                v = str(v)
            elif isinstance(v, tuple):
                v = [str(x) for x in v]
            out[name] = v
        return out

    def __repr__(self) -> str:
        parts = [f"{k}={v!r}" for k, v in self.to_dict().items() if v not in (None, [], {})]
        return f"KernelIntent({', '.join(parts)})"


class VenueEvent:
    """One thing the venue reports about an order. ``kind`` is ORDER_ACK, PARTIALLY_FILLED,
    FULL_FILL, CANCEL_ACK, CANCEL_REJECT, REJECT or EXPIRED. ``filled_size`` is the size of
    this one fill (a delta), ``fee`` its fee. ``event_id`` must be stable: the same report
    seen twice carries the same id, so it is applied once.

    Construction stores the values as given, so adapters can build events cheaply; the
    engine checks every field's type when the event is applied.
    """

    __slots__ = ("kind", "event_id", "client_order_id", "venue_order_id", "filled_size", "fill_price",
                 "fee", "reason", "timestamp", "raw")

    def __init__(self, kind, event_id, client_order_id, venue_order_id=None, filled_size=None, fill_price=None,
                 fee=None, reason=None, timestamp=None, raw=None):
        self.kind = kind
        self.event_id = event_id
        self.client_order_id = client_order_id
        self.venue_order_id = venue_order_id
        self.filled_size = filled_size
        self.fill_price = fill_price
        self.fee = fee
        self.reason = reason
        self.timestamp = timestamp
        self.raw = raw

    def to_dict(self) -> dict:
        return {k: (str(v) if isinstance(v, Decimal) else v) for k in VenueEvent.__slots__
                if (v := getattr(self, k)) is not None}

    def __eq__(self, other):
        return isinstance(other, VenueEvent) and all(getattr(self, k) == getattr(other, k) for k in VenueEvent.__slots__)

    __hash__ = None

    def __repr__(self) -> str:
        return "VenueEvent(" + ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items()) + ")"


# An adapter builds one VenueEvent per message, so building it is part of what each event
# costs. The engine gives the class a native constructor that stores the same arguments in
# the same attributes (it checks that it does) for a third less; anything unusual (a wrong
# argument, a subclass) still runs the __init__ above, and so would every call if the
# engine refused (tests/test_event_construction.py checks that it does not here).
try:
    _engine.install_member_init(VenueEvent)
except TypeError:
    pass


class KernelOutcome(_engine.Outcome):
    """What one call did. ``accepted``/``diagnostic_code``/``message`` describe the call's own
    intent or event; ``state`` is the slot's state after every venue event the call caused;
    ``transitions`` lists every transition of the call in order, each a
    ``(from_state, event, to_state)`` tuple; ``emitted_events`` are the venue events the call
    produced; ``refused_events`` pairs each of those the machine refused with its diagnostic.

    ``KernelOutcome(accepted, diagnostic_code, state, slot_id, transitions=(),
    emitted_events=(), refused_events=(), message=None)``. The engine's outcome type, under
    the kernel's names: the engine builds it directly on the venue-event fast path."""

    __slots__ = ()

    @property
    def slot_id(self) -> int | None:
        return self.instance

    def __repr__(self) -> str:
        return (f"KernelOutcome(accepted={self.accepted}, diagnostic_code={self.diagnostic_code!r}, "
                f"state={self.state!r}, slot_id={self.slot_id}, transitions={list(self.transitions)!r}"
                + (f", message={self.message!r}" if self.message else "") + ")")


@dataclass(frozen=True)
class Instrument:
    """What a venue allows for one asset. Every price the venue receives is a multiple of
    ``price_increment``, every size a multiple of ``size_increment``."""

    price_increment: Decimal
    size_increment: Decimal
    min_size: Decimal = Decimal(0)
    min_notional: Decimal | None = None


@dataclass
class Order:
    """An order as handed to ``Venue.submit`` and ``Venue.cancel``. ``quantity`` and
    ``limit_price`` are exactly what the slot records (already on the venue's grid)."""

    client_order_id: str
    asset: str
    side: str                 # BUY or SELL
    position_side: str        # LONG or SHORT
    order_type: str           # MARKET or LIMIT
    quantity: Decimal
    limit_price: Decimal | None
    reduce_only: bool
    leverage: Decimal | None
    role: str                 # ENTRY or EXIT
    slot_id: int
    trade_id: str | None
    intent: KernelIntent | None = None
    venue_order_id: str | None = None
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class OrderProgress:
    """What the kernel has applied of one order's fills: their total size, their total value
    (Σ size × price) and their total fee. Handed to :meth:`Venue.resume`."""

    filled_size: Decimal = Decimal(0)
    filled_value: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)


@dataclass(frozen=True)
class OrderView:
    """A slot's working order, read-only."""

    client_order_id: str
    venue_order_id: str | None
    side: str                       # BUY or SELL
    order_type: str
    quantity: Decimal
    limit_price: Decimal | None
    filled_size: Decimal
    position_side: str | None = None  # the trade's LONG or SHORT


class _ReadOnlyRecord(dict):
    """A slot's record as a view hands it out: a dict (JSON, ``dict()``, reconcile take it
    as one) that refuses changes, which would make the view lie about the slot."""

    def _refuse(self, *args, **kwargs):
        raise TypeError("a SlotView's record is a read-only copy; build a new dict (dict(view.record)) to edit one "
                        "for reconcile()")

    __setitem__ = __delitem__ = update = pop = popitem = clear = setdefault = __ior__ = _refuse

    def __reduce__(self):   # copies are plain dicts
        return dict, (dict(self),)


class SlotView:
    """A read-only copy of one slot. The documented attributes are below; every field of the
    spec's record is also in ``record``."""

    def __init__(self, slot_id: int, state: str, record: Mapping[str, Any]):
        put = object.__setattr__   # read-only from the outside
        put(self, "slot_id", slot_id)
        put(self, "fsm_state", state)
        put(self, "record", _ReadOnlyRecord(record))

    def __setattr__(self, name, value):
        raise AttributeError(f"a SlotView is a read-only copy of the slot (setting {name!r}); a slot changes through "
                             "intents, venue events or reconcile()")

    __delattr__ = __setattr__

    def __getattr__(self, name):
        record = self.__dict__.get("record", {})
        if name in record:
            return record[name]
        raise AttributeError(f"slot has no field {name!r}")

    def _order(self, prefix: str) -> OrderView | None:
        r = self.record
        if not r.get(f"{prefix}_live"):
            return None
        return OrderView(
            client_order_id=r[f"{prefix}_client_order_id"], venue_order_id=r[f"{prefix}_venue_order_id"],
            side=r[f"{prefix}_side"], order_type=r[f"{prefix}_order_type"], quantity=r[f"{prefix}_quantity"],
            limit_price=r[f"{prefix}_limit_price"], filled_size=r[f"{prefix}_filled"], position_side=r.get("side"),
        )

    @property
    def active_entry_order(self) -> OrderView | None:
        return self._order("entry")

    @property
    def active_exit_order(self) -> OrderView | None:
        return self._order("exit")

    def __repr__(self) -> str:
        return (f"SlotView(slot_id={self.slot_id}, fsm_state={self.fsm_state!r}, trade_id={self.record.get('trade_id')!r}, "
                f"size={self.record.get('size')}, realized_pnl={self.record.get('realized_pnl')})")


class AccountView:
    """The account, read-only: ``capital`` = ``starting_capital`` + ``realized_pnl`` and
    ``realized_pnl`` = ``gross_realized_pnl`` - ``fees_paid``, at every moment."""

    def __init__(self, shared: Mapping[str, Any]):
        self.__dict__.update(shared)
        self.__dict__["_fields"] = dict(shared)

    def __setattr__(self, name, value):
        raise AttributeError(f"an AccountView is a read-only copy of the account (setting {name!r}); the account "
                             "changes only by the fills the kernel settles")

    __delattr__ = __setattr__

    def as_dict(self) -> dict:
        return dict(self._fields)

    def __repr__(self) -> str:
        return "AccountView(" + ", ".join(f"{k}={v}" for k, v in self._fields.items()) + ")"
