//! Table-driven tests of the engine on a small machine written as JSON: a counter that can
//! be locked. Traces are data: (event, payload, expected accepted, diagnostic, state).

use fsm_engine::{parse_decimal, Machine, Runtime, Value};
use std::sync::Arc;

const SPEC: &str = r#"{
  "version": 1, "machine": "counter",
  "record": {"count": {"type": "decimal", "default": "0"}, "note": {"type": "string", "nullable": true}},
  "shared": {"total": {"type": "decimal", "default": "0"}},
  "events": {
    "ADD": {"dedup_key": "id", "fields": {"id": {"type": "string"}, "amount": {"type": "decimal"}}},
    "LOCK": {}, "UNLOCK": {}, "RESTART": {}
  },
  "effects": {"NOTIFY": {"fields": {"count": {"type": "decimal"}}}},
  "diagnostics": {"ok": "OK", "duplicate": "DUP", "invariant_violation": "INV", "no_candidate": "NONE",
                  "unhandled": "UNHANDLED", "evaluation_error": "EVAL",
                  "codes": {"OK": "", "DUP": "", "INV": "", "NONE": "", "UNHANDLED": "", "EVAL": "", "LOCKED": "", "NEG": ""}},
  "invariants": [{"check": "shared.total >= 0", "message": "total never negative"}],
  "states": {
    "OPEN": {"initial": true,
      "invariants": [{"check": "count <= 10", "message": "at most ten"}],
      "on": {
        "ADD": [
          {"guard": "event.amount < 0 and count + event.amount < 0", "refuse": "NEG", "message": "cannot go below zero by {event.amount}"},
          {"assign": {"count": "count + event.amount", "shared.total": "shared.total + event.amount"},
           "effects": [{"effect": "NOTIFY", "with": {"count": "count"}}]}
        ],
        "LOCK": [{"target": "SHUT", "assign": {"note": "'locked at ' + count"}}]
      },
      "refuse": {"LOCKED": ["UNLOCK"]}},
    "SHUT": {
      "on": {"UNLOCK": [{"target": "OPEN"}], "RESTART": [{"new_run": true, "target": "OPEN"}]},
      "refuse": {"LOCKED": ["ADD", "LOCK"]}}
  }
}"#;

fn dec(s: &str) -> Value {
    Value::Decimal(parse_decimal(s).unwrap())
}

fn add(id: &str, amount: &str) -> (&'static str, Vec<Value>) {
    ("ADD", vec![Value::String(Arc::from(id)), dec(amount)])
}

fn runtime() -> Runtime {
    let m = Arc::new(Machine::compile_json(SPEC).expect("the spec compiles"));
    Runtime::new(m, 2, &[]).unwrap()
}

#[test]
fn traces() {
    type Step = ((&'static str, Vec<Value>), bool, &'static str, &'static str);
    let steps: Vec<Step> = vec![
        (add("a", "3"), true, "OK", "OPEN"),
        (add("a", "3"), false, "DUP", "OPEN"),
        (add("b", "-5"), false, "NEG", "OPEN"),
        (add("c", "8"), false, "INV", "OPEN"),
        (add("d", "0.1"), true, "OK", "OPEN"),
        (("UNLOCK", vec![]), false, "LOCKED", "OPEN"),
        (("LOCK", vec![]), true, "OK", "SHUT"),
        (add("e", "1"), false, "LOCKED", "SHUT"),
        (("RESTART", vec![]), true, "OK", "OPEN"),
        (add("a", "1"), true, "OK", "OPEN"), // a new run forgot the old keys
    ];
    let mut rt = runtime();
    for (i, ((event, payload), accepted, code, state)) in steps.into_iter().enumerate() {
        let m = rt.machine().clone();
        let out = rt.apply(0, m.event_index(event).unwrap(), payload).unwrap();
        assert_eq!(
            (out.accepted, m.diagnostics[out.diagnostic].as_str(), m.states[out.state].name.as_str()),
            (accepted, code, state),
            "step {i}: {event} -> {:?}",
            out.message
        );
    }
    assert_eq!(rt.record(0).unwrap()[0], dec("1"));
    assert_eq!(rt.shared()[0], dec("4.1"));
    assert_eq!(rt.state(1).unwrap(), 0, "the other instance is untouched");
}

#[test]
fn a_refused_transition_changes_nothing_and_says_why() {
    let mut rt = runtime();
    let ev = rt.machine().event_index("ADD").unwrap();
    rt.apply(0, ev, add("a", "10").1).unwrap();
    let before = rt.snapshot(0).unwrap();
    let out = rt.apply(0, ev, add("b", "0.5").1).unwrap();
    assert!(!out.accepted);
    assert!(out.message.unwrap().contains("at most ten"));
    assert_eq!(rt.snapshot(0).unwrap(), before);
    assert_eq!(rt.shared()[0], dec("10"));
}

#[test]
fn effects_and_messages_are_evaluated() {
    let mut rt = runtime();
    let m = rt.machine().clone();
    let out = rt.apply(0, m.event_index("ADD").unwrap(), add("a", "2.50").1).unwrap();
    assert_eq!(out.effects, vec![(0, vec![dec("2.5")])]);
    let out = rt.apply(0, m.event_index("ADD").unwrap(), add("b", "-7").1).unwrap();
    assert_eq!(out.message.as_deref(), Some("cannot go below zero by -7"));
    rt.apply(0, m.event_index("LOCK").unwrap(), vec![]).unwrap();
    assert_eq!(rt.record(0).unwrap()[1], Value::String(Arc::from("locked at 2.5")));
}

#[test]
fn dedup_keys_are_never_evicted_within_a_run() {
    let mut rt = runtime();
    let ev = rt.machine().event_index("ADD").unwrap();
    for i in 0..5000 {
        let amount = if i % 2 == 0 { "1" } else { "-1" };
        assert!(rt.apply(0, ev, add(&format!("k{i}"), amount).1).unwrap().accepted);
    }
    assert_eq!(rt.seen_count(0).unwrap(), 5000);
    assert!(!rt.apply(0, ev, add("k0", "1").1).unwrap().accepted);
}

#[test]
fn every_key_stays_seen_as_a_run_outgrows_its_first_small_set_and_a_new_run_forgets_them() {
    // The set keeps its first keys in two short vectors and moves them to a hash table
    // past 16: every key must be found before, across and after that move, in every run.
    let mut rt = runtime();
    let ev = rt.machine().event_index("ADD").unwrap();
    let (lock, restart) = (rt.machine().event_index("LOCK").unwrap(), rt.machine().event_index("RESTART").unwrap());
    let amount = |i: usize| if i % 2 == 0 { "1" } else { "-1" };
    for run in 0..2 {
        for i in 0..40 {
            assert!(rt.apply(0, ev, add(&format!("k{i}"), amount(i)).1).unwrap().accepted, "run {run}: k{i} is new");
            assert_eq!(rt.seen_count(0).unwrap(), i + 1);
            // Every key applied so far is refused again, and changes nothing.
            for j in 0..=i {
                let again = rt.apply(0, ev, add(&format!("k{j}"), "1").1).unwrap();
                assert!(!again.accepted && again.message.unwrap().contains("already applied"), "run {run}: k{j} after k{i}");
            }
        }
        assert_eq!(rt.record(0).unwrap()[0], dec("0"));
        let mut keys: Vec<String> = rt.snapshot(0).unwrap().seen.iter().map(|k| k.key.to_string()).collect();
        keys.sort();
        let mut want: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
        want.sort();
        assert_eq!(keys, want);
        assert!(rt.apply(0, lock, vec![]).unwrap().accepted);
        assert!(rt.apply(0, restart, vec![]).unwrap().accepted);
        assert_eq!(rt.seen_count(0).unwrap(), 0, "a new run starts with no keys");
    }
}

#[test]
fn dedup_keys_survive_a_snapshot_and_replace_once_each() {
    let mut rt = runtime();
    let ev = rt.machine().event_index("ADD").unwrap();
    for id in ["a", "b"] {
        assert!(rt.apply(0, ev, add(id, "1").1).unwrap().accepted);
    }
    let mut snap = rt.snapshot(0).unwrap();
    assert_eq!(snap.seen.iter().map(|k| &*k.key).collect::<Vec<_>>(), ["a", "b"]);
    // A key listed twice (a hand-edited snapshot) is kept once.
    snap.seen.push(snap.seen[0].clone());
    let mut other = runtime();
    other.replace(vec![(1, snap)], Some(rt.shared().to_vec())).unwrap();
    assert_eq!(other.seen_count(1).unwrap(), 2);
    let again = other.apply(1, ev, add("a", "1").1).unwrap();
    assert!(!again.accepted && again.message.unwrap().contains("already applied"));
    assert!(other.apply(1, ev, add("c", "1").1).unwrap().accepted);
    assert_eq!(other.snapshot(1).unwrap().seen.iter().map(|k| &*k.key).collect::<Vec<_>>(), ["a", "b", "c"]);
    assert_eq!(other.record(1).unwrap()[0], dec("3"));
}

#[test]
fn bad_payloads_and_indices_are_errors_not_panics() {
    let mut rt = runtime();
    let ev = rt.machine().event_index("ADD").unwrap();
    assert!(rt.apply(0, ev, vec![Value::Bool(true), dec("1")]).unwrap_err().to_string().contains("'id' must be string"));
    assert!(rt.apply(0, ev, vec![]).is_err());
    assert!(rt.apply(7, ev, add("a", "1").1).unwrap_err().to_string().contains("no instance 7"));
    assert!(rt.apply(0, 99, vec![]).is_err());
}

#[test]
fn replace_is_all_or_nothing() {
    let mut rt = runtime();
    let mut good = rt.snapshot(0).unwrap();
    good.record[0] = dec("4");
    let mut bad = rt.snapshot(1).unwrap();
    bad.record[0] = dec("11");
    let problems = rt.replace(vec![(0, good.clone()), (1, bad)], None).unwrap_err();
    assert_eq!(problems.len(), 1);
    assert!(problems[0].starts_with("instance 1 (OPEN)") && problems[0].contains("count <= 10"));
    assert_eq!(rt.record(0).unwrap()[0], dec("0"));
    rt.replace(vec![(0, good)], None).unwrap();
    assert_eq!(rt.record(0).unwrap()[0], dec("4"));
}

#[test]
fn semantic_problems_are_all_reported_with_paths() {
    let broken = SPEC
        .replace(r#""target": "SHUT""#, r#""target": "SHUTT""#)
        .replace("count + event.amount < 0", "count + event.nope < 0")
        .replace(r#""UNLOCK": [{"target": "OPEN"}]"#, r#""UNLOCK": [{"target": "OPEN", "assign": {"count": "true"}}]"#);
    let err = Machine::compile_json(&broken).unwrap_err();
    let mut found: Vec<(&str, &str)> = err.problems.iter().map(|p| (p.code, p.path.as_str())).collect();
    found.sort();
    assert_eq!(
        found,
        vec![
            ("type_error", "states.SHUT.on.UNLOCK[0].assign.count"),
            ("unknown_field", "states.OPEN.on.ADD[0].guard"),
            ("unknown_target", "states.OPEN.on.LOCK[0].target"),
        ]
    );
}

/// Invariants are re-evaluated only when a transition wrote a field they read, or entered
/// their state; and a payload field left null takes the default the spec declares.
const GATE: &str = r#"{
  "version": 1, "machine": "gate",
  "record": {"n": {"type": "int", "default": 0}, "m": {"type": "int", "default": 0}},
  "shared": {"s": {"type": "int", "default": 0}},
  "events": {"INC": {"fields": {"by": {"type": "int", "default": 1}}}, "GO": {}, "BUMP": {}},
  "diagnostics": {"ok": "OK", "duplicate": "DUP", "invariant_violation": "INV", "no_candidate": "NONE",
                  "unhandled": "UNHANDLED", "evaluation_error": "EVAL",
                  "codes": {"OK": "", "DUP": "", "INV": "", "NONE": "", "UNHANDLED": "", "EVAL": ""}},
  "invariants": [{"check": "shared.s <= 1", "message": "s at most one"}],
  "states": {
    "A": {"initial": true, "on": {
      "INC": [{"assign": {"n": "n + event.by"}}],
      "GO": [{"target": "B"}],
      "BUMP": [{"assign": {"shared.s": "shared.s + 1"}}]}},
    "B": {"invariants": [{"check": "n <= 2", "message": "B holds at most two"}],
      "on": {"INC": [{"assign": {"n": "n + event.by"}}], "GO": [{"target": "A"}]}}
  }
}"#;

#[test]
fn invariants_follow_writes_and_entered_states() {
    let m = Arc::new(Machine::compile_json(GATE).expect("the spec compiles"));
    let mut rt = Runtime::new(m.clone(), 1, &[]).unwrap();
    let ev = |name: &str| m.event_index(name).unwrap();
    let code = |rt: &mut Runtime, name: &str, payload: Vec<Value>| {
        let out = rt.apply(0, ev(name), payload).unwrap();
        (m.diagnostics[out.diagnostic].clone(), m.states[out.state].name.clone())
    };
    // `by` left null: the declared default 1 applies.
    assert_eq!(code(&mut rt, "INC", vec![Value::Null]), ("OK".into(), "A".into()));
    assert_eq!(rt.record(0).unwrap()[0], Value::Int(1));
    assert_eq!(code(&mut rt, "INC", vec![Value::Int(2)]), ("OK".into(), "A".into()));
    // GO writes nothing, but entering B must still check B's own invariant.
    assert_eq!(code(&mut rt, "GO", vec![]), ("INV".into(), "A".into()));
    assert_eq!(code(&mut rt, "INC", vec![Value::Int(-2)]), ("OK".into(), "A".into()));
    assert_eq!(code(&mut rt, "GO", vec![]), ("OK".into(), "B".into()));
    // Inside B, a write to `n` re-checks B's invariant; nothing changes when it fails.
    assert_eq!(code(&mut rt, "INC", vec![Value::Int(5)]), ("INV".into(), "B".into()));
    assert_eq!(rt.record(0).unwrap()[0], Value::Int(1));
    assert_eq!(code(&mut rt, "GO", vec![]), ("OK".into(), "A".into()));
    // A global invariant over the shared record is checked when the shared field is written.
    assert_eq!(code(&mut rt, "BUMP", vec![]), ("OK".into(), "A".into()));
    assert_eq!(code(&mut rt, "BUMP", vec![]), ("INV".into(), "A".into()));
    assert_eq!(rt.shared()[0], Value::Int(1));
}

/// Writes are made in place during an apply; every way an apply can fail after writing
/// must put back all of it: the record, the shared record, a fresh run's reset and its
/// forgotten de-duplication keys.
const UNDO: &str = r#"{
  "version": 1, "machine": "undo",
  "record": {"a": {"type": "decimal", "default": "0"}, "b": {"type": "decimal", "default": "0"}},
  "shared": {"total": {"type": "decimal", "default": "0"}},
  "events": {
    "SET": {"dedup_key": "id", "fields": {"id": {"type": "string"}, "x": {"type": "decimal"}}},
    "BREAK": {"fields": {"x": {"type": "decimal"}}},
    "RESET": {"fields": {"x": {"type": "decimal"}}}
  },
  "diagnostics": {"ok": "OK", "duplicate": "DUP", "invariant_violation": "INV", "no_candidate": "NONE",
                  "unhandled": "UNHANDLED", "evaluation_error": "EVAL",
                  "codes": {"OK": "", "DUP": "", "INV": "", "NONE": "", "UNHANDLED": "", "EVAL": ""}},
  "states": {
    "S": {"initial": true,
      "invariants": [{"check": "a <= 100", "message": "a stays small"}],
      "on": {
        "SET": [{"assign": {"a": "a + event.x", "b": "a * 2", "shared.total": "shared.total + event.x"}}],
        "BREAK": [{"assign": {"a": "a + 1", "shared.total": "shared.total + 1", "b": "1 / event.x"}}],
        "RESET": [{"new_run": true, "assign": {"a": "event.x"}}]
      }}
  }
}"#;

#[test]
fn a_failed_apply_puts_back_everything_it_wrote() {
    let m = Arc::new(Machine::compile_json(UNDO).expect("the spec compiles"));
    let mut rt = Runtime::new(m.clone(), 1, &[]).unwrap();
    let mut run = |event: &str, payload: Vec<Value>| {
        let out = rt.apply(0, m.event_index(event).unwrap(), payload).unwrap();
        let snap = rt.snapshot(0).unwrap();
        (m.diagnostics[out.diagnostic].clone(), snap.record, rt.shared()[0].clone(), snap.seen.len())
    };
    let id = |s: &str| Value::String(Arc::from(s));
    let after_set = run("SET", vec![id("k1"), dec("5")]);
    assert_eq!(after_set, ("OK".into(), vec![dec("5"), dec("10")], dec("5"), 1));
    let unchanged = |code: &str| (code.to_string(), vec![dec("5"), dec("10")], dec("5"), 1);
    // `a` and the shared total are written before `b` fails to evaluate.
    assert_eq!(run("BREAK", vec![dec("0")]), unchanged("EVAL"));
    // Every assignment runs, then the state's invariant fails.
    assert_eq!(run("SET", vec![id("k2"), dec("200")]), unchanged("INV"));
    // A new run resets the record and forgets the keys, then its invariant fails.
    assert_eq!(run("RESET", vec![dec("500")]), unchanged("INV"));
    assert_eq!(run("SET", vec![id("k1"), dec("1")]), unchanged("DUP"), "the old run's keys are back");
    // A new run that holds: defaults, the assignment, no keys.
    assert_eq!(run("RESET", vec![dec("1")]), ("OK".into(), vec![dec("1"), dec("0")], dec("5"), 0));
    assert_eq!(run("SET", vec![id("k1"), dec("1")]).0, "OK");
}
