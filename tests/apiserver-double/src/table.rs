//! Server-side printing (`meta.k8s.io/v1` `Table`), which `kubectl get`
//! requests for human-readable output. Column sets follow the real server's
//! printers for the common kinds (a subset of the wide columns); CRD kinds
//! use their `additionalPrinterColumns` or Name/Age.

use crate::registry::{PrinterColumn, ResourceType};
use crate::util::{get_path, get_str, human_duration, meta_str, now_unix, parse_rfc3339};
use serde_json::{Map, Value, json};

struct Col {
    name: &'static str,
    ty: &'static str,
    priority: i64,
}

const fn c(name: &'static str, ty: &'static str, priority: i64) -> Col {
    Col { name, ty, priority }
}

fn age(obj: &Value) -> String {
    meta_str(obj, "creationTimestamp")
        .and_then(parse_rfc3339)
        .map(|t| human_duration(now_unix() - t))
        .unwrap_or_else(|| "<unknown>".into())
}

fn int(v: Option<&Value>) -> i64 {
    v.and_then(Value::as_i64).unwrap_or(0)
}

fn s(v: &str) -> Value {
    json!(v)
}

fn or_none(v: Option<String>) -> Value {
    json!(
        v.filter(|x| !x.is_empty())
            .unwrap_or_else(|| "<none>".into())
    )
}

fn containers_images(obj: &Value, path: &[&str]) -> (Value, Value) {
    let cs = get_path(obj, path)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = cs
        .iter()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    let images: Vec<&str> = cs
        .iter()
        .filter_map(|c| c.get("image").and_then(Value::as_str))
        .collect();
    (json!(names.join(",")), json!(images.join(",")))
}

fn selector_string(sel: Option<&Value>) -> Value {
    match sel {
        Some(Value::Object(m))
            if m.contains_key("matchLabels") || m.contains_key("matchExpressions") =>
        {
            or_none(
                crate::selector::LabelSelector::from_object(&Value::Object(m.clone()))
                    .ok()
                    .map(|s| s.to_selector_string()),
            )
        }
        Some(Value::Object(m)) => {
            let parts: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect();
            or_none(Some(parts.join(",")))
        }
        _ => s("<none>"),
    }
}

fn builtin_row(rt: &ResourceType, o: &Value) -> Option<(Vec<Col>, Vec<Value>)> {
    let name = json!(meta_str(o, "name").unwrap_or(""));
    let st = |f: &str| get_path(o, &["status", f]);
    let sp = |f: &str| get_path(o, &["spec", f]);
    Some(match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Namespace") => (
            vec![
                c("Name", "string", 0),
                c("Status", "string", 0),
                c("Age", "string", 0),
            ],
            vec![
                name,
                json!(get_str(o, &["status", "phase"]).unwrap_or("Active")),
                json!(age(o)),
            ],
        ),
        ("", "Pod") => {
            let cs = st("containerStatuses")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let total = get_path(o, &["spec", "containers"])
                .and_then(Value::as_array)
                .map(Vec::len)
                .unwrap_or(0);
            let ready = cs
                .iter()
                .filter(|c| c.get("ready").and_then(Value::as_bool) == Some(true))
                .count();
            let restarts: i64 = cs.iter().map(|c| int(c.get("restartCount"))).sum();
            let mut phase = get_str(o, &["status", "reason"])
                .or(get_str(o, &["status", "phase"]))
                .unwrap_or("Pending")
                .to_string();
            if get_path(o, &["metadata", "deletionTimestamp"]).is_some() {
                phase = "Terminating".into();
            }
            (
                vec![
                    c("Name", "string", 0),
                    c("Ready", "string", 0),
                    c("Status", "string", 0),
                    c("Restarts", "string", 0),
                    c("Age", "string", 0),
                    c("IP", "string", 1),
                    c("Node", "string", 1),
                    c("Nominated Node", "string", 1),
                    c("Readiness Gates", "string", 1),
                ],
                vec![
                    name,
                    json!(format!("{ready}/{total}")),
                    json!(phase),
                    json!(restarts.to_string()),
                    json!(age(o)),
                    or_none(get_str(o, &["status", "podIP"]).map(str::to_string)),
                    or_none(get_str(o, &["spec", "nodeName"]).map(str::to_string)),
                    s("<none>"),
                    s("<none>"),
                ],
            )
        }
        ("", "Service") => {
            let ports: Vec<String> = sp("ports")
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .map(|p| {
                            let port = int(p.get("port"));
                            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                            match p.get("nodePort").and_then(Value::as_i64) {
                                Some(np) => format!("{port}:{np}/{proto}"),
                                None => format!("{port}/{proto}"),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            let ext = get_path(o, &["status", "loadBalancer", "ingress"])
                .and_then(Value::as_array)
                .map(|i| {
                    i.iter()
                        .filter_map(|x| x.get("ip").or(x.get("hostname")).and_then(Value::as_str))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .filter(|x| !x.is_empty())
                .or_else(|| get_str(o, &["spec", "externalName"]).map(str::to_string));
            (
                vec![
                    c("Name", "string", 0),
                    c("Type", "string", 0),
                    c("Cluster-IP", "string", 0),
                    c("External-IP", "string", 0),
                    c("Port(s)", "string", 0),
                    c("Age", "string", 0),
                    c("Selector", "string", 1),
                ],
                vec![
                    name,
                    json!(get_str(o, &["spec", "type"]).unwrap_or("ClusterIP")),
                    or_none(get_str(o, &["spec", "clusterIP"]).map(str::to_string)),
                    or_none(ext),
                    or_none(Some(ports.join(","))),
                    json!(age(o)),
                    selector_string(sp("selector")),
                ],
            )
        }
        ("apps", "Deployment") => {
            let (cn, im) = containers_images(o, &["spec", "template", "spec", "containers"]);
            (
                vec![
                    c("Name", "string", 0),
                    c("Ready", "string", 0),
                    c("Up-to-date", "integer", 0),
                    c("Available", "integer", 0),
                    c("Age", "string", 0),
                    c("Containers", "string", 1),
                    c("Images", "string", 1),
                    c("Selector", "string", 1),
                ],
                vec![
                    name,
                    json!(format!(
                        "{}/{}",
                        int(st("readyReplicas")),
                        int(sp("replicas"))
                    )),
                    json!(int(st("updatedReplicas"))),
                    json!(int(st("availableReplicas"))),
                    json!(age(o)),
                    cn,
                    im,
                    selector_string(sp("selector")),
                ],
            )
        }
        ("apps", "StatefulSet") => {
            let (cn, im) = containers_images(o, &["spec", "template", "spec", "containers"]);
            (
                vec![
                    c("Name", "string", 0),
                    c("Ready", "string", 0),
                    c("Age", "string", 0),
                    c("Containers", "string", 1),
                    c("Images", "string", 1),
                ],
                vec![
                    name,
                    json!(format!(
                        "{}/{}",
                        int(st("readyReplicas")),
                        int(sp("replicas"))
                    )),
                    json!(age(o)),
                    cn,
                    im,
                ],
            )
        }
        ("apps", "ReplicaSet") => {
            let (cn, im) = containers_images(o, &["spec", "template", "spec", "containers"]);
            (
                vec![
                    c("Name", "string", 0),
                    c("Desired", "integer", 0),
                    c("Current", "integer", 0),
                    c("Ready", "integer", 0),
                    c("Age", "string", 0),
                    c("Containers", "string", 1),
                    c("Images", "string", 1),
                    c("Selector", "string", 1),
                ],
                vec![
                    name,
                    json!(int(sp("replicas"))),
                    json!(int(st("replicas"))),
                    json!(int(st("readyReplicas"))),
                    json!(age(o)),
                    cn,
                    im,
                    selector_string(sp("selector")),
                ],
            )
        }
        ("apps", "DaemonSet") => {
            let (cn, im) = containers_images(o, &["spec", "template", "spec", "containers"]);
            (
                vec![
                    c("Name", "string", 0),
                    c("Desired", "integer", 0),
                    c("Current", "integer", 0),
                    c("Ready", "integer", 0),
                    c("Up-to-date", "integer", 0),
                    c("Available", "integer", 0),
                    c("Node Selector", "string", 0),
                    c("Age", "string", 0),
                    c("Containers", "string", 1),
                    c("Images", "string", 1),
                    c("Selector", "string", 1),
                ],
                vec![
                    name,
                    json!(int(st("desiredNumberScheduled"))),
                    json!(int(st("currentNumberScheduled"))),
                    json!(int(st("numberReady"))),
                    json!(int(st("updatedNumberScheduled"))),
                    json!(int(st("numberAvailable"))),
                    selector_string(get_path(o, &["spec", "template", "spec", "nodeSelector"])),
                    json!(age(o)),
                    cn,
                    im,
                    selector_string(sp("selector")),
                ],
            )
        }
        ("", "ConfigMap") => {
            let n = o
                .get("data")
                .and_then(Value::as_object)
                .map(Map::len)
                .unwrap_or(0)
                + o.get("binaryData")
                    .and_then(Value::as_object)
                    .map(Map::len)
                    .unwrap_or(0);
            (
                vec![
                    c("Name", "string", 0),
                    c("Data", "integer", 0),
                    c("Age", "string", 0),
                ],
                vec![name, json!(n), json!(age(o))],
            )
        }
        ("", "Secret") => {
            let n = o
                .get("data")
                .and_then(Value::as_object)
                .map(Map::len)
                .unwrap_or(0)
                + o.get("stringData")
                    .and_then(Value::as_object)
                    .map(Map::len)
                    .unwrap_or(0);
            (
                vec![
                    c("Name", "string", 0),
                    c("Type", "string", 0),
                    c("Data", "integer", 0),
                    c("Age", "string", 0),
                ],
                vec![
                    name,
                    json!(get_str(o, &["type"]).unwrap_or("Opaque")),
                    json!(n),
                    json!(age(o)),
                ],
            )
        }
        ("", "ServiceAccount") => (
            vec![
                c("Name", "string", 0),
                c("Secrets", "integer", 0),
                c("Age", "string", 0),
            ],
            vec![
                name,
                json!(
                    o.get("secrets")
                        .and_then(Value::as_array)
                        .map(Vec::len)
                        .unwrap_or(0)
                ),
                json!(age(o)),
            ],
        ),
        ("", "Node") => {
            let ready = get_path(o, &["status", "conditions"])
                .and_then(Value::as_array)
                .and_then(|cs| {
                    cs.iter()
                        .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
                })
                .map(|c| {
                    if c.get("status").and_then(Value::as_str) == Some("True") {
                        "Ready"
                    } else {
                        "NotReady"
                    }
                })
                .unwrap_or("Unknown");
            let roles: Vec<String> = get_path(o, &["metadata", "labels"])
                .and_then(Value::as_object)
                .map(|l| {
                    l.keys()
                        .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            (
                vec![
                    c("Name", "string", 0),
                    c("Status", "string", 0),
                    c("Roles", "string", 0),
                    c("Age", "string", 0),
                    c("Version", "string", 0),
                ],
                vec![
                    name,
                    json!(ready),
                    or_none(Some(roles.join(","))),
                    json!(age(o)),
                    json!(get_str(o, &["status", "nodeInfo", "kubeletVersion"]).unwrap_or("")),
                ],
            )
        }
        ("", "Endpoints") => {
            let eps: Vec<String> = o
                .get("subsets")
                .and_then(Value::as_array)
                .map(|ss| {
                    ss.iter()
                        .flat_map(|s| {
                            let ips: Vec<String> = s
                                .get("addresses")
                                .and_then(Value::as_array)
                                .map(|a| {
                                    a.iter()
                                        .filter_map(|x| x.get("ip").and_then(Value::as_str))
                                        .map(str::to_string)
                                        .collect()
                                })
                                .unwrap_or_default();
                            let ports: Vec<i64> = s
                                .get("ports")
                                .and_then(Value::as_array)
                                .map(|p| p.iter().map(|x| int(x.get("port"))).collect())
                                .unwrap_or_default();
                            ips.into_iter().flat_map(move |ip| {
                                if ports.is_empty() {
                                    vec![ip]
                                } else {
                                    ports.iter().map(|p| format!("{ip}:{p}")).collect()
                                }
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            (
                vec![
                    c("Name", "string", 0),
                    c("Endpoints", "string", 0),
                    c("Age", "string", 0),
                ],
                vec![name, or_none(Some(eps.join(","))), json!(age(o))],
            )
        }
        ("", "Event") => {
            let last = get_str(o, &["lastTimestamp"])
                .or(get_str(o, &["eventTime"]))
                .or(meta_str(o, "creationTimestamp"))
                .and_then(parse_rfc3339)
                .map(|t| human_duration(now_unix() - t))
                .unwrap_or_else(|| "<unknown>".into());
            let obj = format!(
                "{}/{}",
                get_str(o, &["involvedObject", "kind"])
                    .unwrap_or("")
                    .to_lowercase(),
                get_str(o, &["involvedObject", "name"]).unwrap_or("")
            );
            (
                vec![
                    c("Last Seen", "string", 0),
                    c("Type", "string", 0),
                    c("Reason", "string", 0),
                    c("Object", "string", 0),
                    c("Message", "string", 0),
                ],
                vec![
                    json!(last),
                    json!(get_str(o, &["type"]).unwrap_or("")),
                    json!(get_str(o, &["reason"]).unwrap_or("")),
                    json!(obj),
                    json!(get_str(o, &["message"]).unwrap_or("")),
                ],
            )
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => (
            vec![c("Name", "string", 0), c("Created At", "date", 0)],
            vec![name, json!(meta_str(o, "creationTimestamp").unwrap_or(""))],
        ),
        ("batch", "Job") => {
            let completions = sp("completions").and_then(Value::as_i64).unwrap_or(1);
            let status = if int(st("succeeded")) >= completions {
                "Complete"
            } else if int(st("failed")) > 0 {
                "Failed"
            } else {
                "Running"
            };
            (
                vec![
                    c("Name", "string", 0),
                    c("Status", "string", 0),
                    c("Completions", "string", 0),
                    c("Age", "string", 0),
                ],
                vec![
                    name,
                    json!(status),
                    json!(format!("{}/{completions}", int(st("succeeded")))),
                    json!(age(o)),
                ],
            )
        }
        ("batch", "CronJob") => (
            vec![
                c("Name", "string", 0),
                c("Schedule", "string", 0),
                c("Suspend", "boolean", 0),
                c("Active", "integer", 0),
                c("Age", "string", 0),
            ],
            vec![
                name,
                json!(get_str(o, &["spec", "schedule"]).unwrap_or("")),
                json!(sp("suspend").and_then(Value::as_bool).unwrap_or(false)),
                json!(
                    st("active")
                        .and_then(Value::as_array)
                        .map(Vec::len)
                        .unwrap_or(0)
                ),
                json!(age(o)),
            ],
        ),
        ("networking.k8s.io", "NetworkPolicy") => (
            vec![
                c("Name", "string", 0),
                c("Pod-Selector", "string", 0),
                c("Age", "string", 0),
            ],
            vec![
                name,
                json!(
                    crate::selector::LabelSelector::from_object(
                        sp("podSelector").unwrap_or(&json!({}))
                    )
                    .map(|s| s.to_selector_string())
                    .unwrap_or_default()
                ),
                json!(age(o)),
            ],
        ),
        ("networking.k8s.io", "Ingress") => {
            let hosts: Vec<&str> = sp("rules")
                .and_then(Value::as_array)
                .map(|r| {
                    r.iter()
                        .filter_map(|x| x.get("host").and_then(Value::as_str))
                        .collect()
                })
                .unwrap_or_default();
            (
                vec![
                    c("Name", "string", 0),
                    c("Class", "string", 0),
                    c("Hosts", "string", 0),
                    c("Address", "string", 0),
                    c("Ports", "string", 0),
                    c("Age", "string", 0),
                ],
                vec![
                    name,
                    or_none(get_str(o, &["spec", "ingressClassName"]).map(str::to_string)),
                    json!(if hosts.is_empty() {
                        "*".to_string()
                    } else {
                        hosts.join(",")
                    }),
                    json!(""),
                    json!(if sp("tls").is_some() { "80, 443" } else { "80" }),
                    json!(age(o)),
                ],
            )
        }
        ("policy", "PodDisruptionBudget") => {
            let show = |v: Option<&Value>| match v {
                Some(Value::String(x)) => json!(x),
                Some(Value::Number(n)) => json!(n.to_string()),
                _ => json!("N/A"),
            };
            (
                vec![
                    c("Name", "string", 0),
                    c("Min Available", "string", 0),
                    c("Max Unavailable", "string", 0),
                    c("Allowed Disruptions", "integer", 0),
                    c("Age", "string", 0),
                ],
                vec![
                    name,
                    show(sp("minAvailable")),
                    show(sp("maxUnavailable")),
                    json!(int(st("disruptionsAllowed"))),
                    json!(age(o)),
                ],
            )
        }
        ("coordination.k8s.io", "Lease") => (
            vec![
                c("Name", "string", 0),
                c("Holder", "string", 0),
                c("Age", "string", 0),
            ],
            vec![
                name,
                json!(get_str(o, &["spec", "holderIdentity"]).unwrap_or("")),
                json!(age(o)),
            ],
        ),
        _ => return None,
    })
}

/// Evaluates the simple JSONPath forms used in printer columns.
pub fn eval_json_path<'a>(obj: &'a Value, path: &str) -> Vec<&'a Value> {
    let path = path
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .trim_start_matches('$');
    let mut cur: Vec<&Value> = vec![obj];
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        let (field, index) = match seg.find('[') {
            Some(i) => (&seg[..i], Some(seg[i + 1..].trim_end_matches(']'))),
            None => (seg, None),
        };
        let mut next = Vec::new();
        for v in cur {
            let v = if field.is_empty() {
                Some(v)
            } else {
                v.get(field)
            };
            let Some(v) = v else { continue };
            match index {
                None => next.push(v),
                Some("*") => {
                    if let Some(a) = v.as_array() {
                        next.extend(a.iter());
                    }
                }
                Some(i) => {
                    if let (Some(a), Ok(i)) = (v.as_array(), i.parse::<i64>()) {
                        let idx = if i < 0 { a.len() as i64 + i } else { i };
                        if let Some(x) = usize::try_from(idx).ok().and_then(|i| a.get(i)) {
                            next.push(x);
                        }
                    }
                }
            }
        }
        cur = next;
    }
    cur
}

fn custom_cell(obj: &Value, col: &PrinterColumn) -> Value {
    let vals = eval_json_path(obj, &col.json_path);
    if vals.is_empty() {
        return Value::Null;
    }
    if vals.len() == 1 {
        let v = vals[0];
        return match (col.type_.as_str(), v) {
            ("integer" | "number" | "boolean", _) => v.clone(),
            (_, Value::String(_)) => v.clone(),
            (_, other) => json!(other.to_string()),
        };
    }
    let parts: Vec<String> = vals
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string())
        })
        .collect();
    json!(parts.join(","))
}

/// Builds a `Table` for the given objects.
pub fn to_table(
    rt: &ResourceType,
    objs: &[Value],
    include: &str,
    meta: Map<String, Value>,
) -> Value {
    let mut defs: Vec<Value> = Vec::new();
    let mut rows = Vec::new();
    let custom_cols: Vec<PrinterColumn> = if rt.custom {
        if rt.printer_columns.is_empty() {
            vec![PrinterColumn {
                name: "Age".into(),
                type_: "date".into(),
                json_path: ".metadata.creationTimestamp".into(),
                priority: 0,
                description: String::new(),
            }]
        } else {
            rt.printer_columns.clone()
        }
    } else {
        vec![]
    };
    let generic = !rt.custom
        && objs
            .first()
            .map(|o| builtin_row(rt, o).is_none())
            .unwrap_or_else(|| builtin_row(rt, &json!({})).is_none());
    let col_def = |name: &str, ty: &str, priority: i64, desc: &str| {
        let mut d = json!({"name": name, "type": ty, "format": if name == "Name" { "name" } else { "" }, "description": desc, "priority": priority});
        if ty == "date" {
            d["format"] = json!("");
        }
        d
    };
    if rt.custom {
        defs.push(col_def(
            "Name",
            "string",
            0,
            "Name must be unique within a namespace.",
        ));
        for c in &custom_cols {
            defs.push(col_def(&c.name, &c.type_, c.priority, &c.description));
        }
    } else if generic {
        defs.push(col_def(
            "Name",
            "string",
            0,
            "Name must be unique within a namespace.",
        ));
        defs.push(col_def("Created At", "date", 0, "CreationTimestamp is a timestamp representing the server time when this object was created."));
    } else if let Some((cols, _)) = builtin_row(rt, objs.first().unwrap_or(&json!({}))) {
        for c in cols {
            defs.push(col_def(c.name, c.ty, c.priority, ""));
        }
    }
    for o in objs {
        let cells: Vec<Value> = if rt.custom {
            let mut v = vec![json!(meta_str(o, "name").unwrap_or(""))];
            v.extend(custom_cols.iter().map(|c| custom_cell(o, c)));
            v
        } else if generic {
            vec![
                json!(meta_str(o, "name").unwrap_or("")),
                json!(meta_str(o, "creationTimestamp").unwrap_or("")),
            ]
        } else {
            builtin_row(rt, o)
                .map(|(_, cells)| cells)
                .unwrap_or_default()
        };
        let mut row = json!({"cells": cells});
        match include {
            "None" => {}
            "Object" => row["object"] = o.clone(),
            _ => {
                let mut m = o.get("metadata").cloned().unwrap_or(json!({}));
                if let Some(mm) = m.as_object_mut() {
                    mm.shift_remove("managedFields");
                }
                row["object"] = json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": m});
            }
        }
        rows.push(row);
    }
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": Value::Object(meta), "columnDefinitions": defs, "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::builtin_types;

    #[test]
    fn pod_rows() {
        let rt = builtin_types()
            .into_iter()
            .find(|t| t.kind == "Pod")
            .unwrap();
        let pod = json!({"metadata": {"name": "p", "creationTimestamp": crate::util::now_rfc3339()},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "containerStatuses": [{"ready": true, "restartCount": 2}, {"ready": false, "restartCount": 1}]}});
        let t = to_table(&rt, &[pod], "Metadata", Map::new());
        assert_eq!(t["columnDefinitions"][0]["name"], "Name");
        let cells = &t["rows"][0]["cells"];
        assert_eq!(cells[0], "p");
        assert_eq!(cells[1], "1/2");
        assert_eq!(cells[2], "Running");
        assert_eq!(cells[3], "3");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    }

    #[test]
    fn json_path_subset() {
        let o =
            json!({"spec": {"hosts": ["a", "b"], "gateways": ["g"], "x": [{"n": 1}, {"n": 2}]}});
        assert_eq!(eval_json_path(&o, ".spec.hosts").len(), 1);
        assert_eq!(
            eval_json_path(&o, ".spec.x[*].n"),
            vec![&json!(1), &json!(2)]
        );
        assert_eq!(eval_json_path(&o, ".spec.x[-1].n"), vec![&json!(2)]);
        assert!(eval_json_path(&o, ".spec.none").is_empty());
        let col = PrinterColumn {
            name: "Hosts".into(),
            type_: "string".into(),
            json_path: ".spec.hosts".into(),
            priority: 0,
            description: String::new(),
        };
        assert_eq!(custom_cell(&o, &col), json!("[\"a\",\"b\"]"));
    }
}
