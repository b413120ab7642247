//! Hostile fixture: answers, but outside the contract (priority 42 to an empty group).

wit_bindgen::generate!({ path: "../../wit", world: "routing" });

use switchboard::policy::types::Route;

struct Invalid;

impl Guest for Invalid {
    fn route(_input: Handoff) -> RoutingDecision {
        RoutingDecision::Route(Route {
            skill_group: String::new(),
            priority: 42,
            preferred_agent: None,
        })
    }
}

export!(Invalid);
