//! Execution: many instances of one machine and one shared record.
//!
//! `apply` is atomic. Guards, assignments and effects are evaluated against an overlay of
//! pending writes; the overlay is committed only when every expression evaluated and every
//! invariant (global and of the target state) holds. Otherwise nothing changes and the
//! outcome says why.

use crate::expr::{Env, EvalError, Scope};
use crate::machine::{Actions, Candidate, FieldDef, Handling, Invariant, Machine, MessagePart};
use crate::value::Value;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

/// A misuse of the runtime by its caller (as opposed to an event the machine refuses).
#[derive(Clone, Debug, PartialEq)]
pub enum EngineError {
    NoSuchInstance { index: usize, count: usize },
    NoSuchEvent(String),
    NoSuchState(String),
    BadPayload(String),
    BadRecord(String),
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::NoSuchInstance { index, count } => {
                write!(f, "no instance {index}: this runtime has {count} (0..{})", count.saturating_sub(1))
            }
            EngineError::NoSuchEvent(name) => write!(f, "unknown event '{name}'"),
            EngineError::NoSuchState(name) => write!(f, "unknown state '{name}'"),
            EngineError::BadPayload(msg) | EngineError::BadRecord(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for EngineError {}

/// One taken transition: indices into the machine's states and events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    pub from: usize,
    pub event: usize,
    pub to: usize,
}

/// What one `apply` did.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub accepted: bool,
    /// Index into `Machine::diagnostics`.
    pub diagnostic: usize,
    pub message: Option<String>,
    /// The instance's state after the call.
    pub state: usize,
    pub transition: Option<Transition>,
    /// `(effect index, one value per declared effect field)`, in emission order.
    pub effects: Vec<(usize, Vec<Value>)>,
}

#[derive(Clone, Debug)]
struct Instance {
    state: usize,
    record: Vec<Value>,
    /// De-duplication keys seen in the current run. Cleared only when a new run starts,
    /// never evicted by size: forgetting an applied event would let it apply twice.
    seen: SeenSet,
}

type SeenSet = HashSet<Arc<str>, foldhash::fast::RandomState>;

/// A complete, self-contained copy of one instance.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceSnapshot {
    pub state: usize,
    pub record: Vec<Value>,
    pub seen: Vec<Arc<str>>,
}

/// Instances of one machine plus the shared record.
#[derive(Clone, Debug)]
pub struct Runtime {
    machine: Arc<Machine>,
    defaults: Vec<Value>,
    instances: Vec<Instance>,
    shared: Vec<Value>,
    /// Pending writes of the apply in progress (kept between calls so that an apply
    /// allocates nothing for them).
    record_writes: Overlay,
    shared_writes: Overlay,
}

/// Pending writes over a record: a dense copy-on-write layer. Reading a field is one flag
/// test, and clearing or committing costs one step per written field.
#[derive(Clone, Debug, Default)]
struct Overlay {
    values: Vec<Value>,
    written: Vec<bool>,
    order: Vec<usize>,
}

impl Overlay {
    fn with_len(n: usize) -> Overlay {
        Overlay { values: vec![Value::Null; n], written: vec![false; n], order: Vec::with_capacity(n) }
    }

    /// Whether field `i` has a pending write (an empty overlay has none).
    #[inline]
    fn has(&self, i: usize) -> bool {
        self.written.get(i) == Some(&true)
    }

    #[inline]
    fn get<'a>(&'a self, base: &'a [Value], i: usize) -> &'a Value {
        if self.has(i) {
            &self.values[i]
        } else {
            &base[i]
        }
    }

    #[inline]
    fn set(&mut self, i: usize, v: Value) {
        if !self.written[i] {
            self.written[i] = true;
            self.order.push(i);
        }
        self.values[i] = v;
    }

    fn clear(&mut self) {
        for i in self.order.drain(..) {
            self.written[i] = false;
            self.values[i] = Value::Null;
        }
    }

    fn commit_into(&mut self, target: &mut [Value]) {
        for i in self.order.drain(..) {
            self.written[i] = false;
            target[i] = std::mem::take(&mut self.values[i]);
        }
    }
}

/// The values an expression sees: committed data under the pending writes.
struct View<'a> {
    record: &'a [Value],
    shared: &'a [Value],
    event: &'a [Value],
    record_writes: &'a Overlay,
    shared_writes: &'a Overlay,
}

const NO_WRITES: &Overlay = &Overlay { values: Vec::new(), written: Vec::new(), order: Vec::new() };

impl<'a> View<'a> {
    /// Committed data only.
    fn committed(record: &'a [Value], shared: &'a [Value]) -> View<'a> {
        View { record, shared, event: &[], record_writes: NO_WRITES, shared_writes: NO_WRITES }
    }

    /// Whether an invariant reads a field with a pending write.
    fn touches(&self, inv: &Invariant) -> bool {
        inv.reads.iter().any(|&(scope, i)| match scope {
            Scope::Record => self.record_writes.has(i),
            Scope::Shared => self.shared_writes.has(i),
            Scope::Event => false,
        })
    }
}

impl Env for View<'_> {
    #[inline]
    fn get(&self, scope: Scope, index: usize) -> &Value {
        match scope {
            Scope::Record => self.record_writes.get(self.record, index),
            Scope::Shared => self.shared_writes.get(self.shared, index),
            Scope::Event => &self.event[index],
        }
    }
}

fn check_values(what: impl Fn() -> String, fields: &[FieldDef], values: &[Value]) -> Result<(), String> {
    if values.len() != fields.len() {
        return Err(format!("{}: expected {} values, got {}", what(), fields.len(), values.len()));
    }
    for (f, v) in fields.iter().zip(values) {
        if !v.fits(f.ty, f.nullable) {
            let got = match v.ty() {
                None => "null".to_string(),
                Some(t) => format!("{t} {v}"),
            };
            return Err(format!("{}: field '{}' must be {}{}, got {got}", what(), f.name, f.ty, if f.nullable { " or null" } else { "" }));
        }
    }
    Ok(())
}

impl Runtime {
    /// Creates `count` instances in the initial state with default records, and the
    /// shared record from its defaults overridden by `shared`.
    pub fn new(machine: Arc<Machine>, count: usize, shared: &[(String, Value)]) -> Result<Runtime, EngineError> {
        let defaults: Vec<Value> = machine.record.iter().map(|f| f.default.clone()).collect();
        let mut shared_values: Vec<Value> = machine.shared.iter().map(|f| f.default.clone()).collect();
        for (name, value) in shared {
            let idx = machine.shared_index(name).ok_or_else(|| {
                EngineError::BadRecord(format!(
                    "unknown shared field '{name}' (fields: {})",
                    machine.shared.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ")
                ))
            })?;
            shared_values[idx] = value.clone().coerce(machine.shared[idx].ty);
        }
        check_values(|| "shared record".into(), &machine.shared, &shared_values).map_err(EngineError::BadRecord)?;
        let instance = Instance { state: machine.initial, record: defaults.clone(), seen: SeenSet::default() };
        let rt = Runtime {
            instances: vec![instance; count],
            record_writes: Overlay::with_len(defaults.len()),
            shared_writes: Overlay::with_len(shared_values.len()),
            defaults,
            shared: shared_values,
            machine,
        };
        let violations = rt.violations_of_all();
        if !violations.is_empty() {
            return Err(EngineError::BadRecord(violations.join("; ")));
        }
        Ok(rt)
    }

    pub fn machine(&self) -> &Arc<Machine> {
        &self.machine
    }

    pub fn len(&self) -> usize {
        self.instances.len()
    }

    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }

    fn instance(&self, index: usize) -> Result<&Instance, EngineError> {
        self.instances.get(index).ok_or(EngineError::NoSuchInstance { index, count: self.instances.len() })
    }

    pub fn state(&self, index: usize) -> Result<usize, EngineError> {
        Ok(self.instance(index)?.state)
    }

    pub fn record(&self, index: usize) -> Result<&[Value], EngineError> {
        Ok(&self.instance(index)?.record)
    }

    pub fn shared(&self) -> &[Value] {
        &self.shared
    }

    pub fn seen_count(&self, index: usize) -> Result<usize, EngineError> {
        Ok(self.instance(index)?.seen.len())
    }

    /// Applies event `event` with `payload` (one value per declared field) to an instance.
    pub fn apply(&mut self, index: usize, event: usize, mut payload: Vec<Value>) -> Result<Outcome, EngineError> {
        let Runtime { machine, defaults, instances, shared, record_writes, shared_writes } = self;
        let m: &Machine = machine;
        let count = instances.len();
        let ev = m.events.get(event).ok_or_else(|| EngineError::NoSuchEvent(format!("#{event}")))?;
        let inst = instances.get(index).ok_or(EngineError::NoSuchInstance { index, count })?;
        for (f, v) in ev.fields.iter().zip(payload.iter_mut()) {
            match v {
                Value::Int(_) => *v = std::mem::take(v).coerce(f.ty),
                // A field the payload leaves out takes the default the spec declares.
                Value::Null if !f.default.is_null() => *v = f.default.clone(),
                _ => {}
            }
        }
        check_values(|| format!("event {}", ev.name), &ev.fields, &payload).map_err(EngineError::BadPayload)?;
        let from = inst.state;
        let sname = &m.states[from].name;
        let refused = |diagnostic: usize, message: String| Outcome {
            accepted: false,
            diagnostic,
            message: Some(message),
            state: from,
            transition: None,
            effects: Vec::new(),
        };

        let key = match ev.dedup_key.map(|k| &payload[k]) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        if let Some(k) = key {
            if inst.seen.contains(k) {
                return Ok(refused(
                    m.builtin.duplicate,
                    format!("event {} with {} {k:?} was already applied in this run; nothing changed", ev.name, ev.fields[ev.dedup_key.unwrap()].name),
                ));
            }
        }

        let cands = match &m.states[from].table[event] {
            Handling::Unhandled => {
                return Ok(refused(m.builtin.unhandled, format!("state {sname} does not handle event {}", ev.name)))
            }
            Handling::Refuse(code) => {
                return Ok(refused(*code, format!("state {sname} refuses event {}", ev.name)));
            }
            Handling::Candidates(c) => c,
        };
        // Left over from a call that returned early; clearing costs one step per write.
        record_writes.clear();
        shared_writes.clear();
        let view = View::committed(&inst.record, shared);
        let view = View { event: &payload, ..view };
        for (ci, cand) in cands.iter().enumerate() {
            let guard = match cand {
                Candidate::Refuse { guard, .. } | Candidate::Take { guard, .. } => guard,
            };
            if let Some(g) = guard {
                match g.holds(&view) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        return Ok(refused(
                            m.builtin.evaluation_error,
                            format!("state {sname}, event {}: guard of candidate {ci} failed: {e}; nothing changed", ev.name),
                        ))
                    }
                }
            }
            match cand {
                Candidate::Refuse { code, message, .. } => {
                    let text = render(message, &view);
                    let text = if text.is_empty() { format!("state {sname} refuses event {}", ev.name) } else { text };
                    return Ok(refused(*code, text));
                }
                Candidate::Take { new_run, actions, target, .. } => {
                    let to = target.unwrap_or(from);
                    let base: &[Value] = if *new_run { defaults } else { &inst.record };
                    let mut effects = Vec::new();
                    let mut step = run_actions(m, actions, base, shared, &payload, record_writes, shared_writes, &mut effects);
                    if step.is_ok() && (to != from || *new_run) {
                        step = run_actions(m, &m.states[to].on_entry, base, shared, &payload, record_writes, shared_writes, &mut effects);
                    }
                    let arrow = || format!("{sname} --{}--> {}", ev.name, m.states[to].name);
                    if let Err(e) = step {
                        return Ok(refused(m.builtin.evaluation_error, format!("{}: {e}; nothing changed", arrow())));
                    }
                    let after = View { record: base, shared, event: &payload, record_writes, shared_writes };
                    let failed = violations_after(m, to, to != from || *new_run, *new_run, &after);
                    if !failed.is_empty() {
                        return Ok(refused(
                            m.builtin.invariant_violation,
                            format!("{} would break {}; nothing changed", arrow(), failed.join("; ")),
                        ));
                    }
                    // Commit.
                    let key = key.cloned();
                    let inst = &mut instances[index];
                    if *new_run {
                        inst.record.clone_from(defaults);
                        inst.seen.clear();
                    }
                    record_writes.commit_into(&mut inst.record);
                    shared_writes.commit_into(shared);
                    inst.state = to;
                    if let Some(k) = key {
                        if inst.seen.capacity() == 0 {
                            inst.seen.reserve(16); // one allocation for a typical run, not four
                        }
                        inst.seen.insert(k);
                    }
                    return Ok(Outcome {
                        accepted: true,
                        diagnostic: m.builtin.ok,
                        message: None,
                        state: to,
                        transition: Some(Transition { from, event, to }),
                        effects,
                    });
                }
            }
        }
        Ok(refused(
            m.builtin.no_candidate,
            format!("state {sname}: no candidate for event {} applies; nothing changed", ev.name),
        ))
    }

    /// A complete copy of one instance.
    pub fn snapshot(&self, index: usize) -> Result<InstanceSnapshot, EngineError> {
        let inst = self.instance(index)?;
        let mut seen: Vec<Arc<str>> = inst.seen.iter().cloned().collect();
        seen.sort();
        Ok(InstanceSnapshot { state: inst.state, record: inst.record.clone(), seen })
    }

    /// Everything wrong with a candidate instance under a candidate shared record:
    /// types, then the global and state invariants. Empty means valid.
    pub fn check(&self, snap: &InstanceSnapshot, shared: &[Value]) -> Vec<String> {
        let m = &*self.machine;
        if snap.state >= m.states.len() {
            return vec![format!("state #{} does not exist", snap.state)];
        }
        if let Err(e) = check_values(|| "record".into(), &m.record, &snap.record) {
            return vec![e];
        }
        let view = View::committed(&snap.record, shared);
        violations(m, snap.state, &view)
    }

    fn violations_of_all(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, inst) in self.instances.iter().enumerate() {
            let view = View::committed(&inst.record, &self.shared);
            for v in violations(&self.machine, inst.state, &view) {
                out.push(format!("instance {i} ({}): {v}", self.machine.states[inst.state].name));
            }
        }
        out
    }

    /// Replaces instances (and optionally the shared record) all at once, or not at all.
    /// Every violation of every instance is returned, each naming its instance.
    pub fn replace(&mut self, instances: Vec<(usize, InstanceSnapshot)>, shared: Option<Vec<Value>>) -> Result<(), Vec<String>> {
        let m = Arc::clone(&self.machine);
        let mut problems = Vec::new();
        let shared = match shared {
            Some(values) => {
                let values: Vec<Value> = values.into_iter().zip(&m.shared).map(|(v, f)| v.coerce(f.ty)).collect();
                if let Err(e) = check_values(|| "shared record".into(), &m.shared, &values) {
                    return Err(vec![e]);
                }
                values
            }
            None => self.shared.clone(),
        };
        let mut staged = Vec::new();
        for (index, mut snap) in instances {
            if index >= self.instances.len() {
                problems.push(format!("instance {index}: no such instance (this runtime has {})", self.instances.len()));
                continue;
            }
            snap.record = snap.record.into_iter().zip(&m.record).map(|(v, f)| v.coerce(f.ty)).collect();
            let name = m.states.get(snap.state).map_or("?", |s| s.name.as_str());
            for v in self.check(&snap, &shared) {
                problems.push(format!("instance {index} ({name}): {v}"));
            }
            staged.push((index, snap));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        // Instances not being replaced must still hold under the new shared record.
        let touched: HashSet<usize> = staged.iter().map(|(i, _)| *i).collect();
        for (i, inst) in self.instances.iter().enumerate() {
            if touched.contains(&i) {
                continue;
            }
            let view = View::committed(&inst.record, &shared);
            for v in violations(&m, inst.state, &view) {
                problems.push(format!("instance {i} ({}): {v}", m.states[inst.state].name));
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        for (index, snap) in staged {
            self.instances[index] = Instance { state: snap.state, record: snap.record, seen: snap.seen.into_iter().collect::<SeenSet>() };
        }
        self.shared = shared;
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)]
fn run_actions(
    m: &Machine,
    actions: &Actions,
    base: &[Value],
    shared: &[Value],
    payload: &[Value],
    rw: &mut Overlay,
    sw: &mut Overlay,
    effects: &mut Vec<(usize, Vec<Value>)>,
) -> Result<(), EvalError> {
    for a in &actions.assigns {
        let view = View { record: base, shared, event: payload, record_writes: rw, shared_writes: sw };
        let v = a.expr.eval(&view)?.coerce(a.ty);
        let (field, writes) = match a.scope {
            Scope::Shared => (&m.shared[a.index], &mut *sw),
            _ => (&m.record[a.index], &mut *rw),
        };
        if v.is_null() && !field.nullable {
            return Err(EvalError(format!("'{}' is not nullable but would be set to null", field.name).into()));
        }
        writes.set(a.index, v);
    }
    for call in &actions.effects {
        let def = &m.effects[call.effect];
        let view = View { record: base, shared, event: payload, record_writes: rw, shared_writes: sw };
        let mut args = Vec::with_capacity(call.args.len());
        for (f, e) in def.fields.iter().zip(&call.args) {
            let v = e.eval(&view)?.coerce(f.ty);
            if v.is_null() && !f.nullable {
                return Err(EvalError(format!("effect {}: field '{}' would be null", def.name, f.name).into()));
            }
            args.push(v);
        }
        effects.push((call.effect, args));
    }
    Ok(())
}

/// The invariants a transition into `state` breaks. Invariants that held before and read
/// no written field are skipped, except that entering a state checks all of its own and
/// starting a new run (a fresh record) checks everything.
fn violations_after(m: &Machine, state: usize, entered: bool, new_run: bool, view: &View) -> Vec<String> {
    let mut out = Vec::new();
    let globals = m.invariants.iter().filter(|inv| new_run || view.touches(inv));
    let own = m.states[state].invariants.iter().filter(|inv| entered || view.touches(inv));
    for inv in globals.chain(own) {
        report(m, state, inv, view, &mut out);
    }
    out
}

fn report(m: &Machine, state: usize, inv: &Invariant, view: &View, out: &mut Vec<String>) {
    match inv.check.holds(view) {
        Ok(true) => {}
        Ok(false) => out.push(format!("invariant `{}` of {} ({})", inv.source, m.states[state].name, inv.message)),
        Err(e) => out.push(format!("invariant `{}` of {} could not be evaluated: {e}", inv.source, m.states[state].name)),
    }
}

fn violations(m: &Machine, state: usize, view: &View) -> Vec<String> {
    let mut out = Vec::new();
    for inv in m.invariants.iter().chain(&m.states[state].invariants) {
        report(m, state, inv, view, &mut out);
    }
    out
}

fn render(parts: &[MessagePart], view: &View) -> String {
    let mut out = String::new();
    for p in parts {
        match p {
            MessagePart::Text(t) => out.push_str(t),
            MessagePart::Expr(e) => match e.eval(view) {
                Ok(Value::String(s)) => out.push_str(&s),
                Ok(v) => out.push_str(&v.to_string()),
                Err(_) => out.push('?'),
            },
        }
    }
    out
}
