//! The hidden `--now` flag: an RFC 3339 timestamp that replaces the system clock, so that tests
//! (and anyone reproducing a report) get the same certificate verdicts every time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A `--now` value that is not an RFC 3339 time: the text and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid time `{text}`: {problem} (expected RFC 3339, e.g. 2031-06-15T12:00:00Z)")]
pub struct TimeError {
    pub text: String,
    pub problem: TimeProblem,
}

/// What is wrong with a time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeProblem {
    #[error("too short")]
    TooShort,
    /// RFC 3339 times are ASCII (and byte offsets below rely on it).
    #[error("a character that is not ASCII")]
    NotAscii,
    #[error("misplaced separators")]
    Separators,
    /// A date or time field that is not all digits.
    #[error("`{0}` is not a number")]
    NotANumber(String),
    #[error("no such date")]
    NoSuchDate,
    #[error("no such time of day")]
    NoSuchTime,
    #[error("empty fraction of a second")]
    EmptyFraction,
    #[error("the time zone must be Z or ±HH:MM")]
    Zone,
    #[error("bad zone offset")]
    ZoneOffset,
}

/// Parse `2031-06-15T12:00:00Z`, `2031-06-15T14:00:00+02:00` or `2031-06-15 12:00:00.5Z`.
/// Fractions of a second are accepted and dropped.
pub fn parse_rfc3339(s: &str) -> Result<SystemTime, TimeError> {
    let bad = |problem: TimeProblem| TimeError { text: s.to_string(), problem };
    let b = s.as_bytes();
    if b.len() < 20 {
        return Err(bad(TimeProblem::TooShort));
    }
    if !s.is_ascii() {
        return Err(bad(TimeProblem::NotAscii));
    }
    let num = |range: std::ops::Range<usize>| -> Result<i64, TimeError> {
        let part = &s[range];
        match part.parse::<i64>() {
            Ok(n) if part.bytes().all(|c| c.is_ascii_digit()) => Ok(n),
            _ => Err(bad(TimeProblem::NotANumber(part.to_string()))),
        }
    };
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return Err(bad(TimeProblem::Separators));
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(bad(TimeProblem::NoSuchDate));
    }
    if hour > 23 || minute > 59 || second > 60 {
        return Err(bad(TimeProblem::NoSuchTime));
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad(TimeProblem::EmptyFraction));
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let rb = rest.as_bytes();
            if rb.len() != 6 || !matches!(rb[0], b'+' | b'-') || rb[3] != b':' {
                return Err(bad(TimeProblem::Zone));
            }
            let digits = |part: &str| part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse::<i64>().ok()).flatten();
            let (Some(h), Some(m)) = (digits(&rest[1..3]), digits(&rest[4..6])) else {
                return Err(bad(TimeProblem::Zone));
            };
            if h > 23 || m > 59 {
                return Err(bad(TimeProblem::ZoneOffset));
            }
            let secs = h * 3600 + m * 60;
            if rb[0] == b'-' { -secs } else { secs }
        }
    };
    let unix = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset;
    Ok(if unix >= 0 {
        UNIX_EPOCH + Duration::from_secs(unix.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(unix.unsigned_abs())
    })
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the inverse of the core's `show_time`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshmove_spire::bundle::{show_time, unix_seconds};

    fn secs(s: &str) -> i64 {
        unix_seconds(parse_rfc3339(s).unwrap())
    }

    #[test]
    fn round_trips_with_the_core_formatter() {
        for t in [0, 1_939_291_200, 951_782_400, 4_102_444_799, -86_400, 1_709_164_800] {
            assert_eq!(secs(&show_time(t)), t, "{}", show_time(t));
        }
    }

    #[test]
    fn offsets_fractions_and_errors() {
        assert_eq!(secs("2031-06-15T14:00:00+02:00"), 1_939_291_200);
        assert_eq!(secs("2031-06-15T10:30:00-01:30"), 1_939_291_200);
        assert_eq!(secs("2031-06-15 12:00:00.999Z"), 1_939_291_200);
        assert_eq!(secs("2024-02-29T00:00:00Z"), 1_709_164_800);
        for bad in [
            "2031-06-15",
            "2031-06-15T12:00:00",
            "2031-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2031-06-15T24:00:00Z",
            "2031-06-15T12:00:00+2:00",
            "2031/06/15T12:00:00Z",
            "2031-06-15T12:00:00.Z",
        ] {
            let err = parse_rfc3339(bad).unwrap_err();
            assert_eq!(err.text, bad);
            assert!(err.to_string().starts_with(&format!("invalid time `{bad}`: ")), "{err}");
        }
        let problem = |s| parse_rfc3339(s).unwrap_err().problem;
        assert_eq!(problem("2031-06-15"), TimeProblem::TooShort);
        assert_eq!(problem("2031-13-01T00:00:00Z"), TimeProblem::NoSuchDate);
        assert_eq!(problem("2031-06-15T24:00:00Z"), TimeProblem::NoSuchTime);
        assert_eq!(problem("2031-06-15T12:00:00+2:00"), TimeProblem::Zone);
        assert_eq!(problem("2031-06-15T12:00:00+24:00"), TimeProblem::ZoneOffset);
        assert_eq!(problem("2031-06-15T12:00:00.Z"), TimeProblem::EmptyFraction);
        assert_eq!(problem("2031-06-15T12:00:00.5+0x:00"), TimeProblem::Zone);
        assert_eq!(problem("2031-06-15T12:00:0\u{e9}Z"), TimeProblem::NotAscii);
        assert_eq!(secs("2031-06-15T14:00:00.25+02:00"), 1_939_291_200);
        assert_eq!(problem("2031-0x-15T12:00:00Z"), TimeProblem::NotANumber("0x".into()));
    }
}
