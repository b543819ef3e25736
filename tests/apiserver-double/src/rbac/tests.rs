//! The authorizer against cases worked out by hand from "Using RBAC Authorization"
//! (<https://kubernetes.io/docs/reference/access-authn-authz/rbac/>) and "User impersonation"
//! (<https://kubernetes.io/docs/reference/access-authn-authz/authentication/#user-impersonation>):
//! the documents' own example roles, each with the requests they are said to allow and the
//! requests just beside them that they do not.

use super::*;
use serde_json::json;

fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn attrs(method: &str, path: &str) -> Attributes {
    request_attributes(method, path, &[])
}

fn user(name: &str, groups: &[&str]) -> UserInfo {
    UserInfo::authenticated(name, groups)
}

fn allowed(p: &Policy, u: &UserInfo, method: &str, path: &str) -> bool {
    p.authorize(u, &attrs(method, path)).allowed()
}

/// The RBAC page's examples: Role `pod-reader` in `default`, ClusterRole `secret-reader`,
/// RoleBinding `read-pods` (User jane), RoleBinding `read-secrets` in `development` naming the
/// ClusterRole (User dave), ClusterRoleBinding `read-secrets-global` (Group manager).
fn doc_policy() -> Policy {
    let objects = [
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"namespace": "default", "name": "pod-reader"},
               "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "watch", "list"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "secret-reader"},
               "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "watch", "list"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "read-pods", "namespace": "default"},
               "subjects": [{"kind": "User", "name": "jane", "apiGroup": "rbac.authorization.k8s.io"}],
               "roleRef": {"kind": "Role", "name": "pod-reader", "apiGroup": "rbac.authorization.k8s.io"}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "read-secrets", "namespace": "development"},
               "subjects": [{"kind": "User", "name": "dave", "apiGroup": "rbac.authorization.k8s.io"}],
               "roleRef": {"kind": "ClusterRole", "name": "secret-reader", "apiGroup": "rbac.authorization.k8s.io"}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "read-secrets-global"},
               "subjects": [{"kind": "Group", "name": "manager", "apiGroup": "rbac.authorization.k8s.io"}],
               "roleRef": {"kind": "ClusterRole", "name": "secret-reader", "apiGroup": "rbac.authorization.k8s.io"}}),
    ];
    Policy::new(objects.iter())
}

#[test]
fn request_attributes_follow_the_request_info_factory() {
    let a = attrs("GET", "/api/v1/namespaces/shop/pods");
    assert_eq!(
        (
            a.verb.as_str(),
            a.api_group.as_str(),
            a.resource.as_str(),
            a.namespace.as_str(),
            a.name.as_str()
        ),
        ("list", "", "pods", "shop", "")
    );
    let a = request_attributes(
        "GET",
        "/api/v1/namespaces/shop/pods",
        &q(&[("watch", "true")]),
    );
    assert_eq!(a.verb, "watch");
    let a = attrs("GET", "/apis/apps/v1/namespaces/shop/deployments/web/scale");
    assert_eq!(
        (
            a.verb.as_str(),
            a.api_group.as_str(),
            a.resource.as_str(),
            a.subresource.as_str(),
            a.name.as_str()
        ),
        ("get", "apps", "deployments", "scale", "web")
    );
    let a = attrs("GET", "/api/v1/namespaces/shop/pods/web-1/log");
    assert_eq!(
        (a.resource.as_str(), a.subresource.as_str()),
        ("pods", "log")
    );
    let a = attrs("DELETE", "/api/v1/namespaces/shop/configmaps");
    assert_eq!(a.verb, "deletecollection");
    let a = attrs(
        "PATCH",
        "/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies/x",
    );
    assert_eq!(
        (a.verb.as_str(), a.api_group.as_str()),
        ("patch", "networking.k8s.io")
    );
    let a = attrs("POST", "/api/v1/namespaces/shop/configmaps");
    assert_eq!((a.verb.as_str(), a.name.as_str()), ("create", ""));
    let a = attrs("PUT", "/api/v1/namespaces/shop/configmaps/j");
    assert_eq!(a.verb, "update");
    // Cluster-scoped and all-namespaces requests have no namespace.
    let a = attrs("GET", "/api/v1/nodes");
    assert_eq!((a.verb.as_str(), a.namespace.as_str()), ("list", ""));
    let a = attrs("GET", "/api/v1/pods");
    assert_eq!((a.resource.as_str(), a.namespace.as_str()), ("pods", ""));
    // A namespace object is in its own namespace, also for its status and finalize subresources.
    let a = attrs("GET", "/api/v1/namespaces/shop");
    assert_eq!(
        (a.resource.as_str(), a.name.as_str(), a.namespace.as_str()),
        ("namespaces", "shop", "shop")
    );
    let a = attrs("PUT", "/api/v1/namespaces/shop/finalize");
    assert_eq!(
        (
            a.resource.as_str(),
            a.subresource.as_str(),
            a.namespace.as_str()
        ),
        ("namespaces", "finalize", "shop")
    );
    let a = attrs("GET", "/api/v1/namespaces");
    assert_eq!((a.verb.as_str(), a.namespace.as_str()), ("list", ""));
    // A list of one name by field selector carries the name.
    let a = request_attributes(
        "GET",
        "/api/v1/namespaces/shop/configmaps",
        &q(&[("fieldSelector", "metadata.name=journal")]),
    );
    assert_eq!((a.verb.as_str(), a.name.as_str()), ("list", "journal"));
    let a = request_attributes(
        "GET",
        "/api/v1/namespaces/shop/configmaps",
        &q(&[("fieldSelector", "metadata.namespace=shop")]),
    );
    assert_eq!(a.name, "");
    // Discovery and other paths are non-resource requests with the method as the verb.
    for path in [
        "/api",
        "/api/v1",
        "/apis",
        "/apis/apps/v1",
        "/version",
        "/openapi/v3",
        "/openapi/v3/apis/apps/v1",
        "/healthz",
    ] {
        let a = attrs("GET", path);
        assert!(!a.resource_request, "{path}");
        assert_eq!((a.verb.as_str(), a.path.as_str()), ("get", path));
    }
    assert_eq!(attrs("POST", "/logs").verb, "post");
}

#[test]
fn the_documents_role_and_rolebinding_examples() {
    let p = doc_policy();
    let jane = user("jane", &[]);
    // pod-reader: read pods in default only.
    assert!(allowed(&p, &jane, "GET", "/api/v1/namespaces/default/pods"));
    assert!(allowed(
        &p,
        &jane,
        "GET",
        "/api/v1/namespaces/default/pods/web"
    ));
    assert!(
        p.authorize(
            &jane,
            &request_attributes(
                "GET",
                "/api/v1/namespaces/default/pods",
                &q(&[("watch", "1")])
            )
        )
        .allowed()
    );
    assert!(!allowed(
        &p,
        &jane,
        "DELETE",
        "/api/v1/namespaces/default/pods/web"
    ));
    assert!(!allowed(
        &p,
        &jane,
        "GET",
        "/api/v1/namespaces/kube-system/pods"
    ));
    assert!(
        !allowed(&p, &jane, "GET", "/api/v1/pods"),
        "a RoleBinding never grants all namespaces"
    );
    assert!(
        !allowed(&p, &jane, "GET", "/api/v1/namespaces/default/pods/web/log"),
        "pods does not cover pods/log"
    );
    assert!(!allowed(
        &p,
        &jane,
        "GET",
        "/api/v1/namespaces/default/secrets"
    ));
    // dave: the ClusterRole through a RoleBinding reads secrets in development only.
    let dave = user("dave", &[]);
    assert!(allowed(
        &p,
        &dave,
        "GET",
        "/api/v1/namespaces/development/secrets"
    ));
    assert!(allowed(
        &p,
        &dave,
        "GET",
        "/api/v1/namespaces/development/secrets/db"
    ));
    assert!(!allowed(
        &p,
        &dave,
        "GET",
        "/api/v1/namespaces/default/secrets"
    ));
    assert!(!allowed(&p, &dave, "GET", "/api/v1/secrets"));
    // The manager group: a ClusterRoleBinding reads secrets in every namespace and across them.
    let bob = user("bob", &["manager"]);
    assert!(allowed(&p, &bob, "GET", "/api/v1/secrets"));
    assert!(allowed(
        &p,
        &bob,
        "GET",
        "/api/v1/namespaces/anything/secrets/x"
    ));
    assert!(!allowed(&p, &bob, "GET", "/api/v1/configmaps"));
    assert!(
        !allowed(&p, &user("bob", &[]), "GET", "/api/v1/secrets"),
        "the group, not the name, is bound"
    );
    // The reasons name the binding as the real authorizer does.
    assert_eq!(
        p.authorize(&bob, &attrs("GET", "/api/v1/secrets")),
        Decision::Allow("RBAC: allowed by ClusterRoleBinding \"read-secrets-global\" of ClusterRole \"secret-reader\" to Group \"manager\"".into())
    );
    assert_eq!(
        p.authorize(&jane, &attrs("GET", "/api/v1/namespaces/default/pods")),
        Decision::Allow("RBAC: allowed by RoleBinding \"read-pods/default\" of Role \"pod-reader\" to User \"jane\"".into())
    );
}

#[test]
fn subresources_wildcards_and_resource_names() {
    let objects = [
        // "Referring to resources": pods and their logs.
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"namespace": "default", "name": "pod-and-pod-logs-reader"},
               "rules": [{"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]}]}),
        // "Referring to resources": one named ConfigMap.
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"namespace": "default", "name": "configmap-updater"},
               "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["my-configmap"], "verbs": ["update", "get"]}]}),
        // Every subresource `scale`, and everything in one group.
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "scaler"},
               "rules": [{"apiGroups": ["apps"], "resources": ["*/scale"], "verbs": ["patch"]},
                         {"apiGroups": ["example.com"], "resources": ["*"], "verbs": ["*"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "a", "namespace": "default"},
               "subjects": [{"kind": "User", "name": "u"}], "roleRef": {"kind": "Role", "name": "pod-and-pod-logs-reader", "apiGroup": "rbac.authorization.k8s.io"}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "b", "namespace": "default"},
               "subjects": [{"kind": "User", "name": "u"}], "roleRef": {"kind": "Role", "name": "configmap-updater", "apiGroup": "rbac.authorization.k8s.io"}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "c"},
               "subjects": [{"kind": "User", "name": "u"}], "roleRef": {"kind": "ClusterRole", "name": "scaler", "apiGroup": "rbac.authorization.k8s.io"}}),
    ];
    let p = Policy::new(objects.iter());
    let u = user("u", &[]);
    assert!(allowed(
        &p,
        &u,
        "GET",
        "/api/v1/namespaces/default/pods/web/log"
    ));
    assert!(!allowed(
        &p,
        &u,
        "GET",
        "/api/v1/namespaces/default/pods/web/exec"
    ));
    assert!(!allowed(
        &p,
        &u,
        "GET",
        "/api/v1/namespaces/default/pods/web/status"
    ));
    // Named: get and update of that one; no list (a list has no name), no other name.
    assert!(allowed(
        &p,
        &u,
        "GET",
        "/api/v1/namespaces/default/configmaps/my-configmap"
    ));
    assert!(allowed(
        &p,
        &u,
        "PUT",
        "/api/v1/namespaces/default/configmaps/my-configmap"
    ));
    assert!(!allowed(
        &p,
        &u,
        "GET",
        "/api/v1/namespaces/default/configmaps/other"
    ));
    assert!(!allowed(
        &p,
        &u,
        "GET",
        "/api/v1/namespaces/default/configmaps"
    ));
    assert!(
        !allowed(&p, &u, "POST", "/api/v1/namespaces/default/configmaps"),
        "create carries no name"
    );
    assert!(!allowed(
        &p,
        &u,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/my-configmap"
    ));
    // */scale: the scale of any resource of the group, not the resource itself.
    assert!(allowed(
        &p,
        &u,
        "PATCH",
        "/apis/apps/v1/namespaces/x/deployments/web/scale"
    ));
    assert!(allowed(
        &p,
        &u,
        "PATCH",
        "/apis/apps/v1/namespaces/x/statefulsets/db/scale"
    ));
    assert!(!allowed(
        &p,
        &u,
        "PATCH",
        "/apis/apps/v1/namespaces/x/deployments/web"
    ));
    assert!(!allowed(
        &p,
        &u,
        "PATCH",
        "/apis/apps/v1/namespaces/x/deployments/web/status"
    ));
    // `*` resources cover subresources too; `*` verbs cover every verb.
    assert!(allowed(
        &p,
        &u,
        "DELETE",
        "/apis/example.com/v1/namespaces/x/widgets/a"
    ));
    assert!(allowed(
        &p,
        &u,
        "PUT",
        "/apis/example.com/v1/namespaces/x/widgets/a/status"
    ));
    assert!(allowed(&p, &u, "GET", "/apis/example.com/v1/widgets"));
    assert!(!allowed(
        &p,
        &u,
        "GET",
        "/apis/other.example.com/v1/widgets"
    ));
}

#[test]
fn resource_names_with_a_name_selecting_list() {
    let objects = [
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"namespace": "shop", "name": "journal"},
               "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["journal"], "verbs": ["list", "watch"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "j", "namespace": "shop"},
               "subjects": [{"kind": "User", "name": "u"}], "roleRef": {"kind": "Role", "name": "journal", "apiGroup": "rbac.authorization.k8s.io"}}),
    ];
    let p = Policy::new(objects.iter());
    let u = user("u", &[]);
    let by_name = request_attributes(
        "GET",
        "/api/v1/namespaces/shop/configmaps",
        &q(&[("fieldSelector", "metadata.name=journal")]),
    );
    assert!(p.authorize(&u, &by_name).allowed());
    let other = request_attributes(
        "GET",
        "/api/v1/namespaces/shop/configmaps",
        &q(&[("fieldSelector", "metadata.name=other")]),
    );
    assert!(!p.authorize(&u, &other).allowed());
    assert!(!allowed(
        &p,
        &u,
        "GET",
        "/api/v1/namespaces/shop/configmaps"
    ));
}

#[test]
fn cluster_scope_needs_a_cluster_role_binding() {
    // A RoleBinding to a ClusterRole granting nodes gives nothing: nodes have no namespace.
    let objects = [
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "nodes"},
               "rules": [{"apiGroups": [""], "resources": ["nodes", "namespaces"], "verbs": ["get", "list"]},
                         {"nonResourceURLs": ["/healthz", "/healthz/*"], "verbs": ["get", "post"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "n", "namespace": "shop"},
               "subjects": [{"kind": "User", "name": "ns-user"}], "roleRef": {"kind": "ClusterRole", "name": "nodes", "apiGroup": "rbac.authorization.k8s.io"}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "n"},
               "subjects": [{"kind": "User", "name": "cluster-user"}], "roleRef": {"kind": "ClusterRole", "name": "nodes", "apiGroup": "rbac.authorization.k8s.io"}}),
    ];
    let p = Policy::new(objects.iter());
    let ns_user = user("ns-user", &[]);
    assert!(!allowed(&p, &ns_user, "GET", "/api/v1/nodes"));
    assert!(
        !allowed(&p, &ns_user, "GET", "/healthz/etcd"),
        "non-resource URLs need a ClusterRoleBinding"
    );
    assert!(!allowed(&p, &ns_user, "GET", "/api/v1/namespaces"));
    // ... but the namespace object itself is in the binding's namespace.
    assert!(allowed(&p, &ns_user, "GET", "/api/v1/namespaces/shop"));
    assert!(!allowed(&p, &ns_user, "GET", "/api/v1/namespaces/other"));
    let cu = user("cluster-user", &[]);
    assert!(allowed(&p, &cu, "GET", "/api/v1/nodes"));
    assert!(allowed(&p, &cu, "GET", "/api/v1/nodes/n1"));
    // "/healthz/*" is a prefix match on "/healthz/"; "/healthz" matches itself only.
    assert!(allowed(&p, &cu, "GET", "/healthz/etcd"));
    assert!(allowed(&p, &cu, "POST", "/healthz"));
    assert!(!allowed(&p, &cu, "GET", "/healthzfoo"));
    assert!(!allowed(&p, &cu, "PUT", "/healthz"));
}

#[test]
fn service_account_subjects_and_missing_roles() {
    let objects = [
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "view-pods"},
               "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]}),
        // A ServiceAccount subject without a namespace is the binding's namespace's account.
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "sa", "namespace": "shop"},
               "subjects": [{"kind": "ServiceAccount", "name": "auditor"}], "roleRef": {"kind": "ClusterRole", "name": "view-pods", "apiGroup": "rbac.authorization.k8s.io"}}),
        // Every service account of namespace ci, by group.
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "ci", "namespace": "shop"},
               "subjects": [{"kind": "Group", "name": "system:serviceaccounts:ci", "apiGroup": "rbac.authorization.k8s.io"}],
               "roleRef": {"kind": "ClusterRole", "name": "view-pods", "apiGroup": "rbac.authorization.k8s.io"}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "dangling", "namespace": "shop"},
               "subjects": [{"kind": "User", "name": "carol"}], "roleRef": {"kind": "ClusterRole", "name": "gone", "apiGroup": "rbac.authorization.k8s.io"}}),
    ];
    let p = Policy::new(objects.iter());
    let sa = user("system:serviceaccount:shop:auditor", &[]);
    assert!(
        sa.groups
            .contains(&"system:serviceaccounts:shop".to_string())
    );
    assert!(allowed(&p, &sa, "GET", "/api/v1/namespaces/shop/pods"));
    assert!(!allowed(
        &p,
        &user("system:serviceaccount:other:auditor", &[]),
        "GET",
        "/api/v1/namespaces/shop/pods"
    ));
    assert!(allowed(
        &p,
        &user("system:serviceaccount:ci:builder", &[]),
        "GET",
        "/api/v1/namespaces/shop/pods"
    ));
    assert_eq!(
        p.authorize(&sa, &attrs("GET", "/api/v1/namespaces/shop/pods")),
        Decision::Allow("RBAC: allowed by RoleBinding \"sa/shop\" of ClusterRole \"view-pods\" to ServiceAccount \"auditor/shop\"".into())
    );
    // A binding to a missing role grants nothing and is the denial's reason.
    let carol = user("carol", &[]);
    let a = attrs("GET", "/api/v1/namespaces/shop/pods");
    let d = p.authorize(&carol, &a);
    assert_eq!(
        d,
        Decision::Deny("RBAC: clusterrole.rbac.authorization.k8s.io \"gone\" not found".into())
    );
    let Decision::Deny(reason) = d else {
        unreachable!()
    };
    assert_eq!(
        forbidden("carol", &a, &reason).message,
        "pods is forbidden: User \"carol\" cannot list resource \"pods\" in API group \"\" in the namespace \"shop\": RBAC: clusterrole.rbac.authorization.k8s.io \"gone\" not found"
    );
}

#[test]
fn default_roles_allow_discovery_to_authenticated_users_only() {
    let p = Policy::new(std::iter::empty());
    let nobody = user("nobody", &[]);
    for path in [
        "/api",
        "/api/v1",
        "/apis",
        "/apis/apps/v1",
        "/openapi/v3",
        "/openapi/v3/apis/apps/v1",
        "/version",
        "/healthz",
    ] {
        assert!(allowed(&p, &nobody, "GET", path), "{path}");
    }
    assert!(!allowed(
        &p,
        &nobody,
        "GET",
        "/api/v1/namespaces/default/pods"
    ));
    assert!(!allowed(&p, &nobody, "POST", "/api"));
    assert!(allowed(
        &p,
        &nobody,
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
    ));
    let anon = UserInfo::anonymous();
    assert!(allowed(&p, &anon, "GET", "/version"));
    assert!(
        !allowed(&p, &anon, "GET", "/api"),
        "discovery is not public"
    );
    assert!(!allowed(
        &p,
        &anon,
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
    ));
    assert!(
        Policy::new(std::iter::empty())
            .authorize(
                &user("root", &[MASTERS]),
                &attrs("DELETE", "/api/v1/nodes/n")
            )
            .allowed()
    );
    assert!(
        !Policy::without_defaults(std::iter::empty())
            .authorize(&nobody, &attrs("GET", "/api"))
            .allowed()
    );
}

#[test]
fn forbidden_bodies_in_the_authorizers_wording() {
    let a = attrs("GET", "/api/v1/namespaces/shop/secrets/db");
    assert_eq!(
        forbidden("jane", &a, "").message,
        "secrets \"db\" is forbidden: User \"jane\" cannot get resource \"secrets\" in API group \"\" in the namespace \"shop\""
    );
    let a = attrs("GET", "/apis/apps/v1/deployments");
    assert_eq!(
        forbidden("jane", &a, "").message,
        "deployments.apps is forbidden: User \"jane\" cannot list resource \"deployments\" in API group \"apps\" at the cluster scope"
    );
    let a = attrs("GET", "/healthz/etcd");
    let e = forbidden("jane", &a, "");
    assert_eq!(
        (e.code, e.reason.as_str(), e.message.as_str()),
        (
            403,
            "Forbidden",
            "forbidden: User \"jane\" cannot get path \"/healthz/etcd\""
        )
    );
}

fn impersonation_policy() -> Policy {
    // The page's example: impersonate the user jane.example.com, the groups developers and
    // admins, and the extra field "scopes"; plus one service account.
    let objects = [
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "limited-impersonator"},
               "rules": [{"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"], "resourceNames": ["jane.example.com"]},
                         {"apiGroups": [""], "resources": ["groups"], "verbs": ["impersonate"], "resourceNames": ["developers", "admins"]},
                         {"apiGroups": ["authentication.k8s.io"], "resources": ["userextras/scopes"], "verbs": ["impersonate"], "resourceNames": ["view", "development"]},
                         {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"], "resourceNames": ["auditor"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "imp"},
               "subjects": [{"kind": "User", "name": "ops"}], "roleRef": {"kind": "ClusterRole", "name": "limited-impersonator", "apiGroup": "rbac.authorization.k8s.io"}}),
    ];
    Policy::new(objects.iter())
}

fn tokens() -> BTreeMap<String, UserInfo> {
    BTreeMap::from([
        ("t-ops".to_string(), user("ops", &[])),
        ("t-jane".to_string(), user("jane.example.com", &[])),
    ])
}

#[test]
fn impersonation_needs_the_impersonate_verb_then_authorizes_as_the_target() {
    let p = impersonation_policy();
    let t = tokens();
    let creds = |user: Option<&str>, groups: &[&str]| Credentials {
        authorization: Some("Bearer t-ops".into()),
        impersonate_user: user.map(str::to_string),
        impersonate_groups: groups.iter().map(|g| g.to_string()).collect(),
        ..Credentials::default()
    };
    // No impersonation: the token's user.
    assert_eq!(authenticate(&t, &p, &creds(None, &[])).unwrap().name, "ops");
    // Allowed user and groups: the target, in the asked groups and system:authenticated.
    let u = authenticate(&t, &p, &creds(Some("jane.example.com"), &["developers"])).unwrap();
    assert_eq!(
        u,
        UserInfo {
            name: "jane.example.com".into(),
            groups: vec!["developers".into(), AUTHENTICATED.into()]
        }
    );
    // Another user: 403 naming the impersonation.
    let e = authenticate(&t, &p, &creds(Some("bob"), &[])).unwrap_err();
    assert_eq!(e.code, 403);
    assert_eq!(
        e.message,
        "users \"bob\" is forbidden: User \"ops\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
    );
    // An allowed user with a group it may not take.
    let e = authenticate(
        &t,
        &p,
        &creds(Some("jane.example.com"), &["system:masters"]),
    )
    .unwrap_err();
    assert_eq!(
        e.message,
        "groups \"system:masters\" is forbidden: User \"ops\" cannot impersonate resource \"groups\" in API group \"\" at the cluster scope"
    );
    // Groups without a user are refused.
    assert_eq!(
        authenticate(&t, &p, &creds(None, &["developers"]))
            .unwrap_err()
            .code,
        500
    );
    // Extras: userextras/KEY in authentication.k8s.io, the value as the name.
    let mut c = creds(Some("jane.example.com"), &[]);
    c.impersonate_extra = vec![("scopes".into(), "view".into())];
    assert!(authenticate(&t, &p, &c).is_ok());
    c.impersonate_extra = vec![("scopes".into(), "admin".into())];
    assert_eq!(
        authenticate(&t, &p, &c).unwrap_err().message,
        "userextras.authentication.k8s.io \"admin\" is forbidden: User \"ops\" cannot impersonate resource \"userextras/scopes\" in API group \"authentication.k8s.io\" at the cluster scope"
    );
    // A service account is impersonated through serviceaccounts in its namespace, and gets the
    // service account groups when no group is asked for.
    let u = authenticate(
        &t,
        &p,
        &creds(Some("system:serviceaccount:shop:auditor"), &[]),
    )
    .unwrap();
    assert!(
        u.groups
            .contains(&"system:serviceaccounts:shop".to_string())
            && u.groups.contains(&AUTHENTICATED.to_string()),
        "{u:?}"
    );
    let e = authenticate(
        &t,
        &p,
        &creds(Some("system:serviceaccount:shop:deployer"), &[]),
    )
    .unwrap_err();
    assert_eq!(
        e.message,
        "serviceaccounts \"deployer\" is forbidden: User \"ops\" cannot impersonate resource \"serviceaccounts\" in API group \"\" in the namespace \"shop\""
    );
    // jane herself may not impersonate; an unknown token is 401; no token is anonymous.
    let mut c = creds(Some("ops"), &[]);
    c.authorization = Some("Bearer t-jane".into());
    assert_eq!(authenticate(&t, &p, &c).unwrap_err().code, 403);
    let mut c = creds(None, &[]);
    c.authorization = Some("Bearer nope".into());
    assert_eq!(authenticate(&t, &p, &c).unwrap_err().code, 401);
    c.authorization = None;
    assert_eq!(authenticate(&t, &p, &c).unwrap(), UserInfo::anonymous());
}
