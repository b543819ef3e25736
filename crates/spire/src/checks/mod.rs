//! The built-in check categories, in report order.

pub mod agents;
pub mod certificates;
pub mod identities;
pub mod inputs;
pub mod istio;
pub mod registration;
pub mod server;
pub mod trust;

use super::context::SpireContext;
use meshmove_model::findings::CategoryDef;

/// Every built-in category, in the order they are reported.
pub fn categories<'a>() -> Vec<CategoryDef<SpireContext<'a>>> {
    vec![
        inputs::category(),
        server::category(),
        agents::category(),
        registration::category(),
        identities::category(),
        trust::category(),
        certificates::category(),
        istio::category(),
    ]
}
