//! The web and mobile customer frame decoder: any text a socket can carry.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_channels::web::decode_client_frame;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = decode_client_frame(text);
    }
});
