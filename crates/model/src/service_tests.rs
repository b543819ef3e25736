use serde_json::json;

use super::*;
use crate::inventory::Object;
use crate::workload::Workload;

fn container(name: &str, port: u16, protocol: &str) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_string()),
        port,
        protocol: protocol.to_string(),
    }
}

fn svc(ports: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api"}, "spec": {"selector": {"app": "api"}, "ports": ports}})
}

#[test]
fn named_target_resolves_per_pod() {
    // Two pods of one Service declare `http` on different numbers: each receives on its own.
    let s = svc(json!([{"port": 80, "targetPort": "http"}]));
    let old = [container("http", 8080, "TCP")];
    let new = [
        container("metrics", 9090, "TCP"),
        container("http", 9000, "TCP"),
    ];
    assert_eq!(tcp_pod_ports(&s, &old), [8080]);
    assert_eq!(tcp_pod_ports(&s, &new), [9000]);
    // A pod without the name is not an endpoint of that port.
    assert_eq!(
        tcp_pod_ports(&s, &[container("grpc", 8080, "TCP")]),
        Vec::<u16>::new()
    );
}

#[test]
fn named_target_matches_protocol() {
    let s = svc(
        json!([{"port": 53, "targetPort": "dns", "protocol": "UDP"}, {"port": 5353, "targetPort": "dns"}]),
    );
    let pod = [container("dns", 1053, "UDP")];
    let ports = service_ports(&s);
    assert_eq!(ports[0].pod_port(&pod), Some(1053));
    assert_eq!(
        ports[1].pod_port(&pod),
        None,
        "a TCP Service port does not reach a UDP container port of that name"
    );
    assert!(tcp_pod_ports(&s, &pod).is_empty());
}

#[test]
fn missing_zero_or_empty_target_is_port() {
    let s = svc(
        json!([{"port": 80}, {"port": 81, "targetPort": 0}, {"port": 82, "targetPort": ""}, {"port": 83, "targetPort": null}]),
    );
    let targets: Vec<TargetPort> = service_ports(&s).into_iter().map(|p| p.target).collect();
    assert_eq!(targets, [80, 81, 82, 83].map(TargetPort::Number));
    assert_eq!(tcp_pod_ports(&s, &[]), [80, 81, 82, 83]);
}

#[test]
fn digit_string_is_a_number() {
    let s = svc(json!([{"port": 80, "targetPort": "8080"}, {"port": 81, "targetPort": 9090}]));
    assert_eq!(
        service_ports(&s)
            .iter()
            .map(|p| p.target.clone())
            .collect::<Vec<_>>(),
        [TargetPort::Number(8080), TargetPort::Number(9090)]
    );
    // Even where a container port happens to be named so (no valid pod can declare it).
    assert_eq!(
        tcp_pod_ports(&s, &[container("8080", 1234, "TCP")]),
        [8080, 9090]
    );
    assert_eq!(TargetPort::from_value(&json!("99999")), None);
    assert_eq!(TargetPort::from_value(&json!(70000)), None);
    assert_eq!(TargetPort::from_value(&json!("0")), None);
    assert_eq!(
        TargetPort::from_value(&json!("web")),
        Some(TargetPort::Named("web".into()))
    );
}

#[test]
fn unreadable_entries_are_skipped_and_protocols_kept() {
    let s = svc(
        json!([{"targetPort": 80}, {"port": "x"}, {"port": 70000}, {"port": 80, "targetPort": true}, {"port": 53, "protocol": "UDP"}, {"port": 443}]),
    );
    let ports = service_ports(&s);
    assert_eq!(ports.len(), 2);
    assert_eq!(
        (ports[0].port, ports[0].protocol.as_str(), ports[0].is_tcp()),
        (53, "UDP", false)
    );
    assert_eq!(tcp_pod_ports(&s, &[]), [443]);
}

#[test]
fn typed_and_json_agree() {
    for p in [
        json!({"port": 80}),
        json!({"port": 80, "targetPort": 0}),
        json!({"port": 80, "targetPort": ""}),
        json!({"port": 80, "targetPort": "8080"}),
        json!({"port": 80, "targetPort": "http", "name": "web", "protocol": "TCP"}),
        json!({"port": 53, "targetPort": 1053, "protocol": "UDP"}),
    ] {
        let typed: k8s_openapi::api::core::v1::ServicePort =
            serde_json::from_value(p.clone()).unwrap();
        assert_eq!(
            ServicePort::from_typed(&typed),
            ServicePort::from_value(&p),
            "{p}"
        );
    }
}

#[test]
fn resolves_against_a_workloads_template() {
    let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": "n"},
        "spec": {"template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [
            {"name": "a", "ports": [{"name": "http", "containerPort": 8000}]},
            {"name": "b", "ports": [{"name": "grpc", "containerPort": 9000}]}]}}}});
    let object = Object::from_value(
        d,
        crate::inventory::Origin::Cluster {
            context: "test".into(),
        },
    )
    .unwrap();
    let w = Workload::of(&object).unwrap();
    let s = svc(
        json!([{"port": 80, "targetPort": "http"}, {"port": 90, "targetPort": "grpc"}, {"port": 91}]),
    );
    assert_eq!(tcp_pod_ports(&s, &w.ports()), [8000, 9000, 91]);
    assert_eq!(TargetPort::Named("http".into()).to_value(), json!("http"));
    assert_eq!(TargetPort::Number(80).to_value(), json!(80));
}
