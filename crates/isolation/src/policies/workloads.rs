//! Drafting the candidate policies of a release's workloads (the post-renderer): ingress from
//! the callers the input shows (or the release's one label), exposure, load balancers that
//! target pods, monitoring and the mesh's ports, and egress when asked.

use std::collections::{BTreeMap, BTreeSet};

use meshmove_netpol::view;
use serde_json::{Map, Value, json};

use super::proof::{From, To, Use};
use super::rules::{Port, port_rule, namespaces_selector, pod_selector, target_ports, workload_peer};
use super::run::{Drafts, Run, across_releases};
use super::gateways::Entry;
use meshmove_istio::waypoint::GATEWAY_NAME_LABEL;
use super::waypoints::Gate;
use super::{Draft, Generation, RELEASE_LABEL, Withheld, authz_only, call_uses, clients, mesh_rules, policy_name, port_numbers, short, short_in, with_hbone};

impl Run<'_, '_> {
    /// One ingress candidate (and, with egress isolation, one egress candidate) per workload of
    /// the release, or the reason it is withheld.
    pub(super) fn workload_drafts(&self, acc: &mut Drafts, out: &mut Generation) {
        let f = self.f;
        let (req, opts, ws, inventory) = (f.req, f.req.options, &f.ws, f.inventory);
        let (callers, is_context, selecting, svc_ports) = (&f.callers, &f.is_context, &f.selecting, &f.svc_ports);
        let (exposures, direct, monitoring) = (&f.exposures, &f.direct, &f.monitoring);
        let (all_labelled, alone, sidecar) = (f.all_labelled, f.alone, f.sidecar);
        for (i, w) in ws.iter().enumerate() {
            if self.skipped(i, w) {
                continue;
            }
            let ns = w.namespace();
            // A connection with a workload of another release: the release's policies admit its
            // own workloads only, so isolating this one would cut it. AuthorizationPolicies alone
            // admit every caller by its principal, other namespaces' included.
            let across = (!alone).then_some(()).and_then(|()| callers[i].iter().find(|c| is_context[c.client]).map(|c| (&ws[c.client], "is called by", &c.via)).or_else(|| {
                callers.iter().enumerate().filter(|(t, _)| opts.egress && is_context[*t]).find_map(|(t, calls)| {
                    calls.iter().find(|c| c.client == i).map(|c| (&ws[t], "calls", &c.via))
                })
            }));
            if let Some((other, how, via)) = across {
                out.withheld.push(across_releases(short(w), ns, how, other, via, req.release));
                continue;
            }
            let ambient = self.ambient(ns);
            let me = view::workload_ref(w.object);
            // Egress first: it does not depend on whether the ingress side can be isolated.
            if opts.egress {
                self.egress_draft(w, i, &me, ambient, acc, out);
            }
            // Behind a waypoint, ambient clients arrive from the waypoint's pods.
            let hop = if ambient { f.hops[i].as_ref() } else { None };
            let anyway = if alone { authz_only::anyway(w.name()) } else { format!("networkPolicies.isolateAnyway: [{}]", w.name()) };
            let gate = match self.waypoint_gate(hop, &short(w), ns, w.name(), anyway, out) {
                Gate::Withheld => {
                    acc.uses.extend(call_uses(ws, w, &me, &callers[i]));
                    continue;
                }
                g => g,
            };
            let ports = port_numbers(&svc_ports[i], Some(w));
            let port_json: Vec<Value> = svc_ports[i].iter().map(port_rule).collect();
            let mut rules: Vec<Value> = Vec::new();
            let mut admits: Vec<String> = Vec::new();
            let ports_text = ports.iter().map(|p| format!("TCP {p}")).collect::<Vec<_>>().join(", ");
            acc.uses.extend(call_uses(ws, w, &me, &callers[i]));
            if !port_json.is_empty() {
                let peers: Vec<Value> = if all_labelled {
                    admits.push(format!("the workloads of release {} on {ports_text}", req.release));
                    vec![json!({"podSelector": {"matchLabels": {RELEASE_LABEL: req.release}}})]
                } else {
                    let mut seen = BTreeSet::new();
                    callers[i]
                        .iter()
                        .filter(|c| seen.insert(c.client))
                        .map(|c| {
                            admits.push(format!("{} on {ports_text}", short_in(&ws[c.client], ns)));
                            workload_peer(&ws[c.client], ns)
                        })
                        .collect()
                };
                // Where each route into its Services comes from, with the ports it reaches.
                let mut entries: BTreeMap<&Entry, (BTreeSet<Port>, BTreeSet<&str>)> = BTreeMap::new();
                for s in &selecting[i] {
                    for e in exposures.get(&(s.namespace.clone().unwrap_or_default(), s.name.clone())).into_iter().flatten() {
                        let slot = entries.entry(&e.entry).or_default();
                        slot.0.extend(target_ports(s));
                        slot.1.insert(e.via.as_str());
                    }
                }
                let exposed_ports: BTreeSet<Port> = entries.values().flat_map(|(p, _)| p.iter().cloned()).collect();
                let known = all_labelled || !peers.is_empty() || !exposed_ports.is_empty();
                // A load balancer that targets pod IPs comes from addresses the input does not
                // show; without them, isolating the workload would cut its external traffic.
                let direct_ports: BTreeSet<Port> = selecting[i]
                    .iter()
                    .filter(|s| direct.contains(&(s.namespace.clone().unwrap_or_default(), s.name.clone())))
                    .flat_map(|s| target_ports(s))
                    .collect();
                if !direct_ports.is_empty() && opts.ingress_ip_blocks.is_empty() && !self.isolate_anyway(w.name()) {
                    out.withheld.push(Withheld {
                        subject: short(w),
                        namespace: ns.to_string(),
                        reason: "an Ingress with alb.ingress.kubernetes.io/target-type: ip sends to its pods from the load balancer's addresses, which the input does not show".into(),
                        isolate_with: if alone { authz_only::anyway(w.name()) } else { "networkPolicies.ingressIpBlocks: [<the VPC CIDRs>]".into() },
                        egress: false,
                        refuses: Vec::new(),
                    });
                    continue;
                }
                if let Some((Entry::Unlocated { gateway, namespace }, (_, via))) =
                    entries.iter().find(|(e, _)| matches!(e, Entry::Unlocated { .. })).filter(|_| !self.isolate_anyway(w.name()))
                {
                    let via: Vec<&str> = via.iter().copied().collect();
                    out.withheld.push(Withheld {
                        subject: short(w),
                        namespace: ns.to_string(),
                        reason: format!(
                            "{} attaches it to {gateway}, which the input does not hold, so where its traffic comes from is unknown (namespace {namespace} is no configured ingress namespace)",
                            via.join(", ")
                        ),
                        isolate_with: if alone {
                            authz_only::anyway(w.name())
                        } else {
                            format!("networkPolicies.ingressNamespaces: [{}] (the configured ones and the gateway's), or networkPolicies.isolateAnyway: [{}]", opts.ingress_namespaces.iter().map(String::as_str).chain([namespace.as_str()]).collect::<Vec<_>>().join(", "), w.name())
                        },
                        egress: false,
                        refuses: Vec::new(),
                    });
                    continue;
                }
                if !known && !self.isolate_anyway(w.name()) {
                    let names: Vec<&str> = selecting[i].iter().map(|s| s.name.as_str()).collect();
                    out.withheld.push(Withheld {
                        subject: short(w),
                        namespace: ns.to_string(),
                        reason: format!(
                            "its callers are unknown: no workload in the input names its Service {} and nothing exposes it",
                            names.join(", ")
                        ),
                        isolate_with: if alone { authz_only::anyway(w.name()) } else { format!("networkPolicies.isolateAnyway: [{}]", w.name()) },
                        egress: false,
                        refuses: Vec::new(),
                    });
                    continue;
                }
                if !peers.is_empty() {
                    rules.push(json!({"from": peers, "ports": with_hbone(port_json.clone(), ambient)}));
                }
                if let Gate::Admit(hop, j) = gate {
                    self.waypoint_rule(hop, j, &me, ns, port_json.clone(), &ports, &mut rules, &mut admits, &mut acc.uses);
                }
                if !direct_ports.is_empty() && !opts.ingress_ip_blocks.is_empty() {
                    admits.push(format!("load balancer addresses {} on the exposed ports", opts.ingress_ip_blocks.join(", ")));
                    let blocks: Vec<Value> = opts.ingress_ip_blocks.iter().map(|c| json!({"ipBlock": {"cidr": c}})).collect();
                    rules.push(json!({"from": blocks, "ports": with_hbone(direct_ports.iter().map(port_rule).collect(), ambient)}));
                }
                // The gateways the input shows: their pods, else their namespaces.
                let mut controller_ports: BTreeSet<Port> = BTreeSet::new();
                for (entry, (entry_ports, via)) in &entries {
                    let via: Vec<&str> = via.iter().copied().collect();
                    let numbers = port_numbers(entry_ports, Some(w));
                    let shown = numbers.iter().map(|p| format!("TCP {p}")).collect::<Vec<_>>().join(", ");
                    let (peer, from, from_name) = match entry {
                        Entry::Controllers | Entry::Unlocated { .. } => {
                            controller_ports.extend(entry_ports.iter().cloned());
                            continue;
                        }
                        Entry::Pods(j) => {
                            let g = &ws[*j];
                            (workload_peer(g, ns), From::Workload(view::workload_ref(g.object)), format!("gateway {}", short(g)))
                        }
                        Entry::Labelled { namespace: gns, name } => {
                            let labels = BTreeMap::from([(GATEWAY_NAME_LABEL.to_string(), name.clone())]);
                            let mut peer = Map::new();
                            if gns != ns {
                                peer.insert("namespaceSelector".into(), namespaces_selector(std::slice::from_ref(gns)));
                            }
                            peer.insert("podSelector".into(), json!({"matchLabels": labels}));
                            // A namespace the input leaves to install time is the workload's.
                            let namespace = if gns == ns { me.namespace.clone() } else { gns.clone() };
                            (Value::Object(peer), From::Namespace { namespace, labels }, format!("the pods of Gateway {name}"))
                        }
                        Entry::Namespace(gns) => {
                            controller_ports.extend(entry_ports.iter().cloned());
                            let labels = BTreeMap::new();
                            if gns == ns {
                                (json!({"podSelector": {}}), From::Namespace { namespace: me.namespace.clone(), labels }, "its own namespace (the gateway's)".to_string())
                            } else {
                                (json!({"namespaceSelector": namespaces_selector(std::slice::from_ref(gns))}), From::Namespace { namespace: gns.clone(), labels }, format!("gateway namespace {gns}"))
                            }
                        }
                    };
                    admits.push(format!("{from_name} on {shown} ({})", via.join(", ")));
                    rules.push(json!({"from": [peer], "ports": with_hbone(entry_ports.iter().map(port_rule).collect(), ambient)}));
                    acc.uses.push(Use { from, from_name, to: To::Workload(me.clone()), ports: numbers, why: format!("{} routes to it", via.join(", ")), violation: None });
                }
                let exposed_ports = controller_ports;
                if !exposed_ports.is_empty() && !opts.ingress_namespaces.is_empty() {
                    let exposed_numbers = port_numbers(&exposed_ports, Some(w));
                    admits.push(format!("ingress namespaces {} on the exposed ports", opts.ingress_namespaces.join(", ")));
                    rules.push(json!({
                        "from": [{"namespaceSelector": namespaces_selector(&opts.ingress_namespaces)}],
                        "ports": with_hbone(exposed_ports.iter().map(port_rule).collect(), ambient),
                    }));
                    for ingress_ns in &opts.ingress_namespaces {
                        acc.uses.push(Use {
                            from: From::Namespace { namespace: ingress_ns.clone(), labels: BTreeMap::new() },
                            from_name: format!("namespace {ingress_ns}"),
                            to: To::Workload(me.clone()),
                            ports: exposed_numbers.clone(),
                            why: "the workload is exposed (Ingress, VirtualService or HTTPRoute)".into(),
                            violation: None,
                        });
                    }
                }
            }
            let mut scraped: BTreeSet<u16> = clients::monitored_ports(inventory, w, &selecting[i]);
            scraped.extend(clients::scrape_port(w));
            if !scraped.is_empty() && !monitoring.is_empty() {
                let shown: Vec<String> = scraped.iter().map(|p| format!("TCP {p}")).collect();
                admits.push(format!(
                    "monitoring namespaces {} on {} (prometheus.io/port, ServiceMonitor, PodMonitor)",
                    monitoring.join(", "),
                    shown.join(", ")
                ));
                rules.push(json!({
                    "from": [{"namespaceSelector": namespaces_selector(monitoring)}],
                    "ports": with_hbone(scraped.iter().map(|p| json!({"protocol": "TCP", "port": p})).collect(), ambient),
                }));
                for m in monitoring {
                    acc.uses.push(Use {
                        from: From::Namespace { namespace: m.clone(), labels: BTreeMap::new() },
                        from_name: format!("monitoring in namespace {m}"),
                        to: To::Workload(me.clone()),
                        ports: scraped.iter().copied().collect(),
                        why: "Prometheus scrapes it (prometheus.io/port, ServiceMonitor or PodMonitor)".into(),
                        violation: None,
                    });
                }
            }
            mesh_rules(&mut rules, &mut admits, ambient, sidecar, monitoring);
            let mut spec = Map::new();
            spec.insert("podSelector".into(), pod_selector(w));
            spec.insert("ingress".into(), Value::Array(rules));
            acc.drafts.push(Draft {
                subject: w.object.object_ref(),
                ambient,
                engine_ref: me,
                protects: short(w),
                namespace: ns.to_string(),
                name: policy_name(req.release, w.name()),
                egress: false,
                spec,
                admits,
            });
        }
    }
}
