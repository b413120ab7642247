//! Douyin pushes: any body, correctly signed (so the fuzzer reaches the decoder and the
//! normalizer, not only the signature check).
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_channels::adapter::{ChannelAdapter, WebhookRequest};
use switchboard_channels::douyin::{DouyinAdapter, DouyinConfig};

fuzz_target!(|data: &[u8]| {
    let adapter = DouyinAdapter::new(DouyinConfig {
        client_key: "fuzz-key".into(),
        client_secret: "fuzz-secret".into(),
    })
    .with_max_age(None);
    let request = WebhookRequest::post(data.to_vec())
        .with_header("x-douyin-signature", &adapter.sign(data));
    let _ = adapter.handle(&request);
});
