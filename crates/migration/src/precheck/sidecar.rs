//! What one injected sidecar requests, as the injector would set it.
//!
//! Istio's injection template gives the `istio-proxy` container the pod's
//! `sidecar.istio.io/proxyCPU` / `proxyMemory` annotations when set, else
//! `values.global.proxy.resources.requests` of the injector's configuration: the `values` key
//! (JSON) of the `istio-sidecar-injector` ConfigMap (`istio-sidecar-injector-<revision>` for a
//! revisioned install) that istiod's chart renders. Without that ConfigMap in the input, the
//! chart's defaults apply: 100m CPU and 128Mi memory (istio/istio
//! `manifests/charts/istio-control/istio-discovery/values.yaml`,
//! `global.proxy.resources.requests`), which [`super::PrecheckOptions`] carries and a caller may
//! replace.
//!
//! ConfigMaps are read when the input has them (files, dumps, a load that listed them); no
//! analyzer declares the kind, so a cluster that refuses to list ConfigMaps skips no check.

use std::collections::BTreeMap;

use serde_json::Value;

use super::PrecheckOptions;
use crate::quantity;
use meshmove_model::inventory::{Inventory, kinds};

/// One sidecar's requests, and where they come from (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProxyRequests {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    pub source: String,
}

/// The requests the injector gives a sidecar when the pod sets no annotation.
pub(crate) fn injector_defaults(inventory: &Inventory, options: &PrecheckOptions) -> ProxyRequests {
    let mut found = ProxyRequests {
        cpu_millis: options.proxy_cpu_millis,
        memory_bytes: options.proxy_memory_bytes,
        source: "Istio's default".to_string(),
    };
    // The default revision's injector first, then revisioned ones in load order.
    let mut injectors: Vec<_> = inventory
        .of(&kinds::CONFIG_MAP)
        .filter(|o| o.name == "istio-sidecar-injector" || o.name.starts_with("istio-sidecar-injector-"))
        .collect();
    injectors.sort_by_key(|o| o.name != "istio-sidecar-injector");
    for o in injectors {
        let Some(values) = o.value.pointer("/data/values").and_then(Value::as_str) else { continue };
        let Ok(values) = serde_json::from_str::<Value>(values) else { continue };
        let requests = values.pointer("/global/proxy/resources/requests");
        let cpu = requests.and_then(|r| r.get("cpu")).and_then(quantity_text).and_then(|q| quantity::cpu_millis(&q).ok());
        let memory = requests.and_then(|r| r.get("memory")).and_then(quantity_text).and_then(|q| quantity::bytes(&q).ok());
        if cpu.is_none() && memory.is_none() {
            continue;
        }
        found.cpu_millis = cpu.unwrap_or(found.cpu_millis);
        found.memory_bytes = memory.unwrap_or(found.memory_bytes);
        found.source = format!("the injector's values ({})", o.object_ref());
        break;
    }
    found
}

/// A quantity as JSON writes it: `"100m"`, or a bare number of cores or bytes.
fn quantity_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A pod's own requests for its sidecar, else the injector's.
pub(crate) fn for_pod(annotations: Option<&BTreeMap<String, String>>, defaults: &ProxyRequests) -> (u64, u64) {
    let annotation = |k: &str| annotations.and_then(|m| m.get(k)).map(String::as_str);
    let cpu = annotation("sidecar.istio.io/proxyCPU").and_then(|q| quantity::cpu_millis(q).ok());
    let memory = annotation("sidecar.istio.io/proxyMemory").and_then(|q| quantity::bytes(q).ok());
    (cpu.unwrap_or(defaults.cpu_millis), memory.unwrap_or(defaults.memory_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshmove_model::inventory::{Object, Origin};
    use serde_json::json;

    fn injector(name: &str, values: Value) -> Object {
        Object {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: Some("istio-system".into()),
            name: name.into(),
            value: json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "istio-system"}, "data": {"values": values.to_string()}}),
            origin: Origin::Stdin { line: 1, helm_source: None },
            pod: None,
        }
    }

    #[test]
    fn the_default_revisions_injector_wins_and_istios_defaults_fill_in() {
        let inv = |objects| Inventory::from_files(objects, vec!["t.yaml".into()], "default".into());
        let none = injector_defaults(&inv(vec![]), &PrecheckOptions::default());
        assert_eq!((none.cpu_millis, none.memory_bytes), (100, 128 * 1024 * 1024));
        let found = injector_defaults(
            &inv(vec![
                injector("istio-sidecar-injector-canary", json!({"global": {"proxy": {"resources": {"requests": {"cpu": "1"}}}}})),
                injector("istio-sidecar-injector", json!({"global": {"proxy": {"resources": {"requests": {"cpu": "250m"}}}}})),
            ]),
            &PrecheckOptions::default(),
        );
        assert_eq!((found.cpu_millis, found.memory_bytes), (250, 128 * 1024 * 1024), "memory unset there: Istio's default");
        assert!(found.source.contains("ConfigMap/istio-system/istio-sidecar-injector"), "{}", found.source);
        let annotated = BTreeMap::from([("sidecar.istio.io/proxyCPU".to_string(), "10m".to_string())]);
        assert_eq!(for_pod(Some(&annotated), &found), (10, 128 * 1024 * 1024));
    }
}
