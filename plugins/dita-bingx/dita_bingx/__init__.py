"""dita-bingx: the BingX USDT-M perpetual venue for DITA, and a local BingX simulator.

Registers the venue ``bingx`` (:class:`BingXVenue`), the ``dita bingx-sim`` command and the
conformance harness ``bingx`` (:class:`dita_bingx.harness.BingXHarness`).
"""

from __future__ import annotations

import dita

from dita_bingx.venue import BingXError, BingXVenue, Contract

__all__ = ["BingXError", "BingXSimulator", "BingXVenue", "Contract"]


def __getattr__(name):
    # The simulator is for tests and demos; import it only when asked for.
    if name == "BingXSimulator":
        from dita_bingx.simulator import BingXSimulator

        return BingXSimulator
    raise AttributeError(f"module 'dita_bingx' has no attribute {name!r}")


@dita.hookimpl
def dita_register_venues(register):
    register("bingx", BingXVenue)


@dita.hookimpl
def dita_add_commands(subparsers):
    from dita_bingx import simulator

    parser = subparsers.add_parser("bingx-sim", help="run a local BingX simulator",
                                   description="Run a BingX USDT-M perpetual simulator on loopback and print its URL.")
    simulator.add_arguments(parser)
    parser.set_defaults(func=simulator.run)


@dita.hookimpl
def dita_register_harnesses(register):
    from dita_bingx.harness import BingXHarness

    register("bingx", BingXHarness)
