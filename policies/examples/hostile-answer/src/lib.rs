//! Hostile fixture: answers with a skill group of 4 MiB (valid answers have at most 64 bytes),
//! which the host would copy out of the guest before validating it.

wit_bindgen::generate!({ path: "../../wit", world: "routing" });

use switchboard::policy::types::Route;

struct HugeAnswer;

impl Guest for HugeAnswer {
    fn route(_input: Handoff) -> RoutingDecision {
        RoutingDecision::Route(Route {
            skill_group: "x".repeat(4 << 20),
            priority: 1,
            preferred_agent: None,
        })
    }
}

export!(HugeAnswer);
