"""The hooks a DITA plugin can implement (pluggy project name ``dita``).

A plugin is a module (or any object) exposed through an entry point in the group
``dita``. It implements some of the hooks below, each marked with :data:`hookimpl`.
A plugin that implements a hook name not listed here is refused when it loads
(``check_pending``), so a misspelt hook fails loudly instead of never being called.

Venues and harnesses are registered as *objects* through a ``register`` callback rather
than as per-venue hooks: pluggy calls every implementation of a hook, so a hook such as
``format_price`` would be broadcast to every installed venue.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("dita")
hookimpl = pluggy.HookimplMarker("dita")


@hookspec
def dita_register_venues(register) -> None:
    """Register the venues this plugin provides.

    :param register: call ``register(name, factory)`` once per venue, where
        ``factory(**venue_options)`` returns a :class:`dita.Venue` (usually the factory is
        the venue class itself). A venue class that lacks one of the abstract methods of
        :class:`dita.Venue` (in particular ``format_price`` or ``format_quantity``), or a
        name another plugin already registered, makes the whole plugin refused: none of its
        venues or harnesses is registered.

    Example::

        @dita.hookimpl
        def dita_register_venues(register):
            register("mock", MockVenue)
    """


@hookspec
def dita_register_harnesses(register) -> None:
    """Register the conformance harness of each venue this plugin provides.

    :param register: call ``register(venue_name, harness_factory)``, where
        ``harness_factory()`` (no arguments; usually a subclass of
        :class:`dita.conformance.VenueHarness`) returns a harness that builds fresh venues
        and moves their market, so the one conformance suite can run against the venue.
        Registration is all or nothing together with the plugin's venues.

    Example::

        @dita.hookimpl
        def dita_register_harnesses(register):
            register("mock", MockHarness)
    """


@hookspec
def dita_add_commands(subparsers) -> None:
    """Add subcommands to the ``dita`` command.

    :param subparsers: the :mod:`argparse` subparsers action of ``dita``. Each parser the
        plugin adds does ``set_defaults(func=callable)``, where ``callable(args) -> int``
        runs the command and returns its exit code. A :class:`dita.DitaError` it raises is
        printed as one line with exit code 1.

    Example::

        @dita.hookimpl
        def dita_add_commands(subparsers):
            p = subparsers.add_parser("mock-prices", help="print the mock's default prices")
            p.set_defaults(func=lambda args: print(DEFAULT_PRICES) or 0)
    """
