//! `mesh-migrate ns`: the namespace-based migration path.
//!
//! Instead of restarting a namespace's workloads in place, the meshed copy of namespace `<ns>` is
//! run beside it in `<ns>-mesh` and traffic is moved over in steps (10, 25, 50, 75, 100 %), each
//! step watched by gates, with a way back at any moment. Weighted routing inside one namespace is
//! what Flagger and Argo Rollouts do; here the two sides are two namespaces: one Istio
//! `VirtualService` per Service, for the legacy host `<svc>.<ns>.svc.cluster.local`, splits its
//! traffic between the legacy Service and its copy in `<ns>-mesh`.
//!
//! The module is split the way the commands need it:
//!
//! * [`copy`]: the pure copy transform (stateless workloads and the Services in front of them,
//!   ServiceAccounts, Roles and RoleBindings, HorizontalPodAutoscalers, ConfigMaps, Secrets on
//!   request) with server-set fields stripped and Service DNS names adjusted, plus the target
//!   Namespace with injection (or ambient) and Pod Security labels; stateful backends
//!   ([`meshmove_isolation::datastore`]) stay in the legacy namespace, shared by both sides;
//! * [`external`]: the Istio Gateway and VirtualServices serving the legacy namespace's Ingresses
//!   and HTTPRoutes with the same split;
//! * [`guards`]: the PodDisruptionBudgets, NetworkPolicies (peers adapted, proven on the engine),
//!   ResourceQuotas and LimitRanges carried to the mesh side;
//! * [`routing`]: the VirtualServices and DestinationRules for a weight (the DestinationRules from
//!   the traffic profile `enable` uses, [`crate::inplace::TrafficProfile`]);
//! * [`state`]: the migration state machine: which step may follow from the recorded state, and
//!   the message saying what would when a step may not;
//! * [`gates`]: readiness, restarts, and success rate / p99 latency from Prometheus, checked
//!   before a higher weight is written and while it is watched;
//! * [`prometheus`]: a small client for Prometheus's HTTP query API;
//! * [`callers`], [`ambient_reach`]: the callers the split does not move (ztunnel carries
//!   them), and which of them can reach the legacy pods `complete` retires;
//! * [`ownership`]: which namespaces a migration owns (the in-place commands refuse them);
//! * [`run`]: the commands against a cluster, writing through the shared plan engine
//!   ([`meshmove_kube::plan`]) and keeping state and history in its journal.
//!
//! Everything but `prometheus` and `run` is pure and unit-tested offline.

pub mod ambient_reach;
pub mod callers;
pub mod copy;
pub mod external;
pub mod gates;
pub mod guards;
pub mod ownership;
pub mod prometheus;
pub mod routing;
pub mod run;
pub mod state;

/// The field manager of every write (shared with the in-place path).
pub const FIELD_MANAGER: &str = "kubectl-mesh-migrate";
/// Suffix of the mesh namespace: `shop` is copied to `shop-mesh`.
pub const MESH_SUFFIX: &str = "-mesh";
/// Label on copied objects and the mesh Namespace naming the legacy namespace.
pub const COPIED_FROM_LABEL: &str = "mesh-migrate.meshmove.io/copied-from";
/// Label on routing objects.
pub const ROLE_LABEL: &str = "mesh-migrate.meshmove.io/role";
/// `app.kubernetes.io/managed-by` value on objects the tool creates.
pub const MANAGED_BY: &str = "kubectl-mesh-migrate";

/// A legacy namespace name the migration cannot pair with a mesh namespace (the name as given).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SidesError {
    #[error("namespace `{legacy}` is not a valid namespace name (lowercase letters, digits and `-`)")]
    Invalid { legacy: String },
    /// The mesh copy was named instead of the legacy namespace.
    #[error("namespace `{legacy}` already ends in `{MESH_SUFFIX}`: name the legacy namespace (`{}`), not its mesh copy", legacy.trim_end_matches(MESH_SUFFIX))]
    MeshCopy { legacy: String },
    #[error("namespace `{legacy}` is too long: `{legacy}{MESH_SUFFIX}` would exceed 63 characters")]
    TooLong { legacy: String },
}

/// `--waypoint` and `--no-waypoint` values that name no waypoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaypointFlagError {
    #[error("--waypoint and --no-waypoint exclude each other")]
    Both,
    #[error("--waypoint `{arg}`: `{namespace}` is not a namespace name")]
    Namespace { arg: String, namespace: String },
    #[error("--waypoint `{arg}`: `{name}` is not a Gateway name (lowercase letters, digits, `-` and `.`)")]
    Name { arg: String, name: String },
}

/// The two namespaces of one migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sides {
    pub legacy: String,
    pub mesh: String,
}

impl Sides {
    /// `shop` and `shop-mesh`. The legacy name must be a DNS label short enough for the suffix.
    pub fn new(legacy: &str) -> Result<Sides, SidesError> {
        let mesh = format!("{legacy}{MESH_SUFFIX}");
        let valid = !legacy.is_empty()
            && legacy.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !legacy.starts_with('-')
            && !legacy.ends_with('-');
        if !valid {
            return Err(SidesError::Invalid { legacy: legacy.to_string() });
        }
        if legacy.ends_with(MESH_SUFFIX) {
            return Err(SidesError::MeshCopy { legacy: legacy.to_string() });
        }
        if mesh.len() > 63 {
            return Err(SidesError::TooLong { legacy: legacy.to_string() });
        }
        Ok(Sides { legacy: legacy.to_string(), mesh })
    }

    /// The cluster-local DNS name of a Service on the legacy side.
    pub fn legacy_host(&self, service: &str) -> String {
        format!("{service}.{}.svc.cluster.local", self.legacy)
    }

    /// The cluster-local DNS name of a Service's copy on the mesh side.
    pub fn mesh_host(&self, service: &str) -> String {
        format!("{service}.{}.svc.cluster.local", self.mesh)
    }
}

/// The data plane of the mesh namespace.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", tag = "mode")]
pub enum DataPlane {
    /// Sidecar injection: `istio-injection: enabled`, or `istio.io/rev: <revision>`.
    #[default]
    Sidecar,
    SidecarRevision {
        revision: String,
    },
    /// Ambient: `istio.io/dataplane-mode: ambient`.
    Ambient,
}

/// How an ambient mesh namespace gets the waypoint that gives its Services L7 routing and request
/// metrics (<https://istio.io/latest/docs/ambient/usage/waypoint/>).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum WaypointChoice {
    /// Deploy a waypoint named [`meshmove_istio::waypoint::DEFAULT_WAYPOINT_NAME`] in the mesh
    /// namespace (or use the one of that name already there).
    #[default]
    Deploy,
    /// Use this existing waypoint (`--waypoint [NAMESPACE/]NAME`).
    Existing(meshmove_istio::waypoint::Waypoint),
    /// No waypoint (`--no-waypoint`): ztunnel only, L4.
    None,
}

impl WaypointChoice {
    /// The labels binding the mesh namespace of `sides` to the chosen waypoint (none for
    /// [`WaypointChoice::None`]).
    pub fn binding(&self, sides: &Sides) -> Vec<(&'static str, String)> {
        match self {
            WaypointChoice::Deploy => meshmove_istio::waypoint::Waypoint {
                namespace: sides.mesh.clone(),
                name: meshmove_istio::waypoint::DEFAULT_WAYPOINT_NAME.into(),
            }
            .binding(&sides.mesh),
            WaypointChoice::Existing(w) => w.binding(&sides.mesh),
            WaypointChoice::None => Vec::new(),
        }
    }

    /// From `--waypoint [NAMESPACE/]NAME` (a bare name is in the mesh namespace) and
    /// `--no-waypoint`.
    pub fn from_flags(waypoint: Option<&str>, no_waypoint: bool, sides: &Sides) -> Result<WaypointChoice, WaypointFlagError> {
        match (waypoint, no_waypoint) {
            (Some(_), true) => Err(WaypointFlagError::Both),
            (None, true) => Ok(WaypointChoice::None),
            (None, false) => Ok(WaypointChoice::Deploy),
            (Some(arg), false) => {
                let (namespace, name) = arg.split_once('/').unwrap_or((sides.mesh.as_str(), arg));
                if !meshmove_model::names::is_dns1123_label(namespace) {
                    return Err(WaypointFlagError::Namespace { arg: arg.into(), namespace: namespace.into() });
                }
                let subdomain = !name.is_empty()
                    && name.len() <= 253
                    && name.split('.').all(meshmove_model::names::is_dns1123_label);
                if !subdomain {
                    return Err(WaypointFlagError::Name { arg: arg.into(), name: name.into() });
                }
                Ok(WaypointChoice::Existing(meshmove_istio::waypoint::Waypoint { namespace: namespace.into(), name: name.into() }))
            }
        }
    }
}

/// The Pod Security level the mesh namespace enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PodSecurity {
    #[default]
    Restricted,
    Baseline,
    Privileged,
    /// No Pod Security labels.
    None,
}

impl PodSecurity {
    pub fn label_value(self) -> Option<&'static str> {
        match self {
            PodSecurity::Restricted => Some("restricted"),
            PodSecurity::Baseline => Some("baseline"),
            PodSecurity::Privileged => Some("privileged"),
            PodSecurity::None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_are_named_and_validated() {
        let s = Sides::new("shop").unwrap();
        assert_eq!(s.mesh, "shop-mesh");
        assert_eq!(s.legacy_host("api"), "api.shop.svc.cluster.local");
        assert_eq!(s.mesh_host("api"), "api.shop-mesh.svc.cluster.local");
        assert_eq!(Sides::new("Shop"), Err(SidesError::Invalid { legacy: "Shop".into() }));
        assert!(Sides::new("shop-mesh").unwrap_err().to_string().contains("name the legacy namespace (`shop`)"));
        let long = "a".repeat(60);
        assert_eq!(
            Sides::new(&long).unwrap_err().to_string(),
            format!("namespace `{long}` is too long: `{long}-mesh` would exceed 63 characters")
        );
        assert_eq!(Sides::new(""), Err(SidesError::Invalid { legacy: String::new() }));
    }

    #[test]
    fn waypoint_flags_name_a_gateway() {
        let s = Sides::new("shop").unwrap();
        assert_eq!(WaypointChoice::from_flags(None, false, &s), Ok(WaypointChoice::Deploy));
        assert_eq!(WaypointChoice::from_flags(None, true, &s), Ok(WaypointChoice::None));
        let w = |ns: &str, n: &str| Ok(WaypointChoice::Existing(meshmove_istio::waypoint::Waypoint { namespace: ns.into(), name: n.into() }));
        assert_eq!(WaypointChoice::from_flags(Some("wp"), false, &s), w("shop-mesh", "wp"));
        assert_eq!(WaypointChoice::from_flags(Some("infra/shared.wp"), false, &s), w("infra", "shared.wp"));
        assert_eq!(WaypointChoice::from_flags(Some("wp"), true, &s), Err(WaypointFlagError::Both));
        assert_eq!(
            WaypointChoice::from_flags(Some("Infra/wp"), false, &s),
            Err(WaypointFlagError::Namespace { arg: "Infra/wp".into(), namespace: "Infra".into() })
        );
        assert!(WaypointChoice::from_flags(Some("infra/"), false, &s).unwrap_err().to_string().contains("not a Gateway name"));
    }
}
