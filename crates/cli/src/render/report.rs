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

/// A report as a Markdown document: a heading naming the command, the summary, one table of
/// findings (severity, code, object, message, hint with its docs link), then what was skipped
/// and the notes, which the table formats print on stderr.
pub fn report_markdown(report: &Report) -> String {
    use super::reach::md_text;
    let mut md = format!("# {} {}\n\n", report.tool, report.command);
    let s = &report.summary;
    md.push_str(&format!("{} error(s), {} warning(s), {} info", s.errors, s.warnings, s.infos));
    if s.suppressed > 0 {
        md.push_str(&format!(", {} suppressed", s.suppressed));
    }
    md.push_str(".\n\n");
    if report.findings.is_empty() {
        md.push_str("No findings.\n");
    } else {
        md.push_str("| Severity | Code | Object | Message | Hint |\n| --- | --- | --- | --- | --- |\n");
        for f in &report.findings {
            let object = f.object.as_ref().map_or_else(|| "-".to_string(), |o| format!("`{}`", md_text(&o.to_string())));
            md.push_str(&format!(
                "| {} | {} | {object} | {} | {} ([docs]({})) |\n",
                f.severity,
                f.code,
                md_text(&f.message),
                md_text(f.hint),
                f.docs
            ));
        }
    }
    let list = |title: &str, items: Vec<String>, md: &mut String| {
        if !items.is_empty() {
            md.push_str(&format!("\n## {title}\n\n"));
            for i in items {
                md.push_str(&format!("- {}\n", i.replace('\n', " ")));
            }
        }
    };
    list("Skipped", report.skipped.iter().map(|k| format!("{}: {}", k.analyzer, k.reason)).collect(), &mut md);
    list("Notes", report.notes.clone(), &mut md);
    md
}

/// A report's findings as CSV with a header row: `severity`, `code`, the object's `kind`,
/// `namespace` and `name` (empty when the finding has none), `message`, `origin`, `hint`, `docs`.
pub fn report_csv(report: &Report) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["severity", "code", "kind", "namespace", "name", "message", "origin", "hint", "docs"])?;
    for f in &report.findings {
        let (kind, namespace, name) = match &f.object {
            Some(o) => (o.kind.clone(), o.namespace.clone().unwrap_or_default(), o.name.clone()),
            None => Default::default(),
        };
        w.write_record([
            f.severity.to_string(),
            f.code.to_string(),
            kind,
            namespace,
            name,
            f.message.clone(),
            f.origin.clone().unwrap_or_default(),
            f.hint.to_string(),
            f.docs.clone(),
        ])?;
    }
    Ok(String::from_utf8(w.into_inner()?)?)
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

#[cfg(test)]
mod tests {
    use meshmove_model::findings::{self, Code, Finding, Severity};
    use meshmove_model::inventory::{Inventory, ObjectRef};

    use super::*;

    static SHARED: Code = Code { code: "DB3001", severity: Severity::Error, title: "Shared database", hint: "Give each service its own database | or schema." };
    static OPEN: Code = Code { code: "DB3002", severity: Severity::Warning, title: "Reachable", hint: "Isolate it." };

    /// Findings with what each format must quote: pipes, commas, quotes, a line break, no object.
    fn sample() -> Report {
        let mut r = findings::run("dbiso", "audit", &[], &Inventory::from_files(Vec::new(), Vec::new(), "default".into()));
        let mut a = Finding::new(&SHARED, "pg is used by api, web and \"batch\" | all three\nsecond line");
        a.object = Some(ObjectRef::new("StatefulSet", Some("shop"), "pg"));
        a.origin = Some("chart.yaml:12".into());
        r.findings.push(a);
        r.findings.push(Finding::new(&OPEN, "something without an object"));
        r.notes.push("NetworkPolicies are left out: not in the input".into());
        r.finish(&[])
    }

    #[test]
    fn csv_reads_back_field_for_field() {
        let r = sample();
        let text = report_csv(&r).unwrap();
        let mut rd = csv::Reader::from_reader(text.as_bytes());
        let headers: Vec<String> = rd.headers().unwrap().iter().map(str::to_string).collect();
        assert_eq!(headers, ["severity", "code", "kind", "namespace", "name", "message", "origin", "hint", "docs"]);
        let rows: Vec<Vec<String>> = rd.records().map(|x| x.unwrap().iter().map(str::to_string).collect()).collect();
        assert_eq!(rows.len(), r.findings.len());
        for (row, f) in rows.iter().zip(&r.findings) {
            let o = f.object.clone();
            let want = [
                f.severity.to_string(),
                f.code.to_string(),
                o.as_ref().map(|o| o.kind.clone()).unwrap_or_default(),
                o.as_ref().and_then(|o| o.namespace.clone()).unwrap_or_default(),
                o.as_ref().map(|o| o.name.clone()).unwrap_or_default(),
                f.message.clone(),
                f.origin.clone().unwrap_or_default(),
                f.hint.to_string(),
                f.docs.clone(),
            ];
            assert_eq!(row, &want);
        }
    }

    #[test]
    fn markdown_reads_back_as_one_row_per_finding() {
        use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};
        let r = sample();
        let text = report_markdown(&r);
        let (mut rows, mut row, mut cell, mut headings, mut items) = (Vec::<Vec<String>>::new(), Vec::new(), None::<String>, Vec::new(), Vec::new());
        let (mut in_heading, mut in_item) = (false, false);
        for ev in Parser::new_ext(&text, Options::ENABLE_TABLES) {
            match ev {
                Event::Start(Tag::Heading { .. }) => {
                    in_heading = true;
                    headings.push(String::new());
                }
                Event::End(TagEnd::Heading(_)) => in_heading = false,
                Event::Start(Tag::Item) => {
                    in_item = true;
                    items.push(String::new());
                }
                Event::End(TagEnd::Item) => in_item = false,
                Event::Start(Tag::TableCell) => cell = Some(String::new()),
                Event::End(TagEnd::TableCell) => row.push(cell.take().unwrap()),
                Event::End(TagEnd::TableHead | TagEnd::TableRow) => rows.push(std::mem::take(&mut row)),
                Event::Html(h) | Event::InlineHtml(h) if cell.is_some() => cell.as_mut().unwrap().push_str(if h.as_ref() == "<br>" { "\n" } else { &h }),
                Event::Text(t) | Event::Code(t) => {
                    if let Some(c) = cell.as_mut() {
                        c.push_str(&t);
                    } else if in_heading {
                        headings.last_mut().unwrap().push_str(&t);
                    } else if in_item {
                        items.last_mut().unwrap().push_str(&t);
                    }
                }
                _ => {}
            }
        }
        assert_eq!(headings, ["dbiso audit", "Notes"]);
        assert_eq!(rows[0], ["Severity", "Code", "Object", "Message", "Hint"]);
        assert_eq!(rows.len() - 1, r.findings.len());
        for (row, f) in rows[1..].iter().zip(&r.findings) {
            assert_eq!(row[0], f.severity.to_string());
            assert_eq!(row[1], f.code);
            assert_eq!(row[2], f.object.as_ref().map_or("-".to_string(), ToString::to_string));
            assert_eq!(row[3], f.message, "pipes and the line break survive");
            assert_eq!(row[4], format!("{} (docs)", f.hint));
        }
        assert_eq!(items, r.notes);
        assert!(text.starts_with("# dbiso audit\n\n1 error(s), 1 warning(s), 0 info.\n"), "{text}");
    }
}
