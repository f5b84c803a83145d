"""DITA: an execution kernel for crypto perpetual futures.

A generic Rust state-machine engine (``dita._engine``) runs the trade-slot lifecycle
written in ``spec/kernel.yaml``; :class:`Kernel` drives it through a venue plugin.
"""

try:
    from dita import _engine
except ImportError as exc:  # running from a source checkout without a build
    raise ImportError(
        "dita's compiled engine (dita._engine) is missing: run `pip install .` (or `maturin develop`) "
        "and run Python outside the source folder"
    ) from exc

from dita.errors import (
    DitaError,
    InvalidInputError,
    PluginError,
    ReconcileError,
    SpecError,
    SpecProblem,
    VenueError,
)
from dita.hookspecs import hookimpl
from dita.journal import Journal, JournalError
from dita.kernel import Kernel
from dita.spec import load_machine, packaged_spec_path
from dita.types import (
    AccountView,
    Instrument,
    KernelIntent,
    KernelOutcome,
    Order,
    OrderProgress,
    OrderView,
    SlotView,
    VenueEvent,
)
from dita.venue import Venue

EngineError = _engine.EngineError
Machine = _engine.Machine
Runtime = _engine.Runtime
__version__ = _engine.__version__

__all__ = [
    "AccountView", "DitaError", "EngineError", "Instrument", "InvalidInputError", "Journal", "JournalError", "Kernel",
    "KernelIntent",
    "KernelOutcome", "Machine", "Order", "OrderProgress", "OrderView", "PluginError", "ReconcileError", "Runtime", "SlotView",
    "SpecError", "SpecProblem", "Venue", "VenueError", "VenueEvent", "hookimpl", "load_machine",
    "packaged_spec_path",
]
