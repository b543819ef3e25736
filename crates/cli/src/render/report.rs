//! Rendering a findings report.

use anyhow::Result;
use meshmove_model::findings::{Report, Severity};
use owo_colors::OwoColorize;

use crate::flags::OutputFormat;
use crate::output::Out;

/// Render a report on stdout; skipped analyzers and notes go to stderr in table formats (they
/// are part of the document in JSON and YAML).
pub fn report(out: &mut Out, format: OutputFormat, color: bool, report: &Report) -> Result<()> {
    match format {
        OutputFormat::Json | OutputFormat::Yaml => super::structured(out, format, report),
        OutputFormat::Table | OutputFormat::Wide => {
            let wide = format == OutputFormat::Wide;
            if report.findings.is_empty() {
                out.line("No findings.")?;
            } else {
                let mut headers = vec!["SEVERITY", "CODE", "OBJECT", "MESSAGE"];
                if wide {
                    headers.extend(["ORIGIN", "HINT"]);
                }
                let rows = report
                    .findings
                    .iter()
                    .map(|f| {
                        let mut row = vec![
                            severity(f.severity, color),
                            f.code.to_string(),
                            f.object.as_ref().map_or_else(|| "-".to_string(), ToString::to_string),
                            f.message.clone(),
                        ];
                        if wide {
                            row.push(f.origin.clone().unwrap_or_else(|| "-".into()));
                            row.push(format!("{} ({})", f.hint, f.docs));
                        }
                        row
                    })
                    .collect();
                out.write_str(&super::table(&headers, rows))?;
            }
            let s = &report.summary;
            out.line(format_args!(
                "\n{} error(s), {} warning(s), {} info{}",
                s.errors,
                s.warnings,
                s.infos,
                if s.suppressed > 0 { format!(", {} suppressed", s.suppressed) } else { String::new() }
            ))?;
            out.flush()?;
            for skipped in &report.skipped {
                crate::log::note(format_args!("skipped {}: {}", skipped.analyzer, skipped.reason));
            }
            for note in &report.notes {
                crate::log::note(note);
            }
            Ok(())
        }
    }
}

fn severity(s: Severity, color: bool) -> String {
    let text = s.to_string().to_uppercase();
    if !color {
        return text;
    }
    match s {
        Severity::Error => text.red().bold().to_string(),
        Severity::Warning => text.yellow().to_string(),
        Severity::Info => text.blue().to_string(),
    }
}
