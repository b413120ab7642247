//! `/metrics` in the Prometheus text format, for this machine or a scraper with `metrics_token`.

use std::fmt::Write;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::error::{ApiResult, ServiceError};
use crate::http::auth::bearer;
use crate::AppState;
use store::crypto::constant_time_eq;

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

/// The router of the dedicated metrics listener (`metrics_addr`): `/metrics` alone.
pub fn dedicated(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics_dedicated))
        .fallback(|| async {
            crate::error::HttpError(crate::error::ServiceError::NotFound("route"))
        })
        .with_state(state)
}

/// Who may read the metrics (they name tenants and their queues): with a configured token, a
/// request that brings it; without one, only this machine (or, on the dedicated listener, any
/// peer that can reach its private address: `anyone`).
fn may_read(
    token: Option<&str>,
    peer: SocketAddr,
    headers: &HeaderMap,
    anyone: bool,
) -> ApiResult<()> {
    match token {
        Some(token) => match bearer(headers) {
            Some(given) if constant_time_eq(given, token) => Ok(()),
            _ => Err(ServiceError::Unauthorized.into()),
        },
        None if anyone || peer.ip().is_loopback() => Ok(()),
        // Set `metrics_token` to scrape from another machine.
        None => Err(ServiceError::Forbidden.into()),
    }
}

async fn metrics(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> ApiResult<impl IntoResponse> {
    // With a listener of its own, the public port has no metrics.
    if state.settings.metrics_addr.is_some() {
        return Err(ServiceError::NotFound("route").into());
    }
    may_read(
        state.settings.metrics_token.as_deref(),
        peer,
        &headers,
        false,
    )?;
    Ok(exposition(&state).await)
}

async fn metrics_dedicated(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> ApiResult<impl IntoResponse> {
    may_read(
        state.settings.metrics_token.as_deref(),
        peer,
        &headers,
        true,
    )?;
    Ok(exposition(&state).await)
}

/// Every metric in the Prometheus text format.
async fn exposition(state: &AppState) -> impl IntoResponse {
    let mut out = String::new();
    let bot = state.chat.bot_stats();
    let _ = writeln!(
        out,
        "# HELP switchboard_bot_queue_depth Bot turns waiting for a worker."
    );
    let _ = writeln!(out, "# TYPE switchboard_bot_queue_depth gauge");
    let _ = writeln!(out, "switchboard_bot_queue_depth {}", bot.queue_depth);
    let _ = writeln!(out, "# TYPE switchboard_bot_queue_capacity gauge");
    let _ = writeln!(out, "switchboard_bot_queue_capacity {}", bot.queue_capacity);
    let _ = writeln!(
        out,
        "# HELP switchboard_bot_last_wait_seconds How long the last bot turn waited for a worker."
    );
    let _ = writeln!(out, "# TYPE switchboard_bot_last_wait_seconds gauge");
    let _ = writeln!(
        out,
        "switchboard_bot_last_wait_seconds {}",
        bot.last_wait_us as f64 / 1e6
    );
    let _ = writeln!(out, "# HELP switchboard_bot_shed_total Bot turns shed under backlog (busy reply or straight to a person).");
    let _ = writeln!(out, "# TYPE switchboard_bot_shed_total counter");
    let _ = writeln!(out, "switchboard_bot_shed_total {}", bot.shed);
    if let Some(lag) = state.chat.bot_dense_lag() {
        let _ = writeln!(out, "# HELP switchboard_bot_dense_lag Knowledge-base changes the bot's embeddings have not caught up with.");
        let _ = writeln!(out, "# TYPE switchboard_bot_dense_lag gauge");
        let _ = writeln!(out, "switchboard_bot_dense_lag {lag}");
    }
    let _ = writeln!(out, "# TYPE switchboard_bot_shedding gauge");
    let _ = writeln!(out, "switchboard_bot_shedding {}", u8::from(bot.shedding));
    let _ = writeln!(
        out,
        "# HELP switchboard_rate_limited_total Requests refused by a rate limit, by scope."
    );
    let _ = writeln!(out, "# TYPE switchboard_rate_limited_total counter");
    for (scope, count) in state.chat.limits.refused() {
        let _ = writeln!(
            out,
            "switchboard_rate_limited_total{{scope=\"{scope}\"}} {count}"
        );
    }
    let _ = writeln!(out, "# TYPE switchboard_bot_decisions_total counter");
    let mut kinds: Vec<_> = bot.decisions.iter().collect();
    kinds.sort();
    for (kind, count) in kinds {
        let _ = writeln!(
            out,
            "switchboard_bot_decisions_total{{kind=\"{kind}\"}} {count}"
        );
    }
    state.chat.turns_latency().render(
        &mut out,
        "switchboard_bot_turn_seconds",
        "Bot turn latency, queue wait included.",
    );
    state.chat.metrics.render(&mut out);
    if let Some(bus) = state.chat.cluster.bus_stats() {
        bus.render(&mut out);
    }
    match state.store.queue_summary().await {
        Ok(queues) => {
            let _ = writeln!(
                out,
                "# HELP switchboard_queue_length Conversations waiting for an agent."
            );
            let _ = writeln!(out, "# TYPE switchboard_queue_length gauge");
            for queue in &queues {
                let _ = writeln!(
                    out,
                    "switchboard_queue_length{{tenant=\"{}\",skill_group=\"{}\"}} {}",
                    label(&queue.tenant),
                    label(&queue.skill_group),
                    queue.waiting
                );
            }
            let _ = writeln!(out, "# HELP switchboard_queue_oldest_wait_seconds How long the longest-waiting conversation has waited.");
            let _ = writeln!(out, "# TYPE switchboard_queue_oldest_wait_seconds gauge");
            for queue in &queues {
                let _ = writeln!(
                    out,
                    "switchboard_queue_oldest_wait_seconds{{tenant=\"{}\",skill_group=\"{}\"}} {}",
                    label(&queue.tenant),
                    label(&queue.skill_group),
                    queue.oldest_wait_ms as f64 / 1000.0
                );
            }
        }
        Err(error) => tracing::warn!(error = %error, "cannot read the queues for /metrics"),
    }
    state
        .chat
        .policies
        .engine()
        .metrics()
        .render_prometheus(&mut out);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

/// A label value in the Prometheus text format: backslash, quote and newline escaped, so a
/// name chosen by a tenant or an agent cannot add lines or labels.
fn label(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_cannot_inject_lines_or_labels() {
        assert_eq!(label("general"), "general");
        assert_eq!(
            label("x\"} 1\nswitchboard_fake 9\\"),
            "x\\\"} 1\\nswitchboard_fake 9\\\\"
        );
    }

    fn with_bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        headers
    }

    #[test]
    fn metrics_are_for_this_machine_or_whoever_has_the_token() {
        let local: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let local6: SocketAddr = "[::1]:9".parse().unwrap();
        let remote: SocketAddr = "10.1.2.3:9".parse().unwrap();
        let none = HeaderMap::new();
        assert!(may_read(None, local, &none, false).is_ok());
        assert!(may_read(None, local6, &none, false).is_ok());
        assert!(matches!(
            may_read(None, remote, &none, false),
            Err(crate::error::HttpError(ServiceError::Forbidden))
        ));
        // On the dedicated listener (a private address) any peer may, unless a token is set.
        assert!(may_read(None, remote, &none, true).is_ok());
        assert!(may_read(Some("s3cret"), remote, &none, true).is_err());
        // With a token, the token decides, from anywhere (loopback included).
        assert!(may_read(Some("s3cret"), remote, &with_bearer("s3cret"), false).is_ok());
        for (peer, headers) in [
            (remote, none.clone()),
            (local, none),
            (remote, with_bearer("wrong")),
        ] {
            assert!(matches!(
                may_read(Some("s3cret"), peer, &headers, false),
                Err(crate::error::HttpError(ServiceError::Unauthorized))
            ));
        }
    }
}
