//! The real send code against a local server: request bodies, token caching and refresh, and
//! the classification of failures into retryable and permanent.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use switchboard_channels::adapter::{ChannelSender, SendError};
use switchboard_channels::douyin::{DouyinReplyContext, DouyinSender, DouyinSenderConfig};
use switchboard_channels::wechat::{WechatSender, WechatSenderConfig};
use switchboard_channels::{ChannelKind, OutboundMessage};

use crate::test_server::{Recorded, TestServer};

fn outbound(channel: ChannelKind, user: &str, text: &str) -> OutboundMessage {
    OutboundMessage {
        channel,
        app: Some("app".into()),
        external_user_id: user.into(),
        text: text.into(),
    }
}

/// A WeChat stand-in: tokens TOKEN1, TOKEN2, ... with `expires_in`; send answers come from `send`.
async fn wechat_server(
    expires_in: u64,
    send: impl Fn(&Recorded, usize) -> (u16, String) + Send + Sync + 'static,
) -> TestServer {
    let tokens = Arc::new(AtomicUsize::new(0));
    let sends = Arc::new(AtomicUsize::new(0));
    TestServer::start(Arc::new(move |request: &Recorded| match request.path() {
        "/cgi-bin/token" => {
            let issued = tokens.fetch_add(1, Ordering::SeqCst) + 1;
            (
                200,
                json!({"access_token": format!("TOKEN{issued}"), "expires_in": expires_in})
                    .to_string(),
            )
        }
        "/cgi-bin/message/custom/send" => send(request, sends.fetch_add(1, Ordering::SeqCst)),
        _ => (404, "{}".to_owned()),
    }))
    .await
}

fn ok() -> (u16, String) {
    (200, r#"{"errcode":0,"errmsg":"ok"}"#.to_owned())
}

fn errcode(code: i64) -> (u16, String) {
    (
        200,
        json!({"errcode": code, "errmsg": "from the test server"}).to_string(),
    )
}

fn wechat_sender(server: &TestServer) -> WechatSender {
    WechatSender::new(
        WechatSenderConfig::new("wxAPPID", "s3cret").with_base_url(server.base_url.clone()),
    )
}

#[tokio::test]
async fn wechat_sends_custom_text_and_caches_the_token() {
    let server = wechat_server(7200, |_, _| ok()).await;
    let sender = wechat_sender(&server);
    sender
        .send(&outbound(ChannelKind::Wechat, "oOPENID", "你好"), None)
        .await
        .expect("first send");
    sender
        .send(&outbound(ChannelKind::Wechat, "oOPENID", "second"), None)
        .await
        .expect("second send");

    assert_eq!(sender.token_fetches(), 1);
    let token_requests = server.requests_to("/cgi-bin/token");
    assert_eq!(token_requests.len(), 1);
    assert_eq!(token_requests[0].method, "GET");
    assert_eq!(
        token_requests[0].query("grant_type").as_deref(),
        Some("client_credential")
    );
    assert_eq!(token_requests[0].query("appid").as_deref(), Some("wxAPPID"));
    assert_eq!(token_requests[0].query("secret").as_deref(), Some("s3cret"));

    let sends = server.requests_to("/cgi-bin/message/custom/send");
    assert_eq!(sends.len(), 2);
    assert_eq!(sends[0].method, "POST");
    assert_eq!(sends[0].query("access_token").as_deref(), Some("TOKEN1"));
    assert_eq!(sends[1].query("access_token").as_deref(), Some("TOKEN1"));
    assert_eq!(
        sends[0].json(),
        json!({"touser": "oOPENID", "msgtype": "text", "text": {"content": "你好"}})
    );
}

#[tokio::test]
async fn wechat_refreshes_the_token_before_it_expires() {
    // Tokens valid 60 s with a 300 s refresh margin are already due: each call fetches anew.
    let server = wechat_server(60, |_, _| ok()).await;
    let sender = wechat_sender(&server);
    assert_eq!(sender.access_token().await.expect("token"), "TOKEN1");
    assert_eq!(sender.access_token().await.expect("token"), "TOKEN2");
    assert_eq!(sender.token_fetches(), 2);
}

#[tokio::test]
async fn wechat_refreshes_the_token_when_refused_and_retries_once() {
    for refused in [40001, 42001] {
        let server = wechat_server(
            7200,
            move |_, attempt| if attempt == 0 { errcode(refused) } else { ok() },
        )
        .await;
        let sender = wechat_sender(&server);
        sender
            .send(&outbound(ChannelKind::Wechat, "oOPENID", "hi"), None)
            .await
            .expect("send after refresh");
        let sends = server.requests_to("/cgi-bin/message/custom/send");
        assert_eq!(sends.len(), 2);
        assert_eq!(sends[0].query("access_token").as_deref(), Some("TOKEN1"));
        assert_eq!(sends[1].query("access_token").as_deref(), Some("TOKEN2"));
        assert_eq!(sender.token_fetches(), 2);
    }
    // Refused again after the refresh: retryable, and not retried in a loop.
    let server = wechat_server(7200, |_, _| errcode(40001)).await;
    let sender = wechat_sender(&server);
    let error = sender
        .send(&outbound(ChannelKind::Wechat, "oOPENID", "hi"), None)
        .await
        .expect_err("refused");
    assert!(matches!(error, SendError::TokenRejected(_)), "{error:?}");
    assert!(error.is_retryable());
    assert_eq!(server.requests_to("/cgi-bin/message/custom/send").len(), 2);
}

#[tokio::test]
async fn wechat_classifies_failures() {
    let cases: Vec<((u16, String), &str, bool)> = vec![
        (errcode(45015), "reply_window_expired", false),
        (errcode(40003), "invalid_recipient", false),
        (errcode(45011), "rate_limited", true),
        (errcode(-1), "provider_error", true),
        (errcode(99999), "provider_error", false),
        ((500, "{}".to_owned()), "provider_unavailable", true),
        ((429, "{}".to_owned()), "rate_limited", true),
        ((200, "not json".to_owned()), "bad_response", true),
    ];
    for (answer, code, retryable) in cases {
        let answer = Arc::new(answer);
        let server = wechat_server(7200, move |_, _| (*answer).clone()).await;
        let error = wechat_sender(&server)
            .send(&outbound(ChannelKind::Wechat, "oOPENID", "hi"), None)
            .await
            .expect_err("send fails");
        assert_eq!(error.code(), code, "{error:?}");
        assert_eq!(error.is_retryable(), retryable, "{error:?}");
    }
}

#[tokio::test]
async fn wechat_45015_is_a_permanent_reply_window_failure() {
    let server = wechat_server(7200, |_, _| errcode(45015)).await;
    let error = wechat_sender(&server)
        .send(&outbound(ChannelKind::Wechat, "o", "late"), None)
        .await
        .expect_err("fails");
    assert!(matches!(error, SendError::ReplyWindowExpired(_)));
    assert!(!error.is_retryable());
    assert!(error.to_string().starts_with("reply window expired"));
}

#[tokio::test]
async fn wechat_bad_credentials_and_network_failures() {
    let server = TestServer::start(Arc::new(|_: &Recorded| {
        (
            200,
            json!({"errcode": 40125, "errmsg": "invalid appsecret"}).to_string(),
        )
    }))
    .await;
    let error = wechat_sender(&server)
        .access_token()
        .await
        .expect_err("bad secret");
    assert_eq!(error.code(), "bad_credentials");
    assert!(!error.is_retryable());

    // A port nothing listens on: a retryable network error that does not leak the secret.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("addr");
    drop(listener);
    let mut config =
        WechatSenderConfig::new("wxAPPID", "s3cret").with_base_url(format!("http://{address}"));
    config.timeout = Duration::from_secs(2);
    let error = WechatSender::new(config)
        .access_token()
        .await
        .expect_err("nothing listens");
    assert!(matches!(error, SendError::Network(_)), "{error:?}");
    assert!(error.is_retryable());
    assert!(!error.to_string().contains("s3cret"));

    // Empty text is refused before any call.
    let server = wechat_server(7200, |_, _| ok()).await;
    let error = wechat_sender(&server)
        .send(&outbound(ChannelKind::Wechat, "o", "  "), None)
        .await
        .expect_err("empty");
    assert_eq!(error.code(), "rejected");
    assert!(server.requests().is_empty());
}

fn douyin_context() -> DouyinReplyContext {
    DouyinReplyContext {
        account_open_id: "_000ACCOUNT".into(),
        conversation_id: "@conv".into(),
        msg_id: "@msg".into(),
    }
}

async fn douyin_server(
    send: impl Fn(&Recorded, usize) -> (u16, String) + Send + Sync + 'static,
) -> TestServer {
    let tokens = Arc::new(AtomicUsize::new(0));
    let sends = Arc::new(AtomicUsize::new(0));
    TestServer::start(Arc::new(move |request: &Recorded| match request.path() {
        "/oauth/client_token/" => {
            let issued = tokens.fetch_add(1, Ordering::SeqCst) + 1;
            let data = json!({"access_token": format!("clt.{issued}"), "expires_in": 7200, "error_code": 0, "description": ""});
            (200, json!({"data": data, "message": "success"}).to_string())
        }
        "/im/send/msg/" => send(request, sends.fetch_add(1, Ordering::SeqCst)),
        _ => (404, "{}".to_owned()),
    }))
    .await
}

fn douyin_ok() -> (u16, String) {
    (200, json!({"data": {"error_code": 0, "description": "", "msg_id": "@sent1"}, "extra": {"error_code": 0}}).to_string())
}

#[tokio::test]
async fn douyin_sends_private_message_with_cached_client_token() {
    let server = douyin_server(|_, _| douyin_ok()).await;
    let sender = DouyinSender::new(
        DouyinSenderConfig::new("awKEY", "dySECRET").with_base_url(server.base_url.clone()),
    );
    let context = douyin_context().to_context();
    let receipt = sender
        .send(
            &outbound(ChannelKind::Douyin, "_000CUSTOMER", "你好"),
            Some(&context),
        )
        .await
        .expect("sent");
    assert_eq!(receipt.provider_message_id.as_deref(), Some("@sent1"));
    sender
        .send(
            &outbound(ChannelKind::Douyin, "_000CUSTOMER", "again"),
            Some(&context),
        )
        .await
        .expect("sent");
    assert_eq!(sender.token_fetches(), 1);

    let token_request = &server.requests_to("/oauth/client_token/")[0];
    assert_eq!(
        token_request.json(),
        json!({"client_key": "awKEY", "client_secret": "dySECRET", "grant_type": "client_credential"})
    );
    let send = &server.requests_to("/im/send/msg/")[0];
    assert_eq!(send.method, "POST");
    assert_eq!(send.query("open_id").as_deref(), Some("_000ACCOUNT"));
    assert_eq!(send.header("access-token"), Some("clt.1"));
    assert_eq!(
        send.json(),
        json!({
            "to_user_id": "_000CUSTOMER",
            "conversation_id": "@conv",
            "msg_id": "@msg",
            "scene": "im_replay_msg",
            "content": {"msg_type": 1, "text": {"text": "你好"}}
        })
    );
}

#[tokio::test]
async fn douyin_refreshes_a_refused_token_and_classifies_errors() {
    let server = douyin_server(|_, attempt| {
        if attempt == 0 {
            (
                200,
                json!({"err_no": 28001008, "err_msg": "access_token expired"}).to_string(),
            )
        } else {
            douyin_ok()
        }
    })
    .await;
    let sender = DouyinSender::new(
        DouyinSenderConfig::new("awKEY", "dySECRET").with_base_url(server.base_url.clone()),
    );
    let context = douyin_context().to_context();
    sender
        .send(
            &outbound(ChannelKind::Douyin, "_000CUSTOMER", "hi"),
            Some(&context),
        )
        .await
        .expect("sent after refresh");
    let sends = server.requests_to("/im/send/msg/");
    assert_eq!(sends[1].header("access-token"), Some("clt.2"));

    let server = douyin_server(|_, _| (503, "{}".to_owned())).await;
    let sender = DouyinSender::new(
        DouyinSenderConfig::new("awKEY", "dySECRET").with_base_url(server.base_url.clone()),
    );
    let error = sender
        .send(
            &outbound(ChannelKind::Douyin, "_000CUSTOMER", "hi"),
            Some(&context),
        )
        .await
        .expect_err("503");
    assert!(error.is_retryable());

    let error = sender
        .send(&outbound(ChannelKind::Douyin, "_000CUSTOMER", "hi"), None)
        .await
        .expect_err("no context");
    assert_eq!(error.code(), "rejected");
    assert!(!error.is_retryable());
}
