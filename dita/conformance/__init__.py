"""The conformance suite: one set of checks that every venue plugin must pass.

A venue plugin provides, besides its venue, a :class:`VenueHarness` (hook
``dita_register_harnesses``): how the suite builds a fresh venue and moves its market to
make orders fill, partly fill, or be rejected. The suite itself is a pytest plugin
(``dita.conformance.plugin``, loaded through the ``pytest11`` entry point) and a test module
(``dita.conformance.suite``); ``dita conformance`` runs it. Nothing here imports pytest,
so venue plugins can import :class:`VenueHarness` cheaply.
"""

from __future__ import annotations

import abc
from decimal import Decimal
from typing import Any

__all__ = ["VenueHarness", "SUITE_PATH"]


class VenueHarness(abc.ABC):
    """Controls one venue for the conformance suite. ``HarnessClass()`` takes no arguments;
    the suite builds a new harness for every test and calls :meth:`close` after it, so
    building one must be cheap (share servers or processes at module level).

    The methods other than :meth:`new_venue` act on the venue :meth:`new_venue` returned
    last. Events a harness action causes reach the kernel through the venue (its ``poll``,
    or the return value of ``submit``/``cancel``), never through the harness.
    """

    #: The registered venue name (the suite fills it in when left empty).
    name: str = ""

    #: The asset the suite trades on; ``None`` means the first of ``venue.instruments()``.
    #: It must have a price (:meth:`price`) and room for orders of about 10x its minimum size.
    asset: str | None = None

    @abc.abstractmethod
    def new_venue(self) -> Any:
        """A fresh :class:`dita.Venue` on a fresh market: no orders, nothing received yet."""

    @abc.abstractmethod
    def price(self, asset: str) -> Decimal:
        """The current market price of ``asset``."""

    @abc.abstractmethod
    def set_price(self, asset: str, price: Decimal) -> None:
        """Moves the market. Resting LIMIT orders the move crosses fill (possibly partly)."""

    @abc.abstractmethod
    def fill(self, client_order_id: str, quantity: Decimal, price: Decimal | None = None) -> None:
        """The venue fills exactly ``quantity`` of the working order ``client_order_id``, as
        one fill (at ``price``, or at the order's limit price / the market); the kernel sees
        it through ``kernel.poll()``."""

    @abc.abstractmethod
    def reject_next_submit(self, reason: str = "rejected by the conformance suite") -> None:
        """The venue rejects the next order submitted: a ``REJECT`` event whose reason
        contains ``reason`` verbatim (the venue may add to it, e.g. the exchange's error code:
        ``"BingX 101204: insufficient margin"``)."""

    @abc.abstractmethod
    def reject_next_cancel(self, reason: str = "cancel rejected by the conformance suite") -> None:
        """The venue refuses the next cancel (``CANCEL_REJECT``); the order keeps working."""

    @abc.abstractmethod
    def fill_before_next_cancel(self) -> None:
        """The next cancelled order fills completely just before the cancel reaches it."""

    @abc.abstractmethod
    def received(self) -> list[dict]:
        """Every request the venue received, in order, normalized to::

            {"action": "submit" | "cancel", "asset": str, "side": "BUY" | "SELL",
             "order_type": str, "quantity": wire str | None, "price": wire str | None,
             "client_order_id": str, "reduce_only": bool}

        ``quantity`` and ``price`` are the exact text sent on the wire (None when not sent,
        e.g. the price of a MARKET order, or both for a cancel)."""

    def close(self) -> None:
        """Releases what the harness holds (servers, files). The default does nothing."""


def suite_path() -> str:
    """The file of the packaged conformance tests (what ``dita conformance`` runs)."""
    from pathlib import Path

    return str(Path(__file__).with_name("suite.py"))


SUITE_PATH = suite_path()
