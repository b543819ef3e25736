//! Kubernetes label selectors, once for the whole suite.
//!
//! `matchLabels` and `matchExpressions` with the API's operators (`In`, `NotIn`, `Exists`,
//! `DoesNotExist`), validated as the API server validates them (`In`/`NotIn` need values,
//! `Exists`/`DoesNotExist` take none, no other operator): `k8s.io/apimachinery/pkg/apis/meta/v1`
//! `LabelSelectorAsSelector`, <https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#resources-that-support-set-based-requirements>.
//! An empty selector selects everything. What an *absent* selector means depends on the field,
//! so callers say it: a NetworkPolicy's `podSelector: {}` and a PodDisruptionBudget's empty
//! selector select every pod, a Service without `spec.selector` selects none
//! ([`service_selects`]). The exact NetworkPolicy engine compiles selectors into its own interned
//! form for speed; its property tests hold it to the same semantics.
//!
//! Also the equality-based selectors typed on command lines ([`LabelQuery`]:
//! `app=web,tier!=db,key,!key`, kubectl's `-l`).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde_json::Value;

/// Why a selector is not one the API server accepts, or a command-line selector is not one
/// kubectl's `-l` reads. Each names the field, key or requirement at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("a label selector must be a mapping")]
    NotMapping,
    /// `matchLabels` is not a mapping, or `matchExpressions` not a list.
    #[error("{field} must be {shape}")]
    FieldShape { field: &'static str, shape: &'static str },
    #[error("matchLabels.{key} must be a string")]
    LabelNotString { key: String },
    #[error("a matchExpression has no key")]
    ExpressionWithoutKey,
    /// `In`/`NotIn` without values.
    #[error("{operator} on {key} needs values")]
    NeedsValues { operator: String, key: String },
    /// `Exists`/`DoesNotExist` with values.
    #[error("{operator} on {key} takes no values")]
    TakesNoValues { operator: String, key: String },
    #[error("unknown operator {operator} on {key}")]
    UnknownOperator { operator: String, key: String },
    #[error("matchExpression on {key} has no operator")]
    NoOperator { key: String },
    /// A typed selector that does not convert to its JSON form.
    #[error("the label selector does not convert to JSON: {0}")]
    Unconvertible(String),
    /// A command-line selector's part that is no requirement.
    #[error("`{part}` is not a label requirement (key=value, key!=value, key or !key)")]
    NotARequirement { part: String },
    /// A command-line selector without any requirement.
    #[error("empty label selector")]
    Empty,
}

/// Labels as a sorted map.
pub type Labels = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
}

impl Requirement {
    fn matches(&self, labels: &Labels) -> bool {
        let v = labels.get(&self.key);
        match &self.op {
            Op::In(values) => v.is_some_and(|v| values.contains(v)),
            Op::NotIn(values) => v.is_none_or(|v| !values.contains(v)),
            Op::Exists => v.is_some(),
            Op::DoesNotExist => v.is_none(),
        }
    }
}

/// A validated Kubernetes label selector (`matchLabels` and `matchExpressions`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    reqs: Vec<Requirement>,
}

impl LabelSelector {
    /// Parse a selector from its JSON form. `None` or `null` select everything, like an empty
    /// selector; invalid selectors (unknown operator, `In` without values, `Exists` with values)
    /// are errors, as the API server and the controller manager reject them.
    pub fn from_json(v: Option<&Value>) -> Result<Self, SelectorError> {
        let Some(v) = v.filter(|v| !v.is_null()) else { return Ok(Self::default()) };
        let obj = v.as_object().ok_or(SelectorError::NotMapping)?;
        let mut reqs = Vec::new();
        if let Some(ml) = obj.get("matchLabels").filter(|v| !v.is_null()) {
            for (k, v) in ml.as_object().ok_or(SelectorError::FieldShape { field: "matchLabels", shape: "a mapping" })? {
                let v = v.as_str().ok_or_else(|| SelectorError::LabelNotString { key: k.clone() })?;
                reqs.push(Requirement { key: k.clone(), op: Op::In(vec![v.to_string()]) });
            }
        }
        if let Some(me) = obj.get("matchExpressions").filter(|v| !v.is_null()) {
            for e in me.as_array().ok_or(SelectorError::FieldShape { field: "matchExpressions", shape: "a list" })? {
                let key = e.get("key").and_then(Value::as_str).ok_or(SelectorError::ExpressionWithoutKey)?.to_string();
                let values: Vec<String> = e
                    .get("values")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
                    .unwrap_or_default();
                let op = match e.get("operator").and_then(Value::as_str) {
                    Some("In") if !values.is_empty() => Op::In(values),
                    Some("NotIn") if !values.is_empty() => Op::NotIn(values),
                    Some("Exists") if values.is_empty() => Op::Exists,
                    Some("DoesNotExist") if values.is_empty() => Op::DoesNotExist,
                    Some(op @ ("In" | "NotIn")) => return Err(SelectorError::NeedsValues { operator: op.into(), key }),
                    Some(op @ ("Exists" | "DoesNotExist")) => {
                        return Err(SelectorError::TakesNoValues { operator: op.into(), key });
                    }
                    Some(op) => return Err(SelectorError::UnknownOperator { operator: op.into(), key }),
                    None => return Err(SelectorError::NoOperator { key }),
                };
                reqs.push(Requirement { key, op });
            }
        }
        Ok(LabelSelector { reqs })
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        self.reqs.iter().all(|r| r.matches(labels))
    }

    /// Whether the selector selects everything.
    pub fn is_everything(&self) -> bool {
        self.reqs.is_empty()
    }

    /// A typed `LabelSelector` (k8s-openapi) as a matcher.
    pub fn from_typed(ls: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector) -> Result<Self, SelectorError> {
        let v = serde_json::to_value(ls).map_err(|e| SelectorError::Unconvertible(e.to_string()))?;
        Self::from_json(Some(&v))
    }
}

/// Whether a Service selects pods with `labels`: every key of its `spec.selector` map equal. A
/// Service without a selector (or an empty one) selects no pod: its endpoints are managed by
/// hand (<https://kubernetes.io/docs/concepts/services-networking/service/#services-without-selectors>).
pub fn service_selects(service: &Value, labels: &Labels) -> bool {
    match service.pointer("/spec/selector").and_then(Value::as_object) {
        Some(sel) if !sel.is_empty() => sel.iter().all(|(k, v)| v.as_str().is_some_and(|v| labels.get(k).map(String::as_str) == Some(v))),
        _ => false,
    }
}

/// An equality-based selector as typed on a command line: `app=spire-server,tier!=x,key,!key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelQuery {
    source: String,
    selector: LabelSelector,
}

impl LabelQuery {
    pub fn matches(&self, labels: &Labels) -> bool {
        self.selector.matches(labels)
    }
}

impl FromStr for LabelQuery {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Self, SelectorError> {
        let mut reqs = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let valid_key =
                |k: &str| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
            let (key, op) = if let Some((k, v)) = part.split_once("!=") {
                (k.trim(), Op::NotIn(vec![v.trim().to_string()]))
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (k.trim(), Op::In(vec![v.trim().to_string()]))
            } else if let Some(k) = part.strip_prefix('!') {
                (k.trim(), Op::DoesNotExist)
            } else {
                (part, Op::Exists)
            };
            if !valid_key(key) {
                return Err(SelectorError::NotARequirement { part: part.to_string() });
            }
            reqs.push(Requirement { key: key.to_string(), op });
        }
        if reqs.is_empty() {
            return Err(SelectorError::Empty);
        }
        Ok(LabelQuery { source: s.to_string(), selector: LabelSelector { reqs } })
    }
}

impl fmt::Display for LabelQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
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
    fn selectors_match_as_the_api_does() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        assert!(LabelSelector::from_json(Some(&json!({}))).unwrap().matches(&l));
        assert!(LabelSelector::from_json(None).unwrap().is_everything());
        let s = LabelSelector::from_json(Some(&json!({"matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "back"]}, {"key": "x", "operator": "DoesNotExist"}]})))
        .unwrap();
        assert!(s.matches(&l));
        assert!(!s.matches(&labels(&[("app", "web")])));
        let not_in = LabelSelector::from_json(Some(&json!({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]}))).unwrap();
        assert!(not_in.matches(&labels(&[])), "NotIn matches a missing key");
    }

    #[test]
    fn invalid_selectors_are_errors() {
        for bad in [
            json!({"matchExpressions": [{"key": "a", "operator": "In"}]}),
            json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
            json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}),
            json!({"matchLabels": {"a": 1}}),
        ] {
            assert!(LabelSelector::from_json(Some(&bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn services_without_selectors_select_nothing() {
        let l = labels(&[("app", "web")]);
        assert!(service_selects(&json!({"spec": {"selector": {"app": "web"}}}), &l));
        assert!(!service_selects(&json!({"spec": {"selector": {}}}), &l));
        assert!(!service_selects(&json!({"spec": {}}), &l));
        assert!(!service_selects(&json!({"spec": {"selector": {"app": "api"}}}), &l));
    }
}
