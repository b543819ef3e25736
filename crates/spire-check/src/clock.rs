//! The hidden `--now` flag: an RFC 3339 timestamp that replaces the system clock, so that tests
//! (and anyone reproducing a report) get the same certificate verdicts every time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Parse `2031-06-15T12:00:00Z`, `2031-06-15T14:00:00+02:00` or `2031-06-15 12:00:00.5Z`.
/// Fractions of a second are accepted and dropped.
pub fn parse_rfc3339(s: &str) -> Result<SystemTime, String> {
    let bad = |why: &str| format!("invalid time `{s}`: {why} (expected RFC 3339, e.g. 2031-06-15T12:00:00Z)");
    let b = s.as_bytes();
    if b.len() < 20 {
        return Err(bad("too short"));
    }
    let num = |range: std::ops::Range<usize>| -> Result<i64, String> {
        let part = &s[range];
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse::<i64>().map_err(|_| bad("not a number"))
        } else {
            Err(bad(&format!("`{part}` is not a number")))
        }
    };
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return Err(bad("misplaced separators"));
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(bad("no such date"));
    }
    if hour > 23 || minute > 59 || second > 60 {
        return Err(bad("no such time of day"));
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad("empty fraction of a second"));
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let rb = rest.as_bytes();
            if rb.len() != 6 || !matches!(rb[0], b'+' | b'-') || rb[3] != b':' {
                return Err(bad("the time zone must be Z or ±HH:MM"));
            }
            let h: i64 = rest[1..3].parse().map_err(|_| bad("bad zone hours"))?;
            let m: i64 = rest[4..6].parse().map_err(|_| bad("bad zone minutes"))?;
            if h > 23 || m > 59 {
                return Err(bad("bad zone offset"));
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
            assert!(err.contains(bad), "{err}");
        }
    }
}
