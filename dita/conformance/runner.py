"""``dita conformance``: runs the packaged conformance tests with pytest, in this process."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from dita.conformance import SUITE_PATH
from dita.errors import DitaError
from dita.plugins import default_registry


def run(venue: str | None = None, spec: str | None = None, pytest_args=()) -> int:
    """Runs the suite for ``venue`` (None: every venue with a harness) against ``spec``
    (None: the packaged one). Returns 0 when every test passed, else pytest's exit code
    (1: a test failed)."""
    registry = default_registry()
    harnesses = registry.harness_entries()
    if venue is not None and venue not in harnesses:
        # Said here in one line, rather than as a pytest usage error.
        registry.create_harness(venue)
    if venue is None and not harnesses:
        refused = "".join(f"; refused: {r.message}" for r in registry.refusals())
        raise DitaError("no installed venue registered a conformance harness" + refused)
    if spec is not None:
        if not Path(spec).is_file():
            raise DitaError(f"--spec {spec}: no such file")
        spec = str(Path(spec).resolve())
    import pytest

    args = [SUITE_PATH, "-q", "-p", "no:cacheprovider", "-rfE",
            "-W", "ignore::pytest.PytestAssertRewriteWarning",  # dita is imported before pytest starts
            # the user's pytest configuration (addopts, filterwarnings) is not the suite's
            "-c", os.devnull, "--rootdir", str(Path(SUITE_PATH).parent)]
    if venue is not None:
        args += ["--dita-venue", venue]
    if spec is not None:
        args += ["--dita-spec", spec]
    code = pytest.main(args + list(pytest_args))
    sys.stdout.flush()
    return int(code)
