//! Robustness properties of the Helm post-renderer, on generated input.
//!
//! * Arbitrary input (random bytes and strings, YAML-flavoured character soup, valid manifests
//!   mutated: truncated, duplicated lines and keys, tabs, unbalanced quotes, random `---`,
//!   huge anchors) never panics; whatever it accepts satisfies the output properties below.
//! * The real binary agrees with the library on a few hundred mostly invalid inputs: exit code
//!   2 and nothing on stdout when the library refuses the input, the library's output otherwise.
//! * Valid generated manifests (Deployments, StatefulSets, Jobs, CronJobs, Services, ConfigMaps
//!   with YAML 1.1 traps, unicode, multi-line values, comments, `# Source:` lines, Helm 4's
//!   file-name annotation, hooks) post-render to a stream whose documents all parse, whose
//!   untouched documents are the input's bytes in the input's order, whose changed documents
//!   only gained mesh labels, annotations and probes (selectors, existing labels and probes
//!   unchanged), whose generated NetworkPolicies have unique names and come from non-hook
//!   documents only, and that post-renders to itself.
//! * PyYAML (a YAML 1.1 reader independent of ours) reads the output as the input plus
//!   injections: `tests/tools/yaml11_roundtrip.py --ignore-injected`.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use meshmove_postrender::inject::{JobPolicy, MeshMode};
use meshmove_postrender::{self as postrender, GENERATED_SOURCE, HELM4_FILENAME_ANNOTATION, PostRenderConfig};
use meshmove_model::yaml::{self, RawDocument};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Scalars

/// Strings every reader must give back as the same string, and whether the input may write
/// them plain (true only where YAML 1.1 and 1.2 readers all read the plain text as this string).
const STRINGS: &[(&str, bool)] = &[
    ("web", true),
    ("nginx:1.25", true),
    ("--port=8080", true),
    ("a:b", true),
    ("http://example.com/a#frag", true),
    ("日本語", true),
    ("héllo wörld", true),
    ("emoji 🎉 ok", true),
    ("a, b", true),
    ("it's", true),
    ("100%", true),
    ("C:\\path", true),
    ("say \"hi\"", true),
    ("yes", false),
    ("on", false),
    ("Off", false),
    ("0755", false),
    ("1e3", false),
    ("~", false),
    ("2024-01-01", false),
    ("null", false),
    ("y", false),
    ("n", false),
    ("true", false),
    ("1_000", false),
    ("0x1F", false),
    ("12:30", false),
    ("+1", false),
    (".5", false),
    ("08", false),
    ("0o17", false),
    ("-", false),
    ("- x", false),
    ("a: b", false),
    ("x #y", false),
    ("#x", false),
    ("@x", false),
    ("%x", false),
    ("*x", false),
    ("&x", false),
    ("!x", false),
    ("|x", false),
    (">x", false),
    ("<<", false),
    ("=", false),
    ("---", false),
    ("...", false),
    ("", false),
    (" lead", false),
    ("trail ", false),
    ("tab\there", false),
    ("line one\nline two", false),
    ("line one\nline two\n", false),
    ("para\n\n  indented\nlast\n\n", false),
    ("sep\u{2028}x", false),
    ("bell\u{7}", false),
];

/// Plain scalars that are not strings and that yaml.v2 (Helm) and PyYAML read alike.
const TYPED: &[&str] = &["yes", "No", "on", "OFF", "true", "False", "~", "null", "0755", "0x1F", "1_000", "12", "-3", "1.5", "3.0", "1.0e+3"];

/// Plain scalars the two YAML 1.1 readers disagree on (yaml.v2: bool, float, string, string,
/// float, int, string; PyYAML: string, string, date, int, string, string, int). Only documents
/// the post-renderer never changes (ConfigMaps) hold them, so both readers see the same bytes.
const DISPUTED: &[&str] = &["y", "n", "2024-01-01", "1e3", "08", "0o17", "12:30"];

#[derive(Debug, Clone, Copy)]
enum Quote {
    Plain,
    Single,
    Double,
    Block,
}

/// A string and how the input writes it (falling back to double quotes when the wanted style
/// cannot show it).
#[derive(Debug, Clone)]
struct Text {
    s: String,
    plain_ok: bool,
    quote: Quote,
}

/// A value: a string, a plain typed scalar, or a plain scalar the readers dispute.
#[derive(Debug, Clone)]
enum Atom {
    Str(Text),
    Typed(&'static str),
    Disputed(&'static str),
}

fn quote() -> impl Strategy<Value = Quote> {
    prop_oneof![Just(Quote::Plain), Just(Quote::Single), Just(Quote::Double), Just(Quote::Block)]
}

fn text() -> impl Strategy<Value = Text> {
    (0..STRINGS.len(), quote()).prop_map(|(i, quote)| Text { s: STRINGS[i].0.to_string(), plain_ok: STRINGS[i].1, quote })
}

/// A safe word as a plain string (names, label values that must stay simple).
fn word(s: &str) -> Text {
    Text { s: s.to_string(), plain_ok: true, quote: Quote::Plain }
}

fn atom(disputed: bool) -> BoxedStrategy<Atom> {
    if disputed {
        prop_oneof![
            4 => text().prop_map(Atom::Str),
            2 => (0..TYPED.len()).prop_map(|i| Atom::Typed(TYPED[i])),
            2 => (0..DISPUTED.len()).prop_map(|i| Atom::Disputed(DISPUTED[i])),
        ]
        .boxed()
    } else {
        prop_oneof![4 => text().prop_map(Atom::Str), 2 => (0..TYPED.len()).prop_map(|i| Atom::Typed(TYPED[i]))].boxed()
    }
}

fn double_quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\u{2028}' => out.push_str("\\u2028"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn single_quotable(s: &str) -> bool {
    s.chars().all(|c| c >= ' ' && c != '\u{7f}' && c != '\u{2028}')
}

/// A literal block scalar shows `s` exactly when it has a line break, its first line does not
/// start with a blank and it has no other control characters.
fn block_showable(s: &str) -> bool {
    s.contains('\n')
        && !s.starts_with([' ', '\t', '\n'])
        && s.chars().all(|c| c == '\n' || (c >= ' ' && c != '\u{7f}' && c != '\u{2028}'))
}

// ---------------------------------------------------------------------------------------------
// Documents as YAML text

/// A node of a generated document; scalars are already written out.
#[derive(Debug, Clone)]
enum Node {
    Map(Vec<(String, Node)>),
    Seq(Vec<Node>),
    Scalar(String),
    /// Literal block scalar: header (`|`, `|-`, `|+`) and lines (without indentation).
    Block(&'static str, Vec<String>),
}

impl Text {
    fn node(&self) -> Node {
        match self.quote {
            Quote::Plain if self.plain_ok => Node::Scalar(self.s.clone()),
            Quote::Single if single_quotable(&self.s) => Node::Scalar(format!("'{}'", self.s.replace('\'', "''"))),
            Quote::Block if block_showable(&self.s) => {
                let body = self.s.trim_end_matches('\n');
                let header = match self.s.len() - body.len() {
                    0 => "|-",
                    1 => "|",
                    _ => "|+",
                };
                let mut lines: Vec<String> = body.split('\n').map(str::to_string).collect();
                for _ in 1..self.s.len() - body.len() {
                    lines.push(String::new());
                }
                Node::Block(header, lines)
            }
            _ => Node::Scalar(double_quoted(&self.s)),
        }
    }

    /// As a mapping key: never a block scalar.
    fn key(&self) -> String {
        match self.node() {
            Node::Scalar(s) => s,
            _ => double_quoted(&self.s),
        }
    }
}

impl Atom {
    fn node(&self) -> Node {
        match self {
            Atom::Str(t) => t.node(),
            Atom::Typed(s) | Atom::Disputed(s) => Node::Scalar(s.to_string()),
        }
    }
}

fn scalar(s: impl Into<String>) -> Node {
    Node::Scalar(s.into())
}

fn map(entries: Vec<(&str, Node)>) -> Node {
    Node::Map(entries.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

/// Deterministic cosmetic choices (comments, sequence indentation) from a seed.
struct Layout {
    state: u64,
    seq_indent: bool,
    comments: bool,
}

impl Layout {
    fn new(seed: u64) -> Self {
        let mut l = Layout { state: seed | 1, seq_indent: false, comments: false };
        l.seq_indent = l.chance(2);
        l.comments = l.chance(2);
        l
    }

    fn next(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    /// True with probability 1/n.
    fn chance(&mut self, n: u64) -> bool {
        self.next().is_multiple_of(n)
    }

    fn comment(&mut self) -> &'static str {
        const C: [&str; 4] = ["# a comment", "# key: value in a comment", "#: tricky", "# ünïcode comment ---"];
        C[(self.next() % 4) as usize]
    }

    fn indent(out: &mut String, n: usize) {
        out.extend(std::iter::repeat_n(' ', n));
    }

    fn write_map(&mut self, out: &mut String, entries: &[(String, Node)], indent: usize, first_inline: bool) {
        for (i, (k, v)) in entries.iter().enumerate() {
            if !(i == 0 && first_inline) {
                if self.comments && self.chance(6) {
                    Self::indent(out, indent);
                    out.push_str(self.comment());
                    out.push('\n');
                }
                Self::indent(out, indent);
            }
            out.push_str(k);
            out.push(':');
            self.write_value(out, v, indent);
        }
    }

    /// A value after `key:` (the key at column `indent`).
    fn write_value(&mut self, out: &mut String, v: &Node, indent: usize) {
        match v {
            Node::Scalar(s) => {
                out.push(' ');
                out.push_str(s);
                self.trailing_comment(out);
                out.push('\n');
            }
            Node::Block(header, lines) => {
                out.push(' ');
                out.push_str(header);
                self.trailing_comment(out);
                out.push('\n');
                Self::block_lines(out, lines, indent + 2);
            }
            Node::Map(e) if e.is_empty() => out.push_str(" {}\n"),
            Node::Map(e) => {
                self.trailing_comment(out);
                out.push('\n');
                self.write_map(out, e, indent + 2, false);
            }
            Node::Seq(items) if items.is_empty() => out.push_str(" []\n"),
            Node::Seq(items) => {
                out.push('\n');
                let at = if self.seq_indent { indent + 2 } else { indent };
                self.write_seq(out, items, at);
            }
        }
    }

    fn write_seq(&mut self, out: &mut String, items: &[Node], indent: usize) {
        for item in items {
            Self::indent(out, indent);
            out.push_str("- ");
            match item {
                Node::Scalar(s) => {
                    out.push_str(s);
                    out.push('\n');
                }
                Node::Block(header, lines) => {
                    out.push_str(header);
                    out.push('\n');
                    Self::block_lines(out, lines, indent + 2);
                }
                Node::Map(e) if e.is_empty() => out.push_str("{}\n"),
                Node::Map(e) => self.write_map(out, e, indent + 2, true),
                Node::Seq(_) => unreachable!("generated documents have no nested sequences"),
            }
        }
    }

    fn block_lines(out: &mut String, lines: &[String], indent: usize) {
        for l in lines {
            if !l.is_empty() {
                Self::indent(out, indent);
                out.push_str(l);
            }
            out.push('\n');
        }
    }

    fn trailing_comment(&mut self, out: &mut String) {
        if self.comments && self.chance(8) {
            out.push_str(" # trailing");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Kubernetes objects

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WKind {
    Deployment,
    StatefulSet,
    Job,
    CronJob,
}

#[derive(Debug, Clone)]
struct PortSpec {
    name: Option<&'static str>,
    number: u16,
    protocol: Option<&'static str>,
}

#[derive(Debug, Clone)]
struct ContainerSpec {
    image: Option<&'static str>,
    ports: Vec<PortSpec>,
    readiness: bool,
    liveness_delay: Option<u32>,
    env: Vec<Atom>,
    args: Vec<Text>,
}

/// How the pod template's metadata looks in the input.
#[derive(Debug, Clone)]
enum TemplateMeta {
    Absent,
    /// `metadata:` with annotations only.
    NoLabels,
    /// Selector labels plus the given extra labels (existing `app`, inject opt-out, typed values).
    Labels(Vec<(Text, Atom)>),
}

#[derive(Debug, Clone)]
struct WorkloadSpec {
    kind: WKind,
    template_meta: TemplateMeta,
    containers: Vec<ContainerSpec>,
}

#[derive(Debug, Clone)]
enum Body {
    Workload(WorkloadSpec),
    /// Selects the workload at this position (modulo the workloads of the stream), or nothing.
    Service { target: Option<usize>, ports: Vec<(u16, Option<&'static str>)> },
    ConfigMap(Vec<(Text, Atom)>),
    /// A comment-only document.
    Empty,
}

#[derive(Debug, Clone)]
struct DocSpec {
    word: &'static str,
    body: Body,
    hook: bool,
    labels: Vec<(Text, Text)>,
    annotations: Vec<(Text, Atom)>,
    /// Leave out the release label: the object belongs to no release by its labels.
    unlabelled: bool,
}

#[derive(Debug, Clone)]
struct StreamSpec {
    docs: Vec<DocSpec>,
    /// Two releases (every other object in the second).
    two_releases: bool,
    helm4: bool,
    crlf: bool,
    /// The first document has no `---`.
    bare_first: bool,
    /// Markers written `--- # comment`.
    marker_comments: bool,
    /// Some documents end with `...`.
    end_markers: bool,
    /// And the document after a `...` starts without `---` (YAML 1.2; libyaml, so Helm and
    /// PyYAML, want the `---`).
    bare_after_end: bool,
    namespace: Option<&'static str>,
    layout: u64,
}

const WORDS: [&str; 6] = ["api", "web", "worker", "db", "cache", "gateway"];
const IMAGES: [&str; 7] = [
    "reg.example/api:1.2.3",
    "busybox",
    "nginx:latest",
    "reg.example:5000/app@sha256:0123abcd",
    "app:v2-rc.1",
    "postgres:16",
    "redis:7.2",
];
const PORT_NAMES: [&str; 3] = ["http", "grpc", "metrics"];

fn port() -> impl Strategy<Value = PortSpec> {
    (
        prop::option::of(prop::sample::select(&PORT_NAMES[..])),
        prop::sample::select(vec![80u16, 5432, 6379, 8080, 9090]),
        prop::option::weighted(0.3, prop::sample::select(vec!["TCP", "UDP"])),
    )
        .prop_map(|(name, number, protocol)| PortSpec { name, number, protocol })
}

fn container() -> impl Strategy<Value = ContainerSpec> {
    (
        prop::option::weighted(0.9, prop::sample::select(&IMAGES[..])),
        prop::collection::vec(port(), 0..3),
        any::<bool>(),
        prop::option::weighted(0.4, prop::sample::select(vec![5u32, 30, 120])),
        prop::collection::vec(atom(false), 0..4),
        prop::collection::vec(text(), 0..3),
    )
        .prop_map(|(image, ports, readiness, liveness_delay, env, args)| ContainerSpec { image, ports, readiness, liveness_delay, env, args })
}

/// Existing pod-template labels: mesh labels the post-renderer must not overwrite, and values
/// of any type.
fn template_label() -> impl Strategy<Value = (Text, Atom)> {
    prop_oneof![
        Just((word("app"), Atom::Str(word("legacy")))),
        Just((word("sidecar.istio.io/inject"), Atom::Str(Text { s: "false".into(), plain_ok: false, quote: Quote::Double }))),
        Just((word("version"), Atom::Typed("1.5"))),
        Just((word("app"), Atom::Typed("0755"))),
        Just((word("sidecar.istio.io/inject"), Atom::Typed("true"))),
        (text(), atom(false)),
    ]
}

fn template_meta() -> impl Strategy<Value = TemplateMeta> {
    prop_oneof![
        1 => Just(TemplateMeta::Absent),
        1 => Just(TemplateMeta::NoLabels),
        4 => prop::collection::vec(template_label(), 0..3).prop_map(TemplateMeta::Labels),
    ]
}

fn workload() -> impl Strategy<Value = WorkloadSpec> {
    (
        prop::sample::select(vec![WKind::Deployment, WKind::StatefulSet, WKind::Job, WKind::CronJob]),
        template_meta(),
        prop::collection::vec(container(), 1..3),
    )
        .prop_map(|(kind, template_meta, containers)| WorkloadSpec { kind, template_meta, containers })
}

fn body(disputed: bool) -> impl Strategy<Value = Body> {
    prop_oneof![
        5 => workload().prop_map(Body::Workload),
        3 => (
            prop::option::weighted(0.8, 0..8usize),
            prop::collection::vec((prop::sample::select(vec![80u16, 8080, 5432]), prop::option::of(prop::sample::select(&PORT_NAMES[..]))), 1..3),
        )
            .prop_map(|(target, ports)| Body::Service { target, ports }),
        2 => prop::collection::vec((text(), atom(disputed)), 0..5).prop_map(Body::ConfigMap),
        1 => Just(Body::Empty),
    ]
}

fn doc(disputed: bool) -> impl Strategy<Value = DocSpec> {
    (
        prop::sample::select(&WORDS[..]),
        body(disputed),
        prop::bool::weighted(0.15),
        prop::collection::vec((text(), text()), 0..3),
        prop::collection::vec((text(), atom(false)), 0..3),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(word, body, hook, labels, annotations, unlabelled)| DocSpec { word, body, hook, labels, annotations, unlabelled })
}

fn stream_with(docs: impl Strategy<Value = Vec<DocSpec>>) -> impl Strategy<Value = StreamSpec> {
    (
        docs,
        prop::bool::weighted(0.2),
        any::<bool>(),
        prop::bool::weighted(0.15),
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.15),
        any::<bool>(),
        prop::option::weighted(0.3, prop::sample::select(vec!["team-a", "default"])),
        any::<u64>(),
    )
        .prop_map(|(docs, two_releases, helm4, crlf, bare_first, marker_comments, end_markers, bare_after_end, namespace, layout)| StreamSpec {
            docs,
            two_releases,
            helm4,
            crlf,
            bare_first,
            marker_comments,
            end_markers,
            bare_after_end,
            namespace,
            layout,
        })
}

fn stream() -> impl Strategy<Value = StreamSpec> {
    stream_with(prop::collection::vec(doc(true), 1..9))
}

/// Streams for the PyYAML oracle, which reads YAML 1.1 streams only (a document after `...`
/// starts with `---`). Plain scalars the two readers dispute are only in ConfigMaps anyway.
fn oracle_stream() -> impl Strategy<Value = StreamSpec> {
    stream_with(prop::collection::vec(doc(true), 1..7)).prop_map(|mut s| {
        s.bare_after_end = false;
        s
    })
}

impl StreamSpec {
    /// The stream as Helm would print it, object names prefixed with `prefix`.
    fn render(&self, prefix: &str) -> String {
        let mut layout = Layout::new(self.layout);
        let names = self.names(prefix);
        let workloads: Vec<usize> = (0..self.docs.len()).filter(|&i| matches!(self.docs[i].body, Body::Workload(_))).collect();
        let mut out = String::new();
        let mut after_end = false;
        for (i, d) in self.docs.iter().enumerate() {
            let file = format!("chart/templates/{}.yaml", d.word);
            if !(i == 0 && self.bare_first) && !(after_end && self.bare_after_end) {
                out.push_str(if self.marker_comments { "--- # next document\n" } else { "---\n" });
            }
            out.push_str(&format!("# Source: {file}\n"));
            if let Body::Empty = d.body {
                out.push_str("# (this template rendered nothing)\n");
            } else {
                let node = self.object(i, &names, &workloads, &file, prefix);
                if let Node::Map(entries) = &node {
                    layout.write_map(&mut out, entries, 0, false);
                }
            }
            after_end = self.end_markers && i % 2 == 0;
            if after_end {
                out.push_str("...\n");
            }
        }
        if self.crlf { out.replace('\n', "\r\n") } else { out }
    }

    /// Unique (kind, name) per document; different kinds may share a name.
    fn names(&self, prefix: &str) -> Vec<String> {
        let mut seen = BTreeSet::new();
        self.docs
            .iter()
            .map(|d| {
                let kind = self.kind_of(d);
                let mut name = format!("{prefix}{}", d.word);
                let mut n = 2;
                while !seen.insert((kind, name.clone())) {
                    name = format!("{prefix}{}-{n}", d.word);
                    n += 1;
                }
                name
            })
            .collect()
    }

    fn kind_of(&self, d: &DocSpec) -> &'static str {
        match &d.body {
            Body::Workload(w) => match w.kind {
                WKind::Deployment => "Deployment",
                WKind::StatefulSet => "StatefulSet",
                WKind::Job => "Job",
                WKind::CronJob => "CronJob",
            },
            Body::Service { .. } => "Service",
            Body::ConfigMap(_) => "ConfigMap",
            Body::Empty => "",
        }
    }

    fn release(&self, i: usize, prefix: &str) -> String {
        if self.two_releases && i % 2 == 1 { format!("{prefix}other") } else { format!("{prefix}rel") }
    }

    fn selector_labels(&self, i: usize, names: &[String], prefix: &str) -> Vec<(&'static str, Node)> {
        vec![("app.kubernetes.io/name", scalar(names[i].clone())), ("app.kubernetes.io/instance", scalar(self.release(i, prefix)))]
    }

    fn object(&self, i: usize, names: &[String], workloads: &[usize], file: &str, prefix: &str) -> Node {
        let d = &self.docs[i];
        let kind = self.kind_of(d);
        let api_version = match &d.body {
            Body::Workload(w) if matches!(w.kind, WKind::Job | WKind::CronJob) => "batch/v1",
            Body::Workload(_) => "apps/v1",
            _ => "v1",
        };
        let mut meta: Vec<(String, Node)> = vec![("name".into(), scalar(names[i].clone()))];
        if let Some(ns) = self.namespace {
            meta.push(("namespace".into(), scalar(ns)));
        }
        let mut labels: Vec<(String, Node)> = Vec::new();
        if !d.unlabelled {
            labels.push(("app.kubernetes.io/instance".into(), scalar(self.release(i, prefix))));
        }
        labels.push(("app.kubernetes.io/name".into(), scalar(names[i].clone())));
        push_unique(&mut labels, d.labels.iter().map(|(k, v)| (k.key(), v.node())));
        meta.push(("labels".into(), Node::Map(labels)));
        let mut annotations: Vec<(String, Node)> = Vec::new();
        if d.hook {
            annotations.push(("\"helm.sh/hook\"".into(), scalar("pre-install,pre-upgrade")));
            annotations.push(("helm.sh/hook-weight".into(), scalar("\"-5\"")));
        }
        if self.helm4 {
            annotations.push((HELM4_FILENAME_ANNOTATION.into(), scalar(file)));
        }
        push_unique(&mut annotations, d.annotations.iter().map(|(k, v)| (k.key(), v.node())));
        if !annotations.is_empty() {
            meta.push(("annotations".into(), Node::Map(annotations)));
        }
        let mut top = vec![("apiVersion".to_string(), scalar(api_version)), ("kind".into(), scalar(kind)), ("metadata".into(), Node::Map(meta))];
        match &d.body {
            Body::Workload(w) => top.push(("spec".into(), self.workload_spec(i, w, names, prefix))),
            Body::Service { target, ports } => {
                let mut spec = Vec::new();
                if let Some(t) = target.filter(|_| !workloads.is_empty()) {
                    let w = workloads[t % workloads.len()];
                    spec.push(("selector".to_string(), Node::Map(to_entries(self.selector_labels(w, names, prefix)))));
                }
                let ports = ports
                    .iter()
                    .map(|(port, target)| {
                        let mut p = vec![("port", scalar(port.to_string()))];
                        if let Some(t) = target {
                            p.push(("targetPort", scalar(*t)));
                        }
                        map(p)
                    })
                    .collect();
                spec.push(("ports".into(), Node::Seq(ports)));
                top.push(("spec".into(), Node::Map(spec)));
            }
            Body::ConfigMap(data) => {
                let mut entries = Vec::new();
                push_unique(&mut entries, data.iter().map(|(k, v)| (k.key(), v.node())));
                top.push(("data".into(), Node::Map(entries)));
            }
            Body::Empty => unreachable!(),
        }
        Node::Map(top)
    }

    fn workload_spec(&self, i: usize, w: &WorkloadSpec, names: &[String], prefix: &str) -> Node {
        let selector = self.selector_labels(i, names, prefix);
        let mut tmeta: Option<Vec<(String, Node)>> = match &w.template_meta {
            TemplateMeta::Absent => None,
            TemplateMeta::NoLabels => Some(vec![("annotations".into(), map(vec![("checksum/config", scalar("abc123"))]))]),
            TemplateMeta::Labels(extra) => {
                let mut labels = to_entries(selector.clone());
                push_unique(&mut labels, extra.iter().map(|(k, v)| (k.key(), v.node())));
                Some(vec![("labels".into(), Node::Map(labels))])
            }
        };
        // Deployments and StatefulSets need their selector labels on the pods.
        if matches!(w.kind, WKind::Deployment | WKind::StatefulSet) && !matches!(w.template_meta, TemplateMeta::Labels(_)) {
            let m = tmeta.get_or_insert_with(Vec::new);
            m.push(("labels".into(), Node::Map(to_entries(selector.clone()))));
        }
        let containers = w.containers.iter().enumerate().map(|(c, spec)| container_node(c, spec)).collect();
        let mut pod_spec = vec![("containers".to_string(), Node::Seq(containers))];
        if matches!(w.kind, WKind::Job | WKind::CronJob) {
            pod_spec.push(("restartPolicy".into(), scalar("Never")));
        }
        let mut template = Vec::new();
        if let Some(m) = tmeta {
            template.push(("metadata".to_string(), Node::Map(m)));
        }
        template.push(("spec".into(), Node::Map(pod_spec)));
        let template = Node::Map(template);
        match w.kind {
            WKind::Deployment | WKind::StatefulSet => {
                let mut spec = vec![
                    ("replicas".to_string(), scalar("2")),
                    ("selector".into(), map(vec![("matchLabels", Node::Map(to_entries(selector)))])),
                ];
                if w.kind == WKind::StatefulSet {
                    spec.push(("serviceName".into(), scalar(names[i].clone())));
                }
                spec.push(("template".into(), template));
                Node::Map(spec)
            }
            WKind::Job => map(vec![("backoffLimit", scalar("1")), ("template", template)]),
            WKind::CronJob => map(vec![
                ("schedule", scalar("\"*/5 * * * *\"")),
                ("jobTemplate", map(vec![("spec", map(vec![("template", template)]))])),
            ]),
        }
    }
}

fn to_entries(v: Vec<(&str, Node)>) -> Vec<(String, Node)> {
    v.into_iter().map(|(k, n)| (k.to_string(), n)).collect()
}

/// Appends entries whose written key is new (generated keys may repeat, and a mapping with a
/// duplicate key is invalid input, tested elsewhere).
fn push_unique(entries: &mut Vec<(String, Node)>, more: impl Iterator<Item = (String, Node)>) {
    for (k, v) in more {
        let norm = normalize_key(&k);
        if !entries.iter().any(|(e, _)| normalize_key(e) == norm) {
            entries.push((k, v));
        }
    }
}

/// The key as our reader sees it, so that `"yes"`, `'yes'` and `yes` count as one when they are.
fn normalize_key(written: &str) -> String {
    let doc = format!("{written}: 0\n");
    let raw = yaml::split_stream(&doc);
    match raw.first().map(yaml::parse_document) {
        Some(Ok(Some(Value::Object(m)))) => m.keys().next().cloned().unwrap_or_default(),
        _ => written.to_string(),
    }
}

fn container_node(index: usize, c: &ContainerSpec) -> Node {
    let mut e: Vec<(String, Node)> = vec![("name".into(), scalar(format!("c{index}")))];
    if let Some(image) = c.image {
        e.push(("image".into(), scalar(image)));
    }
    if !c.args.is_empty() {
        e.push(("args".into(), Node::Seq(c.args.iter().map(Text::node).collect())));
    }
    if !c.ports.is_empty() {
        let ports = c
            .ports
            .iter()
            .map(|p| {
                let mut m = Vec::new();
                if let Some(n) = p.name {
                    m.push(("name", scalar(n)));
                }
                m.push(("containerPort", scalar(p.number.to_string())));
                if let Some(proto) = p.protocol {
                    m.push(("protocol", scalar(proto)));
                }
                map(m)
            })
            .collect();
        e.push(("ports".into(), Node::Seq(ports)));
    }
    if !c.env.is_empty() {
        let env = c.env.iter().enumerate().map(|(i, a)| map(vec![("name", scalar(format!("VAR_{i}"))), ("value", a.node())])).collect();
        e.push(("env".into(), Node::Seq(env)));
    }
    if c.readiness {
        e.push((
            "readinessProbe".into(),
            map(vec![("httpGet", map(vec![("path", scalar("/ready")), ("port", scalar("8080"))])), ("periodSeconds", scalar("7"))]),
        ));
    }
    if let Some(delay) = c.liveness_delay {
        e.push((
            "livenessProbe".into(),
            map(vec![("tcpSocket", map(vec![("port", scalar("8080"))])), ("initialDelaySeconds", scalar(delay.to_string()))]),
        ));
    }
    Node::Map(e)
}

// ---------------------------------------------------------------------------------------------
// The properties of an accepted stream

fn parse_all<'a>(docs: &[RawDocument<'a>]) -> Result<Vec<Option<Value>>, TestCaseError> {
    docs.iter().map(|d| yaml::parse_document(d).map_err(|e| TestCaseError::fail(format!("output does not parse: {e}")))).collect()
}

fn template_ptr(kind: &str) -> Option<&'static str> {
    match kind {
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => Some("/spec/template"),
        "CronJob" => Some("/spec/jobTemplate/spec/template"),
        "Pod" => Some(""),
        _ => None,
    }
}

/// Paths (JSON pointers) at which `after` has something `before` has not. Fails if anything
/// `before` has is missing or different in `after`, except a null replaced by a mapping.
fn additions(before: &Value, after: &Value, path: &str, out: &mut Vec<String>) -> Result<(), String> {
    match (before, after) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let p = format!("{path}/{}", k.replace('~', "~0").replace('/', "~1"));
                match b.get(k) {
                    Some(w) => additions(v, w, &p, out)?,
                    None => return Err(format!("{p}: removed")),
                }
            }
            for k in b.keys().filter(|k| !a.contains_key(*k)) {
                out.push(format!("{path}/{}", k.replace('~', "~0").replace('/', "~1")));
            }
            Ok(())
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            a.iter().zip(b).enumerate().try_for_each(|(i, (v, w))| additions(v, w, &format!("{path}/{i}"), out))
        }
        (Value::Null, Value::Object(_)) => {
            out.push(path.to_string());
            Ok(())
        }
        (a, b) if a == b => Ok(()),
        (a, b) => Err(format!("{path}: {a} became {b}")),
    }
}

/// Where the post-renderer may add things to a workload: pod-template mesh labels and
/// annotations (or the metadata holding them), and missing probes of containers.
fn allowed_addition(path: &str, template: &str) -> bool {
    const LABELS: [&str; 5] = ["sidecar.istio.io~1inject", "istio.io~1rev", "istio.io~1dataplane-mode", "app", "version"];
    const ANNOTATIONS: [&str; 2] = ["sidecar.istio.io~1nativeSidecar", "inject.istio.io~1templates"];
    const PROBES: [&str; 3] = ["readinessProbe", "livenessProbe", "startupProbe"];
    let Some(rest) = path.strip_prefix(template) else { return false };
    let parts: Vec<&str> = rest.split('/').skip(1).collect();
    match parts.as_slice() {
        ["metadata"] | ["metadata", "labels" | "annotations"] => true,
        ["metadata", "labels", k] => LABELS.contains(k),
        ["metadata", "annotations", k] => ANNOTATIONS.contains(k),
        ["spec", "containers", i, probe] => i.parse::<usize>().is_ok() && PROBES.contains(probe),
        _ => false,
    }
}

fn identity(v: &Value) -> (String, String, String) {
    let s = |p: &str| v.pointer(p).and_then(Value::as_str).unwrap_or_default().to_string();
    (s("/kind"), s("/metadata/namespace"), s("/metadata/name"))
}

fn is_hook(v: &Value) -> bool {
    v.pointer("/metadata/annotations").and_then(|a| a.get("helm.sh/hook")).is_some()
}

/// Checks every property of post-rendering an accepted `input` (see the module docs); returns
/// the output.
fn check_accepted(input: &str, cfg: &PostRenderConfig) -> Result<Option<String>, TestCaseError> {
    let Ok(rendered) = postrender::post_render(input, cfg) else { return Ok(None) };
    let output = rendered.output;
    let in_docs = yaml::split_stream(input);
    let out_docs = yaml::split_stream(&output);
    prop_assert!(
        out_docs.len() >= in_docs.len(),
        "the output has {} documents, the input {}",
        out_docs.len(),
        in_docs.len()
    );
    let in_values = parse_all(&in_docs)?;
    let out_values = parse_all(&out_docs)?;
    let mut changed = 0;
    for (i, (a, b)) in in_values.iter().zip(&out_values).enumerate() {
        if a == b {
            // Untouched: the same bytes, at the same place in the stream. (A last document
            // not ending in `\n` gets one when generated documents follow it: Helm splits
            // manifests only at a `---` after a `\n`, so a bare `\r` becomes `\r\n`.)
            let last_completed = i + 1 == in_docs.len() && out_docs.len() > in_docs.len() && !in_docs[i].text.ends_with('\n');
            if last_completed {
                prop_assert_eq!(out_docs[i].text, format!("{}\n", in_docs[i].text), "the last document is unchanged but not byte-identical");
            } else {
                prop_assert_eq!(out_docs[i].text, in_docs[i].text, "document {} is unchanged but not byte-identical", i + 1);
            }
            continue;
        }
        changed += 1;
        let (Some(a), Some(b)) = (a, b) else {
            return Err(TestCaseError::fail(format!("document {}: {a:?} became {b:?}", i + 1)));
        };
        let kind = a.get("kind").and_then(Value::as_str).unwrap_or_default();
        let Some(template) = template_ptr(kind) else {
            return Err(TestCaseError::fail(format!("document {} ({kind}) is not a workload but changed", i + 1)));
        };
        prop_assert_eq!(out_docs[i].source.as_deref(), in_docs[i].source.as_deref(), "the # Source: line of document {} is lost", i + 1);
        prop_assert_eq!(a.pointer("/spec/selector"), b.pointer("/spec/selector"), "selector of document {} changed", i + 1);
        let mut added = Vec::new();
        additions(a, b, "", &mut added).map_err(|e| TestCaseError::fail(format!("document {}: {e}", i + 1)))?;
        for p in &added {
            prop_assert!(allowed_addition(p, template), "document {} ({kind}): unexpected addition at {p}", i + 1);
        }
    }
    prop_assert_eq!(changed, rendered.summary.changed);

    // Generated documents: NetworkPolicies with unique identities, each followed in ambient mode
    // by the AuthorizationPolicy of the same name and nothing else; Helm 4's annotation when the
    // input has it; none with the name of a policy the input already has.
    let helm4 = in_values.iter().flatten().any(|v| v.pointer("/metadata/annotations").and_then(|a| a.get(HELM4_FILENAME_ANNOTATION)).is_some());
    let existing: BTreeSet<_> = in_values
        .iter()
        .flatten()
        .filter(|v| matches!(v.get("kind").and_then(Value::as_str), Some("NetworkPolicy" | "AuthorizationPolicy")))
        .map(identity)
        .collect();
    let mut seen = BTreeSet::new();
    let generated = &out_values[in_values.len()..];
    let companions =
        generated.iter().flatten().filter(|g| g.get("kind").and_then(Value::as_str) == Some("AuthorizationPolicy")).count();
    prop_assert_eq!(generated.len(), rendered.summary.generated.len() + companions);
    if cfg.mode != MeshMode::Ambient {
        prop_assert_eq!(companions, 0);
    }
    let mut previous: Option<Value> = None;
    for (g, raw) in generated.iter().zip(&out_docs[in_docs.len()..]) {
        let g = g.as_ref().ok_or_else(|| TestCaseError::fail("an empty generated document"))?;
        prop_assert_eq!(raw.source.as_deref(), Some(GENERATED_SOURCE));
        let kind = g.get("kind").and_then(Value::as_str);
        if kind == Some("AuthorizationPolicy") {
            let np = previous.as_ref().ok_or_else(|| TestCaseError::fail("an AuthorizationPolicy without its NetworkPolicy"))?;
            prop_assert_eq!(np.pointer("/metadata/name"), g.pointer("/metadata/name"), "a companion follows its NetworkPolicy");
        } else {
            prop_assert_eq!(kind, Some("NetworkPolicy"));
        }
        previous = Some(g.clone());
        let id = identity(g);
        prop_assert!(!existing.contains(&id), "generated {id:?} exists in the input");
        prop_assert!(seen.insert(id.clone()), "generated {id:?} twice");
        if helm4 {
            prop_assert_eq!(
                g.pointer("/metadata/annotations").and_then(|a| a.get(HELM4_FILENAME_ANNOTATION)).and_then(Value::as_str),
                Some(GENERATED_SOURCE)
            );
        }
    }

    // Idempotent: the output post-renders to itself.
    let again = postrender::post_render(&output, cfg).map_err(|e| TestCaseError::fail(format!("the output is refused: {e}")))?;
    prop_assert!(again.output == output, "post-rendering the output changes it:\n--- output\n{output}\n--- again\n{}", again.output);
    prop_assert!(again.summary.generated.is_empty());
    Ok(Some(output))
}

/// The generated part of an output (after the input's documents).
fn generated_part(input: &str, output: &str) -> String {
    let n = yaml::split_stream(input).len();
    yaml::split_stream(output)[n..].iter().map(|d| d.text).collect()
}

fn configs() -> impl Strategy<Value = PostRenderConfig> {
    (
        prop::sample::select(vec![MeshMode::Sidecar, MeshMode::Ambient, MeshMode::None]),
        prop::sample::select(vec![JobPolicy::Exclude, JobPolicy::Native]),
        any::<bool>(),
        prop::option::weighted(0.2, Just("1-24".to_string())),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(mode, jobs, spire, revision, egress, no_labels, no_probes)| {
            let mut c = PostRenderConfig { mode, jobs, spire, revision, ..PostRenderConfig::default() };
            c.network_policies.egress = egress;
            c.inject.labels = !no_labels;
            c.inject.probes = !no_probes;
            c
        })
}

// ---------------------------------------------------------------------------------------------
// Valid manifests

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn valid_streams_keep_every_promise(spec in stream(), cfg in configs()) {
        let input = spec.render("");
        let rendered = postrender::post_render(&input, &cfg);
        prop_assert!(rendered.is_ok(), "a valid stream is refused: {}\n{input}", rendered.unwrap_err());
        check_accepted(&input, &cfg)?;
        // Every workload that is not a hook either gets an ingress policy or is reported as left
        // alone (with the reason), also when names repeat across kinds; with egress isolation,
        // an egress policy or the reason its egress stays open too, in a policy named for egress.
        let workloads = spec.docs.iter().filter(|d| matches!(d.body, Body::Workload(_)) && !d.hook).count();
        let summary = rendered.unwrap().summary;
        prop_assert_eq!(summary.generated.len(), summary.policies.len());
        for egress in [false, true] {
            let policies = summary.policies.iter().filter(|p| p.egress == egress).count();
            let withheld = summary.withheld.iter().filter(|w| w.egress == egress).count();
            let ending = if egress { "-egress" } else { "-ingress" };
            let misnamed: Vec<&str> = summary.policies.iter().filter(|p| p.egress == egress && !p.name.ends_with(ending)).map(|p| p.name.as_str()).collect();
            prop_assert!(misnamed.is_empty(), "{:?}", misnamed);
            if !egress || cfg.network_policies.egress {
                // An ingress policy withheld by the proof may leave its egress judged or not:
                // workloads that are not services (no Service, no policy) count once each side.
                prop_assert!(policies + withheld <= workloads, "{egress}: {:?}", summary.withheld);
            } else {
                prop_assert_eq!(policies + withheld, 0);
            }
        }
        prop_assert_eq!(
            summary.policies.iter().filter(|p| !p.egress).count() + summary.withheld.iter().filter(|w| !w.egress).count(),
            workloads,
            "{:?}",
            summary.withheld
        );
    }

    #[test]
    fn releases_of_one_stream_stay_apart(spec in stream()) {
        let mut spec = spec;
        spec.two_releases = true;
        spec.docs.iter_mut().for_each(|d| d.unlabelled = false);
        let input = spec.render("");
        let output = postrender::post_render(&input, &PostRenderConfig::default()).unwrap().output;
        releases_stay_apart(&input, &output)?;
    }

    #[test]
    fn hooks_never_give_rise_to_policies(spec in stream()) {
        let cfg = PostRenderConfig::default();
        let with_hooks = spec.render("");
        // Hooks are clients (a migration Job connects to its database), never subjects: the
        // workloads judged are the same with and without them.
        let judged = |r: &postrender::Rendered| -> BTreeSet<String> {
            r.summary.policies.iter().map(|p| p.protects.clone()).chain(r.summary.withheld.iter().map(|w| w.subject.clone())).collect()
        };
        let with = postrender::post_render(&with_hooks, &cfg).unwrap();
        let without = without_hooks(&with_hooks);
        let out_without = postrender::post_render(&without, &cfg).unwrap();
        prop_assert_eq!(judged(&with), judged(&out_without));
        // A hook-only stream (Helm 4 may post-render hooks on their own) generates nothing.
        let mut hooks_only = spec;
        hooks_only.docs.iter_mut().for_each(|d| d.hook = true);
        let hooks = hooks_only.render("");
        let r = postrender::post_render(&hooks, &cfg).unwrap();
        prop_assert!(r.summary.generated.is_empty(), "a hook-only stream generated {:?}", r.summary.generated);
        prop_assert_eq!(generated_part(&hooks, &r.output), "");
    }
}

/// Several releases in one stream (`helmfile template`, concatenated `helm template` outputs)
/// stay apart: each policy is named and labelled after the release of the workload it protects,
/// and admits pods of that release only.
fn releases_stay_apart(input: &str, output: &str) -> Result<(), TestCaseError> {
    let in_values: Vec<Value> = yaml::split_stream(input).iter().filter_map(|d| yaml::parse_document(d).unwrap()).collect();
    let generated: Vec<Value> = yaml::split_stream(&generated_part(input, output)).iter().filter_map(|d| yaml::parse_document(d).unwrap()).collect();
    for p in &generated {
        let release = p.pointer("/metadata/labels/app.kubernetes.io~1instance").and_then(Value::as_str).unwrap_or_default();
        let name = p.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
        prop_assert!(name.starts_with(&format!("{release}-")), "{name} is not named after its release {release}");
        let selectors = p.pointer("/spec/ingress").and_then(Value::as_array).into_iter().flatten()
            .flat_map(|rule| rule.get("from").and_then(Value::as_array).into_iter().flatten())
            .filter_map(|peer| peer.pointer("/podSelector/matchLabels/app.kubernetes.io~1instance"))
            .chain(p.pointer("/spec/podSelector/matchLabels/app.kubernetes.io~1instance"));
        for s in selectors {
            prop_assert_eq!(s.as_str(), Some(release), "{} selects pods of another release", name);
        }
    }
    // Policies belong to releases with workloads (some may be left alone, and say so).
    let with_workloads: BTreeSet<&str> = in_values
        .iter()
        .filter(|v| template_ptr(v.get("kind").and_then(Value::as_str).unwrap_or_default()).is_some() && !is_hook(v))
        .filter_map(|v| v.pointer("/metadata/labels/app.kubernetes.io~1instance").and_then(Value::as_str))
        .collect();
    let named: BTreeSet<&str> = generated.iter().filter_map(|p| p.pointer("/metadata/labels/app.kubernetes.io~1instance").and_then(Value::as_str)).collect();
    prop_assert!(named.is_subset(&with_workloads), "{:?} not within {:?}", named, with_workloads);
    Ok(())
}

/// The stream with its hook documents cut out (the other documents' bytes unchanged).
fn without_hooks(stream: &str) -> String {
    let mut out = String::new();
    for d in yaml::split_stream(stream) {
        if yaml::parse_document(&d).unwrap().is_some_and(|v| is_hook(&v)) {
            continue;
        }
        // A document that followed a `...` line may have no `---` of its own.
        if !out.is_empty() && !d.text.starts_with("---") {
            out.push_str("---\n");
        }
        out.push_str(d.text);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Arbitrary and broken input

/// Ways to break (or merely disturb) a valid stream.
#[derive(Debug, Clone)]
enum Mutation {
    Truncate(prop::sample::Index),
    DuplicateLine(prop::sample::Index),
    TabIndent(prop::sample::Index),
    InsertQuote(prop::sample::Index, char),
    InsertMarker(prop::sample::Index),
    InsertMarkerMidLine(prop::sample::Index),
    DeleteLine(prop::sample::Index),
    SwapLines(prop::sample::Index, prop::sample::Index),
    /// A mapping key written twice in one mapping.
    DuplicateKey,
    /// Nested aliases that expand to billions of nodes.
    BillionLaughs,
    /// A document that is not a mapping.
    NotAMapping(&'static str),
    InsertText(prop::sample::Index, &'static str),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    use prop::sample::Index;
    // The alias bomb is rare: refusing it takes a million expanded nodes, slow in debug builds.
    prop_oneof![
        4 => any::<Index>().prop_map(Mutation::Truncate),
        4 => any::<Index>().prop_map(Mutation::DuplicateLine),
        4 => any::<Index>().prop_map(Mutation::TabIndent),
        4 => (any::<Index>(), prop::sample::select(vec!['"', '\'', '[', '{', '&', '*', '|', '>', '%', '@'])).prop_map(|(i, c)| Mutation::InsertQuote(i, c)),
        4 => any::<Index>().prop_map(Mutation::InsertMarker),
        4 => any::<Index>().prop_map(Mutation::InsertMarkerMidLine),
        4 => any::<Index>().prop_map(Mutation::DeleteLine),
        4 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        4 => Just(Mutation::DuplicateKey),
        1 => Just(Mutation::BillionLaughs),
        4 => prop::sample::select(vec!["- a\n- b\n", "just text\n", "42\n", "\"quoted\"\n", "[1, 2]\n", "~\n"]).prop_map(Mutation::NotAMapping),
        4 => (any::<Index>(), prop::sample::select(vec![": x", "\t", "a: &x 1\n", "*nope", "<<: 1\n", "x: .inf\n", "!!int abc", "? [a]\n: b\n", "\u{feff}", "\r"]))
            .prop_map(|(i, t)| Mutation::InsertText(i, t)),
    ]
}

fn line_starts(s: &str) -> Vec<usize> {
    std::iter::once(0).chain(s.match_indices('\n').map(|(i, _)| i + 1)).filter(|&i| i < s.len()).collect()
}

fn char_boundary(s: &str, i: prop::sample::Index) -> usize {
    if s.is_empty() {
        return 0;
    }
    let mut at = i.index(s.len() + 1);
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn line_range(s: &str, i: prop::sample::Index) -> Option<std::ops::Range<usize>> {
    let starts = line_starts(s);
    if starts.is_empty() {
        return None;
    }
    let start = starts[i.index(starts.len())];
    let end = s[start..].find('\n').map_or(s.len(), |n| start + n + 1);
    Some(start..end)
}

const BILLION_LAUGHS: &str = "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: lol\ndata:\n  a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n  a1: &a1 [*a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0]\n  a2: &a2 [*a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1]\n  a3: &a3 [*a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2]\n  a4: &a4 [*a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3]\n  a5: &a5 [*a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4]\n  a6: &a6 [*a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5]\n  a7: [*a6, *a6, *a6, *a6, *a6, *a6, *a6, *a6, *a6, *a6]\n";

fn mutate(mut s: String, m: &Mutation) -> String {
    match m {
        Mutation::Truncate(i) => {
            let at = char_boundary(&s, *i);
            s.truncate(at);
        }
        Mutation::DuplicateLine(i) => {
            if let Some(r) = line_range(&s, *i) {
                let line = s[r.clone()].to_string();
                s.insert_str(r.start, &line);
            }
        }
        Mutation::TabIndent(i) => {
            if let Some(r) = line_range(&s, *i) {
                let spaces = s[r.clone()].bytes().take_while(|&b| b == b' ').count();
                if spaces > 0 {
                    s.replace_range(r.start..r.start + spaces.min(2), "\t");
                }
            }
        }
        Mutation::InsertQuote(i, c) => {
            let at = char_boundary(&s, *i);
            s.insert(at, *c);
        }
        Mutation::InsertMarker(i) => {
            if let Some(r) = line_range(&s, *i) {
                s.insert_str(r.start, "---\n");
            }
        }
        Mutation::InsertMarkerMidLine(i) => {
            let at = char_boundary(&s, *i);
            s.insert_str(at, "\n--- ");
        }
        Mutation::DeleteLine(i) => {
            if let Some(r) = line_range(&s, *i) {
                s.replace_range(r, "");
            }
        }
        Mutation::SwapLines(a, b) => {
            if let (Some(ra), Some(rb)) = (line_range(&s, *a), line_range(&s, *b))
                && ra.end <= rb.start {
                    let (la, lb) = (s[ra.clone()].to_string(), s[rb.clone()].to_string());
                    s.replace_range(rb, &la);
                    s.replace_range(ra, &lb);
                }
        }
        Mutation::DuplicateKey => {
            // The first `kind:` line, written again right after itself.
            if let Some(at) = s.find("\nkind: ") {
                let end = s[at + 1..].find('\n').map_or(s.len(), |n| at + 1 + n + 1);
                let line = s[at + 1..end].to_string();
                s.insert_str(end, &line);
            } else {
                s.push_str("---\na: 1\na: 2\n");
            }
        }
        Mutation::BillionLaughs => {
            if !s.is_empty() && !s.ends_with('\n') {
                s.push('\n');
            }
            s.push_str(BILLION_LAUGHS);
        }
        Mutation::NotAMapping(doc) => {
            if !s.is_empty() && !s.ends_with('\n') {
                s.push('\n');
            }
            s.push_str("---\n");
            s.push_str(doc);
        }
        Mutation::InsertText(i, t) => {
            let at = char_boundary(&s, *i);
            s.insert_str(at, t);
        }
    }
    s
}

/// Arbitrary text: random strings, random bytes made UTF-8, YAML-flavoured soup, and mutated
/// valid streams.
fn arbitrary_input() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => any::<String>(),
        1 => prop::collection::vec(any::<u8>(), 0..300).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        2 => "[-:#&*!|>'\"%@{}\\[\\],?~. \t\na-z0-9\u{feff}\u{85}\u{2028}]{0,200}",
        6 => (stream(), prop::collection::vec(mutation(), 1..4)).prop_map(|(spec, ms)| ms.iter().fold(spec.render(""), mutate)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 320, ..ProptestConfig::default() })]

    /// Never a panic; on success, every promise of a valid stream holds (the `Result` makes
    /// "no output on error" structural: there is no output to write).
    #[test]
    fn arbitrary_input_never_panics(input in arbitrary_input(), cfg in configs()) {
        check_accepted(&input, &cfg)?;
    }
}

// ---------------------------------------------------------------------------------------------
// The binary

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"))
}

/// `target/debug/kubectl-mesh-migrate`, built once per test process (`cargo build` is a no-op
/// when it is up to date). The command is the end-to-end tests' own (`tests/e2e/src/lib.rs`),
/// so that both share one build of the plugin binaries.
fn binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(root())
            .args(["build", "--quiet", "--bins", "-p", "mesh-migrate", "-p", "spire-check", "-p", "dbiso"])
            .status()
            .expect("running cargo build");
        assert!(status.success(), "`cargo build -p mesh-migrate` failed: the binary test needs target/debug/kubectl-mesh-migrate");
        let bin = target_dir().join("debug").join(format!("kubectl-mesh-migrate{}", std::env::consts::EXE_SUFFIX));
        assert!(bin.exists(), "{} is missing after `cargo build -p mesh-migrate`", bin.display());
        bin
    })
}

/// Inputs for the binary: mostly broken streams, some raw bytes that are not UTF-8.
fn binary_input() -> impl Strategy<Value = Vec<u8>> {
    let broken = (stream(), prop::collection::vec(mutation(), 1..3)).prop_map(|(spec, ms)| ms.iter().fold(spec.render(""), mutate));
    let must_fail = (stream(), prop::sample::select(vec![Mutation::DuplicateKey, Mutation::NotAMapping("- a\n"), Mutation::NotAMapping("text\n")]))
        .prop_map(|(spec, m)| mutate(spec.render(""), &m));
    prop_oneof![
        4 => broken.prop_map(String::into_bytes),
        3 => must_fail.prop_map(String::into_bytes),
        1 => (stream(), prop::collection::vec(0x80u8..=0xff, 1..4), any::<prop::sample::Index>()).prop_map(|(spec, bad, i)| {
            let mut b = spec.render("").into_bytes();
            let at = i.index(b.len() + 1);
            b.splice(at..at, bad);
            b
        }),
    ]
}

static BINARY_RUNS: AtomicUsize = AtomicUsize::new(0);
static BINARY_REFUSALS: AtomicUsize = AtomicUsize::new(0);

fn run_binary(input: &[u8]) -> std::process::Output {
    let mut child = Command::new(binary())
        .arg("post-render")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning kubectl-mesh-migrate");
    // The binary reads all of stdin before writing anything, so writing first cannot deadlock.
    child.stdin.take().unwrap().write_all(input).expect("writing stdin");
    child.wait_with_output().expect("waiting for kubectl-mesh-migrate")
}

/// One run of the binary on `input`, checked against the library.
fn binary_agrees(input: &[u8]) -> Result<(), TestCaseError> {
    let out = run_binary(input);
    BINARY_RUNS.fetch_add(1, Ordering::Relaxed);
    // The binary refuses a stream without any object (Helm never sends one): the library
    // post-renders it to itself.
    let objects = |s: &str| yaml::split_stream(s).iter().any(|d| !matches!(yaml::parse_document(d), Ok(None)));
    let lib = std::str::from_utf8(input)
        .ok()
        .filter(|s| objects(s))
        .map(|s| postrender::post_render(s, &PostRenderConfig::default()));
    match lib {
        Some(Ok(r)) => {
            prop_assert_eq!(out.status.code(), Some(0), "accepted by the library, refused by the binary: {}", String::from_utf8_lossy(&out.stderr));
            prop_assert!(out.stdout == r.output.as_bytes(), "the binary's output differs from the library's");
        }
        // Refused (not UTF-8, or by the library): exit 2, nothing on stdout, a message.
        _ => {
            BINARY_REFUSALS.fetch_add(1, Ordering::Relaxed);
            prop_assert_eq!(out.status.code(), Some(2), "stderr: {}", String::from_utf8_lossy(&out.stderr));
            prop_assert!(out.stdout.is_empty(), "output on error: {} bytes", out.stdout.len());
            let stderr = String::from_utf8_lossy(&out.stderr);
            prop_assert!(stderr.contains("error"), "no message on stderr: {stderr:?}");
        }
    }
    Ok(())
}

#[test]
fn binary_refuses_bad_input_with_exit_2_and_no_output() {
    // The alias bomb once (it is slow to refuse in a debug build), then generated input.
    let bomb = format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ok\n{BILLION_LAUGHS}");
    binary_agrees(bomb.as_bytes()).unwrap();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig { cases: 300, ..ProptestConfig::default() });
    let result = runner.run(&binary_input(), |input| binary_agrees(&input));
    if let Err(e) = result {
        panic!("{e}");
    }
    let (runs, refusals) = (BINARY_RUNS.load(Ordering::Relaxed), BINARY_REFUSALS.load(Ordering::Relaxed));
    // The generator is meant to produce bad input: make sure it did, so this test tests refusals.
    assert!(refusals * 2 >= runs, "only {refusals} of {runs} generated inputs were refused");
}

// ---------------------------------------------------------------------------------------------
// The PyYAML oracle

fn venv_python() -> PathBuf {
    let venv = std::env::var_os("MESHMOVE_VENV").map(PathBuf::from).unwrap_or_else(|| target_dir().join("venv"));
    let python = venv.join("bin").join("python");
    assert!(
        python.exists(),
        "{} is missing: run `tests/tools/setup-venv.sh` (or the README's test command, tests/test.sh) to install the real test tools",
        python.display()
    );
    python
}

static ORACLE_BATCH: AtomicUsize = AtomicUsize::new(0);

/// Joins streams into one, each starting a new document.
fn join(streams: &[String]) -> String {
    let mut out = String::new();
    for s in streams {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str("---\n");
        out.push_str(s);
    }
    out
}

proptest! {
    // 25 batches of 12 streams: 300 streams, one PyYAML run per batch.
    #![proptest_config(ProptestConfig { cases: 25, ..ProptestConfig::default() })]

    /// PyYAML, a YAML 1.1 reader independent of ours, reads every output as its input plus
    /// injected keys, list items and documents: same values, same types.
    #[test]
    fn pyyaml_reads_the_output_as_the_input(batch in prop::collection::vec((oracle_stream(), configs()), 12)) {
        let python = venv_python();
        let mut inputs = Vec::new();
        let mut outputs = Vec::new();
        for (i, (spec, cfg)) in batch.iter().enumerate() {
            // Distinct names per stream, so documents of the batch do not collide.
            let input = spec.render(&format!("s{i}-"));
            let output = check_accepted(&input, cfg)?.ok_or_else(|| TestCaseError::fail(format!("a valid stream is refused:\n{input}")))?;
            inputs.push(input);
            outputs.push(output);
        }
        let dir = std::env::temp_dir().join(format!("meshmove-postrender-props-{}-{}", std::process::id(), ORACLE_BATCH.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("in.yaml"), dir.join("out.yaml"));
        std::fs::write(&a, join(&inputs)).unwrap();
        std::fs::write(&b, join(&outputs)).unwrap();
        let run = Command::new(&python)
            .arg(root().join("tests/tools/yaml11_roundtrip.py"))
            .arg("--ignore-injected")
            .arg(&a)
            .arg(&b)
            .output()
            .expect("running yaml11_roundtrip.py");
        let report = format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
        prop_assert!(run.status.success(), "PyYAML disagrees (files kept in {}):\n{report}", dir.display());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// Found by `arbitrary_input_never_panics`: a last document ending in a bare `\r` keeps its bytes
/// and gets the `\n` Helm needs before the `---` of the generated policies.
#[test]
fn a_bare_carriage_return_before_generated_documents_becomes_crlf() {
    let input = "---\r\napiVersion: apps/v1\r\nkind: Deployment\r\nmetadata:\r\n  name: api\r\nspec:\r\n  selector:\r\n    matchLabels: {app: api}\r\n  template:\r\n    metadata:\r\n      labels: {app: api}\r\n    spec:\r\n      containers:\r\n        - name: api\r\n          image: api:1\r\n          ports: [{containerPort: 8080}]\r\n---\r\napiVersion: v1\r\nkind: ConfigMap\r\nmetadata:\r\n  name: api\r";
    let out = postrender::post_render(input, &PostRenderConfig::default()).unwrap().output;
    let config_map = &input[input.rfind("---").unwrap()..];
    let at = out.find(config_map).expect("the ConfigMap is kept byte for byte");
    assert!(out[at + config_map.len()..].starts_with("\n---\n"), "{out}");
    assert!(out.contains("kind: NetworkPolicy"), "{out}");
}
