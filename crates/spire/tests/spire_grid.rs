//! The `spire-check` fixture grid, and the catalog's meta-tests.
//!
//! Each directory under `tests/fixtures/` is one installation (`input.yaml`) and the checks it
//! must fail (`expected.txt`). A line of `expected.txt` is `CODE RESULT [Kind/namespace/name]`: one
//! line per object a non-ok check names, or `CODE RESULT` for a non-ok check about no object
//! (skipped checks included, so a check that silently stops running shows up). Blank lines and
//! `#` comments are ignored; every check not listed must be ok.
//!
//! Trust bundles are never committed (they would expire): `input.yaml` holds placeholders that
//! are replaced with certificates generated here, valid relative to the fixed clock [`NOW`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use meshmove_model::findings::{Detail, FailOn, Outcome, Report, Suppression};
use meshmove_model::inventory::{self, Inventory, Kind, Object, Origin, SourceInfo, Unavailable, kinds};
use meshmove_spire::{self as spire, IdentityStatus, SpireOptions, TrustBundle};

/// 2031-06-15T12:00:00Z: the injected clock of every fixture.
const NOW: i64 = 1_939_291_200;
const HOUR: i64 = 3600;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW as u64)
}

/// A self-signed SPIRE-like CA certificate (PEM) valid from `now + from` to `now + to` seconds.
fn ca_pem(from: i64, to: i64) -> String {
    ca(from, to).0
}

fn ca(from: i64, to: i64) -> (String, Vec<u8>) {
    cert(true, from, to)
}

/// A self-signed certificate, a CA or a leaf, as PEM and DER.
fn cert(is_ca: bool, from: i64, to: i64) -> (String, Vec<u8>) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca =
        if is_ca { rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained) } else { rcgen::IsCa::ExplicitNoCa };
    params.distinguished_name.push(rcgen::DnType::CountryName, "US");
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "SPIFFE");
    let san = if is_ca { "spiffe://example.org" } else { "spiffe://example.org/ns/shop/sa/cart" };
    params.subject_alt_names = vec![rcgen::SanType::URI(rcgen::string::Ia5String::try_from(san).unwrap())];
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + Duration::from_secs((NOW + from) as u64);
    params.not_after = epoch + Duration::from_secs((NOW + to) as u64);
    if is_ca {
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    }
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), cert.der().to_vec())
}

/// A SPIFFE bundle document (what the official chart's BundlePublisher writes to
/// `bundle.spiffe`) holding these certificates as x509-svid keys and one jwt-svid key, on one line.
fn spiffe_bundle(certs: &[Vec<u8>]) -> String {
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    let mut keys: Vec<serde_json::Value> = certs
        .iter()
        .map(|der| serde_json::json!({"use": "x509-svid", "kty": "EC", "crv": "P-256", "x5c": [b64(der)]}))
        .collect();
    keys.push(serde_json::json!({"use": "jwt-svid", "kty": "EC", "kid": "jwt-key-1", "crv": "P-256",
        "x": "Y2VydGFpbmx5LW5vdC1hLXJlYWwta2V5LXgtY29vcmQ", "y": "Y2VydGFpbmx5LW5vdC1hLXJlYWwta2V5LXktY29vcmQ"}));
    serde_json::json!({"keys": keys, "spiffe_refresh_hint": 300, "spiffe_sequence": 4}).to_string()
}

/// Replace each `{{BUNDLE_*}}` (PEM) and `{{SPIFFE_BUNDLE_*}}` (SPIFFE bundle JSON) placeholder,
/// indented like the placeholder.
fn substitute_bundles(text: &str) -> String {
    let bundles = [
        // A 24h CA (SPIRE's default ca_ttl) issued an hour ago.
        ("{{BUNDLE_VALID}}", ca_pem(-HOUR, 23 * HOUR)),
        // Expired a day ago.
        ("{{BUNDLE_EXPIRED}}", ca_pem(-48 * HOUR, -24 * HOUR)),
        // A 24h CA with 2h left: inside the 4h activation window, and no successor.
        ("{{BUNDLE_NEAR_EXPIRY}}", ca_pem(-22 * HOUR, 2 * HOUR)),
        ("{{SPIFFE_BUNDLE_VALID}}", spiffe_bundle(&[ca(-HOUR, 23 * HOUR).1])),
        // An expired CA, a leaf certificate, and a CA inside its activation window with no successor.
        (
            "{{SPIFFE_BUNDLE_FAULTS}}",
            spiffe_bundle(&[ca(-48 * HOUR, -24 * HOUR).1, cert(false, -HOUR, HOUR).1, ca(-22 * HOUR, 2 * HOUR).1]),
        ),
    ];
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        match bundles.iter().find(|(p, _)| line.contains(p)) {
            Some((placeholder, pem)) => {
                let indent: String = line.chars().take_while(|c| *c == ' ').collect();
                assert_eq!(line.trim(), *placeholder, "a bundle placeholder must stand alone on its line");
                for pem_line in pem.lines() {
                    out.push_str(&format!("{indent}{pem_line}\n"));
                }
            }
            None => out.push_str(line),
        }
    }
    out
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn cases() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Load a case through the inventory loader. While the loader cannot read YAML yet (the
/// `yaml_ready` switch in `inventory::files`), each document is converted to JSON with
/// `meshmove_model::yaml` and loaded as JSON.
fn load(case: &str) -> Inventory {
    let path = fixtures().join(case).join("input.yaml");
    let text = substitute_bundles(&std::fs::read_to_string(&path).unwrap());
    let mut objects: Vec<Object> = inventory::load_str(&text, Some(&path), "default").unwrap();
    if objects.is_empty() {
        let json_path = path.with_extension("json");
        for doc in meshmove_model::yaml::split_stream(&text) {
            if let Some(value) = meshmove_model::yaml::parse_document(&doc).unwrap() {
                objects.extend(inventory::load_str(&value.to_string(), Some(&json_path), "default").unwrap());
            }
        }
    }
    assert!(!objects.is_empty(), "{case}: no objects loaded");
    Inventory::from_files(objects, vec![path.display().to_string()], "default".into())
}

fn options() -> SpireOptions {
    SpireOptions { now: now(), ..SpireOptions::default() }
}

/// A check as the tests look at it: its category, result and what it says (its problems when it
/// failed, what it found when it passed, the reason when it was skipped).
#[derive(Debug)]
struct Seen {
    category: &'static str,
    code: &'static str,
    description: &'static str,
    result: Outcome,
    details: Vec<Detail>,
}

fn checks(report: &Report) -> Vec<Seen> {
    report
        .checks
        .iter()
        .map(|c| Seen {
            category: c.category,
            code: c.code,
            description: c.description,
            result: c.result,
            details: match c.result {
                Outcome::Ok => c.info.iter().map(Detail::new).collect(),
                Outcome::Skipped => vec![Detail::new(report.skip_reason(c.code).unwrap())],
                _ => report
                    .findings_of(c.code)
                    .map(|f| Detail { object: f.object.clone(), origin: f.origin.clone(), message: f.message.clone() })
                    .collect(),
            },
        })
        .collect()
}

fn seen(report: &Report, code: &str) -> Seen {
    checks(report).into_iter().find(|c| c.code == code).unwrap_or_else(|| panic!("{code} did not run"))
}

fn category(report: &Report, name: &str) -> Vec<Seen> {
    checks(report).into_iter().filter(|c| c.category == name).collect()
}

/// No check failed with an error (warnings alone do not fail the run, as with `linkerd check`).
fn success(report: &Report) -> bool {
    !report.fails(FailOn::Error)
}

/// The report as `expected.txt` lines.
fn lines(report: &Report) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for c in checks(report).iter().filter(|c| c.result != Outcome::Ok) {
        if c.result == Outcome::Skipped || c.details.is_empty() {
            out.insert(format!("{} {}", c.code, c.result));
            continue;
        }
        for d in &c.details {
            out.insert(match &d.object {
                Some(o) => format!("{} {} {o}", c.code, c.result),
                None => format!("{} {}", c.code, c.result),
            });
        }
    }
    out
}

fn expected(case: &str) -> BTreeSet<String> {
    std::fs::read_to_string(fixtures().join(case).join("expected.txt"))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

fn explain(report: &Report) -> String {
    let mut s = String::new();
    for c in checks(report).iter().filter(|c| c.result != Outcome::Ok) {
        s.push_str(&format!("  [{}] {} {} {}\n", c.category, c.code, c.result, c.description));
        for d in &c.details {
            s.push_str(&format!("      {d}\n"));
        }
    }
    s
}

#[test]
fn fixture_grid() {
    let cases = cases();
    for required in [
        "healthy",
        "agent-missing-on-node",
        "trust-domain-mismatch",
        "expired-bundle",
        "near-expiry-bundle",
        "unmatched-pods",
        "wrong-id-template",
        "missing-csi-mount",
        "double-match",
        "hardened-chart-offline",
        "official-chart-healthy",
        "official-chart-faults",
        "server-missing",
    ] {
        assert!(cases.iter().any(|c| c == required), "fixture case {required} is missing");
    }
    let mut failures = Vec::new();
    for case in &cases {
        let inv = load(case);
        let report = spire::check(&inv, &options());
        let (got, want) = (lines(&report), expected(case));
        if got != want {
            failures.push(format!(
                "{case}:\n  unexpected: {:?}\n  missing:    {:?}\n{}",
                got.difference(&want).collect::<Vec<_>>(),
                want.difference(&got).collect::<Vec<_>>(),
                explain(&report)
            ));
        }
        // The report's success flag agrees with the expectations.
        if success(&report) == want.iter().any(|l| l.split(' ').nth(1) == Some("error")) {
            failures.push(format!("{case}: success is {}\n{}", success(&report), explain(&report)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_check_runs_once_in_the_healthy_case() {
    let report = spire::check(&load("healthy"), &options());
    let codes: Vec<&str> = report.checks.iter().map(|c| c.code).collect();
    // The built-in checks are the catalog but for the deep checks, which need exec (SC27xx).
    let catalog: Vec<&str> =
        spire::CATALOG.codes.iter().map(|c| c.code).filter(|c| !c.starts_with("SC27")).collect();
    let (mut a, mut b) = (codes.clone(), catalog.clone());
    a.sort();
    b.sort();
    assert_eq!(a, b, "every catalog code is exactly one check");
    let deep: Vec<&str> = spire::deep::category().checks.iter().map(|c| c.code.code).collect();
    assert!(deep.iter().all(|c| c.starts_with("SC27")) && deep.len() == spire::CATALOG.codes.len() - catalog.len());
    assert!(report.checks.iter().all(|c| c.result == Outcome::Ok), "{}", explain(&report));
    assert!(success(&report));
    assert!(!report.fails(FailOn::Warning));
    // Categories group codes by their hundreds (SC2000, the input itself, comes first).
    let names = ["inputs", "spire-server", "spire-agent", "registration", "identities", "trust", "certificates", "istio-integration"];
    let prefixes = ["SC2000", "SC20", "SC21", "SC22", "SC23", "SC24", "SC25", "SC26"];
    for (name, prefix) in names.into_iter().zip(prefixes) {
        let cat = category(&report, name);
        assert!(!cat.is_empty() && cat.iter().all(|c| c.code.starts_with(prefix)), "{name} holds codes outside {prefix}");
    }
}

#[test]
fn categories_without_inputs_are_skipped_whole() {
    // Only the namespaces and application workloads of the healthy case: no SPIRE objects, no
    // Istio configuration, no nodes.
    let inv = load("healthy");
    let objects: Vec<Object> = inv
        .objects()
        .iter()
        .filter(|o| o.kind == "Namespace" || (o.kind == "Deployment" && o.namespace.as_deref() == Some("shop")))
        .cloned()
        .collect();
    let inv = Inventory::from_files(objects, vec![], "default".into());
    let report = spire::check(&inv, &options());
    for skipped in ["spire-agent", "registration", "identities", "trust", "certificates"] {
        assert!(
            category(&report, skipped).iter().all(|c| c.result == Outcome::Skipped),
            "{skipped}: {}",
            explain(&report)
        );
    }
    // The server category runs (Deployments are present) and finds no server.
    let server = category(&report, "spire-server");
    assert_eq!(server[0].code, "SC2001");
    assert_eq!(server[0].result, Outcome::Error);
    // No "✔ Exactly one SPIRE server is found" under the failure: it is skipped, saying why.
    let unique = server.iter().find(|c| c.code == "SC2005").unwrap();
    assert_eq!(unique.result, Outcome::Skipped);
    assert_eq!(unique.details[0].message, "SC2001 (SPIRE server is deployed) failed");
    // Istio integration runs on the sidecar workloads; without injector config the template checks skip.
    let istio = category(&report, "istio-integration");
    assert_eq!(istio[0].result, Outcome::Skipped);
    assert_eq!(istio.iter().find(|c| c.code == "SC2603").unwrap().result, Outcome::Ok);
}

#[test]
fn json_shape() {
    let report = spire::check(&load("agent-missing-on-node"), &options()).finish(&[]);
    let v = serde_json::to_value(&report).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["schema", "tool", "command", "source", "findings", "skipped", "notes", "summary", "checks"]);
    assert_eq!((v["schema"].as_str(), v["tool"].as_str(), v["command"].as_str()), (Some("meshmove.report/v1"), Some("spire-check"), Some("check")));
    assert_eq!(v["summary"]["errors"], 2, "SC2102 and SC2103, as expected.txt says");
    assert_eq!(
        v["checks"][0],
        serde_json::json!({"category": "inputs", "code": "SC2000", "description": "Every kind the checks need could be read", "result": "ok"}),
        "files are read whole"
    );
    let node_check = v["checks"].as_array().unwrap().iter().find(|c| c["code"] == "SC2103").unwrap();
    assert_eq!((node_check["category"].as_str(), node_check["result"].as_str()), (Some("spire-agent"), Some("error")));
    assert_eq!(node_check["description"], "Every schedulable node runs a SPIRE agent");
    let mut finding = v["findings"].as_array().unwrap().iter().find(|f| f["code"] == "SC2103").unwrap().clone();
    let origin = finding.as_object_mut().unwrap().remove("origin").unwrap();
    assert!(origin.as_str().unwrap().ends_with("agent-missing-on-node/input.yaml:31"), "{origin}");
    assert_eq!(
        finding,
        serde_json::json!({
            "code": "SC2103",
            "severity": "error",
            "message": "no running SPIRE agent pod of DaemonSet/spire/spire-agent",
            "object": {"kind": "Node", "name": "node-2"},
            "hint": spire::catalog::AGENT_ON_EVERY_NODE.hint,
            "docs": format!("https://github.com/meshmove/meshmove/blob/v{}/docs/findings.md#sc2103", env!("CARGO_PKG_VERSION")),
            "category": "spire-agent"
        })
    );
}

#[test]
fn suppressions_and_fail_on_work_like_the_other_plugins() {
    let inv = load("double-match");
    let report = spire::check(&inv, &options());
    assert!(success(&report), "only warnings");
    assert!(report.fails(FailOn::Warning));
    assert!(!report.fails(FailOn::Error));
    assert_eq!(report.findings.len(), 3);
    assert!(report.findings.iter().all(|f| f.docs.contains("/docs/findings.md#sc22")));

    let sup: Vec<Suppression> = vec!["SC2202=Deployment/shop/cart".parse().unwrap(), "SC2204".parse().unwrap()];
    let finished = report.finish(&sup);
    assert_eq!(finished.findings.len(), 1);
    assert_eq!(seen(&finished, "SC2204").result, Outcome::Skipped);
    assert_eq!((finished.summary.warnings, finished.summary.suppressed), (1, 2));
}

#[test]
fn identities_table() {
    let rows = spire::identities(&load("healthy"), &options());
    let got: Vec<(String, &str, Option<&str>, IdentityStatus)> = rows
        .iter()
        .map(|r| (r.workload.to_string(), r.expected_spiffe_id.as_str(), r.rendered.as_deref(), r.status))
        .collect();
    assert_eq!(
        got,
        [
            (
                "Deployment/shop/cart".to_string(),
                "spiffe://example.org/ns/shop/sa/cart",
                Some("spiffe://example.org/ns/shop/sa/cart"),
                IdentityStatus::Ok
            ),
            (
                "Deployment/shop/checkout".to_string(),
                "spiffe://example.org/ns/shop/sa/checkout",
                Some("spiffe://example.org/ns/shop/sa/checkout"),
                IdentityStatus::Ok
            ),
        ]
    );
    assert_eq!(rows[0].cluster_spiffe_id.as_deref(), Some("istio-workloads"));
    assert_eq!(rows[0].service_account, "cart");

    let rows = spire::identities(&load("wrong-id-template"), &options());
    assert!(rows.iter().all(|r| r.status == IdentityStatus::NotIstioForm));
    assert_eq!(rows[0].rendered.as_deref(), Some("spiffe://example.org/cart"));

    let rows = spire::identities(&load("unmatched-pods"), &options());
    let legacy = rows.iter().find(|r| r.workload.name == "legacy").unwrap();
    assert_eq!(legacy.status, IdentityStatus::Unregistered);
    assert_eq!(legacy.cluster_spiffe_id, None);
    assert_eq!(legacy.service_account, "default");
    let demo = rows.iter().find(|r| r.workload.name == "demo").unwrap();
    assert!(demo.note.as_deref().unwrap().contains("ignoreNamespaces `spire`"), "{:?}", demo.note);
    let json = serde_json::to_value(legacy).unwrap();
    assert_eq!(json["expectedSpiffeId"], "spiffe://example.org/ns/shop/sa/default");
    assert_eq!(json["status"], "unregistered");
}

#[test]
fn bundle_file_in_pem_and_spiffe_json_forms() {
    let (_, good_der) = ca(-HOUR, 23 * HOUR);
    let expired_pem = ca_pem(-48 * HOUR, -24 * HOUR);
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    let doc = serde_json::json!({
        "keys": [
            {"use": "x509-svid", "kty": "EC", "crv": "P-256", "x5c": [b64(&good_der)]},
            {"use": "jwt-svid", "kty": "EC", "kid": "k1", "crv": "P-256"},
        ],
        "spiffe_sequence": 7,
        "spiffe_refresh_hint": 300,
    });
    let bundle = TrustBundle::parse("file bundle.json", doc.to_string().as_bytes()).unwrap();
    assert_eq!(bundle.certificates.len(), 1);
    assert_eq!(bundle.jwt_authorities.len(), 1);
    assert_eq!(bundle.refresh_hint, Some(Duration::from_secs(300)));
    assert_eq!(bundle.certificates[0].spiffe_ids, ["spiffe://example.org"]);
    assert!(bundle.certificates[0].is_ca);

    // A given bundle replaces the ConfigMap: the expired case passes with a good file...
    let inv = load("expired-bundle");
    let report = spire::check(&inv, &SpireOptions { trust_bundle: Some(bundle), ..options() });
    assert!(success(&report), "{}", explain(&report));
    // ...and the healthy case fails with an expired one, reported against the file.
    let expired = TrustBundle::parse("file old.pem", expired_pem.as_bytes()).unwrap();
    let report = spire::check(&load("healthy"), &SpireOptions { trust_bundle: Some(expired), ..options() });
    let check = seen(&report, "SC2501");
    assert_eq!(check.result, Outcome::Error);
    assert!(check.details[0].message.starts_with("file old.pem: certificate #1"), "{}", check.details[0]);
}

#[test]
fn catalog_codes_are_unique_well_formed_and_documented() {
    let docs = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/findings.md"))
        .expect("docs/findings.md exists");
    let headings: BTreeSet<&str> = docs.lines().filter_map(|l| l.strip_prefix("### ")).map(str::trim).collect();
    assert!(docs.contains("\n## spire-check\n"), "docs/findings.md has a ## spire-check section");
    let mut seen = BTreeSet::new();
    for code in spire::CATALOG.codes {
        let well_formed =
            code.code.len() == 6 && code.code.starts_with("SC") && code.code[2..].chars().all(|c| c.is_ascii_digit());
        assert!(well_formed, "{} does not match ^SC\\d{{4}}$", code.code);
        assert!(seen.insert(code.code), "{} is listed twice", code.code);
        assert!(headings.contains(code.code), "{} has no ### heading in docs/findings.md", code.code);
        assert!(
            !code.title.is_empty() && code.hint.ends_with('.'),
            "{} needs a title and a one-sentence hint",
            code.code
        );
    }
    assert_eq!(spire::CATALOG.tool, "spire-check");
}

/// The healthy fixture as a live cluster would list it: the Deployments' pods exist (injected,
/// with the socket volume), and every kind spire-check reads was listed.
fn live(case: &str, edit: impl Fn(&mut Vec<Object>, &mut BTreeMap<&'static Kind, Option<Unavailable>>)) -> Inventory {
    let origin = Origin::Cluster { context: "test".into() };
    let mut objects: Vec<Object> =
        load(case).objects().iter().cloned().map(|o| Object { origin: origin.clone(), ..o }).collect();
    let object = |value: serde_json::Value| Object::from_value(value, origin.clone()).unwrap();
    for (app, pods) in [("cart", &["node-1", "node-2"][..]), ("checkout", &["node-2"][..])] {
        objects.push(object(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": format!("{app}-5f7"), "namespace": "shop",
                         "ownerReferences": [{"kind": "Deployment", "name": app, "controller": true}]},
            "spec": {"template": {"metadata": {"labels": {"app": app}}}}
        })));
        for (i, node) in pods.iter().enumerate() {
            objects.push(object(serde_json::json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("{app}-5f7-{i}"), "namespace": "shop", "uid": format!("uid-{app}-{i}"),
                             "labels": {"app": app, "spiffe.io/spire-managed-identity": "true"},
                             "annotations": {"inject.istio.io/templates": "sidecar,spire"},
                             "ownerReferences": [{"kind": "ReplicaSet", "name": format!("{app}-5f7"), "controller": true}]},
                "spec": {"serviceAccountName": app, "nodeName": node,
                         "containers": [{"name": app, "image": "registry.example/app:1"},
                                        {"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.22.0",
                                         "volumeMounts": [{"name": "workload-socket", "mountPath": "/run/secrets/workload-spiffe-uds", "readOnly": true}]}],
                         "volumes": [{"name": "workload-socket", "csi": {"driver": "csi.spiffe.io", "readOnly": true}}]},
                "status": {"phase": "Running"}
            })));
        }
    }
    let mut listed: BTreeMap<&'static Kind, Option<Unavailable>> = spire::KINDS.iter().map(|k| (*k, None)).collect();
    edit(&mut objects, &mut listed);
    Inventory::from_cluster(
        objects,
        listed,
        SourceInfo::Cluster { context: "test".into(), namespace: None },
        "default".into(),
    )
}

fn non_ok(report: &Report) -> BTreeSet<String> {
    lines(report)
}

#[test]
fn live_cluster_healthy() {
    let inv = live("healthy", |_, _| {});
    let report = spire::check(&inv, &options());
    assert!(non_ok(&report).is_empty(), "{}", explain(&report));
    // Pods are grouped under their Deployment: one identity row per workload.
    let rows = spire::identities(&inv, &options());
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r.status == IdentityStatus::Ok && r.workload.kind == "Deployment"));
}

#[test]
fn live_cluster_without_mesh_config_assumes_istio_default() {
    let inv = live("healthy", |objects, _| objects.retain(|o| !(o.kind == "ConfigMap" && o.name == "istio")));
    let report = spire::check(&inv, &options());
    assert_eq!(
        non_ok(&report),
        BTreeSet::from(["SC2401 error".to_string(), "SC2402 warning".to_string()]),
        "{}",
        explain(&report)
    );
}

#[test]
fn live_cluster_without_the_crd() {
    let inv = live("healthy", |objects, listed| {
        objects.retain(|o| o.kind != "ClusterSPIFFEID");
        listed.insert(&kinds::CLUSTER_SPIFFE_ID, Some(Unavailable::NotServed));
    });
    let report = spire::check(&inv, &options());
    let got = non_ok(&report);
    assert!(got.contains("SC2208 error"), "{got:?}");
    assert!(got.contains("SC2201 skipped") && got.contains("SC2604 skipped"), "{got:?}");
    assert!(!success(&report));
}

#[test]
fn live_cluster_pod_injected_without_the_socket() {
    let inv = live("healthy", |objects, _| {
        let pod = objects.iter_mut().find(|o| o.kind == "Pod" && o.name == "cart-5f7-0").unwrap();
        pod.value["spec"]["volumes"] = serde_json::json!([]);
    });
    let report = spire::check(&inv, &options());
    assert_eq!(
        non_ok(&report),
        BTreeSet::from(["SC2603 error Deployment/shop/cart".to_string()]),
        "{}",
        explain(&report)
    );
}

#[test]
fn live_cluster_with_forbidden_pods() {
    let inv = live("healthy", |objects, listed| {
        objects.retain(|o| o.kind != "Pod");
        listed.insert(
            &kinds::POD,
            Some(Unavailable::Forbidden { message: "pods is forbidden: cannot list pods".into() }),
        );
    });
    let report = spire::check(&inv, &options());
    let registration = category(&report, "registration");
    assert!(registration.iter().all(|c| c.result == Outcome::Skipped));
    assert_eq!(registration[0].details[0].message, "pods is forbidden: cannot list pods");
    // Without Pods the per-node checks cannot run either.
    assert!(non_ok(&report).contains("SC2103 skipped"));
    // Skipped is not passed: the refused list is an error of its own, and the run fails.
    let inputs = seen(&report, "SC2000");
    assert_eq!(inputs.result, Outcome::Error);
    assert_eq!(inputs.details[0].message, "pods could not be listed: pods is forbidden: cannot list pods");
    assert!(!success(&report));
    assert!(report.fails(FailOn::Error));
}

#[test]
fn official_chart_live_reads_bundle_spiffe_and_names_its_publisher() {
    // Healthy: the bundle is read from bundle.spiffe, and nothing speaks of a k8sbundle notifier
    // that this installation does not configure.
    let inv = live("official-chart-healthy", |_, _| {});
    let report = spire::check(&inv, &options());
    assert!(non_ok(&report).is_empty(), "{}", explain(&report));
    let readable = seen(&report, "SC2505");
    assert_eq!(
        readable.details[0].to_string(),
        "ConfigMap/spire-system/spire-bundle: bundle.spiffe: 1 X.509 authority and 1 JWT authority (SPIFFE bundle, JWT authorities undated, sequence 4, refresh hint 5m)"
    );
    let published = seen(&report, "SC2506");
    assert_eq!(
        published.details[0].to_string(),
        "ConfigMap/spire-system/spire-bundle: publishes the bundle under bundle.spiffe (BundlePublisher k8s_configmap (format spiffe))"
    );
    // The same cluster before the server has written the bundle: the warning names the plugin
    // server.conf configures and the key it writes.
    let inv = live("official-chart-healthy", |objects, _| {
        let cm = objects.iter_mut().find(|o| o.kind == "ConfigMap" && o.name == "spire-bundle").unwrap();
        cm.value["data"] = serde_json::json!({});
    });
    let report = spire::check(&inv, &options());
    let published = seen(&report, "SC2506");
    assert_eq!(published.result, Outcome::Warning);
    let text = published.details[0].to_string();
    assert_eq!(
        text,
        "ConfigMap/spire-system/spire-bundle: has no bundle.spiffe: server.conf's BundlePublisher k8s_configmap (format spiffe) has not written it; read the SPIRE server's logs"
    );
    assert!(
        !checks(&report).iter().any(|c| c.details.iter().any(|d| d.message.contains("k8sbundle"))),
        "{}",
        explain(&report)
    );
}

#[test]
fn official_chart_offline_reads_every_bundle_form() {
    // The rendered chart's ConfigMap is empty: the skip names the right key and plugin.
    let inv = load("official-chart-healthy");
    let objects: Vec<Object> = inv
        .objects()
        .iter()
        .cloned()
        .map(|mut o| {
            if o.kind == "ConfigMap" && o.name == "spire-bundle" {
                o.value.as_object_mut().unwrap().remove("data");
            }
            o
        })
        .collect();
    let report = spire::check(&Inventory::from_files(objects, vec![], "default".into()), &options());
    let published = seen(&report, "SC2506");
    assert_eq!(published.result, Outcome::Skipped);
    assert_eq!(
        published.details[0].message,
        "ConfigMap/spire-system/spire-bundle has no bundle.spiffe yet: server.conf's BundlePublisher k8s_configmap (format spiffe) writes it when the server runs"
    );
    // A PEM bundle.crt next to it (a second publisher, or a copy) is read as well.
    let inv = load("official-chart-healthy");
    let objects: Vec<Object> = inv
        .objects()
        .iter()
        .cloned()
        .map(|mut o| {
            if o.kind == "ConfigMap" && o.name == "spire-bundle" {
                o.value["data"]["bundle.crt"] = serde_json::json!(ca_pem(-48 * HOUR, -24 * HOUR));
            }
            o
        })
        .collect();
    let report = spire::check(&Inventory::from_files(objects, vec![], "default".into()), &options());
    let expired = seen(&report, "SC2501");
    assert_eq!(expired.result, Outcome::Error);
    assert_eq!(expired.details.len(), 1);
    assert!(expired.details[0].message.starts_with("bundle.crt: certificate #1 "), "{}", expired.details[0]);
    assert!(expired.details[0].message.ends_with(" expired 1d ago"), "{}", expired.details[0]);
}

#[test]
fn spire_bundle_json_dates_jwt_authorities() {
    // `spire-server bundle show -output json`: SPIRE's own bundle, the one form that dates JWT
    // authorities. An expired JWT key fails SC2501, a stalled one warns under SC2502.
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    let doc = serde_json::json!({
        "trust_domain": "example.org",
        "x509_authorities": [{"asn1": b64(&ca(-HOUR, 23 * HOUR).1)}],
        "jwt_authorities": [
            {"public_key": "MFkw", "key_id": "retired", "expires_at": (NOW - 3 * 86_400).to_string()},
            {"public_key": "MFkw", "key_id": "current", "expires_at": (NOW + 2 * HOUR).to_string()},
        ],
        "refresh_hint": "300",
        "sequence_number": "9",
    });
    let bundle = TrustBundle::parse("file bundle.json", doc.to_string().as_bytes()).unwrap();
    let report = spire::check(&load("healthy"), &SpireOptions { trust_bundle: Some(bundle), ..options() });
    let expired = seen(&report, "SC2501");
    assert_eq!(expired.result, Outcome::Error);
    assert!(
        expired.details[0].message.starts_with("file bundle.json: JWT authority #1 (kid retired, expires ")
            && expired.details[0].message.contains("expired 3d ago"),
        "{}",
        expired.details[0]
    );
    let rotation = seen(&report, "SC2502");
    assert_eq!(rotation.result, Outcome::Warning);
    assert!(rotation.details[0].message.contains("JWT authority #2 (kid current"), "{}", rotation.details[0]);
}

#[test]
fn live_agent_coverage_by_need() {
    // The agent DaemonSet narrowed to node-1 (its pod on node-2 went away with it): SC2103 says
    // node-2 is not expected to run an agent, and SC2107 says meshed pods run there anyway.
    let inv = live("healthy", |objects, _| {
        let ds = objects.iter_mut().find(|o| o.kind == "DaemonSet" && o.name == "spire-agent").unwrap();
        ds.value["spec"]["template"]["spec"]["nodeSelector"] = serde_json::json!({"kubernetes.io/hostname": "node-1"});
        objects.retain(|o| !(o.kind == "Pod" && o.name == "spire-agent-b2"));
    });
    let report = spire::check(&inv, &options());
    assert_eq!(non_ok(&report), BTreeSet::from(["SC2107 error Node/node-2".to_string()]), "{}", explain(&report));
    let detail = seen(&report, "SC2107").details[0].to_string();
    assert_eq!(
        detail,
        "Node/node-2: no SPIRE agent can run here (DaemonSet/spire/spire-agent: nodeSelector does not match), yet it runs Pod/shop/cart-5f7-1, Pod/shop/checkout-5f7-0 and Deployment/shop/cart, Deployment/shop/checkout can be scheduled here: these pods need the Workload API and wait forever for an SVID"
    );
    let placement = seen(&report, "SC2103");
    assert!(
        placement.details.iter().any(|d| d.message.contains("node-2 (nodeSelector does not match)")),
        "{placement:?}"
    );
    // An agent pod that runs but is not ready, where meshed pods run.
    let inv = live("healthy", |objects, _| {
        let pod = objects.iter_mut().find(|o| o.kind == "Pod" && o.name == "spire-agent-a1").unwrap();
        pod.value["status"]["conditions"] = serde_json::json!([{"type": "Ready", "status": "False"}]);
    });
    let report = spire::check(&inv, &options());
    assert_eq!(non_ok(&report), BTreeSet::from(["SC2107 error Node/node-1".to_string()]), "{}", explain(&report));
    let detail = seen(&report, "SC2107").details[0].to_string();
    assert!(
        detail.contains(
            "the SPIRE agent pod here (Pod/spire/spire-agent-a1) is not ready, yet it runs Pod/shop/cart-5f7-0"
        ),
        "{detail}"
    );
}
