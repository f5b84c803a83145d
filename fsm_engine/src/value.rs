//! Values and types of records, payloads and expressions.

use rust_decimal::Decimal;
use std::fmt;
use std::sync::Arc;

/// The type of a field or of an expression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    Bool,
    Int,
    Decimal,
    String,
    DecimalList,
}

impl Ty {
    /// Parses a type name as written in a spec.
    pub fn parse(name: &str) -> Option<Ty> {
        Some(match name {
            "bool" => Ty::Bool,
            "int" => Ty::Int,
            "decimal" => Ty::Decimal,
            "string" => Ty::String,
            "decimal_list" => Ty::DecimalList,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Ty::Bool => "bool",
            Ty::Int => "int",
            Ty::Decimal => "decimal",
            Ty::String => "string",
            Ty::DecimalList => "decimal_list",
        }
    }

    pub fn is_numeric(self) -> bool {
        matches!(self, Ty::Int | Ty::Decimal)
    }
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A runtime value. Strings and lists are reference-counted so that copying a record
/// (snapshots, overlays) never copies their contents.
// `repr(u64)`: a word-sized tag puts every payload at offset 8, so a value is copied as
// whole words. With the default one-byte tag a decimal sits at offset 4 and copies of it
// straddle the stores that wrote it, which measured 10-15% slower on the apply path.
#[derive(Clone, Debug, PartialEq)]
#[repr(u64)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Decimal(Decimal),
    String(Arc<str>),
    DecimalList(Arc<[Decimal]>),
}

impl Default for Value {
    fn default() -> Value {
        Value::Null
    }
}

impl Value {
    /// The type of a non-null value.
    pub fn ty(&self) -> Option<Ty> {
        Some(match self {
            Value::Null => return None,
            Value::Bool(_) => Ty::Bool,
            Value::Int(_) => Ty::Int,
            Value::Decimal(_) => Ty::Decimal,
            Value::String(_) => Ty::String,
            Value::DecimalList(_) => Ty::DecimalList,
        })
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Whether this value may be stored in a field of type `ty` (ints widen to decimals).
    pub fn fits(&self, ty: Ty, nullable: bool) -> bool {
        match (self, ty) {
            (Value::Null, _) => nullable,
            (Value::Int(_), Ty::Decimal) => true,
            (v, t) => v.ty() == Some(t),
        }
    }

    /// Converts a value that [`fits`](Self::fits) `ty` to its stored form.
    #[inline]
    pub fn coerce(self, ty: Ty) -> Value {
        match self {
            Value::Int(i) if ty == Ty::Decimal => Value::Decimal(Decimal::from(i)),
            v => v,
        }
    }

    /// Parses a default or literal written as JSON in a spec.
    pub fn from_json(v: &serde_json::Value, ty: Ty) -> Result<Value, String> {
        use serde_json::Value as J;
        Ok(match (ty, v) {
            (_, J::Null) => Value::Null,
            (Ty::Bool, J::Bool(b)) => Value::Bool(*b),
            (Ty::Int, J::Number(n)) => Value::Int(n.as_i64().ok_or_else(|| format!("{n} is not an integer"))?),
            (Ty::Decimal, J::String(s)) => Value::Decimal(parse_decimal(s)?),
            (Ty::Decimal, J::Number(n)) => Value::Decimal(parse_decimal(&n.to_string())?),
            (Ty::String, J::String(s)) => Value::String(Arc::from(s.as_str())),
            (Ty::DecimalList, J::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    match Value::from_json(item, Ty::Decimal)? {
                        Value::Decimal(d) => out.push(d),
                        _ => return Err("a decimal_list holds decimals only".into()),
                    }
                }
                Value::DecimalList(out.into())
            }
            (ty, other) => return Err(format!("{other} is not a {ty}")),
        })
    }

    /// The value as JSON: decimals as strings so that no digit is ever lost.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Decimal(d) => J::String(d.normalize().to_string()),
            Value::String(s) => J::String(s.to_string()),
            Value::DecimalList(items) => {
                J::Array(items.iter().map(|d| J::String(d.normalize().to_string())).collect())
            }
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Decimal(d) => write!(f, "{}", d.normalize()),
            Value::String(s) => write!(f, "{s:?}"),
            Value::DecimalList(items) => {
                f.write_str("[")?;
                for (i, d) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{}", d.normalize())?;
                }
                f.write_str("]")
            }
        }
    }
}

/// Why a text is not a decimal the engine can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadDecimal {
    NotANumber,
    /// A number with more than 28 decimal places or more than 96 bits of digits.
    Inexact,
}

impl BadDecimal {
    pub fn describe(self, text: &str) -> String {
        match self {
            BadDecimal::NotANumber => format!("{text:?} is not a decimal number"),
            BadDecimal::Inexact => {
                format!("{text:?} cannot be held exactly (at most 28 decimal places and 96 bits of digits); it is refused, not rounded")
            }
        }
    }
}

/// Parses an exact decimal from its text, accepting exponent notation (`1e-3`). A number
/// that cannot be held exactly is refused, never rounded: a rounded input would be a silently
/// different number.
pub fn parse_decimal(text: &str) -> Result<Decimal, String> {
    parse_decimal_exact(text).map_err(|e| e.describe(text))
}

/// [`parse_decimal`], saying why a text is refused.
pub fn parse_decimal_exact(text: &str) -> Result<Decimal, BadDecimal> {
    let t = text.trim();
    // Plain decimal syntax only: ASCII digits, at most one point, an optional sign and an
    // optional signed exponent. The parsers below also take `_` between digits ("0_01" is
    // 1), which would turn a typo into a hundred times the number.
    let (mantissa, exponent) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    let unsigned = |s: &'_ str| s.strip_prefix(['-', '+']).unwrap_or(s).to_string();
    let m = unsigned(mantissa);
    let mantissa_ok = m.matches('.').count() <= 1
        && m.chars().any(|c| c.is_ascii_digit())
        && m.chars().all(|c| c.is_ascii_digit() || c == '.');
    let exponent_ok = exponent.map_or(true, |e| {
        let e = unsigned(e);
        !e.is_empty() && e.chars().all(|c| c.is_ascii_digit())
    });
    if !mantissa_ok || !exponent_ok {
        return Err(BadDecimal::NotANumber);
    }
    // A number, but perhaps not one we can hold exactly.
    let exact = if exponent.is_some() { Decimal::from_scientific(t) } else { Decimal::from_str_exact(t) };
    // The parsers refuse a text whose digits do not fit as written, even when its value
    // does: zeros after the point past 28 places or 96 bits ("0E-40", "1.0" with 29 digits
    // before the point), or a zero with a large exponent ("0e999999"). Such a number is
    // exact once those zeros go; only the rare refusal pays for looking.
    exact.or_else(|_| without_trailing_zeros(mantissa, exponent).ok_or(BadDecimal::Inexact))
}

/// The number written as `mantissa` (ASCII digits, at most one point, an optional sign) times
/// ten to `exponent` (optionally signed ASCII digits), with its trailing zeros dropped, if a
/// decimal holds that exactly; zero whatever its exponent.
fn without_trailing_zeros(mantissa: &str, exponent: Option<&str>) -> Option<Decimal> {
    let negative = mantissa.starts_with('-');
    let m = mantissa.trim_start_matches(['-', '+']);
    let (int_part, frac_part) = m.split_once('.').unwrap_or((m, ""));
    let digits = format!("{int_part}{frac_part}");
    // Exponents past 10^30 saturate: no nonzero decimal is that far from 1 anyway.
    let exp: i128 = match exponent {
        None => 0,
        Some(e) => {
            let (sign, e) = match e.strip_prefix('-') {
                Some(rest) => (-1, rest),
                None => (1, e.trim_start_matches('+')),
            };
            let e = e.trim_start_matches('0');
            sign * match e.len() {
                0 => 0,
                1..=30 => e.parse::<i128>().ok()?,
                _ => 10i128.pow(30),
            }
        }
    };
    let kept = digits.trim_end_matches('0');
    let mut scale = frac_part.len() as i128 - exp - (digits.len() - kept.len()) as i128;
    let kept = kept.trim_start_matches('0');
    if kept.is_empty() {
        return Some(Decimal::ZERO);
    }
    // 2^96 has 29 digits; anything longer cannot fit, and the check keeps u128 from overflowing.
    if kept.len() > 29 || scale > 28 || scale < -28 {
        return None;
    }
    let mut coefficient: u128 = kept.parse().ok()?;
    if scale < 0 {
        coefficient = coefficient.checked_mul(10u128.pow((-scale) as u32))?;
        scale = 0;
    }
    if coefficient >= 1u128 << 96 {
        return None;
    }
    let value = Decimal::from_i128_with_scale(coefficient as i128, scale as u32);
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_exact_once_its_trailing_zeros_go_is_that_number() {
        let d = |s: &str| Decimal::from_str_exact(s).unwrap();
        let cases = [
            // Zero, whatever its exponent or its places.
            ("0E-40", d("0")),
            ("-0E-40", d("0")),
            ("0e999999", d("0")),
            ("0e-99999999999999999999999999999999999999", d("0")),
            ("0.00000000000000000000000000000000000", d("0")),
            // 29 digits before the point fit; the zero after it did not.
            ("14551915228366851806640625000.0", d("14551915228366851806640625000")),
            ("-79228162514264337593543950335.000", d("-79228162514264337593543950335")),
            ("1.50000000000000000000000000000000", d("1.5")),
            ("15000000000000000000000000000000E-32", d("0.15")),
            ("7922816251426433759354395033.5e1", d("79228162514264337593543950335")),
        ];
        for (text, want) in cases {
            let got = parse_decimal_exact(text);
            assert_eq!(got, Ok(want), "{text}");
            assert!(!got.unwrap().is_sign_negative() || !want.is_zero(), "{text}: a zero keeps no sign");
        }
        // Still refused: digits that are not zeros past what a decimal holds.
        for text in [
            "0.00000000000000000000000000001",
            "1.00000000000000000000000000001",
            "79228162514264337593543950336",
            "79228162514264337593543950336.0",
            "1e29",
            "1e-29",
            "1E999999",
            "1e-99999999999999999999999999999999999999",
            "100000000000000000000000000000000000000000000000000000e-10",
        ] {
            assert_eq!(parse_decimal_exact(text), Err(BadDecimal::Inexact), "{text}");
        }
        assert_eq!(parse_decimal_exact("0e"), Err(BadDecimal::NotANumber));
    }
}
