//! `apply`: the generated policies as plans of the suite's one write path
//! ([`meshmove_kube::plan`]), one plan per namespace.
//!
//! The plan engine sends each object with server-side apply as the field manager
//! `kubectl-dbiso` ([`Manager::Dbiso`]) and never forces: when another manager (a Helm release,
//! a GitOps controller, `kubectl apply`) owns a field it would change, the API server answers 409
//! and the step stops naming that manager, rather than taking the field over behind the owner's
//! back. Before the first write it records in the namespace's journal that the policy was absent
//! (or its prior content), so `kubectl dbiso rollback` (or a whole-namespace
//! `kubectl mesh-migrate rollback`) removes exactly what `apply` added, and refuses when someone
//! edited a policy since. `--dry-run=client` previews a diff per object, `server` sends
//! `dryRun=All`.
//!
//! In ambient namespaces a database's NetworkPolicy comes with the L4 AuthorizationPolicy that
//! ztunnel enforces ([`crate::policies::authz`]); both are in the same plan, so the pair is
//! written, previewed and rolled back together.

use std::collections::BTreeMap;

use meshmove_kube::plan::{Change, Manager, Plan};

use crate::generate::Generated;

/// The step name the journal records for `kubectl dbiso apply`.
pub const STEP: &str = "dbiso-apply";

/// One plan per namespace (in namespace order), each applying the namespace's policies and
/// their AuthorizationPolicy companions in the order generated.
pub fn plans(policies: &[Generated]) -> Vec<Plan> {
    let mut by_namespace: BTreeMap<&str, Plan> = BTreeMap::new();
    for p in policies {
        let plan = by_namespace.entry(&p.namespace).or_insert_with(|| Plan::new(STEP, &p.namespace).by(Manager::Dbiso));
        plan.push(Change::Apply { object: p.object.clone() });
        if let Some(authorization) = &p.authorization {
            plan.push(Change::Apply { object: authorization.clone() });
        }
    }
    by_namespace.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{self, GenerateOptions};
    use meshmove_kube::plan::Target;
    use meshmove_model::inventory::Inventory;

    /// Every generated object is in exactly one plan, its own namespace's, written by dbiso; an
    /// ambient database's AuthorizationPolicy follows its NetworkPolicy.
    #[test]
    fn every_generated_object_lands_once_in_its_namespace_plan() {
        let yaml = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio.io/dataplane-mode: ambient}}
---
apiVersion: v1
kind: Namespace
metadata: {name: billing}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: shop}
spec:
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: pg, image: postgres:16, ports: [{containerPort: 5432}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec: {selector: {app: db}, ports: [{port: 5432}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec: {containers: [{name: api, image: shop/api:1, env: [{name: DATABASE_URL, value: "postgres://db:5432/shop"}]}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: ledger, namespace: billing}
spec:
  selector: {matchLabels: {app: ledger}}
  template:
    metadata: {labels: {app: ledger}}
    spec: {containers: [{name: pg, image: postgres:16, ports: [{containerPort: 5432}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: ledger, namespace: billing}
spec: {selector: {app: ledger}, ports: [{port: 5432}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: invoices, namespace: billing}
spec:
  selector: {matchLabels: {app: invoices}}
  template:
    metadata: {labels: {app: invoices}}
    spec: {containers: [{name: app, image: billing/invoices:1, env: [{name: DB_HOST, value: ledger}]}]}
"#;
        let objects = meshmove_model::inventory::load_str(yaml, None, "shop").unwrap();
        let inventory = Inventory::from_files(objects, vec!["test".into()], "shop".into());
        let generation = generate::generate(&inventory, &GenerateOptions::default());
        assert!(!generation.policies.is_empty(), "nothing generated: {:?}", generation.withheld);
        let plans = plans(&generation.policies);
        let namespaces: Vec<_> = plans.iter().map(|p| p.namespace.as_str()).collect();
        let mut expected: Vec<_> = generation.policies.iter().map(|p| p.namespace.as_str()).collect();
        expected.sort();
        expected.dedup();
        assert_eq!(namespaces, expected);
        let mut sent = Vec::new();
        for plan in &plans {
            assert_eq!((plan.step.as_str(), plan.manager), (STEP, Manager::Dbiso));
            for change in &plan.changes {
                let Change::Apply { object } = change else { panic!("only applies: {change:?}") };
                let target = Target::of(object);
                assert_eq!(target.namespace.as_deref(), Some(plan.namespace.as_str()), "{target} in the plan of {}", plan.namespace);
                sent.push(object.clone());
            }
        }
        let generated: Vec<_> =
            generation.policies.iter().flat_map(|p| std::iter::once(p.object.clone()).chain(p.authorization.clone())).collect();
        assert_eq!(sent.len(), generated.len());
        let shop = plans.iter().find(|p| p.namespace == "shop").expect("a plan for the ambient namespace");
        let kinds: Vec<_> = shop.changes.iter().filter_map(|c| c.target()).map(|t| t.kind).collect();
        assert_eq!(kinds.first().map(String::as_str), Some("NetworkPolicy"), "{kinds:?}");
        assert!(kinds.iter().any(|k| k == "AuthorizationPolicy"), "ambient database without its AuthorizationPolicy: {kinds:?}");
        for g in &generated {
            assert_eq!(sent.iter().filter(|s| *s == g).count(), 1, "{} sent once", Target::of(g));
        }
    }
}
