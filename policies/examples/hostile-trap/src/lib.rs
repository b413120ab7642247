//! Hostile fixture: panics (a trap, since guests are built with panic = "abort").

wit_bindgen::generate!({ path: "../../wit", world: "routing" });

struct Trap;

impl Guest for Trap {
    fn route(input: Handoff) -> RoutingDecision {
        let groups: Vec<&str> = Vec::new();
        let index = core::hint::black_box(input.last_messages.len() + 7);
        panic!("no group at {index} of {}", groups.len())
    }
}

export!(Trap);
