use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use meshmove_core::inventory::{self, Inventory, Object};
use meshmove_core::spire::{self, SpireOptions};
include!("/tmp/spirefx/helpers.rs");
#[test]
fn dump() {
    let _ = BTreeSet::<u8>::new();
    for case in cases() {
        let report = spire::check(&load(&case), &options());
        println!("=== {case} success={}", report.success);
        for cat in &report.categories {
            for c in &cat.checks {
                println!("  [{}] {} {} {}", cat.name, c.code, c.result, c.description);
                for d in &c.details { println!("        {d}"); }
            }
        }
        if case == "unmatched-pods" || case == "healthy" {
            println!("{}", serde_json::to_string_pretty(&spire::identities(&load(&case), &options())).unwrap());
        }
    }
}
