//! The expression language of guards, assignments, effects and invariants.
//!
//! Small, typed and exact: decimal and integer arithmetic (`+ - * /`), comparisons,
//! `and` / `or` / `not`, `null` checks, and the functions `min`, `max`, `abs`, `len`,
//! `at`, `sum`, `floor_to`, `if` and `coalesce`. Names are fields of the instance record
//! (`size`), of the shared record (`shared.total`) or of the event payload (`event.qty`).
//! Every expression is type-checked when the spec is compiled; evaluation can only fail
//! on data (a null operand, a division by zero, an overflow, an index out of range).

use crate::value::{parse_decimal, Ty, Value};
use rust_decimal::{Decimal, RoundingStrategy};
use std::fmt;
use std::sync::Arc;

/// Where a name lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Record,
    Shared,
    Event,
}

impl Scope {
    pub fn prefix(self) -> &'static str {
        match self {
            Scope::Record => "",
            Scope::Shared => "shared.",
            Scope::Event => "event.",
        }
    }
}

/// The static type of an expression: `ty` is `None` only for the literal `null`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExprTy {
    pub ty: Option<Ty>,
    pub nullable: bool,
}

impl ExprTy {
    fn of(ty: Ty) -> Self {
        ExprTy { ty: Some(ty), nullable: false }
    }
    fn describe(self) -> String {
        match self.ty {
            None => "null".into(),
            Some(t) if self.nullable => format!("{t} (nullable)"),
            Some(t) => t.name().into(),
        }
    }
}

/// Resolves names while compiling: `(scope, name) -> (index, type, nullable)`.
pub trait Names {
    fn resolve(&self, scope: Scope, name: &str) -> Result<(usize, Ty, bool), String>;
}

/// Reads values while evaluating.
pub trait Env {
    fn get(&self, scope: Scope, index: usize) -> &Value;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Func {
    Min,
    Max,
    Abs,
    Len,
    At,
    Sum,
    SumFirst,
    FloorTo,
    Round,
    If,
    Coalesce,
    Concat,
}

/// A compiled expression: names resolved to indices, types checked.
#[derive(Clone, Debug)]
pub enum Expr {
    Lit(Value),
    Field(Scope, usize),
    Neg(Box<Expr>),
    Not(Box<Expr>),
    /// `l op r`; the flag says the result must be exact (see [`compile`]).
    Arith(ArithOp, bool, Box<Expr>, Box<Expr>),
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    // Specialised comparisons, chosen at compile time for the shapes guards and invariants
    // are mostly made of: they read their operands in place, with no nested dispatch.
    /// `field == null` (`true`) or `field != null` (`false`).
    IsNull(Scope, usize, bool),
    /// `field op field`.
    CmpFields(CmpOp, (Scope, usize), (Scope, usize)),
    /// `field op literal`.
    CmpFieldLit(CmpOp, (Scope, usize), Value),
    /// `field op 0` (the literal kept for a field that is not a number): a sign test,
    /// where a decimal comparison would align two scales first.
    CmpFieldZero(CmpOp, (Scope, usize), Value),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Call(Func, Vec<Expr>),
}

/// A failure while evaluating an expression on concrete data.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalError(pub Box<String>);

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, EvalError> {
    Err(EvalError(Box::new(msg.into())))
}

// ---------------------------------------------------------------------------
// Lexer and parser (to an untyped tree), then the type checker (to `Expr`).
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(String),
    Str(String),
    Ident(String),
    Sym(&'static str),
}

fn lex(src: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            out.push(Tok::Num(chars[start..i].iter().collect()));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Tok::Ident(chars[start..i].iter().collect()));
        } else if c == '"' || c == '\'' {
            let start = i + 1;
            i += 1;
            while i < chars.len() && chars[i] != c {
                i += 1;
            }
            if i >= chars.len() {
                return Err(format!("unterminated string starting at column {}", start));
            }
            out.push(Tok::Str(chars[start..i].iter().collect()));
            i += 1;
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let sym = match two.as_str() {
                "==" => Some("=="),
                "!=" => Some("!="),
                "<=" => Some("<="),
                ">=" => Some(">="),
                _ => None,
            };
            if let Some(s) = sym {
                out.push(Tok::Sym(s));
                i += 2;
                continue;
            }
            let s = match c {
                '+' => "+",
                '-' => "-",
                '*' => "*",
                '/' => "/",
                '<' => "<",
                '>' => ">",
                '(' => "(",
                ')' => ")",
                ',' => ",",
                '.' => ".",
                _ => return Err(format!("unexpected character {c:?} at column {}", i + 1)),
            };
            out.push(Tok::Sym(s));
            i += 1;
        }
    }
    Ok(out)
}

#[derive(Clone, Debug)]
enum Ast {
    Num(String),
    Str(String),
    Bool(bool),
    Null,
    Name(Option<String>, String),
    Neg(Box<Ast>),
    Not(Box<Ast>),
    Bin(&'static str, Box<Ast>, Box<Ast>),
    Call(String, Vec<Ast>),
}

/// How deeply an expression may nest: the height of its tree (each operator or call over
/// its operands is a level, so a chain `a + b + c` is one level per `+`), and the nesting of
/// parentheses, signs and `not`s while it is read. Everything that walks an expression
/// (parsing, type checking, evaluation, the proofs, even dropping it) recurses once per
/// level on the caller's stack, which may be a Python thread's small one; an expression
/// deeper than this would overflow it and kill the process, so it is refused when the spec
/// loads. Real guards and assignments are a few levels deep.
pub const MAX_DEPTH: usize = 200;

#[cold]
#[inline(never)]
fn too_deep() -> String {
    format!(
        "the expression nests more than {MAX_DEPTH} levels deep (the limit: each operator, call, sign or \
         parenthesis inside another is a level, and a chain `a + b + c` is one level per operator); \
         split it over several assignments"
    )
}

// Precedences, loosest first.
const OR: u8 = 1;
const AND: u8 = 2;
const NOT: u8 = 3;
const CMP: u8 = 4;
const SUM: u8 = 5;
const PRODUCT: u8 = 6;
const SIGN: u8 = 7;

/// A parsed subexpression and the height of its tree (a leaf is 1). Boxed: the parser's
/// frames hold several of these, and a pointer keeps them small.
type Parsed = Result<(Box<Ast>, usize), String>;

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    /// How many parentheses, call argument lists, signs and `not`s enclose the current
    /// token: the parser recurses once per level, so this is bounded before it recurses.
    nesting: usize,
}

/// `l op r`, refused once the tree would be deeper than [`MAX_DEPTH`].
#[inline(never)]
fn bin(op: &'static str, (l, hl): (Box<Ast>, usize), (r, hr): (Box<Ast>, usize)) -> Parsed {
    let h = 1 + hl.max(hr);
    if h > MAX_DEPTH {
        return Err(too_deep());
    }
    Ok((Box::new(Ast::Bin(op, l, r)), h))
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn eat_sym(&mut self, s: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Sym(x)) if *x == s) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn eat_word(&mut self, w: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Ident(x)) if x == w) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    /// Runs `f` one nesting level deeper, refusing to go past [`MAX_DEPTH`].
    fn nested(&mut self, f: impl FnOnce(&mut Self) -> Parsed) -> Parsed {
        if self.nesting >= MAX_DEPTH {
            return Err(too_deep());
        }
        self.nesting += 1;
        let out = f(self);
        self.nesting -= 1;
        out
    }
    /// `op` over a parsed operand, refused once the tree would be too deep.
    #[inline(never)]
    fn unary_node(wrap: fn(Box<Ast>) -> Ast, (e, h): (Box<Ast>, usize)) -> Parsed {
        if h + 1 > MAX_DEPTH {
            return Err(too_deep());
        }
        Ok((Box::new(wrap(e)), h + 1))
    }

    /// The binary operator at the cursor and its precedence (tighter binds higher).
    fn binary_op(&self) -> Option<(&'static str, u8)> {
        Some(match self.peek()? {
            Tok::Ident(w) if w == "or" => ("or", OR),
            Tok::Ident(w) if w == "and" => ("and", AND),
            Tok::Sym(s @ ("==" | "!=" | "<=" | ">=" | "<" | ">")) => (*s, CMP),
            Tok::Sym(s @ ("+" | "-")) => (*s, SUM),
            Tok::Sym(s @ ("*" | "/")) => (*s, PRODUCT),
            _ => return None,
        })
    }

    /// An expression whose operators bind at least as tightly as `min`. Precedence climbing,
    /// not one function per level of precedence: each parenthesis or operand then costs the
    /// stack two frames instead of nine, which is what lets [`MAX_DEPTH`] levels fit on a
    /// small thread stack. Left-associative; a comparison takes no second comparison
    /// (`a < b < c` is refused, as it always was); `not` binds looser than a comparison
    /// (`not a == b` is `not (a == b)`) and a sign tighter than a product.
    fn expr(&mut self, min: u8) -> Parsed {
        let mut left = if min <= NOT && self.eat_word("not") {
            let inner = self.nested(|p| p.expr(NOT))?;
            Self::unary_node(Ast::Not, inner)?
        } else if self.eat_sym("-") {
            let inner = self.nested(|p| p.expr(SIGN))?;
            Self::unary_node(Ast::Neg, inner)?
        } else {
            self.primary()?
        };
        let mut compared = false;
        while let Some((op, prec)) = self.binary_op() {
            if prec == CMP && compared {
                // Left for a looser loop, it would compare a conjunction (`p and a < b < c`).
                return Err(format!("a comparison cannot be compared again ('{op}'); add parentheses"));
            }
            if prec < min {
                break;
            }
            self.pos += 1;
            compared = prec == CMP;
            // Not counted as nesting: without a parenthesis, a sign or a `not` this recursion
            // goes at most one level per precedence.
            let right = self.expr(prec + 1)?;
            left = bin(op, left, right)?;
        }
        Ok(left)
    }

    /// A parenthesised expression, a call, or a leaf. The call and the leaves are parsed in
    /// functions of their own, never inlined: only this and `expr` sit on the stack once per
    /// level of nesting, so their frames are kept small.
    fn primary(&mut self) -> Parsed {
        if self.eat_sym("(") {
            let inner = self.nested(|p| p.expr(OR))?;
            if !self.eat_sym(")") {
                return Err("expected ')'".into());
            }
            return Ok(inner);
        }
        let is_call = matches!(
            (self.toks.get(self.pos), self.toks.get(self.pos + 1)),
            (Some(Tok::Ident(w)), Some(Tok::Sym("("))) if !matches!(w.as_str(), "true" | "false" | "null" | "and" | "or" | "not")
        );
        if is_call {
            self.call()
        } else {
            self.leaf()
        }
    }

    /// `name(arg, ...)`, the cursor on the name.
    #[inline(never)]
    fn call(&mut self) -> Parsed {
        let Some(Tok::Ident(word)) = self.next() else { unreachable!("primary() saw a name") };
        self.pos += 1; // the "("
        let mut args = Vec::new();
        let mut height = 0;
        if !self.eat_sym(")") {
            loop {
                let (arg, h) = self.nested(|p| p.expr(OR))?;
                args.push(*arg);
                height = height.max(h);
                if self.eat_sym(")") {
                    break;
                }
                if !self.eat_sym(",") {
                    return Err(format!("expected ',' or ')' in the arguments of {word}()"));
                }
            }
        }
        if height + 1 > MAX_DEPTH {
            return Err(too_deep());
        }
        Ok((Box::new(Ast::Call(word, args)), height + 1))
    }

    /// A literal or a name (or the error at a token that cannot start an operand).
    #[inline(never)]
    fn leaf(&mut self) -> Parsed {
        match self.next() {
            Some(Tok::Num(n)) => Ok((Box::new(Ast::Num(n)), 1)),
            Some(Tok::Str(s)) => Ok((Box::new(Ast::Str(s)), 1)),
            Some(Tok::Ident(word)) => match word.as_str() {
                "true" => Ok((Box::new(Ast::Bool(true)), 1)),
                "false" => Ok((Box::new(Ast::Bool(false)), 1)),
                "null" => Ok((Box::new(Ast::Null), 1)),
                "and" | "or" | "not" => Err(format!("unexpected '{word}'")),
                _ => {
                    if self.eat_sym(".") {
                        match self.next() {
                            Some(Tok::Ident(field)) => Ok((Box::new(Ast::Name(Some(word), field)), 1)),
                            _ => Err(format!("expected a field name after '{word}.'")),
                        }
                    } else {
                        Ok((Box::new(Ast::Name(None, word)), 1))
                    }
                }
            },
            Some(Tok::Sym(s)) => Err(format!("unexpected '{s}'")),
            None => Err("unexpected end of expression".into()),
        }
    }
}

/// A compile-time problem in one expression: `code` is a stable problem code.
#[derive(Clone, Debug, PartialEq)]
pub struct ExprProblem {
    pub code: &'static str,
    pub message: String,
}

fn problem<T>(code: &'static str, message: impl Into<String>) -> Result<T, ExprProblem> {
    Err(ExprProblem { code, message: message.into() })
}

/// Parses and type-checks `src`, resolving names through `names`.
///
/// Exactness: `/`, `round` and `floor_to` ask for a rounded result, and so may what feeds
/// them: the sums and products in the operands of `/` (a weighted mean's numerator) and in
/// the arguments of `round` and `floor_to` may round too. Every other `+`, `-` and `*`,
/// including one elsewhere in the same expression (beside a division, or computed from a
/// quotient), must be exact: a result that rust_decimal would round (more than 28 decimal
/// places, or more than 96 bits of digits, about 28-29 significant digits) is an evaluation
/// error, never a quietly rounded number. Permission is scoped to the rounding node so that
/// a division in one branch of an `if` cannot let a running total in another branch drift.
pub fn compile(src: &str, names: &dyn Names) -> Result<(Expr, ExprTy), ExprProblem> {
    let toks = lex(src).map_err(|m| ExprProblem { code: "syntax_error", message: m })?;
    let mut p = Parser { toks, pos: 0, nesting: 0 };
    let (ast, _height) = p.expr(OR).map_err(|m| ExprProblem { code: "syntax_error", message: m })?;
    if p.pos < p.toks.len() {
        return problem("syntax_error", format!("unexpected {:?} after a complete expression", p.toks[p.pos]));
    }
    let (mut expr, ty) = check(&ast, names)?;
    expr.scope_rounding();
    Ok((expr, ty))
}

impl Expr {
    /// Lets the rounding nodes (`/`, `round`, `floor_to`) and everything beneath them round
    /// (see [`compile`]); every other `+ - *` keeps the exact flag `check` gave it. Done once
    /// at compile time, so evaluation still reads one flag per `Arith` node.
    fn scope_rounding(&mut self) {
        match self {
            Expr::Arith(ArithOp::Div, _, _, _) | Expr::Call(Func::Round | Func::FloorTo, _) => self.allow_rounding(),
            Expr::Arith(_, _, l, r) | Expr::Cmp(_, l, r) | Expr::And(l, r) | Expr::Or(l, r) => {
                l.scope_rounding();
                r.scope_rounding();
            }
            Expr::Neg(e) | Expr::Not(e) => e.scope_rounding(),
            Expr::Call(_, args) => args.iter_mut().for_each(Expr::scope_rounding),
            Expr::Lit(_) | Expr::Field(..) | Expr::IsNull(..) | Expr::CmpFields(..) | Expr::CmpFieldLit(..) | Expr::CmpFieldZero(..) => {}
        }
    }

    /// Clears the exact flag of every `Arith` node in the whole subtree.
    fn allow_rounding(&mut self) {
        match self {
            Expr::Arith(_, exact, l, r) => {
                *exact = false;
                l.allow_rounding();
                r.allow_rounding();
            }
            Expr::Cmp(_, l, r) | Expr::And(l, r) | Expr::Or(l, r) => {
                l.allow_rounding();
                r.allow_rounding();
            }
            Expr::Neg(e) | Expr::Not(e) => e.allow_rounding(),
            Expr::Call(_, args) => args.iter_mut().for_each(Expr::allow_rounding),
            Expr::Lit(_) | Expr::Field(..) | Expr::IsNull(..) | Expr::CmpFields(..) | Expr::CmpFieldLit(..) | Expr::CmpFieldZero(..) => {}
        }
    }
}

fn numeric(t: ExprTy) -> bool {
    t.ty.map_or(false, Ty::is_numeric)
}

/// Type-checks `ast`. Only this dispatcher and `check_call` recurse (once per level of the
/// tree); what each node does with its checked operands is in functions never inlined here,
/// so that the frame stacked per level stays small (see [`MAX_DEPTH`]).
fn check(ast: &Ast, names: &dyn Names) -> Result<(Expr, ExprTy), ExprProblem> {
    match ast {
        Ast::Neg(inner) => check_unary(ast, check(inner, names)?),
        Ast::Not(inner) => check_unary(ast, check(inner, names)?),
        Ast::Bin(op, l, r) => {
            let left = check(l, names)?;
            let right = check(r, names)?;
            check_bin(op, left, right)
        }
        Ast::Call(name, args) => check_call(name, args, names),
        leaf => check_leaf(leaf, names),
    }
}

#[inline(never)]
fn check_leaf(ast: &Ast, names: &dyn Names) -> Result<(Expr, ExprTy), ExprProblem> {
    Ok(match ast {
        Ast::Num(n) => {
            if n.contains('.') {
                let d = parse_decimal(n).map_err(|m| ExprProblem { code: "syntax_error", message: m })?;
                (Expr::Lit(Value::Decimal(d)), ExprTy::of(Ty::Decimal))
            } else {
                match n.parse::<i64>() {
                    Ok(i) => (Expr::Lit(Value::Int(i)), ExprTy::of(Ty::Int)),
                    Err(_) => return problem("syntax_error", format!("integer {n} is out of range")),
                }
            }
        }
        Ast::Str(s) => (Expr::Lit(Value::String(Arc::from(s.as_str()))), ExprTy::of(Ty::String)),
        Ast::Bool(b) => (Expr::Lit(Value::Bool(*b)), ExprTy::of(Ty::Bool)),
        Ast::Null => (Expr::Lit(Value::Null), ExprTy { ty: None, nullable: true }),
        Ast::Name(prefix, name) => {
            let scope = match prefix.as_deref() {
                None => Scope::Record,
                Some("shared") => Scope::Shared,
                Some("event") => Scope::Event,
                Some(other) => {
                    return problem(
                        "unknown_field",
                        format!("unknown scope '{other}' in '{other}.{name}' (use a record field, shared.NAME or event.NAME)"),
                    )
                }
            };
            let (idx, ty, nullable) =
                names.resolve(scope, name).map_err(|m| ExprProblem { code: "unknown_field", message: m })?;
            (Expr::Field(scope, idx), ExprTy { ty: Some(ty), nullable })
        }
        Ast::Neg(_) | Ast::Not(_) | Ast::Bin(..) | Ast::Call(..) => unreachable!("check() handles operators and calls"),
    })
}

/// `-e` or `not e`, `e` checked.
#[inline(never)]
fn check_unary(ast: &Ast, (e, t): (Expr, ExprTy)) -> Result<(Expr, ExprTy), ExprProblem> {
    Ok(match ast {
        Ast::Neg(_) => {
            if !numeric(t) {
                return problem("type_error", format!("'-' needs a number, got {}", t.describe()));
            }
            (Expr::Neg(Box::new(e)), t)
        }
        _ => {
            if t.ty != Some(Ty::Bool) {
                return problem("type_error", format!("'not' needs a bool, got {}", t.describe()));
            }
            (Expr::Not(Box::new(e)), t)
        }
    })
}

/// `l op r`, both checked.
#[inline(never)]
fn check_bin(op: &'static str, (le, lt): (Expr, ExprTy), (re, rt): (Expr, ExprTy)) -> Result<(Expr, ExprTy), ExprProblem> {
    let nullable = lt.nullable || rt.nullable;
    Ok({
        {
            match op {
                "and" | "or" => {
                    if lt.ty != Some(Ty::Bool) || rt.ty != Some(Ty::Bool) {
                        return problem(
                            "type_error",
                            format!("'{op}' needs bools, got {} and {}", lt.describe(), rt.describe()),
                        );
                    }
                    let e = if op == "and" {
                        Expr::And(Box::new(le), Box::new(re))
                    } else {
                        Expr::Or(Box::new(le), Box::new(re))
                    };
                    (e, ExprTy { ty: Some(Ty::Bool), nullable })
                }
                "+" if lt.ty == Some(Ty::String) || rt.ty == Some(Ty::String) => {
                    // Text concatenation, for messages and reasons; the other side is rendered.
                    (Expr::Call(Func::Concat, vec![le, re]), ExprTy::of(Ty::String))
                }
                "+" | "-" | "*" | "/" => {
                    if !numeric(lt) || !numeric(rt) {
                        return problem(
                            "type_error",
                            format!("'{op}' needs numbers, got {} and {}", lt.describe(), rt.describe()),
                        );
                    }
                    let both_int = lt.ty == Some(Ty::Int) && rt.ty == Some(Ty::Int);
                    let ty = if both_int && op != "/" { Ty::Int } else { Ty::Decimal };
                    let (le, re) = widen_literals(le, lt, re, rt);
                    let aop = match op {
                        "+" => ArithOp::Add,
                        "-" => ArithOp::Sub,
                        "*" => ArithOp::Mul,
                        _ => ArithOp::Div,
                    };
                    (Expr::Arith(aop, true, Box::new(le), Box::new(re)), ExprTy { ty: Some(ty), nullable })
                }
                _ => {
                    let cop = match op {
                        "==" => CmpOp::Eq,
                        "!=" => CmpOp::Ne,
                        "<" => CmpOp::Lt,
                        "<=" => CmpOp::Le,
                        ">" => CmpOp::Gt,
                        _ => CmpOp::Ge,
                    };
                    let ok = match cop {
                        CmpOp::Eq | CmpOp::Ne => {
                            lt.ty.is_none() || rt.ty.is_none() || lt.ty == rt.ty || (numeric(lt) && numeric(rt))
                        }
                        _ => numeric(lt) && numeric(rt),
                    };
                    if !ok {
                        return problem(
                            "type_error",
                            format!("cannot compare {} {op} {}", lt.describe(), rt.describe()),
                        );
                    }
                    let (le, re) = widen_literals(le, lt, re, rt);
                    (comparison(cop, le, re), ExprTy::of(Ty::Bool))
                }
            }
        }
    })
}

/// The cheapest node that compares `l` and `r` (see the specialised `Expr` variants).
fn comparison(op: CmpOp, l: Expr, r: Expr) -> Expr {
    let flip = |op| match op {
        CmpOp::Lt => CmpOp::Gt,
        CmpOp::Le => CmpOp::Ge,
        CmpOp::Gt => CmpOp::Lt,
        CmpOp::Ge => CmpOp::Le,
        same => same,
    };
    match (l, r) {
        (Expr::Field(s, i), Expr::Lit(Value::Null)) | (Expr::Lit(Value::Null), Expr::Field(s, i))
            if matches!(op, CmpOp::Eq | CmpOp::Ne) =>
        {
            Expr::IsNull(s, i, op == CmpOp::Eq)
        }
        (Expr::Field(s1, i1), Expr::Field(s2, i2)) => Expr::CmpFields(op, (s1, i1), (s2, i2)),
        (Expr::Field(s, i), Expr::Lit(v)) if is_zero(&v) => Expr::CmpFieldZero(op, (s, i), v),
        (Expr::Lit(v), Expr::Field(s, i)) if is_zero(&v) => Expr::CmpFieldZero(flip(op), (s, i), v),
        (Expr::Field(s, i), Expr::Lit(v)) => Expr::CmpFieldLit(op, (s, i), v),
        (Expr::Lit(v), Expr::Field(s, i)) => Expr::CmpFieldLit(flip(op), (s, i), v),
        (l, r) => Expr::Cmp(op, Box::new(l), Box::new(r)),
    }
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Int(i) => *i == 0,
        Value::Decimal(d) => d.is_zero(),
        _ => false,
    }
}

/// An int literal beside a decimal operand becomes a decimal literal once, at compile
/// time, instead of being widened on every evaluation.
fn widen_literals(l: Expr, lt: ExprTy, r: Expr, rt: ExprTy) -> (Expr, Expr) {
    let widen = |e: Expr, other: ExprTy| match e {
        Expr::Lit(Value::Int(i)) if other.ty == Some(Ty::Decimal) => Expr::Lit(Value::Decimal(Decimal::from(i))),
        e => e,
    };
    (widen(l, rt), widen(r, lt))
}

#[inline(never)]
fn check_call(name: &str, args: &[Ast], names: &dyn Names) -> Result<(Expr, ExprTy), ExprProblem> {
    let func = func_named(name)?;
    let mut exprs = Vec::with_capacity(args.len());
    let mut tys = Vec::with_capacity(args.len());
    for a in args {
        let (e, t) = check(a, names)?;
        exprs.push(e);
        tys.push(t);
    }
    call_type(func, name, exprs, tys)
}

#[inline(never)]
fn func_named(name: &str) -> Result<Func, ExprProblem> {
    Ok(match name {
        "min" => Func::Min,
        "max" => Func::Max,
        "abs" => Func::Abs,
        "len" => Func::Len,
        "at" => Func::At,
        "sum" => Func::Sum,
        "sum_first" => Func::SumFirst,
        "floor_to" => Func::FloorTo,
        "round" => Func::Round,
        "if" => Func::If,
        "coalesce" => Func::Coalesce,
        _ => {
            return problem(
                "unknown_function",
                format!("unknown function {name}() (known: min, max, abs, len, at, sum, sum_first, floor_to, round, if, coalesce)"),
            )
        }
    })
}

/// The call of `func` on checked arguments (apart from `check_call` for a small frame).
#[inline(never)]
fn call_type(func: Func, name: &str, exprs: Vec<Expr>, tys: Vec<ExprTy>) -> Result<(Expr, ExprTy), ExprProblem> {
    let arity = |n: usize| -> Result<(), ExprProblem> {
        if tys.len() != n {
            return problem("type_error", format!("{name}() takes {n} argument(s), got {}", tys.len()));
        }
        Ok(())
    };
    let want = |i: usize, ok: bool, what: &str| -> Result<(), ExprProblem> {
        if !ok {
            return problem(
                "type_error",
                format!("argument {} of {name}() must be {what}, got {}", i + 1, tys[i].describe()),
            );
        }
        Ok(())
    };
    let any_null = tys.iter().any(|t| t.nullable);
    let ty = match func {
        Func::Min | Func::Max if tys.len() == 1 => {
            want(0, tys[0].ty == Some(Ty::DecimalList), "a decimal_list (or give 2+ numbers)")?;
            ExprTy { ty: Some(Ty::Decimal), nullable: any_null }
        }
        Func::Min | Func::Max => {
            if tys.len() < 2 {
                return problem("type_error", format!("{name}() takes at least 2 arguments"));
            }
            for i in 0..tys.len() {
                want(i, numeric(tys[i]), "a number")?;
            }
            let all_int = tys.iter().all(|t| t.ty == Some(Ty::Int));
            ExprTy { ty: Some(if all_int { Ty::Int } else { Ty::Decimal }), nullable: any_null }
        }
        Func::Abs => {
            arity(1)?;
            want(0, numeric(tys[0]), "a number")?;
            tys[0]
        }
        Func::Len | Func::Sum => {
            arity(1)?;
            want(0, tys[0].ty == Some(Ty::DecimalList), "a decimal_list")?;
            ExprTy { ty: Some(if func == Func::Len { Ty::Int } else { Ty::Decimal }), nullable: any_null }
        }
        Func::SumFirst => {
            arity(2)?;
            want(0, tys[0].ty == Some(Ty::DecimalList), "a decimal_list")?;
            want(1, tys[1].ty == Some(Ty::Int), "an int")?;
            ExprTy { ty: Some(Ty::Decimal), nullable: any_null }
        }
        Func::At => {
            arity(2)?;
            want(0, tys[0].ty == Some(Ty::DecimalList), "a decimal_list")?;
            want(1, tys[1].ty == Some(Ty::Int), "an int")?;
            ExprTy { ty: Some(Ty::Decimal), nullable: any_null }
        }
        Func::FloorTo => {
            arity(2)?;
            want(0, numeric(tys[0]), "a number")?;
            want(1, numeric(tys[1]), "a number")?;
            ExprTy { ty: Some(Ty::Decimal), nullable: any_null }
        }
        Func::Round => {
            arity(2)?;
            want(0, numeric(tys[0]), "a number")?;
            want(1, tys[1].ty == Some(Ty::Int), "an int (decimal places)")?;
            ExprTy { ty: Some(Ty::Decimal), nullable: any_null }
        }
        Func::If => {
            arity(3)?;
            want(0, tys[0].ty == Some(Ty::Bool), "a bool")?;
            unify(name, tys[1], tys[2])?
        }
        Func::Coalesce => {
            arity(2)?;
            let t = unify(name, tys[0], tys[1])?;
            ExprTy { ty: t.ty, nullable: tys[1].nullable }
        }
        Func::Concat => ExprTy::of(Ty::String),
    };
    Ok((Expr::Call(func, exprs), ty))
}

fn unify(name: &str, a: ExprTy, b: ExprTy) -> Result<ExprTy, ExprProblem> {
    let ty = match (a.ty, b.ty) {
        (None, t) | (t, None) => t,
        (Some(x), Some(y)) if x == y => Some(x),
        (Some(x), Some(y)) if x.is_numeric() && y.is_numeric() => Some(Ty::Decimal),
        _ => {
            return problem(
                "type_error",
                format!("the branches of {name}() differ in type: {} and {}", a.describe(), b.describe()),
            )
        }
    };
    Ok(ExprTy { ty, nullable: a.nullable || b.nullable || a.ty.is_none() || b.ty.is_none() })
}

// ---------------------------------------------------------------------------
// Evaluation
//
// This is the hot path of every event, so it allocates nothing unless the expression
// builds text (string `+`) or fails: error messages are built only on the error path,
// operands that are plain fields or literals are read by reference (no clone, no
// reference-count traffic), and function arguments are evaluated one by one instead of
// into a temporary list.
// ---------------------------------------------------------------------------

/// The number in `v`, if it is one (ints widen to decimals).
#[inline]
fn num(v: &Value) -> Option<Decimal> {
    match v {
        Value::Decimal(d) => Some(*d),
        Value::Int(i) => Some(Decimal::from(*i)),
        _ => None,
    }
}

#[cold]
fn not_a_number(v: &Value, what: fmt::Arguments<'_>) -> EvalError {
    match v {
        Value::Null => EvalError(format!("{what} is null").into()),
        other => EvalError(format!("{what} is not a number: {other}").into()),
    }
}

#[inline]
fn as_decimal(v: &Value, what: fmt::Arguments<'_>) -> Result<Decimal, EvalError> {
    num(v).ok_or_else(|| not_a_number(v, what))
}

#[cold]
fn overflow(op: &str) -> EvalError {
    EvalError(format!("arithmetic overflow in '{op}'").into())
}

impl ArithOp {
    fn symbol(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
        }
    }
}

impl Expr {
    /// Evaluates the expression. Only data can make this fail (see the module docs).
    pub fn eval<E: Env>(&self, env: &E) -> Result<Value, EvalError> {
        match self {
            Expr::Lit(v) => Ok(v.clone()),
            Expr::Field(scope, idx) => Ok(env.get(*scope, *idx).clone()),
            Expr::Neg(inner) => inner.with(env, |v| match v {
                Value::Int(i) => i.checked_neg().map(Value::Int).ok_or_else(|| overflow("-")),
                v => Ok(Value::Decimal(-as_decimal(v, format_args!("the operand of '-'"))?)),
            }),
            Expr::Not(_)
            | Expr::And(..)
            | Expr::Or(..)
            | Expr::Cmp(..)
            | Expr::IsNull(..)
            | Expr::CmpFields(..)
            | Expr::CmpFieldLit(..)
            | Expr::CmpFieldZero(..) => self.holds(env).map(Value::Bool),
            Expr::Arith(op, exact, l, r) => {
                // Operands are read in place when they are fields or literals (most are),
                // and computed into a temporary otherwise. Not with `with`: its closures,
                // nested, stay calls of their own here (measured: 5% more instructions per event).
                let (left, right);
                let a = match l.leaf(env) {
                    Some(v) => v,
                    None => {
                        left = l.eval(env)?;
                        &left
                    }
                };
                let b = match r.leaf(env) {
                    Some(v) => v,
                    None => {
                        right = r.eval(env)?;
                        &right
                    }
                };
                if *exact {
                    exact_arith(*op, a, b)
                } else {
                    arith(*op, a, b)
                }
            }
            Expr::Call(func, args) => call(*func, args, env),
        }
    }

    /// The value of a field or literal, by reference; `None` for anything else.
    #[inline(always)]
    fn leaf<'v, E: Env>(&'v self, env: &'v E) -> Option<&'v Value> {
        match self {
            Expr::Field(scope, idx) => Some(env.get(*scope, *idx)),
            Expr::Lit(v) => Some(v),
            _ => None,
        }
    }

    /// Runs `f` on the value of the expression: by reference for fields and literals,
    /// on a temporary for everything else.
    #[inline]
    fn with<E: Env, R>(&self, env: &E, f: impl FnOnce(&Value) -> Result<R, EvalError>) -> Result<R, EvalError> {
        match self {
            Expr::Field(scope, idx) => f(env.get(*scope, *idx)),
            Expr::Lit(v) => f(v),
            _ => f(&self.eval(env)?),
        }
    }

    /// Evaluates a boolean expression (a guard or an invariant).
    pub fn holds<E: Env>(&self, env: &E) -> Result<bool, EvalError> {
        match self {
            Expr::Not(inner) => Ok(!inner.holds(env)?),
            Expr::And(l, r) => Ok(l.holds(env)? && r.holds(env)?),
            Expr::Or(l, r) => Ok(l.holds(env)? || r.holds(env)?),
            Expr::Cmp(op, l, r) => l.with(env, |a| r.with(env, |b| compare(*op, a, b))),
            Expr::IsNull(s, i, want) => Ok(env.get(*s, *i).is_null() == *want),
            Expr::CmpFields(op, (s1, i1), (s2, i2)) => compare(*op, env.get(*s1, *i1), env.get(*s2, *i2)),
            Expr::CmpFieldLit(op, (s, i), lit) => compare(*op, env.get(*s, *i), lit),
            Expr::CmpFieldZero(op, (s, i), zero) => match env.get(*s, *i) {
                Value::Decimal(d) => Ok(ordered(*op, sign(d))),
                Value::Int(n) => Ok(ordered(*op, n.cmp(&0))),
                other => compare(*op, other, zero),
            },
            other => other.with(env, truth),
        }
    }

    /// Every field this expression reads, as `(scope, index)`, appended to `out`.
    pub fn fields_read(&self, out: &mut Vec<(Scope, usize)>) {
        match self {
            Expr::Lit(_) => {}
            Expr::Field(scope, idx)
            | Expr::IsNull(scope, idx, _)
            | Expr::CmpFieldLit(_, (scope, idx), _)
            | Expr::CmpFieldZero(_, (scope, idx), _) => {
                if !out.contains(&(*scope, *idx)) {
                    out.push((*scope, *idx));
                }
            }
            Expr::CmpFields(_, a, b) => {
                for f in [a, b] {
                    if !out.contains(f) {
                        out.push(*f);
                    }
                }
            }
            Expr::Neg(e) | Expr::Not(e) => e.fields_read(out),
            Expr::Arith(_, _, l, r) | Expr::Cmp(_, l, r) | Expr::And(l, r) | Expr::Or(l, r) => {
                l.fields_read(out);
                r.fields_read(out);
            }
            Expr::Call(_, args) => args.iter().for_each(|a| a.fields_read(out)),
        }
    }
}

#[inline]
fn truth(v: &Value) -> Result<bool, EvalError> {
    match v {
        Value::Bool(b) => Ok(*b),
        other => err(format!("a condition needs a bool, got {other}")),
    }
}

#[inline]
fn arith(op: ArithOp, l: &Value, r: &Value) -> Result<Value, EvalError> {
    if let (Value::Int(a), Value::Int(b), false) = (l, r, op == ArithOp::Div) {
        let res = match op {
            ArithOp::Add => a.checked_add(*b),
            ArithOp::Sub => a.checked_sub(*b),
            _ => a.checked_mul(*b),
        };
        return res.map(Value::Int).ok_or_else(|| overflow(op.symbol()));
    }
    let a = as_decimal(l, format_args!("the left operand of '{}'", op.symbol()))?;
    let b = as_decimal(r, format_args!("the right operand of '{}'", op.symbol()))?;
    let res = match op {
        ArithOp::Add => a.checked_add(b),
        ArithOp::Sub => a.checked_sub(b),
        ArithOp::Mul => a.checked_mul(b),
        ArithOp::Div => {
            if b.is_zero() {
                return err("division by zero");
            }
            a.checked_div(b)
        }
    };
    res.map(Value::Decimal).ok_or_else(|| overflow(op.symbol()))
}

/// [`arith`] for an expression that must not round: a result that rust_decimal rounded is
/// an error. The usual case is settled from the operands alone, before the operation; kept
/// apart from `arith` because the evaluator is that sensitive to what gets inlined where (a
/// flag inside `arith`, or a look at the result's scale, measured 15-35% slower per event).
fn exact_arith(op: ArithOp, l: &Value, r: &Value) -> Result<Value, EvalError> {
    match (l, r) {
        (Value::Decimal(a), Value::Decimal(b)) if surely_exact(op, a, b) => {
            let res = if a.scale() == b.scale() {
                same_scale_sum(op, a, b)
            } else if op == ArithOp::Add {
                a.checked_add(*b)
            } else {
                a.checked_sub(*b)
            };
            res.map(Value::Decimal).ok_or_else(|| overflow(op.symbol()))
        }
        _ => {
            let res = arith(op, l, r)?;
            if let Value::Decimal(d) = &res {
                let (a, b) = (num(l).unwrap_or_default(), num(r).unwrap_or_default());
                if !exact(op, &a, &b, d) {
                    return Err(inexact(op, &a, &b));
                }
            }
            Ok(res)
        }
    }
}

/// `a + b` or `a - b` for decimals of one scale whose mantissas are below 2^64 (see
/// [`surely_exact`]): the sum of the mantissas at that scale, which is what rust_decimal
/// gives (a test compares them bit for bit) in a third of its instructions.
#[inline(always)]
fn same_scale_sum(op: ArithOp, a: &Decimal, b: &Decimal) -> Option<Decimal> {
    let m = if op == ArithOp::Add { a.mantissa() + b.mantissa() } else { a.mantissa() - b.mantissa() };
    Decimal::try_from_i128_with_scale(m, a.scale()).ok()
}

/// Whether `a op b` is exact whatever the digits, judged from the operands alone: both
/// mantissas below 2^64 and scales at most 9 apart keep a sum or difference below 2^96 at
/// the larger scale.
#[inline(always)]
fn surely_exact(op: ArithOp, a: &Decimal, b: &Decimal) -> bool {
    // `serialize` is the decimal's own four words: flags, lo, mid, hi.
    let (x, y) = (a.serialize(), b.serialize());
    let small = x[12..16] == [0; 4] && y[12..16] == [0; 4];
    matches!(op, ArithOp::Add | ArithOp::Sub) && small && a.scale().abs_diff(b.scale()) <= 9
}

#[cold]
#[inline(never)]
fn inexact(op: ArithOp, a: &Decimal, b: &Decimal) -> EvalError {
    EvalError(Box::new(format!(
        "{a} {} {b} cannot be held exactly (it needs more than 28 decimal places or 96 bits of digits); \
         it is refused, not rounded",
        op.symbol()
    )))
}

/// Whether `res`, which rust_decimal computed as `a op b`, is the exact result. When a
/// result needs more than 28 digits rust_decimal rounds it quietly and gives it fewer
/// decimal places than the exact result has. A running total must never be rounded (it
/// would drift from the sum of its parts, and an invariant saying so, itself rounded, would
/// not notice); see [`compile`] for which expressions may round.
#[inline(always)]
fn exact(op: ArithOp, a: &Decimal, b: &Decimal, res: &Decimal) -> bool {
    // The usual case, decided by the scales alone: as many places as the exact result has.
    let places = match op {
        ArithOp::Add | ArithOp::Sub => a.scale().max(b.scale()),
        ArithOp::Mul => a.scale() + b.scale(),
        ArithOp::Div => return true,
    };
    res.scale() >= places || exact_with_fewer_places(op, a, b, res)
}

/// `res` has fewer places than the exact result: rust_decimal rounded, or dropped places
/// that held zeros (as it does when an operand is zero, or when the result needs the room).
/// Compares with the exact result, computed in i128 from the operands without their
/// trailing zeros. If that overflows i128 the exact result has more than 38 digits, which
/// no decimal holds (for a product this is conservative: factors of 2 and 5 can still make
/// trailing zeros).
#[cold]
#[inline(never)]
fn exact_with_fewer_places(op: ArithOp, a: &Decimal, b: &Decimal, res: &Decimal) -> bool {
    let (a, b) = (a.normalize(), b.normalize());
    let (want, places) = match op {
        ArithOp::Add | ArithOp::Sub => {
            let Some((x, y, places)) = aligned(&a, &b) else { return false };
            (if op == ArithOp::Add { x.checked_add(y) } else { x.checked_sub(y) }, places)
        }
        _ => (a.mantissa().checked_mul(b.mantissa()), a.scale() + b.scale()),
    };
    let Some(mut want) = want else { return false };
    if places < res.scale() {
        // The operands without their zeros need fewer places than the result has.
        return scale_up(want, res.scale() - places) == Some(res.mantissa());
    }
    // Drop the places the result does not have: they must hold zeros.
    let mut drop = places - res.scale();
    while drop > 0 {
        let step = drop.min(28);
        let p = POW10[step as usize];
        if want % p != 0 {
            return false;
        }
        want /= p;
        drop -= step;
    }
    want == res.mantissa()
}

// Comparing decimals is most of what guards and invariants do. rust_decimal's `cmp` is
// general; comparing the two mantissas at a common scale in i128 is exact and twice as
// fast, and falls back to `cmp` when a mantissa would leave the i128 range.

const POW10: [i128; 29] = {
    let mut t = [1i128; 29];
    let mut i = 1;
    while i < 29 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};
/// `BOUND[k]` is the largest mantissa that can be multiplied by `10^k` within i128: checking
/// against it is one comparison, where `checked_mul` on i128 calls a slow runtime routine.
const BOUND: [i128; 29] = {
    let mut t = [0i128; 29];
    let mut i = 0;
    while i < 29 {
        t[i] = i128::MAX / POW10[i];
        i += 1;
    }
    t
};

#[inline]
fn scale_up(m: i128, k: u32) -> Option<i128> {
    let k = k as usize;
    (k < POW10.len() && m.unsigned_abs() <= BOUND[k] as u128).then(|| m * POW10[k])
}

/// The mantissas of `a` and `b` at their common (larger) scale, and that scale.
#[inline]
fn aligned(a: &Decimal, b: &Decimal) -> Option<(i128, i128, u32)> {
    let (sa, sb) = (a.scale(), b.scale());
    let (ma, mb) = (a.mantissa(), b.mantissa());
    if sa == sb {
        Some((ma, mb, sa))
    } else if sa < sb {
        Some((scale_up(ma, sb - sa)?, mb, sb))
    } else {
        Some((ma, scale_up(mb, sa - sb)?, sa))
    }
}

#[inline]
fn decimal_cmp(a: &Decimal, b: &Decimal) -> std::cmp::Ordering {
    match aligned(a, b) {
        Some((x, y, _)) => x.cmp(&y),
        None => a.cmp(b),
    }
}

/// Equality of two non-numbers. Two strings that share their storage are equal without
/// reading it (a routing key shares the instance's copy of the same id; see the bindings).
#[inline]
fn same(l: &Value, r: &Value) -> bool {
    match (l, r) {
        (Value::String(a), Value::String(b)) => Arc::ptr_eq(a, b) || a == b,
        _ => l == r,
    }
}

#[inline]
fn compare(op: CmpOp, l: &Value, r: &Value) -> Result<bool, EvalError> {
    let ord = match (l, r) {
        (Value::Decimal(a), Value::Decimal(b)) => Some(decimal_cmp(a, b)),
        (Value::Int(a), Value::Int(b)) => Some(a.cmp(b)),
        (Value::Int(_) | Value::Decimal(_), Value::Int(_) | Value::Decimal(_)) => num(l).zip(num(r)).map(|(a, b)| a.cmp(&b)),
        _ => None,
    };
    Ok(match (op, ord) {
        (CmpOp::Eq, Some(o)) => o.is_eq(),
        (CmpOp::Ne, Some(o)) => o.is_ne(),
        (CmpOp::Eq, None) => same(l, r),
        (CmpOp::Ne, None) => !same(l, r),
        (_, None) => return err(format!("cannot order {l} and {r}")),
        (CmpOp::Lt, Some(o)) => o.is_lt(),
        (CmpOp::Le, Some(o)) => o.is_le(),
        (CmpOp::Gt, Some(o)) => o.is_gt(),
        (CmpOp::Ge, Some(o)) => o.is_ge(),
    })
}

/// How `d` compares with zero (a negative zero is zero).
#[inline]
fn sign(d: &Decimal) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    if d.is_zero() {
        Equal
    } else if d.is_sign_negative() {
        Less
    } else {
        Greater
    }
}

#[inline]
fn ordered(op: CmpOp, o: std::cmp::Ordering) -> bool {
    match op {
        CmpOp::Eq => o.is_eq(),
        CmpOp::Ne => o.is_ne(),
        CmpOp::Lt => o.is_lt(),
        CmpOp::Le => o.is_le(),
        CmpOp::Gt => o.is_gt(),
        CmpOp::Ge => o.is_ge(),
    }
}

#[inline]
fn list<'v>(v: &'v Value, func: &str) -> Result<&'v [Decimal], EvalError> {
    match v {
        Value::DecimalList(items) => Ok(items),
        Value::Null => err(format!("the list given to {func}() is null")),
        other => err(format!("{func}() needs a list, got {other}")),
    }
}

#[inline]
fn int_arg(v: &Value, what: &str) -> Result<i64, EvalError> {
    match v {
        Value::Int(i) => Ok(*i),
        other => err(format!("{what} needs an int, got {other}")),
    }
}

fn sum(items: &[Decimal], func: &str) -> Result<Decimal, EvalError> {
    let mut total = Decimal::ZERO;
    for d in items {
        let next = total.checked_add(*d).ok_or_else(|| overflow(func))?;
        if !exact(ArithOp::Add, &total, d, &next) {
            return err(format!("{func}(): {total} + {d} cannot be held exactly; it is refused, not rounded"));
        }
        total = next;
    }
    Ok(total)
}

/// The largest multiple of `step` (positive) that is at most `x`, computed exactly as `x`
/// less its remainder. Not as `floor(x / step) * step`: the quotient rounds when it needs
/// more than 28 digits (2.9999999999999999999999999999 / 3 is 1), and the floor of a quotient
/// rounded up is above `x`. A floor that no decimal holds is an error, never rounded.
fn floor_to(x: Decimal, step: Decimal) -> Result<Decimal, EvalError> {
    // Usually both fit in an i128 at the finer of their scales, where the floor is plain
    // integer arithmetic. Its result is then given the step's places, or fewer where its
    // trailing zeros must go to fit 96 bits (x - rem at the step's places can need more
    // digits than the floor itself has: -129918481.5992802 on a step of 6.8E-20).
    let scale = x.scale().max(step.scale());
    let wide = |d: Decimal| 10i128.checked_pow(scale - d.scale()).and_then(|k| d.mantissa().checked_mul(k));
    if let (Some(xm), Some(tm)) = (wide(x), wide(step)) {
        if let Some(fm) = xm.checked_sub(xm.rem_euclid(tm)) {
            // A multiple of the step's mantissa at `scale`: exact at the step's places.
            let mut m = fm / 10i128.pow(scale - step.scale());
            let mut places = step.scale();
            while m.unsigned_abs() >= 1u128 << 96 && places > 0 && m % 10 == 0 {
                m /= 10;
                places -= 1;
            }
            if m.unsigned_abs() < 1u128 << 96 {
                return Ok(Decimal::from_i128_with_scale(m, places));
            }
        }
    }
    let exact_sub = |a: Decimal, b: Decimal| -> Result<Decimal, EvalError> {
        let res = a.checked_sub(b).ok_or_else(|| overflow("floor_to"))?;
        if !exact(ArithOp::Sub, &a, &b, &res) {
            return Err(inexact(ArithOp::Sub, &a, &b));
        }
        Ok(res)
    };
    // rust_decimal's remainder is exact (integer remainder of the mantissas at one scale),
    // has the sign of `x` and is smaller than `step`.
    let rem = x.checked_rem(step).ok_or_else(|| overflow("floor_to"))?;
    let mut floored = exact_sub(x, rem)?;
    if rem.is_sign_negative() && !rem.is_zero() {
        floored = exact_sub(floored, step)?;
    }
    // A multiple of the step has no digit past the step's places: dropping the others (or
    // adding zeros up to them) keeps the value, and gives the places the product gave.
    let mut at_step = floored;
    at_step.rescale(step.scale());
    Ok(if at_step == floored { at_step } else { floored })
}

fn call<E: Env>(func: Func, args: &[Expr], env: &E) -> Result<Value, EvalError> {
    match func {
        Func::If => {
            if args[0].holds(env)? {
                args[1].eval(env)
            } else {
                args[2].eval(env)
            }
        }
        Func::Coalesce => {
            let first = args[0].eval(env)?;
            if first.is_null() {
                args[1].eval(env)
            } else {
                Ok(first)
            }
        }
        Func::Min | Func::Max if args.len() == 1 => args[0].with(env, |v| {
            let items = list(v, "min/max")?;
            let pick = if func == Func::Min { items.iter().min() } else { items.iter().max() };
            match pick {
                Some(d) => Ok(Value::Decimal(*d)),
                None => err("min()/max() of an empty list"),
            }
        }),
        Func::Min | Func::Max => {
            let name = if func == Func::Min { "min" } else { "max" };
            let mut best = args[0].eval(env)?;
            let mut any_decimal = matches!(best, Value::Decimal(_));
            if best.is_null() {
                return err(format!("{name}() got a null argument"));
            }
            for a in &args[1..] {
                let v = a.eval(env)?;
                if v.is_null() {
                    return err(format!("{name}() got a null argument"));
                }
                any_decimal |= matches!(v, Value::Decimal(_));
                let lt = compare(CmpOp::Lt, &v, &best)?;
                let gt = compare(CmpOp::Gt, &v, &best)?;
                if (func == Func::Min && lt) || (func == Func::Max && gt) {
                    best = v;
                }
            }
            // A mix of ints and decimals yields a decimal, as the type checker promised.
            if any_decimal {
                return Ok(Value::Decimal(as_decimal(&best, format_args!("{name}()"))?));
            }
            Ok(best)
        }
        Func::Abs => args[0].with(env, |v| match v {
            Value::Int(i) => i.checked_abs().map(Value::Int).ok_or_else(|| overflow("abs")),
            v => Ok(Value::Decimal(as_decimal(v, format_args!("the argument of abs()"))?.abs())),
        }),
        Func::Len => args[0].with(env, |v| Ok(Value::Int(list(v, "len")?.len() as i64))),
        Func::Sum => args[0].with(env, |v| Ok(Value::Decimal(sum(list(v, "sum")?, "sum")?))),
        Func::SumFirst => args[0].with(env, |v| {
            let items = list(v, "sum_first")?;
            let n = args[1].with(env, |c| int_arg(c, "sum_first()"))?;
            if n < 0 || n as usize > items.len() {
                return err(format!("sum_first(): count {n} is out of range for a list of {}", items.len()));
            }
            Ok(Value::Decimal(sum(&items[..n as usize], "sum_first")?))
        }),
        Func::At => args[0].with(env, |v| {
            let items = list(v, "at")?;
            let idx = args[1].with(env, |i| int_arg(i, "at()"))?;
            if idx < 0 || idx as usize >= items.len() {
                return err(format!("at(): index {idx} is out of range for a list of {}", items.len()));
            }
            Ok(Value::Decimal(items[idx as usize]))
        }),
        Func::FloorTo => {
            let x = args[0].with(env, |v| as_decimal(v, format_args!("the value given to floor_to()")))?;
            let step = args[1].with(env, |v| as_decimal(v, format_args!("the step given to floor_to()")))?;
            if step <= Decimal::ZERO {
                return err(format!("floor_to(): the step must be positive, got {step}"));
            }
            floor_to(x, step).map(Value::Decimal)
        }
        Func::Round => {
            let x = args[0].with(env, |v| as_decimal(v, format_args!("the value given to round()")))?;
            let dp = args[1].with(env, |v| match v {
                Value::Int(i) if (0..=28).contains(i) => Ok(*i as u32),
                v => err(format!("round(): decimal places must be 0..28, got {v}")),
            })?;
            Ok(Value::Decimal(x.round_dp_with_strategy(dp, RoundingStrategy::MidpointNearestEven)))
        }
        Func::Concat => {
            let mut out = String::new();
            for a in args {
                a.with(env, |v| {
                    match v {
                        Value::String(s) => out.push_str(s),
                        other => out.push_str(&other.to_string()),
                    }
                    Ok(())
                })?;
            }
            Ok(Value::String(Arc::from(out)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fields;
    impl Names for Fields {
        fn resolve(&self, scope: Scope, name: &str) -> Result<(usize, Ty, bool), String> {
            match (scope, name) {
                (Scope::Record, "a") => Ok((0, Ty::Decimal, false)),
                (Scope::Record, "n") => Ok((1, Ty::Int, false)),
                (Scope::Event, "s") => Ok((0, Ty::String, true)),
                (Scope::Record, "xs") => Ok((2, Ty::DecimalList, false)),
                _ => Err(format!("unknown field {}{name}", scope.prefix())),
            }
        }
    }
    struct Data(Vec<Value>, Vec<Value>);
    impl Env for Data {
        fn get(&self, scope: Scope, index: usize) -> &Value {
            match scope {
                Scope::Event => &self.1[index],
                _ => &self.0[index],
            }
        }
    }

    fn data() -> Data {
        let d = |s: &str| Value::Decimal(parse_decimal(s).unwrap());
        Data(
            vec![d("0.1"), Value::Int(2), Value::DecimalList(vec![parse_decimal("0.5").unwrap(); 2].into())],
            vec![Value::Null],
        )
    }

    fn run(src: &str) -> Result<Value, EvalError> {
        compile(src, &Fields).unwrap().0.eval(&data())
    }

    #[test]
    fn sums_and_products_that_would_be_rounded_are_refused() {
        let d = |s: &str| parse_decimal(s).unwrap();
        let cases = [
            (ArithOp::Sub, "1000", "0.0000000000000000000000000015", false), // needs 31 digits
            (ArithOp::Add, "0.0000000000000000000000000001", "1", true),      // 29 digits fit
            (ArithOp::Add, "1000.10", "-0.05", true),
            (ArithOp::Sub, "1000", "0.00", true),                               // rust_decimal keeps scale 0
            (ArithOp::Add, "0.000", "1000", true),
            (ArithOp::Mul, "1.00000000000001", "1.00000000000001", true),       // 28 places
            (ArithOp::Mul, "1.000000000000001", "1.000000000000001", false),    // 30 places, last digit 1
            (ArithOp::Mul, "0.000000000000010", "0.000000000000010", true),     // drops zeros only
            (ArithOp::Div, "1", "3", true),                                     // division rounds
        ];
        for (op, a, b, ok) in cases {
            let got = exact_arith(op, &Value::Decimal(d(a)), &Value::Decimal(d(b)));
            assert_eq!(got.is_ok(), ok, "{a} {} {b} gave {got:?}", op.symbol());
            if let Err(e) = got {
                assert!(e.0.contains("cannot be held exactly"), "{e}");
            }
        }
        assert!(call_sum_of(&["79228162514264337593543950.335", "0.0001"]).is_err());
        assert_eq!(call_sum_of(&["0.1", "0.2", "0.7"]).unwrap(), d("1.0"));
    }

    #[test]
    fn only_a_rounding_node_and_its_operands_may_round_their_sums_and_products() {
        let d = |s: &str| Value::Decimal(parse_decimal(s).unwrap());
        let refused = |src: &str| {
            let e = run(src).unwrap_err();
            assert!(e.0.contains("cannot be held exactly"), "{src}: {e}");
        };
        // a = 0.1 and n = 2 in `data()`; 0.1 * 1.000...1 (28 places) needs 29 places.
        let many = "1.0000000000000000000000000001";
        refused(&format!("a * {many}"));
        assert_eq!(run("a * 1.000000000000000000000000001").unwrap(), d("0.1000000000000000000000000001"));
        // The operands of `/` and the arguments of `round` and `floor_to`, whole subtrees.
        assert_eq!(run(&format!("a * {many} / 1")).unwrap(), d("0.1"));
        assert_eq!(run(&format!("1 / (a * {many})")).unwrap(), d("10"));
        assert_eq!(run(&format!("round(a * {many}, 2)")).unwrap(), d("0.10"));
        assert_eq!(run(&format!("round(if(n > 5, a, -(a * {many} + 0)), 2)")).unwrap(), d("-0.10"));
        assert_eq!(run(&format!("floor_to(a * {many}, 0.01)")).unwrap(), d("0.10"));
        // Elsewhere in an expression that divides or rounds, a product must still be exact:
        // beside a division (in another branch, another term, another side of a comparison)
        // or around a rounded result.
        refused(&format!("a * {many} + 0 > 0"));
        refused(&format!("if(n > 5, a / 2, a * {many})"));
        refused(&format!("a * {many} + a / 2"));
        refused(&format!("a * {many} > round(a, 1)"));
        refused(&format!("floor_to(a, 0.01) * {many}"));
        // 0.1 / 3 has 28 places; 10 more needs 30 digits.
        assert_eq!(run("a / 3 + 1").unwrap(), d("1.0333333333333333333333333333"));
        refused("a / 3 + 10");
    }

    fn call_sum_of(items: &[&str]) -> Result<Decimal, EvalError> {
        let items: Vec<Decimal> = items.iter().map(|s| parse_decimal(s).unwrap()).collect();
        sum(&items, "sum")
    }

    #[test]
    fn text_with_more_digits_than_a_decimal_holds_is_refused_not_rounded() {
        assert_eq!(parse_decimal("0.0010000000000000000000000000").unwrap().to_string(), "0.0010000000000000000000000000");
        for text in ["0.0010000000000000000000000000001", "4.9E-28", "1E-29", "79228162514264337593543950336"] {
            let e = parse_decimal(text).unwrap_err();
            assert!(e.contains("cannot be held exactly"), "{text}: {e}");
        }
        // Only plain ASCII decimal syntax: a digit separator or another script's digits
        // would make a typo a different number ("0_01" is 1 to the parsers underneath).
        for text in ["abc", "1.2.3", "", "NaN", "Infinity", "1e", "--1", "0_01", "1_000.5", "1e1_0", "\u{0661}", "0x10", "."] {
            let e = parse_decimal(text).unwrap_err();
            assert!(e.contains("is not a decimal number"), "{text}: {e}");
        }
        assert_eq!(parse_decimal("1.5E-27").unwrap().to_string(), "0.0000000000000000000000000015");
        assert_eq!(parse_decimal("1e3").unwrap(), Decimal::from(1000));
    }

    #[test]
    fn specialised_comparisons_give_what_the_general_ones_give() {
        // Each pair: the same comparison written so that it compiles to a specialised node
        // (field/literal, literal/field, field/field, null test) and to the general one.
        let cases = [
            ("a == 0.1", "a + 0 == 0.1"),
            ("0.1 == a", "0.1 == a + 0"),
            ("a < 1", "a + 0 < 1"),
            ("1 < a", "1 < a + 0"),
            ("1 > a", "1 > a + 0"),
            ("0.1 >= a", "0.1 >= a + 0"),
            ("0.1 <= a", "0.1 <= a + 0"),
            ("n > 1", "n + 0 > 1"),
            ("a != n", "a + 0 != n"),
            ("a < n", "a + 0 < n"),
            ("event.s == null", "coalesce(event.s, 'x') == 'x'"),
            ("null == event.s", "coalesce(event.s, 'x') == 'x'"),
            ("event.s != null", "coalesce(event.s, 'x') != 'x'"),
            ("event.s == 'k'", "coalesce(event.s, 'x') == 'k'"),
            ("a > 0", "a + 0 > 0"),
            ("0 >= a", "0 >= a + 0"),
            ("n == 0", "n + 0 == 0"),
            ("n != 0.0", "n + 0 != 0.0"),
        ];
        for (special, general) in cases {
            let (e, _) = compile(special, &Fields).unwrap();
            assert!(
                matches!(e, Expr::IsNull(..) | Expr::CmpFields(..) | Expr::CmpFieldLit(..) | Expr::CmpFieldZero(..)),
                "{special} did not compile to a specialised node: {e:?}"
            );
            assert_eq!(run(special), run(general), "{special} vs {general}");
        }
        assert_eq!(run("1 < a"), Ok(Value::Bool(false)));
        assert_eq!(run("event.s == null"), Ok(Value::Bool(true)));
        let mut read = Vec::new();
        compile("a < n", &Fields).unwrap().0.fields_read(&mut read);
        assert_eq!(read, vec![(Scope::Record, 0), (Scope::Record, 1)]);
    }

    #[test]
    fn a_comparison_with_zero_is_the_general_comparison() {
        let values = ["-0.5", "0", "-0", "0.000", "-0.000", "1e-28", "-1e-28", "79228162514264337593543950335", "-3"];
        for text in values {
            let v = Value::Decimal(parse_decimal(text).unwrap());
            let data = Data(vec![v.clone(), Value::Int(-3), Value::Null], vec![Value::Null]);
            for (op, sym) in [(CmpOp::Eq, "=="), (CmpOp::Ne, "!="), (CmpOp::Lt, "<"), (CmpOp::Le, "<="), (CmpOp::Gt, ">"), (CmpOp::Ge, ">=")] {
                for (src, field) in [(format!("a {sym} 0"), &v), (format!("n {sym} 0.0"), &Value::Int(-3))] {
                    let (e, _) = compile(&src, &Fields).unwrap();
                    assert!(matches!(e, Expr::CmpFieldZero(..)), "{src}: {e:?}");
                    let want = compare(op, field, &Value::Decimal(Decimal::ZERO)).unwrap();
                    assert_eq!(e.holds(&data), Ok(want), "{src} with a = {text}");
                }
            }
        }
    }

    #[test]
    fn same_scale_sums_are_rust_decimals_bit_for_bit() {
        // Mantissas from zero to 2^64 - 1, both signs (and a negative zero), every scale;
        // zero results included.
        let mantissas: Vec<i128> = [0i128, 1, 2, 7, 10, 999, 1 << 31, (1 << 32) - 1, 1 << 32, 123_456_789_012_345, (1 << 63) - 1, 1 << 63, (1i128 << 64) - 1]
            .iter()
            .flat_map(|m| [*m, -*m])
            .collect();
        let mut checked = 0;
        for scale in 0..=28 {
            let mut ds: Vec<Decimal> = mantissas.iter().map(|m| Decimal::from_i128_with_scale(*m, scale)).collect();
            ds.push(Decimal::from_parts(0, 0, 0, true, scale)); // a negative zero
            for a in &ds {
                for b in &ds {
                    for op in [ArithOp::Add, ArithOp::Sub] {
                        assert!(surely_exact(op, a, b));
                        let want = if op == ArithOp::Add { a.checked_add(*b) } else { a.checked_sub(*b) };
                        let got = same_scale_sum(op, a, b);
                        assert_eq!(got.map(|d| d.serialize()), want.map(|d| d.serialize()), "{a} {} {b}", op.symbol());
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, 29 * 27 * 27 * 2);
    }

    #[test]
    fn decimal_arithmetic_is_exact() {
        assert_eq!(run("a + 0.2 == 0.3").unwrap(), Value::Bool(true));
        assert_eq!(run("floor_to(0.0129, 0.001)").unwrap(), Value::Decimal(parse_decimal("0.012").unwrap()));
        assert_eq!(run("floor_to(-0.0121, 0.001)").unwrap(), Value::Decimal(parse_decimal("-0.013").unwrap()));
    }

    #[test]
    fn floor_to_never_exceeds_its_value() {
        let d = |s: &str| Value::Decimal(parse_decimal(s).unwrap());
        // 2.9999999999999999999999999999 / 3 needs 29 digits and rounds up to 1.
        let below_three = "2.9999999999999999999999999999";
        let cases = [
            (below_three, "3", "0"),
            (&format!("-{below_three}"), "3", "-3"),
            ("-3", "3", "-3"),
            ("3", "3", "3"),
            ("0.0129", "0.001", "0.012"),
            ("-0.0121", "0.001", "-0.013"),
            ("79228162514264337593543950335", "0.5", "79228162514264337593543950335"),
            ("0.0000000000000000000000000001", "79228162514264337593543950335", "0"),
            ("-0.0000000000000000000000000001", "7922816251426433759354395033.5", "-7922816251426433759354395033.5"),
            ("1.5", "0.0000000000000000000000000007", "1.4999999999999999999999999994"),
        ];
        let dec = |s: &str| parse_decimal(s).unwrap();
        for (x, step, want) in cases {
            let got = floor_to(dec(x), dec(step)).unwrap_or_else(|e| panic!("floor_to({x}, {step}): {e}"));
            assert_eq!(got, dec(want), "floor_to({x}, {step})");
        }
        assert_eq!(run(&format!("floor_to({below_three}, 3)")).unwrap(), d("0"));
        // The result keeps the step's places, as `floor(x / step) * step` gave it.
        assert_eq!(run("floor_to(0.0129, 0.001)").unwrap().to_string(), "0.012");
        let Value::Decimal(r) = run("floor_to(12.0129, 0.0010)").unwrap() else { panic!() };
        assert_eq!(r.scale(), 4);
        // A floor below the smallest decimal cannot be held.
        assert!(floor_to(dec("-79228162514264337593543950335"), dec("10")).is_err());
    }

    #[test]
    fn ints_and_lists() {
        assert_eq!(run("n + 1").unwrap(), Value::Int(3));
        assert_eq!(run("len(xs) - 1 == n - 1").unwrap(), Value::Bool(true));
        assert_eq!(run("sum(xs)").unwrap(), Value::Decimal(parse_decimal("1.0").unwrap()));
        assert!(run("at(xs, n)").unwrap_err().0.contains("out of range"));
        assert_eq!(run("round(2 / 3, 4)").unwrap(), Value::Decimal(parse_decimal("0.6667").unwrap()));
        assert_eq!(run("sum_first(xs, 1)").unwrap(), Value::Decimal(parse_decimal("0.5").unwrap()));
        assert_eq!(run("min(xs)").unwrap(), Value::Decimal(parse_decimal("0.5").unwrap()));
    }

    #[test]
    fn nulls_and_branches() {
        assert_eq!(run("event.s == null").unwrap(), Value::Bool(true));
        assert_eq!(run("coalesce(event.s, 'x')").unwrap(), Value::String(Arc::from("x")));
        assert_eq!(run("if(n > 1, a, 0)").unwrap(), Value::Decimal(parse_decimal("0.1").unwrap()));
        assert_eq!(run("'n=' + n + ' a=' + a").unwrap(), Value::String(Arc::from("n=2 a=0.1")));
        assert_eq!(run("max(n, a)").unwrap(), Value::Decimal(parse_decimal("2").unwrap()));
        assert!(run("a / 0").unwrap_err().0.contains("division by zero"));
    }

    #[test]
    fn precedence_and_associativity() {
        let yes = [
            "1 + 2 * 3 == 7",
            "-n * 2 == -4",
            "- -n == 2",
            "n - 1 - 1 == 0",
            "8 / 2 / 2 == 2",
            "not n > 5 and n == 2",
            "not not n == 2",
            "false and false or true",
            "true or false and false",
            "not false or false",
            "(1 < 2) == true",
            "if(n == 2, 1, 0) - 1 * 2 + 3 == 2",
        ];
        for src in yes {
            assert_eq!(run(src), Ok(Value::Bool(true)), "{src}");
        }
        // What the grammar never took: a second comparison without parentheses, `not`
        // inside a comparison or an arithmetic operand.
        for src in ["1 < 2 == true", "n > 0 and n < 3 == true", "n == not true", "1 * not true", "not n > 1 > 0", "- not true", "n >"] {
            assert_eq!(compile(src, &Fields).unwrap_err().code, "syntax_error", "{src}");
        }
    }

    /// Expressions `levels` deep of each shape that nests: a left-deep chain, a right-deep
    /// chain through parentheses, parentheses alone, signs, `not`s, calls.
    fn nested_shapes(levels: usize) -> Vec<(&'static str, String)> {
        let n = levels;
        vec![
            ("a chain of +", vec!["a"; n].join(" + ")),
            ("a chain of * and /", format!("a{}", " * 1 / 1".repeat((n - 1) / 2))),
            ("a right-deep sum", format!("{}a{}", "a + (".repeat(n - 1), ")".repeat(n - 1))),
            ("parentheses", format!("{}a{}", "(".repeat(n), ")".repeat(n))),
            ("signs", format!("{}a", "-".repeat(n - 1))),
            ("nots", format!("{}n > 0", "not ".repeat(n - 2))),
            ("calls", format!("{}a{}", "abs(".repeat(n - 1), ")".repeat(n - 1))),
            ("a chain of and", vec!["n > 0"; n - 1].join(" and ")),
        ]
    }

    #[test]
    fn an_expression_nested_too_deeply_is_refused_when_it_is_compiled() {
        for levels in [MAX_DEPTH + 2, 10_000, 100_000] {
            for (shape, src) in nested_shapes(levels) {
                let e = compile(&src, &Fields).unwrap_err();
                assert_eq!(e.code, "syntax_error", "{shape}");
                assert!(e.message.contains(&format!("more than {MAX_DEPTH} levels deep")), "{shape}: {}", e.message);
            }
        }
    }

    #[test]
    fn an_expression_at_the_depth_limit_compiles_evaluates_and_is_walked() {
        // The deepest accepted expressions, on a thread with a small stack: nothing that
        // walks them (compiling, evaluating, listing their fields, dropping) may overflow.
        let work = || {
            for (shape, src) in nested_shapes(MAX_DEPTH) {
                let (e, _) = compile(&src, &Fields).unwrap_or_else(|p| panic!("{shape}: {p:?}"));
                let v = e.eval(&data()).unwrap_or_else(|x| panic!("{shape}: {x}"));
                assert!(matches!(v, Value::Decimal(_) | Value::Bool(_)), "{shape}: {v:?}");
                let mut read = Vec::new();
                e.fields_read(&mut read);
                assert!(!read.is_empty());
            }
            assert_eq!(run(&vec!["a"; MAX_DEPTH].join(" + ")).unwrap(), Value::Decimal(parse_decimal("20.0").unwrap()));
        };
        std::thread::Builder::new().stack_size(SMALL_STACK).spawn(work).unwrap().join().unwrap();
    }

    /// A stack smaller than a Python thread's default (and much smaller in an optimised
    /// build, where frames are smaller than in this test's debug build).
    const SMALL_STACK: usize = if cfg!(debug_assertions) { 64 << 20 } else { 256 << 10 };

    #[test]
    fn type_errors_are_found_at_compile_time() {
        let code = |src: &str| compile(src, &Fields).unwrap_err().code;
        assert_eq!(code("a - event.s"), "type_error");
        assert_eq!(code("a and n"), "type_error");
        assert_eq!(code("a < 'x'"), "type_error");
        assert_eq!(code("nope + 1"), "unknown_field");
        assert_eq!(code("a +"), "syntax_error");
        assert_eq!(code("frob(a)"), "unknown_function");
        assert_eq!(code("at(xs, a)"), "type_error");
    }
}
