//! Compilation of a spec document into executable tables.
//!
//! Every problem is collected (not just the first), each with the path of the spec node
//! it concerns and a stable code, so that a front end can point at the line and a test can
//! name the problem it expects.

use crate::expr::{self, Expr, ExprProblem, ExprTy, Names, Scope};
use crate::spec::{ActionsDoc, CandidateDoc, EffectCallDoc, FieldDoc, InvariantDoc, PayloadCheckDoc, SpecDoc};
use crate::value::{Ty, Value};
use indexmap::IndexMap;
use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;

/// One problem found in a spec.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    /// Dotted path of the spec node, e.g. `states.GREEN.on.GO[0].target`.
    pub path: String,
    /// Stable problem code, e.g. `unknown_target`.
    pub code: &'static str,
    pub message: String,
    pub hint: Option<String>,
}

/// A spec that cannot be compiled, with every problem found.
#[derive(Clone, Debug)]
pub struct SpecError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} problem(s) in the spec", self.problems.len())?;
        for p in &self.problems {
            write!(f, "\n  {}: {} [{}]", p.path, p.message, p.code)?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecError {}

/// A typed field of a record, an event payload or an effect.
#[derive(Clone, Debug)]
pub struct FieldDef {
    pub name: String,
    pub ty: Ty,
    pub nullable: bool,
    pub default: Value,
}

#[derive(Clone, Debug)]
pub struct EventDef {
    pub name: String,
    pub fields: Vec<FieldDef>,
    /// Index of the payload field whose value de-duplicates this event within a run.
    pub dedup_key: Option<usize>,
    /// Index of the payload field that scopes the key (the key is unique within it only).
    pub dedup_scope: Option<usize>,
    /// Which de-duplication space the event's keys live in: events share one exactly when
    /// their key fields, and their scope fields, have the same names (`Machine::dedup_spaces`).
    pub dedup_space: usize,
    /// Refusals decided by the payload alone, tried in order before de-duplication and
    /// before the state's own handling: what no state may take, said once for all of them.
    pub checks: Vec<PayloadCheck>,
    /// For each field, whether handling this event ever reads it: some expression the spec
    /// evaluates for it names `event.<field>` (every such name is resolved by [`Scope3`]), or
    /// it is the de-dup key or scope. A reader of payloads may leave the others unconverted
    /// (it must still check their type): nothing would look at them.
    pub read: Vec<bool>,
}

/// A payload check: when `guard` holds, the event is refused with diagnostic `code`.
#[derive(Clone, Debug)]
pub struct PayloadCheck {
    pub guard: Expr,
    pub code: usize,
    pub message: Vec<MessagePart>,
}

#[derive(Clone, Debug)]
pub struct EffectDef {
    pub name: String,
    pub fields: Vec<FieldDef>,
}

#[derive(Clone, Debug)]
pub struct Invariant {
    pub source: String,
    pub check: Expr,
    pub message: String,
    /// The record and shared fields the check reads. An invariant that held before a
    /// transition and reads nothing the transition wrote still holds after it, so only
    /// the others are evaluated again (unless the state or the run changes).
    pub reads: Vec<(Scope, usize)>,
}

#[derive(Clone, Debug)]
pub struct Assign {
    pub scope: Scope,
    pub index: usize,
    pub ty: Ty,
    pub expr: Expr,
}

#[derive(Clone, Debug)]
pub struct EffectCall {
    pub effect: usize,
    /// One expression per declared field of the effect, in declaration order.
    pub args: Vec<Expr>,
}

#[derive(Clone, Debug, Default)]
pub struct Actions {
    pub assigns: Vec<Assign>,
    pub effects: Vec<EffectCall>,
}

/// A refusal message: literal text with `{expression}` holes.
#[derive(Clone, Debug)]
pub enum MessagePart {
    Text(String),
    Expr(Expr),
}

#[derive(Clone, Debug)]
pub enum Candidate {
    Refuse { guard: Option<Expr>, code: usize, message: Vec<MessagePart> },
    Take {
        guard: Option<Expr>,
        new_run: bool,
        actions: Actions,
        target: Option<usize>,
        /// The invariants to evaluate after taking this candidate, fixed when the spec is
        /// compiled: see `checks_after`.
        checks: Vec<Check>,
        /// The invariants of the other instances this candidate's writes to the shared
        /// record could break: see `checks_of_others`. Empty for a candidate that writes
        /// no shared field an invariant reads, so most candidates pay nothing for them.
        others: Vec<OtherCheck>,
    },
}

/// An invariant another instance must still satisfy after a transition writes the shared
/// record: the transition's own checks see only its own instance's record and state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtherCheck {
    /// Invariant `inv` of state `state`, which reads the shared record only: the same for
    /// every instance there, so evaluated once, when some other instance is in that state.
    SharedOfState { state: usize, inv: usize },
    /// Invariant `inv` of state `state`, which reads both records: evaluated for every
    /// other instance in that state.
    OfState { state: usize, inv: usize },
    /// Global invariant `inv`, which reads both records: evaluated for every other instance.
    Global(usize),
}

/// An invariant to evaluate after a transition: a global one or one of the target state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    Global(usize),
    OfTarget(usize),
}

#[derive(Clone, Debug)]
pub enum Handling {
    /// The state refuses this event with the given diagnostic.
    Refuse(usize),
    /// Ordered candidates; the first whose guard holds is taken.
    Candidates(Vec<Candidate>),
    /// The spec says nothing about this pair.
    Unhandled,
}

#[derive(Clone, Debug)]
pub struct StateDef {
    pub name: String,
    pub initial: bool,
    pub terminal: bool,
    pub invariants: Vec<Invariant>,
    pub on_entry: Actions,
    /// Indexed by event.
    pub table: Vec<Handling>,
}

/// Indices of the diagnostics the engine itself gives.
#[derive(Clone, Copy, Debug)]
pub struct BuiltinDiagnostics {
    pub ok: usize,
    pub duplicate: usize,
    pub invariant_violation: usize,
    pub no_candidate: usize,
    pub unhandled: usize,
    pub evaluation_error: usize,
}

/// A compiled machine: immutable, shared by every runtime that executes it.
#[derive(Clone, Debug)]
pub struct Machine {
    pub name: String,
    pub version: u32,
    pub record: Vec<FieldDef>,
    pub shared: Vec<FieldDef>,
    pub events: Vec<EventDef>,
    pub effects: Vec<EffectDef>,
    pub diagnostics: Vec<String>,
    /// What each diagnostic means, as the spec describes it (what a refusal by a state's
    /// `refuse` table says after naming the state and the event).
    pub diagnostic_descriptions: Vec<String>,
    pub builtin: BuiltinDiagnostics,
    pub invariants: Vec<Invariant>,
    pub states: Vec<StateDef>,
    pub initial: usize,
    /// The de-duplication spaces: `(key field name, scope field name)`, in first-use order.
    pub dedup_spaces: Vec<(String, Option<String>)>,
    event_index: HashMap<String, usize>,
    state_index: HashMap<String, usize>,
}

impl Machine {
    /// Compiles a spec given as JSON text.
    pub fn compile_json(text: &str) -> Result<Machine, SpecError> {
        let doc: SpecDoc = serde_json::from_str(text).map_err(|e| SpecError {
            problems: vec![Problem {
                path: "(document)".into(),
                code: "schema_error",
                message: e.to_string(),
                hint: None,
            }],
        })?;
        Machine::compile(&doc)
    }

    /// Compiles a parsed spec document, collecting every problem.
    pub fn compile(doc: &SpecDoc) -> Result<Machine, SpecError> {
        Compiler::default().run(doc)
    }

    pub fn event_index(&self, name: &str) -> Option<usize> {
        self.event_index.get(name).copied()
    }

    pub fn state_index(&self, name: &str) -> Option<usize> {
        self.state_index.get(name).copied()
    }

    pub fn record_index(&self, name: &str) -> Option<usize> {
        self.record.iter().position(|f| f.name == name)
    }

    pub fn shared_index(&self, name: &str) -> Option<usize> {
        self.shared.iter().position(|f| f.name == name)
    }

    /// The events a state takes or refuses, for front ends that draw or check the machine.
    pub fn targets(&self, state: usize, event: usize) -> Vec<Option<usize>> {
        match &self.states[state].table[event] {
            Handling::Candidates(cands) => cands
                .iter()
                .filter_map(|c| match c {
                    Candidate::Take { target, .. } => Some(*target),
                    Candidate::Refuse { .. } => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

#[derive(Default)]
struct Compiler {
    problems: Vec<Problem>,
}

/// Names visible to the expressions of one candidate.
struct Scope3<'a> {
    record: &'a [FieldDef],
    shared: &'a [FieldDef],
    event: Option<&'a EventDef>,
    /// A payload check reads its event's fields only: its answer is the same in every state.
    event_only: bool,
    /// Marks each event field a name resolves to (see `EventDef::read`).
    event_reads: Option<&'a [Cell<bool>]>,
}

fn known(fields: &[FieldDef]) -> String {
    let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

impl Names for Scope3<'_> {
    fn resolve(&self, scope: Scope, name: &str) -> Result<(usize, Ty, bool), String> {
        if self.event_only && scope != Scope::Event {
            return Err(format!("'{}{name}' is not an event field: a payload check reads its event's fields only", scope.prefix()));
        }
        let fields: &[FieldDef] = match scope {
            Scope::Record => self.record,
            Scope::Shared => self.shared,
            Scope::Event => match self.event {
                Some(ev) => &ev.fields,
                None => return Err(format!("'event.{name}' is used where there is no event")),
            },
        };
        match fields.iter().position(|f| f.name == name) {
            Some(i) => {
                if let (Scope::Event, Some(reads)) = (scope, self.event_reads) {
                    reads[i].set(true);
                }
                Ok((i, fields[i].ty, fields[i].nullable))
            }
            None => {
                let whose = match (scope, self.event) {
                    (Scope::Event, Some(ev)) => format!("event {}", ev.name),
                    (Scope::Shared, _) => "the shared record".into(),
                    _ => "the record".into(),
                };
                Err(format!("unknown field '{}{name}' (fields of {whose}: {})", scope.prefix(), known(fields)))
            }
        }
    }
}

impl Compiler {
    /// The index of event `event`'s string field `field`, named by its spec key `key` (e.g.
    /// `dedup_key`); a problem at that key when there is no such field or it is not a string.
    fn string_field(&mut self, event: &str, key: &str, what: &str, field: &str, fields: &[FieldDef]) -> Option<usize> {
        let path = format!("events.{event}.{key}");
        match fields.iter().position(|f| f.name == field) {
            Some(i) if fields[i].ty == Ty::String => Some(i),
            Some(_) => {
                self.add(path, "type_error", format!("{what} '{field}' must be a string field"), None);
                None
            }
            None => {
                let message = format!("{what} '{field}' is not a field of event {event} (fields: {})", known(fields));
                self.add(path, "unknown_field", message, None);
                None
            }
        }
    }

    fn add(&mut self, path: impl Into<String>, code: &'static str, message: impl Into<String>, hint: Option<String>) {
        self.problems.push(Problem { path: path.into(), code, message: message.into(), hint });
    }

    fn fields(&mut self, path: &str, docs: &IndexMap<String, FieldDoc>, with_defaults: bool) -> Vec<FieldDef> {
        let mut out = Vec::new();
        for (name, doc) in docs {
            let here = format!("{path}.{name}");
            let Some(ty) = Ty::parse(&doc.ty) else {
                self.add(
                    format!("{here}.type"),
                    "unknown_type",
                    format!("unknown type '{}'", doc.ty),
                    Some("types are bool, int, decimal, string, decimal_list".into()),
                );
                continue;
            };
            let default = match &doc.default {
                None if with_defaults && !doc.nullable => {
                    self.add(&here, "missing_default", format!("field '{name}' is not nullable and has no default"), None);
                    Value::Null
                }
                None => Value::Null,
                Some(v) => match Value::from_json(v, ty) {
                    Ok(val) if val.is_null() && !doc.nullable => {
                        self.add(format!("{here}.default"), "type_error", "default is null but the field is not nullable", None);
                        Value::Null
                    }
                    Ok(val) => val,
                    Err(m) => {
                        self.add(format!("{here}.default"), "type_error", format!("bad default: {m}"), None);
                        Value::Null
                    }
                },
            };
            out.push(FieldDef { name: name.clone(), ty, nullable: doc.nullable, default });
        }
        out
    }

    fn expr(&mut self, path: &str, src: &str, names: &Scope3) -> Option<(Expr, ExprTy)> {
        match expr::compile(src, names) {
            Ok(x) => Some(x),
            Err(ExprProblem { code, message }) => {
                self.add(path, code, format!("{message} in `{}`", shown(src)), None);
                None
            }
        }
    }

    fn condition(&mut self, path: &str, src: &str, names: &Scope3) -> Option<Expr> {
        let (e, t) = self.expr(path, src, names)?;
        if t.ty != Some(Ty::Bool) {
            self.add(path, "type_error", format!("`{}` must be a bool, it is {}", shown(src), t.ty.map_or("null", Ty::name)), None);
            return None;
        }
        Some(e)
    }

    fn invariants(&mut self, path: &str, docs: &[InvariantDoc], names: &Scope3) -> Vec<Invariant> {
        let mut out = Vec::new();
        for (i, inv) in docs.iter().enumerate() {
            if let Some(check) = self.condition(&format!("{path}[{i}].check"), &inv.check, names) {
                let mut reads = Vec::new();
                check.fields_read(&mut reads);
                out.push(Invariant { source: inv.check.clone(), check, message: inv.message.clone(), reads });
            }
        }
        out
    }

    fn actions(
        &mut self,
        path: &str,
        assign: &IndexMap<String, String>,
        effects: &[EffectCallDoc],
        names: &Scope3,
        effect_defs: &[EffectDef],
    ) -> Actions {
        let mut out = Actions::default();
        for (target, src) in assign {
            let here = format!("{path}.assign.{target}");
            let (scope, fields, bare) = match target.strip_prefix("shared.") {
                Some(rest) => (Scope::Shared, names.shared, rest),
                None => (Scope::Record, names.record, target.as_str()),
            };
            let Some(index) = fields.iter().position(|f| f.name == bare) else {
                self.add(&here, "unknown_field", format!("cannot assign unknown field '{target}' (known: {})", known(fields)), None);
                continue;
            };
            let field = &fields[index];
            if let Some((expr, t)) = self.expr(&here, src, names) {
                let fits = match t.ty {
                    None => field.nullable,
                    Some(ty) => ty == field.ty || (ty == Ty::Int && field.ty == Ty::Decimal),
                };
                if !fits {
                    self.add(
                        &here,
                        "type_error",
                        format!("cannot assign `{}` ({}) to {} field '{target}'", shown(src), t.ty.map_or("null", Ty::name), field.ty),
                        None,
                    );
                    continue;
                }
                out.assigns.push(Assign { scope, index, ty: field.ty, expr });
            }
        }
        for (i, call) in effects.iter().enumerate() {
            let here = format!("{path}.effects[{i}]");
            let Some(effect) = effect_defs.iter().position(|e| e.name == call.effect) else {
                let known: Vec<&str> = effect_defs.iter().map(|e| e.name.as_str()).collect();
                self.add(
                    format!("{here}.effect"),
                    "unknown_effect",
                    format!("unknown effect '{}' (declared: {})", call.effect, known.join(", ")),
                    None,
                );
                continue;
            };
            let def = &effect_defs[effect];
            for name in call.args.keys() {
                if !def.fields.iter().any(|f| &f.name == name) {
                    self.add(
                        format!("{here}.with.{name}"),
                        "unknown_field",
                        format!("effect {} has no field '{name}' (fields: {})", def.name, known(&def.fields)),
                        None,
                    );
                }
            }
            let mut args = Vec::with_capacity(def.fields.len());
            for field in &def.fields {
                let fpath = format!("{here}.with.{}", field.name);
                match call.args.get(&field.name) {
                    None if field.nullable => args.push(Expr::Lit(Value::Null)),
                    None => self.add(&here, "missing_field", format!("effect {} needs field '{}'", def.name, field.name), None),
                    Some(src) => {
                        if let Some((expr, t)) = self.expr(&fpath, src, names) {
                            let fits = match t.ty {
                                None => field.nullable,
                                Some(ty) => ty == field.ty || (ty == Ty::Int && field.ty == Ty::Decimal),
                            };
                            if !fits {
                                self.add(
                                    &fpath,
                                    "type_error",
                                    format!("`{}` is {}, effect field '{}' is {}", shown(src), t.ty.map_or("null", Ty::name), field.name, field.ty),
                                    None,
                                );
                            }
                            args.push(expr);
                        }
                    }
                }
            }
            out.effects.push(EffectCall { effect, args });
        }
        out
    }

    fn message(&mut self, path: &str, text: &str, names: &Scope3) -> Vec<MessagePart> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}') else {
                self.add(path, "syntax_error", "unclosed '{' in message", None);
                break;
            };
            if open > 0 {
                parts.push(MessagePart::Text(rest[..open].to_string()));
            }
            if let Some((e, _)) = self.expr(path, &rest[open + 1..open + close], names) {
                parts.push(MessagePart::Expr(e));
            }
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            parts.push(MessagePart::Text(rest.to_string()));
        }
        parts
    }

    fn payload_checks(
        &mut self,
        path: &str,
        docs: &[PayloadCheckDoc],
        event: &EventDef,
        reads: &[Cell<bool>],
        diag_index: &HashMap<&str, usize>,
    ) -> Vec<PayloadCheck> {
        let names = Scope3 { record: &[], shared: &[], event: Some(event), event_only: true, event_reads: Some(reads) };
        let mut out = Vec::new();
        for (i, doc) in docs.iter().enumerate() {
            let here = format!("{path}[{i}]");
            let guard = self.condition(&format!("{here}.guard"), &doc.guard, &names);
            let code = diag_index.get(doc.refuse.as_str()).copied();
            if code.is_none() {
                let message = format!("diagnostic '{}' is not declared in diagnostics.codes", doc.refuse);
                self.add(format!("{here}.refuse"), "unknown_diagnostic", message, None);
            }
            let message = match &doc.message {
                Some(text) => self.message(&format!("{here}.message"), text, &names),
                None => Vec::new(),
            };
            if let (Some(guard), Some(code)) = (guard, code) {
                out.push(PayloadCheck { guard, code, message });
            }
        }
        out
    }

    fn run(mut self, doc: &SpecDoc) -> Result<Machine, SpecError> {
        let record = self.fields("record", &doc.record, true);
        let shared = self.fields("shared", &doc.shared, true);

        let mut events = Vec::new();
        let mut dedup_spaces: Vec<(String, Option<String>)> = Vec::new();
        for (name, ev) in &doc.events {
            let fields = self.fields(&format!("events.{name}.fields"), &ev.fields, false);
            let dedup_key = ev.dedup_key.as_ref().and_then(|key| self.string_field(name, "dedup_key", "dedup key", key, &fields));
            let dedup_scope = match (&ev.dedup_scope, &ev.dedup_key) {
                (None, _) => None,
                (Some(scope), None) => {
                    self.add(format!("events.{name}.dedup_scope"), "unknown_field", format!("dedup scope '{scope}' needs a dedup_key to scope"), None);
                    None
                }
                (Some(scope), Some(key)) if scope == key => {
                    self.add(format!("events.{name}.dedup_scope"), "type_error", format!("dedup scope '{scope}' is the dedup key itself"), None);
                    None
                }
                (Some(scope), Some(_)) => self.string_field(name, "dedup_scope", "dedup scope", scope, &fields),
            };
            let space_name = (ev.dedup_key.clone().unwrap_or_default(), dedup_scope.and(ev.dedup_scope.clone()));
            let dedup_space = match dedup_spaces.iter().position(|s| *s == space_name) {
                Some(i) => i,
                None => {
                    dedup_spaces.push(space_name);
                    dedup_spaces.len() - 1
                }
            };
            let read = vec![false; fields.len()];
            events.push(EventDef { name: name.clone(), fields, dedup_key, dedup_scope, dedup_space, checks: Vec::new(), read });
        }
        let event_index: HashMap<String, usize> = events.iter().enumerate().map(|(i, e)| (e.name.clone(), i)).collect();

        let effects: Vec<EffectDef> = doc
            .effects
            .iter()
            .map(|(name, eff)| EffectDef { name: name.clone(), fields: self.fields(&format!("effects.{name}.fields"), &eff.fields, false) })
            .collect();

        // Diagnostics: the declared codes, then the engine's own must be among them.
        let diagnostics: Vec<String> = doc.diagnostics.codes.keys().cloned().collect();
        let diagnostic_descriptions: Vec<String> = doc.diagnostics.codes.values().map(|d| d.trim().to_string()).collect();
        let diag_index: HashMap<&str, usize> = diagnostics.iter().enumerate().map(|(i, d)| (d.as_str(), i)).collect();
        let builtin_code = |this: &mut Self, key: &str, code: &str| -> usize {
            match diag_index.get(code) {
                Some(i) => *i,
                None => {
                    this.add(
                        format!("diagnostics.{key}"),
                        "unknown_diagnostic",
                        format!("diagnostic '{code}' is not declared in diagnostics.codes"),
                        None,
                    );
                    0
                }
            }
        };
        let d = &doc.diagnostics;
        let builtin = BuiltinDiagnostics {
            ok: builtin_code(&mut self, "ok", &d.ok),
            duplicate: builtin_code(&mut self, "duplicate", &d.duplicate),
            invariant_violation: builtin_code(&mut self, "invariant_violation", &d.invariant_violation),
            no_candidate: builtin_code(&mut self, "no_candidate", &d.no_candidate),
            unhandled: builtin_code(&mut self, "unhandled", &d.unhandled),
            evaluation_error: builtin_code(&mut self, "evaluation_error", &d.evaluation_error),
        };

        // What handling each event reads: its de-dup key and scope, and (marked as they are
        // compiled) the fields its expressions name.
        let event_reads: Vec<Vec<Cell<bool>>> = events
            .iter()
            .map(|ev| (0..ev.fields.len()).map(|i| Cell::new(ev.dedup_key == Some(i) || ev.dedup_scope == Some(i))).collect())
            .collect();
        for (e, (name, ev)) in doc.events.iter().enumerate() {
            let path = format!("events.{name}.payload_checks");
            let checks = self.payload_checks(&path, &ev.payload_checks, &events[e], &event_reads[e], &diag_index);
            events[e].checks = checks;
        }

        let state_names: Vec<&String> = doc.states.keys().collect();
        let state_index: HashMap<String, usize> = state_names.iter().enumerate().map(|(i, s)| ((*s).clone(), i)).collect();
        let state_hint = Some(format!(
            "known states are {}",
            state_names.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        ));
        let event_hint = Some(format!(
            "known events are {}",
            events.iter().map(|e| e.name.as_str()).collect::<Vec<_>>().join(", ")
        ));

        let no_event = Scope3 { record: &record, shared: &shared, event: None, event_only: false, event_reads: None };
        let invariants = self.invariants("invariants", &doc.invariants, &no_event);

        let mut states = Vec::new();
        for (sname, sdoc) in &doc.states {
            let spath = format!("states.{sname}");
            let s_invariants = self.invariants(&format!("{spath}.invariants"), &sdoc.invariants, &no_event);
            let on_entry = match &sdoc.on_entry {
                Some(ActionsDoc { assign, effects: effs }) => {
                    self.actions(&format!("{spath}.on_entry"), assign, effs, &no_event, &effects)
                }
                None => Actions::default(),
            };
            let mut table = vec![Handling::Unhandled; events.len()];
            for (code, refused) in &sdoc.refuse {
                let Some(&diag) = diag_index.get(code.as_str()) else {
                    self.add(
                        format!("{spath}.refuse.{code}"),
                        "unknown_diagnostic",
                        format!("diagnostic '{code}' is not declared in diagnostics.codes"),
                        None,
                    );
                    continue;
                };
                for (i, ename) in refused.iter().enumerate() {
                    match event_index.get(ename) {
                        None => self.add(
                            format!("{spath}.refuse.{code}[{i}]"),
                            "unknown_event",
                            format!("unknown event '{ename}'"),
                            event_hint.clone(),
                        ),
                        Some(&e) => {
                            if !matches!(table[e], Handling::Unhandled) {
                                self.add(
                                    format!("{spath}.refuse.{code}[{i}]"),
                                    "duplicate_handling",
                                    format!("state {sname} handles event {ename} more than once"),
                                    None,
                                );
                            }
                            table[e] = Handling::Refuse(diag);
                        }
                    }
                }
            }
            for (ename, cands) in &sdoc.on {
                let opath = format!("{spath}.on.{ename}");
                let Some(&e) = event_index.get(ename) else {
                    self.add(&opath, "unknown_event", format!("unknown event '{ename}'"), event_hint.clone());
                    continue;
                };
                if !matches!(table[e], Handling::Unhandled) {
                    self.add(&opath, "duplicate_handling", format!("state {sname} both takes and refuses event {ename}"), None);
                }
                let names = Scope3 {
                    record: &record,
                    shared: &shared,
                    event: Some(&events[e]),
                    event_only: false,
                    event_reads: Some(&event_reads[e]),
                };
                let mut compiled = Vec::new();
                for (i, cand) in cands.iter().enumerate() {
                    let cpath = format!("{opath}[{i}]");
                    if cand.guard.is_none() && i + 1 < cands.len() {
                        self.add(
                            &cpath,
                            "unreachable_candidate",
                            format!("candidate {i} has no guard, so the {} after it can never be taken", cands.len() - i - 1),
                            Some("give it a guard or move it last".into()),
                        );
                    }
                    if let Some(c) = self.candidate(&cpath, cand, &names, &effects, &diag_index, &state_index, &state_hint) {
                        compiled.push(c);
                    }
                }
                table[e] = Handling::Candidates(compiled);
            }
            states.push(StateDef {
                name: sname.clone(),
                initial: sdoc.initial,
                terminal: sdoc.terminal,
                invariants: s_invariants,
                on_entry,
                table,
            });
        }

        for (ev, reads) in events.iter_mut().zip(&event_reads) {
            ev.read = reads.iter().map(Cell::get).collect();
        }

        // Which invariants each candidate can affect is known now that every state exists.
        for from in 0..states.len() {
            for e in 0..events.len() {
                let Handling::Candidates(cands) = &states[from].table[e] else { continue };
                let mut filled = cands.clone();
                for cand in filled.iter_mut() {
                    if let Candidate::Take { new_run, actions, target, checks, others, .. } = cand {
                        let to = target.unwrap_or(from);
                        let entered = to != from || *new_run;
                        *checks = checks_after((&record, &shared), &invariants, &states[from], &states[to], actions, entered, *new_run);
                        *others = checks_of_others((&record, &shared), &invariants, &states, to, actions, entered);
                    }
                }
                states[from].table[e] = Handling::Candidates(filled);
            }
        }

        let initials: Vec<usize> = states.iter().enumerate().filter(|(_, s)| s.initial).map(|(i, _)| i).collect();
        if initials.len() != 1 {
            self.add(
                "states",
                "initial_state",
                format!("exactly one state must be initial, found {}", initials.len()),
                Some("mark one state with `initial: true`".into()),
            );
        }
        if !self.problems.is_empty() {
            return Err(SpecError { problems: self.problems });
        }
        Ok(Machine {
            name: doc.machine.clone(),
            version: doc.version,
            record,
            shared,
            events,
            effects,
            diagnostics,
            diagnostic_descriptions,
            builtin,
            invariants,
            states,
            initial: initials[0],
            dedup_spaces,
            event_index,
            state_index,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn candidate(
        &mut self,
        path: &str,
        cand: &CandidateDoc,
        names: &Scope3,
        effects: &[EffectDef],
        diag_index: &HashMap<&str, usize>,
        state_index: &HashMap<String, usize>,
        state_hint: &Option<String>,
    ) -> Option<Candidate> {
        let guard = match &cand.guard {
            Some(src) => Some(self.condition(&format!("{path}.guard"), src, names)?),
            None => None,
        };
        if let Some(code) = &cand.refuse {
            if cand.target.is_some() || !cand.assign.is_empty() || !cand.effects.is_empty() || cand.new_run {
                self.add(path, "refuse_with_actions", "a refusing candidate cannot also assign, emit effects, start a run or have a target", None);
                return None;
            }
            let Some(&diag) = diag_index.get(code.as_str()) else {
                self.add(format!("{path}.refuse"), "unknown_diagnostic", format!("diagnostic '{code}' is not declared in diagnostics.codes"), None);
                return None;
            };
            let message = match &cand.message {
                Some(text) => self.message(&format!("{path}.message"), text, names),
                None => Vec::new(),
            };
            return Some(Candidate::Refuse { guard, code: diag, message });
        }
        let target = match &cand.target {
            None => None,
            Some(t) => match state_index.get(t) {
                Some(&i) => Some(i),
                None => {
                    self.add(format!("{path}.target"), "unknown_target", format!("unknown state '{t}'"), state_hint.clone());
                    return None;
                }
            },
        };
        let actions = self.actions(path, &cand.assign, &cand.effects, names, effects);
        Some(Candidate::Take { guard, new_run: cand.new_run, actions, target, checks: Vec::new(), others: Vec::new() })
    }
}

/// The invariants a transition from `source` into `target` must evaluate. One that held
/// before and reads no field the transition writes still holds after it, so it is left out,
/// and so is one the transition's assignments provably keep (see `proof`). What held before:
/// the global invariants and the source state's own (every way into a state checks them:
/// its transitions, a restore, a new instance). So entering a state checks those of its
/// own that the source state does not also have (the same check, word for word), and
/// starting a new run (a fresh record) checks everything. The fields written are known
/// statically: every assignment of the candidate runs, and those of the target's
/// `on_entry` when the state is entered.
fn checks_after(
    m: (&[FieldDef], &[FieldDef]),
    globals: &[Invariant],
    source: &StateDef,
    target: &StateDef,
    actions: &Actions,
    entered: bool,
    new_run: bool,
) -> Vec<Check> {
    let mut assigns: Vec<&Assign> = actions.assigns.iter().collect();
    if entered {
        assigns.extend(&target.on_entry.assigns);
    }
    let may_break = |inv: &Invariant| {
        let touched = inv.reads.iter().any(|r| assigns.iter().any(|a| (a.scope, a.index) == *r));
        touched && !crate::proof::preserved(inv, &assigns, m.0, m.1)
    };
    let mut out: Vec<Check> = globals.iter().enumerate().filter(|(_, inv)| new_run || may_break(inv)).map(|(i, _)| Check::Global(i)).collect();
    let held_before = |inv: &Invariant| {
        let same = |other: &Invariant| other.source.trim() == inv.source.trim();
        !entered || source.invariants.iter().any(same) || globals.iter().any(same)
    };
    out.extend(
        target
            .invariants
            .iter()
            .enumerate()
            .filter(|(_, inv)| new_run || !held_before(inv) || may_break(inv))
            .map(|(i, _)| Check::OfTarget(i)),
    );
    out
}

/// The invariants of other instances that a transition into `to` could break by writing
/// the shared record (see [`OtherCheck`]). Only an invariant that reads a shared field the
/// transition writes can change for an instance the transition does not touch. Left out:
/// - global invariants that read the shared record only: the transition's own checks
///   evaluate them (`checks_after`), and their value is the same for every instance;
/// - a state's invariant that is also a global one, word for word (checked as the global);
/// - a shared-only invariant of the target state, which the transition's own checks
///   evaluate, and one the assignments provably keep (`proof`: it reads one record only,
///   so what held for every instance before still does).
fn checks_of_others(
    m: (&[FieldDef], &[FieldDef]),
    globals: &[Invariant],
    states: &[StateDef],
    to: usize,
    actions: &Actions,
    entered: bool,
) -> Vec<OtherCheck> {
    let mut assigns: Vec<&Assign> = actions.assigns.iter().collect();
    if entered {
        assigns.extend(&states[to].on_entry.assigns);
    }
    if !assigns.iter().any(|a| a.scope == Scope::Shared) {
        return Vec::new();
    }
    let writes = |inv: &Invariant| inv.reads.iter().any(|r| r.0 == Scope::Shared && assigns.iter().any(|a| (a.scope, a.index) == *r));
    let mixed = |inv: &Invariant| inv.reads.iter().any(|r| r.0 != Scope::Shared);
    let mut out: Vec<OtherCheck> = globals.iter().enumerate().filter(|(_, inv)| writes(inv) && mixed(inv)).map(|(i, _)| OtherCheck::Global(i)).collect();
    for (s, state) in states.iter().enumerate() {
        for (i, inv) in state.invariants.iter().enumerate() {
            if !writes(inv) || globals.iter().any(|g| g.source.trim() == inv.source.trim()) {
                continue;
            }
            if mixed(inv) {
                out.push(OtherCheck::OfState { state: s, inv: i });
            } else if s != to && !crate::proof::preserved(inv, &assigns, m.0, m.1) {
                out.push(OtherCheck::SharedOfState { state: s, inv: i });
            }
        }
    }
    out
}

/// An expression as a problem shows it: whole, up to 200 characters (a generated expression
/// of thousands of terms would make every message about it tens of kilobytes).
fn shown(src: &str) -> String {
    const MAX: usize = 200;
    let count = src.chars().count();
    if count <= MAX {
        return src.to_string();
    }
    format!("{}... ({count} characters)", src.chars().take(MAX).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_STATES: &str = r#"{
      "version": 1, "machine": "pair",
      "record": {"n": {"type": "int", "default": 0}, "m": {"type": "int", "default": 0}},
      "events": {"GO": {}, "GROW": {}, "BACK": {}},
      "diagnostics": {"ok": "OK", "duplicate": "DUP", "invariant_violation": "INV", "no_candidate": "NONE",
                      "unhandled": "UNHANDLED", "evaluation_error": "EVAL",
                      "codes": {"OK": "", "DUP": "", "INV": "", "NONE": "", "UNHANDLED": "", "EVAL": ""}},
      "invariants": [{"check": "m >= 0", "message": "m is never negative"}],
      "states": {
        "A": {"initial": true, "invariants": [{"check": "n <= 2", "message": "A holds at most two"}],
              "on": {"GO": [{"target": "B"}], "GROW": [{"assign": {"n": "n + 1"}, "target": "B"}]}},
        "B": {"invariants": [{"check": "n <= 2", "message": "B holds at most two too"},
                             {"check": "m >= 0", "message": "the global one, again"},
                             {"check": "m == 0", "message": "B holds no m"}],
              "on": {"BACK": [{"new_run": true, "target": "B"}]}}
      }
    }"#;

    fn checks(m: &Machine, state: &str, event: &str) -> Vec<Check> {
        let Handling::Candidates(cands) = &m.states[m.state_index(state).unwrap()].table[m.event_index(event).unwrap()] else {
            panic!("{state} takes {event}")
        };
        let Candidate::Take { checks, .. } = &cands[0] else { panic!("a taking candidate") };
        checks.clone()
    }

    #[test]
    fn entering_a_state_leaves_out_the_invariants_that_held_before_and_are_not_written() {
        let m = Machine::compile_json(TWO_STATES).unwrap();
        // B's "n <= 2" is A's own and "m >= 0" a global one: both held in A, GO writes
        // nothing, so only "m == 0", new to B, is evaluated.
        assert_eq!(checks(&m, "A", "GO"), vec![Check::OfTarget(2)]);
        // GROW writes n: the check of n is evaluated again, the one of m is not.
        assert_eq!(checks(&m, "A", "GROW"), vec![Check::OfTarget(0), Check::OfTarget(2)]);
        // A new run resets the record: everything is evaluated.
        assert_eq!(checks(&m, "B", "BACK"), vec![Check::Global(0), Check::OfTarget(0), Check::OfTarget(1), Check::OfTarget(2)]);
    }

    #[test]
    fn an_event_reads_the_fields_its_expressions_name_and_its_dedup_key_and_scope() {
        let spec = r#"{
          "version": 1, "machine": "reads",
          "record": {"n": {"type": "int", "default": 0}, "t": {"type": "string", "default": ""}},
          "events": {
            "E": {"dedup_key": "k", "dedup_scope": "s",
                  "fields": {"k": {"type": "string"}, "s": {"type": "string"}, "a": {"type": "int"},
                             "b": {"type": "int"}, "c": {"type": "string"}, "d": {"type": "string"},
                             "u": {"type": "string"}},
                  "payload_checks": [{"guard": "event.a < 0", "refuse": "NONE"}]},
            "F": {"fields": {"x": {"type": "int"}, "y": {"type": "string"}}}},
          "diagnostics": {"ok": "OK", "duplicate": "DUP", "invariant_violation": "INV", "no_candidate": "NONE",
                          "unhandled": "UNHANDLED", "evaluation_error": "EVAL",
                          "codes": {"OK": "", "DUP": "", "INV": "", "NONE": "", "UNHANDLED": "", "EVAL": ""}},
          "states": {
            "A": {"initial": true,
                  "on": {"E": [{"guard": "event.b > n", "refuse": "NONE", "message": "{event.c} is refused"},
                               {"assign": {"t": "event.d"}, "target": "B"}]}},
            "B": {"on": {"E": [{"target": "A"}]}}
          }
        }"#;
        let m = Machine::compile_json(spec).unwrap();
        let read = |event: &str| {
            let ev = &m.events[m.event_index(event).unwrap()];
            ev.fields.iter().zip(&ev.read).filter(|(_, r)| **r).map(|(f, _)| f.name.as_str()).collect::<Vec<_>>()
        };
        // k and s de-duplicate; a is read by a payload check, b by a guard, c by a message,
        // d by an assignment; nothing names u.
        assert_eq!(read("E"), ["k", "s", "a", "b", "c", "d"]);
        // No state takes F: nothing reads its fields.
        assert_eq!(read("F"), Vec::<&str>::new());
    }
}

