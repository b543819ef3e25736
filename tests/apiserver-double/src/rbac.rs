//! Authentication by bearer token, impersonation and RBAC authorization, as the Kubernetes API
//! server does them, for a double started with [`DoubleOptions::rbac`](crate::DoubleOptions).
//!
//! Sources, by rule:
//!
//! * Request attributes (verb, API group, resource, subresource, namespace, name, non-resource
//!   path): the apiserver's `RequestInfoFactory`
//!   (`staging/src/k8s.io/apiserver/pkg/endpoints/request/requestinfo.go`): `GET` on a collection
//!   is `list` (`watch` with `?watch=true`), `DELETE` on a collection is `deletecollection`, a
//!   list or watch whose field selector requires `metadata.name=N` carries the name `N`, a request
//!   on `namespaces/N` (or its `status`/`finalize` subresources) has namespace `N`, and every path
//!   that is not `/api/v1/...` or `/apis/G/V/...` with a resource (discovery, `/version`,
//!   `/openapi/...`) is a non-resource request whose verb is the lower-cased HTTP method.
//! * Rule matching: "Using RBAC Authorization",
//!   <https://kubernetes.io/docs/reference/access-authn-authz/rbac/> ("Referring to resources":
//!   `resource/subresource`, `*` for every verb, group or resource, `resourceNames` that cannot
//!   restrict `list`, `watch`, `create` or `deletecollection` since those requests carry no name;
//!   non-resource URLs with a trailing `*` as a prefix match), encoded as in
//!   `pkg/apis/rbac/v1/evaluation_helpers.go` (`VerbMatches`, `APIGroupMatches`,
//!   `ResourceMatches` incl. `*/subresource`, `ResourceNameMatches`, `NonResourceURLMatches`).
//! * Bindings: `plugin/pkg/auth/authorizer/rbac/rbac.go` and `pkg/registry/rbac/validation/rule.go`
//!   (`VisitRulesFor`): ClusterRoleBindings grant their ClusterRole everywhere; a RoleBinding
//!   grants its Role, or the ClusterRole it names, only for requests in the binding's namespace
//!   (so never for cluster-scoped resources or non-resource URLs); a ServiceAccount subject
//!   without a namespace means the binding's namespace; a binding whose role does not exist
//!   grants nothing and its error is the denial's reason (`RBAC: clusterrole... "x" not found`).
//!   RBAC only allows; there are no deny rules.
//! * Default roles ("Default roles and role bindings" in the RBAC page): `system:discovery`,
//!   `system:basic-user` and `system:public-info-viewer` bound to `system:authenticated`, and
//!   `system:public-info-viewer` to `system:unauthenticated`. The `system:masters` group is
//!   allowed everything without RBAC, as the apiserver's privileged-group authorizer does.
//!   The defaults are evaluated as if stored, but are not objects of the double (so snapshots
//!   stay as the test made them). Aggregated ClusterRoles (`aggregationRule`) are not filled.
//! * Authentication: "Authenticating",
//!   <https://kubernetes.io/docs/reference/access-authn-authz/authentication/>: a bearer token
//!   names a user and its groups, every authenticated user is in `system:authenticated`; a request
//!   without credentials is `system:anonymous` in `system:unauthenticated`; an unknown token is
//!   401. Service account users are `system:serviceaccount:NS:NAME` in `system:serviceaccounts`
//!   and `system:serviceaccounts:NS`.
//! * Impersonation ("User impersonation" on the same page, and
//!   `staging/src/k8s.io/apiserver/pkg/endpoints/filters/impersonation.go`): `Impersonate-User`
//!   needs the `impersonate` verb on `users` named the user (on `serviceaccounts` in the account's
//!   namespace for a service account user), each `Impersonate-Group` on `groups`, `Impersonate-Uid`
//!   on `uids` and each `Impersonate-Extra-KEY` on `userextras/KEY` (the last two in API group
//!   `authentication.k8s.io`); a refusal is a 403 naming the impersonation; groups without a user
//!   are refused; the request is then authorized as the impersonated user, who is in
//!   `system:authenticated` (unless it is `system:anonymous`).

use serde_json::{Value, json};
use std::collections::BTreeMap;

use crate::status::ApiError;

/// The RBAC API group.
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
/// Every authenticated user's group.
pub const AUTHENTICATED: &str = "system:authenticated";
/// The group of requests without credentials.
pub const UNAUTHENTICATED: &str = "system:unauthenticated";
/// The group allowed everything without RBAC.
pub const MASTERS: &str = "system:masters";
/// The user of requests without credentials.
pub const ANONYMOUS: &str = "system:anonymous";
const SA_PREFIX: &str = "system:serviceaccount:";

/// Who sends a request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserInfo {
    /// User name.
    pub name: String,
    /// Groups (the authenticator's, plus the implied `system:*` groups).
    pub groups: Vec<String>,
}

impl UserInfo {
    /// A user authenticated by a token: `groups` plus `system:authenticated`, and for service
    /// account users `system:serviceaccounts` and `system:serviceaccounts:NS`.
    pub fn authenticated(name: &str, groups: &[&str]) -> UserInfo {
        let mut g: Vec<String> = groups.iter().map(|s| s.to_string()).collect();
        if let Some((ns, _)) = service_account(name) {
            for sa in [
                "system:serviceaccounts".to_string(),
                format!("system:serviceaccounts:{ns}"),
            ] {
                if !g.contains(&sa) {
                    g.push(sa);
                }
            }
        }
        if name != ANONYMOUS && !g.iter().any(|x| x == AUTHENTICATED) {
            g.push(AUTHENTICATED.to_string());
        }
        UserInfo {
            name: name.to_string(),
            groups: g,
        }
    }

    /// The user of a request without credentials.
    pub fn anonymous() -> UserInfo {
        UserInfo {
            name: ANONYMOUS.into(),
            groups: vec![UNAUTHENTICATED.into()],
        }
    }
}

/// `(namespace, name)` of a `system:serviceaccount:NS:NAME` user.
fn service_account(user: &str) -> Option<(&str, &str)> {
    let rest = user.strip_prefix(SA_PREFIX)?;
    let (ns, name) = rest.split_once(':')?;
    (!ns.is_empty() && !name.is_empty() && !name.contains(':')).then_some((ns, name))
}

/// What a request asks to do, as the authorizer sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attributes {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`,
    /// `impersonate`, ...; for non-resource requests the lower-cased HTTP method.
    pub verb: String,
    /// Whether this is a request on an API resource (else on a non-resource path).
    pub resource_request: bool,
    /// API group (`""` for the core group).
    pub api_group: String,
    /// Resource (plural).
    pub resource: String,
    /// Subresource (`status`, `scale`, `log`, ...) or empty.
    pub subresource: String,
    /// Namespace or empty (cluster scope).
    pub namespace: String,
    /// Object name or empty.
    pub name: String,
    /// The request path (used for non-resource requests).
    pub path: String,
}

/// Namespace subresources that stay on the `namespaces` resource (`requestinfo.go`).
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];

/// The authorizer's attributes of an HTTP request (`RequestInfoFactory.NewRequestInfo`).
/// `params` are the decoded query parameters.
pub fn request_attributes(method: &str, path: &str, params: &[(String, String)]) -> Attributes {
    let param = |n: &str| params.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    let non_resource = || Attributes {
        verb: method.to_ascii_lowercase(),
        resource_request: false,
        path: path.to_string(),
        ..Attributes::default()
    };
    let parts: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (group, rest) = match parts.as_slice() {
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return non_resource(),
    };
    if rest.is_empty() {
        // `/api/v1`, `/apis/G/V`: discovery documents.
        return non_resource();
    }
    let mut verb = match method {
        "POST" => "create",
        "GET" | "HEAD" => "get",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" => "delete",
        _ => "",
    }
    .to_string();
    let mut current: &[&str] = rest;
    let mut namespace = String::new();
    if current[0] == "namespaces" && current.len() > 1 {
        namespace = current[1].to_string();
        if current.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&current[2]) {
            current = &current[2..];
        }
    }
    let resource = current[0].to_string();
    let name = current.get(1).map(|s| s.to_string()).unwrap_or_default();
    let subresource = if current.len() >= 3 {
        current[2].to_string()
    } else {
        String::new()
    };
    let mut attrs = Attributes {
        verb: String::new(),
        resource_request: true,
        api_group: group.to_string(),
        resource,
        subresource,
        namespace,
        name,
        path: path.to_string(),
    };
    if attrs.name.is_empty() && verb == "get" {
        verb = if matches!(param("watch"), Some("true" | "1")) {
            "watch".into()
        } else {
            "list".into()
        };
        // A list or watch of one object by field selector is authorized as a request on that name.
        if let Some(fs) = param("fieldSelector") {
            for term in fs.split(',') {
                let term = term.trim();
                let value = term
                    .strip_prefix("metadata.name==")
                    .or_else(|| term.strip_prefix("metadata.name="));
                if let Some(v) = value
                    && !v.is_empty()
                    && !v.contains('/')
                    && v != "."
                    && v != ".."
                {
                    attrs.name = v.to_string();
                }
            }
        }
    }
    if attrs.name.is_empty() && verb == "delete" {
        verb = "deletecollection".into();
    }
    attrs.verb = verb;
    attrs
}

/// A request denied: the `403` body in the apiserver's wording (`responsewriters.Forbidden`:
/// `pods "x" is forbidden: User "u" cannot get resource "pods" in API group "" in the namespace
/// "n"`, `forbidden: User "u" cannot get path "/x"` for non-resource paths, `: REASON` appended
/// when the authorizer gave one).
pub fn forbidden(user: &str, a: &Attributes, reason: &str) -> ApiError {
    let suffix = if reason.is_empty() {
        String::new()
    } else {
        format!(": {reason}")
    };
    if !a.resource_request {
        return ApiError::new(
            403,
            "Forbidden",
            format!(
                "forbidden: User \"{user}\" cannot {} path \"{}\"{suffix}",
                a.verb, a.path
            ),
        )
        .with_details(json!({}));
    }
    let sub = (!a.subresource.is_empty()).then_some(a.subresource.as_str());
    let ns = (!a.namespace.is_empty()).then_some(a.namespace.as_str());
    let name = (!a.name.is_empty()).then_some(a.name.as_str());
    let mut e = ApiError::forbidden(user, &a.verb, &a.api_group, &a.resource, sub, ns, name);
    e.message.push_str(&suffix);
    e
}

/// The authorizer's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed; the reason names the binding (`RBAC: allowed by ClusterRoleBinding "b" of
    /// ClusterRole "r" to User "u"`), or the privileged group.
    Allow(String),
    /// No rule allows it; the reason is empty or lists the bindings whose role is missing.
    Deny(String),
}

impl Decision {
    /// Whether the request is allowed.
    pub fn allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }
}

fn strs<'a>(v: &'a Value, key: &str) -> Vec<&'a str> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn meta<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get("metadata")
        .and_then(|m| m.get(key))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// One `PolicyRule` matches the request (`RuleAllows` in `evaluation_helpers.go`).
pub fn rule_allows(rule: &Value, a: &Attributes) -> bool {
    let verbs = strs(rule, "verbs");
    if !verbs.iter().any(|v| *v == "*" || *v == a.verb) {
        return false;
    }
    if !a.resource_request {
        return strs(rule, "nonResourceURLs").iter().any(|u| {
            *u == "*"
                || *u == a.path
                || (u.ends_with('*') && a.path.starts_with(u.trim_end_matches('*')))
        });
    }
    if !strs(rule, "apiGroups")
        .iter()
        .any(|g| *g == "*" || *g == a.api_group)
    {
        return false;
    }
    let combined = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let resource_ok = strs(rule, "resources").iter().any(|r| {
        *r == "*"
            || *r == combined
            || (!a.subresource.is_empty()
                && r.strip_prefix("*/").is_some_and(|s| s == a.subresource))
    });
    if !resource_ok {
        return false;
    }
    let names = strs(rule, "resourceNames");
    names.is_empty() || names.contains(&a.name.as_str())
}

/// Whether a binding's subject is the user (`appliesToUser` in `rbac.go`). `namespace` is the
/// binding's namespace (empty for a ClusterRoleBinding).
fn subject_applies(subject: &Value, user: &UserInfo, namespace: &str) -> bool {
    let name = subject.get("name").and_then(Value::as_str).unwrap_or("");
    match subject.get("kind").and_then(Value::as_str).unwrap_or("") {
        "User" => user.name == name,
        "Group" => user.groups.iter().any(|g| g == name),
        "ServiceAccount" => {
            let ns = subject
                .get("namespace")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .unwrap_or(namespace);
            !ns.is_empty() && user.name == format!("{SA_PREFIX}{ns}:{name}")
        }
        _ => false,
    }
}

fn describe_subject(subject: &Value, binding_namespace: &str) -> String {
    let kind = subject.get("kind").and_then(Value::as_str).unwrap_or("");
    let name = subject.get("name").and_then(Value::as_str).unwrap_or("");
    if kind == "ServiceAccount" {
        let ns = subject
            .get("namespace")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or(binding_namespace);
        format!("{kind} \"{name}/{ns}\"")
    } else {
        format!("{kind} \"{name}\"")
    }
}

/// The RBAC objects a request is judged by: the stored Roles, ClusterRoles and their bindings,
/// plus the default discovery roles.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    cluster_roles: BTreeMap<String, Value>,
    roles: BTreeMap<(String, String), Value>,
    cluster_role_bindings: Vec<Value>,
    role_bindings: Vec<Value>,
}

impl Policy {
    /// A policy of `objects` (other kinds are ignored) plus the default roles and bindings.
    pub fn new<'a>(objects: impl IntoIterator<Item = &'a Value>) -> Policy {
        let mut p = Policy::default();
        for o in defaults().iter().chain(objects) {
            p.add(o);
        }
        p
    }

    /// A policy of `objects` only, without the default roles (for tests of the rules alone).
    pub fn without_defaults<'a>(objects: impl IntoIterator<Item = &'a Value>) -> Policy {
        let mut p = Policy::default();
        for o in objects {
            p.add(o);
        }
        p
    }

    fn add(&mut self, o: &Value) {
        let api_version = o.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        if api_version.split('/').next() != Some(RBAC_GROUP) {
            return;
        }
        let name = meta(o, "name").to_string();
        match o.get("kind").and_then(Value::as_str).unwrap_or("") {
            "ClusterRole" => {
                self.cluster_roles.insert(name, o.clone());
            }
            "Role" => {
                self.roles
                    .insert((meta(o, "namespace").to_string(), name), o.clone());
            }
            "ClusterRoleBinding" => self.cluster_role_bindings.push(o.clone()),
            "RoleBinding" => self.role_bindings.push(o.clone()),
            _ => {}
        }
    }

    /// The rules a binding's `roleRef` names, or the error the real authorizer records.
    fn role_rules(&self, binding: &Value, namespace: &str) -> Result<Vec<&Value>, String> {
        let role_ref = binding.get("roleRef").cloned().unwrap_or(Value::Null);
        let kind = role_ref.get("kind").and_then(Value::as_str).unwrap_or("");
        let name = role_ref.get("name").and_then(Value::as_str).unwrap_or("");
        let role = match kind {
            "ClusterRole" => self.cluster_roles.get(name).ok_or_else(|| {
                format!("clusterrole.rbac.authorization.k8s.io \"{name}\" not found")
            })?,
            "Role" if !namespace.is_empty() => self
                .roles
                .get(&(namespace.to_string(), name.to_string()))
                .ok_or_else(|| format!("role.rbac.authorization.k8s.io \"{name}\" not found"))?,
            other => return Err(format!("unsupported role reference kind: {other:?}")),
        };
        Ok(role
            .get("rules")
            .and_then(Value::as_array)
            .map(|r| r.iter().collect())
            .unwrap_or_default())
    }

    /// Authorizes `a` for `user`.
    pub fn authorize(&self, user: &UserInfo, a: &Attributes) -> Decision {
        if user.groups.iter().any(|g| g == MASTERS) {
            return Decision::Allow(String::new());
        }
        let mut errors: Vec<String> = Vec::new();
        for b in &self.cluster_role_bindings {
            let Some(subject) = strs_obj(b, "subjects")
                .into_iter()
                .find(|s| subject_applies(s, user, ""))
            else {
                continue;
            };
            match self.role_rules(b, "") {
                Ok(rules) => {
                    if rules.iter().any(|r| rule_allows(r, a)) {
                        let rr = &b["roleRef"];
                        return Decision::Allow(format!(
                            "RBAC: allowed by ClusterRoleBinding \"{}\" of {} \"{}\" to {}",
                            meta(b, "name"),
                            rr["kind"].as_str().unwrap_or(""),
                            rr["name"].as_str().unwrap_or(""),
                            describe_subject(subject, "")
                        ));
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        if !a.namespace.is_empty() {
            for b in self
                .role_bindings
                .iter()
                .filter(|b| meta(b, "namespace") == a.namespace)
            {
                let ns = meta(b, "namespace");
                let Some(subject) = strs_obj(b, "subjects")
                    .into_iter()
                    .find(|s| subject_applies(s, user, ns))
                else {
                    continue;
                };
                match self.role_rules(b, ns) {
                    Ok(rules) => {
                        if rules.iter().any(|r| rule_allows(r, a)) {
                            let rr = &b["roleRef"];
                            return Decision::Allow(format!(
                                "RBAC: allowed by RoleBinding \"{}/{ns}\" of {} \"{}\" to {}",
                                meta(b, "name"),
                                rr["kind"].as_str().unwrap_or(""),
                                rr["name"].as_str().unwrap_or(""),
                                describe_subject(subject, ns)
                            ));
                        }
                    }
                    Err(e) => errors.push(e),
                }
            }
        }
        let reason = match errors.len() {
            0 => String::new(),
            1 => format!("RBAC: {}", errors[0]),
            _ => format!("RBAC: [{}]", errors.join(", ")),
        };
        Decision::Deny(reason)
    }
}

fn strs_obj<'a>(v: &'a Value, key: &str) -> Vec<&'a Value> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

/// The default ClusterRoles and ClusterRoleBindings every API server creates that concern any
/// user: discovery, self-reviews and public information ("Default roles and role bindings",
/// <https://kubernetes.io/docs/reference/access-authn-authz/rbac/#default-roles-and-role-bindings>;
/// rules as in `plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go`).
pub fn defaults() -> &'static [Value] {
    static DEFAULTS: std::sync::OnceLock<Vec<Value>> = std::sync::OnceLock::new();
    DEFAULTS.get_or_init(|| {
        let role = |name: &str, rules: Value| {
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                   "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}}, "rules": rules})
        };
        let binding = |name: &str, groups: &[&str]| {
            let subjects: Vec<Value> =
                groups.iter().map(|g| json!({"apiGroup": RBAC_GROUP, "kind": "Group", "name": g})).collect();
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                   "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
                   "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": name}, "subjects": subjects})
        };
        vec![
            role(
                "system:discovery",
                json!([{"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz", "/version", "/version/"], "verbs": ["get"]}]),
            ),
            binding("system:discovery", &[AUTHENTICATED]),
            role(
                "system:basic-user",
                json!([
                    {"apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"], "verbs": ["create"]},
                    {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"], "verbs": ["create"]}
                ]),
            ),
            binding("system:basic-user", &[AUTHENTICATED]),
            role(
                "system:public-info-viewer",
                json!([{"nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"], "verbs": ["get"]}]),
            ),
            binding("system:public-info-viewer", &[AUTHENTICATED, UNAUTHENTICATED]),
        ]
    })
}

/// The Roles, ClusterRoles and bindings stored in a double, with the default roles, as RBAC
/// judges its requests by them.
pub fn policy_of(st: &crate::store::State) -> Policy {
    Policy::new(
        st.objects
            .iter()
            .filter(|(k, _)| k.group == RBAC_GROUP)
            .map(|(_, s)| s.obj.as_ref()),
    )
}

/// Headers of a request that concern authentication and impersonation.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// `Authorization`.
    pub authorization: Option<String>,
    /// `Impersonate-User`.
    pub impersonate_user: Option<String>,
    /// Every `Impersonate-Group`.
    pub impersonate_groups: Vec<String>,
    /// `Impersonate-Uid`.
    pub impersonate_uid: Option<String>,
    /// `Impersonate-Extra-KEY` headers as `(key, value)`.
    pub impersonate_extra: Vec<(String, String)>,
}

/// Authenticates a request by its bearer token against `tokens` (token → user), then applies
/// impersonation: the user the request is authorized as, or the `401`/`403`/`500` it gets.
pub fn authenticate(
    tokens: &BTreeMap<String, UserInfo>,
    policy: &Policy,
    c: &Credentials,
) -> Result<UserInfo, ApiError> {
    let user = match c.authorization.as_deref() {
        None => UserInfo::anonymous(),
        Some(h) => {
            let token = h
                .strip_prefix("Bearer ")
                .map(str::trim)
                .ok_or_else(ApiError::unauthorized)?;
            tokens
                .get(token)
                .cloned()
                .ok_or_else(ApiError::unauthorized)?
        }
    };
    let wants = c.impersonate_user.is_some()
        || !c.impersonate_groups.is_empty()
        || c.impersonate_uid.is_some()
        || !c.impersonate_extra.is_empty();
    if !wants {
        return Ok(user);
    }
    let Some(target) = c.impersonate_user.as_deref().filter(|u| !u.is_empty()) else {
        return Err(ApiError::new(
            500,
            "InternalError",
            "Internal error occurred: requested impersonation of groups, uid or extras without impersonating a user",
        ));
    };
    let mut checks: Vec<Attributes> = Vec::new();
    let impersonate = |group: &str, resource: &str, sub: &str, ns: &str, name: &str| Attributes {
        verb: "impersonate".into(),
        resource_request: true,
        api_group: group.into(),
        resource: resource.into(),
        subresource: sub.into(),
        namespace: ns.into(),
        name: name.into(),
        path: String::new(),
    };
    match service_account(target) {
        Some((ns, name)) => checks.push(impersonate("", "serviceaccounts", "", ns, name)),
        None => checks.push(impersonate("", "users", "", "", target)),
    }
    for g in &c.impersonate_groups {
        checks.push(impersonate("", "groups", "", "", g));
    }
    if let Some(uid) = &c.impersonate_uid {
        checks.push(impersonate("authentication.k8s.io", "uids", "", "", uid));
    }
    for (key, value) in &c.impersonate_extra {
        checks.push(impersonate(
            "authentication.k8s.io",
            "userextras",
            key,
            "",
            value,
        ));
    }
    for a in &checks {
        if let Decision::Deny(reason) = policy.authorize(&user, a) {
            return Err(forbidden(&user.name, a, &reason));
        }
    }
    // A service account's groups are implied only when no group is asked for.
    if c.impersonate_groups.is_empty() {
        return Ok(UserInfo::authenticated(target, &[]));
    }
    let mut groups = c.impersonate_groups.clone();
    if target != ANONYMOUS && !groups.iter().any(|g| g == AUTHENTICATED) {
        groups.push(AUTHENTICATED.to_string());
    }
    Ok(UserInfo {
        name: target.to_string(),
        groups,
    })
}

#[cfg(test)]
mod tests;
