//! `apiserver-double`: serves an API-server double until interrupted.
//!
//! ```text
//! apiserver-double [--port N] [--namespace NS] [--dir DIR] [--load FILE]...
//!                  [--crds istio,cnpg,spire,gateway-api] [--no-controllers]
//!                  [--no-injection] [--require-token] [--istiod]
//! ```
//!
//! `--istiod` creates an `istiod` Deployment in `istio-system` (the namespace too, if no
//! loaded file has it), so the simulated injector serves the `default` revision.
//!
//! Prints `KUBECONFIG=<path>` and `URL=<url>` on stdout, then serves until
//! SIGINT or SIGTERM.

use apiserver_double::{Double, DoubleOptions, crds};
use std::io::Write;
use std::path::PathBuf;

struct Args {
    opts: DoubleOptions,
    namespace: String,
    dir: Option<PathBuf>,
    loads: Vec<PathBuf>,
    crds: Vec<String>,
    istiod: bool,
}

fn usage() -> String {
    "usage: apiserver-double [--port N] [--namespace NS] [--dir DIR] [--load FILE]... \
     [--crds istio,cnpg,spire,gateway-api] [--no-controllers] [--no-injection] [--require-token] [--istiod]"
        .to_string()
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        opts: DoubleOptions::default(),
        namespace: "default".into(),
        dir: None,
        loads: vec![],
        crds: vec![],
        istiod: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or_else(|| format!("{name} needs a value\n{}", usage()))
        };
        match arg.as_str() {
            "--port" => {
                a.opts.port = value("--port")?
                    .parse()
                    .map_err(|e| format!("--port: {e}"))?
            }
            "--namespace" | "-n" => a.namespace = value("--namespace")?,
            "--dir" => a.dir = Some(PathBuf::from(value("--dir")?)),
            "--load" => a.loads.push(PathBuf::from(value("--load")?)),
            "--crds" => a.crds.extend(
                value("--crds")?
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
            ),
            "--no-controllers" => a.opts.simulate_controllers = false,
            "--no-injection" => a.opts.istio_injection = false,
            "--require-token" => a.opts.require_token = true,
            "--istiod" => a.istiod = true,
            "-h" | "--help" => return Err(usage()),
            other => return Err(format!("unknown argument {other:?}\n{}", usage())),
        }
    }
    Ok(a)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = rt.block_on(async move {
        let handle = match Double::start(args.opts).await {
            Ok(h) => h,
            Err(e) => {
                eprintln!("cannot bind: {e}");
                return 1;
            }
        };
        for name in &args.crds {
            match crds::preset(name) {
                Some(c) => {
                    if let Err(e) = handle.install_crds(c) {
                        eprintln!("cannot install {name} CRDs: {e}");
                        return 1;
                    }
                }
                None => {
                    eprintln!(
                        "unknown CRD preset {name:?} (known: istio, cnpg, spire, gateway-api)"
                    );
                    return 2;
                }
            }
        }
        for f in &args.loads {
            let loaded = std::fs::read_to_string(f)
                .map_err(|e| e.to_string())
                .and_then(|t| handle.load_yaml(&t).map_err(|e| e.to_string()));
            if let Err(e) = loaded {
                eprintln!("cannot load {}: {e}", f.display());
                return 1;
            }
        }
        if args.istiod {
            let ns = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}});
            if handle.get("v1", "Namespace", None, "istio-system").is_none()
                && let Err(e) = handle.create(ns)
            {
                eprintln!("cannot create namespace istio-system: {e}");
                return 1;
            }
            if let Err(e) = handle.create(apiserver_double::istiod(None)) {
                eprintln!("cannot create istiod: {e}");
                return 1;
            }
        }
        let dir = args.dir.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!("apiserver-double-{}", std::process::id()))
        });
        let path = match handle.write_kubeconfig(&dir, &args.namespace) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("cannot write kubeconfig: {e}");
                return 1;
            }
        };
        let mut out = std::io::stdout();
        let _ = writeln!(out, "KUBECONFIG={}", path.display());
        let _ = writeln!(out, "URL={}", handle.url());
        let _ = out.flush();
        wait_for_signal().await;
        if args.dir.is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        0
    });
    std::process::exit(code);
}
