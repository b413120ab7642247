//! Every webhook adapter passes the same conformance check over its recorded fixtures.

use std::path::PathBuf;

use switchboard_channels::conformance::{check_fixtures, load_fixtures};
use switchboard_channels::douyin::{DouyinAdapter, DouyinConfig};
use switchboard_channels::wechat::{WechatAdapter, WechatConfig};

fn fixtures_dir(channel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(channel)
}

fn text(app: &serde_json::Value, name: &str) -> Result<String, String> {
    app.get(name)
        .and_then(|value| value.as_str())
        .map(str::to_owned)
        .ok_or(format!("app.{name} is missing"))
}

#[test]
fn wechat_adapter_passes_conformance() {
    let fixtures = load_fixtures(&fixtures_dir("wechat")).expect("wechat fixtures load");
    assert!(fixtures.len() >= 10);
    let report = check_fixtures(&fixtures, |app| {
        WechatAdapter::new(WechatConfig {
            appid: text(app, "appid")?,
            token: text(app, "token")?,
            encoding_aes_key: text(app, "encoding_aes_key").ok(),
            max_timestamp_skew: None,
        })
        .map_err(|error| error.to_string())
    });
    report.assert_passed();
    assert!(
        report.checks > fixtures.len() * 3,
        "tamper checks ran: {}",
        report.checks
    );
}

#[test]
fn douyin_adapter_passes_conformance() {
    let fixtures = load_fixtures(&fixtures_dir("douyin")).expect("douyin fixtures load");
    assert!(fixtures.len() >= 5);
    let report = check_fixtures(&fixtures, |app| {
        Ok(DouyinAdapter::new(DouyinConfig {
            client_key: text(app, "client_key")?,
            client_secret: text(app, "client_secret")?,
        }))
    });
    report.assert_passed();
}
