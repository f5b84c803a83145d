"""docs/adding-a-venue.md, followed: the paper venue it builds is installed (tox does it),
found through its entry point, and passes `dita conformance --venue paper`; a variant
with wrong rounding fails exactly the expected checks, one without a formatter is
refused by name. The broken variants are put on sys.path with a .dist-info of their own
(no pip), in the subprocess only."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import run_dita
from dita.cli import main

ROOT = Path(__file__).resolve().parent.parent
PAPER = ROOT / "tests" / "venues" / "dita-paper"
BROKEN = ROOT / "tests" / "venues" / "broken"
DOC = ROOT / "docs" / "adding-a-venue.md"


@pytest.fixture
def broken_site(tmp_path):
    """The two broken paper variants, importable and discoverable through PYTHONPATH."""
    site = tmp_path / "site"
    for variant in ("badround", "noformatter"):
        info = site / f"dita_paper_{variant}-0.1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: dita-paper-{variant}\nVersion: 0.1.0\n")
        (info / "entry_points.txt").write_text(f"[dita]\npaper-{variant} = dita_paper_{variant}\n")
    return {"PYTHONPATH": f"{site}:{BROKEN}"}


def test_the_tutorial_shows_the_tested_package():
    doc = DOC.read_text()
    package = (PAPER / "dita_paper" / "__init__.py").read_text() + (PAPER / "pyproject.toml").read_text()
    blocks = re.findall(r"```(?:python|toml)\n(.*?)```", doc, re.S)
    assert len(blocks) >= 6
    for block in blocks:
        if block.startswith("from dita.conformance.suite import"):
            assert block in (ROOT / "tests" / "test_conformance.py").read_text().replace("  # noqa: E402,F401,F403",
                                                                                        "  # noqa: F401,F403")
        else:
            assert block in package, f"docs/adding-a-venue.md shows code the paper venue does not have:\n{block}"


def test_the_paper_venue_is_found_through_its_entry_point(capsys):
    assert main(["venues", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    paper = next(v for v in listing["venues"] if v["venue"] == "paper")
    assert (paper["distribution"], paper["version"], paper["capabilities"], paper["harness"]) == (
        "dita-paper", "0.1.0", ["LIMIT", "MARKET", "reduce_only"], True)
    assert paper["instruments"]["SOL-USDT"] == {"price_increment": "0.01", "size_increment": "0.1",
                                                "min_size": "0.1", "min_notional": "5"}
    assert listing["refused"] == []


def test_dita_venues_draws_a_table(capsys):
    assert main(["venues"]) == 0
    table = capsys.readouterr().out
    for text in ("DITA venues", "paper", "dita-paper", "SOL-USDT", "mock", "dita-mock", "reduce_only"):
        assert text in table


def test_dita_conformance_passes_for_the_paper_venue(tmp_path):
    run = run_dita("conformance", "--venue", "paper", cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:]
    summary = re.search(r"venue paper: (\d+) passed, 0 failed, (\d+) skipped\n  transitions covered: (\d+)/(\d+)",
                        run.stdout)
    assert summary, run.stdout[-2000:]
    assert int(summary[3]) == int(summary[4]) - int(summary[2])  # only the unreachable ones are skipped
    assert "[mock]" not in run.stdout


def test_wrong_rounding_fails_exactly_the_formatter_checks(tmp_path, broken_site):
    run = run_dita("conformance", "--venue", "paper-badround", cwd=tmp_path, env=broken_site)
    assert run.returncode == 1, run.stdout[-3000:]
    failed = sorted(line.split("::")[1] for line in run.stdout.splitlines() if line.startswith("FAILED "))
    assert failed == ["test_limit_prices_are_on_the_grid_and_never_move_against_the_trader[paper-badround]",
                      "test_sizes_are_rounded_down_to_the_size_step[paper-badround]",
                      "test_sizes_below_the_minimum_are_refused_before_anything_is_sent[paper-badround]"]
    # each says what went wrong: a buy rounded up to the nearest tick, a size rounded up,
    # half the minimum size rounded up to the minimum and sent
    assert "AssertionError: a BUY at 139.5263 went out at 139.53\n" in run.stdout
    assert "AssertionError: size 0.537 went out as 0.6\n" in run.stdout
    assert "assert (True, 'OK', 'POSITION_OPEN') == (False, 'BELO...SIZE', 'IDLE')" in run.stdout
    assert "venue paper-badround: " in run.stdout and ", 3 failed, " in run.stdout


def test_a_venue_without_a_formatter_is_refused_by_name(tmp_path, broken_site):
    message = ("plugin 'dita-paper-noformatter' is refused: venue 'paper-noformatter' (NoQuantityFormatter) does not "
               "implement format_quantity; a venue must declare its format_quantity formatter. Hint: fix or uninstall "
               "it, or skip it with DITA_DISABLE_PLUGINS=paper-noformatter")
    listing = run_dita("venues", "--json", cwd=tmp_path, env=broken_site)
    assert listing.returncode == 1
    assert listing.stderr == f"dita: refused: {message}\n"
    data = json.loads(listing.stdout)
    assert "paper-noformatter" not in [v["venue"] for v in data["venues"]]
    assert [r["distribution"] for r in data["refused"]] == ["dita-paper-noformatter"]
    run = run_dita("conformance", "--venue", "paper-noformatter", cwd=tmp_path, env=broken_site)
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr.startswith("dita: no conformance harness named 'paper-noformatter' (registered: ")
    assert run.stderr.endswith(f"refused plugins: {message}\n")
    disabled = run_dita("venues", cwd=tmp_path, env={**broken_site, "DITA_DISABLE_PLUGINS": "paper-noformatter"})
    assert disabled.returncode == 0 and disabled.stderr == ""
    # Left out on purpose, and listed as such (it used to vanish from the listing).
    assert disabled.stdout.rstrip("\n").splitlines()[-1] == (
        "not loaded: plugin 'dita-paper-noformatter' (entry point 'paper-noformatter'): "
        "DITA_DISABLE_PLUGINS='paper-noformatter' names it")
    only = run_dita("venues", "--json", cwd=tmp_path, env={**broken_site, "DITA_LOAD_PLUGINS": "mock"})
    data = json.loads(only.stdout)
    assert only.returncode == 0 and [v["venue"] for v in data["venues"]] == ["mock"]
    left_out = {e["plugin"]: (e["variable"], e["value"]) for e in data["excluded"]}
    assert left_out["paper-noformatter"] == left_out["bingx"] == ("DITA_LOAD_PLUGINS", "mock")


def test_the_paper_venue_honours_the_reduce_only_it_declares():
    from decimal import Decimal as D

    import dita
    from dita_paper import PaperVenue

    k = dita.Kernel(venue=PaperVenue(), slots=1, capital=D("1000"))
    out = k.process_intent(dita.KernelIntent("ENTER", 0, "e1", trade_id="t1", asset="SOL-USDT", side="LONG",
                                             target_size="1.0"))
    assert (out.state, k.venue.positions[("SOL-USDT", "LONG")]) == ("POSITION_OPEN", 10)  # lots of 0.1

    def close(coid, qty):
        return k.venue.submit(dita.Order(coid, "SOL-USDT", "SELL", "LONG", "LIMIT", D(qty), D("200"), True, None,
                                         "EXIT", 0, "t1"))

    assert [e.kind for e in close("r1", "0.6")] == ["ORDER_ACK"]  # rests above the market
    # 0.6 of the 1.0 is already being closed: 0.5 more would close more than is held.
    [rejected] = close("r2", "0.5")
    assert (rejected.kind, rejected.reason) == ("REJECT", "reduce-only order exceeds the position left to close")
    assert [e.kind for e in close("r3", "0.4")] == ["ORDER_ACK"]
