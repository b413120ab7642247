//! The HTTP surface: each module owns its routes, merged here.

mod admin;
mod admin_ui;
mod agent;
pub(crate) mod audit;
pub(crate) mod auth;
mod body;
mod bot;
mod channel_apps;
mod client_ip;
pub(crate) mod connections;
mod exports;
mod files;
mod gaps;
mod identity;
mod jobs;
mod kb;
pub(crate) mod live;
pub(crate) mod members;
mod metrics;
mod mobile;
mod pages;
mod policies;
pub(crate) mod record;
mod reports;
mod stall;
mod tenant_settings;
mod upload;
mod web;
mod webhooks;
pub(crate) mod ws;

pub use admin::agent_token;
pub use members::{add_member, PASSWORD_CHECKS_AT_ONCE};
/// The dedicated metrics listener's router (`metrics_addr`).
pub use metrics::dedicated as metrics_router;
pub use stall::{StallListener, WRITE_STALL_TIMEOUT};
pub use upload::UPLOADS_AT_ONCE;

use axum::Router;

use crate::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(web::router(&state))
        .merge(agent::router())
        .merge(admin::router())
        .merge(kb::router())
        .merge(gaps::router())
        .merge(bot::router())
        .merge(tenant_settings::router())
        .merge(policies::router())
        .merge(metrics::router())
        .merge(pages::router())
        .merge(admin_ui::router())
        .merge(channel_apps::router())
        .merge(webhooks::router(&state))
        .merge(mobile::router())
        .merge(members::router())
        .merge(live::router())
        .merge(jobs::router())
        .merge(exports::router())
        .merge(reports::router())
        .merge(identity::router())
        .merge(files::router())
        // Route layers see the matched route: CSRF and the audit log for tenant routes.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            audit::guard,
        ))
        .fallback(|| async {
            crate::error::HttpError(crate::error::ServiceError::NotFound("route"))
        })
        .with_state(state)
}
