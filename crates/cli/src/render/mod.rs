//! Renderers: data in, text out. Tables for people (coloured only on a terminal), JSON and YAML
//! with stable schemas for machines. Nothing here decides exit codes.

pub mod checks;
pub mod explain;
mod graph;
pub mod reach;
#[cfg(test)]
mod reach_tests;
mod report;

pub use report::{report, report_csv, report_markdown};

use anyhow::Result;
use serde::Serialize;

use crate::flags::OutputFormat;
use crate::output::Out;

/// Write any serializable value as JSON (pretty, trailing newline) or YAML.
pub fn structured<T: Serialize>(out: &mut Out, format: OutputFormat, value: &T) -> Result<()> {
    let json = serde_json::to_value(value)?;
    match format {
        OutputFormat::Yaml => out.write_str(&meshmove_model::yaml::to_yaml_string(&json))?,
        _ => {
            out.write_str(&serde_json::to_string_pretty(&json)?)?;
            out.write_str("\n")?;
        }
    }
    Ok(())
}

/// A plain table with kubectl's look: upper-case headers, columns separated by three spaces,
/// no borders.
pub fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    use tabled::builder::Builder;
    use tabled::settings::{Padding, Style};
    let mut builder = Builder::default();
    builder.push_record(headers.iter().map(|h| h.to_string()));
    for row in rows {
        builder.push_record(row);
    }
    let mut t = builder.build();
    t.with(Style::blank()).with(Padding::new(0, 3, 0, 0));
    let mut s = t.to_string();
    // tabled pads the last column too; kubectl does not.
    s = s.lines().map(str::trim_end).collect::<Vec<_>>().join("\n");
    s.push('\n');
    s
}
