//! Invariants a candidate cannot break, found when the spec is compiled.
//!
//! The identities of a ledger are linear (`balance == credits - debits`), and the
//! assignments that keep books move their terms by the same amounts (`credits += x`,
//! `debits += y`, `balance += x - y`). When such an identity held before a transition it holds after
//! it, whatever the numbers, so evaluating it again can only say "yes": the runtime skips
//! it. The same holds for `position <= entered` when both grow by the same amount. This module decides, for one invariant and one candidate's assignments, whether that
//! is so, by running the assignments over symbols instead of numbers.
//!
//! Why skipping gives exactly the outcome evaluating would:
//! - The invariant held before. Every committed record satisfies every invariant that
//!   applies to it (an apply checks what it may break, `Runtime::new` and
//!   `Runtime::replace` check everything), and a proof is only used where the invariant
//!   held before the transition: global invariants, and those of a state the transition
//!   stays in. A transition that starts a new run (a fresh record) is never skipped.
//! - It reads one record only, the instance's or the shared one: an invariant that mixes
//!   them could have been broken by another instance writing the shared record, which
//!   checks its own record only.
//! - Every field it reads is numeric and never null: whatever was stored there got past
//!   the non-null check of the assignment, and the arithmetic that produced it was exact
//!   or failed (a failed assignment refuses the event before any invariant is looked at).
//!   A value that may have been rounded (an expression with `/`, `round` or `floor_to`
//!   in it) is an unknown of its own, never a sum of others.
//! - It compares a field with a field or a literal (`==`, `!=`, `<`, `<=`, `>`, `>=`), or
//!   it is `field == a ± b` (a, b fields or literals), and the difference of its two sides
//!   is, symbolically, what it was. Then the comparison says what it said before. A plain
//!   comparison cannot fail; for `field == a ± b` both sides are equal after the
//!   transition and the field is stored, so the exact `a ± b` is a number a decimal holds
//!   and cannot fail either. A longer sum could overflow in a partial sum even though its
//!   total fits, and `field <= a + b` could overflow where the field is far from it, so
//!   those are always evaluated.

use crate::expr::{ArithOp, CmpOp, Expr, Scope};
use crate::machine::{Assign, FieldDef, Invariant};
use crate::value::Value;
use rust_decimal::Decimal;
use std::collections::{BTreeMap, HashMap};

/// A number the symbolic run cannot look into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Atom {
    /// A record or shared field's value before the transition.
    Before(u8, usize),
    /// An event payload field.
    Event(usize),
    /// The value an assignment stored that is not a linear function of the above.
    Stored(usize),
}

fn scope_key(scope: Scope) -> u8 {
    match scope {
        Scope::Record => 0,
        Scope::Shared => 1,
        Scope::Event => 2,
    }
}

/// `Σ coefficient × atom + constant`, with no zero coefficients.
#[derive(Clone, Debug, Default, PartialEq)]
struct Linear {
    terms: BTreeMap<Atom, Decimal>,
    constant: Decimal,
}

impl Linear {
    fn atom(a: Atom) -> Linear {
        Linear { terms: BTreeMap::from([(a, Decimal::ONE)]), constant: Decimal::ZERO }
    }

    fn constant(c: Decimal) -> Linear {
        Linear { terms: BTreeMap::new(), constant: c }
    }

    /// `self + k × other`, or None if a coefficient overflows.
    fn plus(mut self, k: Decimal, other: &Linear) -> Option<Linear> {
        for (atom, c) in &other.terms {
            let sum = self.terms.get(atom).copied().unwrap_or_default().checked_add(k.checked_mul(*c)?)?;
            if sum.is_zero() {
                self.terms.remove(atom);
            } else {
                self.terms.insert(*atom, sum);
            }
        }
        self.constant = self.constant.checked_add(k.checked_mul(other.constant)?)?;
        Some(self)
    }

    fn times(&self, k: Decimal) -> Option<Linear> {
        Linear::default().plus(k, self)
    }

    fn as_constant(&self) -> Option<Decimal> {
        self.terms.is_empty().then_some(self.constant)
    }

    fn is_zero(&self) -> bool {
        self.terms.is_empty() && self.constant.is_zero()
    }
}

/// The symbolic values of the fields written so far; unwritten fields are their own atom.
#[derive(Default)]
struct Symbols {
    written: HashMap<(u8, usize), Linear>,
    stored: usize,
}

impl Symbols {
    fn field(&self, scope: Scope, index: usize) -> Linear {
        match scope {
            Scope::Event => Linear::atom(Atom::Event(index)),
            s => self.written.get(&(scope_key(s), index)).cloned().unwrap_or_else(|| Linear::atom(Atom::Before(scope_key(s), index))),
        }
    }

    /// The value of `e` as a linear form, if it is one: exact sums, differences and
    /// negations of fields and numeric literals, and products with a literal.
    fn linear(&self, e: &Expr) -> Option<Linear> {
        Some(match e {
            Expr::Lit(Value::Decimal(d)) => Linear::constant(*d),
            Expr::Lit(Value::Int(i)) => Linear::constant(Decimal::from(*i)),
            Expr::Field(scope, index) => self.field(*scope, *index),
            Expr::Neg(inner) => self.linear(inner)?.times(Decimal::NEGATIVE_ONE)?,
            // `false`: a sum or product under `/`, `round` or `floor_to`, which may round. A
            // flagged node never has one beneath it except through such a node, which is
            // not linear: a linear form is exact all the way down.
            Expr::Arith(op, true, l, r) => {
                let (l, r) = (self.linear(l)?, self.linear(r)?);
                match op {
                    ArithOp::Add => l.plus(Decimal::ONE, &r)?,
                    ArithOp::Sub => l.plus(Decimal::NEGATIVE_ONE, &r)?,
                    ArithOp::Mul => match (l.as_constant(), r.as_constant()) {
                        (Some(k), _) => r.times(k)?,
                        (_, Some(k)) => l.times(k)?,
                        _ => return None,
                    },
                    ArithOp::Div => return None,
                }
            }
            _ => return None,
        })
    }

    /// Runs one assignment: the field now holds its linear form, or a fresh unknown.
    fn assign(&mut self, a: &Assign) {
        let value = self.linear(&a.expr).unwrap_or_else(|| {
            self.stored += 1;
            Linear::atom(Atom::Stored(self.stored))
        });
        self.written.insert((scope_key(a.scope), a.index), value);
    }
}

/// `(l, r)` for an invariant `l op r` of a shape whose evaluation cannot fail once `l - r`
/// is what it was (see the module docs): its truth depends on that difference alone.
fn difference(check: &Expr) -> Option<(Expr, Expr)> {
    let (op, l, r) = match check {
        Expr::Cmp(op, l, r) => (*op, (**l).clone(), (**r).clone()),
        Expr::CmpFields(op, (s1, i1), (s2, i2)) => (*op, Expr::Field(*s1, *i1), Expr::Field(*s2, *i2)),
        Expr::CmpFieldLit(op, (s, i), lit) | Expr::CmpFieldZero(op, (s, i), lit) => (*op, Expr::Field(*s, *i), Expr::Lit(lit.clone())),
        _ => return None,
    };
    let leaf = |e: &Expr| matches!(e, Expr::Field(..) | Expr::Lit(Value::Decimal(_) | Value::Int(_)));
    // Beside a stored field that equals it, a single exact `a ± b` is a number a decimal
    // holds; beside one it is merely less or greater than, it may not be.
    let simple = |e: &Expr| match e {
        Expr::Arith(ArithOp::Add | ArithOp::Sub, true, a, b) => op == CmpOp::Eq && leaf(a) && leaf(b),
        e => leaf(e),
    };
    let shaped = (matches!(l, Expr::Field(..)) && simple(&r)) || (matches!(r, Expr::Field(..)) && simple(&l));
    shaped.then_some((l, r))
}

/// Whether `inv`, holding before, surely holds after running `assigns` in order.
pub(crate) fn preserved(inv: &Invariant, assigns: &[&Assign], record: &[FieldDef], shared: &[FieldDef]) -> bool {
    let one_record = inv.reads.iter().all(|(s, _)| *s == Scope::Record) || inv.reads.iter().all(|(s, _)| *s == Scope::Shared);
    let numeric_non_null = inv.reads.iter().all(|(s, i)| {
        let def = match s {
            Scope::Record => &record[*i],
            Scope::Shared => &shared[*i],
            Scope::Event => return false,
        };
        def.ty.is_numeric() && !def.nullable
    });
    if inv.reads.is_empty() || !one_record || !numeric_non_null {
        return false;
    }
    let Some((l, r)) = difference(&inv.check) else { return false };
    let before = Symbols::default();
    let mut after = Symbols::default();
    for a in assigns {
        after.assign(a);
    }
    let diff = |s: &Symbols| s.linear(&l)?.plus(Decimal::NEGATIVE_ONE, &s.linear(&r)?);
    match (diff(&before), diff(&after)) {
        // The same form over the values before: equal before, so equal after.
        (Some(was), Some(now)) => now.plus(Decimal::NEGATIVE_ONE, &was).is_some_and(|d| d.is_zero()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use crate::machine::{Candidate, Check, Handling, Machine};

    /// A ledger: `balance == credit - debit` per instance, `total == base + sum` in the shared record.
    const LEDGER: &str = r#"{
      "version": 1, "machine": "ledger",
      "record": {"credit": {"type": "decimal", "default": "0"}, "debit": {"type": "decimal", "default": "0"},
                 "balance": {"type": "decimal", "default": "0"}, "last": {"type": "decimal", "nullable": true},
                 "n": {"type": "int", "default": 0}},
      "shared": {"base": {"type": "decimal", "default": "0"}, "total": {"type": "decimal", "default": "0"},
                 "sum": {"type": "decimal", "default": "0"}},
      "events": {"BOOK": {"fields": {"p": {"type": "decimal"}, "f": {"type": "decimal"}}},
                 "SKEW": {"fields": {"p": {"type": "decimal"}}},
                 "THIRD": {"fields": {"p": {"type": "decimal"}}},
                 "TWICE": {"fields": {"p": {"type": "decimal"}}},
                 "FRESH": {}, "GO": {}},
      "diagnostics": {"ok": "OK", "duplicate": "DUP", "invariant_violation": "INV", "no_candidate": "NONE",
                      "unhandled": "UNHANDLED", "evaluation_error": "EVAL",
                      "codes": {"OK": "", "DUP": "", "INV": "", "NONE": "", "UNHANDLED": "", "EVAL": ""}},
      "invariants": [
        {"check": "balance == credit - debit", "message": "balance is credit less debit"},
        {"check": "shared.total == shared.base + shared.sum", "message": "total is base plus sum"},
        {"check": "balance - credit + debit == 0", "message": "the same, as a longer sum"},
        {"check": "shared.sum <= balance or n >= 0", "message": "reads both records"},
        {"check": "balance <= credit", "message": "the debits are never negative"}
      ],
      "states": {
        "A": {"initial": true,
          "invariants": [{"check": "n >= 0", "message": "never negative"}],
          "on": {
            "BOOK": [{"assign": {"last": "round(event.p / 3, 2)", "credit": "credit + last * 3", "debit": "debit + event.f",
                                  "balance": "balance + last * 3 - event.f", "shared.sum": "shared.sum + last * 3 - event.f",
                                  "shared.total": "shared.total - event.f + last * 3"}}],
            "SKEW": [{"assign": {"credit": "credit + event.p"}}],
            "THIRD": [{"assign": {"credit": "credit + event.p / 3", "balance": "balance + event.p / 3"}}],
            "TWICE": [{"assign": {"credit": "credit + 2 * event.p", "balance": "balance + event.p * 2", "n": "n + 1"}}],
            "FRESH": [{"new_run": true, "assign": {"credit": "credit", "balance": "balance"}}],
            "GO": [{"target": "B", "assign": {"n": "n + 1"}}]}},
        "B": {"invariants": [{"check": "n == 1", "message": "entered once"}],
          "on": {"GO": [{"assign": {"n": "n"}}]}}
      }
    }"#;

    /// The invariants (by source) evaluated after candidate 0 of `state` on `event`.
    fn checked(m: &Machine, state: &str, event: &str) -> Vec<String> {
        let s = m.states.iter().position(|s| s.name == state).unwrap();
        let Handling::Candidates(cands) = &m.states[s].table[m.event_index(event).unwrap()] else { panic!("no candidates") };
        let Candidate::Take { checks, target, .. } = &cands[0] else { panic!("not a take") };
        let to = target.unwrap_or(s);
        checks
            .iter()
            .map(|c| match *c {
                Check::Global(i) => m.invariants[i].source.clone(),
                Check::OfTarget(i) => m.states[to].invariants[i].source.clone(),
            })
            .collect()
    }

    #[test]
    fn identities_the_assignments_keep_are_not_evaluated_again() {
        let m = Machine::compile_json(LEDGER).unwrap();
        // Every term moves by the same amounts, through a value that was rounded
        // (`last`, an unknown of its own): both identities are kept by construction. The
        // longer sum is evaluated all the same (a partial sum could overflow), and so is
        // the invariant that reads both records.
        // `balance <= credit` moves by the debit, so it is evaluated.
        assert_eq!(checked(&m, "A", "BOOK"), ["balance - credit + debit == 0", "shared.sum <= balance or n >= 0", "balance <= credit"]);
        // Scaled by a literal on either side, the same; and `balance - credit` is what it
        // was, so `balance <= credit` says what it said.
        assert_eq!(checked(&m, "A", "TWICE"), ["balance - credit + debit == 0", "shared.sum <= balance or n >= 0", "n >= 0"]);
    }

    #[test]
    fn what_may_break_an_identity_is_still_evaluated() {
        let m = Machine::compile_json(LEDGER).unwrap();
        // One term moves alone.
        assert_eq!(checked(&m, "A", "SKEW"), ["balance == credit - debit", "balance - credit + debit == 0", "balance <= credit"]);
        // Two expressions that divide: each may round on its own, so nothing says they agree.
        assert_eq!(
            checked(&m, "A", "THIRD"),
            ["balance == credit - debit", "balance - credit + debit == 0", "shared.sum <= balance or n >= 0", "balance <= credit"]
        );
        // A fresh record, and a state entered, are checked in full.
        assert_eq!(checked(&m, "A", "FRESH").len(), 6);
        assert_eq!(checked(&m, "A", "GO"), ["shared.sum <= balance or n >= 0", "n == 1"]);
        // Staying in B, its own invariant held before and `n: n` keeps it.
        assert_eq!(checked(&m, "B", "GO"), ["shared.sum <= balance or n >= 0"]);
    }

    #[test]
    fn a_kept_identity_still_holds_and_a_broken_one_is_refused() {
        use crate::runtime::Runtime;
        use crate::value::{parse_decimal, Value};
        use std::sync::Arc;
        let m = Arc::new(Machine::compile_json(LEDGER).unwrap());
        let mut rt = Runtime::new(m.clone(), 1, &[("base".into(), Value::Int(100)), ("total".into(), Value::Int(100))]).unwrap();
        let d = |s: &str| Value::Decimal(parse_decimal(s).unwrap());
        let ev = |name: &str| m.event_index(name).unwrap();
        let book = rt.apply(0, ev("BOOK"), vec![d("10"), d("0.5")]).unwrap();
        assert!(book.accepted, "{:?}", book.message);
        let field = |rt: &Runtime, name: &str| rt.record(0).unwrap()[m.record.iter().position(|f| f.name == name).unwrap()].clone();
        assert_eq!((field(&rt, "credit"), field(&rt, "debit"), field(&rt, "balance")), (d("9.99"), d("0.5"), d("9.49")));
        assert_eq!(rt.shared(), [d("100"), d("109.49"), d("9.49")]);
        // Every invariant, all evaluated, holds after the transitions that skipped some.
        let snap = rt.snapshot(0).unwrap();
        assert_eq!(rt.check(&snap, rt.shared()), Vec::<String>::new());
        let skew = rt.apply(0, ev("SKEW"), vec![d("1")]).unwrap();
        assert_eq!(m.diagnostics[skew.diagnostic], "INV");
        assert!(skew.message.unwrap().contains("balance == credit - debit"));
        assert_eq!(field(&rt, "credit"), d("9.99"), "nothing changed");
    }
}
