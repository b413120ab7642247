//! `/metrics` in the Prometheus text format: the bot workers and the policy engine so far.

use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::botflow::LATENCY_BUCKETS_MS;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
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
    let _ = writeln!(out, "# TYPE switchboard_bot_busy_handoffs_total counter");
    let _ = writeln!(
        out,
        "switchboard_bot_busy_handoffs_total {}",
        bot.busy_handoffs
    );
    let _ = writeln!(out, "# TYPE switchboard_bot_decisions_total counter");
    let mut kinds: Vec<_> = bot.decisions.iter().collect();
    kinds.sort();
    for (kind, count) in kinds {
        let _ = writeln!(
            out,
            "switchboard_bot_decisions_total{{kind=\"{kind}\"}} {count}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP switchboard_bot_turn_seconds Bot turn latency, queue wait included."
    );
    let _ = writeln!(out, "# TYPE switchboard_bot_turn_seconds histogram");
    let mut cumulative = 0;
    for (index, count) in bot.latency_buckets.iter().enumerate() {
        cumulative += count;
        let bound = LATENCY_BUCKETS_MS
            .get(index)
            .map(|ms| format!("{}", *ms as f64 / 1000.0))
            .unwrap_or_else(|| "+Inf".into());
        let _ = writeln!(
            out,
            "switchboard_bot_turn_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
        );
    }
    let _ = writeln!(
        out,
        "switchboard_bot_turn_seconds_sum {}",
        bot.latency_sum_us as f64 / 1e6
    );
    let _ = writeln!(out, "switchboard_bot_turn_seconds_count {}", bot.turns);
    state
        .chat
        .policies
        .engine()
        .metrics()
        .render_prometheus(&mut out);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
