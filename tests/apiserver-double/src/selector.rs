//! Label and field selectors.
//!
//! Label selectors follow the API server's grammar: comma-separated
//! requirements `k`, `!k`, `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`,
//! `k>n`, `k<n`. `!=` and `notin` also match objects without the key, as on
//! the real server. Field selectors support `=`, `==` and `!=` on
//! `metadata.name`, `metadata.namespace` and a per-kind list of fields.

use serde_json::Value;

/// One label requirement.
#[derive(Debug, Clone, PartialEq)]
pub enum Requirement {
    /// `key` — the label exists.
    Exists(String),
    /// `!key` — the label does not exist.
    NotExists(String),
    /// `key=v`, `key==v`, `key in (..)`.
    In(String, Vec<String>),
    /// `key!=v`, `key notin (..)`.
    NotIn(String, Vec<String>),
    /// `key>n`.
    Gt(String, i64),
    /// `key<n`.
    Lt(String, i64),
}

/// A parsed label selector (requirements are ANDed). Empty matches everything.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LabelSelector(pub Vec<Requirement>);

fn valid_key(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    if let Some(p) = prefix
        && (p.is_empty()
            || p.len() > 253
            || !p
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'))
    {
        return false;
    }
    valid_label_value(name) && !name.is_empty()
}

/// Whether `v` is a valid label value (empty, or ≤63 alphanumerics with `-_.` inside).
pub fn valid_label_value(v: &str) -> bool {
    if v.is_empty() {
        return true;
    }
    let b = v.as_bytes();
    v.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// Whether `k` is a valid (optionally prefixed) label key.
pub fn valid_label_key(k: &str) -> bool {
    valid_key(k)
}

impl LabelSelector {
    /// Parses a selector string.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for part in split_top_level(s)? {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            reqs.push(parse_requirement(part)?);
        }
        Ok(LabelSelector(reqs))
    }

    /// Builds a selector from a `metav1.LabelSelector` object
    /// (`matchLabels` / `matchExpressions`).
    pub fn from_object(sel: &Value) -> Result<Self, String> {
        let mut reqs = Vec::new();
        if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
            for (k, v) in m {
                reqs.push(Requirement::In(
                    k.clone(),
                    vec![v.as_str().unwrap_or_default().to_string()],
                ));
            }
        }
        if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
            for e in exprs {
                let key = e
                    .get("key")
                    .and_then(Value::as_str)
                    .ok_or("matchExpressions entry without key")?
                    .to_string();
                let values: Vec<String> = e
                    .get("values")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
                let op = e
                    .get("operator")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                reqs.push(match op {
                    "In" => Requirement::In(key, values),
                    "NotIn" => Requirement::NotIn(key, values),
                    "Exists" => Requirement::Exists(key),
                    "DoesNotExist" => Requirement::NotExists(key),
                    other => {
                        return Err(format!(
                            "\"{other}\" is not a valid label selector operator"
                        ));
                    }
                });
            }
        }
        Ok(LabelSelector(reqs))
    }

    /// Whether the selector has no requirements.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Matches a label map.
    pub fn matches(&self, labels: Option<&serde_json::Map<String, Value>>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
            Requirement::In(k, vs) => get(k).is_some_and(|v| vs.iter().any(|x| x == v)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|v| !vs.iter().any(|x| x == v)),
            Requirement::Gt(k, n) => get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v > *n),
            Requirement::Lt(k, n) => get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v < *n),
        })
    }

    /// Matches an object's `metadata.labels`.
    pub fn matches_object(&self, obj: &Value) -> bool {
        self.is_empty() || self.matches(crate::util::labels(obj))
    }

    /// Renders the selector in the canonical string form (as used in
    /// `Scale.status.selector`).
    pub fn to_selector_string(&self) -> String {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|r| match r {
                Requirement::Exists(k) => k.clone(),
                Requirement::NotExists(k) => format!("!{k}"),
                Requirement::In(k, vs) if vs.len() == 1 => format!("{k}={}", vs[0]),
                Requirement::In(k, vs) => format!("{k} in ({})", vs.join(",")),
                Requirement::NotIn(k, vs) if vs.len() == 1 => format!("{k}!={}", vs[0]),
                Requirement::NotIn(k, vs) => format!("{k} notin ({})", vs.join(",")),
                Requirement::Gt(k, n) => format!("{k}>{n}"),
                Requirement::Lt(k, n) => format!("{k}<{n}"),
            })
            .collect();
        parts.join(",")
    }
}

fn split_top_level(s: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err(format!(
                        "unable to parse requirement: unexpected ')' in {s:?}"
                    ));
                }
            }
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(format!(
            "unable to parse requirement: unclosed '(' in {s:?}"
        ));
    }
    parts.push(&s[start..]);
    Ok(parts)
}

fn check_key(k: &str) -> Result<String, String> {
    if valid_key(k) {
        Ok(k.to_string())
    } else {
        Err(format!(
            "unable to parse requirement: invalid label key \"{k}\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        ))
    }
}

fn check_value(v: &str) -> Result<String, String> {
    if valid_label_value(v) {
        Ok(v.to_string())
    } else {
        Err(format!(
            "unable to parse requirement: invalid label value: \"{v}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        ))
    }
}

fn parse_set(rest: &str) -> Result<Vec<String>, String> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("unable to parse requirement: found '{rest}', expected: '('"))?;
    inner.split(',').map(|v| check_value(v.trim())).collect()
}

fn parse_requirement(p: &str) -> Result<Requirement, String> {
    if let Some(k) = p.strip_prefix('!') {
        return Ok(Requirement::NotExists(check_key(k.trim())?));
    }
    if let Some(i) = p.find("!=") {
        return Ok(Requirement::NotIn(
            check_key(p[..i].trim())?,
            vec![check_value(p[i + 2..].trim())?],
        ));
    }
    if let Some(i) = p.find("==") {
        return Ok(Requirement::In(
            check_key(p[..i].trim())?,
            vec![check_value(p[i + 2..].trim())?],
        ));
    }
    if let Some(i) = p.find('=') {
        return Ok(Requirement::In(
            check_key(p[..i].trim())?,
            vec![check_value(p[i + 1..].trim())?],
        ));
    }
    for (op, gt) in [('>', true), ('<', false)] {
        if let Some(i) = p.find(op) {
            let key = check_key(p[..i].trim())?;
            let n: i64 = p[i + 1..]
                .trim()
                .parse()
                .map_err(|_| format!("unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer: {p:?}"))?;
            return Ok(if gt {
                Requirement::Gt(key, n)
            } else {
                Requirement::Lt(key, n)
            });
        }
    }
    let words: Vec<&str> = p.splitn(2, char::is_whitespace).collect();
    if words.len() == 2 {
        let key = check_key(words[0])?;
        let rest = words[1].trim_start();
        if let Some(r) = rest.strip_prefix("notin") {
            return Ok(Requirement::NotIn(key, parse_set(r)?));
        }
        if let Some(r) = rest.strip_prefix("in") {
            return Ok(Requirement::In(key, parse_set(r)?));
        }
        return Err(format!(
            "unable to parse requirement: found '{rest}', expected: in, notin, =, ==, !=, gt, lt"
        ));
    }
    Ok(Requirement::Exists(check_key(p)?))
}

/// One field requirement.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldRequirement {
    /// Dotted field path, e.g. `metadata.name`.
    pub field: String,
    /// Expected value.
    pub value: String,
    /// `!=` instead of `=`.
    pub negated: bool,
}

/// A parsed field selector.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FieldSelector(pub Vec<FieldRequirement>);

/// Fields (beyond `metadata.name`/`metadata.namespace`) selectable per kind,
/// mirroring the real server's field label conversions.
pub fn selectable_fields(group: &str, kind: &str) -> &'static [&'static str] {
    match (group, kind) {
        ("", "Pod") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        ("", "Event") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("", "Secret") => &["type"],
        ("", "Namespace") => &["status.phase"],
        ("", "Node") => &["spec.unschedulable"],
        ("apps", "ReplicaSet") => &["status.replicas"],
        ("batch", "Job") => &["status.successful"],
        _ => &[],
    }
}

impl FieldSelector {
    /// Parses a field selector and checks the fields against the kind.
    pub fn parse(s: &str, group: &str, kind: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (field, value, negated) = if let Some(i) = part.find("!=") {
                (&part[..i], &part[i + 2..], true)
            } else if let Some(i) = part.find("==") {
                (&part[..i], &part[i + 2..], false)
            } else if let Some(i) = part.find('=') {
                (&part[..i], &part[i + 1..], false)
            } else {
                return Err(format!(
                    "invalid selector: '{part}'; can't understand '{part}'"
                ));
            };
            let field = field.trim();
            let known = field == "metadata.name"
                || field == "metadata.namespace"
                || selectable_fields(group, kind).contains(&field);
            if !known {
                return Err(format!("field label not supported: {field}"));
            }
            reqs.push(FieldRequirement {
                field: field.to_string(),
                value: value.trim().to_string(),
                negated,
            });
        }
        Ok(FieldSelector(reqs))
    }

    /// Whether the selector has no requirements.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value of `metadata.name=x` if the selector pins a single name.
    pub fn exact_name(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|r| r.field == "metadata.name" && !r.negated)
            .map(|r| r.value.as_str())
    }

    /// Matches an object.
    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|r| {
            let path: Vec<&str> = r.field.split('.').collect();
            let actual = match crate::util::get_path(obj, &path) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::Null) | None => match r.field.as_str() {
                    "spec.hostNetwork" | "spec.unschedulable" => "false".into(),
                    _ => String::new(),
                },
                Some(other) => other.to_string(),
            };
            (actual == r.value) != r.negated
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn parses_all_operators() {
        let s = LabelSelector::parse("app=web,tier==front,env!=prod,zone in (a, b),team notin (x),canary,!legacy,gen>3,rank<10").unwrap();
        assert_eq!(
            s.0,
            vec![
                Requirement::In("app".into(), vec!["web".into()]),
                Requirement::In("tier".into(), vec!["front".into()]),
                Requirement::NotIn("env".into(), vec!["prod".into()]),
                Requirement::In("zone".into(), vec!["a".into(), "b".into()]),
                Requirement::NotIn("team".into(), vec!["x".into()]),
                Requirement::Exists("canary".into()),
                Requirement::NotExists("legacy".into()),
                Requirement::Gt("gen".into(), 3),
                Requirement::Lt("rank".into(), 10),
            ]
        );
    }

    #[test]
    fn matching_semantics() {
        let l = labels(json!({"app": "web", "zone": "b", "gen": "5"}));
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(Some(&l));
        assert!(m("app=web"));
        assert!(m("app==web"));
        assert!(!m("app=api"));
        assert!(m("env!=prod"), "!= matches a missing key");
        assert!(m("zone in (a,b)"));
        assert!(!m("zone notin (a,b)"));
        assert!(m("team notin (x)"), "notin matches a missing key");
        assert!(m("app"));
        assert!(!m("!app"));
        assert!(m("!legacy"));
        assert!(m("gen>4") && !m("gen>5") && m("gen<6"));
        assert!(m(""));
        assert!(m("app=web,zone in (b)"));
        assert!(!m("app=web,zone in (c)"));
        assert!(!LabelSelector::parse("x").unwrap().matches(None));
        assert!(LabelSelector::parse("!x").unwrap().matches(None));
    }

    #[test]
    fn rejects_malformed() {
        assert!(LabelSelector::parse("app in (a,b").is_err());
        assert!(LabelSelector::parse("app=-bad-").is_err());
        assert!(LabelSelector::parse("app flub (a)").is_err());
        assert!(LabelSelector::parse("a)").is_err());
        assert!(LabelSelector::parse("gen>abc").is_err());
    }

    #[test]
    fn from_object_and_back() {
        let s = LabelSelector::from_object(&json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]})).unwrap();
        assert_eq!(s.to_selector_string(), "app=web,tier in (a,b)");
        assert!(
            LabelSelector::from_object(
                &json!({"matchExpressions": [{"key": "x", "operator": "Bogus"}]})
            )
            .is_err()
        );
    }

    #[test]
    fn field_selectors() {
        let pod = json!({"metadata": {"name": "p1", "namespace": "ns"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        let f = |s: &str| FieldSelector::parse(s, "", "Pod").unwrap().matches(&pod);
        assert!(f("metadata.name=p1"));
        assert!(f("metadata.name==p1,metadata.namespace=ns"));
        assert!(!f("metadata.name!=p1"));
        assert!(f("status.phase=Running,spec.nodeName=n1"));
        assert!(f("spec.hostNetwork=false"));
        assert_eq!(
            FieldSelector::parse("spec.bogus=1", "", "Pod").unwrap_err(),
            "field label not supported: spec.bogus"
        );
        assert!(FieldSelector::parse("status.phase=Running", "", "ConfigMap").is_err());
        assert_eq!(
            FieldSelector::parse("metadata.name=x", "", "Pod")
                .unwrap()
                .exact_name(),
            Some("x")
        );
    }
}
