//! Python bindings (`dita._engine`): a compiled `Machine` and a `Runtime` that executes it.
//!
//! Values cross as Python objects: decimals as `decimal.Decimal` (read from `Decimal`,
//! `str`, `int` or `float` through its shortest repr), strings, bools, ints, lists.
//! Every call is guarded so that a Rust panic surfaces as `EngineError`, never as a crash.

use crate::machine::{Candidate, Handling, Machine as Compiled};
use crate::runtime::{EngineError as RtError, InstanceSnapshot, Outcome as RtOutcome, Runtime as Rt, SeenKey, Transition};
use crate::python_decimal::read_decimal;
use crate::python_members::{Member, MemberReader};
use crate::value::{parse_decimal, parse_decimal_exact, BadDecimal, Ty, Value};
use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::{PyTraverseError, PyVisit};
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType};
use std::collections::HashMap;
use rust_decimal::Decimal;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

create_exception!(_engine, EngineError, PyValueError, "Bad input to the engine; nothing changed.");
create_exception!(_engine, SpecError, PyValueError, "A spec that cannot be compiled; `.problems` lists them.");

static DECIMAL: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn decimal_type(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    Ok(DECIMAL
        .get_or_try_init(py, || -> PyResult<_> { Ok(py.import("decimal")?.getattr("Decimal")?.unbind()) })?
        .bind(py))
}

/// Runs `f`, turning a panic into `EngineError` so Python never sees a crash.
fn guarded<T>(what: &str, f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(panic) => {
            let detail = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(EngineError::new_err(format!("internal engine error in {what}: {detail}; nothing changed")))
        }
    }
}

fn rt_err(e: RtError) -> PyErr {
    EngineError::new_err(e.to_string())
}

fn to_decimal(obj: &Bound<'_, PyAny>, what: &dyn Fn() -> String) -> PyResult<Decimal> {
    // The common case first: exactly a decimal.Decimal, read exactly (see python_decimal).
    let dec = decimal_type(obj.py())?;
    if obj.get_type().is(dec) {
        return read_decimal(obj, dec)?.map_err(|(text, why)| match why {
            BadDecimal::NotANumber => EngineError::new_err(format!("{} must be a finite decimal number, got {text:?}", what())),
            BadDecimal::Inexact => EngineError::new_err(format!("{}: {}", what(), why.describe(&text))),
        });
    }
    let bad = |got: String| EngineError::new_err(format!("{} must be a decimal number, got {got}", what()));
    if obj.is_instance_of::<PyBool>() {
        return Err(bad(format!("bool {}", obj.str()?)));
    }
    if let Ok(i) = obj.cast::<PyInt>() {
        return match i.extract::<i64>() {
            Ok(v) => Ok(Decimal::from(v)),
            // An int is a number, so a refusal can only be that it is too large to hold.
            Err(_) => parse_decimal(&i.str()?.to_string())
                .map_err(|why| EngineError::new_err(format!("{} is too large to hold exactly: {why}", what()))),
        };
    }
    let text: String = if let Ok(s) = obj.cast::<PyString>() {
        s.to_str()?.to_owned()
    } else if obj.is_instance_of::<PyFloat>() {
        // A float goes through its shortest repr: 0.1 is "0.1", not 0.1000000000000000055…
        obj.repr()?.to_str()?.to_owned()
    } else if obj.is_instance(decimal_type(obj.py())?)? {
        obj.str()?.to_str()?.to_owned()
    } else {
        return Err(bad(format!("{} {}", obj.get_type().name()?, obj.repr()?)));
    };
    match parse_decimal_exact(&text) {
        Ok(d) => Ok(d),
        Err(BadDecimal::NotANumber) => Err(bad(format!("{text:?}"))),
        Err(why) => Err(EngineError::new_err(format!("{}: {}", what(), why.describe(&text)))),
    }
}

/// A de-duplication key as plain data: `[key field, value]`, or for an event that declares
/// a scope `[key field, value, scope field, scope value]`, the scope value None when the
/// event's scope field was null. (The scope field is named even then: the two-part form
/// is the space of events without a scope, and a key must restore into its own space.)
fn seen_to_list(m: &Compiled, s: &SeenKey) -> Vec<Option<String>> {
    let (key_field, scope_field) = &m.dedup_spaces[s.space];
    let mut out = vec![Some(key_field.clone()), Some(s.key.to_string())];
    if let Some(field) = scope_field {
        out.push(Some(field.clone()));
        out.push(s.scope.as_ref().map(|v| v.to_string()));
    }
    out
}

fn seen_from_list(m: &Compiled, entry: &Bound<'_, PyAny>) -> PyResult<SeenKey> {
    let bad = || {
        EngineError::new_err(format!(
            "a de-duplication entry is [key field, value] or [key field, value, scope field, scope value or None], got {}",
            entry.repr().map(|r| r.to_string()).unwrap_or_default()
        ))
    };
    if entry.is_instance_of::<PyString>() {
        return Err(bad());
    }
    let parts: Vec<Option<String>> = entry.extract().map_err(|_| bad())?;
    let (key_field, key, scope) = match parts.as_slice() {
        [Some(f), Some(v)] => (f, v, None),
        [Some(f), Some(v), Some(sf), sv] => (f, v, Some((sf, sv))),
        _ => return Err(bad()),
    };
    let wanted = (key_field.clone(), scope.map(|(sf, _)| sf.clone()));
    let mut space = m.dedup_spaces.iter().position(|s| *s == wanted);
    if space.is_none() && scope.is_none() {
        // Written before the null scope was spelled out: a key of a scoped event whose
        // scope was null was `[key field, value]`. With one scoped space of that key
        // field and no unscoped one, it can only be that.
        let mut scoped = m.dedup_spaces.iter().enumerate().filter(|(_, (k, s))| k == key_field && s.is_some());
        if let (Some((i, _)), None) = (scoped.next(), scoped.next()) {
            space = Some(i);
        }
    }
    let space = space.ok_or_else(|| {
        let known: Vec<String> = m
            .dedup_spaces
            .iter()
            .filter(|(k, _)| !k.is_empty())
            .map(|(k, s)| match s {
                Some(s) => format!("{k} within {s}"),
                None => k.clone(),
            })
            .collect();
        EngineError::new_err(format!(
            "no event de-duplicates by {}{} (the spec's keys: {})",
            key_field,
            scope.map(|(sf, _)| format!(" within {sf}")).unwrap_or_default(),
            known.join(", ")
        ))
    })?;
    let scope = scope.and_then(|(_, sv)| sv.as_deref().map(Arc::from));
    Ok(SeenKey { space, scope, key: Arc::from(key.as_str()) })
}

/// An instance index given by the caller: an int in the runtime's range. A negative int, a
/// bool or one too large for an index is named as such (pyo3's own conversion raises a
/// bare OverflowError or TypeError that says neither which argument nor what is allowed).
fn instance_arg(obj: &Bound<'_, PyAny>, count: usize) -> PyResult<usize> {
    let range = match count {
        0 => "this runtime has no instances".to_string(),
        n => format!("from 0 to {}", n - 1),
    };
    let bad = || -> PyResult<usize> {
        Err(EngineError::new_err(format!("instance must be an int {range}, got {}", obj.repr()?)))
    };
    if obj.is_instance_of::<PyBool>() || !obj.is_instance_of::<PyInt>() {
        return bad();
    }
    match obj.extract::<usize>() {
        Ok(i) => Ok(i),
        Err(_) => bad(),
    }
}

/// What a payload holds for a field the event's handling never reads (`EventDef::read`):
/// checked exactly as [`to_value`] checks it, but a string, which would cost an allocation
/// and its release for nothing, is not copied: every such field holds the same shared text.
/// Other types convert as usual (they allocate nothing).
fn unread_value(obj: &Bound<'_, PyAny>, ty: Ty, nullable: bool, what: &dyn Fn() -> String) -> PyResult<Value> {
    static UNREAD: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| Arc::from("(a field nothing reads)"));
    match obj.cast::<PyString>() {
        Ok(s) if ty == Ty::String && s.to_str().is_ok() => Ok(Value::String(Arc::clone(&UNREAD))),
        _ => to_value(obj, ty, nullable, what),
    }
}

fn to_value(obj: &Bound<'_, PyAny>, ty: Ty, nullable: bool, what: &dyn Fn() -> String) -> PyResult<Value> {
    if obj.is_none() {
        return if nullable {
            Ok(Value::Null)
        } else {
            Err(EngineError::new_err(format!("{} is required (not nullable)", what())))
        };
    }
    let wrong = |want: &str| -> PyResult<Value> {
        Err(EngineError::new_err(format!(
            "{} must be {want}, got {} {}",
            what(),
            obj.get_type().name()?,
            obj.repr()?
        )))
    };
    Ok(match ty {
        Ty::Decimal => Value::Decimal(to_decimal(obj, what)?),
        Ty::String => match obj.cast::<PyString>() {
            Ok(s) => match s.to_str() {
                Ok(text) => Value::String(Arc::from(text)),
                // A lone surrogate: a Python string that is not text UTF-8 can hold.
                Err(e) => return Err(EngineError::new_err(format!("{} must be valid text, got {} ({e})", what(), obj.repr()?))),
            },
            Err(_) => return wrong("a string"),
        },
        Ty::Bool => match obj.cast::<PyBool>() {
            Ok(b) => Value::Bool(b.is_true()),
            Err(_) => return wrong("a bool"),
        },
        Ty::Int => {
            if obj.is_instance_of::<PyBool>() || !obj.is_instance_of::<PyInt>() {
                return wrong("an int");
            }
            match obj.extract::<i64>() {
                Ok(i) => Value::Int(i),
                Err(_) => return Err(EngineError::new_err(format!("{} must be an int from -2**63 to 2**63-1, got {}", what(), obj.repr()?))),
            }
        }
        Ty::DecimalList => {
            // A list or a tuple only: other iterables (bytes, a dict's keys, a set's
            // arbitrary order, a one-shot generator) are more likely a mistake than a list.
            if !(obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>()) {
                return wrong("a list of decimals (a list or a tuple)");
            }
            let Ok(iter) = obj.try_iter() else { return wrong("a list of decimals") };
            let mut items = Vec::new();
            for (i, item) in iter.enumerate() {
                items.push(to_decimal(&item?, &|| format!("{}[{i}]", what()))?);
            }
            Value::DecimalList(items.into())
        }
    })
}

fn from_value(py: Python<'_>, v: &Value) -> PyResult<Py<PyAny>> {
    Ok(match v {
        Value::Null => py.None(),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any().unbind(),
        Value::Int(i) => i.into_pyobject(py)?.into_any().unbind(),
        Value::Decimal(d) => decimal_type(py)?.call1((d.normalize().to_string(),))?.unbind(),
        Value::String(s) => PyString::new(py, s).into_any().unbind(),
        Value::DecimalList(items) => {
            let dec = decimal_type(py)?;
            let objs = items.iter().map(|d| dec.call1((d.normalize().to_string(),))).collect::<PyResult<Vec<_>>>()?;
            PyTuple::new(py, objs)?.into_any().unbind()
        }
    })
}

/// Reads the payload of event `ei` from `payload`: any object whose attributes (or a dict
/// whose keys) are the event's declared fields; a missing field is null.
/// Whether applying event `ei` can emit an effect in some state: one of its candidates
/// emits one, or leads into a state whose `on_entry` does.
fn may_emit(m: &Compiled, ei: usize) -> bool {
    m.states.iter().enumerate().any(|(from, state)| match &state.table[ei] {
        Handling::Candidates(cands) => cands.iter().any(|c| match c {
            Candidate::Take { actions, target, new_run, .. } => {
                let to = target.unwrap_or(from);
                !actions.effects.is_empty() || ((to != from || *new_run) && !m.states[to].on_entry.effects.is_empty())
            }
            Candidate::Refuse { .. } => false,
        }),
        _ => false,
    })
}

/// `known`: a field whose value the caller already has (its index and the string).
/// `members`: where each field lives in the payload object, when a [`MemberReader`] may read it.
fn read_payload(
    py: Python<'_>,
    m: &Machine,
    ei: usize,
    payload: Option<&Bound<'_, PyAny>>,
    known: Option<(usize, &Arc<str>)>,
    members: Option<&[Option<Member>]>,
) -> PyResult<Vec<Value>> {
    let mut values = Vec::with_capacity(m.inner.events[ei].fields.len());
    read_payload_into(py, m, ei, payload, known, members, &mut values)?;
    Ok(values)
}

/// [`read_payload`] into `values` (cleared first), so that a caller can reuse one buffer.
fn read_payload_into(
    py: Python<'_>,
    m: &Machine,
    ei: usize,
    payload: Option<&Bound<'_, PyAny>>,
    known: Option<(usize, &Arc<str>)>,
    members: Option<&[Option<Member>]>,
    values: &mut Vec<Value>,
) -> PyResult<()> {
    let def = &m.inner.events[ei];
    let event = &def.name;
    values.clear();
    if def.fields.is_empty() {
        return Ok(());
    }
    let Some(obj) = payload else {
        return Err(EngineError::new_err(format!("event {event} needs a payload")));
    };
    let dict = obj.cast::<PyDict>().ok();
    if let Some(members) = members {
        for at in members.iter().flatten() {
            // SAFETY: the caller checked that the reader may read `obj`.
            unsafe { MemberReader::prefetch(obj, *at) };
        }
    }
    // The dict's keys that name a field: any other key is a mistake (a misspelt field read
    // as a missing one would silently take null or the default).
    let mut found = 0;
    for (i, (f, pyname)) in def.fields.iter().zip(&m.event_fields[ei]).enumerate() {
        if let Some((_, text)) = known.filter(|(k, _)| *k == i) {
            values.push(Value::String(Arc::clone(text)));
            continue;
        }
        // A field with a default may be left out or None: the engine supplies the default.
        let optional = f.nullable || !f.default.is_null();
        let what = || format!("event {event}: field '{}'", f.name);
        let missing = || EngineError::new_err(format!("event {event}: field '{}' is missing", f.name));
        let v = if let Some(at) = members.and_then(|s| s[i]) {
            // Read in place, without a reference of our own: the event holds one while we
            // read, and taking ours would write to every (often cold) object it points to.
            // SAFETY: as above; an unset member is a missing attribute, as for getattr.
            match unsafe { MemberReader::get(obj, at) } {
                Some(item) if !def.read[i] => unread_value(&item, f.ty, optional, &what)?,
                Some(item) => to_value(&item, f.ty, optional, &what)?,
                None if optional => Value::Null,
                None => return Err(missing()),
            }
        } else {
            let item = match dict {
                Some(d) => d.get_item(pyname.bind(py))?.inspect(|_| found += 1),
                None => match obj.getattr(pyname.bind(py)) {
                    Ok(v) => Some(v),
                    Err(e) if e.is_instance_of::<pyo3::exceptions::PyAttributeError>(py) => None,
                    Err(e) => return Err(e),
                },
            };
            match item {
                Some(item) if !def.read[i] => unread_value(&item, f.ty, optional, &what)?,
                Some(item) => to_value(&item, f.ty, optional, &what)?,
                None if optional => Value::Null,
                None => return Err(missing()),
            }
        };
        values.push(v);
    }
    if let Some(d) = dict.filter(|d| d.len() != found) {
        let unknown: Vec<String> = d
            .keys()
            .iter()
            .filter(|k| !k.extract::<String>().is_ok_and(|k| def.fields.iter().any(|f| f.name == k)))
            .map(|k| match k.cast::<PyString>() {
                Ok(s) => format!("'{s}'"),
                Err(_) => k.repr().map(|r| r.to_string()).unwrap_or_default(),
            })
            .collect();
        if !unknown.is_empty() {
            let fields: Vec<&str> = def.fields.iter().map(|f| f.name.as_str()).collect();
            return Err(EngineError::new_err(format!(
                "event {event}: unknown field{} {} (fields: {})",
                if unknown.len() > 1 { "s" } else { "" },
                unknown.join(", "),
                fields.join(", ")
            )));
        }
    }
    Ok(())
}

/// A compiled machine.
#[pyclass(frozen, module = "dita._engine")]
pub struct Machine {
    inner: Arc<Compiled>,
    state_names: Vec<Py<PyString>>,
    event_names: Vec<Py<PyString>>,
    diagnostic_names: Vec<Py<PyString>>,
    effect_names: Vec<Py<PyString>>,
    /// Per event, the Python names of its payload fields (interned once).
    event_fields: Vec<Vec<Py<PyString>>>,
    /// Per effect, the names of its fields; the names of the record's and the shared
    /// record's fields: the keys of the dicts handed to Python, made once.
    effect_fields: Vec<Vec<Py<PyString>>>,
    record_fields: Vec<Py<PyString>>,
    shared_fields: Vec<Py<PyString>>,
    /// `((from, event, to),)` per possible transition, made the first time it is taken:
    /// outcomes share these immutable tuples instead of building two per event. Only the
    /// transitions some candidate can take have one (a cell for every (state, event, state)
    /// took gigabytes for a machine of many states and events that takes few of them):
    /// those of `(from, event)` are `transitions[transition_at[from * events + event]..]`
    /// up to the next pair's start, each with its target (usually one or two to look at).
    transition_at: Vec<u32>,
    transitions: Vec<(usize, PyOnceLock<Py<PyTuple>>)>,
}

/// The tables of [`Machine::transition_at`] and [`Machine::transitions`], built from the
/// candidates: one entry per distinct target of each (state, event) pair. Fails cleanly on
/// a machine too large to hold them (a table sized by the spec must not abort the process).
#[allow(clippy::type_complexity)]
fn transition_tables(m: &Compiled) -> Result<(Vec<u32>, Vec<(usize, PyOnceLock<Py<PyTuple>>)>), String> {
    let ne = m.events.len();
    let pairs = m.states.len().checked_mul(ne).and_then(|n| n.checked_add(1)).ok_or("too many states and events")?;
    let mut at: Vec<u32> = Vec::new();
    at.try_reserve_exact(pairs).map_err(|e| format!("cannot allocate the transition table of {pairs} pairs: {e}"))?;
    let mut targets: Vec<(usize, PyOnceLock<Py<PyTuple>>)> = Vec::new();
    for (from, state) in m.states.iter().enumerate() {
        for handling in &state.table {
            at.push(u32::try_from(targets.len()).map_err(|_| "more than 2^32 transitions")?);
            let start = targets.len();
            if let Handling::Candidates(cands) = handling {
                for cand in cands {
                    if let Candidate::Take { target, .. } = cand {
                        let to = target.unwrap_or(from);
                        if !targets[start..].iter().any(|(t, _)| *t == to) {
                            targets.push((to, PyOnceLock::new()));
                        }
                    }
                }
            }
        }
    }
    at.push(u32::try_from(targets.len()).map_err(|_| "more than 2^32 transitions")?);
    Ok((at, targets))
}

impl Machine {
    /// The shared `((from, event, to),)` tuple of a transition.
    fn transition_tuple<'py>(&self, py: Python<'py>, t: Transition) -> PyResult<Bound<'py, PyTuple>> {
        let pair = t.from * self.event_names.len() + t.event;
        let (start, end) = (self.transition_at[pair] as usize, self.transition_at[pair + 1] as usize);
        let Some((_, cell)) = self.transitions[start..end].iter().find(|(to, _)| *to == t.to) else {
            // The runtime takes only the candidates' transitions; never reached.
            return Err(EngineError::new_err(format!("internal engine error: transition {t:?} is not in the machine's table")));
        };
        let tuple = cell.get_or_try_init(py, || -> PyResult<_> {
            let names = [self.state_names[t.from].clone_ref(py), self.event_names[t.event].clone_ref(py), self.state_names[t.to].clone_ref(py)];
            Ok(PyTuple::new(py, [PyTuple::new(py, names)?])?.unbind())
        })?;
        Ok(tuple.bind(py).clone())
    }
}

fn names(py: Python<'_>, items: impl Iterator<Item = String>) -> Vec<Py<PyString>> {
    items.map(|n| PyString::intern(py, &n).unbind()).collect()
}

#[pymethods]
impl Machine {
    /// Compiles a spec from its JSON text; raises `SpecError` whose `problems` is a list of
    /// `(path, code, message, hint)`.
    #[staticmethod]
    fn from_json(py: Python<'_>, text: &str) -> PyResult<Machine> {
        let compiled = guarded("compile", || match Compiled::compile_json(text) {
            Ok(m) => Ok(m),
            Err(e) => {
                let problems: Vec<(String, String, String, Option<String>)> =
                    e.problems.iter().map(|p| (p.path.clone(), p.code.to_string(), p.message.clone(), p.hint.clone())).collect();
                let err = SpecError::new_err(e.to_string());
                err.value(py).setattr("problems", problems)?;
                Err(err)
            }
        })?;
        let m = Arc::new(compiled);
        let (transition_at, transitions) = transition_tables(&m).map_err(|e| EngineError::new_err(format!("machine {}: {e}", m.name)))?;
        Ok(Machine {
            state_names: names(py, m.states.iter().map(|s| s.name.clone())),
            event_names: names(py, m.events.iter().map(|e| e.name.clone())),
            diagnostic_names: names(py, m.diagnostics.iter().cloned()),
            effect_names: names(py, m.effects.iter().map(|e| e.name.clone())),
            event_fields: m.events.iter().map(|e| names(py, e.fields.iter().map(|f| f.name.clone()))).collect(),
            effect_fields: m.effects.iter().map(|e| names(py, e.fields.iter().map(|f| f.name.clone()))).collect(),
            record_fields: names(py, m.record.iter().map(|f| f.name.clone())),
            shared_fields: names(py, m.shared.iter().map(|f| f.name.clone())),
            transition_at,
            transitions,
            inner: m,
        })
    }

    #[getter]
    fn name(&self) -> String {
        self.inner.name.clone()
    }

    #[getter]
    fn version(&self) -> u32 {
        self.inner.version
    }

    #[getter]
    fn initial(&self, py: Python<'_>) -> Py<PyString> {
        self.state_names[self.inner.initial].clone_ref(py)
    }

    #[getter]
    fn states(&self) -> Vec<String> {
        self.inner.states.iter().map(|s| s.name.clone()).collect()
    }

    #[getter]
    fn events(&self) -> Vec<String> {
        self.inner.events.iter().map(|e| e.name.clone()).collect()
    }

    #[getter]
    fn diagnostics(&self) -> Vec<String> {
        self.inner.diagnostics.clone()
    }

    /// The machine's structure as plain data, for tools that check or draw it.
    fn describe<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let m = &*self.inner;
        let out = PyDict::new(py);
        let fields = |fs: &[crate::machine::FieldDef]| -> PyResult<Bound<'py, PyList>> {
            let list = PyList::empty(py);
            for f in fs {
                list.append((f.name.clone(), f.ty.name(), f.nullable, from_value(py, &f.default)?))?;
            }
            Ok(list)
        };
        out.set_item("name", &m.name)?;
        out.set_item("initial", &m.states[m.initial].name)?;
        out.set_item("record", fields(&m.record)?)?;
        out.set_item("shared", fields(&m.shared)?)?;
        let events = PyDict::new(py);
        for e in &m.events {
            events.set_item(&e.name, fields(&e.fields)?)?;
        }
        out.set_item("events", events)?;
        let effects = PyDict::new(py);
        for e in &m.effects {
            effects.set_item(&e.name, fields(&e.fields)?)?;
        }
        out.set_item("effects", effects)?;
        let states = PyList::empty(py);
        for s in &m.states {
            let d = PyDict::new(py);
            d.set_item("name", &s.name)?;
            d.set_item("initial", s.initial)?;
            d.set_item("terminal", s.terminal)?;
            let on = PyDict::new(py);
            let refuse = PyDict::new(py);
            for (ei, h) in s.table.iter().enumerate() {
                let ename = &m.events[ei].name;
                match h {
                    Handling::Unhandled => {}
                    Handling::Refuse(code) => refuse.set_item(ename, &m.diagnostics[*code])?,
                    Handling::Candidates(cands) => {
                        let list = PyList::empty(py);
                        for c in cands {
                            match c {
                                Candidate::Take { guard, target, .. } => list.append((
                                    "take",
                                    target.map_or(s.name.clone(), |t| m.states[t].name.clone()),
                                    guard.is_some(),
                                ))?,
                                Candidate::Refuse { guard, code, .. } => {
                                    list.append(("refuse", m.diagnostics[*code].clone(), guard.is_some()))?
                                }
                            }
                        }
                        on.set_item(ename, list)?;
                    }
                }
            }
            d.set_item("on", on)?;
            d.set_item("refuse", refuse)?;
            states.append(d)?;
        }
        out.set_item("states", states)?;
        Ok(out)
    }
}

/// Instances of a machine and its shared record.
///
/// Callable from several threads: each call holds the runtime's lock while it runs. A call
/// that finds it held (another thread's call was interrupted by a thread switch inside the
/// engine, e.g. when an allocation ran the garbage collector) waits for it with the GIL
/// released, instead of failing as a borrowed object would.
#[pyclass(frozen, module = "dita._engine")]
pub struct Runtime {
    state: Mutex<RuntimeState>,
    /// The thread holding `state` (0: none), to tell a re-entrant call from a waiting one.
    holder: AtomicU64,
    /// A thread that has the runtime to itself across several calls (0: none; see
    /// `reserve`): `dispatch` from any other thread hands its event to the fallback.
    reserved: AtomicU64,
}

pub struct RuntimeState {
    rt: Rt,
    machine: Py<Machine>,
    /// Which instance takes the events that carry a given routing key (see `dispatch`).
    routes: HashMap<Arc<str>, Route, foldhash::fast::RandomState>,
    /// Each routed instance's index as a Python int, made once (Python caches only the
    /// ints up to 256): the outcomes' `instance`.
    instance_objs: Vec<Option<Py<PyAny>>>,
    dispatcher: Option<Dispatcher>,
    payload_buffer: Vec<Value>,
}

// Kept small (16 bytes; 32 with its key): a look-up's one cache miss is the table's entry,
// and at 20,000 routes a smaller table keeps more of its entries in cache (the key itself,
// the table's, is handed to the engine as the payload's key field).
struct Route {
    instance: usize,
    /// Where the accepted events of the logged kinds for this key are appended.
    log: Option<Py<PyList>>,
}

/// How `dispatch` reads an event object and what it builds (set by `configure_dispatch`).
struct Dispatcher {
    event_type: Py<PyType>,
    kind_attr: Py<PyString>,
    key_attr: Py<PyString>,
    outcome_type: Py<PyType>,
    fallback: Py<PyAny>,
    /// Per event index: whether accepted events of that kind go to the route's log.
    logged: Vec<bool>,
    /// Per event index: the payload field named like the routing key, if there is one.
    key_field: Vec<Option<usize>>,
    /// Where the attributes live in objects of `event_type`, when it declares them.
    members: Option<EventMembers>,
    /// Per effect index: how the dispatcher answers that effect itself, if it does.
    answers: Vec<Option<Answer>>,
    /// Per event index: whether an event object may name it (the others go to the fallback).
    dispatchable: Vec<bool>,
}

/// An effect the dispatcher performs without the fallback: its fields are appended to
/// `sink` as a dict (with the instance under `instance_key`, if given), then `event` is
/// applied to the same instance.
struct Answer {
    event: usize,
    sink: Py<PyList>,
    instance_key: Option<Py<PyString>>,
}

struct EventMembers {
    reader: MemberReader,
    kind: Member,
    key: Member,
    /// Per event index, per payload field.
    fields: Vec<Vec<Option<Member>>>,
}

impl EventMembers {
    fn new(py: Python<'_>, m: &Machine, ty: &Bound<'_, PyType>, kind: &Bound<'_, PyString>, key: &Bound<'_, PyString>) -> Option<EventMembers> {
        let kind = MemberReader::member(ty, kind)?;
        let key = MemberReader::member(ty, key)?;
        let fields = m.event_fields.iter().map(|names| names.iter().map(|n| MemberReader::member(ty, n.bind(py))).collect()).collect();
        // Last: the lookups above give the type a version tag if it had none.
        Some(EventMembers { reader: MemberReader::new(ty)?, kind, key, fields })
    }
}

/// What one call did, as a Python object: the engine's outcome with the names the caller
/// reads. Subclassable, so that an application can give it its own name and extra views.
#[pyclass(frozen, subclass, module = "dita._engine")]
pub struct Outcome {
    #[pyo3(get)]
    accepted: bool,
    #[pyo3(get)]
    diagnostic_code: Py<PyAny>,
    #[pyo3(get)]
    state: Py<PyAny>,
    #[pyo3(get)]
    instance: Py<PyAny>,
    #[pyo3(get)]
    transitions: Py<PyAny>,
    #[pyo3(get)]
    emitted_events: Py<PyAny>,
    #[pyo3(get)]
    refused_events: Py<PyAny>,
    #[pyo3(get)]
    message: Py<PyAny>,
}

#[pymethods]
impl Outcome {
    #[new]
    #[pyo3(signature = (accepted, diagnostic_code, state, instance, transitions=None, emitted_events=None, refused_events=None, message=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        accepted: bool,
        diagnostic_code: Py<PyAny>,
        state: Py<PyAny>,
        instance: Py<PyAny>,
        transitions: Option<Py<PyAny>>,
        emitted_events: Option<Py<PyAny>>,
        refused_events: Option<Py<PyAny>>,
        message: Option<Py<PyAny>>,
    ) -> Outcome {
        let empty = || PyTuple::empty(py).into_any().unbind();
        Outcome {
            accepted,
            diagnostic_code,
            state,
            instance,
            transitions: transitions.unwrap_or_else(empty),
            emitted_events: emitted_events.unwrap_or_else(empty),
            refused_events: refused_events.unwrap_or_else(empty),
            message: message.unwrap_or_else(|| py.None()),
        }
    }
}

impl RuntimeState {
    /// Instance `instance` as a Python int: the one made when it was routed, if it was.
    fn instance_obj(&self, py: Python<'_>, instance: usize) -> Py<PyAny> {
        match self.instance_objs.get(instance) {
            Some(Some(obj)) => obj.clone_ref(py),
            _ => instance.into_pyobject(py).map(|i| i.into_any().unbind()).unwrap_or_else(|e| match e {}),
        }
    }

    fn outcome<'py>(&self, py: Python<'py>, out: RtOutcome) -> PyResult<Bound<'py, PyTuple>> {
        let m = self.machine.get();
        let transition = match out.transition {
            Some(t) => m.transition_tuple(py, t)?.get_item(0)?,
            None => py.None().into_bound(py),
        };
        let effects = if out.effects.is_empty() {
            PyTuple::empty(py).into_any()
        } else {
            let list = PyList::empty(py);
            for (ei, args) in &out.effects {
                let d = PyDict::new(py);
                for (name, v) in m.effect_fields[*ei].iter().zip(args) {
                    d.set_item(name.bind(py), from_value(py, v)?)?;
                }
                list.append((m.effect_names[*ei].clone_ref(py), d))?;
            }
            list.into_any()
        };
        PyTuple::new(
            py,
            [
                PyBool::new(py, out.accepted).to_owned().into_any(),
                m.diagnostic_names[out.diagnostic].bind(py).clone().into_any(),
                m.state_names[out.state].bind(py).clone().into_any(),
                transition,
                effects,
                match out.message {
                    Some(s) => PyString::new(py, &s).into_any(),
                    None => py.None().into_bound(py),
                },
            ],
        )
    }

    /// `defaults`: a field the dict leaves out takes the spec's default (else it is an error).
    fn record_from_dict(&self, py: Python<'_>, fields: &[crate::machine::FieldDef], d: &Bound<'_, PyAny>, what: &str, defaults: bool) -> PyResult<Vec<Value>> {
        let dict = d.cast::<PyDict>().map_err(|_| EngineError::new_err(format!("{what} must be a dict")))?;
        for key in dict.keys() {
            let k: String = key.extract()?;
            if !fields.iter().any(|f| f.name == k) {
                return Err(EngineError::new_err(format!("{what}: unknown field '{k}'")));
            }
        }
        if !defaults {
            let mut missing = Vec::new();
            for f in fields {
                if dict.get_item(&f.name)?.is_none() {
                    missing.push(format!("'{}'", f.name));
                }
            }
            if !missing.is_empty() {
                return Err(EngineError::new_err(format!(
                    "{what} lacks field{} {} (a snapshot gives every field{})",
                    if missing.len() > 1 { "s" } else { "" },
                    missing.join(", "),
                    if what == "record" { "; record_defaults=True gives the rest the spec's defaults" } else { "" }
                )));
            }
        }
        let mut out = Vec::with_capacity(fields.len());
        for f in fields {
            let v = match dict.get_item(&f.name)? {
                Some(obj) => to_value(&obj, f.ty, f.nullable, &|| format!("{what}.{}", f.name))?,
                None => f.default.clone(),
            };
            out.push(v);
        }
        let _ = py;
        Ok(out)
    }
}

enum Dispatched {
    Done(Py<PyAny>),
    Fallback(Py<PyAny>, Py<PyAny>),
}

impl RuntimeState {
    /// `elsewhere`: another thread has the runtime reserved (see `Runtime::reserve`).
    fn dispatch_fast(&mut self, event: &Bound<'_, PyAny>, elsewhere: bool) -> PyResult<Dispatched> {
        let py = event.py();
        let Some(d) = &self.dispatcher else {
            return Err(EngineError::new_err("dispatch is not configured (call configure_dispatch first)"));
        };
        let fallback = || Ok(Dispatched::Fallback(d.fallback.clone_ref(py), py.None()));
        if elsewhere || !event.get_type().is(d.event_type.bind(py)) {
            return fallback();
        }
        let direct = d.members.as_ref().filter(|s| s.reader.reads(event));
        // An unset member falls to getattr, which raises the AttributeError it always raised.
        // SAFETY: `direct` is set only when the reader may read `event`.
        let attr = |at: Option<Member>, name: &Py<PyString>| match at.and_then(|s| unsafe { MemberReader::get(event, s) }) {
            Some(v) => Ok(v.to_owned()),
            None => event.getattr(name.bind(py)),
        };
        let key = attr(direct.map(|s| s.key), &d.key_attr)?;
        let Ok(key) = key.cast::<PyString>() else { return fallback() };
        // A key that is not valid text names no route: the fallback says what is wrong.
        let Ok(text) = key.to_str() else { return fallback() };
        // Read before the route is known; whatever is wrong with it, the fallback says.
        let Ok(kind) = attr(direct.map(|s| s.kind), &d.kind_attr) else { return fallback() };
        let m = self.machine.get();
        // Event names are interned, and so usually is the caller's: compare pointers first.
        let ei = match m.event_names.iter().position(|n| n.as_ptr() == kind.as_ptr()) {
            Some(i) => i,
            None => match kind.cast::<PyString>() {
                Ok(k) => match m.inner.event_index(k.to_str()?) {
                    Some(i) => i,
                    None => return fallback(),
                },
                Err(_) => return fallback(),
            },
        };
        if !d.dispatchable[ei] {
            return fallback();
        }
        // What the event's fields point to (its id and other strings, its numbers) arrives
        // while the route is looked up, and the instance's record while the fields are read:
        // the cache misses overlap instead of following one another.
        if let Some(s) = direct {
            for at in s.fields[ei].iter().flatten() {
                // SAFETY: `direct` is set only when the reader may read `event`.
                unsafe { MemberReader::prefetch(event, *at) };
            }
        }
        let Some((route_key, route)) = self.routes.get_key_value(text) else { return fallback() };
        self.rt.prefetch(route.instance);
        // One payload buffer serves every event: no allocation per event.
        let values = &mut self.payload_buffer;
        if read_payload_into(py, m, ei, Some(event), d.key_field[ei].map(|k| (k, route_key)), direct.map(|s| &s.fields[ei][..]), values).is_err() {
            return fallback();
        }
        let instance = route.instance;
        let applied = self.rt.apply_in(instance, ei, values);
        values.clear();
        let out = match applied {
            Ok(out) => out,
            Err(_) => return fallback(),
        };
        if out.accepted && d.logged[ei] {
            if let Some(log) = &route.log {
                log.bind(py).append(event)?;
            }
        }
        // A logged event the machine could not take at all (an expression failed, or an
        // invariant would break) is the caller's to handle, not a plain refusal.
        let builtin = &m.inner.builtin;
        if !out.accepted && d.logged[ei] && (out.diagnostic == builtin.evaluation_error || out.diagnostic == builtin.invariant_violation) {
            let applied = self.outcome(py, out)?.into_any().unbind();
            return Ok(Dispatched::Fallback(d.fallback.clone_ref(py), applied));
        }
        let mut state = out.state;
        let transitions = if out.effects.is_empty() {
            match out.transition {
                Some(t) => m.transition_tuple(py, t)?.into_any().unbind(),
                None => PyTuple::empty(py).into_any().unbind(),
            }
        } else if out.accepted && out.effects.iter().all(|(fx, _)| d.answers[*fx].is_some()) {
            let mut taken: Vec<Bound<'_, PyAny>> = Vec::with_capacity(1 + out.effects.len());
            if let Some(t) = out.transition {
                taken.push(m.transition_tuple(py, t)?.get_item(0)?);
            }
            for (fx, args) in &out.effects {
                let Some(answer) = &d.answers[*fx] else { unreachable!("checked above") };
                let record = PyDict::new(py);
                for (name, v) in m.effect_fields[*fx].iter().zip(args) {
                    record.set_item(name.bind(py), from_value(py, v)?)?;
                }
                if let Some(key) = &answer.instance_key {
                    record.set_item(key.bind(py), self.instance_obj(py, instance))?;
                }
                answer.sink.bind(py).append(record)?;
                let reply = self.rt.apply(instance, answer.event, Vec::new()).map_err(rt_err)?;
                if !reply.accepted {
                    // The event itself was applied and stays applied (its state, its
                    // de-duplication key, the effects performed so far): undoing it would
                    // need a copy of the instance and the shared record before every event
                    // with effects, and the sinks may already have been read. So the error
                    // says what stands, and that only the answer was refused.
                    let inner = &m.inner;
                    let applied = match out.transition {
                        Some(t) => format!("{} --{}--> {}", inner.states[t.from].name, inner.events[t.event].name, inner.states[t.to].name),
                        None => format!("event {}", inner.events[ei].name),
                    };
                    let why = reply.message.unwrap_or_default();
                    return Err(EngineError::new_err(format!(
                        "effect {} was answered with {}, which instance {instance} refused: {}; the answer was not \
                         applied, but what it answers was and stands: {applied} (now in state {}, the effect \
                         performed: its fields were appended to its list)",
                        inner.effects[*fx].name,
                        inner.events[answer.event].name,
                        why.strip_suffix("; nothing changed").unwrap_or(&why),
                        inner.states[reply.state].name,
                    )));
                }
                if let Some(t) = reply.transition {
                    taken.push(m.transition_tuple(py, t)?.get_item(0)?);
                }
                state = reply.state;
            }
            PyTuple::new(py, taken)?.into_any().unbind()
        } else {
            let applied = self.outcome(py, out)?.into_any().unbind();
            return Ok(Dispatched::Fallback(d.fallback.clone_ref(py), applied));
        };
        let empty = PyTuple::empty(py).into_any().unbind();
        let outcome = Outcome {
            accepted: out.accepted,
            diagnostic_code: m.diagnostic_names[out.diagnostic].clone_ref(py).into_any(),
            state: m.state_names[state].clone_ref(py).into_any(),
            instance: self.instance_obj(py, instance),
            transitions,
            emitted_events: empty.clone_ref(py),
            refused_events: empty,
            message: match out.message {
                Some(text) => PyString::new(py, &text).into_any().unbind(),
                None => py.None(),
            },
        };
        // SAFETY: `outcome_type` was checked to be a subclass of `Outcome` when the
        // dispatcher was configured, and is kept alive by it.
        let obj = unsafe {
            pyo3::impl_::pymethods::tp_new_impl(py, PyClassInitializer::from(outcome), d.outcome_type.as_ptr() as *mut pyo3::ffi::PyTypeObject)?
        };
        // SAFETY: tp_new_impl returns a new, owned reference.
        Ok(Dispatched::Done(unsafe { Py::from_owned_ptr(py, obj) }))
    }
}

thread_local! {
    /// A number for this thread, unique in the process (0 is "no thread").
    static THREAD_NUMBER: u64 = {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        NEXT.fetch_add(1, Ordering::Relaxed)
    };
}

/// The runtime's state, locked for one call (see [`Runtime`]).
struct Held<'a> {
    guard: MutexGuard<'a, RuntimeState>,
    holder: &'a AtomicU64,
}

impl std::ops::Deref for Held<'_> {
    type Target = RuntimeState;
    fn deref(&self) -> &RuntimeState {
        &self.guard
    }
}

impl std::ops::DerefMut for Held<'_> {
    fn deref_mut(&mut self) -> &mut RuntimeState {
        &mut self.guard
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.holder.store(0, Ordering::Release);
    }
}

impl Runtime {
    fn lock(&self, py: Python<'_>) -> PyResult<Held<'_>> {
        let me = THREAD_NUMBER.with(|n| *n);
        loop {
            let guard = match self.state.try_lock() {
                Ok(guard) => guard,
                // A call that panicked was rolled back by the engine's undo log.
                Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                Err(TryLockError::WouldBlock) => {
                    if self.holder.load(Ordering::Acquire) == me {
                        return Err(EngineError::new_err(
                            "the runtime was called again from inside one of its own calls (a payload's attribute \
                             that calls back into it?); nothing changed",
                        ));
                    }
                    py.detach(std::thread::yield_now);
                    continue;
                }
            };
            self.holder.store(me, Ordering::Release);
            return Ok(Held { guard, holder: &self.holder });
        }
    }
}

#[pymethods]
impl Runtime {
    /// `Runtime(machine, instances, shared=None)`: `shared` overrides shared-record defaults.
    #[new]
    #[pyo3(signature = (machine, instances, shared=None))]
    fn new(py: Python<'_>, machine: Py<Machine>, instances: usize, shared: Option<&Bound<'_, PyDict>>) -> PyResult<Runtime> {
        let m = Arc::clone(&machine.get().inner);
        let mut overrides = Vec::new();
        if let Some(d) = shared {
            for (k, v) in d.iter() {
                let name: String = k.extract()?;
                let Some(idx) = m.shared_index(&name) else {
                    return Err(EngineError::new_err(format!("unknown shared field '{name}'")));
                };
                let f = &m.shared[idx];
                overrides.push((name.clone(), to_value(&v, f.ty, f.nullable, &|| format!("shared.{name}"))?));
            }
        }
        let _ = py;
        let rt = guarded("Runtime()", || Rt::new(m, instances, &overrides).map_err(rt_err))?;
        let state = RuntimeState { rt, machine, routes: HashMap::default(), instance_objs: Vec::new(), dispatcher: None, payload_buffer: Vec::new() };
        Ok(Runtime { state: Mutex::new(state), holder: AtomicU64::new(0), reserved: AtomicU64::new(0) })
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        let st = self.lock(py)?;
        Ok(st.rt.len())
    }

    #[getter]
    fn machine(&self, py: Python<'_>) -> PyResult<Py<Machine>> {
        let st = self.lock(py)?;
        Ok(st.machine.clone_ref(py))
    }

    /// Applies `event` to instance `instance`. `payload` is any object whose attributes
    /// (or a dict whose keys) are the event's declared fields; a missing field is null.
    /// Returns `(accepted, diagnostic, state, transition, effects, message)`.
    #[pyo3(signature = (instance, event, payload=None))]
    fn apply<'py>(
        &self,
        py: Python<'py>,
        instance: &Bound<'py, PyAny>,
        event: &str,
        payload: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let mut st = self.lock(py)?;
        let instance = instance_arg(instance, st.rt.len())?;
        guarded("apply", || {
            let m = st.machine.get();
            let ei = m
                .inner
                .event_index(event)
                .ok_or_else(|| EngineError::new_err(format!("unknown event '{event}' (events: {})", m.inner.events.iter().map(|e| e.name.as_str()).collect::<Vec<_>>().join(", "))))?;
            let values = read_payload(py, m, ei, payload, None, None)?;
            let out = st.rt.apply(instance, ei, values).map_err(rt_err)?;
            st.outcome(py, out)
        })
    }

    // -------------------------------------------------------------- routing and dispatch

    /// Routes events whose routing key is `key` to `instance`. With `log`, the accepted
    /// events of the logged kinds for this key are appended to that list.
    #[pyo3(signature = (key, instance, log=None))]
    fn route(&self, py: Python<'_>, key: &str, instance: &Bound<'_, PyAny>, log: Option<Bound<'_, PyList>>) -> PyResult<()> {
        let mut st = self.lock(py)?;
        let instance = instance_arg(instance, st.rt.len())?;
        if instance >= st.rt.len() {
            return Err(rt_err(RtError::NoSuchInstance { index: instance, count: st.rt.len() }));
        }
        // The key usually names an id the instance's record holds: share that string, so
        // that guards comparing the event's key with it compare two pointers.
        let record = st.rt.record(instance).map_err(rt_err)?;
        let shared = record.iter().find_map(|v| match v {
            Value::String(s) if **s == *key => Some(Arc::clone(s)),
            _ => None,
        });
        let key: Arc<str> = shared.unwrap_or_else(|| Arc::from(key));
        if st.instance_objs.len() <= instance {
            st.instance_objs.resize_with(instance + 1, || None);
        }
        if st.instance_objs[instance].is_none() {
            st.instance_objs[instance] = Some(instance.into_pyobject(py)?.into_any().unbind());
        }
        // Removed first: an insert over an existing key keeps the old key, and the table's
        // key is what the payload gets, so it must be the string shared with the record.
        st.routes.remove(&*key);
        st.routes.insert(key, Route { instance, log: log.map(Bound::unbind) });
        Ok(())
    }

    /// The dispatcher's fallback usually refers back to the object that owns this runtime:
    /// let the garbage collector see (and break) that cycle.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        // Never waits: a runtime another thread is using is not garbage, and reporting fewer
        // references only keeps objects alive.
        let Ok(st) = self.state.try_lock() else { return Ok(()) };
        visit.call(&st.machine)?;
        if let Some(d) = &st.dispatcher {
            visit.call(&d.fallback)?;
            visit.call(&d.event_type)?;
            visit.call(&d.outcome_type)?;
        }
        for route in st.routes.values() {
            if let Some(log) = &route.log {
                visit.call(log)?;
            }
        }
        for answer in st.dispatcher.iter().flat_map(|d| d.answers.iter().flatten()) {
            visit.call(&answer.sink)?;
        }
        Ok(())
    }

    fn __clear__(&self) {
        if let Ok(mut st) = self.state.try_lock() {
            st.dispatcher = None;
            st.routes.clear();
        }
    }

    /// Stops routing `key`; its events go to the fallback.
    fn unroute(&self, py: Python<'_>, key: &str) -> PyResult<()> {
        let mut st = self.lock(py)?;
        st.routes.remove(key);
        Ok(())
    }

    fn clear_routes(&self, py: Python<'_>) -> PyResult<()> {
        let mut st = self.lock(py)?;
        st.routes.clear();
        Ok(())
    }

    /// The instance `key` routes to, or None.
    fn routed(&self, py: Python<'_>, key: &str) -> PyResult<Option<usize>> {
        let st = self.lock(py)?;
        Ok(st.routes.get(key).map(|r| r.instance))
    }

    /// Configures `dispatch`: events are objects of exactly `event_type` whose attribute
    /// `kind_attr` names the event and `key_attr` holds the routing key; outcomes are built
    /// as `outcome_type` (a subclass of `Outcome`); `logged` names the event kinds whose
    /// accepted events go to their route's log; `fallback(event, applied)` handles what the
    /// fast path does not (see `dispatch`). `answers` maps an effect name to
    /// `(event name, list, instance key or None)`: the dispatcher performs that effect itself
    /// by appending its fields to the list as a dict and applying the event (which must
    /// take no payload and can emit no effect) to the same instance. `only`, if given, names
    /// the events an event object may be (the others go to the fallback).
    #[pyo3(signature = (event_type, kind_attr, key_attr, outcome_type, fallback, logged, answers=None, only=None))]
    #[allow(clippy::too_many_arguments)]
    fn configure_dispatch(
        &self, py: Python<'_>,
        event_type: Bound<'_, PyType>,
        kind_attr: Bound<'_, PyString>,
        key_attr: Bound<'_, PyString>,
        outcome_type: Bound<'_, PyType>,
        fallback: Bound<'_, PyAny>,
        logged: Vec<String>,
        answers: Option<Bound<'_, PyDict>>,
        only: Option<Vec<String>>,
    ) -> PyResult<()> {
        let mut st = self.lock(py)?;
        let py = event_type.py();
        if !outcome_type.is_subclass(&py.get_type::<Outcome>())? {
            return Err(EngineError::new_err(format!("outcome_type must be a subclass of Outcome, got {}", outcome_type.name()?)));
        }
        if !fallback.is_callable() {
            return Err(EngineError::new_err("fallback must be callable"));
        }
        let m = &st.machine.get().inner;
        let mut flags = vec![false; m.events.len()];
        for name in &logged {
            let i = m.event_index(name).ok_or_else(|| EngineError::new_err(format!("logged: unknown event '{name}'")))?;
            flags[i] = true;
        }
        let mut dispatchable = vec![only.is_none(); m.events.len()];
        for name in only.iter().flatten() {
            let i = m.event_index(name).ok_or_else(|| EngineError::new_err(format!("only: unknown event '{name}'")))?;
            dispatchable[i] = true;
        }
        let mut answer_of: Vec<Option<Answer>> = (0..m.effects.len()).map(|_| None).collect();
        for (effect, spec) in answers.iter().flat_map(|d| d.iter()) {
            let effect: String = effect.extract()?;
            let fx = m.effects.iter().position(|e| e.name == effect).ok_or_else(|| EngineError::new_err(format!("answers: unknown effect '{effect}'")))?;
            let (event, sink, instance_key): (String, Bound<'_, PyList>, Option<Bound<'_, PyString>>) = spec
                .extract()
                .map_err(|_| EngineError::new_err(format!("answers['{effect}'] must be (event name, list, instance key or None)")))?;
            let ei = m.event_index(&event).ok_or_else(|| EngineError::new_err(format!("answers['{effect}']: unknown event '{event}'")))?;
            if !m.events[ei].fields.is_empty() {
                return Err(EngineError::new_err(format!("answers['{effect}']: event {event} takes a payload; an answer cannot give one")));
            }
            if may_emit(m, ei) {
                return Err(EngineError::new_err(format!("answers['{effect}']: event {event} can emit effects, which the dispatcher would not perform")));
            }
            answer_of[fx] = Some(Answer { event: ei, sink: sink.unbind(), instance_key: instance_key.map(|k| PyString::intern(py, k.to_str().unwrap_or_default()).unbind()) });
        }
        let kind_attr = PyString::intern(py, kind_attr.to_str()?);
        let key_attr = PyString::intern(py, key_attr.to_str()?);
        let members = EventMembers::new(py, st.machine.get(), &event_type, &kind_attr, &key_attr);
        let m = &st.machine.get().inner;
        st.dispatcher = Some(Dispatcher {
            members,
            event_type: event_type.unbind(),
            outcome_type: outcome_type.unbind(),
            fallback: fallback.unbind(),
            logged: flags,
            key_field: m.events.iter().map(|e| e.fields.iter().position(|f| f.name == key_attr.to_str().unwrap_or_default())).collect(),
            kind_attr: kind_attr.unbind(),
            key_attr: key_attr.unbind(),
            answers: answer_of,
            dispatchable,
        });
        Ok(())
    }

    /// Applies an event object to the instance its routing key names, entirely here when
    /// it can: the event is of the configured type, its key is routed, its kind and payload
    /// are valid and the outcome has no effects. Then the outcome is built as the configured
    /// outcome type with the event's transition. Otherwise `fallback(event, applied)` is
    /// returned: `applied` is None when nothing was applied, or the `apply` result tuple of
    /// an event that was applied but emitted effects for the caller to perform, or of a
    /// logged event the machine could not take at all (an evaluation error or a broken
    /// invariant).
    fn dispatch(slf: &Bound<'_, Self>, event: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let step = guarded("dispatch", || {
            let mut held = slf.get().lock(py)?;
            // Read with the state held: a reservation made before this call could take the
            // state is seen; one made after it waits for this call to end.
            let reserved = slf.get().reserved.load(Ordering::Acquire);
            let elsewhere = reserved != 0 && reserved != THREAD_NUMBER.with(|n| *n);
            held.dispatch_fast(event, elsewhere)
        })?;
        match step {
            Dispatched::Done(outcome) => Ok(outcome),
            Dispatched::Fallback(fallback, applied) => fallback.call1(py, (event, applied)),
        }
    }

    /// Gives the calling thread the runtime across several calls (a caller's whole
    /// operation: a call that applies an event, performs its effects and applies their
    /// answers): until `release`, `dispatch` from other threads goes to the fallback, which
    /// the caller serializes with its operation, instead of applying in between.
    fn reserve(&self) {
        self.reserved.store(THREAD_NUMBER.with(|n| *n), Ordering::Release);
    }

    fn release(&self) {
        let me = THREAD_NUMBER.with(|n| *n);
        let _ = self.reserved.compare_exchange(me, 0, Ordering::AcqRel, Ordering::Acquire);
    }

    /// From now on `dispatch` hands every event to the fallback, from every thread (a
    /// caller that has stopped taking events: closed, or only for reading).
    fn shut(&self) {
        self.reserved.store(u64::MAX, Ordering::Release);
    }

    fn state(&self, py: Python<'_>, instance: &Bound<'_, PyAny>) -> PyResult<Py<PyString>> {
        let st = self.lock(py)?;
        let instance = instance_arg(instance, st.rt.len())?;
        let s = st.rt.state(instance).map_err(rt_err)?;
        Ok(st.machine.get().state_names[s].clone_ref(py))
    }

    /// The instance record as a dict.
    fn record<'py>(&self, py: Python<'py>, instance: &Bound<'_, PyAny>) -> PyResult<Bound<'py, PyDict>> {
        let st = self.lock(py)?;
        let instance = instance_arg(instance, st.rt.len())?;
        let values = st.rt.record(instance).map_err(rt_err)?;
        let d = PyDict::new(py);
        for (name, v) in st.machine.get().record_fields.iter().zip(values) {
            d.set_item(name.bind(py), from_value(py, v)?)?;
        }
        Ok(d)
    }

    /// One record field, without building the whole dict.
    fn field(&self, py: Python<'_>, instance: &Bound<'_, PyAny>, name: &str) -> PyResult<Py<PyAny>> {
        let st = self.lock(py)?;
        let instance = instance_arg(instance, st.rt.len())?;
        let m = &st.machine.get().inner;
        let idx = m.record_index(name).ok_or_else(|| EngineError::new_err(format!("unknown record field '{name}'")))?;
        from_value(py, &st.rt.record(instance).map_err(rt_err)?[idx])
    }

    fn shared<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let st = self.lock(py)?;
        let d = PyDict::new(py);
        for (name, v) in st.machine.get().shared_fields.iter().zip(st.rt.shared()) {
            d.set_item(name.bind(py), from_value(py, v)?)?;
        }
        Ok(d)
    }

    /// How many de-duplication keys the instance holds for its current run.
    fn seen_count(&self, py: Python<'_>, instance: &Bound<'_, PyAny>) -> PyResult<usize> {
        let st = self.lock(py)?;
        let instance = instance_arg(instance, st.rt.len())?;
        st.rt.seen_count(instance).map_err(rt_err)
    }

    /// A JSON-serialisable copy of one instance: state, record (decimals as strings), seen keys.
    fn snapshot<'py>(&self, py: Python<'py>, instance: &Bound<'_, PyAny>) -> PyResult<Bound<'py, PyDict>> {
        let st = self.lock(py)?;
        let instance = instance_arg(instance, st.rt.len())?;
        let snap = st.rt.snapshot(instance).map_err(rt_err)?;
        let m = st.machine.get();
        let d = PyDict::new(py);
        d.set_item("state", m.state_names[snap.state].bind(py))?;
        let rec = PyDict::new(py);
        for (f, v) in m.inner.record.iter().zip(&snap.record) {
            rec.set_item(&f.name, json_to_py(py, &v.to_json())?)?;
        }
        d.set_item("record", rec)?;
        d.set_item("seen", snap.seen.iter().map(|s| seen_to_list(&m.inner, s)).collect::<Vec<_>>())?;
        Ok(d)
    }

    /// The shared record with decimals as strings.
    fn shared_snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let st = self.lock(py)?;
        let d = PyDict::new(py);
        for (f, v) in st.machine.get().inner.shared.iter().zip(st.rt.shared()) {
            d.set_item(&f.name, json_to_py(py, &v.to_json())?)?;
        }
        Ok(d)
    }

    /// Replaces instances (a dict `{index: snapshot}`) and optionally the shared record, all
    /// at once or not at all. Raises `EngineError` whose `violations` lists every problem.
    /// A snapshot is whole: its state, every record field and its 'seen' keys, and a shared
    /// record every field (a part left out is refused, not filled with defaults that would
    /// silently reset it). `record_defaults=True`: a record field left out takes the spec's
    /// default, for a caller that writes records by hand.
    #[pyo3(signature = (instances, shared=None, record_defaults=false))]
    fn replace(&self, py: Python<'_>, instances: &Bound<'_, PyDict>, shared: Option<&Bound<'_, PyAny>>, record_defaults: bool) -> PyResult<()> {
        let mut st = self.lock(py)?;
        guarded("replace", || {
            let m = Arc::clone(&st.machine.get().inner);
            let mut staged = Vec::new();
            let mut problems: Vec<String> = Vec::new();
            for (k, v) in instances.iter() {
                // True is 1 to Python, but an instance key that is a bool is a mistake.
                let index: usize = match k.is_instance_of::<PyBool>() {
                    true => None,
                    false => k.extract().ok(),
                }
                .ok_or_else(|| {
                    let got = format!("{} {}", k.get_type().name().map(|n| n.to_string()).unwrap_or_default(), k.repr().map(|r| r.to_string()).unwrap_or_default());
                    EngineError::new_err(format!("instance keys must be ints from 0, got {got}"))
                })?;
                let parsed = (|| -> PyResult<InstanceSnapshot> {
                    let snap = v.cast::<PyDict>().map_err(|_| EngineError::new_err("a snapshot must be a dict"))?;
                    let state_name: String = snap
                        .get_item("state")?
                        .ok_or_else(|| EngineError::new_err("snapshot has no 'state'"))?
                        .extract()?;
                    let state = m.state_index(&state_name).ok_or_else(|| {
                        EngineError::new_err(format!(
                            "unknown state '{state_name}' (states: {})",
                            m.states.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
                        ))
                    })?;
                    let rec_obj = snap.get_item("record")?.ok_or_else(|| EngineError::new_err("snapshot has no 'record'"))?;
                    let record = st.record_from_dict(py, &m.record, &rec_obj, "record", record_defaults)?;
                    // No 'seen' is not "none seen": replacing the keys with nothing would let
                    // every event of the run apply again.
                    let seen: Vec<Bound<'_, PyAny>> = snap
                        .get_item("seen")?
                        .ok_or_else(|| EngineError::new_err("snapshot has no 'seen' (its de-duplication keys; [] for none)"))?
                        .extract()
                        .map_err(|_| EngineError::new_err("a snapshot's 'seen' is a list of de-duplication entries"))?;
                    let seen = seen.iter().map(|entry| seen_from_list(&m, entry)).collect::<PyResult<Vec<_>>>()?;
                    Ok(InstanceSnapshot { state, record, seen })
                })();
                match parsed {
                    Ok(s) => staged.push((index, s)),
                    Err(e) => problems.push(format!("instance {index}: {}", e.value(py))),
                }
            }
            let shared_values = match shared {
                Some(obj) if !obj.is_none() => match st.record_from_dict(py, &m.shared, obj, "shared", false) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        problems.push(format!("shared: {}", e.value(py)));
                        None
                    }
                },
                _ => None,
            };
            if problems.is_empty() {
                if let Err(v) = st.rt.replace(staged, shared_values) {
                    problems = v;
                }
            } else if !staged.is_empty() {
                // Some instances could not be read: the others are checked all the same, so
                // that one error names everything wrong with the snapshot.
                problems.extend(st.rt.replacement_problems(staged, shared_values));
            }
            if problems.is_empty() {
                return Ok(());
            }
            let err = EngineError::new_err(format!("{} violation(s); nothing changed:\n  {}", problems.len(), problems.join("\n  ")));
            err.value(py).setattr("violations", problems)?;
            Err(err)
        })
    }
}

fn json_to_py(py: Python<'_>, v: &serde_json::Value) -> PyResult<Py<PyAny>> {
    use serde_json::Value as J;
    Ok(match v {
        J::Null => py.None(),
        J::Bool(b) => PyBool::new(py, *b).to_owned().into_any().unbind(),
        J::Number(n) => n.as_i64().unwrap_or_default().into_pyobject(py)?.into_any().unbind(),
        J::String(s) => PyString::new(py, s).into_any().unbind(),
        J::Array(items) => {
            let objs = items.iter().map(|i| json_to_py(py, i)).collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, objs)?.into_any().unbind()
        }
        J::Object(_) => PyString::new(py, &v.to_string()).into_any().unbind(),
    })
}

#[pymodule]
fn _engine(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Machine>()?;
    m.add_class::<Runtime>()?;
    m.add_class::<Outcome>()?;
    m.add_function(wrap_pyfunction!(crate::python_init::install_member_init, m)?)?;
    m.add_function(wrap_pyfunction!(crate::python_init::has_member_init, m)?)?;
    m.add("EngineError", m.py().get_type::<EngineError>())?;
    m.add("SpecError", m.py().get_type::<SpecError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
