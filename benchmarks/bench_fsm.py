#!/usr/bin/env python3
"""bench_fsm.py - cost per applied event of DITA's engine and kernel, side by side with the
lifecycle-FSM anchors of anchors_fsm.py (NautilusTrader order.apply, pytransitions,
python-statemachine, dict FSMs, the PyO3 call floor), in one run.

DITA rows (F = --fills; every DITA row checks afterwards that each slot ended in the
expected state and that the account paid exactly one fee per fill):

  dita rust apply (full)     fsm_engine Runtime::apply in Rust, no Python
                             (fsm_engine/examples/bench_apply.rs, built with cargo --release),
                             the anchors' whole sequence, intents included (ENTER ... [EXIT ...])
  dita rust apply (venue)    the same, venue events only, as the kernel rows below
  dita Runtime.apply (py)    dita._engine.Runtime.apply(slot, kind, payload) called from Python,
                             the anchors' whole sequence, payloads built before the timer
  dita kernel apply          Kernel.on_venue_event(event), VenueEvent objects built before the timer
  dita kernel build+apply    Kernel.on_venue_event(VenueEvent(...)), each event built in the timed
                             loop as an adapter would

The "full" rows apply the same events as the anchors (fill: 2+F, cancel: 3, roundtrip: 5+F per
sequence). The "venue"/kernel rows time venue events only (Kernel.on_venue_event takes no
intents); their intents go through Kernel.process_intent before the timer, on a mock venue
that answers nothing, so that the acknowledgement is a timed venue event too (fill: 1+F,
cancel: 2, roundtrip: 3+F per sequence); see the legend printed under the table and
benchmarks/dita_impls.py.

The anchors' harness is imported from --anchors (default ../shared/bench/anchors_fsm.py next
to the repository) and run in-process with the Python DITA rows as --extra implementations:
same timing (perf_counter_ns around n sequences, gc off, --warmup untimed rounds then the
median of --repeats rounds, n lowered for slow implementations to keep a round near
--round-s seconds). The Rust rows use the same n, repeats and warmup.

Defaults are chosen to keep the whole run near 2-3 minutes on 2 cores; for the anchors'
own defaults pass --n 20000 --repeats 7 --round-s 1.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import importlib.util
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_ANCHORS = REPO.parent / "shared" / "bench" / "anchors_fsm.py"
WORKLOADS = ["fill", "cancel", "roundtrip"]
DITA_EXTRAS = ["DitaEngineRuntime", "DitaKernelPrebuilt", "DitaKernelBuildInLoop"]
# Run with the anchors only: NautilusTrader with one set of events per order, as the kernel has.
ANCHOR_EXTRAS = ["NautilusApplyPerOrder"]

if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


def _say(text: str = "") -> None:
    print(text, flush=True)


def _git_rev() -> str:
    try:
        rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + ("+dirty" if dirty else "") if rev else "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def _check_dita() -> str | None:
    """None if the installed dita is usable, else why not."""
    try:
        import dita  # noqa: F401
        import dita_mock  # noqa: F401
    except ImportError as exc:
        return (f"dita is not importable ({exc}); install it with "
                f"`pip install {REPO} {REPO / 'plugins' / 'dita-mock'}` and run this script by its path")
    return None


def _stale_install_note() -> str | None:
    """The installed package is what is measured; say so if it is not the checkout's spec."""
    import dita

    try:
        installed = dita.packaged_spec_path().read_text()
        here = (REPO / "spec" / "kernel.yaml").read_text()
    except OSError:
        return None
    if installed != here:
        return (f"NOTE: the installed dita ({dita.packaged_spec_path()}) has a different kernel.yaml than this "
                f"checkout; the installed one is measured. Reinstall: pip install {REPO} {REPO / 'plugins' / 'dita-mock'}")
    return None


def write_inputs(directory: Path, fills: int, workloads) -> tuple[Path, Path]:
    """The spec as JSON (Rust reads no YAML) and the plans with their engine payloads."""
    import dita
    from dita.spec import parse

    import dita_impls

    src = dita.packaged_spec_path()
    doc, _root = parse(src.read_text(), str(src))
    doc = {k: v for k, v in doc.items() if k != "templates"}  # as dita.spec.compile_text does
    spec = directory / "kernel.json"
    spec.write_text(json.dumps(doc))
    plans = directory / "plans.json"
    plans.write_text(dita_impls.plans_json(fills, workloads))
    return spec, plans


# ---------------------------------------------------------------------------------------
# Rust
# ---------------------------------------------------------------------------------------

_RESULT = re.compile(r"^RESULT (.*)$")


def run_rust(args, spec: Path, plans: Path) -> tuple[list[dict], list[str]]:
    cargo = args.cargo or shutil.which("cargo") or str(Path.home() / ".cargo" / "bin" / "cargo")
    if not Path(cargo).exists() and not shutil.which(cargo):
        return [], ["skipped the Rust rows: cargo not found (give --cargo PATH)"]
    base = [cargo, "run", "--release", "--quiet", "-p", "fsm_engine", "--example", "bench_apply"]
    _say("# building fsm_engine/examples/bench_apply.rs: cargo build --release -p fsm_engine --example bench_apply")
    t0 = time.perf_counter()
    b = subprocess.run([cargo, "build", "--release", "--quiet", "-p", "fsm_engine", "--example", "bench_apply"],
                       cwd=REPO, capture_output=True, text=True)
    if b.returncode != 0:
        return [], [f"skipped the Rust rows: cargo build failed:\n{b.stderr.strip()}"]
    _say(f"# built in {time.perf_counter() - t0:.1f}s")
    cmd = base + ["--", str(spec), str(plans), "--n", str(args.n), "--repeats", str(args.repeats),
                  "--warmup", str(args.warmup)]
    _say("# " + " ".join(cmd[1:]))
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if r.returncode != 0:
        return [], [f"the Rust benchmark failed (exit {r.returncode}):\n{r.stdout}{r.stderr.strip()}"]
    rows = []
    for line in r.stdout.splitlines():
        _say(line)
        m = _RESULT.match(line)
        if not m:
            continue
        kv = dict(part.split("=", 1) for part in m.group(1).split())
        rows.append({
            "workload": kv["workload"],
            "impl": f"dita rust apply ({kv['mode']})",
            "n": int(kv["n"]),
            "events_per_seq": int(kv["events_per_seq"]),
            "ns_per_event_median": float(kv["ns_per_event_median"]),
            "ns_per_event_min": float(kv["min"]),
            "ns_per_event_max": float(kv["max"]),
            "events_per_s_median": 1e9 / float(kv["ns_per_event_median"]),
            "ns_per_seq_median": float(kv["ns_per_event_median"]) * int(kv["events_per_seq"]),
        })
    return rows, []


# ---------------------------------------------------------------------------------------
# Python: the anchors' harness, or a minimal stand-in when it is absent
# ---------------------------------------------------------------------------------------


def load_anchors(path: Path):
    spec = importlib.util.spec_from_file_location("anchors_fsm", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["anchors_fsm"] = mod
    spec.loader.exec_module(mod)
    return mod


def run_anchors(anchors, args, out_json: Path) -> list[dict]:
    argv = ["--n", str(args.n), "--repeats", str(args.repeats), "--warmup", str(args.warmup), "--fills",
            str(args.fills), "--workloads", ",".join(args.workloads), "--round-s", str(args.round_s),
            "--json", str(out_json)]
    for cls in DITA_EXTRAS + ANCHOR_EXTRAS:
        argv += ["--extra", f"dita_impls:{cls}"]
    if args.gc:
        argv.append("--gc")
    if args.only:
        argv += ["--only", args.only]
    _say("# anchors_fsm.py " + " ".join(argv))
    rc = anchors.main(argv)
    if rc:
        raise SystemExit(f"anchors_fsm.py exited with {rc}")
    return json.loads(out_json.read_text())["results"]


class _Workload:
    def __init__(self, name: str, fills: int):
        self.name, self.fills = name, fills


def run_standalone(args) -> list[dict]:
    """The DITA Python rows alone, timed as anchors_fsm.py times (without its n calibration)."""
    import dita_impls

    results = []
    for wname in args.workloads:
        wl = _Workload(wname, args.fills)
        for cls in DITA_EXTRAS:
            impl = getattr(dita_impls, cls)()
            if args.only and not any(t and t in impl.name for t in args.only.split(",")):
                continue
            samples, events = [], 0
            for r in range(args.warmup + args.repeats):
                run, check = impl.prepare(wl, args.n)
                gc.collect()
                if not args.gc:
                    gc.disable()
                try:
                    t0 = time.perf_counter_ns()
                    events = run()
                    t1 = time.perf_counter_ns()
                finally:
                    gc.enable()
                check()
                if r >= args.warmup:
                    samples.append((t1 - t0) / events)
            med = statistics.median(samples)
            res = {"workload": wname, "impl": impl.name, "n": args.n, "events_per_seq": events // args.n,
                   "ns_per_event_median": med, "ns_per_event_min": min(samples), "ns_per_event_max": max(samples),
                   "events_per_s_median": 1e9 / med, "ns_per_seq_median": med * (events // args.n)}
            results.append(res)
            _say(f"# {wname:9} {impl.name:26} {res['events_per_seq']:>3} ev/seq  {med:>9,.0f} ns/event")
    return results


# ---------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------

REFS = [("nautilus-cy apply", "x nt-cy apply"), ("nautilus-cy build+apply", "x nt-cy build+apply"),
        ("transitions", "x transitions")]


def print_table(results: list[dict], workloads) -> None:
    order = ["dita rust apply (full)", "dita rust apply (venue)", "dita Runtime.apply (py)", "dita kernel apply",
             "dita kernel build+apply", "nautilus-cy apply", "nautilus-cy apply (events per order)"]
    w_impl = max([26] + [len(r["impl"]) for r in results])
    head = (f"| {'workload':9} | {'implementation':{w_impl}} | {'ev/seq':>6} | {'n seq':>6} | {'ns/event':>9} | "
            + " | ".join(f"{label:>19}" for _, label in REFS) + " |")
    _say(head)
    _say("|" + "|".join("-" * len(c) for c in head.split("|")[1:-1]) + "|")
    for w in workloads:
        rows = [r for r in results if r["workload"] == w]
        rank = {name: i for i, name in enumerate(order)}
        rows.sort(key=lambda r: (rank.get(r["impl"], len(order)), results.index(r)))
        by = {r["impl"]: r for r in rows if "error" not in r}
        for r in rows:
            if "error" in r:
                _say(f"| {w:9} | {r['impl']:{w_impl}} | ERROR {r['error']}")
                continue
            ns = r["ns_per_event_median"]
            ratios = []
            for ref, _label in REFS:
                base = by.get(ref)
                ratios.append(f"{ns / base['ns_per_event_median']:.2f}x" if base else "n/a")
            _say(f"| {w:9} | {r['impl']:{w_impl}} | {r['events_per_seq']:>6} | {r['n']:>6} | {ns:>9,.0f} | "
                 + " | ".join(f"{x:>19}" for x in ratios) + " |")
    _say()
    _say("ns/event: median over the repeats of (round time / events applied in the round). "
         "x REF = ns/event of the row / ns/event of REF (above 1: costlier than REF).")


def print_legend(workloads, fills: int) -> None:
    import dita_impls

    _say("What each DITA row times, per sequence ([...] = applied before the timer; B: = a second slot):")
    for w in workloads:
        full = dita_impls.Plan(w, "full", fills)
        venue = dita_impls.Plan(w, "venue", fills)
        _say(f"  {w:9} full  (rust full, Runtime.apply py): {full.describe()}  -> {', '.join(full.finals)}")
        _say(f"  {w:9} venue (rust venue, kernel rows):     {venue.describe()}  -> {', '.join(venue.finals)}"
             + ("; the closing fill's WRITE_TERMINAL is answered with TERMINAL_WRITTEN inside the timed call"
                if venue.feedback else ""))
    _say("  Rust: payload Vec<Value>s built before the timer, one per apply (each apply consumes its own, as the Python binding's are).")
    _say("  kernel build+apply: per event, the event id f-string and the VenueEvent are built in the loop; the "
         "decimals are parsed once before it (as nautilus build+apply reuses its Quantity/Price objects).")
    _say("  Kernel rows: dita-mock's MockVenue(silent=True), which answers nothing (acks and fills are the timed events); "
         "fills of 0.002 at 50000.0 with a fee of 0.02, as in the anchors.")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--anchors", default=str(DEFAULT_ANCHORS),
                    help="path of anchors_fsm.py (default: ../shared/bench/anchors_fsm.py next to the repository)")
    ap.add_argument("--n", type=int, default=10000, help="sequences per timed round (default 10000)")
    ap.add_argument("--repeats", type=int, default=5, help="timed rounds; the median is reported (default 5)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    ap.add_argument("--fills", type=int, default=5, help="fills per entry order, the last completes it (default 5)")
    ap.add_argument("--workloads", default=",".join(WORKLOADS), help="comma list of " + ",".join(WORKLOADS))
    ap.add_argument("--only", default="", help="comma list of substrings: Python implementations to run (anchors' --only)")
    ap.add_argument("--round-s", type=float, default=0.5,
                    help="anchors' cap on one timed round for slow implementations, in seconds (default 0.5)")
    ap.add_argument("--gc", action="store_true", help="keep the garbage collector on while timing")
    ap.add_argument("--no-rust", action="store_true", help="skip the Rust rows (no cargo build)")
    ap.add_argument("--cargo", default="", help="cargo executable (default: cargo on PATH)")
    ap.add_argument("--json", default="", help="also write every result to this JSON file")
    ap.add_argument("--write-inputs", default="", metavar="DIR",
                    help="only write the spec JSON and plans JSON the Rust example reads into DIR, and exit")
    ap.add_argument("--quick", action="store_true", help="smoke run: n=1000, repeats=3, round-s=0.2")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.repeats, args.round_s = 1000, 3, 0.2
    if args.fills < 1 or args.n < 1 or args.repeats < 1:
        ap.error("--fills, --n and --repeats must be >= 1")
    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    for w in args.workloads:
        if w not in WORKLOADS:
            ap.error(f"unknown workload {w!r}")

    why = _check_dita()
    if why:
        _say("ERROR: " + why)
        return 2
    import dita

    if args.write_inputs:
        d = Path(args.write_inputs)
        d.mkdir(parents=True, exist_ok=True)
        spec, plans = write_inputs(d, args.fills, args.workloads)
        _say(f"wrote {spec} and {plans}; run: cargo run --release --example bench_apply -- {spec} {plans}")
        return 0

    started = time.perf_counter()
    _say(f"# bench_fsm  {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M UTC}  {platform.platform()}  "
         f"{os.cpu_count()} cpus  python {platform.python_version()}")
    _say(f"# dita {dita.__version__} (checkout {_git_rev()}), installed at {Path(dita.__file__).parent}")
    note = _stale_install_note()
    if note:
        _say("# " + note)
    _say(f"# n={args.n} sequences/round, repeats={args.repeats} (median), warmup={args.warmup}, fills={args.fills}, "
         f"round-s={args.round_s}, gc {'on' if args.gc else 'off'} while timing")
    notes: list[str] = []
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench_fsm_") as tmp:
        tmp = Path(tmp)
        spec, plans = write_inputs(tmp, args.fills, args.workloads)

        # (a) Rust alone
        if args.no_rust:
            notes.append("Rust rows skipped (--no-rust)")
        else:
            _say()
            _say("## (a) fsm_engine alone, Rust")
            rust_rows, rust_notes = run_rust(args, spec, plans)
            results += rust_rows
            notes += rust_notes
            for n_ in rust_notes:
                _say("# " + n_)

        # (b), (c) and the anchors, in one process
        _say()
        anchors_path = Path(args.anchors).expanduser()
        if not anchors_path.is_absolute():
            anchors_path = (REPO / anchors_path).resolve()
        if anchors_path.is_file():
            _say(f"## (b), (c), Runtime.apply from Python, and the anchors: {anchors_path}")
            anchors = load_anchors(anchors_path)
            results += run_anchors(anchors, args, tmp / "anchors.json")
        else:
            msg = (f"anchors_fsm.py not found at {anchors_path} (give --anchors PATH): the anchors (NautilusTrader, "
                   "pytransitions, ...) are NOT measured and the ratio columns are n/a; DITA's Python rows are timed "
                   "by a minimal stand-in harness (same timing, no n calibration)")
            notes.append(msg)
            _say("## NOTE: " + msg)
            results += run_standalone(args)

    _say()
    _say(f"## Summary: cost per applied event, fills={args.fills}")
    print_table(results, args.workloads)
    _say()
    print_legend(args.workloads, args.fills)
    for n_ in notes:
        _say("NOTE: " + n_)
    _say(f"# total {time.perf_counter() - started:.0f}s")
    if args.json:
        Path(args.json).write_text(json.dumps({"params": {k: v for k, v in vars(args).items()}, "notes": notes,
                                               "results": results}, indent=2, default=str))
        _say(f"# wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
