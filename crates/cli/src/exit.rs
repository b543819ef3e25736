//! The exit-code contract, identical for every plugin and every output format:
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | nothing at or above the `--fail-on` threshold, and every input was read |
//! | 1 | findings at or above the threshold (or a check failed); a kind the cluster refused or did not find is an error finding, so a partial read is 1 |
//! | 2 | usage or input error (bad flag, unreadable, invalid or empty manifest input, bad config, a duration without a unit) |
//! | 3 | cluster unreachable, credentials rejected, nothing could be read (every list refused or not found), a partial view a command cannot work from, or an API error stopped the command |

use std::process::ExitCode;

use meshmove_kube::cluster::ClusterError;

/// How a command ended, when it did not end in an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok,
    Findings,
}

pub const OK: u8 = 0;
pub const FINDINGS: u8 = 1;
pub const USAGE: u8 = 2;
pub const CLUSTER: u8 = 3;

/// Exit code for an error: cluster errors are 3, everything else (input, usage) is 2; plan errors
/// by their class (a readiness timeout or drift found by rollback is a failed check: 1).
pub fn code_for(err: &anyhow::Error) -> u8 {
    use meshmove_kube::plan::{ErrorClass, PlanError};
    if let Some(p) = err.chain().find_map(|e| e.downcast_ref::<PlanError>()) {
        return match p.class() {
            ErrorClass::Cluster => CLUSTER,
            ErrorClass::Failed => FINDINGS,
            ErrorClass::Input => USAGE,
        };
    }
    if err.chain().any(|e| e.downcast_ref::<ClusterError>().is_some()) {
        CLUSTER
    } else {
        USAGE
    }
}

/// The whole of a plugin's `main`: run, print the error chain on stderr, map to an exit code.
/// A closed stdout (`| head`) ends the run quietly with the code it would have had.
pub fn run_main(tool: &str, run: impl FnOnce() -> anyhow::Result<Exit>) -> ExitCode {
    match run() {
        Ok(Exit::Ok) => ExitCode::from(OK),
        Ok(Exit::Findings) => ExitCode::from(FINDINGS),
        Err(err) if crate::output::is_broken_pipe(&err) => ExitCode::from(OK),
        Err(err) => {
            let mut msg = format!("{tool}: error: {err}");
            for cause in err.chain().skip(1) {
                let cause = cause.to_string();
                if !msg.contains(&cause) {
                    msg.push_str(&format!("\n  caused by: {cause}"));
                }
            }
            eprintln!("{msg}");
            ExitCode::from(code_for(&err))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshmove_kube::plan::{PlanError, Target};

    #[test]
    fn plan_errors_exit_by_class() {
        let no_journal = anyhow::Error::from(PlanError::NoJournal { namespace: "shop".into() });
        assert_eq!(code_for(&no_journal), USAGE);
        let timeout = PlanError::Timeout { target: Target::namespace("shop"), state: "0/1 ready".into(), timeout: std::time::Duration::from_secs(1) };
        assert_eq!(code_for(&anyhow::Error::from(timeout).context("enable")), FINDINGS);
        assert_eq!(code_for(&anyhow::anyhow!("bad flag")), USAGE);
    }
}
