//! Pod Security from the API server: what a namespace's `pod-security.kubernetes.io/enforce`
//! level would say about the pods running there, asked with a server-side dry run of the label
//! change and read from the warnings the response carries.
//!
//! When an update of a Namespace sets a new enforce level, the API server's Pod Security
//! admission evaluates the namespace's existing pods against it and returns every violation as
//! a warning; the update is allowed, and a dry run (`dryRun=All`) persists nothing
//! (<https://kubernetes.io/docs/concepts/security/pod-security-admission/>; the
//! `kubectl label --dry-run=server` recipe of
//! <https://kubernetes.io/docs/tutorials/security/ns-level-pss/>). The warnings are worded as
//! `EvaluatePodsInNamespace` in Kubernetes' `pod-security-admission/admission/admission.go`
//! writes them:
//!
//! * `existing pods in namespace "<ns>" violate the new PodSecurity enforce level "<level>:<version>"`,
//! * then per distinct set of failed checks `<pod>: <reasons>`, `<pod> (and 1 other pod): <reasons>`
//!   or `<pod> (and <n> other pods): <reasons>`, `<pod>` the lexically first pod of the set and
//!   `<reasons>` the checks' titles joined by `, `,
//! * `new PodSecurity enforce level only checked against the first <n> of <m> existing pods`
//!   when the server stopped early (more than 3,000 pods, or out of time), and
//!   `failed to list pods while checking new PodSecurity enforce level` when it could not look.
//!
//! Warnings travel in `Warning` response headers, `299 - "<text>"` (RFC 9111 section 5.5;
//! <https://kubernetes.io/blog/2020/09/03/warnings/>). kube's `Client::request` drops response
//! headers, so the request goes through `Client::send`, which returns them.

use http::header::WARNING;
use kube::api::{Patch, PatchParams};
use serde::Serialize;
use serde_json::{Value, json};

use super::client::api_error;
use super::{FIELD_MANAGER, PlanError, Target};
use crate::cluster::Connection;

/// The label of the enforced level, and of its version.
pub const ENFORCE_LABEL: &str = "pod-security.kubernetes.io/enforce";
pub const ENFORCE_VERSION_LABEL: &str = "pod-security.kubernetes.io/enforce-version";

/// Pods the API server says the level would reject: the first (by name) of a set of pods
/// failing the same checks, how many more fail them, and the checks' titles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodViolation {
    pub pod: String,
    pub others: usize,
    pub reasons: Vec<String>,
}

impl std::fmt::Display for PodViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.others {
            0 => write!(f, "pod {}: {}", self.pod, self.reasons.join(", ")),
            1 => write!(f, "pod {} (and 1 other pod): {}", self.pod, self.reasons.join(", ")),
            n => write!(f, "pod {} (and {n} other pods): {}", self.pod, self.reasons.join(", ")),
        }
    }
}

/// The API server's answer for one namespace and level.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSecurityAnswer {
    /// The level the server evaluated (`restricted:latest`), when it reported violations.
    pub level: Option<String>,
    pub violations: Vec<PodViolation>,
    /// Why not every pod was evaluated (the server's own words), if it says so.
    pub incomplete: Vec<String>,
    /// Other warnings of the response, as they came.
    pub other: Vec<String>,
}

impl PodSecurityAnswer {
    /// Whether the server evaluated every pod and found nothing to reject.
    pub fn clean(&self) -> bool {
        self.violations.is_empty() && self.incomplete.is_empty()
    }
}

/// The texts of one `Warning` header value: one or more `<code> <agent> "<text>" ["<date>"]`,
/// comma-separated (RFC 9110 quoted strings, `\` escaping the next character). Values that do
/// not have this form are returned whole.
pub fn parse_warning_header(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = value.trim();
    while !rest.is_empty() {
        // code and agent, then the quoted text
        let mut parts = rest.splitn(3, ' ');
        let (Some(code), Some(_agent), Some(tail)) = (parts.next(), parts.next(), parts.next()) else {
            out.push(rest.to_string());
            break;
        };
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) || !tail.starts_with('"') {
            out.push(rest.to_string());
            break;
        }
        let Some((text, after)) = quoted(tail) else {
            out.push(rest.to_string());
            break;
        };
        out.push(text);
        let mut after = after.trim_start();
        // An optional warn-date, itself quoted.
        if after.starts_with('"')
            && let Some((_, a)) = quoted(after)
        {
            after = a.trim_start();
        }
        rest = after.strip_prefix(',').unwrap_or(after).trim_start();
        if !after.starts_with(',') && !after.is_empty() {
            out.push(after.to_string());
            break;
        }
    }
    out
}

/// The content of the quoted string at the start of `s`, and what follows it.
fn quoted(s: &str) -> Option<(String, &str)> {
    let mut text = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => text.push(chars.next()?.1),
            '"' => return Some((text, &s[i + 1..])),
            c => text.push(c),
        }
    }
    None
}

/// Sort the warnings of a namespace label change into the answer.
pub fn interpret(namespace: &str, warnings: &[String]) -> PodSecurityAnswer {
    let mut answer = PodSecurityAnswer::default();
    let header = format!("existing pods in namespace \"{namespace}\" violate the new PodSecurity enforce level \"");
    let mut in_block = false;
    for w in warnings {
        if let Some(level) = w.strip_prefix(&header).and_then(|l| l.strip_suffix('"')) {
            answer.level = Some(level.to_string());
            in_block = true;
            continue;
        }
        if w.starts_with("new PodSecurity enforce level only checked against") || w.starts_with("failed to list pods while checking new PodSecurity") {
            answer.incomplete.push(w.clone());
            continue;
        }
        match in_block.then(|| pod_line(w)).flatten() {
            Some(v) => answer.violations.push(v),
            None => answer.other.push(w.clone()),
        }
    }
    answer
}

/// `<pod>[ (and N other pod[s])]: <reasons>`.
fn pod_line(w: &str) -> Option<PodViolation> {
    let (head, reasons) = w.split_once(": ")?;
    let (pod, others) = match head.split_once(" (and ") {
        Some((pod, tail)) => {
            let n = tail.strip_suffix(" other pod)").or_else(|| tail.strip_suffix(" other pods)"))?;
            (pod, n.parse().ok()?)
        }
        None => (head, 0),
    };
    if pod.is_empty() || pod.contains(' ') {
        return None;
    }
    Some(PodViolation { pod: pod.to_string(), others, reasons: reasons.split(", ").map(str::to_string).collect() })
}

/// Ask the API server what enforcing `level` (`baseline`, `restricted`) on `namespace` would say
/// about its pods: a server-side dry run of the label change, which persists nothing. When the
/// namespace enforces that level already (the server would evaluate nothing), the dry run names
/// the server's own version instead of `latest`, which is the same rules and makes the server
/// look again.
pub async fn pod_security_dry_run(conn: &Connection, namespace: &str, level: &str) -> Result<PodSecurityAnswer, PlanError> {
    let target = Target::namespace(namespace);
    let current = super::client::get(conn, &target).await?;
    let label = |k: &str| current.as_ref().and_then(|ns| ns.pointer(&super::label_pointer(k))).and_then(Value::as_str).map(str::to_string);
    let mut version = "latest".to_string();
    if label(ENFORCE_LABEL).as_deref() == Some(level) && label(ENFORCE_VERSION_LABEL).as_deref().unwrap_or("latest") == "latest" {
        let info = conn.client.apiserver_version().await.map_err(|e| api_error(conn, "get", &target, e))?;
        version = format!("v{}.{}", info.major, info.minor.trim_end_matches('+'));
    }
    let patch = json!({"metadata": {"labels": {ENFORCE_LABEL: level, ENFORCE_VERSION_LABEL: version}}});
    let params = PatchParams { dry_run: true, field_manager: Some(FIELD_MANAGER.to_string()), ..PatchParams::default() };
    let req = kube::core::Request::new("/api/v1/namespaces")
        .patch(namespace, &params, &Patch::Merge(&patch))
        .map_err(|e| api_error(conn, "patch", &target, kube::Error::BuildRequest(e)))?;
    let res = conn.client.send(req.map(kube::client::Body::from)).await.map_err(|e| api_error(conn, "patch", &target, e))?;
    let status = res.status();
    let warnings: Vec<String> =
        res.headers().get_all(WARNING).iter().filter_map(|v| v.to_str().ok()).flat_map(parse_warning_header).collect();
    if status.is_client_error() || status.is_server_error() {
        let body = res.into_body().collect_bytes().await.map_err(|e| api_error(conn, "patch", &target, e))?;
        let text = String::from_utf8_lossy(&body);
        let s = serde_json::from_str::<kube::core::Status>(&text)
            .unwrap_or_else(|_| kube::core::Status::failure(text.trim(), "").with_code(status.as_u16()));
        return Err(api_error(conn, "patch", &target, kube::Error::Api(s.boxed())));
    }
    Ok(interpret(namespace, &warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warning_headers_parse_as_rfc_9111_writes_them() {
        assert_eq!(parse_warning_header(r#"299 - "a \"quoted\" word""#), ["a \"quoted\" word"]);
        assert_eq!(parse_warning_header(r#"299 - "one", 299 - "two" "Sat, 01 Jan 2000 00:00:00 GMT""#), ["one", "two"]);
        assert_eq!(parse_warning_header("not a warning"), ["not a warning"]);
    }

    #[test]
    fn namespace_warnings_read_as_the_admission_plugin_words_them() {
        // The documented output (kubernetes.io/docs/tutorials/security/ns-level-pss/).
        let w: Vec<String> = [
            "existing pods in namespace \"kube-system\" violate the new PodSecurity enforce level \"baseline:latest\"",
            "etcd-psa-wo-cluster-pss-control-plane (and 3 other pods): host namespaces, hostPath volumes",
            "kindnet-vzj42: non-default capabilities, host namespaces, hostPath volumes",
            "web (and 1 other pod): privileged",
        ]
        .map(String::from)
        .to_vec();
        let a = interpret("kube-system", &w);
        assert_eq!(a.level.as_deref(), Some("baseline:latest"));
        assert_eq!(a.violations.len(), 3);
        assert_eq!(a.violations[0], PodViolation { pod: "etcd-psa-wo-cluster-pss-control-plane".into(), others: 3, reasons: vec!["host namespaces".into(), "hostPath volumes".into()] });
        assert_eq!(a.violations[2].others, 1);
        assert_eq!(a.violations[1].to_string(), "pod kindnet-vzj42: non-default capabilities, host namespaces, hostPath volumes");
        assert!(!a.clean());
        // Incomplete evaluations are never clean; other warnings are kept apart.
        let b = interpret("shop", &["new PodSecurity enforce level only checked against the first 3000 of 3500 existing pods".into(), "something else".into()]);
        assert!(b.violations.is_empty() && !b.clean() && b.other == ["something else"]);
        assert!(interpret("shop", &[]).clean());
    }
}
