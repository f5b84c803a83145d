//! Reading a `decimal.Decimal` without going through its text.
//!
//! `str(Decimal)` costs more than everything else a payload field needs, so CPython's C
//! `Decimal` is read directly: its object holds a libmpdec number (sign, exponent and a
//! coefficient in base-10^19 words). That layout is not a public API, so it is trusted only
//! after a self-test: at first use a set of sample numbers is read both ways, and unless
//! every one comes out identical (value and scale) the direct path stays off for the life
//! of the process and every `Decimal` is read through its text, as before. Numbers the
//! direct path does not cover (more than two words, a positive exponent, a scale above 28,
//! infinities and NaNs) always go through the text, which holds those exact once their
//! trailing zeros go (`0E-40`, `14551915228366851806640625000.0`) and refuses the rest.

use crate::value::{parse_decimal, parse_decimal_exact, BadDecimal};
use pyo3::ffi;
use pyo3::prelude::*;
use rust_decimal::Decimal;
use std::sync::OnceLock;

/// libmpdec's `mpd_t` (mpdecimal.h) on a 64-bit build.
#[repr(C)]
struct MpdNumber {
    flags: u8,
    exp: isize,
    digits: isize,
    len: isize,
    alloc: isize,
    data: *const u64,
}

/// `PyDecObject` of CPython's `Modules/_decimal/_decimal.c`.
#[repr(C)]
struct DecimalObject {
    ob_base: ffi::PyObject,
    hash: isize,
    dec: MpdNumber,
    data: [u64; 4],
}

const MPD_NEG: u8 = 1;
const MPD_SPECIAL: u8 = 2 | 4 | 8; // infinity, NaN, signalling NaN
const RADIX: u128 = 10_000_000_000_000_000_000; // 10^19, one libmpdec word

/// The value of `obj` (which must be exactly a `decimal.Decimal`), read from its object
/// when that is safe, or `None` when it must be read through its text.
fn read_direct(obj: &Bound<'_, PyAny>) -> Option<Decimal> {
    // SAFETY: the caller checked that `obj` is a C `decimal.Decimal`, whose object has this
    // layout (confirmed by `direct_reading_works` before this is ever called), and holds a
    // reference to it while we read; `data` points at `len` initialised words.
    let d = unsafe { &(*(obj.as_ptr() as *const DecimalObject)).dec };
    if d.flags & MPD_SPECIAL != 0 || d.exp > 0 || d.exp < -28 || d.len < 1 || d.len > 2 || d.data.is_null() {
        return None;
    }
    let words = unsafe { std::slice::from_raw_parts(d.data, d.len as usize) };
    let mut coefficient = words[0] as u128;
    if d.len == 2 {
        coefficient += words[1] as u128 * RADIX;
    }
    if coefficient >= 1u128 << 96 {
        return None;
    }
    let mut value = Decimal::from_i128_with_scale(coefficient as i128, (-d.exp) as u32);
    // A zero keeps no sign, as when its text is parsed.
    value.set_sign_negative(d.flags & MPD_NEG != 0 && coefficient != 0);
    Some(value)
}

static DIRECT_OK: OnceLock<bool> = OnceLock::new();

/// Whether this interpreter's `Decimal` can be read directly: it is the C implementation
/// with the expected object size, and sample numbers read directly equal their text.
fn direct_reading_works(decimal_type: &Bound<'_, PyAny>) -> bool {
    *DIRECT_OK.get_or_init(|| {
        let check = || -> PyResult<bool> {
            let py = decimal_type.py();
            let module = py.import("decimal")?;
            if !module.hasattr("__libmpdec_version__")? || std::mem::size_of::<usize>() != 8 {
                return Ok(false);
            }
            let size: usize = decimal_type.getattr("__basicsize__")?.extract()?;
            if size != std::mem::size_of::<DecimalObject>() {
                return Ok(false);
            }
            let samples = [
                "0", "-0", "1", "-1", "0.002", "50000.0", "-123.456", "0.0000000000000000000000000001",
                "9999999999999999999", "10000000000000000000", "-12345678901234567890.12345678",
                "79228162514264337593543950335", "1.000", "-0.00",
            ];
            for text in samples {
                let obj = decimal_type.call1((text,))?;
                let want = parse_decimal(&obj.str()?.to_string()).ok();
                let got = read_direct(&obj);
                if got.is_none() || got != want || got.map(|g| g.scale()) != want.map(|w| w.scale()) {
                    return Ok(false);
                }
                let negative = |d: Option<Decimal>| d.map(|d| d.is_sign_negative() && !d.is_zero());
                if negative(got) != negative(want) {
                    return Ok(false);
                }
            }
            // Exact numbers the direct path must leave to the text (a scale above 28, more
            // than 96 bits of digits, a positive exponent), which holds them once their
            // trailing zeros go: a misread exponent or length would read them directly, or
            // send them to a text that refuses them.
            let declined = [
                ("0E-40", "0"),
                ("-0E-40", "0"),
                ("0e999999", "0"),
                ("0.00000000000000000000000000000000000", "0"),
                ("14551915228366851806640625000.0", "14551915228366851806640625000"),
                ("-1.50000000000000000000000000000000", "-1.5"),
            ];
            for (text, value) in declined {
                let obj = decimal_type.call1((text,))?;
                let by_text = parse_decimal(&obj.str()?.to_string()).ok();
                if read_direct(&obj).is_some() || by_text != parse_decimal(value).ok() {
                    return Ok(false);
                }
            }
            Ok(true)
        };
        check().unwrap_or(false)
    })
}

/// Reads a `decimal.Decimal` (exactly that type): directly when possible, else by its text.
/// `Err` carries the number's text and why it cannot be held.
pub fn read_decimal(obj: &Bound<'_, PyAny>, decimal_type: &Bound<'_, PyAny>) -> PyResult<Result<Decimal, (String, BadDecimal)>> {
    if direct_reading_works(decimal_type) {
        if let Some(d) = read_direct(obj) {
            return Ok(Ok(d));
        }
    }
    let text = obj.str()?;
    let text = text.to_str()?;
    Ok(parse_decimal_exact(text).map_err(|e| (text.to_string(), e)))
}
