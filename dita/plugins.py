"""Finding venues: plugins register through the ``dita`` entry-point group.

Each installed plugin is loaded and registered all or nothing: if it cannot be imported,
implements a hook that does not exist, registers a venue that lacks a formatter, or a name
that is already taken, none of its venues and harnesses is kept, and the registry records
one refusal naming the distribution and what is wrong. Other plugins are unaffected; the
refusal surfaces wherever the plugin's venue is asked for (and in ``dita venues``).

``DITA_LOAD_PLUGINS=a,b`` loads only those plugins (``""`` loads none) and
``DITA_DISABLE_PLUGINS=a,b`` skips those; either takes entry-point or distribution names.
"""

from __future__ import annotations

import inspect
import os
import re
from dataclasses import dataclass
from typing import Any, Callable

import pluggy

from dita import hookspecs
from dita.errors import InvalidInputError, PluginError
from dita.venue import KNOWN_CAPABILITIES, Venue

_REFUSE_HINT = "Hint: fix or uninstall it, or skip it with DITA_DISABLE_PLUGINS={}"


@dataclass(frozen=True)
class VenueEntry:
    """A registered venue: its name, factory and the distribution that registered it."""

    name: str
    factory: Callable[..., Venue]
    distribution: str
    version: str

    @property
    def capabilities(self) -> frozenset[str] | None:
        """What the venue class declares (None when the factory is not a class and says nothing)."""
        caps = getattr(self.factory, "capabilities", None)
        return frozenset(caps) if caps is not None else None


@dataclass(frozen=True)
class HarnessEntry:
    """A registered conformance harness for the venue ``name``."""

    name: str
    factory: Callable[[], Any]
    distribution: str
    version: str


@dataclass(frozen=True)
class Refusal:
    """A plugin that was not registered, and why."""

    plugin: str
    distribution: str
    version: str
    message: str


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _names(var: str) -> set[str] | None:
    value = os.environ.get(var)
    if value is None:
        return None
    return {_norm(n.strip()) for n in value.split(",") if n.strip()}


class VenueRegistry:
    """Loads plugins and keeps the venues and harnesses they register. Build one per need
    (tests do, with ``load_entry_points=False`` and :meth:`add_plugin`), or use
    :func:`default_registry`."""

    def __init__(self, load_entry_points: bool = True):
        self.pm = pluggy.PluginManager("dita")
        self.pm.add_hookspecs(hookspecs)
        self.venues: dict[str, VenueEntry] = {}
        self.harnesses: dict[str, HarnessEntry] = {}
        self.refused: list[Refusal] = []
        self.excluded: list[tuple[str, str, str]] = []        # (entry point, distribution, variable)
        self.unknown_switches: list[tuple[str, str]] = []     # (variable, a name no plugin has)
        self._distributions: dict[str, str] = {}   # pluggy plugin name -> distribution
        self._loaded = False
        self._load_entry_points = load_entry_points

    # ------------------------------------------------------------------ loading

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if not self._load_entry_points:
            return
        from importlib.metadata import entry_points

        only, disabled = _names("DITA_LOAD_PLUGINS"), _names("DITA_DISABLE_PLUGINS") or set()
        seen: set[str] = set()
        for ep in entry_points(group="dita"):
            dist = ep.dist.name if ep.dist else ep.name
            version = ep.dist.version if ep.dist else ""
            keys = {_norm(ep.name), _norm(dist)}
            seen |= keys
            if (only is not None and not keys & only) or keys & disabled:
                # Remembered, so that asking for its venue says the variable left it out
                # rather than suggesting to install what is installed.
                var = "DITA_DISABLE_PLUGINS" if keys & disabled else "DITA_LOAD_PLUGINS"
                self.excluded.append((ep.name, dist, var))
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # any import failure is the plugin's, not ours
                self.refused.append(Refusal(ep.name, dist, version, (
                    f"plugin {dist!r} (entry point {ep.name!r}) cannot be imported: {type(exc).__name__}: {exc}. "
                    + _REFUSE_HINT.format(ep.name))))
                continue
            try:
                self.add_plugin(plugin, name=ep.name, distribution=dist, version=version)
            except PluginError as exc:
                self.refused.append(Refusal(ep.name, dist, version, f"{exc}. {_REFUSE_HINT.format(ep.name)}"))
        # A name in either variable that is no installed plugin is most likely a typo.
        for var, names in (("DITA_LOAD_PLUGINS", only or set()), ("DITA_DISABLE_PLUGINS", disabled)):
            for unknown in sorted(names - seen):
                self.unknown_switches.append((var, unknown))

    def add_plugin(self, plugin: Any, name: str, distribution: str | None = None, version: str = "") -> None:
        """Registers a plugin object with everything it registers, or nothing: raises
        :class:`PluginError` naming the distribution and the problem."""
        dist = distribution or name
        try:
            self.pm.register(plugin, name=name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            raise PluginError(f"plugin {dist!r} is refused: {exc}") from None
        try:
            try:
                # A hook implementation whose name is not a dita hook (a typo) fails here.
                self.pm.check_pending()
            except pluggy.PluginValidationError as exc:
                raise PluginError(f"plugin {dist!r} is refused: {exc}") from None
            if not self.pm.get_hookcallers(plugin):
                raise PluginError(f"plugin {dist!r} is refused: it implements no dita hook "
                                  "(Hint: mark its hook functions with @dita.hookimpl)")
            venues = self._collect(plugin, dist, version, "dita_register_venues", self.venues, self._check_venue,
                                   VenueEntry)
            harnesses = self._collect(plugin, dist, version, "dita_register_harnesses", self.harnesses,
                                      self._check_harness, HarnessEntry)
        except BaseException:
            self.pm.unregister(plugin)
            raise
        # Only now, with everything checked, does anything become visible.
        self.venues.update(venues)
        self.harnesses.update(harnesses)
        self._distributions[name] = dist

    def _collect(self, plugin, dist, version, hook_name, existing, check, entry_type) -> dict:
        what = "venue" if entry_type is VenueEntry else "harness"
        staged: dict = {}

        def register(name, factory) -> None:
            if not isinstance(name, str) or not name:
                raise PluginError(f"plugin {dist!r} is refused: {hook_name} registered a {what} named {name!r}; "
                                  "a name is a non-empty string")
            if name in existing or name in staged:
                owner = (existing.get(name) or staged[name]).distribution
                raise PluginError(f"plugin {dist!r} is refused: it registers {what} {name!r}, "
                                  f"already registered by {owner!r}")
            check(dist, name, factory)
            staged[name] = entry_type(name, factory, dist, version)

        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            if impl.plugin is plugin:
                try:
                    impl.function(*[{"register": register}[a] for a in impl.argnames])
                except PluginError:
                    raise
                except Exception as exc:
                    raise PluginError(f"plugin {dist!r} is refused: {hook_name} raised "
                                      f"{type(exc).__name__}: {exc}") from None
        return staged

    @staticmethod
    def _check_venue(dist: str, name: str, factory: Any) -> None:
        if inspect.isclass(factory):
            if not issubclass(factory, Venue):
                raise PluginError(f"plugin {dist!r} is refused: venue {name!r} ({factory.__name__}) "
                                  "is not a subclass of dita.Venue")
            missing = sorted(getattr(factory, "__abstractmethods__", ()))
            if missing:
                formatters = [m for m in missing if m in ("format_price", "format_quantity")]
                raise PluginError(
                    f"plugin {dist!r} is refused: venue {name!r} ({factory.__name__}) does not implement "
                    f"{', '.join(missing)}"
                    + (f"; a venue must declare its {' and '.join(formatters)} formatter"
                       f"{'s' if len(formatters) > 1 else ''}" if formatters else ""))
            caps = factory.capabilities
            if isinstance(caps, str) or not all(isinstance(c, str) for c in caps):
                raise PluginError(f"plugin {dist!r} is refused: venue {name!r} declares capabilities {caps!r}; "
                                  "capabilities are a set of names")
            unknown = sorted(set(caps) - set(KNOWN_CAPABILITIES))
            if unknown:
                raise PluginError(f"plugin {dist!r} is refused: venue {name!r} declares unknown capabilities "
                                  f"{', '.join(unknown)} (known: {', '.join(KNOWN_CAPABILITIES)})")
        elif not callable(factory):
            raise PluginError(f"plugin {dist!r} is refused: the factory of venue {name!r} is not callable")

    @staticmethod
    def _check_harness(dist: str, name: str, factory: Any) -> None:
        from dita.conformance import VenueHarness

        if inspect.isclass(factory):
            if not issubclass(factory, VenueHarness):
                raise PluginError(f"plugin {dist!r} is refused: harness {name!r} ({factory.__name__}) "
                                  "is not a subclass of dita.conformance.VenueHarness")
            missing = sorted(getattr(factory, "__abstractmethods__", ()))
            if missing:
                raise PluginError(f"plugin {dist!r} is refused: harness {name!r} ({factory.__name__}) "
                                  f"does not implement {', '.join(missing)}")
        elif not callable(factory):
            raise PluginError(f"plugin {dist!r} is refused: the factory of harness {name!r} is not callable")

    # ------------------------------------------------------------------ reading

    def entries(self) -> dict[str, VenueEntry]:
        """Every registered venue by name."""
        self._load()
        return dict(self.venues)

    def harness_entries(self) -> dict[str, HarnessEntry]:
        """Every registered conformance harness by venue name."""
        self._load()
        return dict(self.harnesses)

    def exclusions(self) -> list[dict]:
        """The installed plugins that DITA_LOAD_PLUGINS / DITA_DISABLE_PLUGINS left out, and
        which variable did (``plugin``, ``distribution``, ``variable``, ``value``)."""
        self._load()
        return [{"plugin": ep, "distribution": dist, "variable": var, "value": os.environ.get(var, "")}
                for ep, dist, var in self.excluded]

    def refusals(self) -> list[Refusal]:
        """The plugins that were refused, with the reason."""
        self._load()
        return list(self.refused)

    def _unknown(self, what: str, name: str, known) -> PluginError:
        known_text = ", ".join(sorted(known)) or "none installed"
        text = f"no {what} named {name!r} (registered: {known_text})"
        if self.refused:
            text += "; refused plugins: " + "; ".join(r.message for r in self.refused)
        # The plugin may be installed and left out on purpose: say which variable did it.
        likely = {_norm(name), _norm(f"dita-{name}")}
        mine = [(ep, dist, var) for ep, dist, var in self.excluded if likely & {_norm(ep), _norm(dist)}]
        for ep, dist, var in mine:
            text += (f"; plugin {dist!r} (entry point {ep!r}) is installed but not loaded: "
                     + (f"DITA_DISABLE_PLUGINS={os.environ.get(var, '')!r} names it" if var == "DITA_DISABLE_PLUGINS"
                        else f"DITA_LOAD_PLUGINS={os.environ.get(var, '')!r} does not name it"))
        others = [f"{dist!r}" for ep, dist, var in self.excluded if (ep, dist, var) not in mine]
        if others:
            text += f"; not loaded because of DITA_LOAD_PLUGINS / DITA_DISABLE_PLUGINS: {', '.join(others)}"
        for var, unknown in self.unknown_switches:
            text += f"; {var} names {unknown!r}, which is no installed plugin"
        if not self.refused and not mine:
            text += f"; install its plugin package, e.g. dita-{name}"
        return PluginError(text)

    def create(self, name: str, options: dict | None = None) -> Venue:
        """A new venue ``name`` built with ``options``."""
        self._load()
        entry = self.venues.get(name)
        if entry is None:
            raise self._unknown("venue", name, self.venues)
        try:
            venue = entry.factory(**(options or {}))
        except (TypeError, ValueError) as exc:  # an unknown option, or a value it cannot use
            given = ", ".join(sorted(options or {})) or "none"
            raise InvalidInputError(f"venue {name!r} (plugin {entry.distribution!r}) refused its venue_options "
                                    f"(given: {given}): {exc}") from exc
        if not isinstance(venue, Venue):
            raise PluginError(f"plugin {entry.distribution!r}: venue {name!r} factory returned "
                              f"{type(venue).__name__}, not a dita.Venue")
        venue.name = name
        return venue

    def create_harness(self, name: str):
        """A new conformance harness for the venue ``name``."""
        from dita.conformance import VenueHarness

        self._load()
        entry = self.harnesses.get(name)
        if entry is None:
            raise self._unknown("conformance harness", name, self.harnesses)
        harness = entry.factory()
        if not isinstance(harness, VenueHarness):
            raise PluginError(f"plugin {entry.distribution!r}: harness {name!r} factory returned "
                              f"{type(harness).__name__}, not a dita.conformance.VenueHarness")
        if not getattr(harness, "name", None):
            harness.name = name
        return harness

    def add_commands(self, subparsers) -> list[str]:
        """Lets every plugin add its subcommands to ``dita`` (hook ``dita_add_commands``).
        Returns one warning per command skipped: a command whose name (or alias) ``dita``
        or an earlier plugin already uses is skipped alone, and a plugin whose hook raises
        loses the commands it added, so one plugin's mistake never hides another's commands
        (argparse would otherwise stop at the first clash)."""
        self._load()
        warnings: list[str] = []
        owners = {name: "built in" for name in subparsers.choices}
        for impl in self.pm.hook.dita_add_commands.get_hookimpls():
            dist = self._distributions.get(self.pm.get_name(impl.plugin) or "", "?")
            guarded = _GuardedSubparsers(subparsers, dist, owners, warnings)
            try:
                impl.function(*[{"subparsers": guarded}[a] for a in impl.argnames])
            except Exception as exc:
                added = guarded.remove_added()
                dropped = f" (its commands {', '.join(map(repr, added))} are left out)" if added else ""
                warnings.append(f"plugin {dist!r} could not add its commands: {type(exc).__name__}: {exc}{dropped}")
        return warnings


class _GuardedSubparsers:
    """What a plugin's ``dita_add_commands`` receives: ``dita``'s subparsers action, except
    that a command name already in use is refused with a warning (the plugin gets a detached
    parser to configure, so its other commands are still added) instead of argparse's error."""

    def __init__(self, action, dist: str, owners: dict[str, str], warnings: list[str]):
        self._action, self._dist, self._owners, self._warnings = action, dist, owners, warnings
        self._added: list[str] = []

    def add_parser(self, name, **kwargs):
        import argparse

        names = [name, *kwargs.get("aliases", ())]
        taken = [n for n in names if n in self._action.choices]
        if taken:
            owner = self._owners.get(taken[0], "?")
            owner = "built in" if owner == "built in" else f"added by plugin {owner!r}"
            self._warnings.append(f"plugin {self._dist!r}: command {name!r} is skipped: `dita {taken[0]}` already "
                                  f"exists ({owner}). Hint: the plugin must use another name")
            # Never attached to dita: whatever the plugin sets on it has no effect.
            return argparse.ArgumentParser(prog=f"dita {name}", add_help=False)
        parser = self._action.add_parser(name, **kwargs)
        for n in names:
            self._owners[n] = self._dist
        self._added.extend(names)
        return parser

    def remove_added(self) -> list[str]:
        """Takes back the commands this plugin added (its hook failed part way: a half-built
        command must not be offered)."""
        for n in self._added:
            self._action.choices.pop(n, None)
            self._owners.pop(n, None)
        # The help listing (argparse keeps one pseudo-action per command, named by dest).
        self._action._choices_actions[:] = [a for a in self._action._choices_actions if a.dest not in self._added]
        added, self._added = self._added, []
        return added

    def __getattr__(self, attr):
        return getattr(self._action, attr)


_default: VenueRegistry | None = None


def default_registry() -> VenueRegistry:
    """The process-wide registry, loaded from the installed plugins on first use."""
    global _default
    if _default is None:
        _default = VenueRegistry()
    return _default
