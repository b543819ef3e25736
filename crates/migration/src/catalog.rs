//! The finding codes of `kubectl mesh-migrate`.
//!
//! Codes are a public interface: scripts match on them, `--suppress` names them, and
//! `docs/findings.md` has a section per code. A code is never renumbered or reused; a check that
//! goes away leaves a gap. Numbers are grouped by what they are about, leaving room in each group:
//!
//! | range    | group                                   |
//! |----------|-----------------------------------------|
//! | MM1000   | the input: kinds the cluster did not let it read |
//! | MM100x   | precheck: Istio control plane           |
//! | MM101x   | precheck: namespace labels              |
//! | MM102x   | precheck: workloads and pod templates   |
//! | MM103x   | precheck: Service ports                 |
//! | MM104x   | precheck: PodDisruptionBudgets          |
//! | MM105x   | precheck: NetworkPolicies               |
//! | MM106x   | precheck: capacity                      |
//!
//! Each code is also a `pub static` so analyzers refer to it by name, not by a string.

meshmove_model::finding_codes! { tool: "mesh-migrate";
    CODE_UNREAD_INPUT = "MM1000" Error "Part of the input could not be read",
        "Grant the named `list` permissions (see the README's RBAC section) or run with -f on manifests; the checks that needed the kind were skipped, not passed.";
    CODE_ISTIO_CRDS_MISSING = "MM1001" Error "Istio CRDs are not installed",
        "Install Istio's base chart (or `istioctl install`) so the networking.istio.io and security.istio.io CRDs exist.";
    CODE_ISTIOD_MISSING = "MM1002" Error "istiod is not running",
        "Install the istiod control plane (Helm chart `istiod` or `istioctl install`) before moving workloads.";
    CODE_ISTIOD_NOT_READY = "MM1003" Error "istiod has no ready replica",
        "Check `kubectl -n <namespace> describe deploy <istiod>` and its pods' events before injecting proxies.";
    CODE_ISTIOD_REVISION = "MM1004" Info "Istio control plane revision found",
        "Label namespaces with the revision (or a tag pointing at it) that should serve them.";
    CODE_REVISION_TAG = "MM1005" Info "Istio revision tag found",
        "Prefer `istio.io/rev=<tag>` on namespaces so upgrades move the tag instead of relabelling namespaces.";
    CODE_ZTUNNEL_MISSING = "MM1006" Error "ztunnel is missing or not ready",
        "Install the `ztunnel` chart (ambient profile) and wait until its DaemonSet is ready on every node.";
    CODE_ISTIO_CNI_MISSING = "MM1007" Error "istio-cni node agent is missing or not ready",
        "Install the `cni` chart (ambient profile) and wait until its DaemonSet is ready on every node.";
    CODE_CONTROL_PLANE_OUT_OF_SCOPE = "MM1008" Warning "Istio control plane is outside the listed namespace",
        "Run precheck with -A (or with read access to the control plane namespace) to check istiod, ztunnel and istio-cni.";
    CODE_INJECTION_LABEL_CONFLICT = "MM1010" Error "Namespace has both istio-injection and istio.io/rev",
        "Keep one: remove `istio-injection` and select the control plane with `istio.io/rev`, or the other way round.";
    CODE_INJECTION_DISABLED = "MM1011" Warning "Injection is disabled on a namespace being migrated",
        "Remove `istio-injection=disabled` (and set `istio.io/rev`) when the namespace moves to sidecars.";
    CODE_AMBIENT_AND_SIDECAR = "MM1012" Error "Namespace is labelled for both ambient and sidecar injection",
        "Choose one data-plane mode per namespace: drop the injection labels for ambient, or `istio.io/dataplane-mode` for sidecars.";
    CODE_UNKNOWN_REVISION = "MM1013" Error "Namespace selects a revision no control plane serves",
        "Point `istio.io/rev` at an installed revision or tag (see MM1004/MM1005 findings).";
    CODE_HOST_NETWORK = "MM1020" Warning "Pods on the host network bypass the mesh",
        "Expect no proxy, no mTLS and no policy for these pods; exclude them explicitly or move them off hostNetwork.";
    CODE_NO_APP_IDENTITY = "MM1021" Warning "Pod template has no application label",
        "Add `app` (and `version`) labels to the pod template so telemetry and dashboards group its pods.";
    CODE_NO_APP_LABEL = "MM1022" Info "Pod template has no `app` label",
        "Copy the value of `app.kubernetes.io/name` into an `app` label for dashboards that key on `app`.";
    CODE_NO_VERSION_LABEL = "MM1023" Info "Pod template has no `version` label",
        "Add a `version` label (for example from `app.kubernetes.io/version`) so traffic can be split and compared per version.";
    CODE_JOB_NEVER_COMPLETES = "MM1024" Error "Job pods would never complete with a sidecar",
        "Set the label `sidecar.istio.io/inject: \"false\"` on the pod template, or enable native sidecars (Kubernetes 1.29+).";
    CODE_NON_TCP_PORT = "MM1030" Warning "Service port is not proxied (UDP or SCTP)",
        "Expect this port to bypass the mesh: no mTLS, telemetry or policy; keep a NetworkPolicy for it.";
    CODE_PROTOCOL_UNDECLARED = "MM1031" Warning "Istio cannot tell the Service port's protocol",
        "Name the port `<protocol>[-suffix]` (http, http2, https, grpc, grpc-web, tcp, tls, mongo, mysql, redis) or set `appProtocol`.";
    CODE_PROTOCOL_CONFLICT = "MM1032" Error "Services declare different protocols for one pod port",
        "Declare the same protocol on every Service port that targets this pod port.";
    CODE_PDB_ZERO_DISRUPTIONS = "MM1040" Error "PodDisruptionBudget allows no disruption",
        "Set `maxUnavailable` to at least 1 (or a non-zero percentage) before draining nodes during the migration.";
    CODE_PDB_MIN_AVAILABLE_ALL = "MM1041" Error "PodDisruptionBudget keeps every replica",
        "Lower `minAvailable` below the replica count or add replicas, so evictions can proceed one pod at a time.";
    CODE_NETPOL_BLOCKS_HBONE = "MM1050" Error "NetworkPolicy blocks HBONE (TCP 15008)",
        "Allow TCP 15008 in the same ingress rules that allow the application ports.";
    CODE_NETPOL_BLOCKS_TELEMETRY = "MM1051" Warning "NetworkPolicy blocks scraping the sidecar's metrics",
        "Allow TCP 15020 (merged metrics) and 15090 (Envoy) from the monitoring namespace.";
    CODE_NETPOL_BLOCKS_ISTIOD = "MM1052" Error "NetworkPolicy blocks the sidecar's connection to istiod",
        "Allow egress to TCP 15012 in istiod's namespace (and DNS) from the pods that get a sidecar.";
    CODE_CAPACITY_CPU = "MM1060" Error "Not enough free CPU for the sidecars' requests",
        "Add nodes or lower the proxy CPU request (`sidecar.istio.io/proxyCPU` or the mesh default) before injecting.";
    CODE_CAPACITY_MEMORY = "MM1061" Error "Not enough free memory for the sidecars' requests",
        "Add nodes or lower the proxy memory request (`sidecar.istio.io/proxyMemory` or the mesh default) before injecting.";
    CODE_HPA_CPU_UTILISATION = "MM1062" Warning "HorizontalPodAutoscaler's CPU utilisation shifts with the sidecar",
        "Lower the HPA's CPU target by the sidecar's share, or scale on the application container's CPU with a `ContainerResource` metric.";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_in_number_order_and_unique() {
        let numbers: Vec<_> = CATALOG.codes.iter().map(|c| c.code).collect();
        assert!(numbers.windows(2).all(|w| w[0] < w[1]), "catalog out of order or duplicated: {numbers:?}");
        assert_eq!(CATALOG.get("MM1050").map(|c| c.title), Some(CODE_NETPOL_BLOCKS_HBONE.title));
    }
}
