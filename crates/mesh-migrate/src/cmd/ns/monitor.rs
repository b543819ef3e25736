//! `ns monitor`: samples of both sides, refreshed. On a terminal one frame redrawn in place;
//! otherwise one plain line per refresh (`-o json`: one object per line, `-o yaml`: one document
//! per refresh).

use std::io::{IsTerminal, Write};
use std::time::Instant;

use anyhow::Result;
use meshmove_cli::output::Redraw;
use meshmove_cli::render::table;
use meshmove_cli::{Exit, Out, OutputFlags, OutputFormat};
use meshmove_kube::cluster::Connection;
use meshmove_migration::namespace::Sides;
use meshmove_migration::namespace::gates::fmt_num;
use meshmove_migration::namespace::prometheus::Prometheus;
use meshmove_migration::namespace::run;

use super::args::MonitorArgs;
use super::fail;
use super::render::pct;

fn metric(v: Option<f64>, unit: &str) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{}{unit}", fmt_num(x)))
}

fn sample_rows(s: &run::Sample) -> Vec<Vec<String>> {
    [("legacy", &s.legacy), ("mesh", &s.mesh)]
        .into_iter()
        .map(|(name, side)| {
            let weight = if name == "mesh" { s.weight } else { 100 - s.weight };
            vec![
                format!("{name} ({})", side.namespace),
                pct(weight),
                format!("{}/{}", side.ready_pods, side.desired_pods),
                side.restarts.to_string(),
                metric(side.success_rate, " %"),
                metric(side.p99_ms, " ms"),
            ]
        })
        .collect()
}

const MONITOR_HEADERS: [&str; 6] = ["SIDE", "WEIGHT", "READY", "RESTARTS", "SUCCESS", "P99"];

pub(super) async fn monitor(conn: &Connection, sides: &Sides, prom: Option<&Prometheus>, a: &MonitorArgs, output: &OutputFlags) -> Result<Exit> {
    let start = Instant::now();
    let tty = std::io::stdout().is_terminal() && matches!(output.output, OutputFormat::Table | OutputFormat::Wide);
    let mut redraw = Redraw::new();
    loop {
        let s = match run::sample(conn, sides, prom, &a.window).await {
            Ok(s) => s,
            Err(e) => return fail(e),
        };
        let mut out = Out::new();
        match output.output {
            OutputFormat::Json => out.line(serde_json::to_string(&s)?)?,
            OutputFormat::Yaml => {
                out.write_str("---\n")?;
                out.write_str(&meshmove_model::yaml::to_yaml_string(&serde_json::to_value(&s)?))?;
            }
            _ if tty => {
                let phase = s.phase.map(|p| p.to_string()).unwrap_or_default();
                let mut frame = format!("{} {} ({phase}), refreshed {}\n", sides.legacy, pct(s.weight), s.at);
                frame.push_str(&table(&MONITOR_HEADERS, sample_rows(&s)));
                for n in &s.notes {
                    frame.push_str(&format!("note: {n}\n"));
                }
                redraw.draw(&mut out, &frame)?;
            }
            _ => {
                let side = |n: &str, x: &run::SideSample| {
                    format!(
                        "{n} ready={}/{} restarts={} success={} p99={}",
                        x.ready_pods,
                        x.desired_pods,
                        x.restarts,
                        metric(x.success_rate, "%"),
                        metric(x.p99_ms, "ms")
                    )
                };
                out.line(format_args!("{} weight={}% {} | {}", s.at, s.weight, side("legacy", &s.legacy), side("mesh", &s.mesh)))?;
                for n in &s.notes {
                    eprintln!("note: {n}");
                }
            }
        }
        out.flush()?;
        drop(out);
        let elapsed = start.elapsed();
        if elapsed >= a.duration {
            break;
        }
        tokio::time::sleep(a.every.min(a.duration - elapsed)).await;
    }
    let _ = std::io::stdout().flush();
    Ok(Exit::Ok)
}
