//! The finding codes of `kubectl dbiso`.
//!
//! Codes are a public interface: scripts match on them, `--suppress` names them, and
//! `docs/findings.md` has a section per code. A code is never renumbered or reused; a check that
//! goes away leaves a gap. Numbers are grouped by what they are about:
//!
//! | range  | group                                                        |
//! |--------|--------------------------------------------------------------|
//! | DB3000 | the input: kinds the cluster did not let it read             |
//! | DB300x | ownership: who uses the database, and what cannot be mapped   |
//! | DB301x | reachability under NetworkPolicy, per database port          |
//! | DB302x | the NetworkPolicies themselves                               |
//!
//! Each code is also a `pub static` so analyzers refer to it by name, not by a string.

meshmove_model::finding_codes! { tool: "dbiso";
    CODE_UNREAD_INPUT = "DB3000" Error "Part of the input could not be read",
        "Grant the named `list` permissions (see the README's RBAC section) or run with -f on manifests; the checks that needed the kind were skipped, not passed.";
    CODE_SHARED_DATABASE = "DB3001" Error "Database is used by more than one service",
        "Give each service its own database and credentials and let the others call its API; this is a design problem that NetworkPolicies cannot fix, so `dbiso apply` leaves it in place.";
    CODE_NO_OWNER = "DB3002" Info "Database has no known owner",
        "Reference the database from its owner through a Service name in an environment variable, Secret or ConfigMap, or isolate it by hand (`generate --deny-unowned`).";
    CODE_UNRESOLVED_HOST = "DB3003" Warning "Database host resolves to nothing",
        "Fix the host name or create the Service it names, in the namespace the name points at.";
    CODE_NON_OWNER_REACHABLE = "DB3010" Error "Database is reachable by workloads that do not own it",
        "Isolate the database so only its owners reach its port: `kubectl dbiso generate` writes the NetworkPolicy.";
    CODE_OTHER_NAMESPACE_REACHABLE = "DB3011" Error "Database is reachable from other namespaces",
        "Drop the namespaceSelector (or rule without `from`) that admits other namespaces on the database port, or apply `kubectl dbiso generate`.";
    CODE_PUBLIC_REACHABLE = "DB3012" Error "Database is reachable from public addresses",
        "Remove the ipBlock (or rule without `from`) that admits public addresses on the database port, or apply `kubectl dbiso generate`.";
    CODE_PRIVATE_REACHABLE = "DB3013" Warning "Database is reachable from private addresses outside the cluster",
        "Narrow the ipBlock to the clients that need the database (a bastion, a VPN range) or remove it.";
    CODE_NOT_ISOLATED = "DB3014" Warning "No NetworkPolicy isolates the database",
        "Apply an ingress NetworkPolicy selecting the database pods: `kubectl dbiso generate | kubectl apply -f -` or `kubectl dbiso apply`.";
    CODE_OWNER_BLOCKED = "DB3015" Warning "An owner cannot reach its database",
        "Admit the owner on the database port in the database's ingress policy and in the owner's egress policy.";
    CODE_UNMODELLED_AUTHORIZATION = "DB3016" Warning "An AuthorizationPolicy at a waypoint or gateway is left out of reachability",
        "Check the traffic through that waypoint or gateway with Istio's own tools (`istioctl x authz check` on its pod); a rule ztunnel can enforce (L4 attributes only) can attach to the pods by `selector` instead, and is then part of the analysis.";
    CODE_POLICY_SELECTS_NOTHING = "DB3020" Warning "NetworkPolicy selects no pod",
        "Fix the policy's podSelector (a misspelt label isolates nothing) or delete the policy.";
    CODE_INVALID_POLICY = "DB3021" Error "NetworkPolicy is invalid",
        "Fix the field the message names; the API server rejects this policy, so it protects nothing.";
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshmove_model::findings::Severity;

    #[test]
    fn codes_are_in_number_order_and_unique() {
        let numbers: Vec<_> = CATALOG.codes.iter().map(|c| c.code).collect();
        assert!(numbers.windows(2).all(|w| w[0] < w[1]), "catalog out of order or duplicated: {numbers:?}");
        assert_eq!(CATALOG.get("DB3001").map(|c| c.severity), Some(Severity::Error));
    }
}
