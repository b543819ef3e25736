//! Pod Security admission for namespace label changes, as the real API server runs it: when an
//! update of a Namespace (dry runs included) sets a new `pod-security.kubernetes.io/enforce`
//! level, the existing pods of the namespace are evaluated against it and every violation comes
//! back as a `Warning` header; the update itself is allowed.
//!
//! The wording and grouping follow `EvaluatePodsInNamespace` in Kubernetes'
//! `staging/src/k8s.io/pod-security-admission/admission/admission.go`: a first warning
//! `existing pods in namespace "<ns>" violate the new PodSecurity enforce level "<level>:<version>"`,
//! then one warning per distinct set of failed checks, `<pod>: <reasons>`, where `<pod>` is the
//! lexically first pod with that set, followed by ` (and 1 other pod)` or ` (and N other pods)`;
//! those warnings sorted. The reasons are the failed checks' short titles in the order of the
//! checks' IDs, comma-separated, as `AggregateCheckResults(...).ForbiddenReason()` joins them.
//! The Kubernetes documentation shows the same output
//! (<https://kubernetes.io/docs/tutorials/security/ns-level-pss/>,
//! <https://kubernetes.io/docs/concepts/security/pod-security-admission/>). Warnings travel as
//! `Warning: 299 - "<text>"` headers (RFC 9111 section 5.5, which Kubernetes uses for API
//! warnings: <https://kubernetes.io/blog/2020/09/03/warnings/>).
//!
//! # The checks implemented
//!
//! A faithful subset of the Pod Security Standards
//! (<https://kubernetes.io/docs/concepts/security/pod-security-standards/>), over `containers`,
//! `initContainers` and `ephemeralContainers`, with their check IDs and titles from
//! `pod-security-admission/policy/check_*.go`:
//!
//! | level | check ID | title | fails when |
//! | --- | --- | --- | --- |
//! | baseline | `capabilities_baseline` | non-default capabilities | a container adds a capability outside Docker's default set |
//! | baseline | `hostNamespaces` | host namespaces | `hostNetwork`, `hostPID` or `hostIPC` is true |
//! | baseline | `hostPathVolumes` | hostPath volumes | a volume is `hostPath` |
//! | baseline | `hostPorts` | hostPort | a container port sets a non-zero `hostPort` |
//! | baseline | `privileged` | privileged | a container is `privileged` |
//! | baseline | `procMount` | procMount | a container's `procMount` is set and not `Default` |
//! | baseline | `seccompProfile_baseline` | seccompProfile | the pod or a container sets `Unconfined` |
//! | baseline | `sysctls` | forbidden sysctls | a sysctl outside the safe set |
//! | restricted | `allowPrivilegeEscalation` | allowPrivilegeEscalation != false | a container does not set it to false |
//! | restricted | `capabilities_restricted` | unrestricted capabilities | a container does not drop `ALL`, or adds anything but `NET_BIND_SERVICE` |
//! | restricted | `restrictedVolumes` | restricted volume types | a volume of a type outside configMap, csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, projected, secret |
//! | restricted | `runAsNonRoot` | runAsNonRoot != true | neither the pod nor every container sets it true, or one sets it false |
//! | restricted | `runAsUser` | runAsUser=0 | the pod or a container runs as user 0 |
//! | restricted | `seccompProfile_restricted` | seccompProfile | neither the pod nor every container sets `RuntimeDefault` or `Localhost` (replaces the baseline check) |
//!
//! Not implemented: AppArmor, SELinux options, Windows `hostProcess`, the `runAsGroup`-free
//! older versions of the standards (every version is treated as `latest`), exemptions
//! (usernames, namespaces, runtime classes), and the 3,000-pod and time limits of the real
//! evaluation (the double's namespaces are small).

use serde_json::Value;

use crate::store::{ListQuery, State};

/// The namespace label of the enforced level.
pub const ENFORCE_LABEL: &str = "pod-security.kubernetes.io/enforce";
/// The namespace label of the enforced version.
pub const ENFORCE_VERSION_LABEL: &str = "pod-security.kubernetes.io/enforce-version";

/// The Pod Security levels, from least to most restrictive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    fn parse(s: &str) -> Option<Level> {
        match s {
            "privileged" => Some(Level::Privileged),
            "baseline" => Some(Level::Baseline),
            "restricted" => Some(Level::Restricted),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

/// Docker's default capabilities, which baseline lets containers add.
const DEFAULT_CAPABILITIES: [&str; 13] = [
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP",
    "SETUID", "SYS_CHROOT",
];

/// The sysctls baseline allows.
const SAFE_SYSCTLS: [&str; 9] = [
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
];

/// The volume types restricted allows.
const RESTRICTED_VOLUMES: [&str; 8] = ["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"];

fn containers(spec: &Value) -> Vec<&Value> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .filter_map(|k| spec.get(*k).and_then(Value::as_array))
        .flatten()
        .collect()
}

fn sc<'a>(c: &'a Value, path: &str) -> Option<&'a Value> {
    c.pointer(&format!("/securityContext{path}"))
}

fn strs(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

fn seccomp(t: Option<&Value>) -> Option<&str> {
    t.and_then(Value::as_str)
}

/// The titles of the checks of `level` that the pod `spec` fails, in the order of the check IDs.
pub fn failed_checks(spec: &Value, level: Level) -> Vec<&'static str> {
    let mut out: Vec<(&'static str, &'static str)> = Vec::new();
    if level == Level::Privileged {
        return Vec::new();
    }
    let cs = containers(spec);
    let pod = |path: &str| spec.pointer(&format!("/securityContext{path}"));
    let volumes: Vec<&Value> = spec.get("volumes").and_then(Value::as_array).map(|v| v.iter().collect()).unwrap_or_default();
    // Baseline.
    if cs.iter().any(|c| strs(sc(c, "/capabilities/add")).iter().any(|cap| !DEFAULT_CAPABILITIES.contains(cap))) {
        out.push(("capabilities_baseline", "non-default capabilities"));
    }
    if ["hostNetwork", "hostPID", "hostIPC"].iter().any(|k| spec.get(*k).and_then(Value::as_bool) == Some(true)) {
        out.push(("hostNamespaces", "host namespaces"));
    }
    if volumes.iter().any(|v| v.get("hostPath").is_some()) {
        out.push(("hostPathVolumes", "hostPath volumes"));
    }
    if cs.iter().any(|c| {
        c.get("ports").and_then(Value::as_array).into_iter().flatten().any(|p| p.get("hostPort").and_then(Value::as_i64).is_some_and(|h| h != 0))
    }) {
        out.push(("hostPorts", "hostPort"));
    }
    if cs.iter().any(|c| sc(c, "/privileged").and_then(Value::as_bool) == Some(true)) {
        out.push(("privileged", "privileged"));
    }
    if cs.iter().any(|c| sc(c, "/procMount").and_then(Value::as_str).is_some_and(|m| m != "Default")) {
        out.push(("procMount", "procMount"));
    }
    if spec
        .pointer("/securityContext/sysctls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|s| !s.get("name").and_then(Value::as_str).is_some_and(|n| SAFE_SYSCTLS.contains(&n)))
    {
        out.push(("sysctls", "forbidden sysctls"));
    }
    if level == Level::Baseline {
        let unconfined = seccomp(pod("/seccompProfile/type")) == Some("Unconfined")
            || cs.iter().any(|c| seccomp(sc(c, "/seccompProfile/type")) == Some("Unconfined"));
        if unconfined {
            out.push(("seccompProfile_baseline", "seccompProfile"));
        }
    }
    if level == Level::Restricted {
        if cs.iter().any(|c| sc(c, "/allowPrivilegeEscalation").and_then(Value::as_bool) != Some(false)) {
            out.push(("allowPrivilegeEscalation", "allowPrivilegeEscalation != false"));
        }
        if cs.iter().any(|c| {
            !strs(sc(c, "/capabilities/drop")).contains(&"ALL") || strs(sc(c, "/capabilities/add")).iter().any(|cap| *cap != "NET_BIND_SERVICE")
        }) {
            out.push(("capabilities_restricted", "unrestricted capabilities"));
        }
        if volumes.iter().any(|v| {
            v.as_object().is_some_and(|m| m.keys().filter(|k| *k != "name").any(|k| !RESTRICTED_VOLUMES.contains(&k.as_str())))
        }) {
            out.push(("restrictedVolumes", "restricted volume types"));
        }
        let pod_non_root = pod("/runAsNonRoot").and_then(Value::as_bool);
        let non_root_ok = pod_non_root != Some(false)
            && cs.iter().all(|c| match sc(c, "/runAsNonRoot").and_then(Value::as_bool) {
                Some(v) => v,
                None => pod_non_root == Some(true),
            });
        if !non_root_ok {
            out.push(("runAsNonRoot", "runAsNonRoot != true"));
        }
        if pod("/runAsUser").and_then(Value::as_i64) == Some(0) || cs.iter().any(|c| sc(c, "/runAsUser").and_then(Value::as_i64) == Some(0)) {
            out.push(("runAsUser", "runAsUser=0"));
        }
        let allowed = |t: Option<&str>| matches!(t, Some("RuntimeDefault" | "Localhost"));
        let pod_type = seccomp(pod("/seccompProfile/type"));
        let seccomp_ok = (pod_type.is_none() || allowed(pod_type))
            && cs.iter().all(|c| match seccomp(sc(c, "/seccompProfile/type")) {
                Some(t) => allowed(Some(t)),
                None => allowed(pod_type),
            });
        if !seccomp_ok {
            out.push(("seccompProfile_restricted", "seccompProfile"));
        }
    }
    // The order of the check IDs (Go's byte-wise string order).
    out.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    out.into_iter().map(|(_, title)| title).collect()
}

/// The enforce level and version a namespace's labels set (`None`: no valid level label).
fn enforce_of(ns: &Value) -> Option<(Level, String)> {
    let labels = ns.pointer("/metadata/labels")?;
    let level = Level::parse(labels.get(ENFORCE_LABEL)?.as_str()?)?;
    let version = labels.get(ENFORCE_VERSION_LABEL).and_then(Value::as_str).unwrap_or("latest").to_string();
    Some((level, version))
}

/// The warnings for the existing `pods` of namespace `namespace` under a new enforce level.
pub fn evaluate_pods(namespace: &str, level: Level, version: &str, pods: &[Value]) -> Vec<String> {
    // Per distinct reason: the lexically first pod and the count, in order of first sight.
    let mut groups: Vec<(String, String, usize)> = Vec::new();
    for p in pods {
        let Some(spec) = p.get("spec") else { continue };
        let failed = failed_checks(spec, level);
        if failed.is_empty() {
            continue;
        }
        let reason = failed.join(", ");
        let name = p.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
        match groups.iter_mut().find(|g| g.0 == reason) {
            Some(g) => {
                if name < g.1 {
                    g.1 = name;
                }
                g.2 += 1;
            }
            None => groups.push((reason, name, 1)),
        }
    }
    if groups.is_empty() {
        return Vec::new();
    }
    let mut out = vec![format!(
        "existing pods in namespace {} violate the new PodSecurity enforce level {}",
        go_quote(namespace),
        go_quote(&format!("{}:{version}", level.name()))
    )];
    let mut per_pod: Vec<String> = groups
        .into_iter()
        .map(|(reason, pod, n)| match n {
            1 => format!("{pod}: {reason}"),
            2 => format!("{pod} (and 1 other pod): {reason}"),
            n => format!("{pod} (and {} other pods): {reason}", n - 1),
        })
        .collect();
    per_pod.sort();
    out.extend(per_pod);
    out
}

/// Go's `%q` for the plain strings used here (names and levels): quotes, with `"` and `\`
/// escaped.
fn go_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The warnings for an update of Namespace `old` to `new`: none unless the update sets an
/// enforce level that is not privileged and differs from the old one (level or version), as
/// `ValidateNamespace` decides.
pub fn namespace_update_warnings(st: &State, old: &Value, new: &Value) -> Vec<String> {
    let Some((level, version)) = enforce_of(new) else { return Vec::new() };
    if level == Level::Privileged || enforce_of(old) == Some((level, version.clone())) {
        return Vec::new();
    }
    let Some(name) = new.pointer("/metadata/name").and_then(Value::as_str) else { return Vec::new() };
    let Some(rt) = st.registry.find_kind("", "v1", "Pod") else { return Vec::new() };
    let pods: Vec<Value> = match st.list(&rt, Some(name), &ListQuery::default()) {
        Ok(page) => page.items.iter().map(|s| (*s.obj).clone()).collect(),
        Err(_) => return vec!["failed to list pods while checking new PodSecurity enforce level".to_string()],
    };
    evaluate_pods(name, level, &version, &pods)
}

/// A `Warning` header value for `text`: code 299, agent `-`, the text quoted.
pub fn warning_header(text: &str) -> String {
    format!("299 - {}", go_quote(text))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(name: &str, spec: Value) -> Value {
        json!({"metadata": {"name": name}, "spec": spec})
    }

    fn restricted_container() -> Value {
        json!({"name": "app", "image": "x", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}})
    }

    #[test]
    fn a_default_container_fails_restricted_as_the_documentation_shows() {
        // The documented output for a container without a securityContext:
        // "allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile".
        let spec = json!({"containers": [{"name": "app", "image": "x"}]});
        assert_eq!(failed_checks(&spec, Level::Restricted).join(", "), "allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile");
        assert!(failed_checks(&spec, Level::Baseline).is_empty());
        // Baseline's documented order: "non-default capabilities, host namespaces, hostPath volumes".
        let node_agent = json!({"hostNetwork": true, "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
            "containers": [{"name": "a", "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"]}}}]});
        assert_eq!(failed_checks(&node_agent, Level::Baseline).join(", "), "non-default capabilities, host namespaces, hostPath volumes");
        // "host namespaces, hostPath volumes, privileged".
        let proxy = json!({"hostNetwork": true, "volumes": [{"name": "h", "hostPath": {"path": "/"}}], "containers": [{"name": "a", "securityContext": {"privileged": true}}]});
        assert_eq!(failed_checks(&proxy, Level::Baseline).join(", "), "host namespaces, hostPath volumes, privileged");
    }

    #[test]
    fn restricted_passes_a_hardened_pod_and_names_each_gap() {
        let mut spec = json!({"securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}}, "containers": [restricted_container()],
            "volumes": [{"name": "c", "configMap": {"name": "c"}}]});
        assert!(failed_checks(&spec, Level::Restricted).is_empty());
        spec["containers"][0]["securityContext"]["runAsUser"] = json!(0);
        spec["volumes"][0] = json!({"name": "n", "nfs": {"server": "s", "path": "/"}});
        assert_eq!(failed_checks(&spec, Level::Restricted), ["restricted volume types", "runAsUser=0"]);
        // A container overriding runAsNonRoot to false; an Unconfined profile fails both levels.
        let mut other = json!({"securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "Unconfined"}}, "containers": [restricted_container()]});
        other["containers"][0]["securityContext"]["runAsNonRoot"] = json!(false);
        other["containers"][0]["securityContext"]["procMount"] = json!("Unmasked");
        assert_eq!(failed_checks(&other, Level::Restricted), ["procMount", "runAsNonRoot != true", "seccompProfile"]);
        assert_eq!(failed_checks(&other, Level::Baseline), ["procMount", "seccompProfile"]);
        // NET_BIND_SERVICE is the only capability restricted lets a container add.
        let mut add = json!({"securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}}, "containers": [restricted_container()]});
        add["containers"][0]["securityContext"]["capabilities"]["add"] = json!(["NET_BIND_SERVICE"]);
        assert!(failed_checks(&add, Level::Restricted).is_empty());
        add["containers"][0]["securityContext"]["capabilities"]["add"] = json!(["CHOWN"]);
        assert_eq!(failed_checks(&add, Level::Restricted), ["unrestricted capabilities"]);
        assert!(failed_checks(&add, Level::Baseline).is_empty(), "CHOWN is a default capability");
    }

    #[test]
    fn namespace_warnings_group_pods_as_the_admission_plugin_does() {
        let loose = json!({"containers": [{"name": "app", "image": "x"}]});
        let host = json!({"hostPID": true, "containers": [{"name": "app", "image": "x"}]});
        let pods = vec![pod("web-2", loose.clone()), pod("web-1", loose.clone()), pod("api-0", loose), pod("agent", host), pod("ok", json!({}))];
        let w = evaluate_pods("shop", Level::Restricted, "latest", &pods);
        assert_eq!(
            w,
            [
                "existing pods in namespace \"shop\" violate the new PodSecurity enforce level \"restricted:latest\"",
                "agent: allowPrivilegeEscalation != false, unrestricted capabilities, host namespaces, runAsNonRoot != true, seccompProfile",
                "api-0 (and 2 other pods): allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile",
            ]
        );
        assert_eq!(evaluate_pods("shop", Level::Baseline, "v1.37", &pods)[1], "agent: host namespaces");
        assert!(evaluate_pods("shop", Level::Baseline, "latest", &pods[..3]).is_empty());
        assert_eq!(warning_header("a \"b\""), "299 - \"a \\\"b\\\"\"");
    }
}
