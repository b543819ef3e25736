//! Durations as Kubernetes, Istio and SPIRE write them: Go's `time.ParseDuration` syntax
//! (`24h`, `1h30m`, `1.5h`, `300ms`), and a bare integer as seconds (kubectl's
//! `--request-timeout 5`, SPIRE's HCL TTLs). One parser and one formatter for every flag,
//! config file and message of the three plugins.

use std::time::Duration;

/// Parse a duration; the error names the text and says what is expected.
pub fn parse(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration (use units like 30s, 1m30s, 500ms or 24h)".into());
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let rest = s.strip_prefix('+').unwrap_or(s);
    if rest.starts_with('-') {
        return Err(format!("`{s}` is negative"));
    }
    let mut total = 0f64;
    let mut rest = rest;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_len == 0 {
            return Err(format!("`{s}` is not a duration (use units like 30s, 1m30s, 500ms or 24h)"));
        }
        let n: f64 = rest[..num_len].parse().map_err(|_| format!("`{s}` has a bad number"))?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(format!("`{s}` is missing a unit (h, m, s, ms)")),
            u => return Err(format!("`{s}` has an unknown unit `{u}` (h, m, s, ms)")),
        };
        total += n * scale;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| format!("`{s}` is too long"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations_and_bare_seconds() {
        assert_eq!(parse("24h").unwrap(), Duration::from_secs(86400));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("300ms").unwrap(), Duration::from_millis(300));
        assert_eq!(parse("0").unwrap(), Duration::ZERO);
        assert_eq!(parse("3600").unwrap(), Duration::from_secs(3600));
        for bad in ["", "h", "5x", "10x", "-1s", "1h-", "abc", "1.2.3s", "1d"] {
            let e = parse(bad).unwrap_err();
            assert!(bad.is_empty() || e.contains(bad), "{bad}: {e}");
        }
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
            assert_eq!(parse(text).unwrap(), d);
        }
    }
}
