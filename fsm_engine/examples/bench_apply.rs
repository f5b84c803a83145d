//! Cost of `Runtime::apply` alone (no Python) on the trade-slot spec.
//!
//! ```text
//! cargo run --release --example bench_apply -- SPEC.json PLANS.json [--n 20000] [--repeats 7] [--warmup 1]
//! ```
//!
//! Both files are written by `benchmarks/bench_fsm.py` (`--write-inputs DIR` writes them
//! without running anything): SPEC.json is the spec as JSON without its `templates`
//! section (Rust reads no YAML); PLANS.json lists, per workload and mode, the events to
//! apply to the slots of one sequence before the timer (`setup`) and inside it (`timed`),
//! each `[slot offset, event, payload]` with the payloads the Python kernel itself hands to
//! the engine, the state every slot must end in, and effects the kernel answers with an
//! event inside the same call (`feedback`, e.g. WRITE_TERMINAL -> TERMINAL_WRITTEN; that
//! extra apply is timed but not counted as an event).
//!
//! Each round builds a fresh `Runtime` with `n * slots_per_seq` instances and runs one
//! sequence per group of instances, sequence after sequence. Payloads are converted to
//! `Vec<Value>` before the timer, one per apply (each apply consumes its payload). Every timed
//! outcome must be accepted, every slot must end in its expected state and the account must
//! have paid exactly one fee per fill, or the example panics.
//! Output: one `RESULT ...` line per plan, medians over the repeats.

use fsm_engine::{Machine, Runtime, Value};
use serde_json::Value as J;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

struct Step {
    offset: usize,
    event: usize,
    payload: Vec<Value>,
}

struct Plan {
    workload: String,
    mode: String,
    per_seq: usize,
    setup: Vec<Step>,
    timed: Vec<Step>,
    finals: Vec<usize>,
    /// (effect index, event index) answered inside the timed call.
    feedback: Vec<(usize, usize)>,
    fees_per_seq: Value,
}

fn steps(m: &Machine, list: &J) -> Vec<Step> {
    list.as_array()
        .expect("a list of steps")
        .iter()
        .map(|s| {
            let offset = s[0].as_u64().expect("slot offset") as usize;
            let name = s[1].as_str().expect("event name");
            let event = m.event_index(name).unwrap_or_else(|| panic!("the spec has no event {name}"));
            let given = s[2].as_object().expect("payload object");
            let fields = &m.events[event].fields;
            for k in given.keys() {
                assert!(fields.iter().any(|f| &f.name == k), "event {name} has no field {k}");
            }
            let payload = fields
                .iter()
                .map(|f| {
                    let v = Value::from_json(given.get(&f.name).unwrap_or(&J::Null), f.ty)
                        .unwrap_or_else(|e| panic!("event {name}, field {}: {e}", f.name));
                    assert!(f.nullable || !f.default.is_null() || !v.is_null(), "event {name}: field {} is required", f.name);
                    v
                })
                .collect();
            Step { offset, event, payload }
        })
        .collect()
}

fn plans(m: &Machine, doc: &J) -> Vec<Plan> {
    doc["plans"]
        .as_array()
        .expect("plans")
        .iter()
        .map(|p| Plan {
            workload: p["workload"].as_str().unwrap().to_string(),
            mode: p["mode"].as_str().unwrap().to_string(),
            per_seq: p["slots_per_seq"].as_u64().unwrap() as usize,
            setup: steps(m, &p["setup"]),
            timed: steps(m, &p["timed"]),
            finals: p["finals"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| m.state_index(s.as_str().unwrap()).unwrap_or_else(|| panic!("no state {s}")))
                .collect(),
            feedback: p["feedback"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(fx, ev)| {
                    let e = m.effects.iter().position(|e| &e.name == fx).unwrap_or_else(|| panic!("no effect {fx}"));
                    let ev = ev.as_str().unwrap();
                    let i = m.event_index(ev).unwrap_or_else(|| panic!("no event {ev}"));
                    assert!(m.events[i].fields.is_empty(), "feedback event {ev} must take no payload");
                    (e, i)
                })
                .collect(),
            fees_per_seq: Value::from_json(&p["fees_per_seq"], fsm_engine::Ty::Decimal).unwrap(),
        })
        .collect()
}

fn shared_decimal(rt: &Runtime, m: &Machine, name: &str) -> fsm_engine::Decimal {
    match &rt.shared()[m.shared_index(name).unwrap_or_else(|| panic!("no shared field {name}"))] {
        Value::Decimal(d) => *d,
        v => panic!("shared {name} is {v}"),
    }
}

/// The timed part of a round, apart so that a profiler can be told to count it alone
/// (e.g. `valgrind --tool=callgrind --toggle-collect='bench_apply::timed'`).
#[inline(never)]
fn timed(rt: &mut Runtime, p: &Plan, n: usize, payloads: &mut [Vec<Value>]) -> usize {
    let per = p.per_seq;
    let mut refused = 0usize;
    let mut payloads = payloads.iter_mut();
    for i in 0..n {
        let base = i * per;
        for s in &p.timed {
            let payload = payloads.next().expect("one payload per timed event");
            let out = rt.apply_in(base + s.offset, s.event, payload).unwrap();
            refused += !out.accepted as usize;
            if !p.feedback.is_empty() {
                for (fx, _) in &out.effects {
                    if let Some((_, ev)) = p.feedback.iter().find(|(e, _)| e == fx) {
                        let fb = rt.apply_in(base + s.offset, *ev, &mut []).unwrap();
                        refused += !fb.accepted as usize;
                        black_box(&fb);
                    }
                }
            }
            black_box(&out);
        }
    }
    refused
}

/// One round: (ns elapsed, events timed).
fn round(machine: &Arc<Machine>, capital: &Value, p: &Plan, n: usize) -> (u128, usize) {
    let per = p.per_seq;
    let shared = [("starting_capital".to_string(), capital.clone()), ("capital".to_string(), capital.clone())];
    let mut rt = Runtime::new(Arc::clone(machine), n * per, &shared).unwrap();
    for i in 0..n {
        for s in &p.setup {
            let out = rt.apply(i * per + s.offset, s.event, s.payload.clone()).unwrap();
            assert!(out.accepted, "setup step {} refused: {:?}", machine.events[s.event].name, out.message);
        }
    }
    // Each apply reads its payload from a buffer it may take values out of, as the Python
    // binding's reused payload buffer is: the copies are made before the timer and
    // dropped after it.
    let mut payloads: Vec<Vec<Value>> = (0..n).flat_map(|_| p.timed.iter().map(|s| s.payload.clone())).collect();
    let t0 = Instant::now();
    let refused = timed(&mut rt, p, n, &mut payloads);
    let dt = t0.elapsed().as_nanos();
    drop(payloads);
    assert_eq!(refused, 0, "{}/{}: the engine refused timed events", p.workload, p.mode);
    for slot in 0..n * per {
        let want = p.finals[slot % per];
        let got = rt.state(slot).unwrap();
        assert_eq!(got, want, "slot {slot} ended in {}, not {}", machine.states[got].name, machine.states[want].name);
    }
    let Value::Decimal(fee) = &p.fees_per_seq else { unreachable!() };
    assert_eq!(shared_decimal(&rt, machine, "fees_paid"), *fee * fsm_engine::Decimal::from(n as u64), "fees paid");
    (dt, n * p.timed.len())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let k = v.len();
    if k % 2 == 1 { v[k / 2] } else { (v[k / 2 - 1] + v[k / 2]) / 2.0 }
}

fn main() {
    let usage = "usage: bench_apply SPEC.json PLANS.json [--n N] [--repeats R] [--warmup W]";
    let mut args = std::env::args().skip(1);
    let mut files = Vec::new();
    let (mut n, mut repeats, mut warmup) = (20000usize, 7usize, 1usize);
    while let Some(a) = args.next() {
        let mut num = || -> usize { args.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{a} needs a number")) };
        match a.as_str() {
            "--n" => n = num(),
            "--repeats" => repeats = num(),
            "--warmup" => warmup = num(),
            _ if !a.starts_with("--") => files.push(a),
            _ => panic!("unknown argument {a}; {usage}"),
        }
    }
    assert!(files.len() == 2 && n >= 1 && repeats >= 1, "{usage}");
    let text = std::fs::read_to_string(&files[0]).expect("cannot read the spec");
    let machine = Arc::new(Machine::compile_json(&text).unwrap_or_else(|e| panic!("{e}")));
    let doc: J = serde_json::from_str(&std::fs::read_to_string(&files[1]).expect("cannot read the plans")).expect("plans JSON");
    let capital = Value::from_json(&doc["capital"], fsm_engine::Ty::Decimal).unwrap();
    let plans = plans(&machine, &doc);
    println!(
        "# bench_apply: fsm_engine Runtime::apply on spec '{}', n={n} sequences/round, repeats={repeats} (median), warmup={warmup}, fills={}",
        machine.name, doc["fills"]
    );
    println!("# payloads converted to Vec<Value> before the timer, one per apply");
    for p in &plans {
        let mut samples = Vec::new();
        let mut events = 0;
        for r in 0..warmup + repeats {
            let (dt, e) = round(&machine, &capital, p, n);
            events = e;
            if r >= warmup {
                samples.push(dt as f64 / e as f64);
            }
        }
        let (lo, hi) = samples.iter().fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
        let med = median(&mut samples);
        println!(
            "RESULT workload={} mode={} events_per_seq={} n={n} ns_per_event_median={med:.1} min={lo:.1} max={hi:.1}",
            p.workload,
            p.mode,
            events / n
        );
    }
}
