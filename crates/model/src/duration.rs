//! Durations as Kubernetes, Istio and SPIRE write them. One parser (with an explicit [`Mode`]) and
//! one formatter for every flag, config file and message of the three plugins.
//!
//! The grammar is Go's `time.ParseDuration`: one or more numbers, each with a unit (`ns`, `us`,
//! `µs`, `ms`, `s`, `m`, `h`), like `24h`, `1h30m`, `1.5h`, `300ms`; `0` alone is zero. A bare
//! number is ambiguous (`--max-p99 500`: milliseconds or seconds?) and is an error with a hint,
//! except where the upstream format defines it:
//!
//! * [`Mode::Units`] — this product's flags and config files, SPIRE's `server.conf` TTLs
//!   (`ca_ttl`, `default_x509_svid_ttl`, ... are strings that SPIRE reads with Go's
//!   `time.ParseDuration`, spiffe/spire `cmd/spire-server/cli/run/run.go`; a bare number there
//!   fails with "missing unit in duration", so it must fail here too), and ClusterSPIFFEID
//!   `spec.ttl` (a `metav1.Duration`, the same parser).
//! * [`Mode::KubectlTimeout`] — kubectl's `--request-timeout` only: client-go's
//!   `clientcmd.ParseTimeout` takes "a single integer in seconds, or an integer followed by a
//!   corresponding time unit", so `--request-timeout 5` stays five seconds as in kubectl.
//!
//! Arithmetic is in integer nanoseconds (no floating point): `1.1s` is exactly 1.1 s, and a
//! duration beyond Go's limit (about 292 years) is an error, as in Go.

use std::time::Duration;

/// How a bare number (no unit) is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every number needs a unit; `0` alone is zero (Go's `time.ParseDuration`).
    Units,
    /// A bare non-negative integer is seconds (client-go's `clientcmd.ParseTimeout`, kubectl's
    /// `--request-timeout`); anything else as [`Mode::Units`].
    KubectlTimeout,
}

/// Go's largest duration: `math.MaxInt64` nanoseconds.
const MAX_NANOS: u128 = i64::MAX as u128;

/// A text that is not a duration; every variant but `Empty` names the text, and says what to
/// write instead where that can be told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration (write it with a unit, like 30s, 1m30s, 500ms or 24h)")]
    Empty,
    /// A bare number where a unit is required.
    #[error("{text} has no unit: write {text}ms or {text}s")]
    NoUnit { text: String },
    #[error("`{text}` is not a duration (write it with a unit, like 30s, 1m30s, 500ms or 24h)")]
    NotADuration { text: String },
    #[error("`{text}` has a number without a unit at the end (h, m, s, ms, us, ns)")]
    TrailingNumber { text: String },
    #[error("`{text}` has an unknown unit `{unit}` (use h, m, s, ms, us or ns)")]
    UnknownUnit { text: String, unit: String },
    #[error("`{text}` is negative")]
    Negative { text: String },
    /// Beyond Go's limit (`math.MaxInt64` nanoseconds, about 292 years).
    #[error("`{text}` is too long")]
    TooLong { text: String },
}

/// Parse a duration; the error names the text and says what to write instead.
pub fn parse(s: &str, mode: Mode) -> Result<Duration, DurationError> {
    let s = s.trim();
    let text = || s.to_string();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return match mode {
            Mode::KubectlTimeout => s
                .parse::<u64>()
                .ok()
                .filter(|secs| u128::from(*secs) * 1_000_000_000 <= MAX_NANOS)
                .map(Duration::from_secs)
                .ok_or_else(|| DurationError::TooLong { text: text() }),
            Mode::Units => Err(DurationError::NoUnit { text: text() }),
        };
    }
    let rest = s.strip_prefix('+').unwrap_or(s);
    if rest.starts_with('-') {
        return Err(DurationError::Negative { text: text() });
    }
    let mut total: u128 = 0;
    let whole_input = rest;
    let mut rest = rest;
    while !rest.is_empty() {
        let (number, after) = leading_number(rest).ok_or_else(|| DurationError::NotADuration { text: text() })?;
        let unit_len = after.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(after.len());
        let unit = &after[..unit_len];
        let per_unit: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            // The whole text is one number (a fraction: integers were handled above).
            "" if rest == whole_input => return Err(DurationError::NoUnit { text: rest.to_string() }),
            "" => return Err(DurationError::TrailingNumber { text: text() }),
            u => return Err(DurationError::UnknownUnit { text: text(), unit: u.to_string() }),
        };
        total = total.saturating_add(number.nanos(per_unit));
        if total > MAX_NANOS {
            return Err(DurationError::TooLong { text: text() });
        }
        rest = &after[unit_len..];
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| DurationError::TooLong { text: text() })?;
    let nanos = u32::try_from(total % 1_000_000_000).unwrap_or(0);
    Ok(Duration::new(secs, nanos))
}

/// A decimal number as written: its integer part and its fraction (`digits / 10^places`).
struct Number {
    whole: u128,
    fraction: u128,
    places: u32,
}

impl Number {
    /// The number times `per_unit` nanoseconds, the fraction truncated to whole nanoseconds (as
    /// Go does).
    fn nanos(&self, per_unit: u128) -> u128 {
        let whole = self.whole.saturating_mul(per_unit);
        let fraction = self.fraction.saturating_mul(per_unit) / 10u128.pow(self.places);
        whole.saturating_add(fraction)
    }
}

/// The number at the start of `text` (`12`, `1.5`, `.5`, `5.`), and what follows it. Fraction
/// digits beyond the 18th are read but ignored, as Go ignores those that would overflow.
fn leading_number(text: &str) -> Option<(Number, &str)> {
    let int_len = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (int_part, after) = text.split_at(int_len);
    let (frac_part, after) = match after.strip_prefix('.') {
        Some(f) => {
            let len = f.find(|c: char| !c.is_ascii_digit()).unwrap_or(f.len());
            f.split_at(len)
        }
        None if int_part.is_empty() => return None,
        None => ("", after),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    let whole = int_part.bytes().try_fold(0u128, |acc, b| acc.checked_mul(10)?.checked_add(u128::from(b - b'0')))?;
    let kept = &frac_part[..frac_part.len().min(18)];
    let fraction = kept.bytes().fold(0u128, |acc, b| acc * 10 + u128::from(b - b'0'));
    let places = u32::try_from(kept.len()).unwrap_or(18);
    Some((Number { whole, fraction, places }, after))
}

/// Format a duration compactly, the way it would be written on a flag: `24h`, `1h30m`, `45s`;
/// milliseconds when under a minute and not whole seconds (`250ms`, `1500ms`).
pub fn show(d: Duration) -> String {
    if d.as_secs() < 60 && d.subsec_millis() != 0 || d.as_secs() == 0 {
        return format!("{}ms", d.as_millis());
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// Format a duration as people say it in a sentence: the two largest units, in days, hours,
/// minutes and seconds, separated by a space and without zero parts (`35d`, `5d 4h`, `2h 30m`,
/// `45s`), or milliseconds under a second (`250ms`). Smaller units are truncated, never rounded
/// up: `35d 0h 0m 11s` is `35d`, and an expiry never reads later than it is. For messages only;
/// [`show`] writes what a flag or config file accepts back.
pub fn human(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return format!("{}ms", d.as_millis());
    }
    let parts = [(secs / 86_400, "d"), (secs % 86_400 / 3600, "h"), (secs % 3600 / 60, "m"), (secs % 60, "s")];
    let first = parts.iter().position(|(n, _)| *n > 0).unwrap_or(3);
    parts[first..(first + 2).min(parts.len())]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(s: &str) -> Result<Duration, DurationError> {
        parse(s, Mode::Units)
    }

    #[test]
    fn parses_go_durations() {
        assert_eq!(units("24h").unwrap(), Duration::from_secs(86400));
        assert_eq!(units("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(units("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(units("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(units("300ms").unwrap(), Duration::from_millis(300));
        assert_eq!(units("0").unwrap(), Duration::ZERO);
        assert_eq!(units("0s").unwrap(), Duration::ZERO);
        assert_eq!(units("+5s").unwrap(), Duration::from_secs(5));
        assert_eq!(units(".5s").unwrap(), Duration::from_millis(500));
        assert_eq!(units("5.s").unwrap(), Duration::from_secs(5));
        assert_eq!(units("1us").unwrap(), Duration::from_micros(1));
        assert_eq!(units("1µs").unwrap(), Duration::from_micros(1));
        assert_eq!(units("1μs").unwrap(), Duration::from_micros(1));
        assert_eq!(units("7ns").unwrap(), Duration::from_nanos(7));
        assert_eq!(units("2h45m30.5s").unwrap(), Duration::new(9930, 500_000_000));
    }

    #[test]
    fn arithmetic_is_exact() {
        // 1.1 is not representable in binary floating point; in nanoseconds it is.
        assert_eq!(units("1.1s").unwrap(), Duration::new(1, 100_000_000));
        assert_eq!(units("0.3s").unwrap(), Duration::from_millis(300));
        assert_eq!(units("1.000000001s").unwrap(), Duration::new(1, 1));
        // Fractions below a nanosecond are truncated, as in Go.
        assert_eq!(units("1.0000000009s").unwrap(), Duration::from_secs(1));
        assert_eq!(units("0.1234567890123456789012s").unwrap(), Duration::new(0, 123_456_789));
        // Go's limit: math.MaxInt64 nanoseconds.
        assert_eq!(units("2562047h47m16.854775807s").unwrap(), Duration::new(9_223_372_036, 854_775_807));
        assert!(matches!(units("2562047h47m16.854775808s"), Err(DurationError::TooLong { .. })));
        assert!(units("99999999999999999999999999999999999999999h").is_err());
    }

    #[test]
    fn a_bare_number_needs_a_unit_with_a_hint() {
        assert_eq!(units("500").unwrap_err(), DurationError::NoUnit { text: "500".into() });
        assert_eq!(units("500").unwrap_err().to_string(), "500 has no unit: write 500ms or 500s");
        assert_eq!(units("1.5").unwrap_err().to_string(), "1.5 has no unit: write 1.5ms or 1.5s");
        assert!(matches!(units("1h30"), Err(DurationError::TrailingNumber { .. })));
        assert!(units("1h30").unwrap_err().to_string().contains("without a unit"));
    }

    #[test]
    fn kubectl_request_timeout_reads_a_bare_integer_as_seconds() {
        let t = |s| parse(s, Mode::KubectlTimeout).map_err(|e| e.to_string());
        assert_eq!(t("5").unwrap(), Duration::from_secs(5));
        assert_eq!(t("0").unwrap(), Duration::ZERO);
        assert_eq!(t("1m30s").unwrap(), Duration::from_secs(90));
        // Only an integer: a bare fraction has no unit there either.
        assert!(t("1.5").unwrap_err().contains("no unit"));
        assert!(t("9999999999999999999").is_err());
    }

    #[test]
    fn bad_durations_name_the_text() {
        for bad in ["", "h", "5x", "10x", "-1s", "1h-", "abc", "1.2.3s", "1d", ".s", "1 s"] {
            let e = units(bad).unwrap_err().to_string();
            assert!(bad.is_empty() || e.contains(bad.trim()), "{bad}: {e}");
        }
    }

    #[test]
    fn human_durations_read_like_speech() {
        let d = |s: u64| Duration::from_secs(s);
        assert_eq!(human(d(840 * 3600 + 11)), "35d");
        assert_eq!(human(d(5 * 86_400 + 4 * 3600 + 59 * 60)), "5d 4h");
        assert_eq!(human(d(86_400)), "1d");
        assert_eq!(human(d(2 * 3600 + 30 * 60 + 5)), "2h 30m");
        assert_eq!(human(d(3600 + 7)), "1h");
        assert_eq!(human(d(90)), "1m 30s");
        assert_eq!(human(d(45)), "45s");
        assert_eq!(human(Duration::from_millis(250)), "250ms");
        assert_eq!(human(Duration::from_millis(1999)), "1s");
        assert_eq!(human(Duration::ZERO), "0ms");
    }

    #[test]
    fn shows_what_parses_back() {
        for (d, text) in [
            (Duration::from_secs(5400), "1h30m"),
            (Duration::from_secs(45), "45s"),
            (Duration::from_secs(86400), "24h"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_millis(1500), "1500ms"),
            (Duration::ZERO, "0ms"),
        ] {
            assert_eq!(show(d), text);
            assert_eq!(units(text).unwrap(), d);
        }
    }
}
