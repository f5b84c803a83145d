"""The venue contract every exchange plugin implements."""

from __future__ import annotations

import abc
from decimal import Decimal
from typing import Mapping

from dita.types import Instrument, KernelIntent, Order, OrderProgress, VenueEvent

#: Every capability a venue may declare, and what it promises. The conformance suite skips
#: the checks of a capability a venue does not declare; a name outside this table is refused
#: at registration (a typo would otherwise silently skip checks).
KNOWN_CAPABILITIES = {
    "MARKET": "takes MARKET orders",
    "LIMIT": "takes LIMIT orders, which rest on the book until they fill or are cancelled",
    "reduce_only": "honours reduce-only on exit orders",
    "hedge_mode": "keeps LONG and SHORT positions of one asset apart (the order's position_side)",
}


class Venue(abc.ABC):
    """An exchange as the kernel sees it. The abstract methods are the declaration a venue
    must make; a subclass missing any of them (in particular the two formatters) cannot
    be instantiated, and the plugin manager refuses it by name.

    Every method that talks to the exchange returns a list of :class:`VenueEvent` (possibly
    empty: an answer may come later through :meth:`poll`).
    """

    #: The registered name (set by the plugin manager when the venue is built by name).
    name: str = ""

    #: What the venue supports, from :data:`KNOWN_CAPABILITIES`. The default is what the
    #: kernel itself sends: MARKET and LIMIT orders, and reduce-only exits.
    capabilities: frozenset[str] = frozenset({"MARKET", "LIMIT", "reduce_only"})

    @abc.abstractmethod
    def format_price(self, asset: str, price: Decimal, side: str) -> str:
        """The exact wire text of a LIMIT price for an order of ``side`` (BUY/SELL): on the
        instrument's price grid, never moved against the trader (a buy rounds down, a sell up)."""

    @abc.abstractmethod
    def format_quantity(self, asset: str, quantity: Decimal) -> str:
        """The exact wire text of an order size: rounded down to the instrument's size step."""

    @abc.abstractmethod
    def instruments(self) -> Mapping[str, Instrument]:
        """Asset -> :class:`Instrument` for every asset the venue trades."""

    @abc.abstractmethod
    def submit(self, order: Order) -> list[VenueEvent]:
        """Send an order (the full intent: type, limit price, client order id, reduce-only)."""

    @abc.abstractmethod
    def cancel(self, order: Order) -> list[VenueEvent]:
        """Cancel an order, routed by ``order.asset`` (the slot's own asset) and its ids."""

    @abc.abstractmethod
    def poll(self) -> list[VenueEvent]:
        """Events the venue has produced since the last poll (fills of resting orders, ...)."""

    @abc.abstractmethod
    def query(self, order: Order) -> list[VenueEvent]:
        """Every event of one order so far, by client order id (to resolve lost answers);
        event ids are stable, so the kernel applies each at most once."""

    def client_order_id(self, intent: KernelIntent) -> str:
        """The client order id for an intent: derived from the intent id alone, so the same
        intent can never become two orders. Venues with id rules override this."""
        return intent.intent_id

    def resume(self, order: Order, applied: OrderProgress) -> None:
        """Called when a kernel is rebuilt (``Kernel.recover``, ``Kernel.restore``) for each
        order its slots still consider working, before the venue is asked about it: the
        venue should report, from then on, only what goes beyond ``applied``. A venue whose
        state survives in the same object (an in-process one) has nothing to do; a venue
        that reports fills as differences of cumulative figures must start from these."""
