//! `fsm_engine` — a generic, table-driven state-machine executor.
//!
//! A machine is pure data (a spec): states with invariants, events with typed payload
//! fields, a typed per-instance record and a typed shared record, and for each state the
//! events it takes as ordered candidates `{guard, assign, effects, target}`. The engine
//! compiles a spec into tables ([`Machine::compile`]) and executes it ([`Runtime::apply`]):
//! every transition is committed only if every guard and assignment evaluated and every
//! invariant it could affect holds; otherwise everything it wrote is put back.
//!
//! The engine knows nothing of what a machine is about; all meaning lives in the spec.

mod expr;
mod machine;
mod proof;
mod runtime;
pub mod spec;
mod value;

#[cfg(feature = "python")]
mod python;
#[cfg(feature = "python")]
mod python_decimal;
#[cfg(feature = "python")]
mod python_init;
#[cfg(feature = "python")]
mod python_members;

pub use expr::EvalError;
pub use machine::{Machine, Problem, SpecError};
pub use runtime::{EngineError, InstanceSnapshot, Outcome, Runtime, SeenKey, Transition};
pub use value::{parse_decimal, Ty, Value};
pub use rust_decimal::Decimal;
