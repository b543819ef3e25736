//! Cross-module properties: emit → parse round trips, stream round trips, and no panics.

use proptest::prelude::*;
use serde_json::{Map, Number, Value, json};

use super::{parse_document, split_stream, to_yaml_string};

/// Strings that trip naive emitters, mixed with arbitrary text.
fn nasty_string() -> impl Strategy<Value = String> {
    let fixed = prop::sample::select(vec![
        "yes",
        "no",
        "on",
        "off",
        "y",
        "n",
        "Y",
        "N",
        "true",
        "False",
        "NULL",
        "null",
        "~",
        "",
        " ",
        " x",
        "x ",
        "0755",
        "0o17",
        "0x1F",
        "0b101",
        "1e3",
        "1E+3",
        ".5",
        "+1",
        "-1",
        "1_000",
        "08",
        "1:20",
        "2024-01-01",
        "2001-12-14t21:59:43.10-05:00",
        "1.2.3",
        ".inf",
        "-.Inf",
        ".nan",
        "<<",
        "=",
        "a: b",
        "a:",
        "#x",
        "a #b",
        "- x",
        "-",
        "--",
        "--x",
        "? x",
        ":",
        "---",
        "...",
        "--- x",
        "... x",
        "%YAML",
        "@x",
        "`x",
        "!x",
        "&a",
        "*a",
        "|",
        ">",
        "'",
        "\"",
        "\\",
        "\n",
        "\n\n",
        "a\nb",
        "a\nb\n",
        "a\nb\n\n",
        "\na",
        " a\nb",
        "a\n b",
        "a\n\n",
        "\t",
        "a\tb",
        "\ta\nb",
        "a\r\nb",
        "\r",
        "\u{85}",
        "\u{2028}",
        "\u{feff}",
        "\u{ffff}",
        "é",
        "日本",
        "😀",
        "a\u{0}b",
        "\u{1b}",
        "{}",
        "[]",
        "{a: 1}",
        "[1, 2]",
        "a,b",
        "#",
        "a\n#b",
        "a\n---\nb",
        "a\n...\n",
        "x\n- y",
        "k: |\n  v",
    ])
    .prop_map(str::to_owned);
    prop_oneof![
        4 => fixed,
        2 => any::<String>(),
        2 => "[ -~\t\n]{0,12}",
        1 => "[a-z0-9 .:#\\-]{0,10}",
        1 => (prop::sample::select(vec!["yes", "0x1F", "1e3", "a: b", "\n", " ", "#", "-"]), "[ -~\n]{0,6}")
            .prop_map(|(a, b)| format!("{a}{b}")),
    ]
}

fn finite_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("finite", |f| f.is_finite()),
        prop::sample::select(vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.5,
            1e16,
            1e-7,
            5e-324,
            f64::MAX,
            f64::MIN_POSITIVE,
            8.0
        ]),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => finite_f64().prop_map(|f| Value::Number(Number::from_f64(f).unwrap())),
        3 => nasty_string().prop_map(Value::String),
    ]
}

fn arb_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((nasty_string(), inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn reparse(yaml: &str) -> Option<Value> {
    let docs = split_stream(yaml);
    assert_eq!(docs.len(), 1, "emitted YAML must be one document:\n{yaml}");
    match parse_document(&docs[0]) {
        Ok(v) => v,
        Err(e) => panic!("emitted YAML does not parse: {e}\n{yaml}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn emitted_yaml_parses_back_to_the_same_value(v in arb_value()) {
        let yaml = to_yaml_string(&v);
        prop_assert_eq!(reparse(&yaml), Some(v), "{}", yaml);
    }

    #[test]
    fn emitted_documents_survive_a_stream_round_trip(values in prop::collection::vec(arb_value(), 1..5)) {
        let mut stream = String::new();
        for v in &values {
            stream.push_str("---\n# Source: chart/templates/t.yaml\n");
            stream.push_str(&to_yaml_string(v));
        }
        let docs = split_stream(&stream);
        prop_assert_eq!(docs.len(), values.len());
        for (doc, v) in docs.iter().zip(&values) {
            prop_assert_eq!(doc.source.as_deref(), Some("chart/templates/t.yaml"));
            prop_assert_eq!(parse_document(doc).unwrap(), Some(v.clone()));
        }
    }

    #[test]
    fn parsing_arbitrary_text_never_panics(text in any::<String>()) {
        for doc in split_stream(&text) {
            let _ = parse_document(&doc);
        }
    }

    #[test]
    fn parsing_mutated_yaml_never_panics(
        v in arb_value(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0..3u8, prop::sample::select(vec![
            "-", ":", " ", "\n", "\t", "#", "'", "\"", "[", "]", "{", "}", "&a", "*a", "!!int ", "<<: ", "|", ">", "---\n",
            "...\n", "%YAML 1.1\n", "?", ",", "\\", "\r", "\u{feff}", "é",
        ])), 1..6),
    ) {
        let mut text = format!("a: &a {{x: 1}}\nb: *a\n---\n{}", to_yaml_string(&v));
        for (at, op, piece) in edits {
            let boundaries: Vec<usize> = (0..=text.len()).filter(|&i| text.is_char_boundary(i)).collect();
            let pos = boundaries[at.index(boundaries.len())];
            match op {
                0 => text.insert_str(pos, piece),
                1 => {
                    if let Some(c) = text[pos..].chars().next() {
                        text.replace_range(pos..pos + c.len_utf8(), "");
                    }
                }
                _ => {
                    if let Some(c) = text[pos..].chars().next() {
                        text.replace_range(pos..pos + c.len_utf8(), piece);
                    }
                }
            }
        }
        let docs = split_stream(&text);
        let joined: String = docs.iter().map(|d| d.text).collect();
        prop_assert_eq!(&joined, &text);
        for doc in &docs {
            if let Err(e) = parse_document(doc) {
                // Errors point into the stream.
                prop_assert!(e.document == doc.index);
                let breaks = text.bytes().filter(|b| *b == b'\n' || *b == b'\r').count();
                prop_assert!(e.line >= doc.line && e.line <= breaks + 2, "{e}");
            }
        }
    }
}

#[test]
fn nasty_strings_round_trip_as_values_and_keys() {
    let strings = [
        "yes",
        "on",
        "0755",
        "1e3",
        "~",
        "2024-01-01",
        "",
        " x",
        "a: b",
        "#x",
        "- x",
        "\n",
        "a\nb\n",
        "日本語 ✓",
        "\t",
        "a\tb",
        "<<",
        "=",
        "1:20",
        "0o17",
        "+1",
        ".5",
        "1_000",
        "0x1F",
        "---",
        "...",
        "a\n\n\n",
        "\u{85}",
        "\u{2028}",
    ];
    let mut map = Map::new();
    for (i, s) in strings.iter().enumerate() {
        map.insert((*s).to_owned(), json!(s));
        map.insert(format!("k{i}"), json!([s, {"nested": s}]));
    }
    let v = Value::Object(map);
    assert_eq!(reparse(&to_yaml_string(&v)), Some(v));
}

#[test]
fn very_long_keys_round_trip() {
    let long = "x".repeat(5000);
    let quoted_long = format!("yes{}", "\n".repeat(600));
    let v =
        json!({ long.clone(): {"a": [1, {"b": 2}]}, quoted_long: [[1], "s\nt"], "short": long });
    assert_eq!(reparse(&to_yaml_string(&v)), Some(v));
}

/// End-to-end sanity on a Helm-sized stream: split, parse, re-emit, re-parse. Throughput is
/// measured by the benchmarks; this checks the pieces agree at volume.
#[test]
fn post_render_pipeline_sanity() {
    let mut stream = String::new();
    for i in 0..300 {
        stream.push_str(&format!(
            "---\n# Source: app/templates/deploy-{i}.yaml\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web-{i}\n  \
             labels: &labels\n    app: web\n    tier: \"0755\"\nspec:\n  replicas: {i}\n  selector:\n    matchLabels: *labels\n  \
             template:\n    metadata:\n      labels:\n        <<: *labels\n        enabled: on\n    spec:\n      containers:\n      \
             - name: app\n        image: nginx:1.25\n        args: [--port=8080, '-v']\n        resources: {{limits: {{cpu: 500m, memory: 1Gi}}}}\n        \
             command:\n        - sh\n        - -c\n        - |\n          echo start\n          exec nginx\n"
        ));
    }
    let docs = split_stream(&stream);
    assert_eq!(docs.len(), 300);
    let mut out = String::with_capacity(stream.len());
    for doc in &docs {
        let v = parse_document(doc).unwrap().unwrap();
        assert_eq!(
            v["spec"]["template"]["metadata"]["labels"]["enabled"],
            json!(true)
        );
        assert_eq!(v["metadata"]["labels"]["tier"], json!("0755"));
        out.push_str("---\n");
        out.push_str(&to_yaml_string(&v));
    }
    assert!(
        out.len() < stream.len() * 2,
        "re-emitted stream is unexpectedly large"
    );
    let again = split_stream(&out);
    assert_eq!(again.len(), docs.len());
    for (a, b) in docs.iter().zip(&again) {
        assert_eq!(parse_document(a).unwrap(), parse_document(b).unwrap());
    }
}
