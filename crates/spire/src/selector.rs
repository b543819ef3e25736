//! Label selectors, node placement rules and namespace patterns, as SPIRE's components apply them.
//!
//! Three different matchers decide whether a workload gets an identity: the ClusterSPIFFEID's pod
//! and namespace selectors (Kubernetes `LabelSelector` semantics, where an absent selector selects
//! everything), the DaemonSet placement rules that decide which nodes must run an agent (taints
//! against tolerations, node selector, required node affinity), and the controller manager's
//! `ignoreNamespaces`, which are Go regular expressions matched anywhere in the name. Each is
//! small; they live here so the checks read as policy, not as parsing.


use serde_json::Value;

pub use meshmove_model::selector::{LabelQuery, LabelSelector, Labels};

/// Tolerations the DaemonSet controller adds to every daemon pod, so taints with these keys never
/// keep a daemon off a node (`network-unavailable` only for host-network pods).
const DAEMON_TOLERATED: &[&str] = &[
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
    "node.kubernetes.io/disk-pressure",
    "node.kubernetes.io/memory-pressure",
    "node.kubernetes.io/pid-pressure",
    "node.kubernetes.io/unschedulable",
];

fn toleration_matches(t: &Value, taint: &Value) -> bool {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let (t_key, t_op, t_val, t_eff) = (s(t, "key"), s(t, "operator"), s(t, "value"), s(t, "effect"));
    let (key, val, eff) = (s(taint, "key"), s(taint, "value"), s(taint, "effect"));
    if !t_eff.is_empty() && t_eff != eff {
        return false;
    }
    match t_op.as_str() {
        "Exists" => t_key.is_empty() || t_key == key,
        _ => t_key == key && t_val == val,
    }
}

/// Why a DaemonSet is not expected to run a pod on a node, or `None` when it is. Cordoned nodes
/// are not expected to (a lenient reading for "every node runs an agent": a daemon pod that is
/// there keeps running, but nobody should be told one is missing from a node being drained).
pub fn daemon_excluded_from(pod_spec: Option<&Value>, node: &Value) -> Option<String> {
    if node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        return Some("cordoned".into());
    }
    daemon_cannot_run_on(pod_spec, node)
}

/// Why the DaemonSet controller would not place a pod of this template on a node, or `None`.
/// Its pods tolerate the node-condition taints and `unschedulable` (the DaemonSet controller adds
/// those tolerations, kubernetes `pkg/controller/daemon/util`), so a cordoned node still runs them.
pub fn daemon_cannot_run_on(pod_spec: Option<&Value>, node: &Value) -> Option<String> {
    let spec = pod_spec.unwrap_or(&Value::Null);
    let host_network = spec.get("hostNetwork").and_then(Value::as_bool) == Some(true);
    placement(spec, node, |key| {
        DAEMON_TOLERATED.contains(&key) || (host_network && key == "node.kubernetes.io/network-unavailable")
    })
}

/// Why the scheduler would not place a pod of this template on a node, or `None`: a `nodeName`
/// naming another node, a cordoned node, a NoSchedule or NoExecute taint the pod does not
/// tolerate (every pod tolerates `not-ready` and `unreachable`, which the DefaultTolerationSeconds
/// admission plugin adds), the node selector and the required node affinity.
pub fn pod_cannot_run_on(pod_spec: Option<&Value>, node: &Value) -> Option<String> {
    let spec = pod_spec.unwrap_or(&Value::Null);
    let node_name = node.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    if let Some(pinned) = spec.get("nodeName").and_then(Value::as_str).filter(|n| !n.is_empty()) {
        return (pinned != node_name).then(|| format!("spec.nodeName is {pinned}"));
    }
    if node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        return Some("cordoned".into());
    }
    placement(spec, node, |key| matches!(key, "node.kubernetes.io/not-ready" | "node.kubernetes.io/unreachable"))
}

/// Taints, node selector and required node affinity, with `tolerated` keys always tolerated.
fn placement(spec: &Value, node: &Value, tolerated: impl Fn(&str) -> bool) -> Option<String> {
    let tolerations = spec.get("tolerations").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
    for taint in node.pointer("/spec/taints").and_then(Value::as_array).into_iter().flatten() {
        let effect = taint.get("effect").and_then(Value::as_str).unwrap_or("");
        if !matches!(effect, "NoSchedule" | "NoExecute") {
            continue;
        }
        let key = taint.get("key").and_then(Value::as_str).unwrap_or("");
        if tolerated(key) {
            continue;
        }
        if !tolerations.iter().any(|t| toleration_matches(t, taint)) {
            return Some(format!("taint {key}:{effect} not tolerated"));
        }
    }
    let labels = meshmove_model::workload::string_map(node.pointer("/metadata/labels"));
    let node_name = node.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    let node_selector = meshmove_model::workload::string_map(spec.get("nodeSelector"));
    if node_selector.iter().any(|(k, v)| labels.get(k) != Some(v)) {
        return Some("nodeSelector does not match".into());
    }
    if let Some(terms) = spec
        .pointer("/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
        .and_then(Value::as_array)
    {
        // Terms are ORed; an empty list selects no node, as the scheduler does.
        if !terms.iter().any(|t| node_term_matches(t, &labels, node_name)) {
            return Some("required node affinity does not match".into());
        }
    }
    None
}

fn node_term_matches(term: &Value, labels: &Labels, node_name: &str) -> bool {
    let exprs = term.get("matchExpressions").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
    let fields = term.get("matchFields").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let fields_map: Labels = [("metadata.name".to_string(), node_name.to_string())].into();
    exprs.iter().all(|e| node_expr_matches(e, labels)) && fields.iter().all(|e| node_expr_matches(e, &fields_map))
}

fn node_expr_matches(e: &Value, labels: &Labels) -> bool {
    let key = e.get("key").and_then(Value::as_str).unwrap_or("");
    let values: Vec<&str> =
        e.get("values").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    let v = labels.get(key).map(String::as_str);
    let number = |s: &str| s.parse::<i64>().ok();
    match e.get("operator").and_then(Value::as_str).unwrap_or("") {
        "In" => v.is_some_and(|v| values.contains(&v)),
        "NotIn" => v.is_none_or(|v| !values.contains(&v)),
        "Exists" => v.is_some(),
        "DoesNotExist" => v.is_none(),
        "Gt" => matches!((v.and_then(number), values.first().and_then(|s| number(s))), (Some(a), Some(b)) if a > b),
        "Lt" => matches!((v.and_then(number), values.first().and_then(|s| number(s))), (Some(a), Some(b)) if a < b),
        _ => false,
    }
}

/// A namespace pattern from the controller manager's `ignoreNamespaces`: a Go regular expression
/// that ignores a namespace when it matches anywhere in the name (`spire` ignores `spire-system`).
///
/// The subset evaluated here covers what such lists use: literals, `.`, character classes
/// (`[a-z]`, `[^0-9]`), `\` escapes, the quantifiers `*`, `+` and `?`, the anchors `^` and `$`, and
/// top-level alternation with `|`. Anything else (groups, counted repetition) is reported as not
/// evaluated instead of being guessed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespacePattern {
    pub source: String,
    alternatives: Option<Vec<Alternative>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Alternative {
    start: bool,
    end: bool,
    items: Vec<(Atom, Quant)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Atom {
    Char(char),
    Any,
    Class { negated: bool, ranges: Vec<(char, char)> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quant {
    One,
    Star,
    Plus,
    Optional,
}

impl Atom {
    fn matches(&self, c: char) -> bool {
        match self {
            Atom::Char(x) => *x == c,
            Atom::Any => c != '\n',
            Atom::Class { negated, ranges } => ranges.iter().any(|(a, b)| (*a..=*b).contains(&c)) != *negated,
        }
    }
}

impl NamespacePattern {
    pub fn new(source: &str) -> Self {
        let alternatives = source.split('|').map(parse_alternative).collect::<Option<Vec<_>>>();
        NamespacePattern { source: source.to_string(), alternatives }
    }

    /// Whether the pattern could be evaluated.
    pub fn is_supported(&self) -> bool {
        self.alternatives.is_some()
    }

    /// Whether the pattern ignores `namespace`; `None` when the pattern is outside the subset.
    pub fn matches(&self, namespace: &str) -> Option<bool> {
        let chars: Vec<char> = namespace.chars().collect();
        Some(self.alternatives.as_ref()?.iter().any(|alt| {
            let starts: Vec<usize> = if alt.start { vec![0] } else { (0..=chars.len()).collect() };
            starts.into_iter().any(|s| match_here(&alt.items, &chars[s..], alt.end))
        }))
    }
}

fn parse_alternative(src: &str) -> Option<Alternative> {
    let mut chars: Vec<char> = src.chars().collect();
    let start = chars.first() == Some(&'^');
    if start {
        chars.remove(0);
    }
    let end = chars.last() == Some(&'$') && !(chars.len() >= 2 && chars[chars.len() - 2] == '\\');
    if end {
        chars.pop();
    }
    let mut items: Vec<(Atom, Quant)> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let atom = match chars[i] {
            '.' => Atom::Any,
            '\\' => {
                i += 1;
                let c = *chars.get(i)?;
                if c.is_ascii_alphanumeric() {
                    return None; // \d, \w and friends are outside the subset
                }
                Atom::Char(c)
            }
            '[' => {
                let mut j = i + 1;
                let negated = chars.get(j) == Some(&'^');
                if negated {
                    j += 1;
                }
                let mut ranges = Vec::new();
                while *chars.get(j)? != ']' {
                    let a = chars[j];
                    if a == '\\' || a == '[' {
                        return None;
                    }
                    if chars.get(j + 1) == Some(&'-') && chars.get(j + 2).is_some_and(|c| *c != ']') {
                        ranges.push((a, chars[j + 2]));
                        j += 3;
                    } else {
                        ranges.push((a, a));
                        j += 1;
                    }
                }
                i = j;
                Atom::Class { negated, ranges }
            }
            '(' | ')' | '{' | '}' | '^' | '$' | '*' | '+' | '?' | ']' => return None,
            c => Atom::Char(c),
        };
        i += 1;
        let quant = match chars.get(i) {
            Some('*') => Quant::Star,
            Some('+') => Quant::Plus,
            Some('?') => Quant::Optional,
            _ => Quant::One,
        };
        if quant != Quant::One {
            i += 1;
            if matches!(chars.get(i), Some('*' | '+' | '?' | '{')) {
                return None; // lazy or stacked quantifiers
            }
        }
        items.push((atom, quant));
    }
    Some(Alternative { start, end, items })
}

fn match_here(items: &[(Atom, Quant)], s: &[char], end: bool) -> bool {
    let Some(((atom, quant), rest)) = items.split_first() else { return !end || s.is_empty() };
    match quant {
        Quant::One => s.first().is_some_and(|c| atom.matches(*c)) && match_here(rest, &s[1..], end),
        Quant::Optional => {
            (s.first().is_some_and(|c| atom.matches(*c)) && match_here(rest, &s[1..], end)) || match_here(rest, s, end)
        }
        Quant::Star | Quant::Plus => {
            let max = s.iter().take_while(|c| atom.matches(**c)).count();
            let min = usize::from(*quant == Quant::Plus);
            (min..=max).rev().any(|n| match_here(rest, &s[n..], end))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn absent_selector_selects_everything() {
        let s = LabelSelector::from_json(None).unwrap();
        assert!(s.matches(&labels(&[])));
        assert!(LabelSelector::from_json(Some(&json!({}))).unwrap().is_everything());
    }

    #[test]
    fn match_labels_and_expressions_are_anded() {
        let s = LabelSelector::from_json(Some(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]},
                                 {"key": "legacy", "operator": "DoesNotExist"}]
        })))
        .unwrap();
        assert!(s.matches(&labels(&[("app", "web")])));
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "front")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "db")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("legacy", "")])));
        assert!(!s.matches(&labels(&[("app", "api")])));
    }

    #[test]
    fn invalid_selectors_are_rejected() {
        for bad in [
            json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}),
            json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
            json!({"matchExpressions": [{"key": "a", "operator": "Matches", "values": ["x"]}]}),
            json!({"matchLabels": {"a": 1}}),
            json!("app=web"),
        ] {
            assert!(LabelSelector::from_json(Some(&bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn label_query_parses_command_line_forms() {
        let q: LabelQuery = "app.kubernetes.io/name=server, tier!=db,spire,!legacy".parse().unwrap();
        assert!(q.matches(&labels(&[("app.kubernetes.io/name", "server"), ("spire", "")])));
        assert!(!q.matches(&labels(&[("app.kubernetes.io/name", "server")])));
        assert!(!q.matches(&labels(&[("app.kubernetes.io/name", "server"), ("spire", ""), ("legacy", "1")])));
        assert!("".parse::<LabelQuery>().is_err());
        assert!("a b=c".parse::<LabelQuery>().is_err());
    }

    #[test]
    fn daemon_placement_follows_taints_selectors_and_affinity() {
        let node = json!({"metadata": {"name": "n1", "labels": {"pool": "gpu"}},
                          "spec": {"taints": [{"key": "gpu", "value": "true", "effect": "NoSchedule"}]}});
        assert!(daemon_excluded_from(Some(&json!({})), &node).unwrap().contains("gpu:NoSchedule"));
        let tolerant = json!({"tolerations": [{"key": "gpu", "operator": "Exists"}]});
        assert_eq!(daemon_excluded_from(Some(&tolerant), &node), None);
        let everything = json!({"tolerations": [{"operator": "Exists"}]});
        assert_eq!(daemon_excluded_from(Some(&everything), &node), None);
        let wrong_value = json!({"tolerations": [{"key": "gpu", "operator": "Equal", "value": "false"}]});
        assert!(daemon_excluded_from(Some(&wrong_value), &node).is_some());
        let prefer =
            json!({"metadata": {"name": "n2"}, "spec": {"taints": [{"key": "x", "effect": "PreferNoSchedule"}]}});
        assert_eq!(daemon_excluded_from(None, &prefer), None);
        let not_ready = json!({"metadata": {"name": "n3"}, "spec": {"taints": [{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]}});
        assert_eq!(daemon_excluded_from(None, &not_ready), None);
        let cordoned = json!({"metadata": {"name": "n4"}, "spec": {"unschedulable": true}});
        assert_eq!(daemon_excluded_from(None, &cordoned).as_deref(), Some("cordoned"));
        let sel = json!({"tolerations": [{"operator": "Exists"}], "nodeSelector": {"pool": "cpu"}});
        assert!(daemon_excluded_from(Some(&sel), &node).is_some());
        let aff = json!({"tolerations": [{"operator": "Exists"}], "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["cpu"]}]},
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}}}});
        assert_eq!(daemon_excluded_from(Some(&aff), &node), None);
    }

    #[test]
    fn daemon_and_pod_placement_differ_where_kubernetes_does() {
        let cordoned = json!({"metadata": {"name": "n1"}, "spec": {"unschedulable": true,
            "taints": [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]}});
        // A daemon pod still runs on a cordoned node; a new pod does not land there.
        assert_eq!(daemon_cannot_run_on(None, &cordoned), None);
        assert_eq!(pod_cannot_run_on(None, &cordoned).as_deref(), Some("cordoned"));
        let tainted = json!({"metadata": {"name": "n2"}, "spec": {"taints": [
            {"key": "node.kubernetes.io/disk-pressure", "effect": "NoSchedule"}]}});
        assert_eq!(daemon_cannot_run_on(None, &tainted), None);
        assert!(pod_cannot_run_on(None, &tainted).unwrap().contains("disk-pressure"));
        let not_ready = json!({"metadata": {"name": "n3"}, "spec": {"taints": [
            {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]}});
        assert_eq!(pod_cannot_run_on(None, &not_ready), None);
        let labelled = json!({"metadata": {"name": "n4", "labels": {"pool": "a"}}});
        assert_eq!(pod_cannot_run_on(Some(&json!({"nodeSelector": {"pool": "a"}})), &labelled), None);
        assert!(pod_cannot_run_on(Some(&json!({"nodeSelector": {"pool": "b"}})), &labelled).is_some());
        assert_eq!(pod_cannot_run_on(Some(&json!({"nodeName": "n4"})), &labelled), None);
        assert_eq!(pod_cannot_run_on(Some(&json!({"nodeName": "n9"})), &labelled).as_deref(), Some("spec.nodeName is n9"));
    }

    #[test]
    fn namespace_patterns_match_anywhere_like_go() {
        let p = |s: &str| NamespacePattern::new(s);
        assert_eq!(p("kube-system").matches("kube-system"), Some(true));
        assert_eq!(p("spire").matches("spire-system"), Some(true));
        assert_eq!(p("^spire$").matches("spire-system"), Some(false));
        assert_eq!(p("^spire$").matches("spire"), Some(true));
        assert_eq!(p("s[a-z]+re").matches("spire"), Some(true));
        assert_eq!(p("s[a-z]+re").matches("spiffe"), Some(false));
        assert_eq!(p("^kube-.*").matches("kube-node-lease"), Some(true));
        assert_eq!(p("^kube-.*").matches("my-kube-x"), Some(false));
        assert_eq!(p("a|^b$").matches("b"), Some(true));
        assert_eq!(p("x?y").matches("y"), Some(true));
        assert_eq!(p("te.t\\.").matches("test."), Some(true));
        assert_eq!(p("(spire|istio)-system").matches("spire-system"), None);
        assert!(!p("a{2}").is_supported());
        assert!(!p("\\d+").is_supported());
    }
}
