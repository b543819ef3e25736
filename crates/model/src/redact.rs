//! Messages about inputs that may hold secrets. A kubeconfig holds bearer tokens and client keys,
//! a manifest stream holds Secrets, and error messages end up in CI logs: a message may say where
//! and what is wrong, never what the input says there. YAML readers and serde quote the values
//! they did not expect (`invalid type: string "..."`) and render the lines around an error; these
//! helpers keep their description and drop the rest.

/// Replace the contents of every quoted span that holds a value with `…`: in YAML and serde
/// messages quotes hold values from the input. That is every `"..."`, every `'...'` longer than
/// one character (a single quoted character is the reader naming a YAML indicator, like `':'`),
/// and a backquoted span after the words serde puts before a value (`unknown variant `…``,
/// `integer `…``, `boolean `…``, `floating point `…``, `character `…``); backquoted field names
/// (`unknown field `tokn``) are keys and stay. A single quote inside a word (`don't`) opens
/// nothing.
pub fn quoted(text: &str) -> String {
    const VALUE_WORDS: [&str; 5] = ["variant ", "integer ", "boolean ", "floating point ", "character "];
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(['"', '\'', '`']) {
        let quote = rest[at..].chars().next().unwrap_or('"');
        let before = &rest[..at];
        let opens = match quote {
            '"' => true,
            '`' => true,
            _ => at == 0 || before.ends_with([' ', ':', '(']),
        };
        let close = rest[at + 1..].find(quote).map(|end| at + 1 + end);
        out.push_str(&rest[..=at]);
        match close {
            Some(end) if opens => {
                let inner = &rest[at + 1..end];
                let keep = match quote {
                    '`' => !VALUE_WORDS.iter().any(|w| before.ends_with(w)),
                    '\'' => inner.chars().count() <= 1,
                    _ => false,
                };
                out.push_str(if keep { inner } else { "…" });
                out.push(quote);
                rest = &rest[end + 1..];
            }
            None if opens && quote != '`' => {
                out.push('…');
                rest = "";
            }
            _ => rest = &rest[at + 1..],
        }
    }
    out.push_str(rest);
    out
}

/// A YAML reader's error (`rendered`: its message, which may go on with a source excerpt) as
/// `invalid YAML at line L, column C: what` (`invalid YAML: what` without a location): only the
/// first line of the message, without the reader's own location prefix and suffix, with quoted
/// text removed.
/// A serde-saphyr error on a configuration file, without the file's text: line, column and what
/// is wrong (serde-saphyr would also render the lines around it and quote the value).
pub fn saphyr_error(e: &serde_saphyr::Error) -> String {
    yaml_error(&e.without_snippet().to_string(), e.location().map(|l| (l.line(), l.column())))
}

pub fn yaml_error(rendered: &str, location: Option<(u64, u64)>) -> String {
    let first = rendered.lines().next().unwrap_or_default().trim();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    // The reader's own "line L column C: " prefix and " at line L, column C" suffix.
    let what = match first.split_once(": ") {
        Some((place, rest)) if place.starts_with("line ") => rest,
        _ => first,
    };
    let what = match what.rfind(" at line ") {
        Some(cut) if what[cut..].contains("column") => &what[..cut],
        _ => what,
    };
    let what = quoted(what);
    match location {
        Some((line, column)) => format!("invalid YAML at line {line}, column {column}: {what}"),
        None => format!("invalid YAML: {what}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_text_is_redacted() {
        assert_eq!(quoted(r#"invalid type: string "s3cret", expected a boolean"#), r#"invalid type: string "…", expected a boolean"#);
        assert_eq!(quoted("unknown field `tokn`, expected 'ab'"), "unknown field `tokn`, expected '…'");
        assert_eq!(quoted("don't stop"), "don't stop");
        assert_eq!(quoted("illegal placement of ':' indicator"), "illegal placement of ':' indicator");
        assert_eq!(quoted(r#"unterminated "s3cret"#), r#"unterminated "…"#);
        assert_eq!(quoted("unknown variant `s3cret`, expected one of sidecar, ambient"), "unknown variant `…`, expected one of sidecar, ambient");
        assert_eq!(quoted("invalid value: integer `12345`, expected u8"), "invalid value: integer `…`, expected u8");
        assert_eq!(quoted("invalid type: boolean `true`, expected a string"), "invalid type: boolean `…`, expected a string");
        assert_eq!(quoted("unknown field `tokn`, expected one of `token`, `username`"), "unknown field `tokn`, expected one of `token`, `username`");
    }

    #[test]
    fn reader_errors_keep_the_description_only() {
        let rendered = "error: line 11 column 9: illegal placement of ':' indicator at line 11, column 9\n  --> <input>:11:9\n 9 |     token: s3cret\n";
        assert_eq!(yaml_error(rendered, Some((11, 9))), "invalid YAML at line 11, column 9: illegal placement of ':' indicator");
        assert_eq!(yaml_error(r#"invalid type: string "s3cret", expected u32"#, None), r#"invalid YAML: invalid type: string "…", expected u32"#);
    }
}
