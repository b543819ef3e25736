//! krew manifests: the committed ones follow krew's rules, and the release script fills a valid
//! manifest for the host platform whose sha256 matches the archive it built.

use e2e::{bin_dir, root, run, venv_tool};

fn validate(args: &[&str]) -> e2e::Run {
    let mut all = vec![root().join("krew-manifests/validate.py").to_str().unwrap().to_string()];
    all.extend(args.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    run(&venv_tool("python"), &refs, None, &[])
}

#[test]
fn committed_manifests_are_valid() {
    let r = validate(&[]).expect_code(0);
    for p in ["mesh-migrate", "spire-check", "dbiso"] {
        assert!(r.stdout.contains(&format!("{p}.yaml: ok")), "{}", r.stdout);
    }
}

#[test]
fn validator_rejects_a_broken_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("krew-manifests/dbiso.yaml")).unwrap();
    let broken = dir.path().join("dbiso.yaml");
    std::fs::write(&broken, text.replace("version: v0.1.0", "version: 0.1.0")).unwrap();
    let r = validate(&[broken.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(format!("{}{}", r.stdout, r.stderr).contains("version"), "{r:?}");
}

#[test]
fn release_script_fills_the_host_platform() {
    let out = tempfile::tempdir().unwrap();
    let path = format!("{}:{}", venv_tool("python").parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
    run(
        &root().join("krew-manifests/release.sh"),
        &["v0.1.0", "--no-build", "--bin-dir", bin_dir().to_str().unwrap(), "--out-dir", out.path().to_str().unwrap()],
        None,
        &[("PATH", &path)],
    )
    .expect_code(0);
    let manifest = std::fs::read_to_string(out.path().join("mesh-migrate.yaml")).unwrap();
    let archive = std::fs::read_dir(out.path())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".tar.gz") && p.file_name().unwrap().to_string_lossy().starts_with("mesh-migrate_"))
        .expect("mesh-migrate archive");
    let digest = run(std::path::Path::new("sha256sum"), &[archive.to_str().unwrap()], None, &[]).expect_code(0);
    let sha = digest.stdout.split_whitespace().next().unwrap();
    assert!(manifest.contains(&format!("sha256: \"{sha}\"")) || manifest.contains(&format!("sha256: {sha}")), "{manifest}");
}
