"""The ``dita`` command."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import dita
from dita import cli_journal, spectools
from dita.plugins import default_registry
from dita.spec import packaged_spec_path


def demo(args: argparse.Namespace) -> int:
    """A realistic session end to end, journaled and shown as it happens: a LIMIT entry that
    fills partly, a cancel of the rest, a refused intent, a two-leg exit with a partial fill,
    a duplicate venue event ignored; then the journal is replayed. Runs on the BingX
    simulator when dita-bingx is installed, else on the mock."""
    from dita.demo import run

    return run(venue=args.venue, journal=args.journal)


def _instruments(entry) -> tuple[dict | None, str | None]:
    """A venue's instruments, from a venue built with no options (None and why if it cannot be)."""
    try:
        venue = entry.factory()
        return {a: {"price_increment": str(i.price_increment), "size_increment": str(i.size_increment),
                    "min_size": str(i.min_size), "min_notional": None if i.min_notional is None else str(i.min_notional)}
                for a, i in venue.instruments().items()}, None
    except Exception as exc:  # a venue that needs options or a network says so in the listing
        return None, f"unavailable without venue options ({type(exc).__name__}: {exc})"


def venues(args: argparse.Namespace) -> int:
    """List every installed venue: its distribution, version, instruments and capabilities."""
    registry = default_registry()
    harnesses = registry.harness_entries()
    rows = []
    for name, entry in sorted(registry.entries().items()):
        instruments, why = _instruments(entry)
        caps = entry.capabilities
        rows.append({"venue": name, "distribution": entry.distribution, "version": entry.version,
                     "capabilities": sorted(caps) if caps is not None else None,
                     "instruments": instruments, "instruments_error": why, "harness": name in harnesses})
    refused = [{"plugin": r.plugin, "distribution": r.distribution, "version": r.version, "message": r.message}
               for r in registry.refusals()]
    excluded = registry.exclusions()
    if args.json:
        print(json.dumps({"venues": rows, "refused": refused, "excluded": excluded}, indent=2))
    else:
        from rich.table import Table

        table = Table(title="DITA venues")
        for column in ("venue", "distribution", "version", "instruments (tick / step / min size)", "capabilities",
                       "harness"):
            table.add_column(column)
        for r in rows:
            if r["instruments"] is None:
                instruments = r["instruments_error"]
            else:
                instruments = "\n".join(f"{a} ({i['price_increment']} / {i['size_increment']} / {i['min_size']})"
                                         for a, i in r["instruments"].items())
            caps = ", ".join(r["capabilities"]) if r["capabilities"] is not None else "(not declared)"
            table.add_row(r["venue"], r["distribution"], r["version"], instruments, caps,
                          "yes" if r["harness"] else "no")
        cli_journal.PipeConsole(soft_wrap=False).print(table)
        # Installed but left out on purpose: listed, so that a missing venue is explained.
        for e in excluded:
            named = "names it" if e["variable"] == "DITA_DISABLE_PLUGINS" else "does not name it"
            print(f"not loaded: plugin {e['distribution']!r} (entry point {e['plugin']!r}): "
                  f"{e['variable']}={e['value']!r} {named}")
        if not rows:
            print("no venue installed: install a venue plugin, e.g. `pip install ./plugins/dita-mock`"
                  if not excluded else "no venue loaded")
    for r in refused:
        print(f"dita: refused: {r['message']}", file=sys.stderr)
    return 1 if refused else 0


def spec_check(args: argparse.Namespace) -> int:
    """Check specs: schema, semantics and lint; every problem at once. Exit 1 on any problem."""
    paths = args.paths or [str(packaged_spec_path())]
    failed = False
    for path in paths:
        problems = spectools.check_file(path)
        if problems:
            failed = True
            print(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} in {path}")
            for p in problems:
                print(f"  {p}")
        else:
            desc = dita.load_machine(path).describe()
            takes = sum(c[0] == "take" for s in desc["states"] for cands in s["on"].values() for c in cands)
            print(f"{path}: OK ({len(desc['states'])} states, {len(desc['events'])} events, {takes} transitions)")
    return 1 if failed else 0


def spec_graph(args: argparse.Namespace) -> int:
    """Draw the lifecycle of a spec (default: the packaged one) as Mermaid, Graphviz dot or SVG."""
    machine = dita.load_machine(args.path)
    text = spectools.GRAPH_FORMATS[args.format](machine)
    if args.output:
        try:
            Path(args.output).write_text(text)
        except OSError as exc:
            raise dita.DitaError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    else:
        sys.stdout.write(text)
    return 0


def conformance(args: argparse.Namespace) -> int:
    """Run the conformance suite against installed venues; print a per-venue summary."""
    from dita.conformance.runner import run

    if args.spec is not None:
        dita.load_machine(args.spec)   # a spec that does not load is said in one line, before the suite runs
    return run(venue=args.venue, spec=args.spec, pytest_args=args.pytest_args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dita", description="DITA execution kernel")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("demo", help="run a journaled session on a simulated venue", description=demo.__doc__)
    p.add_argument("--venue", metavar="NAME", help="a venue with a harness (default: bingx if installed, else mock)")
    p.add_argument("--journal", metavar="PATH", help="journal file to create (default: a new temporary directory)")
    p.set_defaults(func=demo)
    cli_journal.add_commands(sub)
    p = sub.add_parser("venues", help="list installed venues", description=venues.__doc__)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=venues)
    p = sub.add_parser("spec", help="check or draw a spec", description="Spec tooling.")
    spec_sub = p.add_subparsers(dest="spec_command", required=True, metavar="SUBCOMMAND")
    q = spec_sub.add_parser("check", help="check specs and print every problem", description=spec_check.__doc__)
    q.add_argument("paths", nargs="*", metavar="PATH", help="spec files (default: the packaged spec/kernel.yaml)")
    q.set_defaults(func=spec_check)
    q = spec_sub.add_parser("graph", help="draw a spec's lifecycle", description=spec_graph.__doc__)
    q.add_argument("path", nargs="?", metavar="PATH", help="spec file (default: the packaged spec/kernel.yaml)")
    q.add_argument("--format", choices=sorted(spectools.GRAPH_FORMATS), default="mermaid")
    q.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    q.set_defaults(func=spec_graph)
    p = sub.add_parser("conformance", help="run the conformance suite against installed venues",
                       description=conformance.__doc__)
    p.add_argument("--venue", metavar="NAME", help="only this venue (default: every venue with a harness)")
    p.add_argument("--spec", metavar="PATH", help="run against this spec instead of the packaged one")
    p.add_argument("pytest_args", nargs="*", metavar="PYTEST_ARG",
                   help="extra pytest arguments, after `--` (e.g. -- -x -k cancel)")
    p.set_defaults(func=conformance)
    # A broken plugin must not take the built-in commands, or another plugin's, down with it:
    # each command it cannot add is skipped with a warning.
    for warning in default_registry().add_commands(sub):
        print(f"dita: warning: {warning}", file=sys.stderr)
    return parser


# The exit status of a process that SIGPIPE ended (128 + 13), what `dita ... | head` sees
# from any well-behaved CLI once the reader has gone.
EXIT_BROKEN_PIPE = 141


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        try:
            return args.func(args)
        except dita.DitaError as exc:
            print(f"dita: {exc}", file=sys.stderr)
            return 1
        finally:
            # Output still buffered must meet a closed pipe here, not at interpreter exit
            # where Python can only print "Exception ignored ... BrokenPipeError".
            sys.stdout.flush()
    except BrokenPipeError:
        # The reader closed the pipe (`dita venues --json | head -1`): nobody is left to read
        # the rest, so stop quietly. Point stdout at /dev/null so that the final flush at
        # exit does not raise the same error again.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):   # stdout is not a real file (captured in tests)
            pass
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
