//! Hostile fixture: never returns.

wit_bindgen::generate!({ path: "../../wit", world: "routing" });

struct Spin;

impl Guest for Spin {
    fn route(input: Handoff) -> RoutingDecision {
        let mut counter: u64 = input.now_unix_ms;
        loop {
            counter =
                core::hint::black_box(counter.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

export!(Spin);
