//! Hostile fixture: allocates and touches memory until something stops it.

wit_bindgen::generate!({ path: "../../wit", world: "routing" });

struct Bomb;

impl Guest for Bomb {
    fn route(_input: Handoff) -> RoutingDecision {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            let chunk = vec![0xA5u8; 1 << 20];
            hoard.push(core::hint::black_box(chunk));
        }
    }
}

export!(Bomb);
