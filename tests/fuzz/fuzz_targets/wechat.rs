//! WeChat pushes: body format detection, the XML/JSON message parser, and safe-mode decryption
//! (with a fixed key), on any bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_channels::wechat::crypto::{decrypt, AesKey};
use switchboard_channels::wechat::{BodyFormat, WechatMessage};

fuzz_target!(|data: &[u8]| {
    if let Ok(format) = BodyFormat::detect(data) {
        if let Ok(message) = WechatMessage::parse(data, format) {
            let _ = message.msg_type();
            let _ = message.field("Content");
        }
    }
    for format in [BodyFormat::Xml, BodyFormat::Json] {
        let _ = WechatMessage::parse(data, format);
    }
    let key = AesKey::from_encoding_aes_key("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG")
        .expect("a valid 43-character key");
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = decrypt(&key, text);
    }
});
