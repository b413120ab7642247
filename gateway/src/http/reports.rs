//! Reports: `GET reports` (the whole report as JSON) and `GET reports/{table}.csv` (one of its
//! tables), filtered by period, channel, skill group and agent. Definitions in docs/reports.md.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::error::{ApiResult, ServiceError};
use crate::http::auth::{require, Area};
use crate::AppState;
use engine::reports::{self, Report};
use store::reports::EpisodeFilter;
use store::util::now_ms;

type PathParams<T> = Result<Path<T>, axum::extract::rejection::PathRejection>;
type QueryParams = Result<Query<ReportQuery>, axum::extract::rejection::QueryRejection>;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants/{tenant}/reports", get(whole))
        .route("/v1/tenants/{tenant}/reports/{table}", get(table))
}

/// `from` and `to`: milliseconds since the epoch, or local dates `YYYY-MM-DD` (`to` inclusive).
/// Default: the last 7 days.
#[derive(Debug, Default, Deserialize)]
pub struct ReportQuery {
    from: Option<String>,
    to: Option<String>,
    channel: Option<String>,
    skill_group: Option<String>,
    agent: Option<String>,
    tag: Option<String>,
}

const DAY_MS: i64 = 86_400_000;

/// A bound of the period: epoch milliseconds, or the start of a local date.
fn parse_bound(value: &str, offset_minutes: i32) -> Option<i64> {
    if let Ok(ms) = value.parse::<i64>() {
        return (ms >= 0).then_some(ms);
    }
    let mut parts = value.splitn(3, '-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: i64 = parts.next()?.parse().ok()?;
    let day: i64 = parts.next()?.parse().ok()?;
    if !(1970..=9999).contains(&year) || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    // Days since the epoch of a civil date (the inverse of reports::day_of).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * DAY_MS - i64::from(offset_minutes) * 60_000)
}

fn is_date(value: &str) -> bool {
    value.contains('-')
}

fn filter_of(query: &ReportQuery, offset_minutes: i32) -> ApiResult<EpisodeFilter> {
    let bad = |name: &str| {
        ServiceError::invalid(
            "bad_period",
            format!("`{name}` must be milliseconds since the epoch or a date YYYY-MM-DD"),
        )
    };
    let to = match &query.to {
        Some(value) => {
            let start = parse_bound(value, offset_minutes).ok_or_else(|| bad("to"))?;
            // A date names a whole day: up to its end.
            if is_date(value) {
                start + DAY_MS
            } else {
                start
            }
        }
        None => now_ms() + 1,
    };
    let from = match &query.from {
        Some(value) => parse_bound(value, offset_minutes).ok_or_else(|| bad("from"))?,
        None => to - 7 * DAY_MS,
    };
    let text = |value: &Option<String>, name: &str| -> ApiResult<Option<String>> {
        match value.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(value) if value.len() <= 128 => Ok(Some(value.to_owned())),
            Some(_) => Err(ServiceError::invalid(
                "bad_filter",
                format!("`{name}` is longer than 128 bytes"),
            )
            .into()),
        }
    };
    Ok(EpisodeFilter {
        from,
        to,
        channel: text(&query.channel, "channel")?,
        skill_group: text(&query.skill_group, "skill_group")?,
        agent: text(&query.agent, "agent")?,
        tag: text(&query.tag, "tag")?,
    })
}

async fn build(state: &AppState, tenant: &str, query: QueryParams) -> ApiResult<Report> {
    let Query(query) = query?;
    let settings = state.chat.tenant_settings(tenant).await;
    let filter = filter_of(&query, settings.utc_offset_minutes)?;
    Ok(reports::report(&state.store, tenant, &filter, settings.utc_offset_minutes).await?)
}

async fn whole(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<String>,
    query: QueryParams,
) -> ApiResult<Json<serde_json::Value>> {
    let Path(tenant) = path?;
    require(&state, &headers, &tenant, Area::Reports).await?;
    let report = build(&state, &tenant, query).await?;
    // Agents by name, for the tables (ids stay the keys).
    let agents: serde_json::Map<String, serde_json::Value> = state
        .store
        .agents(&tenant)
        .await?
        .into_iter()
        .map(|agent| (agent.id, json!(agent.name)))
        .collect();
    Ok(Json(json!({ "report": report, "agents": agents })))
}

async fn table(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<(String, String)>,
    query: QueryParams,
) -> ApiResult<Response> {
    let Path((tenant, file)) = path?;
    require(&state, &headers, &tenant, Area::Reports).await?;
    let name = file
        .strip_suffix(".csv")
        .filter(|name| reports::TABLES.contains(name))
        .ok_or_else(|| {
            ServiceError::invalid(
                "unknown_table",
                format!("tables: {}, each as NAME.csv", reports::TABLES.join(", ")),
            )
        })?
        .to_owned();
    let report = build(&state, &tenant, query).await?;
    let csv = reports::csv_table(&report, &name).unwrap_or_default();
    let filename = format!("{tenant}-{name}.csv");
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        // A byte-order mark so spreadsheet programs read the UTF-8 (Chinese names) right.
        format!("\u{feff}{csv}"),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_take_epoch_milliseconds_or_local_dates() {
        assert_eq!(parse_bound("1765065600000", 0), Some(1_765_065_600_000));
        assert_eq!(parse_bound("2025-12-07", 0), Some(1_765_065_600_000));
        // 00:00 in UTC+8 is 16:00 the day before in UTC.
        assert_eq!(parse_bound("2025-12-07", 480), Some(1_765_036_800_000));
        assert_eq!(parse_bound("2000-02-29", 0), Some(951_782_400_000));
        assert_eq!(parse_bound("2025-13-01", 0), None);
        assert_eq!(parse_bound("yesterday", 0), None);
        assert_eq!(parse_bound("-5", 0), None);
        let query = ReportQuery {
            from: Some("2025-12-01".into()),
            to: Some("2025-12-07".into()),
            ..Default::default()
        };
        let filter = filter_of(&query, 0).unwrap();
        assert_eq!(filter.to - filter.from, 7 * DAY_MS);
    }
}
