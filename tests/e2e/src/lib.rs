//! Harness for end-to-end tests: run the built plugin binaries (building them once if needed),
//! with the real tools from the test venv (`target/venv`, made by `tests/tools/setup-venv.sh`) on
//! `PATH`, in a temporary directory.
//!
//! Missing real tools fail the test with instructions; nothing is skipped silently.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

pub mod spire;

pub const PLUGINS: [&str; 3] = ["mesh-migrate", "spire-check", "dbiso"];

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"))
}

/// Directory holding the freshly built `kubectl-*` binaries. Builds them once per test process
/// (`cargo build` is a no-op when they are up to date).
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(root()).args(["build", "--quiet", "--bins"]);
        for p in PLUGINS {
            cmd.args(["-p", p]);
        }
        let status = cmd.status().expect("running cargo build");
        assert!(status.success(), "building the plugin binaries failed");
        target_dir().join("debug")
    })
}

/// Path of a built plugin binary, e.g. `bin("mesh-migrate")`.
pub fn bin(plugin: &str) -> PathBuf {
    bin_dir().join(format!("kubectl-{plugin}{}", std::env::consts::EXE_SUFFIX))
}

/// Path of a tool from the test venv (`kubectl`, `python`, `kubernetes-validate`).
pub fn venv_tool(name: &str) -> PathBuf {
    let venv = std::env::var_os("MESHMOVE_VENV").map(PathBuf::from).unwrap_or_else(|| target_dir().join("venv"));
    let path = venv.join("bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `tests/tools/setup-venv.sh` (or the README's test command) to install the real test tools",
        path.display()
    );
    path
}

/// A krew-style installation of the three plugins, made from the real release archives:
/// `krew-manifests/release.sh --no-build` packages the freshly built binaries, the archives are
/// unpacked into `store/<plugin>/`, and `bin/` gets the links krew makes (`kubectl-mesh_migrate`:
/// kubectl maps `kubectl mesh-migrate` to that name) plus the completion helpers the manifests'
/// caveats tell users to link. Returns the `bin/` directory.
///
/// The installation lives under the target directory, one per test binary (`target/tmp/krew-dbiso`
/// for `tests/dbiso.rs`), replaced on each run and without the archives once unpacked, so repeated
/// runs do not pile up copies of the binaries.
pub fn krew_bin() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("test binary path");
        let stem = exe.file_stem().expect("test binary name").to_string_lossy().into_owned();
        // Cargo names test binaries `<file>-<hash>`; the hash changes with every build.
        let test_name = stem.rsplit_once('-').map_or(stem.as_str(), |(name, _)| name);
        let root_dir = target_dir().join("tmp").join(format!("krew-{test_name}"));
        let _ = std::fs::remove_dir_all(&root_dir);
        let out = root_dir.join("artifacts");
        std::fs::create_dir_all(&out).unwrap();
        let python_dir = venv_tool("python").parent().unwrap().to_path_buf();
        let path = std::env::join_paths(std::iter::once(python_dir).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()))).unwrap();
        let r = run(
            &root().join("krew-manifests/release.sh"),
            &["v0.1.0", "--no-build", "--bin-dir", bin_dir().to_str().unwrap(), "--out-dir", out.to_str().unwrap()],
            None,
            &[("PATH", path.to_str().unwrap())],
        );
        assert_eq!(r.code, 0, "release.sh failed\n{}\n{}", r.stdout, r.stderr);
        let bin = root_dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for p in PLUGINS {
            let store = root_dir.join("store").join(p);
            std::fs::create_dir_all(&store).unwrap();
            let archive = std::fs::read_dir(&out)
                .unwrap()
                .filter_map(Result::ok)
                .map(|e| e.path())
                .find(|f| f.file_name().unwrap().to_string_lossy().starts_with(&format!("{p}_")) && f.extension().is_some_and(|e| e == "gz"))
                .unwrap_or_else(|| panic!("no archive for {p} in {}", out.display()));
            let st = Command::new("tar").arg("-xzf").arg(&archive).arg("-C").arg(&store).status().unwrap();
            assert!(st.success(), "unpacking {}", archive.display());
            let us = p.replace('-', "_");
            std::os::unix::fs::symlink(store.join(format!("kubectl-{p}")), bin.join(format!("kubectl-{us}"))).unwrap();
            std::os::unix::fs::symlink(store.join(format!("kubectl_complete-{us}")), bin.join(format!("kubectl_complete-{us}"))).unwrap();
        }
        std::fs::remove_dir_all(&out).unwrap();
        bin
    })
}

/// PATH with the krew-style plugin links first, then the venv tools, then the inherited PATH.
pub fn krew_path() -> std::ffi::OsString {
    let mut dirs = vec![krew_bin().to_path_buf(), venv_tool("python").parent().unwrap().to_path_buf()];
    dirs.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
    std::env::join_paths(dirs).expect("PATH")
}

/// Result of running a command.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Self {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Assert the exit code, showing both streams when it differs.
    #[track_caller]
    pub fn expect_code(self, code: i32) -> Self {
        assert_eq!(self.code, code, "unexpected exit code\n--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr);
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// Run a program with args and optional stdin, with a clean, predictable environment:
/// no colours, no user kubeconfig unless the test passes one. The working directory is the
/// workspace root, so fixture paths in output are stable.
pub fn run(program: &Path, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(program);
    cmd.current_dir(root())
        .args(args)
        .env("NO_COLOR", "1")
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env("HOME", std::env::temp_dir())
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    if let Some(input) = stdin {
        use std::io::Write;
        let mut pipe = child.stdin.take().unwrap();
        let input = input.to_string();
        // Write on a thread so a child that does not read stdin cannot dead-lock the test.
        std::thread::spawn(move || {
            let _ = pipe.write_all(input.as_bytes());
        });
    }
    Run::from(child.wait_with_output().expect("waiting for child"))
}

/// Run a plugin binary directly.
/// A kubeconfig for an API double, in a temporary directory kept while the value lives.
pub struct DoubleEnv {
    _dir: tempfile::TempDir,
    pub kubeconfig: String,
}

impl DoubleEnv {
    /// A kubeconfig for `double` with `namespace` as its context's namespace.
    pub fn new(double: &apiserver_double::BlockingDouble, namespace: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = double.write_kubeconfig(dir.path(), namespace).unwrap().to_str().unwrap().to_string();
        DoubleEnv { _dir: dir, kubeconfig }
    }

    /// `kubectl-mesh-migrate ARGS` against the double, as user `tester`.
    pub fn mesh_migrate(&self, args: &[&str]) -> Run {
        run(&bin("mesh-migrate"), args, None, &[("KUBECONFIG", &self.kubeconfig), ("USER", "tester")])
    }
}

pub fn plugin(name: &str, args: &[&str]) -> Run {
    run(&bin(name), args, None, &[])
}

/// A fixture path under the workspace root.
pub fn fixture(rel: &str) -> PathBuf {
    root().join(rel)
}

/// Compare `actual` with the golden file `tests/e2e/golden/<name>`; with `UPDATE_GOLDEN=1` write
/// it instead. A mismatch shows a line diff.
#[track_caller]
pub fn golden(name: &str, actual: &str) {
    let path = root().join("tests/e2e/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1 to create it)", path.display()));
    if expected != actual {
        let mut diff = String::new();
        for (i, (e, a)) in expected.lines().zip(actual.lines()).enumerate() {
            if e != a {
                diff.push_str(&format!("line {}:\n  expected: {e}\n  actual:   {a}\n", i + 1));
            }
        }
        panic!(
            "{} differs from the output ({} vs {} lines); rerun with UPDATE_GOLDEN=1 if the change is intended\n{diff}",
            path.display(),
            expected.lines().count(),
            actual.lines().count()
        );
    }
}

/// Strict schema validation of a YAML or JSON stream with `tests/tools/validate.sh`: Kubernetes
/// kinds against Kubernetes 1.37 (kubernetes-validate), Istio kinds (API groups under `istio.io`)
/// and Gateway API kinds (`gateway.networking.k8s.io`) against their CRD schemas
/// (`tests/tools/validate_istio.mjs`), unknown fields failing in all; other custom resources
/// are reported as SKIP. Panics with the report when an object
/// fails; returns the report (one `OK`/`SKIP` line per object, then `validated N objects: ...`).
#[track_caller]
pub fn validate_stream(text: &str) -> Run {
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("validate.yaml");
    std::fs::write(&file, text).expect("writing the stream to validate");
    let r = run(&root().join("tests/tools/validate.sh"), &[file.to_str().unwrap()], None, &[]);
    assert_eq!(r.code, 0, "schema validation failed:\n{}\n{}", r.stdout, r.stderr);
    r
}

/// Validate `doc` against one shape (`$defs` entry) of the published output schema
/// `docs/schemas/meshmove-output.schema.json`, with the `jsonschema` package of the test venv
/// (Draft 2020-12; `tests/tools/validate_json.py`). Panics with every violation and its path.
#[track_caller]
pub fn validate_shape(shape: &str, doc: &serde_json::Value) {
    let python = venv_tool("python");
    let script = root().join("tests/tools/validate_json.py");
    let r = run(&python, &[script.to_str().unwrap(), shape, "-"], Some(&doc.to_string()), &[]);
    assert_eq!(r.code, 0, "not a valid `{shape}` of docs/schemas/meshmove-output.schema.json:\n{}{}\n{doc:#}", r.stdout, r.stderr);
}

/// How many objects a [`validate_stream`] report checked against Istio's schemas.
pub fn istio_validated(report: &Run) -> usize {
    report.stdout.lines().filter(|l| l.starts_with("OK ") && l.contains(" (@kubernetes-models/istio ")).count()
}

/// How many objects a [`validate_stream`] report checked against Gateway API's schemas.
pub fn gateway_api_validated(report: &Run) -> usize {
    report.stdout.lines().filter(|l| l.starts_with("OK ") && l.contains(" (@kubernetes-models/gateway-api ")).count()
}

/// [`validate_stream`] of objects (e.g. read back from the API double), one JSON document each;
/// asserts that every Istio object among them was checked against Istio's schemas and every
/// Gateway API object against Gateway API's, and returns how many Istio objects there were.
#[track_caller]
pub fn validate_objects(objects: &[serde_json::Value]) -> usize {
    let stream: String = objects.iter().map(|o| format!("---\n{o}\n")).collect();
    let report = validate_stream(&stream);
    let group = |o: &serde_json::Value| o["apiVersion"].as_str().and_then(|v| v.rsplit_once('/')).map(|(g, _)| g.to_string()).unwrap_or_default();
    let istio = objects.iter().map(group).filter(|g| g == "istio.io" || g.ends_with(".istio.io")).count();
    assert_eq!(istio_validated(&report), istio, "not every Istio object was checked:\n{}", report.stdout);
    let gateway_api = objects.iter().map(group).filter(|g| g == "gateway.networking.k8s.io" || g == "gateway.networking.x-k8s.io").count();
    assert_eq!(gateway_api_validated(&report), gateway_api, "not every Gateway API object was checked:\n{}", report.stdout);
    istio
}

/// Objects without what differs between two runs or what the server sets by itself: the time a
/// restart wrote, uid, creation time, the Deployment controller's revision counter.
pub fn normal_object(o: &serde_json::Value) -> serde_json::Value {
    let mut o = o.clone();
    o.as_object_mut().unwrap().shift_remove("status");
    let m = o["metadata"].as_object_mut().unwrap();
    for k in ["uid", "creationTimestamp", "resourceVersion", "managedFields", "generation"] {
        m.shift_remove(k);
    }
    if let Some(a) = m.get_mut("annotations").and_then(serde_json::Value::as_object_mut) {
        a.shift_remove("deployment.kubernetes.io/revision");
        if a.is_empty() {
            m.shift_remove("annotations");
        }
    }
    if let Some(t) = o.pointer_mut("/spec/template/metadata/annotations/kubectl.kubernetes.io~1restartedAt") {
        *t = serde_json::json!("<restarted>");
    }
    o
}
