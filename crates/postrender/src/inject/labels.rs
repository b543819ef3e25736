//! Mesh labels on pod templates.

use meshmove_model::names::is_valid_label_value;
use serde_json::Value;

use super::{Injection, JobPolicy, LabelOptions, MeshMode, object_entry};

pub const INJECT_LABEL: &str = "sidecar.istio.io/inject";
pub const REV_LABEL: &str = "istio.io/rev";
pub const DATAPLANE_LABEL: &str = "istio.io/dataplane-mode";
pub use meshmove_istio::injection::{SPIRE_TEMPLATES, TEMPLATES_ANNOTATION};
pub const NATIVE_SIDECAR_ANNOTATION: &str = "sidecar.istio.io/nativeSidecar";

/// Add mesh labels (and `app`/`version`) to the pod template of a workload object. `kind` and
/// `name` identify the workload; `template_ptr` is the JSON pointer of its pod template.
/// Existing labels and annotations are never overwritten.
pub fn inject_labels(object: &mut Value, kind: &str, name: &str, template_ptr: &str, opts: &LabelOptions) -> Vec<Injection> {
    let workload = format!("{kind}/{name}");
    let batch = matches!(kind, "Job" | "CronJob");
    let Some(template) = (if template_ptr.is_empty() { Some(&mut *object) } else { super::at_mut(object, template_ptr) }) else {
        return Vec::new();
    };
    let Some(template) = template.as_object_mut() else { return Vec::new() };
    let image_tag = first_image_tag(template.get("spec"));

    let mut wanted_labels: Vec<(&str, String)> = Vec::new();
    let mut wanted_annotations: Vec<(&str, String)> = Vec::new();
    match opts.mode {
        MeshMode::Sidecar if batch && opts.jobs == JobPolicy::Exclude => wanted_labels.push((INJECT_LABEL, "false".into())),
        MeshMode::Sidecar => {
            wanted_labels.push((INJECT_LABEL, "true".into()));
            if let Some(rev) = &opts.revision {
                wanted_labels.push((REV_LABEL, rev.clone()));
            }
            if batch {
                wanted_annotations.push((NATIVE_SIDECAR_ANNOTATION, "true".into()));
            }
            if opts.spire {
                wanted_annotations.push((TEMPLATES_ANNOTATION, SPIRE_TEMPLATES.into()));
            }
        }
        MeshMode::Ambient => wanted_labels.push((DATAPLANE_LABEL, "ambient".into())),
        MeshMode::None => {}
    }
    // Read first, written only when something is added: a document the run leaves alone must
    // compare equal to its input (the caller decides "changed" by the injections made).
    let labels = template.get("metadata").and_then(|m| m.get("labels")).and_then(Value::as_object);
    let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str).map(str::to_string);
    let mut done = Vec::new();
    // `app` and `version` are what Istio's telemetry and routing read
    // (https://istio.io/latest/docs/ops/deployment/application-requirements/#pod-labels): mesh
    // labels, so not added without a mesh. Adding a label to a pod template restarts the
    // workload on the next upgrade, which is never worth it for nothing.
    if opts.mode != MeshMode::None {
        let mut identity: Vec<(&str, String)> = Vec::new();
        if get("app").is_none() {
            identity.push(("app", get("app.kubernetes.io/name").unwrap_or_else(|| name.to_string())));
        }
        if get("version").is_none()
            && let Some(v) = get("app.kubernetes.io/version").or(image_tag)
        {
            identity.push(("version", v));
        }
        for (k, v) in identity {
            // A value the API server would reject (longer than 63 characters, an image tag
            // starting with `_`) would fail the whole release: such a label is left out and said.
            if is_valid_label_value(&v) {
                wanted_labels.push((k, v));
            } else {
                done.push(Injection {
                    workload: workload.clone(),
                    container: None,
                    change: format!(
                        "label {k} not added: `{v}` is not a valid label value (at most 63 characters of A-Z a-z 0-9 - _ ., alphanumeric at both ends)"
                    ),
                    skipped: true,
                });
            }
        }
    }

    if wanted_labels.is_empty() && wanted_annotations.is_empty() {
        return done;
    }
    let Some(meta) = object_entry(template, "metadata") else { return done };
    for (field, wanted) in [("labels", wanted_labels), ("annotations", wanted_annotations)] {
        if wanted.is_empty() {
            continue;
        }
        let Some(map) = object_entry(meta, field) else { continue };
        for (k, v) in wanted {
            if map.contains_key(k) {
                continue;
            }
            done.push(Injection {
                workload: workload.clone(),
                container: None,
                change: format!("{} {k}={v}", if field == "labels" { "label" } else { "annotation" }),
                skipped: false,
            });
            map.insert(k.to_string(), Value::String(v));
        }
    }
    done
}

/// Tag of the first container image, unless absent, a digest, or `latest` (which says nothing
/// about the version).
fn first_image_tag(spec: Option<&Value>) -> Option<String> {
    let image = super::at(spec?, "/containers/0/image")?.as_str()?;
    let image = image.split('@').next()?;
    let last = image.rsplit('/').next()?;
    let (_, tag) = last.split_once(':')?;
    (!tag.is_empty() && tag != "latest").then(|| tag.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api"},
            "spec": {"selector": {"matchLabels": {"app.kubernetes.io/name": "api"}},
                "template": {"metadata": {"labels": {"app.kubernetes.io/name": "api"}},
                    "spec": {"containers": [{"name": "api", "image": "reg/api:1.2.3"}]}}}})
    }

    #[test]
    fn sidecar_mode_adds_inject_app_and_version_but_not_selectors() {
        let mut d = deploy();
        let opts = LabelOptions { revision: Some("1-24".into()), ..Default::default() };
        let done = inject_labels(&mut d, "Deployment", "api", "/spec/template", &opts);
        assert_eq!(done.len(), 4, "{done:?}");
        assert_eq!(
            d.pointer("/spec/template/metadata/labels").unwrap(),
            &json!({"app.kubernetes.io/name": "api", "sidecar.istio.io/inject": "true", "istio.io/rev": "1-24", "app": "api", "version": "1.2.3"})
        );
        assert_eq!(d.pointer("/spec/selector"), Some(&json!({"matchLabels": {"app.kubernetes.io/name": "api"}})));
        // Idempotent: a second run changes nothing.
        assert!(inject_labels(&mut d, "Deployment", "api", "/spec/template", &opts).is_empty());
    }

    #[test]
    fn existing_values_win() {
        let mut d = deploy();
        d["spec"]["template"]["metadata"]["labels"]["sidecar.istio.io/inject"] = json!("false");
        d["spec"]["template"]["metadata"]["labels"]["app"] = json!("legacy");
        inject_labels(&mut d, "Deployment", "api", "/spec/template", &LabelOptions::default());
        assert_eq!(d.pointer("/spec/template/metadata/labels/sidecar.istio.io~1inject").unwrap(), "false");
        assert_eq!(d.pointer("/spec/template/metadata/labels/app").unwrap(), "legacy");
    }

    #[test]
    fn jobs_are_excluded_by_default_and_native_on_request() {
        let mut j = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}}});
        inject_labels(&mut j, "CronJob", "nightly", "/spec/jobTemplate/spec/template", &LabelOptions::default());
        assert_eq!(j.pointer("/spec/jobTemplate/spec/template/metadata/labels/sidecar.istio.io~1inject").unwrap(), "false");
        let mut j = json!({"spec": {"template": {"spec": {"containers": []}}}});
        let opts = LabelOptions { jobs: JobPolicy::Native, ..Default::default() };
        inject_labels(&mut j, "Job", "migrate", "/spec/template", &opts);
        assert_eq!(j.pointer("/spec/template/metadata/labels/sidecar.istio.io~1inject").unwrap(), "true");
        assert_eq!(j.pointer("/spec/template/metadata/annotations/sidecar.istio.io~1nativeSidecar").unwrap(), "true");
    }

    #[test]
    fn ambient_and_spire() {
        let mut d = deploy();
        inject_labels(&mut d, "Deployment", "api", "/spec/template", &LabelOptions { mode: MeshMode::Ambient, spire: true, ..Default::default() });
        assert_eq!(d.pointer("/spec/template/metadata/labels/istio.io~1dataplane-mode").unwrap(), "ambient");
        assert!(d.pointer("/spec/template/metadata/annotations").is_none(), "spire template is a sidecar-mode setting");
        let mut d = deploy();
        inject_labels(&mut d, "Deployment", "api", "/spec/template", &LabelOptions { spire: true, ..Default::default() });
        assert_eq!(d.pointer("/spec/template/metadata/annotations/inject.istio.io~1templates").unwrap(), "sidecar,spire");
    }

    #[test]
    fn invalid_identity_values_are_skipped_and_reported() {
        let mut d = deploy();
        d["spec"]["template"]["metadata"]["labels"] = json!({});
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("reg/api:_build-7");
        let long = "a".repeat(70);
        let done = inject_labels(&mut d, "Deployment", &long, "/spec/template", &LabelOptions::default());
        let labels = d.pointer("/spec/template/metadata/labels").unwrap().as_object().unwrap();
        assert!(!labels.contains_key("app") && !labels.contains_key("version"), "{labels:?}");
        assert!(labels.values().all(|v| is_valid_label_value(v.as_str().unwrap())));
        assert_eq!(done.iter().filter(|i| i.skipped).count(), 2, "{done:?}");
    }

    #[test]
    fn no_mesh_no_mesh_labels() {
        let mut d = deploy();
        let before = d.clone();
        let done = inject_labels(&mut d, "Deployment", "api", "/spec/template", &LabelOptions { mode: MeshMode::None, ..Default::default() });
        assert!(done.is_empty(), "{done:?}");
        assert_eq!(d, before);
    }

    #[test]
    fn bare_pod_template_is_the_object() {
        let mut p = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x:latest"}]}});
        inject_labels(&mut p, "Pod", "p", "", &LabelOptions::default());
        assert_eq!(p.pointer("/metadata/labels"), Some(&json!({"sidecar.istio.io/inject": "true", "app": "p"})));
    }
}
