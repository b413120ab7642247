//! VIP customers (level 3 and above, or the CRM tag `vip`) go to the `vip` group at priority 9;
//! everyone else goes to the skill hint (or `general`) at priority 2.

// Built twice: as `vip-routing` against the current WIT, and as `legacy-vip-routing` (feature
// `wit-0-1-0`) against the frozen 0.1.0, the fixture that proves old components still work.
#[cfg(not(feature = "wit-0-1-0"))]
wit_bindgen::generate!({ path: "../../wit", world: "routing" });
#[cfg(feature = "wit-0-1-0")]
wit_bindgen::generate!({ path: "../../wit-0.1.0", world: "routing" });

use switchboard::policy::types::Route;

struct VipRouting;

impl Guest for VipRouting {
    fn route(input: Handoff) -> RoutingDecision {
        let is_vip =
            input.customer.vip_level >= 3 || input.customer.crm_tags.iter().any(|tag| tag == "vip");
        if is_vip {
            return RoutingDecision::Route(Route {
                skill_group: "vip".into(),
                priority: 9,
                preferred_agent: None,
            });
        }
        let group = input
            .skill_hint
            .filter(|hint| !hint.is_empty())
            .unwrap_or_else(|| "general".into());
        RoutingDecision::Route(Route {
            skill_group: group,
            priority: 2,
            preferred_agent: None,
        })
    }
}

export!(VipRouting);
