//! The bindings generated from every version of the WIT package the host accepts, newest first.
//! A component is matched against each version's world in turn (`host::EngineInner::routing_pre`):
//! the one whose exported function type-checks is the one it was built against, and its input is
//! converted for that version (`convert`). The generated types never leave this crate.
//!
//! Adding a version: keep the previous `wit/` as `wit-X.Y.Z/` (unchanged but for comments), add
//! a module here, a `Routing`/`Quality` pre variant in `host.rs` and conversions in `convert.rs`.

/// `switchboard:policy@0.2.0` (`wit/`): messages carry attachments, and the routing input counts
/// the images and files the customer sent.
pub(crate) mod v0_2 {
    pub(crate) const VERSION: &str = "0.2.0";

    pub(crate) mod routing {
        wasmtime::component::bindgen!({ path: "wit", world: "routing" });
    }

    pub(crate) mod quality {
        // The quality world shares the routing world's generated types.
        wasmtime::component::bindgen!({
            path: "wit",
            world: "quality",
            with: { "switchboard:policy/types": super::routing::switchboard::policy::types },
        });
    }

    pub(crate) use routing::switchboard::policy::types;
}

/// `switchboard:policy@0.1.0` (`wit-0.1.0/`, frozen): the first version, without attachments.
pub(crate) mod v0_1 {
    pub(crate) const VERSION: &str = "0.1.0";

    pub(crate) mod routing {
        wasmtime::component::bindgen!({ path: "wit-0.1.0", world: "routing" });
    }

    pub(crate) mod quality {
        wasmtime::component::bindgen!({
            path: "wit-0.1.0",
            world: "quality",
            with: { "switchboard:policy/types": super::routing::switchboard::policy::types },
        });
    }

    pub(crate) use routing::switchboard::policy::types;
}
