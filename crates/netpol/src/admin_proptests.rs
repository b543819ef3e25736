//! Properties of the admin tiers on random small clusters (the generators of `proptests`):
//! the class-based `reach` agrees with per-pod `allowed` and `explain` with admin policies in
//! play, and admin policies that decide nothing leave every verdict as NetworkPolicy alone gives
//! it.

use super::*;

fn gen_action(baseline: bool) -> impl Strategy<Value = &'static str> {
    if baseline {
        proptest::sample::select(vec!["Allow", "Deny"])
    } else {
        proptest::sample::select(vec!["Allow", "Deny", "Pass"])
    }
}

fn gen_admin_peer(egress: bool) -> impl Strategy<Value = Value> {
    let networks = proptest::sample::select(vec![
        json!(["10.0.0.0/16"]),
        json!(["10.0.1.0/24", "192.168.0.0/16"]),
        json!(["0.0.0.0/0"]),
        json!(["::/0"]),
    ]);
    let pods = (gen_selector(), gen_selector()).prop_map(|(n, p)| json!({"pods": {"namespaceSelector": n, "podSelector": p}}));
    let namespaces = gen_selector().prop_map(|s| json!({"namespaces": s}));
    if egress {
        prop_oneof![namespaces, pods, networks.prop_map(|n| json!({"networks": n}))].boxed()
    } else {
        prop_oneof![namespaces, pods].boxed()
    }
}

fn gen_admin_port() -> impl Strategy<Value = Value> {
    let proto = proptest::sample::select(vec!["TCP", "UDP", "SCTP"]);
    prop_oneof![
        (proto.clone(), proptest::sample::select(vec![53u16, 80, 443, 5432, 8080])).prop_map(|(p, n)| json!({"portNumber": {"protocol": p, "port": n}})),
        proptest::sample::select(vec!["http", "dns", "db"]).prop_map(|n| json!({"namedPort": n})),
        (proto, proptest::sample::select(vec![(50u16, 90u16), (80, 80), (440, 9000)])).prop_map(|(p, (s, e))| json!({"portRange": {"protocol": p, "start": s, "end": e}})),
    ]
}

fn gen_admin_rules(egress: bool, baseline: bool) -> impl Strategy<Value = Vec<Value>> {
    let rule = (
        gen_action(baseline),
        proptest::collection::vec(gen_admin_peer(egress), 1..3),
        proptest::option::of(proptest::collection::vec(gen_admin_port(), 1..3)),
    )
        .prop_map(move |(action, peers, ports)| {
            let mut r = json!({"action": action});
            r[if egress { "to" } else { "from" }] = Value::Array(peers);
            if let Some(p) = ports {
                r["ports"] = Value::Array(p);
            }
            r
        });
    proptest::collection::vec(rule, 0..3)
}

fn gen_subject() -> impl Strategy<Value = Value> {
    prop_oneof![
        gen_selector().prop_map(|s| json!({"namespaces": s})),
        (gen_selector(), gen_selector()).prop_map(|(n, p)| json!({"pods": {"namespaceSelector": n, "podSelector": p}})),
    ]
}

/// An ANP spec (priorities from a small range, so ties happen) or, with `baseline`, a BANP spec.
fn gen_admin_spec(baseline: bool) -> impl Strategy<Value = Value> {
    (0i64..3, gen_subject(), gen_admin_rules(false, baseline), gen_admin_rules(true, baseline)).prop_map(move |(priority, subject, ingress, egress)| {
        let mut spec = json!({"subject": subject, "ingress": ingress, "egress": egress});
        if !baseline {
            spec["priority"] = json!(priority);
        }
        spec
    })
}

fn with_admin(mut m: ClusterModel, anps: &[Value], banp: Option<&Value>) -> ClusterModel {
    m.admin_network_policies = anps.iter().enumerate().map(|(i, spec)| json!({"metadata": {"name": format!("anp{i}")}, "spec": spec})).collect();
    m.baseline_admin_network_policies = banp.map(|spec| json!({"metadata": {"name": "default"}, "spec": spec})).into_iter().collect();
    m
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// With admin policies, the class-based all-pairs result still equals the union of the
    /// per-pod answers, for workload pairs and for external addresses.
    #[test]
    fn reach_agrees_with_allowed_under_admin_policies(
        c in gen_cluster(),
        anps in proptest::collection::vec(gen_admin_spec(false), 0..4),
        banp in proptest::option::of(gen_admin_spec(true)),
        pod_ips in any::<bool>(),
    ) {
        let e = build(&with_admin(model(&c, &[]), &anps, banp.as_ref()), pod_ips);
        let reach = e.reach();
        let by_workload: BTreeMap<WorkloadRef, Vec<PodId>> = e.pods().fold(BTreeMap::new(), |mut m, (id, p)| {
            m.entry(p.workload()).or_default().push(id);
            m
        });
        for (ws, src) in &by_workload {
            for (wd, dst) in &by_workload {
                let want = union_all(src.iter().flat_map(|&s| dst.iter().map(move |&d| (s, d))).map(|(s, d)| e.allowed(s, d)));
                let got = reach.get(&Endpoint::Workload(ws.clone()), &Endpoint::Workload(wd.clone()));
                prop_assert_eq!(got.cloned().unwrap_or_default(), want, "{} -> {}", ws, wd);
            }
        }
        for r in reach.iter() {
            match (r.src, r.dst) {
                (Endpoint::External(n), Endpoint::Workload(w)) => {
                    let want = union_all(by_workload[w].iter().map(|&p| e.allowed_from_cidr(*n, p)));
                    prop_assert_eq!(r.conn, &want, "{} -> {}", n, w);
                }
                (Endpoint::Workload(w), Endpoint::External(n)) => {
                    let want = union_all(by_workload[w].iter().map(|&p| e.allowed_to_cidr(p, *n)));
                    prop_assert_eq!(r.conn, &want, "{} -> {}", w, n);
                }
                _ => {}
            }
        }
        for (w, pods) in &by_workload {
            for probe in PROBES {
                let addr = IpNet::from(probe.parse::<IpAddr>().unwrap());
                let want = union_all(pods.iter().map(|&p| e.allowed_to_cidr(p, addr)));
                let got = reach.iter().filter(|r| r.src == &Endpoint::Workload(w.clone())).find_map(|r| match r.dst {
                    Endpoint::External(n) if n.contains(&addr) => Some(r.conn.clone()),
                    _ => None,
                });
                prop_assert_eq!(got.unwrap_or_default(), want, "{} -> {}", w, probe);
            }
        }
    }

    /// `explain` with admin policies: the verdict is `allowed()` at the port, and a deciding
    /// admin rule is named exactly when one matched with Allow or Deny.
    #[test]
    fn explain_agrees_with_allowed_under_admin_policies(
        c in gen_cluster(),
        anps in proptest::collection::vec(gen_admin_spec(false), 1..4),
        banp in proptest::option::of(gen_admin_spec(true)),
        proto in proptest::sample::select(Protocol::ALL.to_vec()),
        port in proptest::sample::select(vec![53u16, 80, 443, 5432, 8080, 15008]),
    ) {
        let e = build(&with_admin(model(&c, &[]), &anps, banp.as_ref()), true);
        let pods: Vec<PodId> = e.pods().map(|(id, _)| id).collect();
        for &s in &pods {
            for &d in &pods {
                let x = e.explain(Target::Pod(s), Target::Pod(d), proto, port).unwrap();
                prop_assert_eq!(x.allowed, e.allowed(s, d).allows(proto, port), "{}", x.verdict);
                for side in [&x.egress, &x.ingress] {
                    if let Some(a) = &side.admin {
                        let last = a.rules.last().filter(|r| r.peer_matched && r.port_matched);
                        let decisive = last.filter(|r| r.action != AdminAction::Pass);
                        prop_assert_eq!(a.decided_by.is_some(), decisive.is_some(), "{:?}", a);
                        if let Some(r) = decisive {
                            prop_assert_eq!(side.allowed, r.action == AdminAction::Allow);
                        }
                    }
                }
            }
        }
    }

    /// Admin policies that decide nothing change nothing: an ANP passing every pod and every
    /// address (both families) to NetworkPolicy, and a baseline allowing everything, give the
    /// same reach as NetworkPolicy alone, ports, external CIDRs and HBONE marks included.
    #[test]
    fn pass_all_and_allow_all_baseline_change_nothing(c in gen_cluster(), pod_ips in any::<bool>(), priority in 0i64..1000) {
        let everyone = json!([{"namespaces": {}}]);
        let everywhere = json!([{"namespaces": {}}, {"networks": ["0.0.0.0/0", "::/0"]}]);
        let pass = json!({"priority": priority, "subject": {"namespaces": {}},
            "ingress": [{"action": "Pass", "from": everyone}], "egress": [{"action": "Pass", "to": everywhere}]});
        let allow = json!({"subject": {"namespaces": {}},
            "ingress": [{"action": "Allow", "from": everyone}], "egress": [{"action": "Allow", "to": everywhere}]});
        let plain = build(&model(&c, &[]), pod_ips).reach();
        let admin = build(&with_admin(model(&c, &[]), &[pass], Some(&allow)), pod_ips);
        let got = admin.reach();
        // Pods without IPs are matched by no `networks` entry but by the `namespaces` peer, so
        // every pod is covered either way; the external CIDRs may be split differently (the
        // admin CIDRs refine the partition), so compare per workload pair and per probe address.
        for src in plain.endpoints().iter().filter(|e| matches!(e, Endpoint::Workload(_))) {
            for dst in plain.endpoints().iter().filter(|e| matches!(e, Endpoint::Workload(_))) {
                prop_assert_eq!(plain.get(src, dst), got.get(src, dst), "{} -> {}", src, dst);
                prop_assert_eq!(plain.hbone(src, dst), got.hbone(src, dst));
            }
            for probe in PROBES {
                let addr = IpNet::from(probe.parse::<IpAddr>().unwrap());
                let find = |r: &Reach, out: bool| r.iter().find_map(|x| match (out, x.src, x.dst) {
                    (true, s, Endpoint::External(n)) | (false, Endpoint::External(n), s) if s == src && n.contains(&addr) => Some(x.conn.clone()),
                    _ => None,
                });
                prop_assert_eq!(find(&plain, true), find(&got, true), "{} -> {}", src, probe);
                prop_assert_eq!(find(&plain, false), find(&got, false), "{} -> {}", probe, src);
            }
        }
    }
}
