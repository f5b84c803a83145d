//! The spec document as data: the JSON form of a machine, before compilation.
//! `deny_unknown_fields` everywhere: a misspelt key is an error, never ignored.

use indexmap::IndexMap;
use serde::Deserialize;

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct SpecDoc {
    pub version: u32,
    pub machine: String,
    #[serde(default)]
    pub description: Option<String>,
    /// A home for YAML anchors that the rest of the spec reuses; the engine ignores it.
    #[serde(default)]
    pub templates: Option<serde_json::Value>,
    #[serde(default)]
    pub record: IndexMap<String, FieldDoc>,
    #[serde(default)]
    pub shared: IndexMap<String, FieldDoc>,
    pub events: IndexMap<String, EventDoc>,
    #[serde(default)]
    pub effects: IndexMap<String, EffectDoc>,
    pub diagnostics: DiagnosticsDoc,
    #[serde(default)]
    pub invariants: Vec<InvariantDoc>,
    pub states: IndexMap<String, StateDoc>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct FieldDoc {
    #[serde(rename = "type")]
    pub ty: String,
    #[serde(default)]
    pub nullable: bool,
    #[serde(default)]
    pub default: Option<serde_json::Value>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct EventDoc {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub dedup_key: Option<String>,
    #[serde(default)]
    pub dedup_scope: Option<String>,
    #[serde(default)]
    pub fields: IndexMap<String, FieldDoc>,
    #[serde(default)]
    pub payload_checks: Vec<PayloadCheckDoc>,
}

/// A refusal decided by an event's payload alone, in whatever state the instance is.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct PayloadCheckDoc {
    pub guard: String,
    pub refuse: String,
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct EffectDoc {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub fields: IndexMap<String, FieldDoc>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct DiagnosticsDoc {
    pub ok: String,
    pub duplicate: String,
    pub invariant_violation: String,
    pub no_candidate: String,
    pub unhandled: String,
    pub evaluation_error: String,
    pub codes: IndexMap<String, String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct InvariantDoc {
    pub check: String,
    pub message: String,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct StateDoc {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub initial: bool,
    #[serde(default)]
    pub terminal: bool,
    #[serde(default)]
    pub invariants: Vec<InvariantDoc>,
    #[serde(default)]
    pub on_entry: Option<ActionsDoc>,
    #[serde(default)]
    pub on: IndexMap<String, Vec<CandidateDoc>>,
    #[serde(default)]
    pub refuse: IndexMap<String, Vec<String>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct ActionsDoc {
    #[serde(default)]
    pub assign: IndexMap<String, String>,
    #[serde(default)]
    pub effects: Vec<EffectCallDoc>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct CandidateDoc {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub guard: Option<String>,
    #[serde(default)]
    pub new_run: bool,
    #[serde(default)]
    pub assign: IndexMap<String, String>,
    #[serde(default)]
    pub effects: Vec<EffectCallDoc>,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub refuse: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct EffectCallDoc {
    pub effect: String,
    #[serde(default, rename = "with")]
    pub args: IndexMap<String, String>,
}
