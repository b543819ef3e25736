//! End-to-end cost of `kubectl dbiso` on a large cluster, and the generator of the cluster
//! states `tests/bench/dbiso.sh` measures. By default 1,000 workloads in 50 namespaces (400 of
//! them databases), 10,000 pods, 1,000 Services, 1,000 NetworkPolicies, plus the Secrets,
//! ConfigMaps, ReplicaSets and Namespaces that go with them; `--workloads N` scales all of it
//! (10,000 workloads: 500 namespaces, 100,000 pods, 10,000 NetworkPolicies).
//!
//! * `audit -A -o json` against the API double (in this process, over HTTP on 127.0.0.1, pages of
//!   500), run as the release binary under `/usr/bin/time -v`: wall time, peak RSS, and the LIST
//!   requests per kind from the double's request log (pagination counts as one list);
//! * `reach -f <file> -A -o json` and `audit -f <file>` over the same objects written to one file.
//!
//! Run: `cargo bench -p dbiso --bench audit [-- --workloads N]` (prints a table; best of 3 runs
//! each). `-- --write DIR` only writes the cluster as `kubectl get KIND -A -o json` lists, one file
//! per kind, and stops. With `DBISO_BENCH_KEEP=<dir>` the cluster file (`cluster.yaml`) stays in
//! `<dir>` for profiling; with `DBISO_BENCH_PROFILE=<command>` (e.g. `heaptrack -o /tmp/audit`) one
//! live audit runs under that command and the bench stops; with `DBISO_BENCH_BIN=<path>` another
//! build of `kubectl-dbiso` is measured, and `DBISO_BENCH_RUNS=<n>` sets the runs of each command
//! (best of 3 by default). `DBISO_BENCH_PHASES=<dir>` times the phases of an audit of a written
//! cluster state in process with their resident memory (see `audit/phases.rs`).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use apiserver_double::{Double, DoubleOptions};
use serde_json::{Value, json};

#[path = "audit/phases.rs"]
mod phases;

/// Workloads per namespace; the cluster has `workloads / WORKLOADS_PER_NS` namespaces.
const WORKLOADS_PER_NS: usize = 20;
const PODS_PER_WORKLOAD: usize = 10;
/// NetworkPolicies per namespace: one per workload.
const POLICIES_PER_NS: usize = 20;
const TIERS: [&str; 5] = ["web", "api", "db", "cache", "worker"];
/// Namespaces per team (the `team` namespace label that cross-namespace rules select).
const NAMESPACES_PER_TEAM: usize = 5;
/// Namespaces without a default-deny ingress policy, whatever the cluster's size ("sandbox"
/// namespaces: every workload of the cluster reaches their pods).
const OPEN_NAMESPACES: [usize; 2] = [1, 2];

/// Deterministic xorshift so every run measures the same cluster.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn ns_name(i: usize) -> String {
    format!("team-{i:03}")
}

fn team(n: usize) -> String {
    format!("t{}", n / NAMESPACES_PER_TEAM)
}

/// Namespace `n`'s pods are in `10.A.B.0/24` (`A.B` = `n` in base 256), 200 addresses of it used.
fn ns_net(n: usize) -> (usize, usize) {
    (n / 256, n % 256)
}

fn labels(app: &str, tier: &str, w: usize) -> Value {
    json!({"app.kubernetes.io/name": app, "app.kubernetes.io/part-of": "shop", "tier": tier, "version": format!("v{}", w % 3)})
}

/// The pod template of a workload: image and named ports by tier, database references by env.
fn template(app: &str, tier: &str, w: usize) -> Value {
    let (image, ports, env) = match tier {
        "web" => ("acme/web:3.1", json!([{"name": "http", "containerPort": 8080}]), json!([{"name": "API_URL", "value": format!("http://api-{}:9090", (w + 19) % 20)}])),
        "api" => (
            "acme/api:7.0",
            json!([{"name": "http", "containerPort": 9090}, {"name": "grpc", "containerPort": 9091}]),
            json!([{"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": format!("{app}-db"), "key": "url"}}}]),
        ),
        "db" if w.is_multiple_of(2) => ("postgres:16", json!([{"name": "db", "containerPort": 5432}, {"name": "metrics", "containerPort": 9187}]), json!([])),
        "db" => ("mysql:8.4", json!([{"name": "db", "containerPort": 3306}]), json!([])),
        "cache" => ("redis:7", json!([{"name": "redis", "containerPort": 6379}]), json!([])),
        _ => ("acme/worker:7.0", json!([{"name": "metrics", "containerPort": 9100}]), json!([{"name": "QUEUE_REDIS_HOST", "valueFrom": {"configMapKeyRef": {"name": "queues", "key": "host"}}}])),
    };
    json!({
        "metadata": {"labels": labels(app, tier, w)},
        "spec": {"containers": [{"name": tier, "image": image, "ports": ports, "env": env,
                                 "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}}}]}
    })
}

/// Every object of a cluster of `workloads` workloads (a multiple of 20), in load order:
/// `workloads / 20` namespaces of 20 workloads (7 Deployments with their ReplicaSets, 3
/// StatefulSets per 10; 8 of the 20 run postgres, mysql or redis), 10 running pods each (with
/// pod IPs), a Service each, 20 NetworkPolicies per namespace, the Secrets with connection
/// strings and a ConfigMap. Everything grows in proportion to `workloads`, and so does the number
/// of connections the policies allow: rules select peers in the policy's namespace, in one named
/// namespace or in the namespaces of one team (5 namespaces), never a fixed share of the cluster,
/// except the two namespaces that isolate nothing (whose pods every workload reaches).
fn cluster(workloads: usize) -> Vec<Value> {
    let namespaces = (workloads / WORKLOADS_PER_NS).max(1);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::new();
    for n in 0..namespaces {
        let ns = ns_name(n);
        let (a, b) = ns_net(n);
        out.push(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "labels": {"team": team(n), "env": if n % 2 == 0 { "prod" } else { "dev" }}}}));
        out.push(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "queues", "namespace": ns},
            "data": {"host": format!("cache-{}", 3)}}));
        for w in 0..WORKLOADS_PER_NS {
            let tier = TIERS[w % TIERS.len()];
            let app = format!("{tier}-{w}");
            let tpl = template(&app, tier, w);
            let selector = json!({"matchLabels": {"app.kubernetes.io/name": app}});
            let stateful = matches!(tier, "db" | "cache") && w % 10 != 8;
            let uid = format!("uid-{n}-{w}");
            let (owner_kind, owner_name) = if stateful {
                out.push(json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": app, "namespace": ns, "uid": uid},
                    "spec": {"serviceName": app, "replicas": PODS_PER_WORKLOAD, "selector": selector, "template": tpl}}));
                ("StatefulSet", app.clone())
            } else {
                let hash = format!("{:08x}", rng.next() as u32);
                let rs = format!("{app}-{hash}");
                out.push(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": app, "namespace": ns, "uid": uid},
                    "spec": {"replicas": PODS_PER_WORKLOAD, "selector": selector, "template": tpl}}));
                let mut rs_tpl = tpl.clone();
                rs_tpl["metadata"]["labels"]["pod-template-hash"] = json!(hash);
                out.push(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": rs, "namespace": ns, "uid": format!("{uid}-rs"),
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": app, "uid": uid, "controller": true}]},
                    "spec": {"replicas": PODS_PER_WORKLOAD, "selector": selector, "template": rs_tpl}}));
                ("ReplicaSet", rs)
            };
            for p in 0..PODS_PER_WORKLOAD {
                let mut pod = tpl.clone();
                let name = if stateful { format!("{app}-{p}") } else { format!("{owner_name}-{p:05}") };
                pod["apiVersion"] = json!("v1");
                pod["kind"] = json!("Pod");
                pod["metadata"]["name"] = json!(name);
                pod["metadata"]["namespace"] = json!(ns);
                pod["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": owner_kind, "name": owner_name, "uid": "u", "controller": true}]);
                if let Some(hash) = owner_name.strip_prefix(&format!("{app}-")).filter(|_| !stateful) {
                    pod["metadata"]["labels"]["pod-template-hash"] = json!(hash);
                }
                if stateful {
                    pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] = json!(name);
                }
                let ip = format!("10.{a}.{b}.{}", w * PODS_PER_WORKLOAD + p + 1);
                pod["spec"]["nodeName"] = json!(format!("node-{}", rng.below(namespaces.div_ceil(2))));
                pod["status"] = json!({"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]});
                out.push(pod);
            }
            let port = match tier {
                "web" => 8080,
                "api" => 9090,
                "db" if w % 2 == 0 => 5432,
                "db" => 3306,
                "cache" => 6379,
                _ => 9100,
            };
            out.push(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": app, "namespace": ns},
                "spec": {"selector": {"app.kubernetes.io/name": app}, "ports": [{"port": port, "targetPort": port}]}}));
            if tier == "api" {
                // Each API reads the database one workload on: db-(w+1).
                let db = format!("db-{}", w + 1);
                out.push(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": format!("{app}-db"), "namespace": ns},
                    "type": "Opaque", "stringData": {"url": format!("postgresql://{app}:bench-password@{db}:5432/{app}")}}));
            }
        }
        let mut policies: Vec<(String, Value)> = Vec::new();
        for w in (0..WORKLOADS_PER_NS).filter(|w| TIERS[w % TIERS.len()] == "db") {
            policies.push((
                format!("db-{w}-isolation"),
                json!({"podSelector": {"matchLabels": {"app.kubernetes.io/name": format!("db-{w}")}}, "policyTypes": ["Ingress"],
                       "ingress": [{"from": [{"podSelector": {"matchLabels": {"tier": "api"}}}], "ports": [{"port": "db"}]}]}),
            ));
        }
        if !OPEN_NAMESPACES.contains(&n) {
            policies.push(("default-deny-ingress".into(), json!({"podSelector": {}, "policyTypes": ["Ingress"]})));
        }
        if n % 3 == 0 {
            policies.push(("default-deny-egress".into(), json!({"podSelector": {}, "policyTypes": ["Egress"]})));
            policies.push((
                "allow-dns".into(),
                json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [
                    {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                             "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                     "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}]}),
            ));
            policies.push((
                "api-egress".into(),
                json!({"podSelector": {"matchLabels": {"tier": "api"}}, "policyTypes": ["Egress"],
                       "egress": [{"to": [{"podSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["db", "cache"]}]}}]},
                                  {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}], "ports": [{"port": 443}]}]}),
            ));
        }
        policies.push((
            "allow-monitoring".into(),
            json!({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": team(n)}},
                                                              "podSelector": {"matchLabels": {"tier": "worker"}}}],
                                                   "ports": [{"port": "metrics"}]}]}),
        ));
        policies.push((
            "web-from-internet".into(),
            json!({"podSelector": {"matchLabels": {"tier": "web"}},
                   "ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}], "ports": [{"port": "http"}]}]}),
        ));
        while policies.len() < POLICIES_PER_NS {
            let w = rng.below(WORKLOADS_PER_NS);
            let target = json!({"matchLabels": {"app.kubernetes.io/name": format!("{}-{w}", TIERS[w % TIERS.len()])}});
            let spec = match rng.below(6) {
                0 => json!({"podSelector": target, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": team(rng.below(namespaces))}}}]}]}),
                1 => json!({"podSelector": target, "ingress": [{"from": [
                        {"namespaceSelector": {"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["dev"]},
                                                                    {"key": "team", "operator": "In", "values": [team(n)]}]},
                         "podSelector": {"matchLabels": {"tier": "worker"}}}], "ports": [{"port": 8000, "endPort": 9999}]}]}),
                2 => {
                    let (c, d) = ns_net(rng.below(namespaces));
                    json!({"podSelector": target, "ingress": [{"from": [{"ipBlock": {"cidr": format!("10.{c}.{d}.0/24"), "except": [format!("10.{c}.{d}.0/26")]}}]}]})
                }
                3 => json!({"podSelector": target, "ingress": [{"from": [{"podSelector": {}}], "ports": [{"port": "http"}, {"protocol": "UDP"}]}]}),
                4 => json!({"podSelector": target, "policyTypes": ["Egress"], "egress": [
                        {"to": [{"ipBlock": {"cidr": format!("203.0.{}.0/24", rng.below(256))}}], "ports": [{"port": 443}]},
                        {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns_name(rng.below(namespaces))}},
                                 "podSelector": {"matchLabels": {"tier": "api"}}}], "ports": [{"port": "http"}]}]}),
                _ => json!({"podSelector": {"matchLabels": {"tier": "cache"}}, "ingress": [{"from": [
                        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns_name(rng.below(namespaces))}}}]}]}),
            };
            policies.push((format!("p{}", policies.len()), spec));
        }
        for (name, spec) in policies {
            out.push(json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name, "namespace": ns}, "spec": spec}));
        }
    }
    out
}

/// Writes the cluster as `kubectl get KIND -A -o json` would: one `List` file per kind in `dir`
/// (`pods.json`, ...), the items with their `kind` and `apiVersion`.
fn write_dump(objects: &[Value], dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut by_kind: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for o in objects {
        by_kind.entry(o["kind"].as_str().expect("kind").to_ascii_lowercase()).or_default().push(o);
    }
    for (kind, items) in by_kind {
        let list = json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items});
        let plural = match kind.strip_suffix('y') {
            Some(stem) => format!("{stem}ies"),
            None => format!("{kind}s"),
        };
        let file = std::fs::File::create(dir.join(format!("{plural}.json")))?;
        let mut w = std::io::BufWriter::new(file);
        serde_json::to_writer_pretty(&mut w, &list)?;
        std::io::Write::write_all(&mut w, b"\n")?;
    }
    Ok(())
}

struct Measure {
    wall_ms: f64,
    /// User plus system time of the child: the figure to compare on a shared machine, where
    /// other jobs stretch the wall time.
    cpu_s: f64,
    rss_mb: f64,
    code: i32,
    stdout_bytes: usize,
}

/// Run `bin args` under `/usr/bin/time -v`: wall time, CPU time and peak RSS of the child.
fn measure(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Measure {
    let mut cmd = Command::new("/usr/bin/time");
    cmd.arg("-v").arg(bin).args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let t0 = Instant::now();
    let out = cmd.output().expect("/usr/bin/time runs (apt-get install time)");
    let wall_ms = t0.elapsed().as_secs_f64() * 1e3;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let rss_kb: f64 = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes): "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no RSS in /usr/bin/time output:\n{stderr}"));
    let code = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("Exit status: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(-1);
    let seconds = |prefix: &str| -> f64 {
        stderr
            .lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {prefix:?} in /usr/bin/time output:\n{stderr}"))
    };
    let cpu_s = seconds("User time (seconds): ") + seconds("System time (seconds): ");
    Measure { wall_ms, cpu_s, rss_mb: rss_kb / 1024.0, code, stdout_bytes: out.stdout.len() }
}

fn best_of(n: usize, f: impl Fn() -> Measure) -> Measure {
    (0..n).map(|_| f()).min_by(|a, b| a.wall_ms.total_cmp(&b.wall_ms)).expect("n > 0")
}

/// `--workloads N` (default 1,000, a multiple of 20) and `--write DIR`; cargo's own `--bench` is
/// ignored.
fn args() -> (usize, Option<std::path::PathBuf>) {
    let mut workloads = 1000;
    let mut write = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--workloads" => {
                let v = it.next().unwrap_or_default();
                workloads = v.parse::<usize>().ok().filter(|n| *n > 0 && n % WORKLOADS_PER_NS == 0).unwrap_or_else(|| {
                    eprintln!("--workloads: {v:?} is not a positive multiple of {WORKLOADS_PER_NS}");
                    std::process::exit(2)
                });
            }
            "--write" => write = it.next().map(std::path::PathBuf::from),
            "--bench" => {}
            other => {
                eprintln!("unknown argument {other:?}: --workloads N, --write DIR");
                std::process::exit(2)
            }
        }
    }
    (workloads, write)
}

fn main() {
    if let Some(dir) = std::env::var_os("DBISO_BENCH_PHASES") {
        phases::run(Path::new(&dir));
        return;
    }
    // `DBISO_BENCH_BIN`: measure another build (e.g. an older commit's) on the same cluster.
    let built = env!("CARGO_BIN_EXE_kubectl-dbiso").to_string();
    let bin = &std::env::var("DBISO_BENCH_BIN").unwrap_or(built);
    // `DBISO_BENCH_RUNS`: runs of each command (best of; default 3).
    let runs: usize = std::env::var("DBISO_BENCH_RUNS").ok().and_then(|r| r.parse().ok()).filter(|&r| r > 0).unwrap_or(3);
    let (workloads, write) = args();
    let objects = cluster(workloads);
    let count = |kind: &str| objects.iter().filter(|o| o["kind"] == kind).count();
    println!(
        "cluster: {} namespaces, {} pods, {} Services, {} NetworkPolicies, {} Deployments, {} StatefulSets, {} ReplicaSets, {} Secrets ({} objects)",
        count("Namespace"),
        count("Pod"),
        count("Service"),
        count("NetworkPolicy"),
        count("Deployment"),
        count("StatefulSet"),
        count("ReplicaSet"),
        count("Secret"),
        objects.len()
    );
    if let Some(dir) = write {
        write_dump(&objects, &dir).unwrap_or_else(|e| panic!("writing {}: {e}", dir.display()));
        return;
    }

    let keep = std::env::var_os("DBISO_BENCH_KEEP").map(std::path::PathBuf::from);
    let dir = keep.clone().unwrap_or_else(|| std::env::temp_dir().join(format!("dbiso-bench-{}", std::process::id())));
    std::fs::create_dir_all(&dir).unwrap();
    let double = Double::spawn_blocking_runtime(DoubleOptions { watch_history: 10, ..DoubleOptions::default() }).expect("double starts");
    double.load_values(objects.clone()).expect("objects load");
    let kubeconfig = double.write_kubeconfig(&dir, "default").unwrap();
    let env = [("KUBECONFIG", kubeconfig.to_str().unwrap()), ("NO_COLOR", "1")];

    if let Ok(wrap) = std::env::var("DBISO_BENCH_PROFILE") {
        // Profile one live audit under a wrapper (e.g. `heaptrack -o /tmp/audit`), then stop.
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!("{wrap} \"$0\" audit -A -o json >/dev/null"))
            .arg(bin)
            .envs(env)
            .status()
            .expect("profiler runs");
        println!("profiled live audit under `{wrap}`: {status}");
        return;
    }
    double.clear_requests();
    let first = measure(bin, &["audit", "-A", "-o", "json"], &env);
    assert!(first.code == 0 || first.code == 1, "audit failed with exit {}", first.code);
    let mut lists: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for r in double.requests() {
        if r.method == "GET" && !r.watch {
            let e = lists.entry(r.path.clone()).or_default();
            if r.param("continue").is_none() {
                e.0 += 1;
            }
            e.1 += 1;
        }
    }
    let audit = best_of(runs, || measure(bin, &["audit", "-A", "-o", "json"], &env));

    let file = dir.join("cluster.yaml");
    let mut text = String::new();
    for o in &objects {
        text.push_str("---\n");
        text.push_str(&serde_json::to_string(o).unwrap());
        text.push('\n');
    }
    std::fs::write(&file, &text).unwrap();
    let file_arg = file.to_str().unwrap();
    let reach = best_of(runs, || measure(bin, &["reach", "-f", file_arg, "-A", "-o", "json"], &env));
    let audit_files = best_of(runs, || measure(bin, &["audit", "-f", file_arg, "-A", "-o", "json"], &env));

    println!("\nLIST requests during one live audit (path: lists, requests including continuations):");
    for (path, (lists, requests)) in &lists {
        println!("  {path}: {lists} list, {requests} request(s)");
    }
    let once = lists.values().all(|(l, _)| *l == 1);
    println!("  one list per kind: {once}");
    println!("\n{:<40} {:>10} {:>8} {:>14} {:>12}", format!("command (best of {runs})"), "wall ms", "CPU s", "peak RSS MiB", "stdout KB");
    for (name, m) in [("audit -A -o json (live, double)", &audit), ("audit -f cluster.yaml -A -o json", &audit_files), ("reach -f cluster.yaml -A -o json", &reach)] {
        println!("{name:<40} {:>10.0} {:>8.2} {:>14.1} {:>12}", m.wall_ms, m.cpu_s, m.rss_mb, m.stdout_bytes / 1024);
    }
    println!("\ninput file: {} MB", text.len() / (1024 * 1024));
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(Path::new(&dir));
    }
}
