"""One exception family for DITA. Each also subclasses the stdlib exception a caller
would naturally catch (``except ValueError`` keeps working)."""

from __future__ import annotations


class DitaError(Exception):
    """Base of every error DITA raises on purpose."""


class SpecError(DitaError, ValueError):
    """A spec that cannot be used. ``problems`` lists every one found, each a
    :class:`SpecProblem` with its YAML path, line and stable code."""

    def __init__(self, source: str, problems: list["SpecProblem"]):
        self.source = source
        self.problems = list(problems)
        lines = [f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''} in {source}"]
        for p in self.problems:
            lines.append(f"  {p}")
        super().__init__("\n".join(lines))


class SpecProblem:
    """One problem in a spec: ``path`` (dotted), ``line`` (1-based, or None), ``code``, ``message``, ``hint``."""

    __slots__ = ("path", "line", "code", "message", "hint")

    def __init__(self, path: str, code: str, message: str, line: int | None = None, hint: str | None = None):
        self.path, self.code, self.message, self.line, self.hint = path, code, message, line, hint

    def __repr__(self) -> str:
        return f"SpecProblem({self.path!r}, {self.code!r}, line={self.line})"

    def __str__(self) -> str:
        where = f"{self.path} (line {self.line})" if self.line else self.path
        text = f"{where}: {self.message} [{self.code}]"
        if self.hint:
            text += f"\n      Hint: {self.hint}"
        return text


class InvalidInputError(DitaError, ValueError):
    """An argument of the wrong type or shape: an unknown slot, a malformed intent or
    event. Raised before anything is changed."""


class ReconcileError(DitaError, ValueError):
    """``reconcile``/``restore`` refused: ``violations`` names every problem. Nothing changed."""

    def __init__(self, violations: list[str]):
        self.violations = list(violations)
        super().__init__(
            f"{len(self.violations)} violation(s); nothing changed:\n  " + "\n  ".join(self.violations)
        )


class PluginError(DitaError, ImportError):
    """A venue plugin that cannot be loaded or registered."""


class VenueError(DitaError):
    """A venue failed to perform a request (raised by venue plugins)."""
