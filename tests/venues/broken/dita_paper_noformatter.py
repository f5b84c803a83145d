"""A deliberately broken venue plugin: its venue has no quantity formatter.

It must be refused when it loads, with one message naming the distribution and the
missing method, and neither its venue nor its harness may be registered."""

import dita
from dita_paper import PaperHarness, PaperVenue


class NoQuantityFormatter(dita.Venue):
    """Everything of the paper venue except format_quantity."""

    capabilities = PaperVenue.capabilities
    format_price = PaperVenue.format_price
    instruments = PaperVenue.instruments
    submit = PaperVenue.submit
    cancel = PaperVenue.cancel
    poll = PaperVenue.poll
    query = PaperVenue.query


class NoFormatterHarness(PaperHarness):
    name = "paper-noformatter"


@dita.hookimpl
def dita_register_venues(register):
    register("paper-noformatter", NoQuantityFormatter)


@dita.hookimpl
def dita_register_harnesses(register):
    register("paper-noformatter", NoFormatterHarness)
