//! A policy with a bug that the upload's sample call cannot see: it routes everyone to `general`
//! at priority 4, but traps for a customer with the CRM tag `legacy` (an unwrap on a lookup that
//! only fails there). The host then routes with its built-in strategy and says so.

wit_bindgen::generate!({ path: "../../wit", world: "routing" });

use switchboard::policy::types::Route;

struct FlakyRouting;

impl Guest for FlakyRouting {
    fn route(input: Handoff) -> RoutingDecision {
        let legacy = input.customer.crm_tags.iter().position(|tag| tag == "legacy");
        // The bug: a legacy customer's tier is looked up in a table that has no entry for it.
        let tiers: [u8; 0] = [];
        if let Some(index) = legacy {
            let tier = tiers.get(index).copied().unwrap();
            core::hint::black_box(tier);
        }
        RoutingDecision::Route(Route {
            skill_group: "general".into(),
            priority: 4,
            preferred_agent: None,
        })
    }
}

export!(FlakyRouting);
