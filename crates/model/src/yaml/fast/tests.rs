//! The fast reader against the full reader: whatever the fast reader accepts, the full reader
//! reads the same way; whatever the full reader refuses, the fast reader declines.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use serde_json::{Value, json};

use super::{Field, Shape, read_document, scan_document};
use crate::yaml::parse::parse_full;
use crate::yaml::split_stream;

/// How the fast reader did on one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Accepted (and agreed with the full reader).
    Read,
    Declined,
}

/// Checks one document (the text must be one chunk of `split_stream`): the fast build and the
/// scan agree with the full reader. Returns whether the fast reader took it.
fn agree(text: &str) -> Result<Outcome, String> {
    let docs = split_stream(text);
    if docs.len() != 1 {
        return Err(format!("not one document: {text:?}"));
    }
    let doc = &docs[0];
    let full = parse_full(doc);
    let fast = read_document(doc.text);
    let scan = scan_document(doc);
    if let Ok(v) = &fast {
        match &full {
            Ok(f) if f == v => {}
            _ => {
                return Err(format!(
                    "fast read {v:?}, full read {full:?}\n--- text\n{text}"
                ));
            }
        }
    }
    match (&scan, &full) {
        (Shape::Unknown, _) | (Shape::Empty, Ok(None)) => {}
        (Shape::Mapping(h), Ok(Some(Value::Object(m)))) => {
            let field = |v: Option<&Value>| match v {
                None => Field::Absent,
                Some(Value::String(s)) => Field::Str(s.clone()),
                Some(_) => Field::Other,
            };
            let meta = m.get("metadata").and_then(Value::as_object);
            let want = (
                field(m.get("apiVersion")),
                field(m.get("kind")),
                field(meta.and_then(|m| m.get("name"))),
                field(meta.and_then(|m| m.get("namespace"))),
            );
            let got = (
                h.api_version.clone(),
                h.kind.clone(),
                h.name.clone(),
                h.namespace.clone(),
            );
            if want != got {
                return Err(format!(
                    "scan header {got:?}, object has {want:?}\n--- text\n{text}"
                ));
            }
        }
        _ => {
            return Err(format!(
                "scan said {scan:?}, full read {full:?}\n--- text\n{text}"
            ));
        }
    }
    // The two modes share their code: they take the same documents (a scan may leave a
    // document with an unusual `metadata` to the full reader).
    match (&scan, &fast) {
        (Shape::Mapping(_), Ok(Some(_))) | (Shape::Empty, Ok(None)) | (Shape::Unknown, Err(_)) => {}
        (Shape::Unknown, Ok(Some(v))) if v.get("metadata").is_some() => {}
        _ => {
            return Err(format!(
                "scan said {scan:?}, fast build {fast:?}\n--- text\n{text}"
            ));
        }
    }
    Ok(if fast.is_ok() {
        Outcome::Read
    } else {
        Outcome::Declined
    })
}

#[track_caller]
fn read(text: &str) -> Value {
    assert_eq!(
        agree(text),
        Ok(Outcome::Read),
        "the fast reader should take:\n{text}"
    );
    read_document(text).unwrap().unwrap()
}

#[track_caller]
fn declined(text: &str) {
    assert_eq!(
        agree(text),
        Ok(Outcome::Declined),
        "the fast reader should decline:\n{text}"
    );
}

#[test]
fn manifests_as_helm_writes_them() {
    let v = read(
        "---\n# Source: app/templates/deploy.yaml\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels:\n    app.kubernetes.io/name: web\n    \"quoted\": 'it''s'\nspec:\n  replicas: 2\n  template:\n    spec:\n      containers:\n        - name: web\n          image: \"nginx:1.27\"\n          args: [\"--port\", \"8080\", -v]\n          ports:\n          - containerPort: 80\n            protocol: TCP\n          securityContext:\n            capabilities:\n              drop: [\"ALL\"]\n          resources: {}\n      volumes:\n      - name: tmp\n        emptyDir: {}\n",
    );
    assert_eq!(
        v["spec"]["template"]["spec"]["containers"][0]["args"],
        json!(["--port", "8080", "-v"])
    );
    assert_eq!(v["metadata"]["labels"]["quoted"], json!("it's"));
    assert_eq!(
        v["spec"]["template"]["spec"]["volumes"][0]["emptyDir"],
        json!({})
    );
}

#[test]
fn yaml_11_scalars_resolve_as_the_full_reader_resolves_them() {
    let v = read(
        "a: yes\nb: 0755\nc: 1_000\nd: ~\ne: 2024-01-01\nf: 1e3\ng: -1\nh: '0755'\ni: 0x1F\nj: off\nk: -.5\nl: 12:30\n",
    );
    assert_eq!(
        v,
        json!({"a": true, "b": 493, "c": 1000, "d": null, "e": "2024-01-01", "f": 1000.0, "g": -1, "h": "0755", "i": 31, "j": false, "k": -0.5, "l": "12:30"})
    );
    // Keys become strings the way Go converts them.
    let v = read("yes: 1\n1: 2\n1.5: 3\nnull_: 4\n");
    assert_eq!(v, json!({"true": 1, "1": 2, "1.5": 3, "null_": 4}));
}

#[test]
fn folded_plain_and_quoted_scalars() {
    let v = read(
        "description: Minimum number of seconds for which a newly created pod\n  should be ready\n\n  without crashing.\nq: 'dataSource field can be used\n  to specify either: * An existing\n  snapshot'\ndq: \"a \\\"b\\\"\\n\n   c\\t \"\n",
    );
    assert_eq!(
        v["description"],
        json!(
            "Minimum number of seconds for which a newly created pod should be ready\nwithout crashing."
        )
    );
    assert_eq!(
        v["q"],
        json!("dataSource field can be used to specify either: * An existing snapshot")
    );
    assert_eq!(v["dq"], json!("a \"b\"\n c\t "));
}

#[test]
fn literal_block_scalars() {
    let v = read(
        "data:\n  a.json: |-\n    {\n      \"x\": 1\n\n    }\n  b: |\n    line\n     more # not a comment\n\n  c: x\n",
    );
    assert_eq!(
        v["data"],
        json!({"a.json": "{\n  \"x\": 1\n\n}", "b": "line\n more # not a comment\n", "c": "x"})
    );
    let v = read("a: |\n  last");
    assert_eq!(
        v["a"],
        json!("last"),
        "no line feed at the end of the input"
    );
}

#[test]
fn sequences_level_with_their_key_and_compact_mappings() {
    let v = read("a:\n- x\n- k: 1\n  z: 2\n-\n  w: 3\n- # c\n  v\nb:\n  - p\n  -\nc:\n");
    assert_eq!(
        v,
        json!({"a": ["x", {"k": 1, "z": 2}, {"w": 3}, "v"], "b": ["p", null], "c": null})
    );
    // YAML 1.1: `y` is a boolean, also as a key.
    assert_eq!(read("a:\n- y: 1\n"), json!({"a": [{"true": 1}]}));
}

#[test]
fn documents_without_a_node() {
    for text in [
        "---\n",
        "# only\n\n",
        "--- # Source: x.yaml\n# c\n",
        "---\n...\n# after\n",
    ] {
        assert_eq!(agree(text), Ok(Outcome::Read), "{text:?}");
        assert_eq!(read_document(text), Ok(None));
    }
}

#[test]
fn what_the_fast_reader_leaves_to_the_full_reader() {
    for text in [
        "a: &x 1\nb: *x\n",
        "a: !!str 1\n",
        "? a\n: b\n",
        "<<: {a: 1}\n",
        "a: >\n  folded\n",
        "a: |+\n  keep\n\n",
        "a: |2\n   x\n",
        "a: [1,\n  2]\n",
        "a:\tb\n",
        "a: b\r\n",
        "\u{feff}a: b\n",
        "a: \"x\\\n  y\"\n",
        "%YAML 1.1\n---\na: b\n",
        "--- a: b\n",
        "- a\n",
        "just text\n",
        "a: b\n  c: d\n",
        "a: x: y\n",
        "a: 1\na: 2\n",
        "a: 1\n\"a\": 2\n",
        "yes: 1\ntrue: 2\n",
        "a: .inf\n",
        "a: [.nan]\n",
        "~: 1\n",
        "a: \"\\ud800\"\n",
        "a: 'unterminated\n",
        "a: [1, 2,]\n",
        "a: \u{85}b\n",
        "a: b # c\n  more\n",
    ] {
        declined(text);
    }
}

#[test]
fn header_fields() {
    let docs = split_stream(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: \"cfg\"\n  namespace: 7\ndata: {}\n",
    );
    let Shape::Mapping(h) = scan_document(&docs[0]) else {
        panic!()
    };
    assert_eq!(
        (h.api_version, h.kind, h.name, h.namespace),
        (
            Field::Str("v1".into()),
            Field::Str("ConfigMap".into()),
            Field::Str("cfg".into()),
            Field::Other
        )
    );
    // `metadata` in flow style: left to the full reader, which finds the name.
    let docs = split_stream("kind: ConfigMap\nmetadata: {name: x}\n");
    assert_eq!(scan_document(&docs[0]), Shape::Unknown);
    let docs = split_stream("kind: true\n");
    let Shape::Mapping(h) = scan_document(&docs[0]) else {
        panic!()
    };
    assert_eq!((h.kind, h.name), (Field::Other, Field::Absent));
}

// ---------------------------------------------------------------------------------------------
// Generated documents

/// Words of plain scalars. `supported`: only what the fast reader promises to read (words that
/// cannot start a node of another kind, values JSON can hold).
fn plain_word(supported: bool) -> BoxedStrategy<String> {
    let safe = vec![
        "yes",
        "No",
        "on",
        "OFF",
        "~",
        "null",
        "NULL",
        "true",
        "0755",
        "0o17",
        "0x1F",
        "1e3",
        "1_000",
        "-1",
        "+1",
        "-.5",
        "1:20",
        "2024-01-01",
        "12:30:45",
        "1.5",
        "08",
        "99999999999999999999",
        "-x",
        "--",
        "a:b",
        "a#b",
        "http://x:80/y?z",
        "é",
        "日本",
        "a'b",
        "a\"b",
        "x]",
        "y}",
        "=",
        "<<x",
    ];
    let odd = vec![
        ".inf", "-.Inf", ".nan", "-", "`tick`", "*star", "&amp", "!bang", "%pct", "@at", "[x",
        "{y", ",z", "a\tb", "<<", "-- x", "#x",
    ];
    let words = if supported {
        safe
    } else {
        safe.into_iter().chain(odd).collect()
    };
    prop_oneof![
        4 => "[a-z][a-z0-9._/-]{0,10}",
        1 => prop::sample::select(words).prop_map(str::to_string),
    ]
    .boxed()
}

fn sentence(supported: bool) -> impl Strategy<Value = String> {
    prop::collection::vec(plain_word(supported), 1..8).prop_map(|w| w.join(" "))
}

#[derive(Debug, Clone)]
enum Node {
    /// Plain words, folded over lines before the words at these positions.
    Plain(Vec<String>, Vec<usize>),
    /// Single-quoted text (quotes doubled when written), and whether to fold it over lines.
    Single(String, bool),
    /// Double-quoted text as written (escapes included), and whether to fold it over lines.
    Double(String, bool),
    Literal(Vec<String>, &'static str),
    Flow(String),
    Map(Vec<(String, Node)>),
    Seq(Vec<Node>, bool),
    Null,
}

fn key(supported: bool) -> BoxedStrategy<String> {
    let safe = vec![
        "apiVersion",
        "kind",
        "metadata",
        "name",
        "namespace",
        "yes",
        "1",
        "1.5",
        "\"q\"",
        "'s'",
        "\"e\\u00e9\"",
        "'it''s'",
        "a b",
        "a:b",
        "09",
        "0x10",
        "\"\"",
    ];
    let odd = vec![
        "~",
        "null",
        "<<",
        "-k",
        "?k",
        "[k]",
        "trailing ",
        "99999999999999999999",
    ];
    let words = if supported {
        safe
    } else {
        safe.into_iter().chain(odd).collect()
    };
    prop_oneof![
        6 => "[a-z][a-zA-Z0-9._/-]{0,12}",
        1 => prop::sample::select(words).prop_map(str::to_string),
    ]
    .boxed()
}

/// Double-quoted text: characters and escapes (only valid ones when `supported`).
fn double_text(supported: bool) -> BoxedStrategy<String> {
    let mut escapes = vec![
        "\\n",
        "\\t",
        "\\\"",
        "\\\\",
        "\\x41",
        "\\u00e9",
        "\\U0001F600",
        "\\/",
        "\\ ",
        "\\0",
        "\\N",
        "\\_",
    ];
    if !supported {
        escapes.extend(["\\q", "\\x4", "\\ud800", "\\", "\""]);
    }
    prop::collection::vec(prop_oneof![3 => "[ -!#-\\[\\]-~é]{0,6}", 1 => prop::sample::select(escapes).prop_map(str::to_string)], 0..8)
        .prop_map(|parts| parts.concat())
        .boxed()
}

fn literal(supported: bool) -> BoxedStrategy<Node> {
    if supported {
        (
            "[!-~][ -~]{0,20}",
            prop::collection::vec(
                prop_oneof![
                    "[!-~][ -~]{0,20}",
                    Just(String::new()),
                    "  [ -~]{0,10}[!-~]"
                ],
                0..5,
            ),
            prop::sample::select(vec!["|", "|-"]),
        )
            .prop_map(|(first, rest, h)| {
                Node::Literal(std::iter::once(first).chain(rest).collect(), h)
            })
            .boxed()
    } else {
        (
            prop::collection::vec("[ -~]{0,20}", 1..5),
            prop::sample::select(vec!["|", "|-", "|+", ">", ">-", "|2", "|-2", "| x"]),
        )
            .prop_map(|(l, h)| Node::Literal(l, h))
            .boxed()
    }
}

fn leaf(supported: bool) -> BoxedStrategy<Node> {
    let mut flows = vec![
        "[]",
        "{}",
        "[\"ALL\"]",
        "[a, 'b', \"c\", 1, yes]",
        "{a: 1, \"b\": [x, {c: d}]}",
        "[-1, -x]",
    ];
    if !supported {
        flows.extend([
            "[a: b]",
            "{a}",
            "{a: 1, a: 2}",
            "[x, ]",
            "[.inf]",
            "[&a x]",
            "[a,\n b]",
            "{a: }",
        ]);
    }
    prop_oneof![
        4 => (prop::collection::vec(plain_word(supported), 1..10), prop::collection::vec(1usize..10, 0..3)).prop_map(|(w, b)| Node::Plain(w, b)),
        2 => (sentence(supported), any::<bool>()).prop_map(|(s, wrap)| Node::Single(s, wrap)),
        2 => (double_text(supported), any::<bool>()).prop_map(|(s, wrap)| Node::Double(s, wrap)),
        2 => literal(supported),
        1 => prop::sample::select(flows).prop_map(|s| Node::Flow(s.to_string())),
        1 => Just(Node::Null),
    ]
    .boxed()
}

fn node(supported: bool) -> BoxedStrategy<Node> {
    leaf(supported)
        .prop_recursive(4, 40, 6, move |inner| {
            prop_oneof![
                3 => prop::collection::vec((key(supported), inner.clone()), 1..6).prop_map(Node::Map),
                2 => (prop::collection::vec(inner, 1..5), any::<bool>()).prop_map(|(items, indented)| Node::Seq(items, indented)),
            ]
        })
        .boxed()
}

/// Writes nodes as block YAML, with cosmetic choices (comments, blank lines) from a seed.
struct Writer {
    out: String,
    seed: u64,
}

impl Writer {
    fn roll(&mut self, n: u64) -> bool {
        self.seed = self
            .seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.seed >> 33).is_multiple_of(n)
    }

    fn pad(&mut self, n: usize) {
        self.out.extend(std::iter::repeat_n(' ', n));
    }

    fn extras(&mut self, indent: usize) {
        if self.roll(9) {
            self.out.push('\n');
        }
        if self.roll(9) {
            self.pad(indent);
            self.out.push_str("# a comment: - [ x\n");
        }
    }

    fn trailing_comment(&mut self) {
        if self.roll(7) {
            self.out.push_str(" # trailing");
        }
    }

    /// A value after `key:` or `- ` (the text so far ends there), in a collection at `indent`.
    fn value(&mut self, v: &Node, indent: usize, in_map: bool) {
        match v {
            Node::Null => {
                self.trailing_comment();
                self.out.push('\n');
            }
            Node::Plain(words, breaks) => {
                self.out.push(' ');
                for (i, w) in words.iter().enumerate() {
                    if i > 0 {
                        if breaks.contains(&i) {
                            self.out.push('\n');
                            if self.roll(4) {
                                self.out.push('\n');
                            }
                            self.pad(indent + 2);
                        } else {
                            self.out.push(' ');
                        }
                    }
                    self.out.push_str(w);
                }
                self.trailing_comment();
                self.out.push('\n');
            }
            Node::Single(s, wrap) => {
                self.out.push_str(" '");
                let text = s.replace('\'', "''");
                self.wrapped(&text, *wrap, indent);
                self.out.push('\'');
                self.trailing_comment();
                self.out.push('\n');
            }
            Node::Double(s, wrap) => {
                self.out.push_str(" \"");
                self.wrapped(s, *wrap, indent);
                self.out.push('"');
                self.trailing_comment();
                self.out.push('\n');
            }
            Node::Literal(lines, header) => {
                self.out.push(' ');
                self.out.push_str(header);
                self.trailing_comment();
                self.out.push('\n');
                for l in lines {
                    if !l.is_empty() {
                        self.pad(indent + 2);
                    }
                    self.out.push_str(l);
                    self.out.push('\n');
                }
            }
            Node::Flow(s) => {
                self.out.push(' ');
                self.out.push_str(s);
                self.trailing_comment();
                self.out.push('\n');
            }
            Node::Map(entries) => {
                self.trailing_comment();
                self.out.push('\n');
                self.map(entries, indent + 2);
            }
            Node::Seq(items, indented) => {
                self.trailing_comment();
                self.out.push('\n');
                let at = if *indented || !in_map {
                    indent + 2
                } else {
                    indent
                };
                self.seq(items, at);
            }
        }
    }

    fn wrapped(&mut self, text: &str, wrap: bool, indent: usize) {
        let mut escaped = false;
        for (i, part) in text.split(' ').enumerate() {
            if i > 0 {
                // Never between a backslash and the space it escapes.
                if wrap && !escaped && self.roll(3) {
                    self.out.push('\n');
                    let extra = usize::from(self.roll(2));
                    self.pad(indent + 1 + extra);
                } else {
                    self.out.push(' ');
                }
            }
            self.out.push_str(part);
            escaped = part.bytes().rev().take_while(|&c| c == b'\\').count() % 2 == 1;
        }
    }

    fn map(&mut self, entries: &[(String, Node)], indent: usize) {
        for (k, v) in entries {
            self.extras(indent);
            self.pad(indent);
            self.out.push_str(k);
            self.out.push(':');
            self.value(v, indent, true);
        }
    }

    fn seq(&mut self, items: &[Node], indent: usize) {
        for item in items {
            self.extras(indent);
            self.pad(indent);
            self.out.push('-');
            match item {
                Node::Map(entries) if self.roll(2) => {
                    // Compact: the first key on the dash's line.
                    let (k, v) = &entries[0];
                    self.out.push(' ');
                    self.out.push_str(k);
                    self.out.push(':');
                    self.value(v, indent + 2, true);
                    self.map(&entries[1..], indent + 2);
                }
                _ => self.value(item, indent, false),
            }
        }
    }
}

fn document(supported: bool) -> impl Strategy<Value = String> {
    (
        prop::collection::vec((key(supported), node(supported)), 1..6),
        any::<u64>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(move |(mut entries, seed, marker, end)| {
            if supported {
                unique_keys(&mut entries);
            }
            let mut w = Writer {
                out: String::new(),
                seed,
            };
            if marker {
                w.out.push_str("---\n# Source: chart/templates/x.yaml\n");
            }
            w.map(&entries, 0);
            if end {
                w.out.push_str("...\n");
            }
            w.out
        })
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete(prop::sample::Index),
    Insert(prop::sample::Index, char),
    Indent(prop::sample::Index, usize),
    Dedent(prop::sample::Index),
    DuplicateLine(prop::sample::Index),
    Truncate(prop::sample::Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    use prop::sample::Index;
    prop_oneof![
        any::<Index>().prop_map(Mutation::Delete),
        (
            any::<Index>(),
            prop::sample::select(vec![
                ':', ' ', '#', '-', '\'', '"', '\\', '[', ']', '{', '}', ',', '|', '>', '\t', '\n',
                '&', '*', '!', '?', 'x', '\r', '\u{85}'
            ])
        )
            .prop_map(|(i, c)| Mutation::Insert(i, c)),
        (any::<Index>(), 1usize..4).prop_map(|(i, n)| Mutation::Indent(i, n)),
        any::<Index>().prop_map(Mutation::Dedent),
        any::<Index>().prop_map(Mutation::DuplicateLine),
        any::<Index>().prop_map(Mutation::Truncate),
    ]
}

fn boundary(s: &str, i: &prop::sample::Index) -> usize {
    let mut at = i.index(s.len() + 1);
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn line_start(s: &str, i: &prop::sample::Index) -> usize {
    let at = boundary(s, i);
    s[..at].rfind('\n').map_or(0, |p| p + 1)
}

fn mutate(mut s: String, m: &Mutation) -> String {
    match m {
        Mutation::Delete(i) => {
            let at = boundary(&s, i);
            if at < s.len() {
                s.remove(at);
            }
        }
        Mutation::Insert(i, c) => {
            let at = boundary(&s, i);
            s.insert(at, *c);
        }
        Mutation::Indent(i, n) => {
            let at = line_start(&s, i);
            s.insert_str(at, &" ".repeat(*n));
        }
        Mutation::Dedent(i) => {
            let at = line_start(&s, i);
            if s[at..].starts_with(' ') {
                s.remove(at);
            }
        }
        Mutation::DuplicateLine(i) => {
            let at = line_start(&s, i);
            let end = s[at..].find('\n').map_or(s.len(), |p| at + p + 1);
            let line = s[at..end].to_string();
            s.insert_str(end, &line);
        }
        Mutation::Truncate(i) => {
            let at = boundary(&s, i);
            s.truncate(at);
        }
    }
    s
}

/// One chunk of the text as `split_stream` cuts it (mutations may add `---` lines).
fn first_chunk(text: &str) -> String {
    split_stream(text)
        .first()
        .map(|d| d.text.to_string())
        .unwrap_or_default()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    #[test]
    fn fast_agrees_on_generated_documents(text in document(false)) {
        agree(&first_chunk(&text)).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn fast_agrees_on_mutated_documents(text in document(false), ms in prop::collection::vec(mutation(), 1..4)) {
        let text = ms.iter().fold(text, mutate);
        let chunk = first_chunk(&text);
        if !chunk.is_empty() {
            agree(&chunk).map_err(TestCaseError::fail)?;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Documents made only of what the fast reader takes: it takes every one of them.
    #[test]
    fn fast_takes_every_supported_document(text in document(true)) {
        let chunk = first_chunk(&text);
        prop_assert_eq!(agree(&chunk).map_err(TestCaseError::fail)?, Outcome::Read, "declined:\n{}", chunk);
    }
}

/// Keys of one mapping that the readers would see as one (`yes` and `true`) made distinct,
/// recursively: a supported document has no duplicate keys.
fn unique_keys(entries: &mut Vec<(String, Node)>) {
    let mut seen = std::collections::HashSet::new();
    entries.retain(|(k, _)| {
        let text = format!("{k}: 1\n");
        let docs = split_stream(&text);
        let name = match parse_full(&docs[0]) {
            Ok(Some(Value::Object(m))) => m.keys().next().cloned().unwrap_or_default(),
            _ => k.clone(),
        };
        seen.insert(name)
    });
    for (_, v) in entries.iter_mut() {
        unique_in(v);
    }
}

fn unique_in(v: &mut Node) {
    match v {
        Node::Map(entries) => unique_keys(entries),
        Node::Seq(items, _) => items.iter_mut().for_each(unique_in),
        _ => {}
    }
}

/// Every YAML file of the repository that is not a template, and the benchmark streams when
/// they have been generated: document by document, the two readers agree.
#[test]
fn fast_agrees_on_the_repository_yaml() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    collect(&root, &mut files);
    // The benchmark's rendered releases (tests/bench/gen_input.sh), when present.
    for chart in ["demo", "bench"] {
        let t = root.join("target/bench").join(chart).join("template.yaml");
        if t.exists() {
            files.push(t);
        }
    }
    let (mut docs, mut taken) = (0, 0);
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        for d in split_stream(&text) {
            docs += 1;
            match agree(d.text) {
                Ok(Outcome::Read) => taken += 1,
                Ok(Outcome::Declined) => {}
                Err(e) => panic!("{}: document {}: {e}", f.display(), d.index),
            }
        }
    }
    assert!(
        docs > 100 && taken * 10 >= docs * 8,
        "the fast reader took {taken} of {docs} documents"
    );
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if p.is_dir() {
            if !matches!(name, "target" | ".git" | "templates" | "node_modules") {
                collect(&p, out);
            }
        } else if name.ends_with(".yaml") || name.ends_with(".yml") {
            out.push(p);
        }
    }
}
