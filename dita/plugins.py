"""Finding venues: plugins register through the ``dita`` entry-point group."""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from typing import Any, Callable

import pluggy

from dita import hookspecs
from dita.errors import PluginError
from dita.venue import Venue


@dataclass(frozen=True)
class VenueEntry:
    name: str
    factory: Callable[..., Venue]
    distribution: str
    version: str


class VenueRegistry:
    """Loads plugins and keeps the venues they register. Build one per need (tests do), or
    use :func:`default_registry`."""

    def __init__(self, load_entry_points: bool = True):
        self.pm = pluggy.PluginManager("dita")
        self.pm.add_hookspecs(hookspecs)
        self.venues: dict[str, VenueEntry] = {}
        self._loaded = False
        self._load_entry_points = load_entry_points

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if self._load_entry_points:
            only = os.environ.get("DITA_LOAD_PLUGINS")
            disabled = {n.strip() for n in os.environ.get("DITA_DISABLE_PLUGINS", "").split(",") if n.strip()}
            from importlib.metadata import entry_points

            for ep in entry_points(group="dita"):
                if only is not None and ep.name not in {n.strip() for n in only.split(",")}:
                    continue
                if ep.name in disabled:
                    continue
                dist = ep.dist.name if ep.dist else ep.name
                try:
                    plugin = ep.load()
                except Exception as exc:
                    raise PluginError(f"plugin {dist!r} (entry point {ep.name!r}) cannot be loaded: {exc}") from exc
                self.add_plugin(plugin, name=ep.name, distribution=dist, version=ep.dist.version if ep.dist else "")
        self.pm.check_pending()

    def add_plugin(self, plugin: Any, name: str, distribution: str | None = None, version: str = "") -> None:
        """Registers a plugin object and the venues it registers; all or nothing."""
        dist = distribution or name
        staged: dict[str, VenueEntry] = {}

        def register(venue_name: str, factory: Callable[..., Venue]) -> None:
            if venue_name in self.venues or venue_name in staged:
                owner = (self.venues.get(venue_name) or staged[venue_name]).distribution
                raise PluginError(f"plugin {dist!r} registers venue {venue_name!r}, already registered by {owner!r}")
            if inspect.isclass(factory):
                if not issubclass(factory, Venue):
                    raise PluginError(f"plugin {dist!r}: venue {venue_name!r} is not a dita.Venue subclass")
                missing = sorted(getattr(factory, "__abstractmethods__", ()))
                if missing:
                    raise PluginError(
                        f"plugin {dist!r}: venue {venue_name!r} does not implement {', '.join(missing)}"
                        + (" (a venue must declare its price and quantity formatters)"
                           if {"format_price", "format_quantity"} & set(missing) else "")
                    )
            elif not callable(factory):
                raise PluginError(f"plugin {dist!r}: venue {venue_name!r} factory is not callable")
            staged[venue_name] = VenueEntry(venue_name, factory, dist, version)

        self.pm.register(plugin, name=name)
        try:
            hook = getattr(plugin, "dita_register_venues", None)
            if hook is not None:
                hook(register=register)
        except Exception:
            self.pm.unregister(plugin)
            raise
        self.venues.update(staged)

    def entries(self) -> dict[str, VenueEntry]:
        self._load()
        return dict(self.venues)

    def create(self, name: str, options: dict | None = None) -> Venue:
        self._load()
        entry = self.venues.get(name)
        if entry is None:
            known = ", ".join(sorted(self.venues)) or "none installed"
            raise PluginError(f"no venue named {name!r} (registered: {known}); install its plugin package, e.g. dita-{name}")
        venue = entry.factory(**(options or {}))
        if not isinstance(venue, Venue):
            raise PluginError(f"plugin {entry.distribution!r}: venue {name!r} factory returned {type(venue).__name__}, not a dita.Venue")
        venue.name = name
        return venue


_default: VenueRegistry | None = None


def default_registry() -> VenueRegistry:
    global _default
    if _default is None:
        _default = VenueRegistry()
    return _default
