//! The input itself: every kind the checks read could be read. A live check cannot tell "none
//! listed" from "not allowed to list": the checks that needed a refused kind are skipped, and this
//! one fails naming each kind, so a partly readable cluster never passes.

use meshmove_model::inventory::Inventory;

use crate::catalog;
use crate::context::SpireContext;
use meshmove_model::findings::{CategoryDef, CheckDef, Detail, Verdict};

pub fn category<'a>() -> CategoryDef<SpireContext<'a>> {
    CategoryDef { name: "inputs", available: |_| Ok(()), checks: vec![CheckDef::new(&catalog::INPUTS_READ, |cx| read(cx.inventory))] }
}

/// One problem per kind the cluster refused (403) or did not find although every API server
/// serves it (404). Files that were read are complete by definition (an unreadable file stops
/// the run before any check).
pub fn read(inventory: &Inventory) -> Verdict {
    Verdict::from_problems(
        inventory
            .unread()
            .into_iter()
            .map(|(kind, why)| Detail::new(format!("{} could not be listed: {}", kind.resource(), why.describe(kind))))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use meshmove_model::inventory::{Inventory, SourceInfo, Unavailable, kinds};

    use super::*;

    #[test]
    fn refused_and_missing_built_in_kinds_fail_absent_crds_do_not() {
        let mut listed = BTreeMap::new();
        listed.insert(&kinds::POD, Some(Unavailable::Forbidden { message: "pods is forbidden: User \"jane\" cannot list".into() }));
        listed.insert(&kinds::NODE, Some(Unavailable::NotFound { message: "the server answered 404".into() }));
        listed.insert(&kinds::CLUSTER_SPIFFE_ID, Some(Unavailable::NotServed));
        listed.insert(&kinds::DAEMON_SET, None);
        let source = SourceInfo::Cluster { context: "c".into(), namespace: None };
        let inventory = Inventory::from_cluster(Vec::new(), listed, source, "default".into());
        let Verdict::Fail(problems) = read(&inventory) else { panic!("a refused list must fail the check") };
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 2, "{text:?}");
        assert!(text.iter().any(|t| t.starts_with("pods could not be listed: pods is forbidden")), "{text:?}");
        assert!(text.iter().any(|t| t.starts_with("nodes could not be listed: the server answered 404")), "{text:?}");
        let files = Inventory::from_files(Vec::new(), vec!["x.yaml".into()], "default".into());
        assert_eq!(read(&files), Verdict::Pass(Vec::new()));
    }
}
