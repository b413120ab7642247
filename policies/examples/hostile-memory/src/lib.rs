//! Hostile fixture: allocates memory until something stops it (1 MiB blocks, each touched once,
//! so it is the growth that is hostile, not the CPU spent filling).

wit_bindgen::generate!({ path: "../../wit", world: "routing" });

struct Bomb;

impl Guest for Bomb {
    fn route(_input: Handoff) -> RoutingDecision {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut chunk: Vec<u8> = Vec::with_capacity(1 << 20);
            chunk.push(0xA5);
            hoard.push(core::hint::black_box(chunk));
        }
    }
}

export!(Bomb);
