//! Execution: many instances of one machine and one shared record.
//!
//! `apply` is atomic. Assignments write in place and keep what they overwrite; the apply
//! commits only when every expression evaluated and every invariant (global and of the
//! target state) holds. Otherwise everything written is put back, nothing changes and the
//! outcome says why.

use crate::expr::{Env, EvalError, Scope};
use crate::machine::{Actions, Candidate, Check, EventDef, FieldDef, Handling, Invariant, Machine, MessagePart, OtherCheck};
use crate::value::Value;
use std::collections::HashSet;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;

/// A misuse of the runtime by its caller (as opposed to an event the machine refuses).
#[derive(Clone, Debug, PartialEq)]
pub enum EngineError {
    NoSuchInstance { index: usize, count: usize },
    NoSuchEvent(String),
    NoSuchState(String),
    BadPayload(String),
    BadRecord(String),
    /// More than this process can allocate (a size the caller gave).
    TooLarge(String),
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::NoSuchInstance { index, count } => {
                write!(f, "no instance {index}: this runtime has {count} (0..{})", count.saturating_sub(1))
            }
            EngineError::NoSuchEvent(name) => write!(f, "unknown event '{name}'"),
            EngineError::NoSuchState(name) => write!(f, "unknown state '{name}'"),
            EngineError::BadPayload(msg) | EngineError::BadRecord(msg) | EngineError::TooLarge(msg) => f.write_str(msg),
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
    seen: Seen,
}

impl Instance {
    /// Asks for the record's cache lines and those of the de-dup keys' hashes.
    #[inline]
    fn prefetch(&self) {
        #[cfg(target_arch = "x86_64")]
        {
            let bytes = std::mem::size_of_val(self.record.as_slice());
            let start = self.record.as_ptr() as *const i8;
            for offset in (0..bytes).step_by(64) {
                // SAFETY: a prefetch is a hint; the addresses are inside the record.
                unsafe { std::arch::x86_64::_mm_prefetch(start.add(offset), std::arch::x86_64::_MM_HINT_T0) };
            }
        }
        self.seen.prefetch();
    }
}

/// The de-duplication keys of an instance's current run, each kept with its hash. An
/// event's key is hashed once: looked up before the apply, and inserted after it without
/// a second search (it was just looked up, and nothing the apply does can add it).
///
/// A run usually sees a handful of keys (a few events of a few kinds), so they
/// start in two small vectors: the hashes side by side, scanned in one cache line that
/// [`Seen::prefetch`] can fetch as soon as the event's instance is known (a hash table's
/// control bytes sit wherever the key's hash points, so they are a cache miss that no one
/// can ask for early: measured at half of `apply_in`'s own time at 10,000 instances). Past
/// [`Seen::SMALL`] keys they move to a hash table, so that a run of many events stays O(1)
/// per look-up.
#[derive(Clone, Debug)]
enum Seen {
    Small { hashes: Vec<u64>, keys: Vec<SeenKey> },
    Large(hashbrown::HashTable<(u64, SeenKey)>),
}

impl Default for Seen {
    fn default() -> Seen {
        Seen::Small { hashes: Vec::new(), keys: Vec::new() }
    }
}

impl Seen {
    /// The most keys kept in the vectors: 16 hashes are two cache lines to scan.
    const SMALL: usize = 16;

    fn from_keys(hasher: &KeyHasher, keys: Vec<SeenKey>) -> Seen {
        let mut seen = Seen::default();
        for key in keys {
            let hash = hasher.hash_one(&key);
            if !seen.contains(hash, &key) {
                seen.insert_new(hash, key);
            }
        }
        seen
    }

    #[inline]
    fn contains(&self, hash: u64, key: &SeenKey) -> bool {
        match self {
            Seen::Small { hashes, keys } => hashes.iter().zip(keys).any(|(h, k)| *h == hash && k == key),
            Seen::Large(table) => table.find(hash, |(h, k)| *h == hash && k == key).is_some(),
        }
    }

    /// Adds a key that [`contains`](Self::contains) just said is not there.
    #[inline]
    fn insert_new(&mut self, hash: u64, key: SeenKey) {
        match self {
            Seen::Small { hashes, keys } if hashes.len() < Self::SMALL => {
                if hashes.capacity() == 0 {
                    // Room for 8 keys: one allocation each for a typical run.
                    hashes.reserve_exact(8);
                    keys.reserve_exact(8);
                }
                hashes.push(hash);
                keys.push(key);
            }
            Seen::Small { hashes, keys } => {
                let mut table = hashbrown::HashTable::with_capacity(2 * Self::SMALL);
                for (h, k) in hashes.drain(..).zip(keys.drain(..)) {
                    table.insert_unique(h, (h, k), |(h, _)| *h);
                }
                table.insert_unique(hash, (hash, key), |(h, _)| *h);
                *self = Seen::Large(table);
            }
            Seen::Large(table) => {
                table.insert_unique(hash, (hash, key), |(h, _)| *h);
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            Seen::Small { hashes, .. } => hashes.len(),
            Seen::Large(table) => table.len(),
        }
    }

    /// Empties the set for a new run, keeping the vectors' room (a run that grew a table
    /// gives it back: the next run most likely needs only the vectors).
    fn clear(&mut self) {
        match self {
            Seen::Small { hashes, keys } => {
                hashes.clear();
                keys.clear();
            }
            Seen::Large(_) => *self = Seen::default(),
        }
    }

    fn keys(&self) -> Box<dyn Iterator<Item = &SeenKey> + '_> {
        match self {
            Seen::Small { keys, .. } => Box::new(keys.iter()),
            Seen::Large(table) => Box::new(table.iter().map(|(_, k)| k)),
        }
    }

    /// Asks for the cache line of hashes a look-up scans (see above).
    #[inline]
    fn prefetch(&self) {
        #[cfg(target_arch = "x86_64")]
        if let Seen::Small { hashes, .. } = self {
            if hashes.capacity() > 0 {
                // SAFETY: a prefetch is a hint; the address is the vector's own buffer.
                unsafe { std::arch::x86_64::_mm_prefetch(hashes.as_ptr() as *const i8, std::arch::x86_64::_MM_HINT_T0) };
            }
        }
    }
}

/// Hashes de-duplication keys: several times faster than SipHash on small ids, and seeded
/// per runtime so that crafted ids cannot degrade the tables (every instance of a runtime
/// shares the seed: a stored hash must match a fresh one).
type KeyHasher = foldhash::fast::RandomState;

/// One applied event's de-duplication key: its value, the value of the field that scopes
/// it (if the event declares one), and the space of events it can collide with
/// (`Machine::dedup_spaces`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeenKey {
    pub space: usize,
    pub scope: Option<Arc<str>>,
    pub key: Arc<str>,
}

/// A complete, self-contained copy of one instance.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceSnapshot {
    pub state: usize,
    pub record: Vec<Value>,
    pub seen: Vec<SeenKey>,
}

/// Instances of one machine plus the shared record.
#[derive(Clone, Debug)]
pub struct Runtime {
    machine: Arc<Machine>,
    defaults: Vec<Value>,
    instances: Vec<Instance>,
    /// How many instances are in each state: a transition that writes the shared record
    /// evaluates a shared-only invariant of a state once, and only when another instance
    /// is there (`OtherCheck`). Kept up to date by every change of state.
    in_state: Vec<usize>,
    shared: Vec<Value>,
    /// The values overwritten by the apply in progress (kept between calls so that an
    /// apply allocates nothing for it).
    undo: Undo,
    hasher: KeyHasher,
}

/// Writes are made in place, so that every read during an apply is a plain index; each
/// overwritten value is kept here until the apply commits (drop them) or fails (put them
/// back, newest first). Failing is rare: most refusals happen before anything is written.
#[derive(Clone, Debug, Default)]
struct Undo {
    overwritten: Vec<(Scope, usize, Value)>,
    /// The whole record an apply that starts a new run replaced with the defaults.
    record: Option<Vec<Value>>,
}

impl Undo {
    fn roll_back(&mut self, record: &mut Vec<Value>, shared: &mut [Value]) {
        while let Some((scope, i, old)) = self.overwritten.pop() {
            match scope {
                Scope::Shared => shared[i] = old,
                _ => record[i] = old,
            }
        }
        if let Some(old) = self.record.take() {
            *record = old;
        }
    }

}

/// An apply in progress over one instance's record and the shared record. Dropping it
/// puts back everything written, unless it was committed first: a refusal and a panic
/// that unwinds through an apply both leave the data as it was.
struct Pending<'a> {
    record: &'a mut Vec<Value>,
    shared: &'a mut [Value],
    undo: &'a mut Undo,
}

impl Pending<'_> {
    fn view<'v>(&'v self, event: &'v [Value]) -> View<'v> {
        View { record: self.record, shared: self.shared, event }
    }

    fn commit(self) {
        self.undo.overwritten.clear();
        self.undo.record = None;
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.undo.roll_back(self.record, self.shared);
    }
}

/// The values an expression sees.
struct View<'a> {
    record: &'a [Value],
    shared: &'a [Value],
    event: &'a [Value],
}

impl<'a> View<'a> {
    /// Committed data only.
    fn committed(record: &'a [Value], shared: &'a [Value]) -> View<'a> {
        View { record, shared, event: &[] }
    }
}

impl Env for View<'_> {
    #[inline(always)]
    fn get(&self, scope: Scope, index: usize) -> &Value {
        match scope {
            Scope::Record => &self.record[index],
            Scope::Shared => &self.shared[index],
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
        let instance = Instance { state: machine.initial, record: defaults.clone(), seen: Seen::default() };
        // The count is the caller's: a size no allocator can give must be an error, not the
        // abort `vec!` makes of it (or its "capacity overflow" panic).
        let mut instances = Vec::new();
        instances.try_reserve_exact(count).map_err(|e| {
            EngineError::TooLarge(format!(
                "cannot allocate {count} instances of {} bytes each: {e}",
                std::mem::size_of::<Instance>() + std::mem::size_of_val(defaults.as_slice())
            ))
        })?;
        instances.resize(count, instance);
        let mut in_state = vec![0; machine.states.len()];
        in_state[machine.initial] = count;
        let rt = Runtime {
            instances,
            in_state,
            undo: Undo::default(),
            hasher: KeyHasher::default(),
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

    /// Asks the processor to start fetching an instance's record, for a caller that knows
    /// which instance its next `apply` is for and has other work to do first: the fetch
    /// then overlaps that work instead of stalling the apply. Does nothing on other
    /// processors or for an index out of range.
    #[inline]
    pub fn prefetch(&self, index: usize) {
        if let Some(inst) = self.instances.get(index) {
            inst.prefetch();
        }
    }

    pub fn seen_count(&self, index: usize) -> Result<usize, EngineError> {
        Ok(self.instance(index)?.seen.len())
    }

    /// Applies event `event` with `payload` (one value per declared field) to an instance.
    pub fn apply(&mut self, index: usize, event: usize, mut payload: Vec<Value>) -> Result<Outcome, EngineError> {
        self.apply_in(index, event, &mut payload)
    }

    /// [`apply`](Self::apply) with a payload the caller keeps (to reuse its buffer): its
    /// values may be changed or moved out; clear it before the next use.
    pub fn apply_in(&mut self, index: usize, event: usize, payload: &mut [Value]) -> Result<Outcome, EngineError> {
        let Runtime { machine, defaults, instances, in_state, shared, undo, hasher } = self;
        let m: &Machine = machine;
        let count = instances.len();
        let ev = m.events.get(event).ok_or_else(|| EngineError::NoSuchEvent(format!("#{event}")))?;
        // The instance's record and de-dup keys arrive while the payload is checked and
        // hashed (a caller that knew the instance earlier has asked already: no harm).
        if let Some(inst) = instances.get(index) {
            inst.prefetch();
        }
        // The other instances stay readable: their invariants may read the shared record.
        let (before, rest) = instances.split_at_mut(index.min(count));
        let (inst, after) = rest.split_first_mut().ok_or(EngineError::NoSuchInstance { index, count })?;
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

        if !ev.checks.is_empty() {
            let view = View { record: &inst.record, shared, event: payload };
            for (ci, check) in ev.checks.iter().enumerate() {
                match check.guard.holds(&view) {
                    Ok(false) => {}
                    Ok(true) => {
                        // Named here, as the check's text is often shared by several events.
                        let text = match render(&check.message, &view) {
                            text if text.is_empty() => plain_check_refusal(m, ev, check.code),
                            text => format!("event {}: {text}", ev.name),
                        };
                        return Ok(refused(check.code, text));
                    }
                    Err(e) => {
                        let text = format!("event {}: payload check {ci} failed: {e}; nothing changed", ev.name);
                        return Ok(refused(m.builtin.evaluation_error, text));
                    }
                }
            }
        }

        // The key (and its scope) are moved out of the payload to look them up and put
        // back: cloning them would be atomic reference counts, which wait for memory.
        let dedup = match ev.dedup_key {
            Some(k) if matches!(payload[k], Value::String(_)) => Some(k),
            _ => None,
        };
        let mut key_hash = 0;
        if let Some(k) = dedup {
            let probe = seen_key(ev, payload, k);
            key_hash = hasher.hash_one(&probe);
            let seen = inst.seen.contains(key_hash, &probe);
            restore_key(ev, payload, k, probe);
            if seen {
                let scope = match ev.dedup_scope.map(|s| &payload[s]) {
                    Some(Value::String(s)) => format!(" for {} {s:?}", ev.fields[ev.dedup_scope.unwrap_or_default()].name),
                    _ => String::new(),
                };
                return Ok(refused(
                    m.builtin.duplicate,
                    format!(
                        "event {} with {} {}{scope} was already applied in this run; nothing changed",
                        ev.name,
                        ev.fields[k].name,
                        payload[k]
                    ),
                ));
            }
        }

        let cands = match &m.states[from].table[event] {
            Handling::Unhandled => {
                return Ok(refused(m.builtin.unhandled, format!("state {sname} does not handle event {}", ev.name)))
            }
            Handling::Refuse(code) => return Ok(refused(*code, plain_refusal(m, sname, ev, *code))),
            Handling::Candidates(c) => c,
        };
        let view = View { record: &inst.record, shared, event: &payload };
        let mut chosen = None;
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
            chosen = Some(cand);
            break;
        }
        let (new_run, actions, target, checks, others) = match chosen {
            None => {
                return Ok(refused(
                    m.builtin.no_candidate,
                    format!("state {sname}: no candidate for event {} applies; nothing changed", ev.name),
                ))
            }
            Some(Candidate::Refuse { code, message, .. }) => {
                let text = render(message, &view);
                let text = if text.is_empty() { plain_refusal(m, sname, ev, *code) } else { text };
                return Ok(refused(*code, text));
            }
            Some(Candidate::Take { new_run, actions, target, checks, others, .. }) => (*new_run, actions, *target, checks, others),
        };

        let to = target.unwrap_or(from);
        let entered = to != from || new_run;
        let mut pending = Pending { record: &mut inst.record, shared, undo };
        if new_run {
            pending.undo.record = Some(std::mem::replace(pending.record, defaults.clone()));
        }
        let mut effects = Vec::new();
        let mut step = run_actions(m, actions, &mut pending, &payload, &mut effects);
        if step.is_ok() && entered {
            step = run_actions(m, &m.states[to].on_entry, &mut pending, &payload, &mut effects);
        }
        let arrow = || format!("{sname} --{}--> {}", ev.name, m.states[to].name);
        let failure = match step {
            Err(e) => Some((m.builtin.evaluation_error, format!("{}: {e}; nothing changed", arrow()))),
            Ok(()) => {
                let mut failed = violations_of(m, to, checks, &pending.view(&payload));
                if failed.is_empty() && !others.is_empty() {
                    let others_in = |s: usize| in_state[s] - usize::from(s == from);
                    failed = violations_of_others(m, others, (before, index, after), others_in, pending.shared);
                }
                (!failed.is_empty())
                    .then(|| (m.builtin.invariant_violation, format!("{} would break {}; nothing changed", arrow(), failed.join("; "))))
            }
        };
        if let Some((code, message)) = failure {
            drop(pending); // puts back what was written
            return Ok(refused(code, message));
        }
        pending.commit();
        if new_run {
            inst.seen.clear();
        }
        if to != from {
            in_state[from] -= 1;
            in_state[to] += 1;
        }
        inst.state = to;
        if let Some(k) = dedup {
            // Moved, not cloned: the payload is ours (see above).
            inst.seen.insert_new(key_hash, seen_key(ev, payload, k));
        }
        Ok(Outcome {
            accepted: true,
            diagnostic: m.builtin.ok,
            message: None,
            state: to,
            transition: Some(Transition { from, event, to }),
            effects,
        })
    }

    /// A complete copy of one instance.
    pub fn snapshot(&self, index: usize) -> Result<InstanceSnapshot, EngineError> {
        let inst = self.instance(index)?;
        let mut seen: Vec<SeenKey> = inst.seen.keys().cloned().collect();
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
        let (staged, shared, problems) = self.stage(instances, shared);
        if !problems.is_empty() {
            return Err(problems);
        }
        for (index, snap) in staged {
            self.in_state[self.instances[index].state] -= 1;
            self.in_state[snap.state] += 1;
            self.instances[index] = Instance { state: snap.state, record: snap.record, seen: Seen::from_keys(&self.hasher, snap.seen) };
        }
        self.shared = shared;
        Ok(())
    }

    /// What [`replace`](Self::replace) would refuse, changing nothing: a caller that has
    /// already found other problems with its input reports these with them.
    pub fn replacement_problems(&self, instances: Vec<(usize, InstanceSnapshot)>, shared: Option<Vec<Value>>) -> Vec<String> {
        self.stage(instances, shared).2
    }

    /// The instances and shared record as they would be stored, and every problem with them.
    #[allow(clippy::type_complexity)]
    fn stage(&self, instances: Vec<(usize, InstanceSnapshot)>, shared: Option<Vec<Value>>) -> (Vec<(usize, InstanceSnapshot)>, Vec<Value>, Vec<String>) {
        let m = Arc::clone(&self.machine);
        let mut problems = Vec::new();
        let shared = match shared {
            Some(values) => {
                let values: Vec<Value> = values.into_iter().zip(&m.shared).map(|(v, f)| v.coerce(f.ty)).collect();
                if let Err(e) = check_values(|| "shared record".into(), &m.shared, &values) {
                    return (Vec::new(), values, vec![e]);
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
            return (staged, shared, problems);
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
        (staged, shared, problems)
    }
}

/// The message of a refusal the spec gives no text for: the state, the event, and what
/// the spec says the diagnostic means.
#[cold]
fn plain_refusal(m: &Machine, state: &str, ev: &EventDef, code: usize) -> String {
    match m.diagnostic_descriptions[code].as_str() {
        "" => format!("state {state} refuses event {}; nothing changed", ev.name),
        why => format!("state {state} refuses event {} ({}: {why}); nothing changed", ev.name, m.diagnostics[code]),
    }
}

/// The message of a payload check's refusal that the spec gives no text for.
#[cold]
fn plain_check_refusal(m: &Machine, ev: &EventDef, code: usize) -> String {
    match m.diagnostic_descriptions[code].as_str() {
        "" => format!("event {} is refused by its payload ({}); nothing changed", ev.name, m.diagnostics[code]),
        why => format!("event {} is refused by its payload ({}: {why}); nothing changed", ev.name, m.diagnostics[code]),
    }
}

/// The de-duplication key of an event whose key field `k` holds a string, moving the
/// key and scope strings out of the payload (`restore_key` puts them back).
fn seen_key(ev: &EventDef, payload: &mut [Value], k: usize) -> SeenKey {
    let take = |v: &mut Value| match std::mem::take(v) {
        Value::String(s) => Some(s),
        other => {
            *v = other;
            None
        }
    };
    let key = take(&mut payload[k]).unwrap_or_else(|| Arc::from(""));
    let scope = ev.dedup_scope.and_then(|s| take(&mut payload[s]));
    SeenKey { space: ev.dedup_space, scope, key }
}

fn restore_key(ev: &EventDef, payload: &mut [Value], k: usize, probe: SeenKey) {
    payload[k] = Value::String(probe.key);
    if let (Some(s), Some(scope)) = (ev.dedup_scope, probe.scope) {
        payload[s] = Value::String(scope);
    }
}

/// Runs assignments (in order, each seeing the ones before it) and evaluates effects,
/// writing in place and keeping every overwritten value in `undo`.
fn run_actions(
    m: &Machine,
    actions: &Actions,
    p: &mut Pending,
    payload: &[Value],
    effects: &mut Vec<(usize, Vec<Value>)>,
) -> Result<(), EvalError> {
    for a in &actions.assigns {
        let v = a.expr.eval(&p.view(payload))?.coerce(a.ty);
        let (field, target) = match a.scope {
            Scope::Shared => (&m.shared[a.index], &mut p.shared[a.index]),
            _ => (&m.record[a.index], &mut p.record[a.index]),
        };
        if v.is_null() && !field.nullable {
            return Err(EvalError(format!("'{}' is not nullable but would be set to null", field.name).into()));
        }
        p.undo.overwritten.push((a.scope, a.index, std::mem::replace(target, v)));
    }
    for call in &actions.effects {
        let def = &m.effects[call.effect];
        let view = p.view(payload);
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

/// The invariants among `checks` that fail after a transition into `state`.
fn violations_of(m: &Machine, state: usize, checks: &[Check], view: &View) -> Vec<String> {
    let mut out = Vec::new();
    for check in checks {
        let inv = match *check {
            Check::Global(i) => &m.invariants[i],
            Check::OfTarget(i) => &m.states[state].invariants[i],
        };
        report(m, state, inv, view, &mut out);
    }
    out
}

/// The invariants of other instances (`before`, the applying instance `index`, `after`)
/// that fail under the pending `shared` record; `others_in(state)` counts the other
/// instances in a state. At most a few are named: a shared total can break thousands.
fn violations_of_others(
    m: &Machine,
    checks: &[OtherCheck],
    (before, index, after): (&[Instance], usize, &[Instance]),
    others_in: impl Fn(usize) -> usize,
    shared: &[Value],
) -> Vec<String> {
    const NAMED: usize = 3;
    let others = || before.iter().enumerate().chain(after.iter().enumerate().map(|(i, inst)| (index + 1 + i, inst)));
    let mut out = Vec::new();
    let mut more = 0;
    let mut one = |i: usize, inst: &Instance, inv: &Invariant| {
        let mut found = Vec::new();
        report(m, inst.state, inv, &View::committed(&inst.record, shared), &mut found);
        for v in found {
            if out.len() < NAMED {
                out.push(format!("{v} for instance {i}"));
            } else {
                more += 1;
            }
        }
    };
    for check in checks {
        match *check {
            OtherCheck::SharedOfState { state, inv } if others_in(state) > 0 => {
                let inv = &m.states[state].invariants[inv];
                // Shared-only: one evaluation says it for every instance in the state; the
                // first of them is named.
                if !matches!(inv.check.holds(&View::committed(&[], shared)), Ok(true)) {
                    if let Some((i, inst)) = others().find(|(_, inst)| inst.state == state) {
                        one(i, inst, inv);
                    }
                }
            }
            OtherCheck::OfState { state, inv } if others_in(state) > 0 => {
                let inv = &m.states[state].invariants[inv];
                for (i, inst) in others().filter(|(_, inst)| inst.state == state) {
                    one(i, inst, inv);
                }
            }
            OtherCheck::Global(inv) => {
                for (i, inst) in others() {
                    one(i, inst, &m.invariants[inv]);
                }
            }
            _ => {}
        }
    }
    if more > 0 {
        out.push(format!("and {more} more"));
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
