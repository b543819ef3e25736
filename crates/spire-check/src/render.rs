//! Rendering the identities table (the check report is printed by `meshmove_cli::render::checks`).

use meshmove_spire::{IdentityRow, IdentityStatus};
use owo_colors::OwoColorize;

/// The status column: the JSON spelling (`not-istio-form`).
pub fn status_word(s: IdentityStatus) -> String {
    serde_json::to_value(s).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

fn status_cell(s: IdentityStatus, color: bool) -> String {
    let word = status_word(s);
    match (color, s) {
        (false, _) => word,
        (true, IdentityStatus::Ok) => word.green().to_string(),
        (true, _) => word.red().to_string(),
    }
}

/// The identities table.
pub fn identities(rows: &[IdentityRow], wide: bool, color: bool) -> String {
    let mut headers = vec!["WORKLOAD", "SERVICE ACCOUNT", "EXPECTED SPIFFE ID", "CLUSTERSPIFFEID", "STATUS"];
    if wide {
        headers.extend(["RENDERED SPIFFE ID", "NOTE"]);
    }
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let cells = rows
        .iter()
        .map(|r| {
            let mut row = vec![
                r.workload.to_string(),
                r.service_account.clone(),
                r.expected_spiffe_id.clone(),
                dash(&r.cluster_spiffe_id),
                status_cell(r.status, color),
            ];
            if wide {
                row.push(dash(&r.rendered));
                row.push(dash(&r.note));
            }
            row
        })
        .collect();
    meshmove_cli::render::table(&headers, cells)
}
