//! Reading an `AuthorizationPolicy` object into the engine's form ([`crate::authz`]): fields
//! checked as Istio's validation does (actions, ports as numbers, addresses or CIDRs), each
//! problem a [`PolicyError`] with its field path, so a malformed policy is never applied in part.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::Value;

use super::authz::{AuthzAction, AuthzPolicy, AuthzRule, Clause, Conjunction, Field, Pattern};
use super::cidr::{AddressError, parse_cidr};
use super::compile::{Errs, PolicyError};

pub(crate) const AUTHORIZATION_POLICY: &str = "AuthorizationPolicy";

fn strings(v: &Value, path: &str, errs: &mut Errs<'_>) -> Vec<String> {
    match v.as_array() {
        Some(a) => a
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s.as_str() {
                Some(s) => Some(s.to_string()),
                None => {
                    errs.push(format!("{path}[{i}]"), "must be a string");
                    None
                }
            })
            .collect(),
        None => {
            errs.push(path, "must be a list of strings");
            Vec::new()
        }
    }
}

fn ip_list(values: &[String], path: &str, errs: &mut Errs<'_>) -> Vec<IpNet> {
    let mut out = Vec::new();
    for (i, s) in values.iter().enumerate() {
        // Istio accepts a single address or a CIDR.
        let parsed = if s.contains('/') {
            parse_cidr(s)
        } else {
            s.parse::<IpAddr>()
                .map(IpNet::from)
                .map_err(|_| AddressError::Address { text: s.clone() })
        };
        match parsed {
            Ok(n) => out.push(n),
            Err(e) => errs.push(format!("{path}[{i}]"), e.to_string()),
        }
    }
    out
}

fn port_list(values: &[String], path: &str, errs: &mut Errs<'_>) -> Vec<u16> {
    let mut out = Vec::new();
    for (i, s) in values.iter().enumerate() {
        match s.parse::<u16>() {
            Ok(p) if p != 0 => out.push(p),
            _ => errs.push(
                format!("{path}[{i}]"),
                format!("invalid port {s:?}: must be a number from 1 to 65535"),
            ),
        }
    }
    out
}

const SOURCE_L7: [&str; 4] = [
    "requestPrincipals",
    "notRequestPrincipals",
    "remoteIpBlocks",
    "notRemoteIpBlocks",
];
const OPERATION_L7: [&str; 6] = [
    "hosts",
    "notHosts",
    "methods",
    "notMethods",
    "paths",
    "notPaths",
];
/// `when` keys ztunnel evaluates (istiod's `l4WhenAttributes`, less `destination.ip`, which
/// the engine does not know).
const WHEN_L4: [&str; 4] = [
    "source.ip",
    "source.namespace",
    "source.principal",
    "destination.port",
];

fn conjunction(
    obj: &Value,
    path: &str,
    source: bool,
    policy_ns: &str,
    errs: &mut Errs<'_>,
) -> Conjunction {
    let mut out = Vec::new();
    let Some(map) = obj.as_object() else {
        errs.push(path, "must be an object");
        return out;
    };
    for (key, v) in map {
        let p = format!("{path}.{key}");
        let (negated, base) = match key.strip_prefix("not") {
            Some(rest) if !rest.is_empty() => (true, rest.to_string()),
            _ => (false, key.clone()),
        };
        let base = {
            let mut c = base.chars();
            c.next()
                .map(|f| f.to_ascii_lowercase().to_string() + c.as_str())
                .unwrap_or_default()
        };
        let l7 = if source {
            SOURCE_L7.contains(&key.as_str())
        } else {
            OPERATION_L7.contains(&key.as_str())
        };
        let values = strings(v, &p, errs);
        if values.is_empty() {
            // An empty list sets nothing.
            continue;
        }
        let field = if l7 {
            Field::L7(key.clone())
        } else {
            match (source, base.as_str()) {
                (true, "principals") => {
                    Field::Principals(values.iter().map(|s| Pattern::parse(s)).collect())
                }
                (true, "namespaces") => {
                    Field::Namespaces(values.iter().map(|s| Pattern::parse(s)).collect())
                }
                (true, "serviceAccounts") => Field::ServiceAccounts(
                    values
                        .iter()
                        .map(|s| match s.split_once('/') {
                            Some((n, a)) => (n.to_string(), a.to_string()),
                            None => (policy_ns.to_string(), s.clone()),
                        })
                        .collect(),
                ),
                (true, "ipBlocks") => Field::IpBlocks(ip_list(&values, &p, errs)),
                (false, "ports") => Field::Ports(port_list(&values, &p, errs)),
                _ => {
                    errs.push(p, "unknown field");
                    continue;
                }
            }
        };
        out.push(Clause { field, negated });
    }
    out
}

fn condition(v: &Value, path: &str, policy_ns: &str, errs: &mut Errs<'_>) -> Vec<Clause> {
    let Some(key) = v.get("key").and_then(Value::as_str) else {
        errs.push(format!("{path}.key"), "required");
        return Vec::new();
    };
    let mut out = Vec::new();
    for (field, negated) in [("values", false), ("notValues", true)] {
        let Some(list) = v.get(field) else { continue };
        let values = strings(list, &format!("{path}.{field}"), errs);
        if values.is_empty() {
            continue;
        }
        let f = if !WHEN_L4.contains(&key) {
            Field::L7(format!("when {key}"))
        } else {
            let p = format!("{path}.{field}");
            match key {
                "source.ip" => Field::IpBlocks(ip_list(&values, &p, errs)),
                "source.namespace" => {
                    Field::Namespaces(values.iter().map(|s| Pattern::parse(s)).collect())
                }
                "source.principal" => {
                    Field::Principals(values.iter().map(|s| Pattern::parse(s)).collect())
                }
                _ => Field::Ports(port_list(&values, &p, errs)),
            }
        };
        let _ = policy_ns;
        out.push(Clause { field: f, negated });
    }
    if out.is_empty() {
        errs.push(path, "needs values or notValues");
    }
    out
}

/// Parse one AuthorizationPolicy object. `namespace` is where the inventory puts it.
pub(crate) fn compile(object: &Value, namespace: &str) -> Result<AuthzPolicy, Vec<PolicyError>> {
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut errs = Errs::new(AUTHORIZATION_POLICY, namespace, &name);
    let spec = object
        .get("spec")
        .cloned()
        .unwrap_or(Value::Object(Default::default()));
    let action = match spec.get("action").and_then(Value::as_str) {
        None | Some("ALLOW") => AuthzAction::Allow,
        Some("DENY") => AuthzAction::Deny,
        Some("CUSTOM") => AuthzAction::Custom,
        Some("AUDIT") => AuthzAction::Audit,
        Some(other) => {
            errs.push(
                "spec.action",
                format!("unsupported value {other:?}: must be ALLOW, DENY, CUSTOM or AUDIT"),
            );
            AuthzAction::Allow
        }
    };
    let selector = match spec.get("selector") {
        None | Some(Value::Null) => None,
        Some(s) => {
            let mut labels = BTreeMap::new();
            if let Some(m) = s.get("matchLabels") {
                match m.as_object() {
                    Some(m) => {
                        for (k, v) in m {
                            match v.as_str() {
                                Some(v) => {
                                    labels.insert(k.clone(), v.to_string());
                                }
                                None => errs.push(
                                    format!("spec.selector.matchLabels.{k}"),
                                    "must be a string",
                                ),
                            }
                        }
                    }
                    None => errs.push("spec.selector.matchLabels", "must be a map of strings"),
                }
            }
            Some(labels)
        }
    };
    let target_refs = ["targetRef", "targetRefs"].iter().any(|k| {
        spec.get(*k)
            .is_some_and(|v| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()))
    });
    if target_refs && selector.is_some() {
        errs.push("spec", "only one of selector and targetRefs may be set");
    }
    let mut rules = Vec::new();
    for (i, rule) in spec
        .get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let path = format!("spec.rules[{i}]");
        let list = |key: &str,
                    inner: &str,
                    source: bool,
                    errs: &mut Errs<'_>|
         -> Option<Vec<Conjunction>> {
            let entries = rule.get(key)?.as_array()?;
            if entries.is_empty() {
                return None;
            }
            Some(
                entries
                    .iter()
                    .enumerate()
                    .map(|(j, e)| {
                        let obj = e
                            .get(inner)
                            .cloned()
                            .unwrap_or(Value::Object(Default::default()));
                        conjunction(
                            &obj,
                            &format!("{path}.{key}[{j}].{inner}"),
                            source,
                            namespace,
                            errs,
                        )
                    })
                    .collect(),
            )
        };
        let from = list("from", "source", true, &mut errs);
        let to = list("to", "operation", false, &mut errs);
        let mut when = Vec::new();
        for (j, c) in rule
            .get("when")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            when.extend(condition(
                c,
                &format!("{path}.when[{j}]"),
                namespace,
                &mut errs,
            ));
        }
        rules.push(AuthzRule { from, to, when });
    }
    if errs.list.is_empty() {
        Ok(AuthzPolicy {
            namespace: namespace.to_string(),
            name,
            selector,
            target_refs,
            action,
            rules,
        })
    } else {
        Err(errs.list)
    }
}
