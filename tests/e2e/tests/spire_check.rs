//! `kubectl spire-check` end to end: the built binary over the SPIRE fixture grid of the spire
//! crate (`crates/spire/tests/fixtures`), offline with `-f` and live against the API double, in
//! every output format, with golden files for the healthy and one broken case.
//!
//! The fixtures hold `{{BUNDLE_*}}` (PEM) and `{{SPIFFE_BUNDLE_*}}` (SPIFFE bundle JSON)
//! placeholders where trust bundles go; as in the core's grid, they are replaced with certificates
//! generated here relative to the fixed clock [`NOW`], which the binary gets through its hidden
//! `--now` flag, so every run renders the same.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use apiserver_double::{Double, DoubleOptions, crds};
use e2e::{Run, bin, golden, run};
use serde_json::{Value, json};

/// 2031-06-15T12:00:00Z.
const NOW: i64 = 1_939_291_200;
const NOW_ARG: &str = "2031-06-15T12:00:00Z";
const HOUR: i64 = 3600;

fn spire_check(args: &[&str]) -> Run {
    run(&bin("spire-check"), args, None, &[])
}

/// A self-signed SPIRE-like CA (PEM), valid from `NOW + from` to `NOW + to` seconds, and its DER.
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

/// A SPIFFE bundle document on one line (what the official chart's BundlePublisher writes to
/// `bundle.spiffe`): these certificates as x509-svid keys, and one jwt-svid key.
fn spiffe_bundle(certs: &[Vec<u8>]) -> String {
    let mut keys: Vec<Value> = certs
        .iter()
        .map(|der| json!({"use": "x509-svid", "kty": "EC", "crv": "P-256", "x5c": [base64_free::encode(der)]}))
        .collect();
    keys.push(json!({"use": "jwt-svid", "kty": "EC", "kid": "jwt-key-1", "crv": "P-256",
        "x": "Y2VydGFpbmx5LW5vdC1hLXJlYWwta2V5LXgtY29vcmQ", "y": "Y2VydGFpbmx5LW5vdC1hLXJlYWwta2V5LXktY29vcmQ"}));
    json!({"keys": keys, "spiffe_refresh_hint": 300, "spiffe_sequence": 4}).to_string()
}

/// The fixture text with each bundle placeholder line replaced by a bundle at its indentation.
fn substitute(text: &str) -> String {
    let bundles = [
        ("{{BUNDLE_VALID}}", ca(-HOUR, 23 * HOUR).0),
        ("{{BUNDLE_EXPIRED}}", ca(-48 * HOUR, -24 * HOUR).0),
        ("{{BUNDLE_NEAR_EXPIRY}}", ca(-22 * HOUR, 2 * HOUR).0),
        ("{{SPIFFE_BUNDLE_VALID}}", spiffe_bundle(&[ca(-HOUR, 23 * HOUR).1])),
        (
            "{{SPIFFE_BUNDLE_FAULTS}}",
            spiffe_bundle(&[ca(-48 * HOUR, -24 * HOUR).1, cert(false, -HOUR, HOUR).1, ca(-22 * HOUR, 2 * HOUR).1]),
        ),
    ];
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        match bundles.iter().find(|(p, _)| line.trim() == *p) {
            Some((_, pem)) => {
                let indent: String = line.chars().take_while(|c| *c == ' ').collect();
                for pem_line in pem.lines() {
                    out.push_str(&format!("{indent}{pem_line}\n"));
                }
            }
            None => {
                assert!(!line.contains("BUNDLE_") || !line.contains("{{"), "unknown bundle placeholder: {line}");
                out.push_str(line);
            }
        }
    }
    out
}

fn fixtures() -> PathBuf {
    e2e::root().join("crates/spire/tests/fixtures")
}

fn cases() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The fixture with generated certificates, and a file holding it.
struct Fixture {
    text: String,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

fn fixture(case: &str) -> Fixture {
    let text = substitute(&std::fs::read_to_string(fixtures().join(case).join("input.yaml")).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{case}.yaml"));
    std::fs::write(&path, &text).unwrap();
    Fixture { text, path, _dir: dir }
}

/// `expected.txt` of a case: `CODE result [object]` lines.
fn expected(case: &str) -> BTreeSet<String> {
    std::fs::read_to_string(fixtures().join(case).join("expected.txt"))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// The checks that ran, in order (`checks` of the findings report).
fn checks(report: &Value) -> Vec<&Value> {
    report["checks"].as_array().unwrap().iter().collect()
}

/// The findings of one check, in report order.
fn findings_of<'v>(report: &'v Value, code: &str) -> Vec<&'v Value> {
    report["findings"].as_array().unwrap().iter().filter(|f| f["code"] == code).collect()
}

/// A finding as the table prints it under its check: `Kind/namespace/name: message`.
fn detail(f: &Value) -> String {
    let o = &f["object"];
    let message = f["message"].as_str().unwrap();
    match (o["kind"].as_str(), o["namespace"].as_str(), o["name"].as_str()) {
        (Some(kind), Some(ns), Some(name)) => format!("{kind}/{ns}/{name}: {message}"),
        (Some(kind), None, Some(name)) => format!("{kind}/{name}: {message}"),
        _ => message.to_string(),
    }
}

/// Why a check was skipped (its `skipped` entry).
fn skip_reason(report: &Value, code: &str) -> String {
    let s = report["skipped"].as_array().unwrap().iter().find(|s| s["analyzer"] == code);
    s.unwrap_or_else(|| panic!("{code} has no skipped entry"))["reason"].as_str().unwrap().to_string()
}

/// No error among the findings (warnings alone pass, as with `linkerd check`).
fn success(report: &Value) -> bool {
    report["summary"]["errors"] == 0
}

/// The non-ok checks of a JSON report as `CODE result` with their details: the findings of a
/// failed check, the reason of a skipped one.
fn non_ok(report: &Value) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for c in checks(report) {
        let code = c["code"].as_str().unwrap();
        let details = match c["result"].as_str().unwrap() {
            "ok" => continue,
            "skipped" => vec![skip_reason(report, code)],
            _ => findings_of(report, code).into_iter().map(detail).collect(),
        };
        out.insert(format!("{code} {}", c["result"].as_str().unwrap()), details);
    }
    out
}

/// Check a JSON report against `expected.txt`: the same non-ok checks, and for lines naming an
/// object, one detail about each named object (and no other details).
fn assert_matches_expected(case: &str, report: &Value) {
    let want = expected(case);
    let mut objects: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in &want {
        let mut parts = line.splitn(3, ' ');
        let key = format!("{} {}", parts.next().unwrap(), parts.next().unwrap());
        let entry = objects.entry(key).or_default();
        if let Some(object) = parts.next() {
            entry.insert(object.to_string());
        }
    }
    let got = non_ok(report);
    assert_eq!(
        got.keys().collect::<BTreeSet<_>>(),
        objects.keys().collect::<BTreeSet<_>>(),
        "{case}: non-ok checks\n{report:#}"
    );
    for (key, want_objects) in &objects {
        if want_objects.is_empty() {
            continue;
        }
        let details = &got[key];
        let named: BTreeSet<String> = details
            .iter()
            .filter_map(|d| want_objects.iter().find(|o| d.starts_with(&format!("{o}: "))).cloned())
            .collect();
        assert_eq!(&named, want_objects, "{case}: {key} details {details:?}");
        assert_eq!(details.len(), want_objects.len(), "{case}: {key} has other details: {details:?}");
    }
}

fn worst(case: &str) -> (bool, bool) {
    let want = expected(case);
    let errors = want.iter().any(|l| l.split(' ').nth(1) == Some("error"));
    let warnings = want.iter().any(|l| l.split(' ').nth(1) == Some("warning"));
    (errors, warnings)
}

#[test]
fn offline_grid_in_json_and_table_with_exit_codes() {
    let cases = cases();
    assert!(cases.len() >= 10, "{cases:?}");
    for case in &cases {
        let f = fixture(case);
        let path = f.path.to_str().unwrap();
        let (errors, warnings) = worst(case);
        let json = spire_check(&["-f", path, "--now", NOW_ARG, "-o", "json"]);
        assert_eq!(json.code, i32::from(errors), "{case}: exit code\n{}", json.stderr);
        let report = json.json();
        assert_eq!(success(&report), !errors, "{case}");
        assert_matches_expected(case, &report);

        let table = spire_check(&["-f", path, "--now", NOW_ARG]);
        assert_eq!(table.code, json.code, "{case}: table and JSON exit alike");
        let last = match (errors, warnings) {
            (true, _) => "Status check results are ×",
            (false, true) => "Status check results are ‼",
            (false, false) => "Status check results are ✔",
        };
        assert_eq!(table.stdout.lines().last(), Some(last), "{case}\n{}", table.stdout);
        // Each failing check is a marked line with its code, its details, the hint and the URL
        // of its documentation; skipped checks are left out and counted.
        for (key, details) in non_ok(&report) {
            let (code, result) = key.split_once(' ').unwrap();
            let check = checks(&report).into_iter().find(|c| c["code"] == code).unwrap();
            let description = check["description"].as_str().unwrap();
            if result == "skipped" {
                assert!(
                    !table.stdout.contains(&format!("- {description}")),
                    "{case}: {code} is shown\n{}",
                    table.stdout
                );
                continue;
            }
            let docs = format!(
                "https://github.com/meshmove/meshmove/blob/v{}/docs/findings.md#{}",
                env!("CARGO_PKG_VERSION"),
                code.to_ascii_lowercase()
            );
            let findings = findings_of(&report, code);
            assert!(findings.iter().all(|f| f["docs"] == docs.as_str()), "{case}: {code}");
            assert!(findings.iter().all(|f| f["severity"] == result && f["category"] == check["category"]), "{case}: {code}");
            let pointer = format!("    see {docs}");
            let lines: Vec<&str> = table.stdout.lines().collect();
            let at = lines
                .iter()
                .position(|l| *l == pointer)
                .unwrap_or_else(|| panic!("{case}: no `{pointer}`\n{}", table.stdout));
            let mark = if result == "error" { "×" } else { "‼" };
            let head = at - details.len() - 2;
            assert_eq!(lines[head], format!("{mark} {description} [{code}]"), "{case}: {code}");
            for (i, d) in details.iter().enumerate() {
                assert_eq!(lines[head + 1 + i], format!("    {d}"), "{case}: {code}");
            }
            assert_eq!(lines[at - 1], format!("    hint: {}", findings[0]["hint"].as_str().unwrap()), "{case}: {code}");
        }
        let skipped = non_ok(&report).keys().filter(|k| k.ends_with(" skipped")).count();
        if skipped > 0 {
            let noun = if skipped == 1 { "check" } else { "checks" };
            let count = format!("{skipped} skipped {noun} not shown: --verbose lists them with the reason");
            assert!(table.stdout.contains(&count), "{case}: no `{count}`\n{}", table.stdout);
            let verbose = spire_check(&["-f", path, "--now", NOW_ARG, "--verbose"]);
            assert_eq!(verbose.code, json.code, "{case}: --verbose exits alike");
            assert!(
                !verbose.stdout.contains("not shown") && verbose.stdout.contains("    skipped: "),
                "{case}\n{}",
                verbose.stdout
            );
        }

        let strict = spire_check(&["check", "-f", path, "--now", NOW_ARG, "--fail-on", "warning", "-o", "yaml"]);
        assert_eq!(strict.code, i32::from(errors || warnings), "{case}: --fail-on warning\n{}", strict.stderr);
        let yaml = apiserver_double::parse_documents(&strict.stdout).unwrap();
        assert_eq!(yaml, std::slice::from_ref(&report), "{case}: YAML is the JSON document");
        let never = spire_check(&["check", "-f", path, "--now", NOW_ARG, "--fail-on", "never", "-o", "wide"]);
        assert_eq!(never.code, 0, "{case}: --fail-on never");
    }
}

#[test]
fn golden_outputs_of_a_healthy_and_a_broken_installation() {
    for (case, name) in [("healthy", "healthy"), ("agent-missing-on-node", "agent-missing")] {
        let f = fixture(case);
        let path = f.path.to_str().unwrap();
        let want = if case == "healthy" { 0 } else { 1 };
        let table = spire_check(&["-f", path, "--now", NOW_ARG]).expect_code(want);
        golden(&format!("spire-check.{name}.txt"), &table.stdout);
        let json = spire_check(&["-f", path, "--now", NOW_ARG, "-o", "json"]).expect_code(want);
        // The fixture is written to a temporary directory: the report names it as its source and
        // in every finding's origin.
        let dir = f.path.parent().unwrap().display().to_string();
        assert!(json.stdout.contains(&dir), "{}", json.stdout);
        golden(&format!("spire-check.{name}.json"), &json.stdout.replace(&dir, "$TMP"));
    }
    // The official chart wired to Istio as its guide says, healthy and with the faults a new user
    // met (the agent's nodeSelector leaving out a node with meshed pods; expired, leaf and
    // expiring CAs in bundle.spiffe).
    let f = fixture("official-chart-healthy");
    let table = spire_check(&["-f", f.path.to_str().unwrap(), "--now", NOW_ARG]).expect_code(0);
    golden("spire-check.official-chart-healthy.txt", &table.stdout);
    let f = fixture("official-chart-faults");
    let table = spire_check(&["-f", f.path.to_str().unwrap(), "--now", NOW_ARG]).expect_code(1);
    golden("spire-check.official-chart-faults.txt", &table.stdout);
    // Rendered charts, where most checks lack their inputs: skipped checks hidden and counted by
    // default, listed with the reason under --verbose; only a warning, so the summary is ‼.
    let f = fixture("hardened-chart-offline");
    let path = f.path.to_str().unwrap();
    let table = spire_check(&["-f", path, "--now", NOW_ARG]).expect_code(0);
    golden("spire-check.rendered-chart.txt", &table.stdout);
    let verbose = spire_check(&["-f", path, "--now", NOW_ARG, "--verbose"]).expect_code(0);
    golden("spire-check.rendered-chart.verbose.txt", &verbose.stdout);
    let f = fixture("healthy");
    let ids = spire_check(&["identities", "-f", f.path.to_str().unwrap(), "--now", NOW_ARG]).expect_code(0);
    golden("spire-check.identities.txt", &ids.stdout);
}

#[test]
fn identities_table_json_and_exit_codes() {
    let f = fixture("healthy");
    let path = f.path.to_str().unwrap();
    let r = spire_check(&["identities", "-f", path]).expect_code(0);
    let header = r.stdout.lines().next().unwrap();
    let columns: Vec<&str> = header.split("   ").map(str::trim).filter(|c| !c.is_empty()).collect();
    assert_eq!(columns, ["WORKLOAD", "SERVICE ACCOUNT", "EXPECTED SPIFFE ID", "CLUSTERSPIFFEID", "STATUS"]);
    assert!(r.stdout.contains("Deployment/shop/cart"), "{}", r.stdout);
    let wide = spire_check(&["identities", "-f", path, "-o", "wide"]).expect_code(0);
    let wide_header = wide.stdout.lines().next().unwrap();
    assert!(
        wide_header.starts_with(header)
            && wide_header.contains("   RENDERED SPIFFE ID   ")
            && wide_header.ends_with("   NOTE"),
        "{}",
        wide.stdout
    );
    let rows = spire_check(&["identities", "-f", path, "-o", "json"]).expect_code(0).json();
    assert_eq!(rows.as_array().unwrap().len(), 2);
    assert_eq!(
        rows[0],
        json!({"workload": {"kind": "Deployment", "namespace": "shop", "name": "cart"}, "serviceAccount": "cart",
               "expectedSpiffeId": "spiffe://example.org/ns/shop/sa/cart", "clusterSpiffeId": "istio-workloads",
               "rendered": "spiffe://example.org/ns/shop/sa/cart", "status": "ok"})
    );

    let f = fixture("wrong-id-template");
    let path = f.path.to_str().unwrap();
    let r = spire_check(&["identities", "-f", path]).expect_code(1);
    assert_eq!(r.stdout.lines().filter(|l| l.ends_with("not-istio-form")).count(), 2, "{}", r.stdout);
    spire_check(&["identities", "-f", path, "--fail-on", "never"]).expect_code(0);
    let yaml = spire_check(&["identities", "-f", path, "-o", "yaml"]).expect_code(1);
    let json = spire_check(&["identities", "-f", path, "-o", "json"]).expect_code(1).json();
    assert_eq!(apiserver_double::parse_documents(&yaml.stdout).unwrap(), [json]);
    // Suppressing the code of both rows hides them and the command passes.
    let r = spire_check(&["identities", "-f", path, "--suppress", "SC2302"]).expect_code(0);
    assert!(
        r.stdout.is_empty() && r.stderr.contains("no meshed workloads found") && r.stderr.contains("2 row(s) hidden"),
        "{r:?}"
    );
    let r = spire_check(&["identities", "-f", path, "--suppress", "SC2302=Deployment/shop/cart"]).expect_code(1);
    assert!(!r.stdout.contains("shop/cart") && r.stdout.contains("shop/checkout"), "{}", r.stdout);
}

#[test]
fn namespace_flag_narrows_the_workloads_not_spire() {
    let f = fixture("unmatched-pods");
    let path = f.path.to_str().unwrap();
    let registered = |ns: &str| -> Vec<String> {
        let r = spire_check(&["-f", path, "--now", NOW_ARG, "-n", ns, "-o", "json"]);
        let report = r.json();
        // SPIRE itself (in namespace spire) is still found and checked.
        assert_eq!(non_ok(&report).get("SC2001 error"), None, "{ns}");
        non_ok(&report).get("SC2201 error").cloned().unwrap_or_default()
    };
    let shop = registered("shop");
    assert_eq!(shop.len(), 1, "{shop:?}");
    assert!(shop[0].starts_with("Deployment/shop/legacy: "), "{shop:?}");
    let demo = registered("spire-demo");
    assert!(demo.len() == 1 && demo[0].starts_with("Deployment/spire-demo/demo: "), "{demo:?}");
    assert!(registered("tools").is_empty());
    let all = spire_check(&["-f", path, "--now", NOW_ARG, "-A", "-o", "json"]).expect_code(1).json();
    assert_eq!(non_ok(&all)["SC2201 error"].len(), 2);
}

#[test]
fn bundle_files_replace_the_config_map() {
    let f = fixture("expired-bundle");
    let path = f.path.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (pem, der) = ca(-HOUR, 23 * HOUR);
    let pem_file = dir.path().join("bundle.pem");
    std::fs::write(&pem_file, &pem).unwrap();
    spire_check(&["-f", path, "--now", NOW_ARG, "--bundle", pem_file.to_str().unwrap()]).expect_code(0);

    use base64_free::encode;
    let doc = json!({"keys": [{"use": "x509-svid", "kty": "EC", "crv": "P-256", "x5c": [encode(&der)]}], "spiffe_sequence": 3});
    let json_file = dir.path().join("bundle.json");
    std::fs::write(&json_file, doc.to_string()).unwrap();
    spire_check(&["-f", path, "--now", NOW_ARG, "--bundle", json_file.to_str().unwrap()]).expect_code(0);

    // The healthy installation fails with an expired file, reported against the file.
    let h = fixture("healthy");
    let old = dir.path().join("old.pem");
    std::fs::write(&old, ca(-48 * HOUR, -24 * HOUR).0).unwrap();
    let report = spire_check(&[
        "-f",
        h.path.to_str().unwrap(),
        "--now",
        NOW_ARG,
        "--bundle",
        old.to_str().unwrap(),
        "-o",
        "json",
    ])
    .expect_code(1)
    .json();
    let expired = &non_ok(&report)["SC2501 error"];
    assert!(expired[0].starts_with(&format!("file {}: certificate #1", old.display())), "{expired:?}");

    // SPIRE's own bundle JSON (`spire-server bundle show -output json`) dates JWT authorities: an
    // expired one fails SC2501 like an expired CA.
    let api = json!({
        "trust_domain": "example.org",
        "x509_authorities": [{"asn1": encode(&der), "tainted": false}],
        "jwt_authorities": [
            {"public_key": "MFkwEwYHKoZIzj0CAQ==", "key_id": "retired", "expires_at": (NOW - 3 * 86_400).to_string(), "tainted": false},
            {"public_key": "MFkwEwYHKoZIzj0CAQ==", "key_id": "current", "expires_at": (NOW + 20 * HOUR).to_string(), "tainted": false}
        ],
        "refresh_hint": "0",
        "sequence_number": "9"
    });
    let api_file = dir.path().join("server-bundle.json");
    std::fs::write(&api_file, api.to_string()).unwrap();
    let report = spire_check(&["-f", path, "--now", NOW_ARG, "--bundle", api_file.to_str().unwrap(), "-o", "json"])
        .expect_code(1)
        .json();
    let expired = &non_ok(&report)["SC2501 error"];
    assert_eq!(expired.len(), 1, "{expired:?}");
    assert!(
        expired[0].starts_with(&format!("file {}: JWT authority #1 (kid retired, expires ", api_file.display()))
            && expired[0].contains("expired 3d ago"),
        "{expired:?}"
    );

    // Unreadable bundles are input errors naming the file, before anything is loaded.
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let r = spire_check(&["-f", path, "--bundle", junk.to_str().unwrap()]).expect_code(2);
    assert!(r.stderr.contains(&format!("--bundle: file {}: ", junk.display())), "{}", r.stderr);
    let bad_json = dir.path().join("bad.json");
    std::fs::write(&bad_json, "{\"keys\": 5}").unwrap();
    let r = spire_check(&["-f", path, "--bundle", bad_json.to_str().unwrap()]).expect_code(2);
    assert!(r.stderr.contains(bad_json.to_str().unwrap()), "{}", r.stderr);
    let missing = dir.path().join("missing.pem");
    let r = spire_check(&["--bundle", missing.to_str().unwrap()]).expect_code(2);
    assert!(r.stderr.contains(&format!("--bundle: cannot read {}", missing.display())), "{}", r.stderr);
    assert!(r.stdout.is_empty());
}

/// Base64 for the SPIFFE bundle document, without another dependency.
mod base64_free {
    pub fn encode(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[test]
    fn known_vectors() {
        assert_eq!(encode(b""), "");
        assert_eq!(encode(b"f"), "Zg==");
        assert_eq!(encode(b"fo"), "Zm8=");
        assert_eq!(encode(b"foo"), "Zm9v");
        assert_eq!(encode(b"foobar"), "Zm9vYmFy");
    }
}

#[test]
fn a_broken_server_conf_is_one_line_with_its_position_and_no_secret() {
    let f = fixture("healthy");
    let broken = f.text.replace(
        "          connection_string = \"/run/spire/data/datastore.sqlite3\"",
        "          connection_string = \"postgres://spire:S3cretPassw0rd@db/spire\" ]",
    );
    assert_ne!(broken, f.text);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.yaml");
    std::fs::write(&path, &broken).unwrap();
    let r = spire_check(&["-f", path.to_str().unwrap(), "--now", NOW_ARG]).expect_code(1);
    let line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("    ConfigMap/spire/spire-server: server.conf:"))
        .unwrap_or_else(|| panic!("no server.conf error line\n{}", r.stdout));
    assert!(line.ends_with(": not valid HCL: expected newline or eof"), "{line}");
    let position = line.trim_start_matches("    ConfigMap/spire/spire-server: server.conf:");
    let (row, rest) = position.split_once(':').unwrap();
    let (column, _) = rest.split_once(':').unwrap();
    assert!(row.parse::<u32>().is_ok() && column.parse::<u32>().is_ok(), "{line}");
    assert!(!r.stdout.contains("S3cret") && !r.stderr.contains("S3cret"), "{r:?}");
    assert!(r.stdout.contains("× SPIRE server configuration is valid [SC2004]"), "{}", r.stdout);
}

#[test]
fn usage_errors() {
    let f = fixture("healthy");
    let path = f.path.to_str().unwrap();
    let r = spire_check(&["-f", path, "--exec"]).expect_code(2);
    assert!(
        r.stderr.contains("--exec") && r.stderr.contains("needs a live cluster") && r.stderr.contains("-f"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.is_empty());
    let r = spire_check(&["-f", path, "identities"]).expect_code(2);
    assert!(r.stderr.contains("--filename must come after the command"), "{}", r.stderr);
    let r = spire_check(&["--server-selector", "a=b,=c", "-f", path]).expect_code(2);
    assert!(r.stderr.contains("--server-selector"), "{}", r.stderr);
    let r = spire_check(&["-f", path, "--now", "tomorrow"]).expect_code(2);
    assert!(r.stderr.contains("invalid time `tomorrow`"), "{}", r.stderr);
    // No kubeconfig (the harness points KUBECONFIG at nothing): a cluster error.
    let r = spire_check(&["check"]);
    assert_eq!(r.code, 3, "{r:?}");
}

// ---------------------------------------------------------------------------------------------
// Live, against the API double
// ---------------------------------------------------------------------------------------------

/// What a cluster running the fixture would also hold: one Running, injected pod (through a
/// ReplicaSet) per Deployment, and a Running pod per StatefulSet, unless the fixture lists the
/// workload's pods itself (through a ReplicaSet it owns). Injection follows Istio's rules as the
/// fixtures use them: a sidecar in namespaces labelled `istio-injection=enabled` (unless the pod
/// opts out), and, when the pod requests the `spire` template, the Workload API socket volume and
/// the labels that template adds (Istio's guide adds `spiffe.io/spire-managed-identity`).
fn cluster_pods(docs: &[Value]) -> Vec<Value> {
    let injected_ns: BTreeSet<&str> = docs
        .iter()
        .filter(|d| d["kind"] == "Namespace" && d["metadata"]["labels"]["istio-injection"] == "enabled")
        .filter_map(|d| d["metadata"]["name"].as_str())
        .collect();
    let spire_template_labels = spire_template_labels(docs);
    let listed_owners: BTreeSet<(String, String)> = docs
        .iter()
        .filter(|d| d["kind"] == "ReplicaSet")
        .filter_map(|d| {
            let owner = d["metadata"]["ownerReferences"][0]["name"].as_str()?;
            Some((d["metadata"]["namespace"].as_str()?.to_string(), owner.to_string()))
        })
        .collect();
    let mut out = Vec::new();
    for d in docs {
        let kind = d["kind"].as_str().unwrap_or("");
        if !matches!(kind, "Deployment" | "StatefulSet") {
            continue;
        }
        let (name, ns) = (d["metadata"]["name"].as_str().unwrap(), d["metadata"]["namespace"].as_str().unwrap());
        if listed_owners.contains(&(ns.to_string(), name.to_string())) {
            continue;
        }
        let template = &d["spec"]["template"];
        let mut pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": template["metadata"].clone(),
            "spec": template["spec"].clone(),
            "status": {"phase": "Running"}
        });
        let owner = if kind == "Deployment" {
            let rs = format!("{name}-5f7d9");
            out.push(json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": rs, "namespace": ns,
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": format!("uid-{name}"), "controller": true}]},
                "spec": {"selector": d["spec"]["selector"].clone(), "template": template.clone()},
                "status": {"replicas": 1, "readyReplicas": 1}
            }));
            pod["metadata"]["name"] = json!(format!("{rs}-x1"));
            ("ReplicaSet", rs)
        } else {
            pod["metadata"]["name"] = json!(format!("{name}-0"));
            ("StatefulSet", name.to_string())
        };
        pod["metadata"]["namespace"] = json!(ns);
        pod["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": owner.0, "name": owner.1, "uid": format!("uid-{}", owner.1), "controller": true}]);
        pod["spec"]["nodeName"] = json!("node-1");
        let labels = &template["metadata"]["labels"];
        if injected_ns.contains(ns) && labels["sidecar.istio.io/inject"] != "false" {
            let templates =
                template["metadata"]["annotations"]["inject.istio.io/templates"].as_str().unwrap_or("sidecar");
            let mut proxy = json!({"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.22.0"});
            if templates.split(',').any(|t| t.trim() == "spire") {
                for (k, v) in &spire_template_labels {
                    pod["metadata"]["labels"][k] = json!(v);
                }
                proxy["volumeMounts"] = json!([{"name": "workload-socket", "mountPath": "/run/secrets/workload-spiffe-uds", "readOnly": true}]);
                let volumes = pod["spec"]["volumes"].as_array().cloned().unwrap_or_default();
                let mut volumes = volumes;
                volumes.push(json!({"name": "workload-socket", "csi": {"driver": "csi.spiffe.io", "readOnly": true}}));
                pod["spec"]["volumes"] = json!(volumes);
            }
            pod["spec"]["containers"].as_array_mut().unwrap().push(proxy);
        }
        out.push(pod);
    }
    out
}

/// The labels the injector's `spire` template adds (a top-level `labels:` block, as Istio's SPIRE
/// guide writes it, or `metadata.labels`).
fn spire_template_labels(docs: &[Value]) -> Vec<(String, String)> {
    let Some(config) = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == "istio-sidecar-injector")
        .and_then(|d| d["data"]["config"].as_str())
    else {
        return Vec::new();
    };
    let config = apiserver_double::parse_documents(config).unwrap().remove(0);
    let Some(template) = config["templates"]["spire"].as_str() else { return Vec::new() };
    let template = apiserver_double::parse_documents(template).unwrap().remove(0);
    [&template["labels"], &template["metadata"]["labels"]]
        .into_iter()
        .filter_map(Value::as_object)
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_string)))
        .collect()
}

/// A double holding the fixture (as given: statuses included) and its pods; returns the double
/// and a kubeconfig for it.
fn live(f: &Fixture) -> (apiserver_double::BlockingDouble, PathBuf, tempfile::TempDir) {
    let double =
        Double::spawn_blocking_runtime(DoubleOptions { simulate_controllers: false, ..DoubleOptions::default() })
            .unwrap();
    double.install_crds(crds::spire()).unwrap();
    let docs = apiserver_double::parse_documents(&f.text).unwrap();
    let pods = cluster_pods(&docs);
    double.load_values(docs).unwrap();
    double.load_values(pods).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = double.write_kubeconfig(dir.path(), "default").unwrap();
    (double, kubeconfig, dir)
}

fn kubeconfig_arg(path: &Path) -> String {
    format!("--kubeconfig={}", path.display())
}

/// The one place where a live cluster legitimately reports differently from its manifests: a
/// SPIFFE ID template that uses pod data renders the real pod's values live, and the workload's
/// name (the pod template's stand-in) offline. In the grid that is `wrong-id-template`, whose
/// template renders `{{ .PodMeta.Name }}`: check SC2302 names `spiffe://example.org/cart` offline
/// and `spiffe://example.org/cart-5f7d9-x1` (the pod) live. Returns the live report with those
/// pod names put back, and the codes that needed it.
fn undo_live_only_differences(case: &str, live: &Value) -> (Value, BTreeSet<String>) {
    let mut v = live.clone();
    let mut touched = BTreeSet::new();
    if case != "wrong-id-template" {
        return (v, touched);
    }
    for f in v["findings"].as_array_mut().unwrap() {
        if f["code"] != "SC2302" {
            continue;
        }
        let text = f["message"].as_str().unwrap();
        let back = text.replace("-5f7d9-x1;", ";");
        if back != text {
            touched.insert("SC2302".to_string());
            f["message"] = json!(back);
        }
    }
    (v, touched)
}

/// A report without what says where it was read from (the source, and each finding's origin:
/// `file:line` offline, `cluster <context>` live).
fn without_origins(report: &Value) -> Value {
    let mut v = report.clone();
    v.as_object_mut().unwrap().remove("source");
    for f in v["findings"].as_array_mut().unwrap() {
        f.as_object_mut().unwrap().remove("origin");
    }
    v
}

#[test]
fn live_cluster_reports_what_the_manifests_do() {
    let mut compared = 0;
    // hardened-chart-offline is rendered charts: no Nodes, Pods or status, nothing a live
    // cluster could hold.
    for case in cases().iter().filter(|c| c.as_str() != "hardened-chart-offline") {
        let f = fixture(case);
        let offline = spire_check(&["-f", f.path.to_str().unwrap(), "--now", NOW_ARG, "-o", "json"]);
        let (_double, kubeconfig, _dir) = live(&f);
        let online = spire_check(&[&kubeconfig_arg(&kubeconfig), "--now", NOW_ARG, "-o", "json"]);
        assert_eq!(online.code, offline.code, "{case}: exit code\n{}", online.stderr);
        let (a, b) = (without_origins(&offline.json()), without_origins(&online.json()));
        let (b, touched) = undo_live_only_differences(case, &b);
        if a != b {
            // Name the checks that differ rather than dumping two reports.
            let checks = |v: &Value| -> BTreeMap<String, Value> {
                checks(v)
                    .into_iter()
                    .map(|c| {
                        let code = c["code"].as_str().unwrap();
                        (code.to_string(), json!({"check": c, "findings": findings_of(v, code)}))
                    })
                    .collect()
            };
            let (ca, cb) = (checks(&a), checks(&b));
            let differing: Vec<String> = ca
                .iter()
                .filter(|(code, c)| cb.get(*code) != Some(c))
                .map(|(code, c)| {
                    format!("{code}\n  offline: {}\n  live:    {}", c, cb.get(code).unwrap_or(&Value::Null))
                })
                .collect();
            panic!("{case}: offline and live differ\n{}", differing.join("\n"));
        }
        let expected: BTreeSet<String> =
            if case == "wrong-id-template" { BTreeSet::from(["SC2302".to_string()]) } else { BTreeSet::new() };
        assert_eq!(touched, expected, "{case}: the live-only differences");
        compared += 1;
    }
    assert_eq!(compared, cases().len() - 1);
}

#[test]
fn live_identities_match_the_manifests() {
    let f = fixture("unmatched-pods");
    let offline = spire_check(&["identities", "-f", f.path.to_str().unwrap(), "-o", "json"]).expect_code(1);
    let (_double, kubeconfig, _dir) = live(&f);
    let online = spire_check(&["identities", &kubeconfig_arg(&kubeconfig), "-o", "json"]).expect_code(1);
    assert_eq!(offline.json(), online.json());
}

#[test]
fn exec_against_the_double_reports_exec_unavailable() {
    let f = fixture("healthy");
    let (double, kubeconfig, _dir) = live(&f);
    let kc = kubeconfig_arg(&kubeconfig);
    let r = spire_check(&[&kc, "--now", NOW_ARG, "--exec", "-o", "json"]);
    assert_eq!(r.code, 1, "{r:?}");
    let report = r.json();
    assert!(!success(&report));
    let all = checks(&report);
    let deep: Vec<&Value> = all.iter().copied().filter(|c| c["category"] == "spire-server-exec").collect();
    assert_eq!(deep.len(), 8, "{report:#}");
    assert_eq!((deep[0]["code"].as_str(), deep[0]["result"].as_str()), (Some("SC2701"), Some("error")));
    let exec = findings_of(&report, "SC2701");
    assert_eq!(exec.len(), 1, "{report:#}");
    let detail = detail(exec[0]);
    assert!(detail.starts_with("Pod/spire/spire-server-0: exec not available: HTTP 404"), "{detail}");
    assert!(exec[0]["docs"].as_str().unwrap().ends_with("/docs/findings.md#sc2701"));
    assert_eq!(exec[0]["category"], "spire-server-exec");
    for c in &deep[1..] {
        assert_eq!(c["result"], "skipped", "{c}");
        assert_eq!(skip_reason(&report, c["code"].as_str().unwrap()), "SC2701 (The SPIRE server pod accepts exec) failed");
    }
    // The built-in checks are untouched by --exec, and come first.
    let plain = spire_check(&[&kc, "--now", NOW_ARG, "-o", "json"]).expect_code(0).json();
    assert_eq!(checks(&plain)[..], all[..all.len() - deep.len()]);
    // The exec call reached the API server once (the healthcheck; nothing more after the 404),
    // asking for the server container and the healthcheck command.
    let calls = double.requests_matching("GET", "^/api/v1/namespaces/spire/pods/spire-server-0/exec$");
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].status, 404);
    assert!(
        calls[0].query.contains("container=spire-server") && calls[0].query.contains("command=healthcheck"),
        "{}",
        calls[0].query
    );
    // The table shows the failure like any other; suppressing it makes the run pass.
    let table = spire_check(&[&kc, "--now", NOW_ARG, "--exec"]).expect_code(1);
    assert!(table.stdout.contains("spire-server-exec\n-----------------\n× The SPIRE server pod accepts exec [SC2701]\n    Pod/spire/spire-server-0: exec not available: HTTP 404"), "{}", table.stdout);
    spire_check(&[&kc, "--now", NOW_ARG, "--exec", "--suppress", "SC2701"]).expect_code(0);
}
