//! Reports over ended episodes (see `docs/reports.md` for every definition): volume by day,
//! hour, channel, skill group and agent; the bot's decisions and resolution rate; queue wait,
//! first response, handle and resolution times as percentiles; satisfaction by agent and for the
//! bot alone against people.
//!
//! Every figure comes from the `episodes` rows (one per closed episode, written after the close)
//! and their ratings, read once per report; the arithmetic is here, the same for SQLite and
//! PostgreSQL.

use std::collections::BTreeMap;

use serde::Serialize;
use store::reports::{EpisodeFilter, RatedEpisode};
use store::Store;

use crate::error::{ServiceError, ServiceResult};

/// The longest period one report covers.
pub const MAX_PERIOD_MS: i64 = 400 * 86_400_000;

/// Percentiles of a duration, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Durations {
    pub count: usize,
    pub mean_ms: Option<i64>,
    pub p50_ms: Option<i64>,
    pub p90_ms: Option<i64>,
    pub p99_ms: Option<i64>,
}

impl Durations {
    fn of(mut values: Vec<i64>) -> Durations {
        if values.is_empty() {
            return Durations::default();
        }
        values.sort_unstable();
        let at = |q: f64| {
            // Nearest rank: the smallest value with at least q of the values at or below it.
            let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
            Some(values[rank - 1])
        };
        Durations {
            count: values.len(),
            mean_ms: Some(values.iter().sum::<i64>() / values.len() as i64),
            p50_ms: at(0.5),
            p90_ms: at(0.9),
            p99_ms: at(0.99),
        }
    }
}

/// One row of a breakdown (or the totals): a day, an hour of the day, a channel, a skill group
/// or an agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Row {
    pub key: String,
    /// Ended episodes with at least one customer message.
    pub episodes: usize,
    /// Ended without a person and with at least one answer from the knowledge base.
    pub bot_resolved: usize,
    /// Went to the queue for a person.
    pub handed_off: usize,
    /// Neither: the bot gave no answer and no person took over (the customer left).
    pub unresolved: usize,
    pub bot_resolution_rate: Option<f64>,
    pub handoff_rate: Option<f64>,
    pub customer_messages: i64,
    pub bot_answers: i64,
    pub bot_clarifies: i64,
    pub bot_out_of_scope: i64,
    /// From the handoff to an agent's assignment.
    pub queue_wait: Durations,
    /// From the handoff to the first agent message (the bot's time is not counted).
    pub first_response: Durations,
    /// From the assignment to the close.
    pub handle: Durations,
    /// From the handoff to the close.
    pub resolution: Durations,
    pub ratings: usize,
    pub csat_average: Option<f64>,
    /// Share of ratings of 4 or 5.
    pub csat_satisfied: Option<f64>,
}

#[derive(Default)]
struct Accumulator {
    row: Row,
    queue_wait: Vec<i64>,
    first_response: Vec<i64>,
    handle: Vec<i64>,
    resolution: Vec<i64>,
    score_sum: i64,
    satisfied: usize,
}

impl Accumulator {
    /// Takes in what another accumulator counted (a report read in slices).
    fn merge(&mut self, other: Accumulator) {
        let (row, more) = (&mut self.row, other.row);
        row.episodes += more.episodes;
        row.bot_resolved += more.bot_resolved;
        row.handed_off += more.handed_off;
        row.unresolved += more.unresolved;
        row.customer_messages += more.customer_messages;
        row.bot_answers += more.bot_answers;
        row.bot_clarifies += more.bot_clarifies;
        row.bot_out_of_scope += more.bot_out_of_scope;
        row.ratings += more.ratings;
        self.queue_wait.extend(other.queue_wait);
        self.first_response.extend(other.first_response);
        self.handle.extend(other.handle);
        self.resolution.extend(other.resolution);
        self.score_sum += other.score_sum;
        self.satisfied += other.satisfied;
    }

    fn add(&mut self, rated: &RatedEpisode) {
        let e = &rated.episode;
        let row = &mut self.row;
        row.episodes += 1;
        match e.handed_off_at {
            Some(handed_off_at) => {
                row.handed_off += 1;
                if let Some(assigned_at) = e.assigned_at {
                    self.queue_wait.push((assigned_at - handed_off_at).max(0));
                    self.handle.push((e.closed_at - assigned_at).max(0));
                }
                if let Some(replied_at) = e.first_agent_reply_at {
                    self.first_response
                        .push((replied_at - handed_off_at).max(0));
                }
                if e.closed_by == "agent" {
                    self.resolution.push((e.closed_at - handed_off_at).max(0));
                }
            }
            None if e.bot_answers > 0 => row.bot_resolved += 1,
            None => row.unresolved += 1,
        }
        row.customer_messages += e.customer_messages;
        row.bot_answers += e.bot_answers;
        row.bot_clarifies += e.bot_clarifies;
        row.bot_out_of_scope += e.bot_out_of_scope;
        if let Some(score) = rated.score {
            row.ratings += 1;
            self.score_sum += score;
            if score >= 4 {
                self.satisfied += 1;
            }
        }
    }

    fn finish(mut self, key: String) -> Row {
        let share = |part: usize, whole: usize| (whole > 0).then(|| part as f64 / whole as f64);
        self.row.key = key;
        self.row.bot_resolution_rate = share(self.row.bot_resolved, self.row.episodes);
        self.row.handoff_rate = share(self.row.handed_off, self.row.episodes);
        self.row.queue_wait = Durations::of(self.queue_wait);
        self.row.first_response = Durations::of(self.first_response);
        self.row.handle = Durations::of(self.handle);
        self.row.resolution = Durations::of(self.resolution);
        self.row.csat_average =
            (self.row.ratings > 0).then(|| self.score_sum as f64 / self.row.ratings as f64);
        self.row.csat_satisfied = share(self.satisfied, self.row.ratings);
        self.row
    }
}

/// Satisfaction split by who served the episode.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Satisfaction {
    /// Ratings 1 to 5: how many of each.
    pub distribution: [usize; 5],
    /// Episodes the bot served alone.
    pub bot: Row,
    /// Episodes a person took over.
    pub human: Row,
}

/// A count of handoffs for one reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReasonCount {
    pub reason: String,
    pub count: usize,
}

/// A whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub from: i64,
    pub to: i64,
    /// Days and hours are the tenant's local ones (`utc_offset_minutes` of its settings).
    pub utc_offset_minutes: i32,
    pub totals: Row,
    pub by_day: Vec<Row>,
    /// 24 rows, hour "00" to "23" (opened at).
    pub by_hour: Vec<Row>,
    pub by_channel: Vec<Row>,
    pub by_skill_group: Vec<Row>,
    /// Episodes a person held at the end, by that agent (`key` is the agent id).
    pub by_agent: Vec<Row>,
    pub handoff_reasons: Vec<ReasonCount>,
    pub satisfaction: Satisfaction,
}

/// The tables a report can be downloaded as (CSV).
pub const TABLES: [&str; 7] = [
    "totals",
    "by_day",
    "by_hour",
    "by_channel",
    "by_skill_group",
    "by_agent",
    "handoff_reasons",
];

fn day_of(at_ms: i64, offset_minutes: i32) -> String {
    let local = at_ms + i64::from(offset_minutes) * 60_000;
    let days = local.div_euclid(86_400_000);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

fn hour_of(at_ms: i64, offset_minutes: i32) -> usize {
    let local = at_ms + i64::from(offset_minutes) * 60_000;
    (local.rem_euclid(86_400_000) / 3_600_000) as usize
}

/// A report being built, one episode at a time (closed in the period, in any order).
pub struct Builder {
    from: i64,
    to: i64,
    utc_offset_minutes: i32,
    totals: Accumulator,
    /// Keyed by the local day's number since the epoch (named at the end).
    by_day: BTreeMap<i64, Accumulator>,
    by_hour: Vec<Accumulator>,
    by_channel: BTreeMap<String, Accumulator>,
    by_skill: BTreeMap<String, Accumulator>,
    by_agent: BTreeMap<String, Accumulator>,
    reasons: BTreeMap<String, usize>,
    bot: Accumulator,
    human: Accumulator,
    distribution: [usize; 5],
}

impl Builder {
    pub fn new(from: i64, to: i64, utc_offset_minutes: i32) -> Builder {
        Builder {
            from,
            to,
            utc_offset_minutes,
            totals: Accumulator::default(),
            by_day: BTreeMap::new(),
            by_hour: (0..24).map(|_| Accumulator::default()).collect(),
            by_channel: BTreeMap::new(),
            by_skill: BTreeMap::new(),
            by_agent: BTreeMap::new(),
            reasons: BTreeMap::new(),
            bot: Accumulator::default(),
            human: Accumulator::default(),
            distribution: [0; 5],
        }
    }

    pub fn add(&mut self, rated: &RatedEpisode) {
        let e = &rated.episode;
        let offset = self.utc_offset_minutes;
        self.totals.add(rated);
        let local = e.closed_at + i64::from(offset) * 60_000;
        self.by_day
            .entry(local.div_euclid(86_400_000))
            .or_default()
            .add(rated);
        self.by_hour[hour_of(e.opened_at, offset)].add(rated);
        self.by_channel
            .entry(e.channel.clone())
            .or_default()
            .add(rated);
        self.by_skill
            .entry(e.skill_group.clone())
            .or_default()
            .add(rated);
        if !e.agent_id.is_empty() {
            self.by_agent
                .entry(e.agent_id.clone())
                .or_default()
                .add(rated);
        }
        if e.handed_off_at.is_some() {
            self.human.add(rated);
            let reason = e.handoff_reason.clone().unwrap_or_else(|| "unknown".into());
            *self.reasons.entry(reason).or_default() += 1;
        } else {
            self.bot.add(rated);
        }
        if let Some(score) = rated.score.filter(|s| (1..=5).contains(s)) {
            self.distribution[score as usize - 1] += 1;
        }
    }

    pub fn episodes(&self) -> usize {
        self.totals.row.episodes
    }

    /// Takes in another builder's episodes (the same report, another slice of its period).
    pub fn merge(&mut self, other: Builder) {
        fn maps<K: Ord>(into: &mut BTreeMap<K, Accumulator>, from: BTreeMap<K, Accumulator>) {
            for (key, acc) in from {
                into.entry(key).or_default().merge(acc);
            }
        }
        self.totals.merge(other.totals);
        maps(&mut self.by_day, other.by_day);
        for (into, from) in self.by_hour.iter_mut().zip(other.by_hour) {
            into.merge(from);
        }
        maps(&mut self.by_channel, other.by_channel);
        maps(&mut self.by_skill, other.by_skill);
        maps(&mut self.by_agent, other.by_agent);
        for (reason, count) in other.reasons {
            *self.reasons.entry(reason).or_default() += count;
        }
        self.bot.merge(other.bot);
        self.human.merge(other.human);
        for (into, from) in self.distribution.iter_mut().zip(other.distribution) {
            *into += from;
        }
    }

    pub fn finish(self) -> Report {
        let rows = |map: BTreeMap<String, Accumulator>| -> Vec<Row> {
            map.into_iter().map(|(key, acc)| acc.finish(key)).collect()
        };
        let mut handoff_reasons: Vec<ReasonCount> = self
            .reasons
            .into_iter()
            .map(|(reason, count)| ReasonCount { reason, count })
            .collect();
        handoff_reasons.sort_by(|a, b| b.count.cmp(&a.count).then(a.reason.cmp(&b.reason)));
        Report {
            from: self.from,
            to: self.to,
            utc_offset_minutes: self.utc_offset_minutes,
            totals: self.totals.finish("total".into()),
            by_day: self
                .by_day
                .into_iter()
                .map(|(day, acc)| acc.finish(day_of(day * 86_400_000, 0)))
                .collect(),
            by_hour: self
                .by_hour
                .into_iter()
                .enumerate()
                .map(|(hour, acc)| acc.finish(format!("{hour:02}")))
                .collect(),
            by_channel: rows(self.by_channel),
            by_skill_group: rows(self.by_skill),
            by_agent: rows(self.by_agent),
            handoff_reasons,
            satisfaction: Satisfaction {
                distribution: self.distribution,
                bot: self.bot.finish("bot".into()),
                human: self.human.finish("human".into()),
            },
        }
    }
}

/// Builds a report from its episodes.
pub fn build(from: i64, to: i64, utc_offset_minutes: i32, episodes: &[RatedEpisode]) -> Report {
    let mut builder = Builder::new(from, to, utc_offset_minutes);
    for rated in episodes {
        builder.add(rated);
    }
    builder.finish()
}

/// The most episodes one report reads; a longer period is refused with a clear error.
pub const MAX_REPORT_EPISODES: usize = 2_000_000;
/// Episodes read from the store at a time.
const PAGE: i64 = 20_000;
/// Reports built at once on a node; more wait their turn (a report is a scan of its period).
static REPORTS_AT_ONCE: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);
/// One report at a time per tenant, so one tenant's reports queue behind each other and never
/// hold both of the node's turns.
static TENANT_TURNS: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<tokio::sync::Semaphore>>>,
> = std::sync::LazyLock::new(Default::default);
/// How long a report waits for its turn before it is answered `503 busy`.
const TURN_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Waits for the tenant's turn, then the node's (at most [`TURN_WAIT`] in all).
async fn report_turn(
    tenant: &str,
) -> ServiceResult<(
    tokio::sync::OwnedSemaphorePermit,
    tokio::sync::SemaphorePermit<'static>,
)> {
    let own = TENANT_TURNS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(tenant.to_owned())
        .or_insert_with(|| std::sync::Arc::new(tokio::sync::Semaphore::new(1)))
        .clone();
    let busy = || ServiceError::unavailable("busy", "reports are busy; retry in a minute");
    tokio::time::timeout(TURN_WAIT, async {
        let tenant_turn = own.acquire_owned().await.map_err(|_| busy())?;
        let node_turn = REPORTS_AT_ONCE.acquire().await.map_err(|_| busy())?;
        Ok((tenant_turn, node_turn))
    })
    .await
    .map_err(|_| busy())?
}

/// How many slices of its period a report reads at once.
const SLICES: i64 = 4;

fn too_large() -> ServiceError {
    ServiceError::invalid(
        "period_too_large",
        format!(
            "the period holds more than {MAX_REPORT_EPISODES} conversations; choose a shorter one"
        ),
    )
}

/// One slice of a report's period, page by page.
async fn read_slice(
    store: &Store,
    tenant: &str,
    filter: &EpisodeFilter,
    utc_offset_minutes: i32,
) -> ServiceResult<Builder> {
    let mut builder = Builder::new(filter.from, filter.to, utc_offset_minutes);
    let mut last: Option<(i64, String)> = None;
    loop {
        let page = store
            .rated_episodes(
                tenant,
                filter,
                last.as_ref().map(|(at, id)| (*at, id.as_str())),
                PAGE,
            )
            .await?;
        for rated in &page {
            builder.add(rated);
        }
        if builder.episodes() > MAX_REPORT_EPISODES {
            return Err(too_large());
        }
        match page.last() {
            Some(end) if page.len() as i64 == PAGE => {
                last = Some((end.episode.closed_at, end.episode.conversation_id.clone()));
            }
            _ => return Ok(builder),
        }
    }
}

/// The last millisecond a report may cover: 9999-12-31T23:59:59.999Z.
const LAST_MS: i64 = 253_402_300_799_999;

/// Reads a tenant's episodes for `filter` and builds the report.
pub async fn report(
    store: &Store,
    tenant: &str,
    filter: &EpisodeFilter,
    utc_offset_minutes: i32,
) -> ServiceResult<Report> {
    if filter.to <= filter.from {
        return Err(ServiceError::invalid(
            "bad_period",
            "`to` must be after `from`",
        ));
    }
    // Slices are cut with plain arithmetic on the bounds: they stay far from overflow.
    if filter.to > LAST_MS {
        return Err(ServiceError::invalid(
            "bad_period",
            "a report ends by the year 9999",
        ));
    }
    if filter.to.saturating_sub(filter.from) > MAX_PERIOD_MS {
        return Err(ServiceError::invalid(
            "bad_period",
            "a report covers at most 400 days",
        ));
    }
    let _turn = report_turn(tenant).await?;
    // The period is read in slices at once (each in index order, page by page): decoding rows
    // is most of a report's time, and the slices spread it over the cores.
    let slices = SLICES.min(((filter.to - filter.from) / 3_600_000).max(1));
    let width = (filter.to - filter.from + slices - 1) / slices;
    let mut tasks = Vec::new();
    for index in 0..slices {
        let mut slice = filter.clone();
        slice.from = filter.from + index * width;
        slice.to = (slice.from + width).min(filter.to);
        let (store, tenant) = (store.clone(), tenant.to_owned());
        tasks.push(tokio::spawn(async move {
            read_slice(&store, &tenant, &slice, utc_offset_minutes).await
        }));
    }
    let mut builder = Builder::new(filter.from, filter.to, utc_offset_minutes);
    for task in tasks {
        let slice = task
            .await
            .map_err(|error| ServiceError::Internal(anyhow::anyhow!("report task: {error}")))??;
        builder.merge(slice);
    }
    if builder.episodes() > MAX_REPORT_EPISODES {
        return Err(too_large());
    }
    Ok(builder.finish())
}

/// One table of a report as CSV (header row first).
pub fn csv_table(report: &Report, table: &str) -> Option<String> {
    let mut out = String::new();
    if table == "handoff_reasons" {
        out.push_str("reason,count\r\n");
        for reason in &report.handoff_reasons {
            out.push_str(&format!(
                "{},{}\r\n",
                csv_cell(&reason.reason),
                reason.count
            ));
        }
        return Some(out);
    }
    let rows: Vec<&Row> = match table {
        "totals" => vec![&report.totals],
        "by_day" => report.by_day.iter().collect(),
        "by_hour" => report.by_hour.iter().collect(),
        "by_channel" => report.by_channel.iter().collect(),
        "by_skill_group" => report.by_skill_group.iter().collect(),
        "by_agent" => report.by_agent.iter().collect(),
        _ => return None,
    };
    out.push_str(
        "key,episodes,bot_resolved,handed_off,unresolved,bot_resolution_rate,handoff_rate,\
         customer_messages,bot_answers,bot_clarifies,bot_out_of_scope,\
         queue_wait_p50_ms,queue_wait_p90_ms,first_response_mean_ms,first_response_p50_ms,\
         first_response_p90_ms,handle_p50_ms,handle_p90_ms,resolution_p50_ms,resolution_p90_ms,\
         ratings,csat_average,csat_satisfied\r\n",
    );
    let opt = |value: Option<i64>| value.map(|v| v.to_string()).unwrap_or_default();
    let rate = |value: Option<f64>| value.map(|v| format!("{v:.4}")).unwrap_or_default();
    for row in rows {
        let cells = [
            csv_cell(&row.key),
            row.episodes.to_string(),
            row.bot_resolved.to_string(),
            row.handed_off.to_string(),
            row.unresolved.to_string(),
            rate(row.bot_resolution_rate),
            rate(row.handoff_rate),
            row.customer_messages.to_string(),
            row.bot_answers.to_string(),
            row.bot_clarifies.to_string(),
            row.bot_out_of_scope.to_string(),
            opt(row.queue_wait.p50_ms),
            opt(row.queue_wait.p90_ms),
            opt(row.first_response.mean_ms),
            opt(row.first_response.p50_ms),
            opt(row.first_response.p90_ms),
            opt(row.handle.p50_ms),
            opt(row.handle.p90_ms),
            opt(row.resolution.p50_ms),
            opt(row.resolution.p90_ms),
            row.ratings.to_string(),
            rate(row.csat_average),
            rate(row.csat_satisfied),
        ];
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    Some(out)
}

/// A CSV cell: quoted when it holds a separator, a quote or a line break; a leading `=`, `+`,
/// `-`, `@`, tab or carriage return is prefixed with `'` so spreadsheets do not run it.
pub fn csv_cell(value: &str) -> String {
    let guarded = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if guarded.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use store::reports::Episode;

    /// A tenant's second report waits for its first, while another tenant gets the node's other
    /// turn at once: one tenant never holds both.
    #[tokio::test]
    async fn one_tenant_holds_one_report_turn_at_a_time() {
        let first = report_turn("turns-a").await.expect("a's first turn");
        let second = tokio::time::timeout(Duration::from_millis(200), report_turn("turns-a")).await;
        assert!(second.is_err(), "a's second report waits");
        let other = tokio::time::timeout(Duration::from_millis(200), report_turn("turns-b"))
            .await
            .expect("b is not kept waiting")
            .expect("b's turn");
        drop(first);
        let again = tokio::time::timeout(Duration::from_millis(200), report_turn("turns-a"))
            .await
            .expect("a's next report runs once its first is done")
            .expect("a's turn");
        drop((other, again));
    }

    fn episode(id: &str, closed_at: i64) -> Episode {
        Episode {
            conversation_id: id.into(),
            closed_at,
            tenant_id: "t".into(),
            channel: "web".into(),
            skill_group: "general".into(),
            agent_id: String::new(),
            closed_by: "idle".into(),
            opened_at: closed_at - 60_000,
            handed_off_at: None,
            handoff_reason: None,
            assigned_at: None,
            first_agent_reply_at: None,
            customer_messages: 2,
            agent_messages: 0,
            bot_answers: 1,
            bot_clarifies: 0,
            bot_out_of_scope: 0,
            tags: Vec::new(),
        }
    }

    #[test]
    fn resolution_handoff_times_and_satisfaction_follow_the_definitions() {
        let day = 1_765_065_600_000; // 2025-12-07 00:00 UTC
        let bot_alone = RatedEpisode {
            episode: episode("a", day + 3_600_000),
            score: Some(5),
        };
        let mut unanswered = episode("b", day + 7_200_000);
        unanswered.bot_answers = 0;
        unanswered.bot_out_of_scope = 1;
        let mut human = episode("c", day + 90_000_000);
        human.agent_id = "agent_1".into();
        human.closed_by = "agent".into();
        human.opened_at = day + 88_000_000;
        human.handed_off_at = Some(day + 89_000_000);
        human.handoff_reason = Some("explicit_request".into());
        human.assigned_at = Some(day + 89_010_000);
        human.first_agent_reply_at = Some(day + 89_040_000);
        let episodes = vec![
            bot_alone,
            RatedEpisode {
                episode: unanswered,
                score: None,
            },
            RatedEpisode {
                episode: human,
                score: Some(2),
            },
        ];
        let report = build(day, day + 2 * 86_400_000, 0, &episodes);
        let totals = &report.totals;
        assert_eq!(
            (
                totals.episodes,
                totals.bot_resolved,
                totals.handed_off,
                totals.unresolved
            ),
            (3, 1, 1, 1)
        );
        assert_eq!(totals.bot_resolution_rate, Some(1.0 / 3.0));
        assert_eq!(totals.queue_wait.p50_ms, Some(10_000));
        assert_eq!(totals.first_response.p50_ms, Some(40_000));
        assert_eq!(totals.handle.p50_ms, Some(990_000));
        assert_eq!(totals.resolution.p50_ms, Some(1_000_000));
        assert_eq!(totals.csat_average, Some(3.5));
        assert_eq!(report.satisfaction.bot.csat_average, Some(5.0));
        assert_eq!(report.satisfaction.human.csat_average, Some(2.0));
        assert_eq!(report.satisfaction.distribution, [0, 1, 0, 0, 1]);
        let days: Vec<_> = report
            .by_day
            .iter()
            .map(|r| (r.key.as_str(), r.episodes))
            .collect();
        assert_eq!(days, vec![("2025-12-07", 2), ("2025-12-08", 1)]);
        assert_eq!(report.by_agent.len(), 1);
        assert_eq!(report.handoff_reasons[0].reason, "explicit_request");
        // In UTC+8 the days and hours are local ones.
        let shifted = build(day, day + 2 * 86_400_000, 480, &episodes);
        let days: Vec<_> = shifted
            .by_day
            .iter()
            .map(|r| (r.key.as_str(), r.episodes))
            .collect();
        assert_eq!(days, vec![("2025-12-07", 2), ("2025-12-08", 1)]);
        assert_eq!(shifted.by_hour[8].episodes, 2);
        assert_eq!(shifted.by_hour[9].episodes, 1);
    }

    #[test]
    fn a_report_read_in_slices_is_the_report_read_at_once() {
        let day = 1_765_065_600_000;
        let episodes: Vec<RatedEpisode> = (0..40)
            .map(|n| {
                let mut e = episode(&format!("c{n}"), day + n * 3_600_000);
                e.channel = ["web", "wechat"][n as usize % 2].into();
                if n % 3 == 0 {
                    e.agent_id = format!("agent_{}", n % 2);
                    e.handed_off_at = Some(e.opened_at + 1_000);
                    e.handoff_reason =
                        Some(["complaint", "explicit_request"][n as usize % 2].into());
                    e.assigned_at = Some(e.opened_at + 2_000 + n * 100);
                    e.first_agent_reply_at = Some(e.opened_at + 5_000 + n * 10);
                }
                RatedEpisode {
                    episode: e,
                    score: (n % 4 != 0).then_some(1 + n % 5),
                }
            })
            .collect();
        let whole = build(day, day + 2 * 86_400_000, 480, &episodes);
        let mut sliced = Builder::new(day, day + 2 * 86_400_000, 480);
        for part in episodes.chunks(13) {
            let mut slice = Builder::new(day, day + 2 * 86_400_000, 480);
            for rated in part {
                slice.add(rated);
            }
            sliced.merge(slice);
        }
        assert_eq!(sliced.finish(), whole);
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let d = Durations::of((1..=100).collect());
        assert_eq!(
            (d.p50_ms, d.p90_ms, d.p99_ms),
            (Some(50), Some(90), Some(99))
        );
        assert_eq!(Durations::of(vec![]).count, 0);
    }

    #[test]
    fn csv_cells_are_quoted_and_formulas_disarmed() {
        assert_eq!(csv_cell("web"), "web");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("=1+1"), "'=1+1");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn civil_days_are_right_across_years() {
        assert_eq!(day_of(0, 0), "1970-01-01");
        assert_eq!(day_of(951_782_400_000, 0), "2000-02-29");
        assert_eq!(day_of(1_767_225_599_000, 0), "2025-12-31");
        assert_eq!(day_of(1_767_225_599_000, 60), "2026-01-01");
    }
}
