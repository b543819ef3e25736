//! Writing a `serde_json::Value` as block-style YAML that every reader gives back unchanged.

use std::fmt::Write as _;

use serde_json::{Map, Number, Value};

use super::resolve::is_ambiguous_plain;

/// Keys longer than this (in bytes, as written) use the explicit `? key` form: YAML readers
/// (libyaml, and so yaml.v2, and granit-parser) refuse implicit keys over 1024 characters.
const MAX_IMPLICIT_KEY: usize = 1000;

/// Writes `value` as one YAML document, the way kubectl prints objects.
///
/// * Block style with 2-space indentation; a sequence under a key starts its `- ` at the key's
///   column; keys keep the map's order; empty collections are `{}` and `[]`.
/// * Strings are plain when that reads back as the same string under every reader considered
///   (see below), otherwise double-quoted with escapes. Multi-line strings are literal block
///   scalars (`|-` without a final line break, `|` with one, `|+` with more), unless the first
///   line starts with a space or tab, the text starts with a line break, or it holds a carriage
///   return or a character YAML cannot show raw; those are double-quoted.
/// * A string is quoted when YAML 1.1 (yaml.v2's resolver and the 1.1 type repository: `yes`,
///   `on`, `y`, `~`, `0755`, `0x1F`, `1_000`, `1:20`, `1.2.3`, `2024-01-01`, `<<`, `=`), YAML 1.2
///   core (`0o17`, `.5`, `+1`, `1e3`, `.inf`, `.nan`) or the syntax would read it otherwise:
///   empty; a leading indicator (`? : , [ ] { } # & * ! | > ' " % @` and backtick, or `-`
///   followed by a blank or nothing); leading `---`/`...`; `: ` or ` #` inside; a trailing `:`;
///   leading or trailing blanks; control characters, tabs, line breaks, DEL, C1 controls, U+2028,
///   U+2029, U+FEFF, U+FFFE and U+FFFF. A leading `-` followed by a non-blank (`--flag=x`) stays
///   plain: every reader takes it as text.
/// * Keys follow the same rules but are never block scalars.
/// * Integers as written; floats always show a `.` and a signed exponent when they have one
///   (`1.0`, `1.0e+300`), so YAML 1.1 readers also see floats; `null`, `true`, `false`.
///
/// The result ends with a line break and has no `---` line; the caller adds separators.
#[must_use]
pub fn to_yaml_string(value: &Value) -> String {
    let mut out = String::with_capacity(1024);
    write_yaml(&mut out, value);
    out
}

/// [`to_yaml_string`], appending to `out` (no intermediate string when writing a stream).
pub fn write_yaml(out: &mut String, value: &Value) {
    write_node(out, value, 0, Pos::Top);
}

/// Where a node is written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pos {
    /// At column 0 of a fresh line: the document's root.
    Top,
    /// Right after `key:`; the key is at column `indent`.
    AfterKey,
    /// Right after `- ` or `: ` written at column `indent` (the node starts at `indent + 2`).
    Inline,
}

fn write_node(out: &mut String, value: &Value, indent: usize, pos: Pos) {
    match value {
        Value::Object(map) if !map.is_empty() => match pos {
            Pos::Top => write_map(out, map, 0, false),
            Pos::AfterKey => {
                out.push('\n');
                write_map(out, map, indent + 2, false);
            }
            Pos::Inline => write_map(out, map, indent + 2, true),
        },
        Value::Array(items) if !items.is_empty() => match pos {
            Pos::Top => write_seq(out, items, 0, false),
            Pos::AfterKey => {
                out.push('\n');
                write_seq(out, items, indent, false);
            }
            Pos::Inline => write_seq(out, items, indent + 2, true),
        },
        Value::String(s) if is_literal_candidate(s) => {
            if pos == Pos::AfterKey {
                out.push(' ');
            }
            let content_indent = if pos == Pos::Top { 2 } else { indent + 2 };
            write_literal(out, s, content_indent);
        }
        scalar => {
            if pos == Pos::AfterKey {
                out.push(' ');
            }
            write_inline_scalar(out, scalar);
            out.push('\n');
        }
    }
}

fn write_map(out: &mut String, map: &Map<String, Value>, indent: usize, first_inline: bool) {
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 || !first_inline {
            push_indent(out, indent);
        }
        let key_start = out.len();
        write_string_inline(out, key);
        if out.len() - key_start > MAX_IMPLICIT_KEY {
            // `? "key"` then `: value` on its own line, the value written like a sequence item.
            out.insert_str(key_start, "? ");
            out.push('\n');
            push_indent(out, indent);
            out.push_str(": ");
            write_node(out, value, indent, Pos::Inline);
        } else {
            out.push(':');
            write_node(out, value, indent, Pos::AfterKey);
        }
    }
}

fn write_seq(out: &mut String, items: &[Value], indent: usize, first_inline: bool) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 || !first_inline {
            push_indent(out, indent);
        }
        out.push_str("- ");
        write_node(out, item, indent, Pos::Inline);
    }
}

fn push_indent(out: &mut String, n: usize) {
    const SPACES: &str = "                                                                ";
    let mut n = n;
    while n > SPACES.len() {
        out.push_str(SPACES);
        n -= SPACES.len();
    }
    out.push_str(&SPACES[..n]);
}

fn write_inline_scalar(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string_inline(out, s),
        Value::Array(_) => out.push_str("[]"),
        Value::Object(_) => out.push_str("{}"),
    }
}

fn write_number(out: &mut String, n: &Number) {
    if n.is_f64() {
        // serde_json prints the shortest round-trip form: `1.0`, `1.5e-7`, `1e16`. YAML 1.1's
        // float pattern wants a `.` and a signed exponent, so `1e16` becomes `1.0e+16`.
        let text = n.to_string();
        match text.split_once(['e', 'E']) {
            Some((mantissa, exp)) => {
                out.push_str(mantissa);
                if !mantissa.contains('.') {
                    out.push_str(".0");
                }
                out.push('e');
                if !exp.starts_with(['-', '+']) {
                    out.push('+');
                }
                out.push_str(exp);
            }
            None => {
                out.push_str(&text);
                if !text.contains('.') {
                    out.push_str(".0");
                }
            }
        }
    } else {
        let _ = write!(out, "{n}");
    }
}

/// A string on one line: plain if safe, else double-quoted.
fn write_string_inline(out: &mut String, s: &str) {
    if is_plain_safe(s) {
        out.push_str(s);
    } else {
        write_double_quoted(out, s);
    }
}

/// Can `s` be written as a plain scalar (block context) and read back as the same string?
fn is_plain_safe(s: &str) -> bool {
    let b = s.as_bytes();
    let (Some(&first), Some(&last)) = (b.first(), b.last()) else {
        return false;
    };
    match first {
        b' ' | b'\t' | b'?' | b':' | b',' | b'[' | b']' | b'{' | b'}' | b'#' | b'&' | b'*'
        | b'!' | b'|' | b'>' | b'\'' | b'"' | b'%' | b'@' | b'`' => return false,
        b'-' if matches!(b.get(1), None | Some(b' ' | b'\t')) => return false,
        _ => {}
    }
    if last == b' ' || last == b':' {
        return false;
    }
    let mut ascii = true;
    let mut prev = 0u8;
    for (i, &c) in b.iter().enumerate() {
        if c < 0x20 || c == 0x7f {
            return false;
        }
        if (c == b':' && b.get(i + 1) == Some(&b' ')) || (c == b'#' && prev == b' ') {
            return false;
        }
        ascii &= c < 0x80;
        prev = c;
    }
    if !ascii && !s.chars().all(printable_raw) {
        return false;
    }
    if b.starts_with(b"---") || b.starts_with(b"...") {
        return false;
    }
    !is_ambiguous_plain(b)
}

/// Characters at or above U+0080 that may appear unescaped. C1 controls (U+0085 is a line break
/// in YAML 1.1), the line and paragraph separators, the BOM and the two non-characters are not.
fn printable_raw(c: char) -> bool {
    !matches!(
        c,
        '\u{80}'..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
    )
}

fn write_double_quoted(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let escape: &str = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\0' => "\\0",
            '\u{7}' => "\\a",
            '\u{8}' => "\\b",
            '\t' => "\\t",
            '\n' => "\\n",
            '\u{b}' => "\\v",
            '\u{c}' => "\\f",
            '\r' => "\\r",
            '\u{1b}' => "\\e",
            '\u{85}' => "\\N",
            '\u{2028}' => "\\L",
            '\u{2029}' => "\\P",
            '\u{feff}' => "\\uFEFF",
            '\u{fffe}' => "\\uFFFE",
            '\u{ffff}' => "\\uFFFF",
            '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => {
                out.push_str(&s[start..i]);
                let _ = write!(out, "\\x{:02X}", u32::from(c));
                start = i + c.len_utf8();
                continue;
            }
            _ => continue,
        };
        out.push_str(&s[start..i]);
        out.push_str(escape);
        start = i + c.len_utf8();
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Multi-line strings a literal block scalar shows exactly.
fn is_literal_candidate(s: &str) -> bool {
    let b = s.as_bytes();
    if !b.contains(&b'\n') || matches!(b.first(), None | Some(b' ' | b'\t' | b'\n')) {
        return false;
    }
    let mut ascii = true;
    for &c in b {
        if (c < 0x20 && c != b'\n' && c != b'\t') || c == 0x7f {
            return false;
        }
        ascii &= c < 0x80;
    }
    ascii || s.chars().all(printable_raw)
}

/// `|`, `|-` or `|+` and the lines, each indented by `indent` (empty lines stay empty).
fn write_literal(out: &mut String, s: &str, indent: usize) {
    let body = s.trim_end_matches('\n');
    let trailing = s.len() - body.len();
    out.push_str(match trailing {
        0 => "|-\n",
        1 => "|\n",
        _ => "|+\n",
    });
    out.reserve(body.len() + indent * 4);
    for line in body.split('\n') {
        if !line.is_empty() {
            push_indent(out, indent);
            out.push_str(line);
        }
        out.push('\n');
    }
    for _ in 1..trailing {
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kubernetes_object_layout() {
        let v = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": {}, "annotations": {"a": "1"}},
            "spec": {
                "replicas": 3,
                "template": {"spec": {"containers": [
                    {"name": "app", "args": ["--port=8080", "-v"], "ports": [{"containerPort": 80}], "env": []}
                ]}},
                "matrix": [[1, 2], [], {}],
            },
        });
        let want = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {}
  annotations:
    a: \"1\"
spec:
  replicas: 3
  template:
    spec:
      containers:
      - name: app
        args:
        - --port=8080
        - -v
        ports:
        - containerPort: 80
        env: []
  matrix:
  - - 1
    - 2
  - []
  - {}
";
        assert_eq!(to_yaml_string(&v), want);
    }

    #[test]
    fn top_level_scalars_and_empties() {
        assert_eq!(to_yaml_string(&json!(null)), "null\n");
        assert_eq!(to_yaml_string(&json!({})), "{}\n");
        assert_eq!(to_yaml_string(&json!([])), "[]\n");
        assert_eq!(to_yaml_string(&json!("x")), "x\n");
        assert_eq!(to_yaml_string(&json!("---")), "\"---\"\n");
        assert_eq!(to_yaml_string(&json!("a\nb")), "|-\n  a\n  b\n");
        assert_eq!(
            to_yaml_string(&json!([true, false, -3, 18_446_744_073_709_551_615_u64])),
            "- true\n- false\n- -3\n- 18446744073709551615\n"
        );
    }

    #[test]
    fn floats_read_back_as_floats() {
        let cases = [
            (1.0, "1.0"),
            (-0.5, "-0.5"),
            (1e16, "1.0e+16"),
            (1.5e-7, "1.5e-7"),
            (1e300, "1.0e+300"),
            (-0.0, "-0.0"),
            (123_456.0, "123456.0"),
        ];
        for (f, want) in cases {
            let mut out = String::new();
            write_number(&mut out, &Number::from_f64(f).unwrap());
            assert_eq!(out, want, "{f}");
        }
    }

    #[test]
    fn strings_other_readers_would_retype_are_quoted() {
        for s in [
            "yes",
            "No",
            "on",
            "OFF",
            "y",
            "n",
            "true",
            "FALSE",
            "~",
            "null",
            "",
            "0755",
            "0o17",
            "0x1F",
            "0b1",
            "1e3",
            "+1",
            "-1",
            ".5",
            "1_000",
            "1:20",
            "2024-01-01",
            "2001-12-14 21:59:43.10 -5",
            "1.2.3",
            ".inf",
            "-.inf",
            ".NaN",
            "<<",
            "=",
            "08",
        ] {
            assert!(!is_plain_safe(s), "{s:?} must be quoted");
        }
    }

    #[test]
    fn strings_with_indicators_or_structure_are_quoted() {
        for s in [
            "- x",
            "-",
            "?",
            "? x",
            "?x",
            ":",
            ":x",
            ",x",
            "[x",
            "]x",
            "{x",
            "}x",
            "#x",
            "&x",
            "*x",
            "!x",
            "|x",
            ">x",
            "'x",
            "\"x",
            "%x",
            "@x",
            "`x",
            "a: b",
            "a #b",
            "a:",
            " x",
            "x ",
            "\tx",
            "a\tb",
            "a\nb",
            "a\rb",
            "\u{0}",
            "\u{7f}",
            "a\u{85}b",
            "a\u{2028}b",
            "a\u{2029}",
            "\u{feff}x",
            "x\u{ffff}",
            "\u{9b}",
            "---x",
            "...",
            "--- x",
        ] {
            assert!(!is_plain_safe(s), "{s:?} must be quoted");
        }
    }

    #[test]
    fn ordinary_strings_stay_plain() {
        for s in [
            "web",
            "nginx:1.25",
            "http://example.com/a#frag",
            "a:b",
            "a#b",
            "--port=8080",
            "-v",
            "--",
            "1Gi",
            "500m",
            "v1.2.3",
            "app.kubernetes.io/name",
            "日本語",
            "héllo wörld",
            "a, b",
            "it's",
            "say \"hi\"",
            "x{{ .Values }}",
            "x{a}",
            "100%",
            "a - b",
            "C:\\path",
        ] {
            assert!(is_plain_safe(s), "{s:?} can be plain");
        }
    }

    #[test]
    fn double_quoting_escapes() {
        let mut out = String::new();
        write_double_quoted(
            &mut out,
            "a\"b\\c\n\t\r\u{0}\u{1}\u{7f}\u{85}\u{9b}\u{2028}\u{2029}\u{feff}\u{ffff}é",
        );
        assert_eq!(out, r#""a\"b\\c\n\t\r\0\x01\x7F\N\x9B\L\P\uFEFF\uFFFFé""#);
    }

    #[test]
    fn literal_block_chomping() {
        assert_eq!(to_yaml_string(&json!({"k": "a\nb"})), "k: |-\n  a\n  b\n");
        assert_eq!(to_yaml_string(&json!({"k": "a\nb\n"})), "k: |\n  a\n  b\n");
        assert_eq!(
            to_yaml_string(&json!({"k": "a\n\nb\n\n\n", "z": 1})),
            "k: |+\n  a\n\n  b\n\n\nz: 1\n"
        );
        assert_eq!(to_yaml_string(&json!(["a\n b\n"])), "- |\n  a\n   b\n");
        assert_eq!(
            to_yaml_string(&json!({"m": {"k": "x\ny"}})),
            "m:\n  k: |-\n    x\n    y\n"
        );
    }

    #[test]
    fn strings_a_block_scalar_cannot_show_are_double_quoted() {
        assert_eq!(
            to_yaml_string(&json!({"k": " lead\nx"})),
            "k: \" lead\\nx\"\n"
        );
        assert_eq!(to_yaml_string(&json!({"k": "\nx"})), "k: \"\\nx\"\n");
        assert_eq!(to_yaml_string(&json!({"k": "\n"})), "k: \"\\n\"\n");
        assert_eq!(to_yaml_string(&json!({"k": "a\r\nb"})), "k: \"a\\r\\nb\"\n");
        assert_eq!(
            to_yaml_string(&json!({"k": "a\n\u{1}"})),
            "k: \"a\\n\\x01\"\n"
        );
    }

    #[test]
    fn keys_are_quoted_by_the_same_rules_and_never_blocks() {
        let v = json!({"yes": 1, "1": 2, "a: b": 3, "x\ny": 4, "<<": 5, "": 6, "ok": 7});
        assert_eq!(
            to_yaml_string(&v),
            "\"yes\": 1\n\"1\": 2\n\"a: b\": 3\n\"x\\ny\": 4\n\"<<\": 5\n\"\": 6\nok: 7\n"
        );
    }

    #[test]
    fn very_long_keys_use_the_explicit_form() {
        let key = "k".repeat(MAX_IMPLICIT_KEY + 1);
        let out = to_yaml_string(&json!({ key.clone(): {"a": 1}, "b": [1] }));
        assert_eq!(out, format!("? {key}\n: a: 1\nb:\n- 1\n"));
    }
}
