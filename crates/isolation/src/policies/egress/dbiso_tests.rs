//! `kubectl dbiso generate --egress`: the databases' ingress policies and every other workload's
//! egress policy from the one generator, judged by the engine: every connection the input shows
//! in use (Service calls, database clients, a CloudNativePG cluster whose Services are the
//! operator's, an external database) is still allowed, and nothing else leaves a restricted pod.

use std::collections::BTreeMap;

use ipnet::IpNet;
use meshmove_netpol::{PodInfo, Protocol};

use super::super::tests::{Oracle, SHOP, inventory};
use super::super::*;
use crate::generate::{self as dbiso, GenerateOptions};

/// SHOP plus a CloudNativePG cluster `orders-db` used by `orders` through its `-rw` Service,
/// `billing` with a database outside the cluster by address, and `reports` naming one by DNS name.
fn platform(namespace_labels: &str) -> String {
    format!(
        "apiVersion: v1
kind: Namespace
metadata: {{name: shop, labels: {{{namespace_labels}}}}}
---
{SHOP}---
apiVersion: postgresql.cnpg.io/v1
kind: Cluster
metadata: {{name: orders-db}}
spec: {{instances: 2}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: orders}}
spec:
  selector: {{matchLabels: {{app: orders}}}}
  template:
    metadata: {{labels: {{app: orders}}}}
    spec:
      containers: [{{name: orders, image: acme/orders:1, env: [{{name: DATABASE_URL, value: 'postgresql://app@orders-db-rw:5432/app'}}]}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: billing}}
spec:
  selector: {{matchLabels: {{app: billing}}}}
  template:
    metadata: {{labels: {{app: billing}}}}
    spec:
      containers: [{{name: billing, image: acme/billing:1, env: [{{name: DATABASE_URL, value: 'postgresql://app@10.0.5.7:5432/billing'}}]}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: reports}}
spec:
  selector: {{matchLabels: {{app: reports}}}}
  template:
    metadata: {{labels: {{app: reports}}}}
    spec:
      containers: [{{name: reports, image: acme/reports:1, env: [{{name: DATABASE_URL, value: 'postgresql://app@reports.abc.eu-west-1.rds.amazonaws.com:5432/r'}}]}}]
"
    )
}

fn options() -> GenerateOptions {
    GenerateOptions { egress: true, isolate_all: true, ..GenerateOptions::default() }
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn outside(o: &Oracle, from: &str, address: &str, port: u16) -> bool {
    o.engine.allowed_to_cidr(o.pod(from), net(address)).allows(Protocol::Tcp, port)
}

fn istiod() -> PodInfo {
    PodInfo::new("istio-system", "istiod").with_labels([("app", "istiod")])
}

/// Every connection in use stays allowed, each workload that is not a database gets its own
/// egress policy, and a restricted pod reaches nothing else.
#[test]
fn every_connection_in_use_survives_egress_isolation() {
    let input = inventory(&platform(""));
    let g = dbiso::generate(&input, &options());
    let egress: BTreeMap<&str, &Generated> = g.policies.iter().filter(|p| p.egress).map(|p| (p.protects.as_str(), p)).collect();
    for w in ["Deployment/api", "Deployment/web", "Deployment/orders", "Deployment/billing"] {
        let p = egress.get(w).unwrap_or_else(|| panic!("{w} has no egress policy: {:?}", g.withheld));
        let name = w.split_once('/').unwrap().1;
        assert_eq!(p.name, format!("dbiso-{name}-egress"));
        assert_eq!(p.object["spec"]["policyTypes"], serde_json::json!(["Egress"]));
        assert!(p.object.pointer(&format!("/metadata/labels/{}", dbiso::DATABASE_LABEL.replace('/', "~1"))).is_none(), "an egress policy names no database");
    }
    assert!(!egress.contains_key("StatefulSet/db") && !egress.contains_key("Cluster/orders-db"), "databases keep their egress");
    let o = Oracle::with_pods(&input, &g, vec![istiod()]);
    // The uses: Service calls, database clients (a CloudNativePG cluster included), the
    // external database by address.
    assert!(o.reaches("web", "api", 8080) && o.reaches("api", "db", 5432));
    let instance = o.engine.pods().find(|(_, p)| p.labels.get("cnpg.io/cluster").is_some_and(|c| c == "orders-db")).map(|(id, _)| id).expect("an orders-db instance");
    assert!(o.engine.allowed(o.pod("orders"), instance).allows(Protocol::Tcp, 5432), "orders keeps its CloudNativePG cluster");
    assert!(outside(&o, "billing", "10.0.5.7/32", 5432));
    // Nothing else leaves a restricted pod.
    for from in ["api", "web", "orders", "billing"] {
        assert!(!o.reaches(from, "stranger", 8080), "{from} reaches a stranger");
        assert!(!outside(&o, from, "192.0.2.1/32", 443), "{from} reaches the internet");
    }
    assert!(!o.reaches("web", "db", 5432) && !outside(&o, "api", "10.0.5.7/32", 5432));
    assert!(!o.engine.allowed(o.pod("api"), instance).allows(Protocol::Tcp, 5432), "api does not use orders-db");
    // Without sidecars, istiod is not needed: not admitted.
    assert!(!o.reaches("api", "istiod", 15012));
}

/// A host named by DNS name leaves its workload's egress open, saying which setting restricts
/// it; with its ranges given (`--external-host`), the workload is restricted and keeps them.
#[test]
fn a_dns_name_outside_needs_its_ranges() {
    let input = inventory(&platform(""));
    let g = dbiso::generate(&input, &options());
    let open = g.withheld.iter().find(|w| w.egress && w.subject == "Deployment/reports").expect("reports' egress stays open");
    assert_eq!(open.isolate_with, "networkPolicies.externalHosts: {reports.abc.eu-west-1.rds.amazonaws.com: [<its address ranges>]} (dbiso: --external-host reports.abc.eu-west-1.rds.amazonaws.com=<CIDR>)");
    assert!(!g.policies.iter().any(|p| p.egress && p.protects == "Deployment/reports"));
    let ranges = BTreeMap::from([("reports.abc.eu-west-1.rds.amazonaws.com".to_string(), vec![Cidr::try_from("10.20.0.0/16".to_string()).unwrap()])]);
    let g = dbiso::generate(&input, &GenerateOptions { external_hosts: ranges, ..options() });
    assert!(g.policies.iter().any(|p| p.egress && p.protects == "Deployment/reports"), "{:?}", g.withheld);
    let o = Oracle::new(&input, &g);
    assert!(outside(&o, "reports", "10.20.3.4/32", 5432) && !outside(&o, "reports", "10.21.0.1/32", 5432));
}

/// Read from the input, a namespace with sidecar injection keeps istiod open to its workloads'
/// sidecars; an ambient one puts HBONE into the callee rules, and the tunnel opens nothing else.
#[test]
fn the_data_plane_is_read_from_the_input() {
    let input = inventory(&platform("istio-injection: enabled"));
    let g = dbiso::generate(&input, &options());
    let o = Oracle::with_pods(&input, &g, vec![istiod()]);
    assert!(o.reaches("api", "istiod", 15012) && o.reaches("web", "api", 8080), "{:?}", g.withheld);
    assert!(!o.reaches("api", "istiod", 443));

    let input = inventory(&platform("istio.io/dataplane-mode: ambient"));
    let g = dbiso::generate(&input, &options());
    let o = Oracle::with_pods(&input, &g, vec![istiod()]);
    assert!(o.reaches("web", "api", 8080) && o.reaches("api", "db", 5432), "{:?} {:?}", g.withheld, g.notes);
    assert!(!o.reaches("web", "db", 5432) && !o.reaches("web", "ambient-stranger", 8080) && !o.reaches("web", "ambient-stranger", HBONE_PORT));
    assert!(!o.reaches("api", "istiod", 15012), "no sidecar, no istiod");
}

/// A violation stays cut (the database admits its owner only), and the violator's egress, which
/// still names the database, does not make the proof withhold the database's policy.
#[test]
fn violations_stay_cut_with_egress() {
    let shared = platform("").replace(
        "env: [{name: API_URL, value: 'http://api/v1'}]",
        "env: [{name: API_URL, value: 'http://api/v1'}, {name: DB_URL, value: 'postgres://u@db:5432/shop'}]",
    );
    let input = inventory(&shared);
    let opts = GenerateOptions { owners: BTreeMap::from([("db".to_string(), "api".to_string())]), ..options() };
    let g = dbiso::generate(&input, &opts);
    assert!(g.policies.iter().any(|p| !p.egress && p.protects == "StatefulSet/db"), "{:?}", g.withheld);
    assert!(g.cuts.iter().any(|c| c.from == "Deployment/web" && c.to.ends_with("/db")), "{:?}", g.cuts);
    let o = Oracle::new(&input, &g);
    assert!(o.reaches("api", "db", 5432) && !o.reaches("web", "db", 5432));
}
