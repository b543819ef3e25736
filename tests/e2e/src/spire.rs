//! The SPIRE installation `enable --spire` needs, shared by its end-to-end test and the RBAC
//! proof: spire-check's `healthy` fixture (`crates/spire/tests/fixtures/healthy`) with a valid
//! trust bundle, and a namespace of workloads to put on the mesh.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::root;

/// The namespace whose workloads `enable --spire` puts on the mesh.
pub const NS: &str = "shop";

/// The workloads of the namespace to put on the mesh (not labelled for injection yet).
pub fn shop() -> Vec<Value> {
    let deployment = |name: &str| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NS},
               "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                        "template": {"metadata": {"labels": {"app": name}},
                                     "spec": {"serviceAccountName": name, "containers": [{"name": name, "image": format!("registry.example/shop/{name}:1.0"), "ports": [{"containerPort": 8080}]}]}}}})
    };
    vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "cart", "namespace": NS},
               "spec": {"selector": {"app": "cart"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}),
        deployment("cart"),
        deployment("checkout"),
    ]
}

/// A self-signed CA (PEM) valid from an hour ago for 30 days: the SPIRE trust bundle.
pub fn bundle() -> String {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "SPIFFE");
    params.subject_alt_names = vec![rcgen::SanType::URI(rcgen::string::Ia5String::try_from("spiffe://example.org").unwrap())];
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + Duration::from_secs(now - 3600);
    params.not_after = epoch + Duration::from_secs(now + 30 * 24 * 3600);
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    let key = rcgen::KeyPair::generate().unwrap();
    params.self_signed(&key).unwrap().pem()
}

/// SPIRE and Istio's configuration as spire-check's `healthy` fixture has them (its meshed
/// workloads and other namespaces left out), with the trust bundle filled in, and the injector's
/// `spire` template written as Istio's SPIRE guide writes it: it adds the label the
/// ClusterSPIFFEID selects (`spiffe.io/spire-managed-identity`), which the workloads do not carry.
pub fn spire_installation() -> Vec<Value> {
    let text = std::fs::read_to_string(root().join("crates/spire/tests/fixtures/healthy/input.yaml")).unwrap();
    let pem = bundle();
    let mut filled = String::new();
    for line in text.split_inclusive('\n') {
        if line.trim() == "{{BUNDLE_VALID}}" {
            let indent: String = line.chars().take_while(|c| *c == ' ').collect();
            for l in pem.lines() {
                filled.push_str(&format!("{indent}{l}\n"));
            }
        } else {
            filled.push_str(line);
        }
    }
    let mut docs: Vec<Value> = apiserver_double::parse_documents(&filled)
        .unwrap()
        .into_iter()
        .filter(|d| d["metadata"]["namespace"] != NS && d["metadata"]["name"] != NS && d["metadata"]["namespace"] != "tools" && d["metadata"]["name"] != "tools")
        .collect();
    let injector = docs.iter_mut().find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == "istio-sidecar-injector").unwrap();
    injector["data"]["config"] = json!(
        "defaultTemplates: [sidecar]\npolicy: enabled\ntemplates:\n  sidecar: |\n    spec:\n      containers:\n      - name: istio-proxy\n        image: docker.io/istio/proxyv2:1.22.0\n  spire: |\n    labels:\n      spiffe.io/spire-managed-identity: \"true\"\n    spec:\n      containers:\n      - name: istio-proxy\n        volumeMounts:\n        - name: workload-socket\n          mountPath: /run/secrets/workload-spiffe-uds\n          readOnly: true\n      volumes:\n        - name: workload-socket\n          csi:\n            driver: \"csi.spiffe.io\"\n            readOnly: true\n"
    );
    docs
}

