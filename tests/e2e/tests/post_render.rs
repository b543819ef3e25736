//! The post-renderer against real Helm: Helm 4's `install --dry-run=client` through the shipped
//! `postrenderer/v1` plugin (all three post-render strategies), and Helm 3's exec contract
//! (the rendered stream piped through the binary). Every output is schema-validated, checked for
//! YAML 1.1 meaning with PyYAML, and re-run for idempotence.

use std::path::Path;

use e2e::{bin, krew_path, root, run, venv_tool};

fn python(script: &str, args: &[&str]) -> e2e::Run {
    let path = krew_path();
    let mut all = vec![root().join("tests/tools").join(script).to_str().unwrap().to_string()];
    all.extend(args.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    run(&venv_tool("python"), &refs, None, &[("PATH", path.to_str().unwrap())])
}

/// The demo chart as `helm template` renders it (real Helm 4 engine).
fn rendered_demo() -> String {
    python("helm_render.py", &["charts/demo-platform", "demo", "pyairtable"]).expect_code(0).stdout
}

fn post_render(input: &str, args: &[&str]) -> e2e::Run {
    let mut all = vec!["post-render"];
    all.extend(args);
    run(&bin("mesh-migrate"), &all, Some(input), &[])
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

/// Strict schema validation (Kubernetes 1.37) of a stream, custom resources skipped.
fn validate(dir: &Path, text: &str) {
    let f = write(dir, "validate.yaml", text);
    let r = run(&root().join("tests/tools/validate.sh"), &[&f], None, &[("PATH", krew_path().to_str().unwrap())]);
    assert_eq!(r.code, 0, "schema validation failed:\n{}\n{}", r.stdout, r.stderr);
}

/// PyYAML (YAML 1.1) reads the output as the input, apart from what was injected.
fn same_meaning(dir: &Path, before: &str, after: &str) {
    let a = write(dir, "before.yaml", before);
    let b = write(dir, "after.yaml", after);
    python("yaml11_roundtrip.py", &["--ignore-injected", &a, &b]).expect_code(0);
}

#[test]
fn helm3_exec_contract_on_the_demo_chart() {
    let dir = tempfile::tempdir().unwrap();
    let input = rendered_demo();
    let out = post_render(&input, &[]).expect_code(0);
    assert!(out.stderr.is_empty(), "stderr must stay quiet without --report: {}", out.stderr);
    validate(dir.path(), &out.stdout);
    same_meaning(dir.path(), &input, &out.stdout);

    // Untouched documents are byte-identical: every Service and Secret chunk appears verbatim.
    for chunk in input.split("\n---\n").filter(|c| c.contains("\nkind: Service\n") || c.contains("\nkind: Secret\n")) {
        assert!(out.stdout.contains(chunk), "untouched document changed:\n{chunk}");
    }
    // Mesh labels on every long-running workload, Jobs opted out, probes, policies.
    assert_eq!(out.stdout.matches("sidecar.istio.io/inject: \"true\"").count(), 11, "{}", out.stdout);
    assert_eq!(out.stdout.matches("sidecar.istio.io/inject: \"false\"").count(), 2);
    assert!(out.stdout.contains("name: demo-postgres-llm-ingress"), "a database with one owner service is isolated");
    assert!(!out.stdout.contains("name: demo-postgres-core-ingress"), "a shared database without an owner is not");
    assert!(out.stdout.contains("startupProbe:"), "slow starter gets a startup probe");

    // Idempotent: post-rendering the output again gives the same bytes.
    let again = post_render(&out.stdout, &[]).expect_code(0);
    assert_eq!(again.stdout, out.stdout, "second run changed the output");
}

#[test]
fn ambient_mode_and_diff_and_report() {
    let input = rendered_demo();
    let out = post_render(&input, &["--mode", "ambient", "--report"]).expect_code(0);
    assert!(out.stdout.contains("istio.io/dataplane-mode: ambient"));
    assert!(!out.stdout.contains("sidecar.istio.io/inject"));
    assert!(out.stdout.contains("port: 15008"), "ambient policies admit HBONE");
    let dir = tempfile::tempdir().unwrap();
    validate(dir.path(), &out.stdout);
    // Each NetworkPolicy comes with the L4 AuthorizationPolicy ztunnel enforces, of the same name.
    // (The generated documents, as the post-renderer writes them: `kind:` and `metadata.name`
    // at fixed indentation.)
    let names = |kind: &str| -> std::collections::BTreeSet<String> {
        out.stdout
            .split("\n---\n")
            .filter(|d| d.starts_with("# Source: mesh-migrate/") && d.lines().any(|l| l == format!("kind: {kind}")))
            .filter_map(|d| d.lines().find_map(|l| l.strip_prefix("  name: ")).map(str::to_string))
            .collect()
    };
    let (nps, aps) = (names("NetworkPolicy"), names("AuthorizationPolicy"));
    assert!(!aps.is_empty() && aps.is_subset(&nps), "AuthorizationPolicies {aps:?} for NetworkPolicies {nps:?}");
    assert!(out.stderr.contains("NetworkPolicies generated"), "{}", out.stderr);
    let diff = post_render(&input, &["--diff"]).expect_code(0);
    assert!(diff.stdout.starts_with("--- rendered\n+++ post-rendered\n"), "{}", diff.stdout);
    assert!(diff.stdout.lines().any(|l| l == "+        sidecar.istio.io/inject: \"true\""), "{}", diff.stdout);
}

#[test]
fn bad_input_fails_with_nothing_on_stdout() {
    let cases: [(&str, &[&str], &str); 4] = [
        ("---\n# Source: c/templates/a.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n# Source: c/templates/b.yaml\nkind: [unclosed\n", &[], "c/templates/b.yaml"),
        ("---\n# Source: c/templates/a.yaml\n- just\n- a list\n", &[], "document 1 (# Source: c/templates/a.yaml)"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  name: b\n", &[], "duplicate"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n", &["--config", "/nonexistent/mesh.yaml"], "/nonexistent/mesh.yaml"),
    ];
    for (input, args, needle) in cases {
        let r = post_render(input, args);
        assert_eq!(r.code, 2, "{r:?}");
        assert!(r.stdout.is_empty(), "partial output on error: {}", r.stdout);
        assert!(r.stderr.contains(needle), "stderr should name {needle}: {}", r.stderr);
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "mesh.yaml", "mode: ambient\ninject:\n  probez: false\n");
    let r = post_render("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n", &["--config", &cfg]);
    assert_eq!(r.code, 2);
    assert!(r.stdout.is_empty());
    assert!(r.stderr.contains("probez"), "{}", r.stderr);
}

#[test]
fn helm4_bad_document_is_named_by_its_filename_annotation() {
    // Helm 4's post-renderer input: no `# Source:` lines, the file name in an annotation. The
    // second document breaks after its annotation, so it only can be found by reading lines.
    let input = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  annotations:\n    postrenderer.helm.sh/postrender-filename: 'demo/templates/cm.yaml'\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n  annotations:\n    postrenderer.helm.sh/postrender-filename: 'demo/templates/deploy.yaml'\nspec:\n  replicas: {1\n";
    let r = post_render(input, &[]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stdout.is_empty(), "partial output on error: {}", r.stdout);
    assert!(
        r.stderr.contains("document 2 (postrenderer.helm.sh/postrender-filename: demo/templates/deploy.yaml), line 15"),
        "stderr should name the document and its file: {}",
        r.stderr
    );
}

#[test]
fn a_shared_database_is_isolated_only_with_its_owner_named_and_then_cuts_the_other_service() {
    // The demo's `postgres-core` is used by two services, api-gateway and platform-services (and
    // by the release's pre-install hook Job `db-migrate`). Which one owns it cannot be told from
    // the names, so by default it is left open and the report says how to isolate it. Named as
    // api-gateway's, the policy admits api-gateway and the hook, and cuts platform-services on
    // purpose (reported). The exact engine of `kubectl dbiso explain` judges every output.
    let dir = tempfile::tempdir().unwrap();
    let input = rendered_demo();
    let explain = |text: &str, file: &str, src: &str| {
        let f = write(dir.path(), file, text);
        run(&bin("dbiso"), &["explain", src, "sts/postgres-core", "5432", "-f", &f, "-n", "pyairtable"], None, &[])
    };
    let plain = post_render(&input, &["--report"]).expect_code(0);
    assert!(!plain.stdout.contains("name: demo-postgres-core-ingress"), "a shared database without an owner is not isolated");
    assert!(
        plain.stderr.contains("StatefulSet/postgres-core") && plain.stderr.contains("databaseOwners"),
        "the report says why and how: {}",
        plain.stderr
    );
    for src in ["deploy/api-gateway", "deploy/platform-services", "job/db-migrate"] {
        assert_eq!(explain(&plain.stdout, "plain.yaml", src).code, 0, "{src} keeps its connection");
    }

    let cfg = write(dir.path(), "mesh.yaml", "networkPolicies:\n  databaseOwners: {postgres-core: api-gateway}\n");
    let with = post_render(&input, &["--config", &cfg, "--report", "-o", "json"]).expect_code(0);
    validate(dir.path(), &with.stdout);
    assert!(with.stdout.contains("name: demo-postgres-core-ingress"));
    let report: serde_json::Value = serde_json::from_str(&with.stderr).expect("--report -o json is JSON on stderr");
    let cuts = report["cuts"].as_array().unwrap();
    assert!(
        cuts.iter().any(|c| c["from"] == "Deployment/platform-services" && c["to"] == "StatefulSet/postgres-core" && c["ports"] == serde_json::json!([5432])),
        "{cuts:?}"
    );
    for (src, code) in [("deploy/api-gateway", 0), ("job/db-migrate", 0), ("deploy/platform-services", 1), ("deploy/worker", 1)] {
        let r = explain(&with.stdout, "with.yaml", src);
        assert_eq!(r.code, code, "{src}: {r:?}");
    }
    // Idempotent with the configuration too.
    assert_eq!(post_render(&with.stdout, &["--config", &cfg]).expect_code(0).stdout, with.stdout);
}

#[test]
fn passthrough_of_crds_lists_and_comments() {
    let input = "# leading comment\n---\n# only a comment\n---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: x.example.com\nspec: {group: example.com}\n---\napiVersion: v1\nkind: List\nitems: []\n---\n---\napiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec:\n  on: yes\n";
    let r = post_render(input, &[]).expect_code(0);
    assert_eq!(r.stdout, input, "nothing to inject: output must equal input byte for byte");
}

fn helm_install(strategy: &str, extra: &[&str]) -> serde_json::Value {
    let plugins = tempfile::tempdir().unwrap();
    // Install the shipped plugin directory the way `helm plugin install <dir>` lays it out.
    let dest = plugins.path().join("mesh-migrate");
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::copy(root().join("charts/helm-plugin/mesh-migrate/plugin.yaml"), dest.join("plugin.yaml")).unwrap();
    let mut args = vec![
        "charts/demo-platform",
        "demo",
        "pyairtable",
        "--post-renderer",
        "mesh-migrate",
        "--strategy",
        strategy,
        "--plugins-dir",
        plugins.path().to_str().unwrap(),
    ];
    args.extend(extra);
    let r = python("helm_install.py", &args);
    let json = r.json();
    assert_eq!(r.code, 0, "helm install failed: {}\n{}", r.stderr, json["error"]);
    json
}

#[test]
fn real_helm4_install_through_the_plugin_all_strategies() {
    let dir = tempfile::tempdir().unwrap();
    for strategy in ["combined", "separate", "nohooks"] {
        let json = helm_install(strategy, &[]);
        let manifest = json["manifest"].as_str().unwrap();
        validate(dir.path(), manifest);
        assert!(manifest.contains("sidecar.istio.io/inject: \"true\""), "{strategy}: not injected");
        // Generated policies appear exactly once, under the plugin's file name.
        let n = manifest.matches("name: demo-api-gateway-ingress\n").count();
        assert_eq!(n, 1, "{strategy}: demo-api-gateway-ingress appears {n} times");
        assert!(manifest.contains("# Source: mesh-migrate/networkpolicies.yaml"), "{strategy}");
        // Helm 4 strips its own file-name annotation again.
        assert!(!manifest.contains("postrenderer.helm.sh/postrender-filename"), "{strategy}");
        let invocations = json["post_renderer_invocations"].as_array().unwrap();
        assert!(invocations.iter().all(|i| i["exit_code"] == 0), "{strategy}: {invocations:?}");
        if strategy == "separate" {
            assert_eq!(invocations.len(), 2, "hooks and manifests post-rendered separately");
            let hook_run = invocations[0]["stdout"].as_str().unwrap();
            assert!(!hook_run.contains("kind: NetworkPolicy"), "nothing is generated from hooks");
        }
        let hooks = json["hooks"].as_array().unwrap();
        let migrate = hooks.iter().find(|h| h["kind"] == "Job").expect("db-migrate hook");
        let hook_manifest = migrate["manifest"].as_str().unwrap();
        if strategy == "nohooks" {
            assert!(!hook_manifest.contains("sidecar.istio.io/inject"), "nohooks: hooks bypass the post-renderer");
        } else {
            assert!(hook_manifest.contains("sidecar.istio.io/inject: \"false\""), "{strategy}: hook Job must stay completable");
        }
    }
}

#[test]
fn real_helm4_passes_flags_and_fails_whole_on_bad_config() {
    let json = helm_install("combined", &["--post-renderer-arg=--mode", "--post-renderer-arg=ambient"]);
    assert!(json["manifest"].as_str().unwrap().contains("istio.io/dataplane-mode: ambient"));
    let dir = tempfile::tempdir().unwrap();
    validate(dir.path(), json["manifest"].as_str().unwrap());

    let plugins = tempfile::tempdir().unwrap();
    let dest = plugins.path().join("mesh-migrate");
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::copy(root().join("charts/helm-plugin/mesh-migrate/plugin.yaml"), dest.join("plugin.yaml")).unwrap();
    let r = python(
        "helm_install.py",
        &["charts/demo-platform", "demo", "pyairtable", "--post-renderer", "mesh-migrate", "--plugins-dir",
          plugins.path().to_str().unwrap(), "--post-renderer-arg=--config", "--post-renderer-arg=/nonexistent.yaml"],
    );
    assert_eq!(r.code, 1, "Helm must refuse the release when the post-renderer fails");
    let json = r.json();
    assert!(json["manifest"].is_null(), "no partial release");
    let inv = &json["post_renderer_invocations"][0];
    assert_eq!(inv["exit_code"], 2);
    assert_eq!(inv["stdout"], "", "nothing on stdout");
    assert!(inv["stderr"].as_str().unwrap().contains("/nonexistent.yaml"));
}

/// The Flexdesk plan's probes (liveness /api/v2/health after 30 s every 10 s; readiness
/// /api/v2/ready after 5 s every 5 s; startup /api/v2/startup after 10 s every 5 s with 30
/// failures), as a post-render config, with a workload returned to TCP.
const PLAN_PROBES: &str = "probes:
  liveness: {path: /api/v2/health, initialDelaySeconds: 30, periodSeconds: 10}
  readiness: {path: /api/v2/ready, initialDelaySeconds: 5, periodSeconds: 5, timeoutSeconds: 2}
  startup: {path: /api/v2/startup, initialDelaySeconds: 10, periodSeconds: 5, failureThreshold: 30}
  overrides:
    airtable-gateway: {readinessPath: null, liveness: {type: none}}
";

/// Every document of a stream as JSON (PyYAML reads it; empty documents dropped).
fn documents(stream: &str) -> Vec<serde_json::Value> {
    let script = "import sys, json, yaml\nprint(json.dumps([d for d in yaml.safe_load_all(sys.stdin) if d], default=str))";
    let r = run(&venv_tool("python"), &["-c", script], Some(stream), &[]).expect_code(0);
    serde_json::from_str(&r.stdout).unwrap()
}

/// Check the probes the plan config adds, field by field, against the chart as rendered:
/// containers that had a probe keep it, data stores and gRPC servers get TCP, the rest the plan.
fn check_plan_probes(input: &str, output: &str) {
    use serde_json::{Value, json};
    let before = documents(input);
    let after = documents(output);
    let (mut http, mut tcp) = (0, 0);
    for doc in &after {
        let kind = doc["kind"].as_str().unwrap_or_default();
        if kind != "Deployment" && kind != "StatefulSet" {
            continue;
        }
        let name = doc["metadata"]["name"].as_str().unwrap();
        let original = before.iter().find(|d| d["kind"] == kind && d["metadata"]["name"] == name).expect("workload in the input");
        for (i, c) in doc["spec"]["template"]["spec"]["containers"].as_array().unwrap().iter().enumerate() {
            let was = &original["spec"]["template"]["spec"]["containers"][i];
            let Some(first) = c["ports"].as_array().and_then(|p| p.first()) else {
                for k in ["readinessProbe", "livenessProbe", "startupProbe"] {
                    assert!(c.get(k).is_none() || was.get(k).is_some(), "{name}: {k} without a port");
                }
                continue;
            };
            let port = first.get("name").cloned().unwrap_or_else(|| first["containerPort"].clone());
            let image = c["image"].as_str().unwrap_or_default();
            let not_http = ["postgres", "redis"].iter().any(|s| image.contains(s)) || port.as_str().is_some_and(|p| p.starts_with("grpc"));
            let expect = |k: &str, want: Option<Value>| {
                if was.get(k).is_some() {
                    assert_eq!(c[k], was[k], "{name}: existing {k} changed");
                } else {
                    assert_eq!(c.get(k), want.as_ref(), "{name}: {k}");
                }
            };
            if not_http {
                tcp += 1;
                expect("readinessProbe", Some(json!({"tcpSocket": {"port": port}, "initialDelaySeconds": 5, "periodSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 3})));
                expect("livenessProbe", Some(json!({"tcpSocket": {"port": port}, "initialDelaySeconds": 30, "periodSeconds": 10, "failureThreshold": 3})));
                // A liveness delay of 30 s marks a slow starter: a TCP startup probe.
                let delay = c["livenessProbe"]["initialDelaySeconds"].as_u64().unwrap_or(0);
                expect("startupProbe", (delay >= 30).then(|| json!({"tcpSocket": {"port": port}, "initialDelaySeconds": 10, "periodSeconds": 5, "failureThreshold": 30})));
            } else if name == "airtable-gateway" {
                expect("readinessProbe", Some(json!({"tcpSocket": {"port": port}, "initialDelaySeconds": 5, "periodSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 3})));
                expect("livenessProbe", None);
                expect("startupProbe", Some(json!({"httpGet": {"path": "/api/v2/startup", "port": port}, "initialDelaySeconds": 10, "periodSeconds": 5, "failureThreshold": 30})));
            } else {
                http += 1;
                expect("readinessProbe", Some(json!({"httpGet": {"path": "/api/v2/ready", "port": port}, "initialDelaySeconds": 5, "periodSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 3})));
                expect("livenessProbe", Some(json!({"httpGet": {"path": "/api/v2/health", "port": port}, "initialDelaySeconds": 30, "periodSeconds": 10, "failureThreshold": 3})));
                expect("startupProbe", Some(json!({"httpGet": {"path": "/api/v2/startup", "port": port}, "initialDelaySeconds": 10, "periodSeconds": 5, "failureThreshold": 30})));
            }
        }
    }
    assert!(http >= 3 && tcp >= 3, "the demo chart has HTTP services, data stores and a gRPC server: {http} HTTP, {tcp} TCP");
}

#[test]
fn plan_shaped_probes_through_both_helm_paths() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "probes.yaml", PLAN_PROBES);
    let input = rendered_demo();

    // Helm 3: the rendered stream through the binary.
    let out = post_render(&input, &["--config", &config, "--report"]).expect_code(0);
    validate(dir.path(), &out.stdout);
    check_plan_probes(&input, &out.stdout);
    assert!(out.stderr.contains("PostgreSQL data store: the global HTTP path is not applied"), "{}", out.stderr);
    let again = post_render(&out.stdout, &["--config", &config]).expect_code(0);
    assert_eq!(again.stdout, out.stdout, "second run changed the output");

    // Helm 4: the shipped plugin, the config passed through.
    let json = helm_install("combined", &["--post-renderer-arg=--config", &format!("--post-renderer-arg={config}")]);
    let manifest = json["manifest"].as_str().unwrap();
    validate(dir.path(), manifest);
    check_plan_probes(&input, manifest);

    // Invalid probe settings fail the run whole, naming the line and column.
    let bad = write(dir.path(), "bad.yaml", "probes:\n  livenessPath: \"\"\n");
    let r = post_render(&input, &["--config", &bad]).expect_code(2);
    assert!(r.stdout.is_empty());
    assert!(r.stderr.contains("line 2, column 17") && r.stderr.contains("cannot be empty"), "{}", r.stderr);
}
