//! Finding SPIRE's pieces in an inventory: the server, agent and CSI driver workloads (the
//! hardened charts' labels, Istio's sample, or the image), the server's configuration (the
//! ConfigMap it mounts), and the trust bundle wherever server.conf says it is published.

use super::subjects::containers;
use super::*;

/// String values of a ConfigMap's `data`.
pub(super) fn data(cm: &Object) -> impl Iterator<Item = (&str, &str)> {
    cm.value
        .get("data")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
}

pub(super) fn data_key<'o>(cm: &'o Object, key: &str) -> Option<&'o str> {
    cm.value.get("data")?.get(key)?.as_str()
}

pub(super) struct Component {
    /// Container and image name, and the `app` label of Istio's sample.
    pub(super) name: &'static str,
    /// `app.kubernetes.io/name` in the hardened charts.
    pub(super) chart_name: &'static str,
}

/// The last path segment of an image reference, without tag or digest.
pub(crate) fn image_name(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or(image);
    let last = no_digest.rsplit('/').next().unwrap_or(no_digest);
    last.split(':').next().unwrap_or(last)
}

pub(super) fn find_components<'a>(
    inventory: &'a Inventory,
    kinds: &[&kinds::Kind],
    selector: Option<&crate::selector::LabelQuery>,
    c: &Component,
) -> Vec<&'a Object> {
    kinds
        .iter()
        .flat_map(|k| inventory.of(k))
        .filter(|o| {
            let Some(w) = Workload::of(o) else { return false };
            let mut labels: Labels = o.labels().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            labels.extend(w.pod_labels());
            if let Some(sel) = selector {
                return sel.matches(&labels);
            }
            let images: Vec<(&str, &str)> = containers(w.template)
                .map(|ct| {
                    (
                        ct.get("name").and_then(Value::as_str).unwrap_or(""),
                        image_name(ct.get("image").and_then(Value::as_str).unwrap_or("")),
                    )
                })
                .collect();
            let has_container = images.iter().any(|(n, i)| *n == c.name || *i == c.name);
            let spiffe_image = images.iter().any(|(_, i)| i.contains("spire") || i.contains("spiffe"));
            has_container
                || labels.get("app").map(String::as_str) == Some(c.name)
                || (labels.get("app.kubernetes.io/name").map(String::as_str) == Some(c.chart_name) && spiffe_image)
        })
        .collect()
}

pub(super) fn find_server_config<'a>(
    inventory: &'a Inventory,
    servers: &[&'a Object],
    namespace: Option<&str>,
) -> ServerConfigState<'a> {
    let candidates: Vec<&Object> =
        inventory.of(&kinds::CONFIG_MAP).filter(|cm| data_key(cm, "server.conf").is_some()).collect();
    let mounted = |cm: &&Object| {
        servers.iter().any(|s| {
            s.namespace == cm.namespace
                && Workload::of(s).is_some_and(|w| {
                    w.template
                        .pointer("/spec/volumes")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .any(|v| v.pointer("/configMap/name").and_then(Value::as_str) == Some(cm.name.as_str()))
                })
        })
    };
    let in_server_ns = |cm: &&Object| servers.iter().any(|s| s.namespace == cm.namespace);
    let in_option_ns = |cm: &&Object| namespace.is_some() && cm.namespace.as_deref() == namespace;
    let chosen = candidates
        .iter()
        .find(|cm| mounted(cm))
        .or_else(|| candidates.iter().find(|cm| in_server_ns(cm)))
        .or_else(|| candidates.iter().find(|cm| in_option_ns(cm)))
        .or_else(|| if servers.is_empty() && namespace.is_none() { candidates.first() } else { None });
    match chosen {
        Some(cm) => ServerConfigState::Found {
            object: cm,
            parsed: config::parse_server_conf(data_key(cm, "server.conf").unwrap_or("")),
        },
        None => ServerConfigState::NotFound,
    }
}

pub(super) fn find_bundle<'a>(
    inventory: &'a Inventory,
    options: &'a SpireOptions,
    servers: &[&'a Object],
    server_config: &ServerConfigState<'a>,
) -> BundleState<'a> {
    if let Some(b) = &options.trust_bundle {
        return BundleState::Given(b);
    }
    let targets = match server_config {
        ServerConfigState::Found { parsed: Ok(c), .. } => c.bundle_targets.clone(),
        _ => Vec::new(),
    };
    // One lookup per ConfigMap: (namespace, name) → the targets writing into it.
    let mut places: Vec<(Option<String>, String, Vec<BundleTarget>)> = Vec::new();
    for t in targets {
        match places.iter_mut().find(|(ns, name, _)| ns.as_deref() == Some(&t.namespace) && *name == t.config_map) {
            Some((_, _, ts)) => ts.push(t),
            None => places.push((Some(t.namespace.clone()), t.config_map.clone(), vec![t])),
        }
    }
    if places.is_empty() {
        // The name both the k8sbundle notifier and the official chart use.
        places.push((None, "spire-bundle".to_string(), Vec::new()));
    }
    let sources = places
        .into_iter()
        .map(|(ns, name, targets)| {
            let mut candidates: Vec<&Object> = inventory
                .of(&kinds::CONFIG_MAP)
                .filter(|cm| cm.name == name && ns.as_ref().is_none_or(|ns| cm.namespace.as_ref() == Some(ns)))
                .collect();
            // Prefer the server's namespace when the configuration did not say.
            candidates.sort_by_key(|cm| !servers.iter().any(|s| s.namespace == cm.namespace));
            let place = ns.map_or_else(|| format!("ConfigMap {name}"), |ns| format!("ConfigMap {ns}/{name}"));
            let Some(cm) = candidates.first().copied() else {
                return BundleSource { targets, place, object: None, read: Vec::new(), empty: Vec::new() };
            };
            let filled = |key: &str| data_key(cm, key).filter(|t| !t.trim().is_empty());
            let mut keys: Vec<String> = targets.iter().map(|t| t.key.clone()).collect();
            keys.extend(USUAL_BUNDLE_KEYS.iter().map(|k| k.to_string()));
            keys.sort();
            keys.dedup();
            let read = keys
                .iter()
                .filter_map(|key| {
                    let text = filled(key)?;
                    let parsed = TrustBundle::parse(key.clone(), text.as_bytes()).map(|mut b| {
                        b.source = format!("{} key {key}", cm.object_ref());
                        b
                    });
                    Some((key.clone(), parsed))
                })
                .collect();
            let empty = targets.iter().filter(|t| filled(&t.key).is_none()).map(|t| (t.key.clone(), t.clone())).collect();
            BundleSource { targets, place, object: Some(cm), read, empty }
        })
        .collect();
    BundleState::Sources(sources)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names() {
        assert_eq!(image_name("ghcr.io/spiffe/spire-server:1.9.6"), "spire-server");
        assert_eq!(image_name("spire-agent@sha256:abc"), "spire-agent");
        assert_eq!(image_name("localhost:5000/spire-server"), "spire-server");
    }
}
