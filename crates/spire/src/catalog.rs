//! The `spire-check` finding codes.
//!
//! Codes are grouped by the category of check that produces them, so a code alone tells a reader
//! where to look: SC2000 the input itself, SC20xx server, SC21xx agents, SC22xx registration, SC23xx identities, SC24xx
//! trust, SC25xx certificates, SC26xx Istio integration, SC27xx the server itself
//! asked through exec (`--exec`). Each code is one check: its severity is
//! the result the check has when it fails, its title is the check's description, and its hint is
//! what the operator should do next. `docs/findings.md` has a section per code, and every report
//! links to it with [`docs_url`].

use meshmove_model::findings::{Code, DOCS_PATH};

/// The documentation of a code, for people who installed a binary (with krew, say) and have no
/// checkout: its section of `docs/findings.md` on the project's repository, at the tag of the
/// release the binary was built from, so the text matches the checks that ran:
/// `https://github.com/meshmove/meshmove/blob/v0.1.0/docs/findings.md#sc2103`. The scheme is
/// `<repository>/blob/v<version>/docs/findings.md#<code in lower case>` (README, "Findings");
/// `docs/findings.md` stays the one source of the text.
pub fn docs_url(code: &Code) -> String {
    format!(
        "{}/blob/v{}/{DOCS_PATH}#{}",
        env!("CARGO_PKG_REPOSITORY"),
        env!("CARGO_PKG_VERSION"),
        code.code.to_ascii_lowercase()
    )
}

meshmove_model::finding_codes! { tool: "spire-check";
    // inputs
    INPUTS_READ = "SC2000" Error "Every kind the checks need could be read"
        "Grant the named `list` permissions (see the README's RBAC section) or run with -f on manifests; the checks that needed the kind were skipped, not passed.";
    // server
    SERVER_FOUND = "SC2001" Error "SPIRE server is deployed"
        "Install the SPIRE server (hardened Helm chart or Istio's sample), or point --server-selector / --spire-namespace at it.";
    SERVER_READY = "SC2002" Error "SPIRE server is ready"
        "Read the server pod's events and logs: datastore, key manager or upstream authority errors keep it unready.";
    SERVER_CONFIG_FOUND = "SC2003" Warning "SPIRE server configuration is available"
        "Include the ConfigMap that holds server.conf (the one the server mounts) so trust domain, TTLs and federation can be checked.";
    SERVER_CONFIG_VALID = "SC2004" Error "SPIRE server configuration is valid"
        "Fix server.conf: it must parse as HCL or JSON and set server.trust_domain.";
    SERVER_UNIQUE = "SC2005" Warning "Exactly one SPIRE server is found"
        "Narrow discovery with --spire-namespace or --server-selector so the checks look at the intended installation.";
    // agents
    AGENT_FOUND = "SC2101" Error "SPIRE agent DaemonSet is deployed"
        "Install the SPIRE agent DaemonSet, or point --agent-selector at it: without agents no workload can fetch an SVID.";
    AGENT_READY = "SC2102" Error "SPIRE agent DaemonSet is ready"
        "Read the unready agent pods' logs: node attestation or the connection to the server is failing.";
    AGENT_ON_EVERY_NODE = "SC2103" Error "Every schedulable node runs a SPIRE agent"
        "Check the agent DaemonSet's tolerations and node selector and the agent pod's events on the named nodes; workloads there get no identity.";
    CSI_DRIVER_FOUND = "SC2104" Error "SPIFFE CSI driver DaemonSet is deployed"
        "Install the SPIFFE CSI driver: Istio's spire template mounts the Workload API socket through it.";
    CSI_DRIVER_REGISTERED = "SC2105" Error "CSIDriver csi.spiffe.io is registered"
        "Create the CSIDriver object csi.spiffe.io (the CSI driver chart ships it); without it kubelet cannot mount the socket volume.";
    CSI_DRIVER_READY = "SC2106" Error "SPIFFE CSI driver is ready on every node"
        "Read the CSI driver pods' logs and events on the named nodes; pods scheduled there stay in ContainerCreating.";
    AGENT_WHERE_NEEDED = "SC2107" Error "Workloads that need the Workload API only land on nodes with a ready SPIRE agent"
        "Widen the agent DaemonSet's nodeSelector, affinity or tolerations to the named nodes (or keep these workloads off them with their own), and read the events of unready agent pods: pods there wait forever for an SVID.";
    // registration
    WORKLOAD_REGISTERED = "SC2201" Error "Every meshed workload is selected by a ClusterSPIFFEID"
        "Create or widen a ClusterSPIFFEID (podSelector and namespaceSelector) so the controller manager registers these workloads.";
    SINGLE_REGISTRATION = "SC2202" Warning "No workload is selected by several ClusterSPIFFEIDs"
        "Narrow the selectors (or mark one ClusterSPIFFEID as fallback) so each workload gets exactly one SPIFFE ID.";
    NO_RENDER_FAILURES = "SC2203" Error "ClusterSPIFFEIDs render all their entries"
        "Fix the templates of the named ClusterSPIFFEIDs; the controller manager could not render entries for some selected pods.";
    NO_MASKED_ENTRIES = "SC2204" Warning "ClusterSPIFFEID entries are not masked"
        "Remove overlapping ClusterSPIFFEIDs: masked entries mean two of them produce the same entry for a pod.";
    NO_ENTRY_FAILURES = "SC2205" Error "ClusterSPIFFEID entries reach the SPIRE server"
        "Read the controller manager's logs: the SPIRE server rejected or could not store some entries.";
    CLASS_SERVED = "SC2206" Warning "Every ClusterSPIFFEID is served by the controller manager"
        "Set spec.className to the controller manager's className (or enable watchClassless); otherwise the resource is ignored.";
    SPEC_VALID = "SC2207" Error "ClusterSPIFFEID specs are valid"
        "Fix the named ClusterSPIFFEIDs: the controller manager rejects an empty template, invalid selectors or invalid federatesWith names.";
    CRD_INSTALLED = "SC2208" Error "The ClusterSPIFFEID CRD is installed"
        "Install spire-controller-manager and its CRDs; without them no workload is registered automatically.";
    // identities
    ID_RENDERS = "SC2301" Error "SPIFFE ID templates render valid IDs"
        "Use only the template fields the controller manager provides and make sure the rendered value is a valid SPIFFE ID.";
    ID_ISTIO_FORM = "SC2302" Error "SPIFFE IDs have Istio's form"
        "Use spiffeIDTemplate \"spiffe://{{ .TrustDomain }}/ns/{{ .PodMeta.Namespace }}/sa/{{ .PodSpec.ServiceAccountName }}\": Istio accepts no other form.";
    ID_TRUST_DOMAIN = "SC2303" Error "SPIFFE IDs use the SPIRE trust domain"
        "Use {{ .TrustDomain }} in spiffeIDTemplate instead of a hard-coded trust domain.";
    // trust
    TRUST_DOMAIN_MATCH = "SC2401" Error "SPIRE and Istio use the same trust domain"
        "Set meshConfig.trustDomain to the SPIRE server's trust_domain (or the other way round) and restart the proxies.";
    MESH_CONFIG_FOUND = "SC2402" Warning "Istio mesh configuration is available"
        "Include the istio ConfigMap (key mesh) from the control-plane namespace; without it Istio's trust domain defaults to cluster.local.";
    CONTROLLER_TRUST_DOMAIN = "SC2403" Error "The controller manager uses the server's trust domain"
        "Set trustDomain in the controller manager configuration to the server's trust_domain.";
    FEDERATION_CONFIGURED = "SC2404" Error "Every federatesWith trust domain is federated by the server"
        "Add a federates_with block for the trust domain to the server's federation section, or a ClusterFederatedTrustDomain.";
    FEDERATION_COMPLETE = "SC2405" Error "Federation relationships are complete"
        "Give every federates_with block a bundle_endpoint_url and a bundle_endpoint_profile.";
    ISTIO_CA_TRUST_DOMAINS = "SC2406" Warning "Istio caCertificates name known trust domains"
        "Name in meshConfig.caCertificates[].trustDomains only the SPIRE trust domain and trust domains the server federates with.";
    // certificates
    BUNDLE_NOT_EXPIRED = "SC2501" Error "No trust bundle authority has expired"
        "Check the SPIRE server's CA and JWT key rotation and the plugin that publishes the bundle; remove expired roots from a hand-made bundle.";
    BUNDLE_ROTATION = "SC2502" Warning "The trust bundle's authorities have time left or a successor"
        "SPIRE should have published the next CA (or JWT key) by now: check the server's logs for preparation errors, or renew the upstream root.";
    BUNDLE_VALID_NOW = "SC2503" Warning "No trust bundle certificate is valid only in the future"
        "Check the clocks of the SPIRE server and the nodes, or the notBefore of a hand-made root.";
    BUNDLE_ONLY_CAS = "SC2504" Error "The trust bundle holds only CA certificates"
        "Remove leaf certificates from the bundle: trust anchors must be CA certificates.";
    BUNDLE_READABLE = "SC2505" Error "The trust bundle can be read"
        "Provide the bundle as PEM certificates, a SPIFFE bundle (JWKS with x5c) or `spire-server bundle show -output json`.";
    BUNDLE_PUBLISHED = "SC2506" Warning "The trust bundle ConfigMap is published"
        "Configure BundlePublisher k8s_configmap (the official chart's default) or Notifier k8sbundle in server.conf, and read the server's logs if it writes nothing.";
    SVID_TTL_FITS = "SC2507" Warning "The X509-SVID TTL fits the CA TTL"
        "Keep default_x509_svid_ttl (and ClusterSPIFFEID ttl) at most ca_ttl/6 (and 7 days) so CA rotation does not cut SVIDs short.";
    BUNDLE_TRUST_DOMAIN = "SC2508" Warning "Bundle CAs belong to the SPIRE trust domain"
        "Check that the bundle comes from this trust domain's server; federated bundles are kept separately.";
    // istio integration
    SPIRE_TEMPLATE = "SC2601" Error "The sidecar injector has a spire template"
        "Add the spire template (sidecarInjectorWebhook.templates.spire) that mounts the SPIFFE CSI volume into istio-proxy.";
    SPIRE_TEMPLATE_MOUNTS = "SC2602" Error "The spire template mounts the Workload API socket"
        "Make the spire template add a csi.spiffe.io volume and mount it into istio-proxy at the workload socket path.";
    WORKLOAD_SOCKET = "SC2603" Error "Meshed workloads mount the Workload API socket"
        "Annotate the pod template with inject.istio.io/templates: \"sidecar,spire\" (or mount the csi.spiffe.io volume at the socket path) and restart it.";
    OPT_IN_REGISTERED = "SC2604" Error "Workloads that opt into SPIRE have a registration entry"
        "Create a ClusterSPIFFEID selecting these pods: istio-proxy waits for an SVID that never comes and the pod hangs unready.";
    TEMPLATE_WITH_SIDECAR = "SC2605" Warning "The spire template is requested together with sidecar"
        "List both templates: inject.istio.io/templates: \"sidecar,spire\"; the spire template alone injects no proxy.";
    // the server itself, asked through exec (`--exec`, live clusters only)
    EXEC_AVAILABLE = "SC2701" Error "The SPIRE server pod accepts exec"
        "Make sure a server pod is Running and that you may create pods/exec in its namespace (kubectl auth can-i create pods/exec -n <namespace>).";
    SERVER_HEALTHY = "SC2702" Error "The SPIRE server passes its own healthcheck"
        "Read the server container's logs: the healthcheck fails when the server API socket does not answer.";
    POD_HAS_ENTRY = "SC2703" Error "Every meshed pod that uses SPIRE has a registration entry on the server"
        "Read the spire-controller-manager logs: it has not synced entries for these pods, so their proxies wait for an SVID forever.";
    ENTRY_ISTIO_ID = "SC2704" Error "Registration entries give meshed pods Istio's SPIFFE ID"
        "Delete or fix the named entries (or the ClusterSPIFFEID that created them) so that each pod gets spiffe://<trust domain>/ns/<namespace>/sa/<service account>.";
    AGENT_ATTESTED = "SC2705" Error "Every node running a SPIRE agent pod has an attested agent"
        "Read the agent pod's logs on the named nodes: node attestation failed, the agent is banned, or its SVID expired.";
    ENTRY_PARENT = "SC2706" Error "Entries of meshed pods belong to the agent on the pod's node"
        "Restart spire-controller-manager (or recreate the named entries) so that each entry's parent is the agent attested on the node where the pod runs.";
    SERVER_BUNDLE_CURRENT = "SC2707" Error "The server's own trust bundle has no expired authority"
        "Read the server's logs for CA and JWT key preparation errors; an expired X.509 or JWT authority that is the newest of its kind stops SVIDs from verifying.";
    SERVER_BUNDLE_ROTATION = "SC2708" Warning "The server's own trust bundle has authorities with time left or a successor"
        "SPIRE should have prepared the next CA or JWT key by now: read the server's logs for preparation or upstream authority errors.";
}
