//! Golden files for rendered output: precheck as table, wide table, JSON and YAML, and the
//! post-renderer's output and report on the platform fixture. Regenerate with UPDATE_GOLDEN=1
//! after an intended change, and review the diff.

use e2e::{bin, golden, run};

const FIXTURE: &str = "tests/e2e/fixtures/platform.yaml";

#[test]
fn precheck_outputs() {
    for (format, file) in [("table", "precheck.table.txt"), ("wide", "precheck.wide.txt"), ("json", "precheck.json"), ("yaml", "precheck.yaml")] {
        let r = run(&bin("mesh-migrate"), &["precheck", "-f", FIXTURE, "-o", format], None, &[]);
        assert_eq!(r.code, 1, "{format}: {}", r.stderr);
        golden(file, &r.stdout);
    }
}

#[test]
fn post_render_output_and_report() {
    let input = std::fs::read_to_string(e2e::root().join(FIXTURE)).unwrap();
    let r = run(&bin("mesh-migrate"), &["post-render", "--report"], Some(&input), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    golden("post-render.yaml", &r.stdout);
    golden("post-render.report.txt", &r.stderr);
}
