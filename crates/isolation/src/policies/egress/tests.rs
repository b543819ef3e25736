//! Egress policies judged by the engine: destinations outside the cluster that the input names
//! stay reachable, and what cannot be named by address leaves the workload's egress open.

use ipnet::IpNet;
use meshmove_netpol::Protocol;
use serde_json::Value;

use super::super::tests::{Oracle, SHOP, inventory, release};
use super::super::*;

/// SHOP plus `billing`, which connects to a database outside the cluster named by `url`
/// (optionally read from a Secret of the chart).
fn with_billing(env: &str) -> String {
    format!(
        "{SHOP}---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: billing}}
spec:
  selector: {{matchLabels: {{app: billing}}}}
  template:
    metadata: {{labels: {{app: billing}}}}
    spec:
      containers: [{{name: billing, image: acme/billing:1, ports: [{{containerPort: 8000}}], env: [{env}]}}]
---
apiVersion: v1
kind: Service
metadata: {{name: billing}}
spec: {{selector: {{app: billing}}, ports: [{{port: 80, targetPort: 8000}}]}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: checkout}}
spec:
  selector: {{matchLabels: {{app: checkout}}}}
  template:
    metadata: {{labels: {{app: checkout}}}}
    spec:
      containers: [{{name: checkout, image: acme/checkout:1, env: [{{name: BILLING_URL, value: 'http://billing'}}]}}]
"
    )
}

fn egress_opts() -> PolicyOptions {
    PolicyOptions {
        egress: true,
        ..PolicyOptions::default()
    }
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// What the engine lets `from` send to `address` on TCP `port`, outside the cluster.
fn reaches_outside(o: &Oracle, from: &str, address: &str, port: u16) -> bool {
    o.engine
        .allowed_to_cidr(o.pod(from), net(address))
        .allows(Protocol::Tcp, port)
}

fn egress_policy<'g>(g: &'g Generation, protects: &str) -> Option<&'g Generated> {
    g.policies
        .iter()
        .find(|p| p.egress && p.protects == protects)
}

#[test]
fn an_external_database_by_address_becomes_an_ip_block_on_its_port() {
    let input = inventory(&with_billing(
        "{name: DATABASE_URL, value: 'postgresql://app@10.0.5.7:5432/billing'}",
    ));
    let g = generate(&input, &release(&egress_opts(), MeshMode::Sidecar));
    let p = egress_policy(&g, "Deployment/billing")
        .unwrap_or_else(|| panic!("billing's egress is isolated: {:?}", g.withheld));
    assert_eq!(p.name, "rel-billing-egress");
    let o = Oracle::new(&input, &g);
    assert!(
        reaches_outside(&o, "billing", "10.0.5.7/32", 5432),
        "the external database stays reachable"
    );
    assert!(
        !reaches_outside(&o, "billing", "10.0.5.7/32", 22),
        "only on its port"
    );
    assert!(
        !reaches_outside(&o, "billing", "10.0.5.8/32", 5432),
        "only that address"
    );
    assert!(
        !reaches_outside(&o, "api", "10.0.5.7/32", 5432),
        "api names no external database"
    );
    assert!(o.reaches("checkout", "billing", 8000) && o.reaches("api", "db", 5432));
}

#[test]
fn a_host_and_port_pair_and_a_scheme_give_the_port() {
    let input = inventory(&with_billing(
        "{name: DB_HOST, value: 10.0.5.7}, {name: DB_PORT, value: '6543'}",
    ));
    let g = generate(&input, &release(&egress_opts(), MeshMode::Sidecar));
    let o = Oracle::new(&input, &g);
    assert!(
        egress_policy(&g, "Deployment/billing").is_some(),
        "{:?}",
        g.withheld
    );
    assert!(
        reaches_outside(&o, "billing", "10.0.5.7/32", 6543)
            && !reaches_outside(&o, "billing", "10.0.5.7/32", 5432)
    );
    // No port anywhere: the address on every port, and nothing else.
    let input = inventory(&with_billing("{name: DB_HOST, value: 10.0.5.7}"));
    let g = generate(&input, &release(&egress_opts(), MeshMode::Sidecar));
    let o = Oracle::new(&input, &g);
    assert!(
        reaches_outside(&o, "billing", "10.0.5.7/32", 5432)
            && reaches_outside(&o, "billing", "10.0.5.7/32", 1)
    );
    assert!(!reaches_outside(&o, "billing", "10.0.9.9/32", 5432));
}

#[test]
fn a_dns_name_outside_the_cluster_leaves_egress_open_until_its_ranges_are_configured() {
    let host = "billing.abc123.eu-west-1.rds.amazonaws.com";
    let input = inventory(&with_billing(&format!(
        "{{name: DATABASE_URL, value: 'postgresql://app@{host}:5432/billing'}}"
    )));
    let g = generate(&input, &release(&egress_opts(), MeshMode::Sidecar));
    assert!(egress_policy(&g, "Deployment/billing").is_none());
    assert!(
        g.policies
            .iter()
            .any(|p| !p.egress && p.protects == "Deployment/billing"),
        "its ingress is isolated all the same"
    );
    let w = g
        .withheld
        .iter()
        .find(|w| w.egress && w.subject == "Deployment/billing")
        .expect("reported");
    assert!(
        w.reason.contains(host)
            && w.isolate_with
                .starts_with("networkPolicies.externalHosts: {")
            && w.isolate_with.contains(host),
        "{w:?}"
    );
    let o = Oracle::new(&input, &g);
    assert!(
        reaches_outside(&o, "billing", "203.0.113.9/32", 5432),
        "do no harm: egress unrestricted"
    );
    assert!(
        !reaches_outside(&o, "api", "203.0.113.9/32", 5432),
        "others are isolated"
    );

    // Its ranges in the config: restricted to them, the database reachable there.
    let opts = PolicyOptions {
        external_hosts: [(
            host.to_ascii_uppercase(),
            vec![Cidr::try_from("10.20.0.0/16".to_string()).unwrap()],
        )]
        .into(),
        ..egress_opts()
    };
    let g = generate(&input, &release(&opts, MeshMode::Sidecar));
    assert!(
        egress_policy(&g, "Deployment/billing").is_some(),
        "{:?}",
        g.withheld
    );
    let o = Oracle::new(&input, &g);
    assert!(reaches_outside(&o, "billing", "10.20.3.4/32", 5432));
    assert!(
        !reaches_outside(&o, "billing", "10.30.0.1/32", 5432)
            && !reaches_outside(&o, "billing", "10.20.3.4/32", 80)
    );
}

#[test]
fn an_address_read_from_a_secret_is_never_written_and_leaves_egress_open() {
    let chart = format!(
        "{}---
apiVersion: v1
kind: Secret
metadata: {{name: billing-db}}
stringData: {{url: 'postgresql://app:hunter2@10.0.5.7:5432/billing'}}
",
        with_billing(
            "{name: DATABASE_URL, valueFrom: {secretKeyRef: {name: billing-db, key: url}}}"
        )
    );
    let input = inventory(&chart);
    let g = generate(&input, &release(&egress_opts(), MeshMode::Sidecar));
    let written: Vec<String> = g.policies.iter().map(|p| p.object.to_string()).collect();
    let report = serde_json::to_string(&g).unwrap();
    assert!(
        !report.contains("10.0.5.7") && written.iter().all(|p| !p.contains("10.0.5.7")),
        "{report}"
    );
    let w = g
        .withheld
        .iter()
        .find(|w| w.egress && w.subject == "Deployment/billing")
        .expect("reported");
    assert!(w.reason.contains("Secret billing-db key url"), "{w:?}");
    let o = Oracle::new(&input, &g);
    assert!(reaches_outside(&o, "billing", "10.0.5.7/32", 5432));
}

#[test]
fn a_secret_the_input_lacks_leaves_egress_open_unless_isolated_anyway() {
    let input = inventory(&with_billing(
        "{name: DATABASE_URL, valueFrom: {secretKeyRef: {name: external-db, key: url}}}",
    ));
    let g = generate(&input, &release(&egress_opts(), MeshMode::Sidecar));
    let w = g
        .withheld
        .iter()
        .find(|w| w.egress && w.subject == "Deployment/billing")
        .expect("reported");
    assert!(
        w.isolate_with == "networkPolicies.isolateAnyway: [billing] (dbiso: --isolate billing)",
        "{w:?}"
    );
    assert!(reaches_outside(
        &Oracle::new(&input, &g),
        "billing",
        "198.51.100.1/32",
        443
    ));
    let opts = PolicyOptions {
        isolate_anyway: vec!["billing".into()],
        ..egress_opts()
    };
    let g = generate(&input, &release(&opts, MeshMode::Sidecar));
    assert!(egress_policy(&g, "Deployment/billing").is_some());
    assert!(!reaches_outside(
        &Oracle::new(&input, &g),
        "billing",
        "198.51.100.1/32",
        443
    ));
}

/// Egress rules live in policies of their own: `<name>-egress` of type Egress only, beside
/// `<name>-ingress` of type Ingress only, every name valid for the API server.
#[test]
fn egress_rules_live_in_egress_policies() {
    let long = "a-workload-whose-name-is-long-enough-to-need-shortening-by-a-hash";
    let chart =
        with_billing("{name: DATABASE_URL, value: 'postgresql://app@10.0.5.7:5432/billing'}")
            .replace("billing", long);
    let input = inventory(&chart);
    let g = generate(&input, &release(&egress_opts(), MeshMode::Sidecar));
    assert!(g.policies.iter().any(|p| p.egress) && g.policies.iter().any(|p| !p.egress));
    let mut names = std::collections::BTreeSet::new();
    for p in &g.policies {
        let types: Vec<&str> = p.object["spec"]["policyTypes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let spec = p.object["spec"].as_object().unwrap();
        if p.egress {
            assert_eq!(types, ["Egress"], "{}", p.name);
            assert!(
                spec.contains_key("egress") && !spec.contains_key("ingress"),
                "{}",
                p.name
            );
        } else {
            assert_eq!(types, ["Ingress"], "{}", p.name);
            assert!(!spec.contains_key("egress"), "{}", p.name);
        }
        assert!(
            meshmove_model::names::is_dns1123_label(&p.name) && p.name.len() <= 63,
            "{}",
            p.name
        );
        assert!(names.insert(p.name.clone()), "duplicate {}", p.name);
        assert_eq!(p.object["metadata"]["name"], p.name.as_str());
    }
    let ours = g
        .policies
        .iter()
        .find(|p| p.egress && p.protects.ends_with(long))
        .expect("the long one");
    assert!(
        ours.name.ends_with("-egress") && ours.name != policy_name("rel", long),
        "{}",
        ours.name
    );
}
