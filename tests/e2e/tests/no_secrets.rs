//! No secret on any stream: a unique secret is planted in every kind of input the plugins read
//! (manifests, kubeconfig, post-render's stream and configuration, traffic profiles, SPIRE's
//! server.conf) on the paths that print something about it (errors, `--diff`, reports), and
//! neither stdout nor stderr of any of the real binaries may carry it.

use std::path::Path;

use e2e::{Run, bin, run};

/// Planted secrets: one per input kind, so a leak names its path.
const IN_MANIFEST: &str = "S3cretInManifest7731";
const IN_KUBECONFIG: &str = "S3cretBearerToken8842";
const IN_DIFF_DATA: &str = "S3cretDiffData9953";
const IN_DIFF_STRINGDATA: &str = "S3cretDiffStringData1064";
const IN_DIFF_COMMENT: &str = "S3cretDiffComment2175";
const IN_CONFIG: &str = "S3cretPostRenderConfig3286";
const IN_PROFILE: &str = "S3cretTrafficProfile4397";
const IN_SERVER_CONF: &str = "S3cretServerConf5408";
const ALL: [&str; 8] = [IN_MANIFEST, IN_KUBECONFIG, IN_DIFF_DATA, IN_DIFF_STRINGDATA, IN_DIFF_COMMENT, IN_CONFIG, IN_PROFILE, IN_SERVER_CONF];

/// The secret as the input encodes it too (base64 in `data`).
fn base64(s: &str) -> String {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in s.as_bytes().chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[track_caller]
fn assert_clean(what: &str, r: &Run) {
    for secret in ALL {
        for (stream, text) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
            assert!(!text.contains(secret), "{what}: {secret} on {stream}\n--- stdout\n{}\n--- stderr\n{}", r.stdout, r.stderr);
            let encoded = base64(secret);
            assert!(!text.contains(&encoded[..encoded.len() - 4]), "{what}: base64 of {secret} on {stream}\n{text}");
        }
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn a_yaml_error_names_file_line_column_and_key_never_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let commands: &[(&str, &[&str])] = &[
        ("mesh-migrate", &["precheck"]),
        ("mesh-migrate", &["status"]),
        ("dbiso", &["audit"]),
        ("dbiso", &["reach"]),
        ("dbiso", &["generate"]),
        ("spire-check", &["check"]),
        ("spire-check", &["identities"]),
    ];
    for tag in ["!!int", "!!bool", "!!float", "!!null", "!!timestamp", "!!binary"] {
        let text = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: other, namespace: shop}}\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: shop\nstringData:\n  password: {tag} {IN_MANIFEST}%\n"
        );
        let file = write(dir.path(), "secret.yaml", &text);
        for (name, args) in commands {
            for from_stdin in [false, true] {
                let mut all = args.to_vec();
                all.extend(["-f", if from_stdin { "-" } else { file.as_str() }]);
                let r = run(&bin(name), &all, from_stdin.then_some(text.as_str()), &[]);
                let what = format!("{tag}: kubectl {name} {}", all.join(" "));
                assert_eq!(r.code, 2, "{what}: {r:?}");
                assert_clean(&what, &r);
                let place = if from_stdin { "stdin" } else { file.as_str() };
                let located = format!("{place}: document 2, line 11, column 13: at key stringData.password: the value is tagged {tag}");
                assert!(r.stderr.contains(&located), "{what}: {}", r.stderr);
            }
        }
        // The post-renderer reads the same stream from Helm.
        let r = run(&bin("mesh-migrate"), &["post-render"], Some(&text), &[]);
        assert_eq!(r.code, 2, "{tag} post-render: {r:?}");
        assert!(r.stdout.is_empty());
        assert!(r.stderr.contains("document 2, line 11, column 13: at key stringData.password"), "{}", r.stderr);
        assert_clean(&format!("{tag}: post-render"), &r);
    }
}

#[test]
fn a_malformed_kubeconfig_is_located_without_a_source_excerpt() {
    let dir = tempfile::tempdir().unwrap();
    // A syntax error two lines below the token, and a type error on the token's own line.
    let broken = [
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: 'http://127.0.0.1:9'}}\nusers:\n- name: u\n  user:\n    token: {IN_KUBECONFIG}\n    extra: [unclosed\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\n"
        ),
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: 'http://127.0.0.1:9'\n    insecure-skip-tls-verify: {IN_KUBECONFIG}\n"
        ),
    ];
    let commands: &[(&str, &[&str])] = &[
        ("mesh-migrate", &["precheck"]),
        ("mesh-migrate", &["status"]),
        ("mesh-migrate", &["enable", "--dry-run=client"]),
        ("mesh-migrate", &["expose", "--domain", "shop.local", "--dry-run=client"]),
        ("mesh-migrate", &["mtls", "strict", "--dry-run=client"]),
        ("mesh-migrate", &["rollback", "--dry-run=client"]),
        ("mesh-migrate", &["ns", "status", "shop"]),
        ("dbiso", &["audit"]),
        ("dbiso", &["reach"]),
        ("dbiso", &["generate"]),
        ("dbiso", &["apply", "--dry-run=server"]),
        ("dbiso", &["explain", "deployment/a", "deployment/b", "5432"]),
        ("spire-check", &["check"]),
        ("spire-check", &["identities"]),
    ];
    for (i, text) in broken.iter().enumerate() {
        let kc = write(dir.path(), &format!("kubeconfig-{i}"), text);
        for (name, args) in commands {
            let mut all = args.to_vec();
            all.extend(["-n", "shop", "--kubeconfig", kc.as_str()]);
            let r = run(&bin(name), &all, None, &[]);
            let what = format!("kubeconfig {i}: kubectl {name} {}", args.join(" "));
            assert_eq!(r.code, 3, "{what}: {r:?}");
            assert_clean(&what, &r);
            assert!(r.stderr.contains(&format!("cannot load kubeconfig {kc}: invalid YAML at line ")), "{what}: {}", r.stderr);
            assert_eq!(r.stderr.lines().count(), 1, "{what}: one line, no excerpt: {}", r.stderr);
        }
    }
}

#[test]
fn post_render_diff_masks_secrets_beside_the_changes() {
    let stream = format!(
        "---\n# Source: shop/templates/secret.yaml\n# {IN_DIFF_COMMENT}\napiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: shop\ntype: Opaque\ndata:\n  password: {}\nstringData:\n  url: postgres://app:{IN_DIFF_STRINGDATA}@db/app\n---\n# Source: shop/templates/api.yaml\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n  namespace: shop\n  labels: {{app: api, app.kubernetes.io/instance: shop}}\nspec:\n  selector: {{matchLabels: {{app: api}}}}\n  template:\n    metadata:\n      labels: {{app: api, app.kubernetes.io/instance: shop}}\n    spec:\n      containers:\n      - name: api\n        image: shop/api:1\n        ports: [{{containerPort: 8080}}]\n        envFrom: [{{secretRef: {{name: db}}}}]\n---\n# Source: shop/templates/secret2.yaml\napiVersion: v1\nkind: Secret\nmetadata:\n  name: other\n  namespace: shop\nstringData:\n  token: {IN_DIFF_STRINGDATA}-2\n",
        base64(IN_DIFF_DATA)
    );
    for args in [&["post-render", "--diff"][..], &["post-render", "--diff", "--report"], &["post-render", "--diff", "--mode", "ambient"]] {
        let r = run(&bin("mesh-migrate"), args, Some(&stream), &[]);
        assert_eq!(r.code, 0, "{args:?}: {r:?}");
        assert_clean(&format!("{args:?}"), &r);
        // The changes show, with the Secrets around them masked as kubectl diff masks them.
        assert!(r.stdout.contains("+        sidecar.istio.io/inject: \"true\"") || r.stdout.contains("istio.io/dataplane-mode"), "{}", r.stdout);
        assert!(r.stdout.contains("password: \"***\"") || r.stdout.contains("token: \"***\""), "{args:?}: no masked context\n{}", r.stdout);
    }
    // Without --diff the manifests are the output, unchanged Secrets included: that is the job.
    let r = run(&bin("mesh-migrate"), &["post-render"], Some(&stream), &[]).expect_code(0);
    assert!(r.stdout.contains(IN_DIFF_STRINGDATA) && r.stderr.is_empty());
}

#[test]
fn configuration_errors_name_the_place_not_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n";
    for (i, text) in [
        format!("mode: {IN_CONFIG}\n"),
        format!("mode: sidecar\nrevision: [{IN_CONFIG}\n"),
        format!("inject:\n  labels: {IN_CONFIG}\n"),
        format!("probes:\n  periodSeconds: {IN_CONFIG}\n"),
    ]
    .iter()
    .enumerate()
    {
        let cfg = write(dir.path(), &format!("config-{i}.yaml"), text);
        let r = run(&bin("mesh-migrate"), &["post-render", "--config", &cfg], Some(manifest), &[]);
        assert_eq!(r.code, 2, "config {i}: {r:?}");
        assert!(r.stdout.is_empty());
        assert!(r.stderr.contains(&format!("config {cfg}: invalid YAML at line ")), "config {i}: {}", r.stderr);
        assert_clean(&format!("config {i}"), &r);
    }
    for (i, text) in [format!("consecutive5xxErrors: {IN_PROFILE}\n"), format!("interval: [{IN_PROFILE}\n")].iter().enumerate() {
        let profile = write(dir.path(), &format!("profile-{i}.yaml"), text);
        let r = run(&bin("mesh-migrate"), &["enable", "-n", "shop", "--profile", &profile, "--dry-run=client"], None, &[]);
        assert_eq!(r.code, 2, "profile {i}: {r:?}");
        assert!(r.stderr.contains(&format!("traffic profile {profile}: invalid YAML at line ")), "profile {i}: {}", r.stderr);
        assert_clean(&format!("profile {i}"), &r);
    }
}

#[test]
fn a_broken_server_conf_is_reported_without_its_text() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: spire-server, namespace: spire}}\ndata:\n  server.conf: |\n    server {{\n      trust_domain = \"example.org\"\n    }}\n    plugins {{\n      DataStore \"sql\" {{\n        plugin_data {{\n          connection_string = \"postgres://spire:{IN_SERVER_CONF}@db/spire\" ]\n        }}\n      }}\n    }}\n---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata: {{name: spire-server, namespace: spire, labels: {{app: spire-server}}}}\nspec:\n  selector: {{matchLabels: {{app: spire-server}}}}\n  template:\n    metadata: {{labels: {{app: spire-server}}}}\n    spec:\n      containers:\n      - name: spire-server\n        image: ghcr.io/spiffe/spire-server:1.9.0\n        volumeMounts: [{{name: cfg, mountPath: /run/spire/config}}]\n      volumes: [{{name: cfg, configMap: {{name: spire-server}}}}]\n"
    );
    let file = write(dir.path(), "spire.yaml", &text);
    for format in ["table", "wide", "json", "yaml"] {
        let r = run(&bin("spire-check"), &["-f", &file, "-o", format], None, &[]);
        assert_eq!(r.code, 1, "{format}: {r:?}");
        assert!(r.stdout.contains("server.conf:7:") && r.stdout.contains(": not valid HCL: "), "{format}: {}", r.stdout);
        assert_clean(&format!("spire-check -o {format}"), &r);
    }
}
