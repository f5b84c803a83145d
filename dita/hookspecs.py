"""The hooks a DITA plugin can implement (pluggy project name ``dita``)."""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("dita")
hookimpl = pluggy.HookimplMarker("dita")


@hookspec
def dita_register_venues(register) -> None:
    """Register the venues this plugin provides.

    :param register: call ``register(name, factory)`` once per venue, where
        ``factory(**venue_options)`` returns a :class:`dita.Venue` (usually the factory is the
        venue class itself).

    Example::

        @dita.hookimpl
        def dita_register_venues(register):
            register("mock", MockVenue)
    """
