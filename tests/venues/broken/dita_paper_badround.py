"""A deliberately broken dita-paper: its formatters round to the nearest step.

A buy can then go out above the price the trader asked, a sell below it, and a size can
be rounded up past what was asked (or up from below the minimum). The conformance suite
must fail exactly its checks of prices and sizes (tests/test_adding_a_venue.py)."""

from decimal import ROUND_HALF_EVEN, Decimal

import dita
from dita_paper import INSTRUMENTS, PaperHarness, PaperVenue


class BadRoundingVenue(PaperVenue):
    def format_price(self, asset, price, side):
        return self._price_text(asset, self._to_ticks(asset, Decimal(price), ROUND_HALF_EVEN))

    def format_quantity(self, asset, quantity):
        step = INSTRUMENTS[asset].size_increment
        return self._size_text(asset, int((Decimal(quantity) / step).to_integral_value(rounding="ROUND_CEILING")))


class BadRoundingHarness(PaperHarness):
    name = "paper-badround"
    venue_class = BadRoundingVenue


@dita.hookimpl
def dita_register_venues(register):
    register("paper-badround", BadRoundingVenue)


@dita.hookimpl
def dita_register_harnesses(register):
    register("paper-badround", BadRoundingHarness)
