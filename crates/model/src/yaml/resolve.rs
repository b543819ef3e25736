//! Scalar resolution: what a scalar's text means to Go's `gopkg.in/yaml.v2`, and which strings
//! some YAML reader would take for something other than a string.
//!
//! Everything here is hand-written byte classification: no regex, no allocation except when a
//! plain number contains `_` separators.

use std::borrow::Cow;

/// What a scalar resolves to. Strings are not copied here: the caller owns the text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Resolved {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str,
}

/// A resolved scalar that owns its string, as kept for anchors.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(String),
}

impl Scalar {
    pub(crate) fn from_resolved(r: Resolved, text: impl Into<String>) -> Self {
        match r {
            Resolved::Null => Scalar::Null,
            Resolved::Bool(b) => Scalar::Bool(b),
            Resolved::Int(i) => Scalar::Int(i),
            Resolved::Uint(u) => Scalar::Uint(u),
            Resolved::Float(f) => Scalar::Float(f),
            Resolved::Str => Scalar::Str(text.into()),
        }
    }
}

/// Resolves an untagged plain scalar exactly as yaml.v2 does when decoding into `interface{}`.
///
/// The first byte picks the candidates (yaml.v2's resolve table): the fixed words (YAML 1.1
/// booleans, nulls, `.inf`/`.nan` spellings); a leading `.` tries a Go float; a digit or sign
/// tries, on the text with every `_` removed, Go's `strconv.ParseInt(s, 0, 64)` (decimal, `0`
/// octal, `0x`, `0o`, `0b`, with sign), then `ParseUint`, then a float matching
/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`. A float out of f64 range stays a
/// string (Go's parse fails with a range error). Timestamps stay strings: yaml.v2 hands them to
/// `interface{}` as their text, and no timestamp can also parse as a number.
pub(crate) fn resolve_plain(s: &str) -> Resolved {
    let b = s.as_bytes();
    let Some(&first) = b.first() else {
        return Resolved::Null;
    };
    match first {
        b'y' | b'Y' | b'n' | b'N' | b't' | b'T' | b'f' | b'F' | b'o' | b'O' | b'~' => word(s),
        b'.' => match s {
            ".inf" | ".Inf" | ".INF" => Resolved::Float(f64::INFINITY),
            ".nan" | ".NaN" | ".NAN" => Resolved::Float(f64::NAN),
            _ => dot_float(s),
        },
        b'+' | b'-' | b'0'..=b'9' => match s {
            "+.inf" | "+.Inf" | "+.INF" => Resolved::Float(f64::INFINITY),
            "-.inf" | "-.Inf" | "-.INF" => Resolved::Float(f64::NEG_INFINITY),
            _ => number(s),
        },
        _ => Resolved::Str,
    }
}

fn word(s: &str) -> Resolved {
    match s {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            Resolved::Bool(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            Resolved::Bool(false)
        }
        "~" | "null" | "Null" | "NULL" => Resolved::Null,
        _ => Resolved::Str,
    }
}

fn number(s: &str) -> Resolved {
    let plain: Cow<'_, str> = if s.contains('_') {
        Cow::Owned(s.replace('_', ""))
    } else {
        Cow::Borrowed(s)
    };
    let p = plain.as_bytes();
    if let Some(i) = go_parse_int(p) {
        return Resolved::Int(i);
    }
    if let Some(u) = go_parse_uint(p) {
        return Resolved::Uint(u);
    }
    if is_yaml_style_float(p)
        && let Ok(f) = plain.parse::<f64>()
        && f.is_finite()
    {
        return Resolved::Float(f);
    }
    Resolved::Str
}

/// Go's `strconv.ParseFloat` on a text starting with `.`: decimal digits, optional exponent,
/// `_` separators allowed between digits.
fn dot_float(s: &str) -> Resolved {
    let b = s.as_bytes();
    let plain: Cow<'_, str> = if b.contains(&b'_') {
        if !go_underscores_ok(b) {
            return Resolved::Str;
        }
        Cow::Owned(s.replace('_', ""))
    } else {
        Cow::Borrowed(s)
    };
    let p = plain.as_bytes();
    // `.` digits+ ( [eE] [-+]? digits+ )?
    let mut i = 1;
    let digits = count_digits(&p[i..]);
    if digits == 0 {
        return Resolved::Str;
    }
    i += digits;
    if i < p.len() {
        match exponent_len(&p[i..]) {
            Some(n) if i + n == p.len() => {}
            _ => return Resolved::Str,
        }
    }
    match plain.parse::<f64>() {
        Ok(f) if f.is_finite() => Resolved::Float(f),
        _ => Resolved::Str,
    }
}

/// Go's rule for `_` in number literals: each `_` sits between two digits (or after a base
/// prefix), checked on the whole text.
fn go_underscores_ok(s: &[u8]) -> bool {
    let mut s = s;
    if let Some((&(b'+' | b'-'), rest)) = s.split_first() {
        s = rest;
    }
    // last class seen: b'^' start, b'0' digit or base prefix, b'_' underscore, b'!' other
    let mut saw = b'^';
    let mut i = 0;
    let mut hex = false;
    if s.len() >= 2 && s[0] == b'0' && matches!(s[1] | 0x20, b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = s[1] | 0x20 == b'x';
    }
    while i < s.len() {
        let c = s[i];
        if c.is_ascii_digit() || (hex && (c | 0x20).is_ascii_hexdigit()) {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
        i += 1;
    }
    saw != b'_'
}

fn count_digits(s: &[u8]) -> usize {
    s.iter().take_while(|c| c.is_ascii_digit()).count()
}

/// Length of `[eE][-+]?[0-9]+` at the start of `s`.
fn exponent_len(s: &[u8]) -> Option<usize> {
    if !matches!(s.first(), Some(b'e' | b'E')) {
        return None;
    }
    let mut i = 1;
    if matches!(s.get(i), Some(b'+' | b'-')) {
        i += 1;
    }
    let d = count_digits(&s[i.min(s.len())..]);
    (d > 0).then_some(i + d)
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`, yaml.v2's gate before ParseFloat.
fn is_yaml_style_float(s: &[u8]) -> bool {
    let mut i = usize::from(matches!(s.first(), Some(b'+' | b'-')));
    let int_digits = count_digits(&s[i..]);
    i += int_digits;
    if int_digits == 0 {
        if s.get(i) != Some(&b'.') {
            return false;
        }
        i += 1;
        let frac = count_digits(&s[i..]);
        if frac == 0 {
            return false;
        }
        i += frac;
    } else if s.get(i) == Some(&b'.') {
        i += 1;
        i += count_digits(&s[i..]);
    }
    if i == s.len() {
        return true;
    }
    exponent_len(&s[i..]).is_some_and(|n| i + n == s.len())
}

/// Go's `strconv.ParseUint(s, 0, 64)` on a text without `_`.
fn go_parse_uint(s: &[u8]) -> Option<u64> {
    let (&first, _) = s.split_first()?;
    let (base, digits): (u64, &[u8]) = if first == b'0' {
        match s.get(1).map(|c| c | 0x20) {
            Some(b'b') if s.len() >= 3 => (2, &s[2..]),
            Some(b'o') if s.len() >= 3 => (8, &s[2..]),
            Some(b'x') if s.len() >= 3 => (16, &s[2..]),
            _ => (8, &s[1..]),
        }
    } else {
        (10, s)
    };
    let mut n: u64 = 0;
    for &c in digits {
        let d = match c {
            b'0'..=b'9' => u64::from(c - b'0'),
            b'a'..=b'z' => u64::from(c - b'a') + 10,
            b'A'..=b'Z' => u64::from(c - b'A') + 10,
            _ => return None,
        };
        if d >= base {
            return None;
        }
        n = n.checked_mul(base)?.checked_add(d)?;
    }
    Some(n)
}

/// Go's `strconv.ParseInt(s, 0, 64)` on a text without `_`.
fn go_parse_int(s: &[u8]) -> Option<i64> {
    let (neg, rest) = match s.split_first()? {
        (b'-', rest) => (true, rest),
        (b'+', rest) => (false, rest),
        _ => (false, s),
    };
    let u = go_parse_uint(rest)?;
    if neg {
        if u <= 1 << 63 {
            Some((u as i64).wrapping_neg())
        } else {
            None
        }
    } else {
        i64::try_from(u).ok()
    }
}

/// Does `s` parse with one of yaml.v2's timestamp layouts (`2006-1-2T15:4:5.999999999Z07:00`,
/// the same with `t`, `2006-1-2 15:4:5.999999999`, `2006-1-2`)? Only consulted for `!!timestamp`.
pub(crate) fn is_go_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let Some(year) = fixed_digits(b, &mut i, 4) else {
        return false;
    };
    if !eat(b, &mut i, b'-') {
        return false;
    }
    let Some(month) = short_number(b, &mut i) else {
        return false;
    };
    if !eat(b, &mut i, b'-') {
        return false;
    }
    let Some(day) = short_number(b, &mut i) else {
        return false;
    };
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return false;
    }
    if i == b.len() {
        return true;
    }
    let zoned = match b[i] {
        b'T' | b't' => true,
        b' ' => false,
        _ => return false,
    };
    i += 1;
    let Some(hour) = short_number(b, &mut i) else {
        return false;
    };
    if !eat(b, &mut i, b':') {
        return false;
    }
    let Some(minute) = short_number(b, &mut i) else {
        return false;
    };
    if !eat(b, &mut i, b':') {
        return false;
    }
    let Some(second) = short_number(b, &mut i) else {
        return false;
    };
    if hour > 23 || minute > 59 || second > 59 {
        return false;
    }
    if eat(b, &mut i, b'.') && count_digits(&b[i..]) == 0 {
        return false;
    }
    i += count_digits(&b[i..]);
    if !zoned {
        return i == b.len();
    }
    if eat(b, &mut i, b'Z') {
        return i == b.len();
    }
    if !(eat(b, &mut i, b'+') || eat(b, &mut i, b'-')) {
        return false;
    }
    let Some(zh) = fixed_digits(b, &mut i, 2) else {
        return false;
    };
    if !eat(b, &mut i, b':') {
        return false;
    }
    let Some(zm) = fixed_digits(b, &mut i, 2) else {
        return false;
    };
    zh <= 23 && zm <= 59 && i == b.len()
}

fn eat(b: &[u8], i: &mut usize, c: u8) -> bool {
    if b.get(*i) == Some(&c) {
        *i += 1;
        true
    } else {
        false
    }
}

fn fixed_digits(b: &[u8], i: &mut usize, n: usize) -> Option<u32> {
    let part = b.get(*i..*i + n)?;
    if !part.iter().all(u8::is_ascii_digit) {
        return None;
    }
    *i += n;
    Some(part.iter().fold(0, |acc, c| acc * 10 + u32::from(c - b'0')))
}

/// One or two digits, as Go's non-padded layout fields read them.
fn short_number(b: &[u8], i: &mut usize) -> Option<u32> {
    let n = count_digits(&b[(*i).min(b.len())..]).min(2);
    if n == 0 {
        return None;
    }
    fixed_digits(b, i, n)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Decodes `!!binary` content like Go's `base64.StdEncoding.DecodeString` (padding required,
/// CR and LF ignored). Bytes that are not UTF-8 become U+FFFD, as Go's JSON encoder does.
pub(crate) fn decode_base64(s: &str) -> Option<String> {
    fn sextet(c: u8) -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    }
    let clean: Vec<u8> = s.bytes().filter(|&c| c != b'\n' && c != b'\r').collect();
    if !clean.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(clean.len() / 4 * 3);
    let quads = clean.len() / 4;
    for (qi, quad) in clean.chunks_exact(4).enumerate() {
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && qi + 1 != quads) {
            return None;
        }
        let mut n = 0u32;
        for &c in &quad[..4 - pad] {
            n = (n << 6) | sextet(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// Formats a float map key like Go's `strconv.FormatFloat(f, 'g', -1, 32)`, with sigs.k8s.io/yaml's
/// `.inf`, `-.inf` and `.nan` spellings for the special values.
pub(crate) fn go_float_key(f: f64) -> String {
    if f.is_nan() {
        return ".nan".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { ".inf" } else { "-.inf" }.to_owned();
    }
    #[allow(clippy::cast_possible_truncation)]
    let x = f as f32;
    if x.is_infinite() {
        // Go rounds to float32 first, where large values overflow.
        return if x > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    let mut out = String::new();
    if x.is_sign_negative() {
        out.push('-');
    }
    if x == 0.0 {
        out.push('0');
        return out;
    }
    // Shortest round-trip digits of the float32, as `d.ddd…e<exp>`.
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if !(-4..6).contains(&exp) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let e = exp.unsigned_abs();
        if e < 10 {
            out.push('0');
        }
        out.push_str(&e.to_string());
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let int_len = usize::try_from(exp).unwrap_or(0) + 1;
        if digits.len() <= int_len {
            out.push_str(&digits);
            for _ in digits.len()..int_len {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The emitter's side: strings that must not be written plain.

/// Would any YAML reader we care about resolve this plain text to something other than the
/// same string? Covers yaml.v2 (everything [`resolve_plain`] turns into a non-string), the YAML
/// 1.1 type repository (full bool set, `~`/`null`, ints with `_`, `0b`, leading-`0` octal, `0x`,
/// sexagesimal `1:20`, floats including the published pattern's multi-dot form `1.2.3`,
/// timestamps, merge `<<`, value `=`) and the YAML 1.2 core schema (`0o17`, `.5`, `+1`, `1e3`,
/// `.inf`, `.nan`). Deliberately broader than any single reader: quoting a string that did not
/// need it is harmless, the reverse changes data.
pub(crate) fn is_ambiguous_plain(s: &[u8]) -> bool {
    let Some(&first) = s.first() else {
        return true;
    };
    match first {
        b'0'..=b'9' | b'.' | b'+' | b'-' => {
            // yaml.v2 drops every `_` before trying numbers, so `+_1` and `0_x1F` are numbers too.
            numeric_like(s) || (s.contains(&b'_') && numeric_like(&without_underscores(s)))
        }
        b'y' | b'Y' | b'n' | b'N' | b't' | b'T' | b'f' | b'F' | b'o' | b'O' | b'~' => {
            !matches!(word(std::str::from_utf8(s).unwrap_or("")), Resolved::Str)
        }
        b'<' => s == b"<<",
        b'=' => s == b"=",
        _ => false,
    }
}

fn without_underscores(s: &[u8]) -> Vec<u8> {
    s.iter().copied().filter(|&c| c != b'_').collect()
}

fn numeric_like(s: &[u8]) -> bool {
    if s.is_empty() {
        return false;
    }
    let body = match s[0] {
        b'+' | b'-' => &s[1..],
        _ => s,
    };
    let Some(&c0) = body.first() else {
        return false;
    };
    if matches!(
        body,
        b".inf" | b".Inf" | b".INF" | b".nan" | b".NaN" | b".NAN"
    ) {
        return true;
    }
    if !(c0.is_ascii_digit() || c0 == b'.') {
        return false;
    }
    // Timestamps (YAML 1.1 and yaml.v2): start with YYYY-M.
    if body.len() >= 6
        && body[..4].iter().all(u8::is_ascii_digit)
        && body[4] == b'-'
        && body[5].is_ascii_digit()
    {
        return true;
    }
    // Base-prefixed integers: 0x, 0o, 0b (any case, `_` allowed).
    if body.len() >= 3
        && c0 == b'0'
        && matches!(body[1] | 0x20, b'x' | b'o' | b'b')
        && body[2..]
            .iter()
            .all(|c| c.is_ascii_hexdigit() || *c == b'_')
    {
        return true;
    }
    // Sexagesimal (YAML 1.1): digits, `_`, `.` and at least one `:`.
    if c0.is_ascii_digit()
        && body.contains(&b':')
        && body
            .iter()
            .all(|c| c.is_ascii_digit() || matches!(c, b'_' | b':' | b'.'))
    {
        return true;
    }
    decimal_shape(body)
}

/// `[0-9_]*(\.[0-9._]*)?([eE][-+]?[0-9_]+)?`: the union of decimal int and float shapes.
fn decimal_shape(s: &[u8]) -> bool {
    let mut i = s
        .iter()
        .take_while(|c| c.is_ascii_digit() || **c == b'_')
        .count();
    if s.get(i) == Some(&b'.') {
        i += 1;
        i += s[i..]
            .iter()
            .take_while(|c| c.is_ascii_digit() || matches!(c, b'.' | b'_'))
            .count();
    }
    if i == s.len() {
        return true;
    }
    if !matches!(s[i], b'e' | b'E') {
        return false;
    }
    i += 1;
    if matches!(s.get(i), Some(b'+' | b'-')) {
        i += 1;
    }
    let d = s[i.min(s.len())..]
        .iter()
        .take_while(|c| c.is_ascii_digit() || **c == b'_')
        .count();
    d > 0 && i + d == s.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Resolved {
        resolve_plain(s)
    }

    #[test]
    fn yaml11_booleans() {
        for t in [
            "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON",
        ] {
            assert_eq!(r(t), Resolved::Bool(true), "{t}");
        }
        for f in [
            "n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF",
        ] {
            assert_eq!(r(f), Resolved::Bool(false), "{f}");
        }
        for s in ["yES", "tRUE", "oN", "nO", "Y1", "yess", "of"] {
            assert_eq!(r(s), Resolved::Str, "{s}");
        }
    }

    #[test]
    fn nulls() {
        for s in ["", "~", "null", "Null", "NULL"] {
            assert_eq!(r(s), Resolved::Null, "{s:?}");
        }
        assert_eq!(r("nULL"), Resolved::Str);
        assert_eq!(r("~~"), Resolved::Str);
    }

    #[test]
    fn integers_follow_go_parseint_base0() {
        assert_eq!(r("0"), Resolved::Int(0));
        assert_eq!(r("-0"), Resolved::Int(0));
        assert_eq!(r("42"), Resolved::Int(42));
        assert_eq!(r("+42"), Resolved::Int(42));
        assert_eq!(r("-42"), Resolved::Int(-42));
        assert_eq!(r("0755"), Resolved::Int(0o755));
        assert_eq!(r("-0755"), Resolved::Int(-0o755));
        assert_eq!(r("0x1F"), Resolved::Int(31));
        assert_eq!(r("0X1f"), Resolved::Int(31));
        assert_eq!(r("-0x1F"), Resolved::Int(-31));
        assert_eq!(r("0o17"), Resolved::Int(15));
        assert_eq!(r("0b1010"), Resolved::Int(10));
        assert_eq!(r("-0b11"), Resolved::Int(-3));
        assert_eq!(r("1_000"), Resolved::Int(1000));
        assert_eq!(r("0x_1F"), Resolved::Int(31));
        assert_eq!(r("9223372036854775807"), Resolved::Int(i64::MAX));
        assert_eq!(r("-9223372036854775808"), Resolved::Int(i64::MIN));
    }

    #[test]
    fn integers_beyond_i64() {
        assert_eq!(r("9223372036854775808"), Resolved::Uint(1 << 63));
        assert_eq!(r("18446744073709551615"), Resolved::Uint(u64::MAX));
        assert_eq!(r("0xFFFFFFFFFFFFFFFF"), Resolved::Uint(u64::MAX));
        // Past u64, a decimal falls through to the float pattern, as in Go.
        assert_eq!(
            r("18446744073709551616"),
            Resolved::Float(18_446_744_073_709_551_616.0)
        );
        assert_eq!(
            r("-9223372036854775809"),
            Resolved::Float(-9_223_372_036_854_775_809.0)
        );
        // A signed value is never tried as unsigned.
        assert_eq!(
            r("+9223372036854775808"),
            Resolved::Float(9_223_372_036_854_775_808.0)
        );
        // Hex past u64 matches no pattern: a string.
        assert_eq!(r("0x1FFFFFFFFFFFFFFFF"), Resolved::Str);
    }

    #[test]
    fn octal_lookalikes_become_floats_like_go() {
        // ParseInt rejects "08" as octal; the float pattern accepts it.
        assert_eq!(r("08"), Resolved::Float(8.0));
        assert_eq!(r("0999"), Resolved::Float(999.0));
    }

    #[test]
    fn floats() {
        assert_eq!(r("1.5"), Resolved::Float(1.5));
        assert_eq!(r("-1.5"), Resolved::Float(-1.5));
        assert_eq!(r("1."), Resolved::Float(1.0));
        assert_eq!(r(".5"), Resolved::Float(0.5));
        assert_eq!(r("+.5"), Resolved::Float(0.5));
        assert_eq!(r("1e3"), Resolved::Float(1000.0));
        assert_eq!(r("1E+3"), Resolved::Float(1000.0));
        assert_eq!(r("1.0e-3"), Resolved::Float(0.001));
        assert_eq!(r(".5e1"), Resolved::Float(5.0));
        assert_eq!(r("1_000.5"), Resolved::Float(1000.5));
        assert_eq!(r(".5_5"), Resolved::Float(0.55));
        assert_eq!(r("1e400"), Resolved::Str, "out of range stays a string");
        for s in [
            "1.2.3", "1e", "1.5x", "e5", ".", ".e5", "._5", "+", "-", "1.5e3.0", "0x", "0b",
            "10.0.0.1",
        ] {
            assert_eq!(r(s), Resolved::Str, "{s}");
        }
    }

    #[test]
    fn infinity_and_nan_words() {
        for s in [".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"] {
            assert_eq!(r(s), Resolved::Float(f64::INFINITY), "{s}");
        }
        for s in ["-.inf", "-.Inf", "-.INF"] {
            assert_eq!(r(s), Resolved::Float(f64::NEG_INFINITY), "{s}");
        }
        for s in [".nan", ".NaN", ".NAN"] {
            assert!(matches!(r(s), Resolved::Float(f) if f.is_nan()), "{s}");
        }
        for s in [".iNf", "inf", "nan", "-.nan", "+.NaN", "infinity"] {
            assert_eq!(r(s), Resolved::Str, "{s}");
        }
    }

    #[test]
    fn timestamps_and_other_text_stay_strings() {
        for s in [
            "2024-01-01",
            "2001-12-14t21:59:43.10-05:00",
            "1:20",
            "12:30:00",
            "<<",
            "=",
            "abc",
            "-x",
            "1Gi",
            "500m",
        ] {
            assert_eq!(r(s), Resolved::Str, "{s}");
        }
    }

    #[test]
    fn go_timestamp_layouts() {
        for s in [
            "2024-01-01",
            "2024-1-2",
            "2001-12-14T21:59:43.10-05:00",
            "2001-12-14t21:59:43Z",
            "2001-12-14 21:59:43.10",
            "2024-02-29",
        ] {
            assert!(is_go_timestamp(s), "{s}");
        }
        for s in [
            "2023-02-29",
            "2024-13-01",
            "2024-01-01T10:00:00",
            "2024-01-01 10:00:00Z",
            "24-01-01",
            "2024-01-01x",
            "2024-01-01T25:00:00Z",
        ] {
            assert!(!is_go_timestamp(s), "{s}");
        }
    }

    #[test]
    fn base64_like_go_std_encoding() {
        assert_eq!(decode_base64("aGVsbG8=").as_deref(), Some("hello"));
        assert_eq!(decode_base64("aGVs\nbG8=\n").as_deref(), Some("hello"));
        assert_eq!(decode_base64("").as_deref(), Some(""));
        assert_eq!(
            decode_base64("aGVsbG8").as_deref(),
            None,
            "padding is required"
        );
        assert_eq!(decode_base64("aG=sbG8=").as_deref(), None);
        assert_eq!(decode_base64("a*==").as_deref(), None);
        assert_eq!(decode_base64("/w==").as_deref(), Some("\u{fffd}"));
    }

    #[test]
    fn float_keys_format_like_go_g32() {
        let cases = [
            (1.0, "1"),
            (1.5, "1.5"),
            (-2.25, "-2.25"),
            (100_000.0, "100000"),
            (1e6, "1e+06"),
            (1_234_567.0, "1.234567e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (0.1, "0.1"),
            (std::f64::consts::PI, "3.1415927"),
            (0.0, "0"),
            (-0.0, "-0"),
            (1e300, "+Inf"),
            (f64::INFINITY, ".inf"),
            (f64::NEG_INFINITY, "-.inf"),
            (f64::NAN, ".nan"),
        ];
        for (f, want) in cases {
            assert_eq!(go_float_key(f), want, "{f}");
        }
    }

    #[test]
    fn ambiguous_plain_strings() {
        let quoted = [
            "",
            "yes",
            "No",
            "on",
            "OFF",
            "y",
            "N",
            "true",
            "False",
            "~",
            "null",
            "NULL",
            "0",
            "-1",
            "+1",
            "0755",
            "0o17",
            "0x1F",
            "0b101",
            "0x_",
            "1_000",
            "1e3",
            "1E3",
            "1e+3",
            ".5",
            "-.5",
            "1.",
            "1.5",
            "1.2.3",
            "10.0.0.1",
            "1:20",
            "-1:20",
            "8080:80",
            "1:20.5",
            "2024-01-01",
            "2024-1-2",
            "2001-12-14 21:59:43.10 -5",
            "+_1",
            "0_x1F",
            "-_0b1",
            ".inf",
            "-.Inf",
            "+.INF",
            ".nan",
            "-.nan",
            "<<",
            "=",
            ".",
            "1_",
            "08",
            "1e400",
        ];
        for s in quoted {
            assert!(is_ambiguous_plain(s.as_bytes()), "{s:?} must be quoted");
        }
        let plain = [
            "abc",
            "yess",
            "nope",
            "onward",
            "Off-line",
            "1Gi",
            "500m",
            "v1.2.3",
            "1a",
            "1e",
            "0x",
            "0xg",
            "-x",
            "--port=80",
            "true-ish",
            "null0",
            "inf",
            "nan",
            "2024-",
            "12-25",
            "abc:1",
            "<",
            "==",
            "~x",
        ];
        for s in plain {
            assert!(!is_ambiguous_plain(s.as_bytes()), "{s:?} can stay plain");
        }
    }

    #[test]
    fn every_non_string_resolution_is_ambiguous() {
        // The emitter's classifier must cover yaml.v2's resolver on any short numeric-ish text.
        let alphabet = [
            "0", "1", "7", "8", "9", "_", ".", "e", "E", "+", "-", "x", "o", "b", "a", "f", ":",
        ];
        let mut stack = vec![String::new()];
        while let Some(s) = stack.pop() {
            if !s.is_empty() && resolve_plain(&s) != Resolved::Str {
                assert!(
                    is_ambiguous_plain(s.as_bytes()),
                    "{s:?} resolves to {:?}",
                    resolve_plain(&s)
                );
            }
            if s.len() < 4 {
                for a in alphabet {
                    stack.push(format!("{s}{a}"));
                }
            }
        }
    }
}
