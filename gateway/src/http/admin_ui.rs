//! The operator console for knowledge managers, tenant admins and supervisors: a Preact app in
//! `gateway/admin-ui`, built by Vite into `admin-ui/dist` and embedded by `build.rs`.
//!
//! `GET /admin` and `/admin/` give `index.html` (never cached, so a new binary's console loads
//! at once); `GET /admin/assets/{file}` gives the content-hashed bundles, cached for a year.
//! Every answer carries a strict Content-Security-Policy: only this origin's scripts, styles and
//! connections, no inline script. A binary built without the dist folder answers 503
//! `console_not_built`.

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::AppState;

mod built {
    include!(concat!(env!("OUT_DIR"), "/admin_ui_files.rs"));
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(index))
        .route("/admin/", get(index))
        .route("/admin/assets/{file}", get(asset))
}

/// An embedded file of the dist folder by its path inside it.
fn file(path: &str) -> Option<(&'static str, &'static [u8])> {
    built::FILES
        .iter()
        .find(|(name, _, _)| *name == path)
        .map(|(_, content_type, bytes)| (*content_type, *bytes))
}

async fn index(headers: HeaderMap) -> Response {
    let Some((content_type, bytes)) = file("index.html") else {
        return not_built();
    };
    let mut response = (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        bytes,
    )
        .into_response();
    secure(&mut response, &headers);
    response
}

async fn asset(
    name: Result<Path<String>, axum::extract::rejection::PathRejection>,
    headers: HeaderMap,
) -> Response {
    if built::FILES.is_empty() {
        return not_built();
    }
    // A name that is not UTF-8 names no asset.
    let Some((content_type, bytes)) = name
        .ok()
        .and_then(|Path(name)| file(&format!("assets/{name}")))
    else {
        return crate::error::HttpError(crate::error::ServiceError::NotFound("asset"))
            .into_response();
    };
    let mut response = (
        [
            (header::CONTENT_TYPE, content_type),
            // File names carry a hash of their content: a changed file is a new name.
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        bytes,
    )
        .into_response();
    secure(&mut response, &headers);
    response
}

fn not_built() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(serde_json::json!({
            "code": "console_not_built",
            "message": "the operator console is not built into this binary: run scripts/setup.sh, then build again",
        })),
    )
        .into_response()
}

/// The console's security headers. WebSocket URLs of this host are named in `connect-src`
/// because older browsers do not count `ws:`/`wss:` as `'self'`.
fn secure(response: &mut Response, request: &HeaderMap) {
    let host = request
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .filter(|host| {
            !host.is_empty()
                && host.len() <= 255
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        });
    let sockets = host
        .map(|host| format!(" ws://{host} wss://{host}"))
        .unwrap_or_default();
    let policy = format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
         font-src 'self'; connect-src 'self'{sockets}; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    );
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&policy) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}
