//! Raw HTTP: the control API, fault actions at the socket level, snapshots
//! and server-side LIST timing.

use apiserver_double::{Double, DoubleOptions, FaultRule};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A tiny keep-alive HTTP/1.1 client (Content-Length bodies only).
struct Conn {
    reader: BufReader<TcpStream>,
}

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Conn {
    fn open(addr: SocketAddr) -> Conn {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_nodelay(true).unwrap();
        Conn {
            reader: BufReader::new(s),
        }
    }

    fn send(
        &mut self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> std::io::Result<Resp> {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: double\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        req.extend_from_slice(body);
        self.reader.get_mut().write_all(&req)?;
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("status line");
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            self.reader.read_line(&mut h)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse().unwrap())
            .expect("content-length");
        let mut body = vec![0; len];
        self.reader.read_exact(&mut body)?;
        Ok(Resp {
            status,
            headers,
            body,
        })
    }

    fn get(&mut self, path: &str) -> Resp {
        self.send("GET", path, "application/json", b"").unwrap()
    }
}

fn pod(i: usize) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("pod-{i:05}"), "namespace": format!("ns-{}", i % 4), "labels": {"app": format!("app-{}", i % 10), "tier": "web"}},
        "spec": {"containers": [{"name": "app", "image": "registry.example/app:1.0", "ports": [{"containerPort": 8080}],
            "env": [{"name": "MODE", "value": "prod"}]}], "nodeName": "node-1"},
        "status": {"phase": "Running", "podIP": "10.0.0.1"}})
}

#[test]
fn ten_thousand_pod_list_is_fast() {
    let double = Double::spawn_blocking_runtime(DoubleOptions {
        simulate_controllers: false,
        ..DoubleOptions::default()
    })
    .unwrap();
    let mut objs: Vec<Value> = (0..4).map(|n| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": format!("ns-{n}")}})).collect();
    objs.extend((0..10_000).map(pod));
    double.load_values(objs).unwrap();
    let mut conn = Conn::open(double.addr());
    let mut best = Duration::MAX;
    for _round in 0..3 {
        let start = Instant::now();
        let mut token: Option<String> = None;
        let mut items = 0;
        let mut bytes = 0;
        loop {
            let path = match &token {
                Some(t) => format!("/api/v1/pods?limit=500&continue={t}"),
                None => "/api/v1/pods?limit=500".to_string(),
            };
            let r = conn.get(&path);
            assert_eq!(r.status, 200);
            bytes += r.body.len();
            let head = std::str::from_utf8(&r.body[..r.body.len().min(512)]).unwrap();
            if items == 0 {
                let remaining = head.split_once("\"remainingItemCount\":").map(|(_, r)| {
                    r.split(|c: char| !c.is_ascii_digit())
                        .next()
                        .unwrap()
                        .parse::<usize>()
                        .unwrap()
                });
                assert_eq!(remaining, Some(9_500));
            }
            items += 500;
            match head.split_once("\"continue\":\"") {
                Some((_, rest)) => token = Some(rest.split('"').next().unwrap().to_string()),
                None => break,
            }
        }
        assert_eq!(items, 10_000);
        let took = start.elapsed();
        println!(
            "raw HTTP: 10,000 pods ({} KiB) in 20 pages of 500 in {took:?} (server time: the client does not parse the JSON)",
            bytes / 1024
        );
        best = best.min(took);
    }
    assert!(best < Duration::from_secs(1), "best of three took {best:?}");
}

#[test]
fn control_api_loads_logs_and_snapshots() {
    let double = Double::spawn_blocking_runtime(DoubleOptions::default()).unwrap();
    let mut c = Conn::open(double.addr());
    assert_eq!(c.get("/__double/health").json(), json!({"ok": true}));
    let yaml = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, namespace: shop}\ndata: {a: '1'}\n";
    let r = c
        .send(
            "POST",
            "/__double/load",
            "application/yaml",
            yaml.as_bytes(),
        )
        .unwrap();
    assert_eq!(
        r.json(),
        json!({"loaded": ["namespaces/shop", "configmaps/shop/cfg"]})
    );
    let kubeconfig = String::from_utf8(c.get("/__double/kubeconfig?namespace=shop").body).unwrap();
    assert!(
        kubeconfig.contains(&format!("server: \"{}\"", double.url()))
            && kubeconfig.contains("namespace: \"shop\"")
    );

    let before = c.get("/__double/snapshot").json();
    let snap_before = double.snapshot();
    let patch = |c: &mut Conn, v: &str| {
        let body = json!({"data": {"a": v}}).to_string();
        let r = c
            .send(
                "PATCH",
                "/api/v1/namespaces/shop/configmaps/cfg?fieldManager=test",
                "application/merge-patch+json",
                body.as_bytes(),
            )
            .unwrap();
        assert_eq!(r.status, 200);
    };
    patch(&mut c, "2");
    assert_ne!(double.snapshot(), snap_before);
    let diff = snap_before.diff(&double.snapshot());
    assert_eq!(diff.len(), 1);
    assert!(diff[0].starts_with("~ ConfigMap/shop/cfg"), "{diff:?}");
    patch(&mut c, "1");
    assert_eq!(
        double.snapshot(),
        snap_before,
        "resourceVersion and managedFields are ignored"
    );
    assert_eq!(c.get("/__double/snapshot").json(), before);

    let log = c
        .get("/__double/requests?method=PATCH&path=configmaps")
        .json();
    let reqs = log["requests"].as_array().unwrap();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0]["contentType"], "application/merge-patch+json");
    assert_eq!(reqs[0]["query"], "fieldManager=test");
    assert_eq!(reqs[0]["status"], 200);
    assert!(
        c.get("/__double/requests").json()["requests"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| !r["path"].as_str().unwrap().starts_with("/__double"))
    );
    c.send("DELETE", "/__double/requests", "application/json", b"")
        .unwrap();
    assert_eq!(double.requests().len(), 0);

    let rule = json!({"method": "GET", "path": "^/api/v1/namespaces/shop/configmaps$", "action": {"type": "forbidden", "user": "alice"}});
    let id = c
        .send(
            "POST",
            "/__double/faults",
            "application/json",
            rule.to_string().as_bytes(),
        )
        .unwrap()
        .json()["id"]
        .as_u64()
        .unwrap();
    let r = c.get("/api/v1/namespaces/shop/configmaps");
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "configmaps is forbidden: User \"alice\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"shop\"",
            "reason": "Forbidden", "details": {"kind": "configmaps"}, "code": 403})
    );
    let rules = c.get("/__double/faults").json();
    assert_eq!(rules["rules"][0]["fired"], 1);
    c.send(
        "DELETE",
        &format!("/__double/faults/{id}"),
        "application/json",
        b"",
    )
    .unwrap();
    assert_eq!(c.get("/api/v1/namespaces/shop/configmaps").status, 200);
    let bad = c
        .send(
            "POST",
            "/__double/faults",
            "application/json",
            br#"{"path": "(", "action": {"type": "reset"}}"#,
        )
        .unwrap();
    assert_eq!(bad.status, 400);

    assert_eq!(
        c.send("POST", "/__double/crds/istio", "application/json", b"")
            .unwrap()
            .status,
        200
    );
    assert_eq!(c.get("/apis/networking.istio.io/v1").status, 200);
    assert_eq!(
        c.send("POST", "/__double/reset", "application/json", b"")
            .unwrap()
            .status,
        200
    );
    assert_eq!(c.get("/apis/networking.istio.io/v1").status, 404);
    assert_eq!(c.get("/api/v1/namespaces/shop").status, 404);
    assert_eq!(c.get("/api/v1/namespaces/default").status, 200);
}

#[test]
fn delays_resets_and_throttling() {
    let double = Double::spawn_blocking_runtime(DoubleOptions::default()).unwrap();
    double
        .add_fault(
            FaultRule::on("GET", "^/api/v1/namespaces/default/secrets$")
                .delay(Duration::from_millis(300)),
        )
        .unwrap();
    double
        .add_fault(
            FaultRule::on("GET", "^/api/v1/namespaces/default/configmaps$")
                .reset()
                .times(1),
        )
        .unwrap();
    double
        .add_fault(FaultRule::on("*", "/serviceaccounts").status(429, "slow down"))
        .unwrap();
    let mut c = Conn::open(double.addr());
    let start = Instant::now();
    assert_eq!(c.get("/api/v1/namespaces/default/secrets").status, 200);
    assert!(start.elapsed() >= Duration::from_millis(300));
    let r = c.get("/api/v1/namespaces/default/serviceaccounts");
    assert_eq!((r.status, r.header("retry-after")), (429, Some("1")));
    assert_eq!(r.json()["reason"], "TooManyRequests");
    let err = c
        .send(
            "GET",
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            b"",
        )
        .err()
        .expect("connection is reset");
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof
        ),
        "{err:?}"
    );
    let mut c = Conn::open(double.addr());
    assert_eq!(
        c.get("/api/v1/namespaces/default/configmaps").status,
        200,
        "the reset rule fired once"
    );
    let log = double.requests_matching("GET", "configmaps$");
    assert_eq!(
        log.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![0, 200]
    );
}

#[test]
fn api_edges() {
    let double = Double::spawn_blocking_runtime(DoubleOptions::default()).unwrap();
    let mut c = Conn::open(double.addr());
    let r = c.get("/nope");
    assert_eq!(
        (r.status, r.body.as_slice()),
        (404, &b"404 page not found\n"[..])
    );
    assert_eq!(
        c.get("/apis/networking.istio.io/v1/namespaces/default/virtualservices")
            .status,
        404
    );
    let r = c.get("/api/v1/namespaces/default/widgets");
    assert_eq!(
        r.json()["message"],
        "the server could not find the requested resource"
    );
    let r = c
        .send("PATCH", "/api/v1/namespaces/default", "text/plain", b"{}")
        .unwrap();
    assert_eq!(r.status, 415);
    let r = c
        .send(
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"generateName":"cfg-"}}"#,
        )
        .unwrap();
    assert_eq!(r.status, 201);
    assert!(
        r.json()["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("cfg-")
    );
    let r = c.get("/api/v1/namespaces/default/configmaps?labelSelector=a%20in%20(b");
    assert_eq!(
        (r.status, r.json()["reason"].clone()),
        (400, json!("BadRequest"))
    );
    let r = c.get("/api/v1/pods?fieldSelector=spec.bogus%3Dx");
    assert_eq!(r.json()["message"], "field label not supported: spec.bogus");
    let r = c.get("/api/v1/namespaces/default/configmaps?limit=1&continue=garbage");
    assert_eq!(r.status, 400);
    let r = c
        .send(
            "POST",
            "/api/v1/namespaces/default/configmaps?dryRun=All",
            "application/json",
            br#"{"metadata":{"name":"dry"}}"#,
        )
        .unwrap();
    assert_eq!(r.status, 201);
    assert_eq!(
        c.get("/api/v1/namespaces/default/configmaps/dry").status,
        404
    );
    let r = c
        .send(
            "POST",
            "/api/v1/namespaces/default/configmaps?dryRun=Some",
            "application/json",
            br#"{"metadata":{"name":"dry"}}"#,
        )
        .unwrap();
    assert_eq!(r.status, 400);
    let r = c.get("/apis/apps/v1/namespaces/default/deployments/none/scale");
    assert_eq!(r.json()["message"], "deployments.apps \"none\" not found");
    let r = c.get("/api/v1/namespaces/default/configmaps/x/scale");
    assert_eq!(r.status, 404);
}
