//! Exports of a tenant's conversations with their messages and events, as CSV, JSON Lines or
//! XLSX, one row per conversation or per message, streamed: the store is read a page at a time
//! (keyset pagination by `(updated_at, id)`), each batch is encoded on the blocking pool and its
//! bytes go out through a bounded channel, so a slow reader slows the export down instead of
//! filling memory. A conversation of more than [`PAGE_MESSAGES`] messages is never held whole:
//! its messages are read [`PAGE_MESSAGES`] at a time by seq (keyset again), and each page is
//! encoded and sent before the next is read. So an export holds at most one batch of shorter
//! conversations (about [`BATCH_MESSAGES`] messages) or one page of a long one, plus the
//! encoder's own buffers and the channel's batches, however long a conversation grows. The
//! output is the same, byte for byte, as if every conversation had been read whole.
//!
//! Filters, written as the reports' are: the period `from`/`to` (milliseconds since the epoch,
//! RFC 3339 times, or dates in the tenant's UTC offset with `to` naming a whole day), over each
//! conversation's last activity (`updated_at` in `[from, to)`; `to` defaults to the moment the
//! export starts, so a conversation that changes while the export runs is listed at most once;
//! no `from` means from the first conversation); `channel`, `skill_group` and `agent` (the agent
//! holding or last holding it). Customers' contact fields are never exported: rows name the
//! customer by id only.

mod cell;
mod format;
mod xlsx;

use std::collections::HashMap;

use serde::Deserialize;
use tokio::sync::mpsc;

pub use cell::rfc3339;
pub use format::{guard_formula, ExportFormat, ExportRows, CONVERSATION_COLUMNS, MESSAGE_COLUMNS};
pub use xlsx::{MAX_CELL_CHARS, MAX_SHEET_ROWS};

use crate::error::{blocking, ServiceError, ServiceResult};
use format::{Buffer, Encoder, Summary};
use store::export::{ExportCursor, ExportFilter, ExportedConversation};
use store::{ConversationEvent, MessageRecord, Store};
use switchboard_channels::ChannelKind;

/// Conversations read per page.
pub const PAGE_CONVERSATIONS: i64 = 500;
/// A page's conversations are encoded in batches of about this many messages (a conversation's
/// `last_seq` says how many it has), so a batch's memory is bounded by messages, not by
/// conversations; one longer conversation is a batch of its own, and one of more than
/// [`PAGE_MESSAGES`] is read in pages.
pub const BATCH_MESSAGES: i64 = 5_000;
/// A conversation with more messages than this (by its `last_seq`) is read this many messages
/// at a time, each page encoded and sent before the next is read (64 KiB messages: 16 MiB).
pub const PAGE_MESSAGES: i64 = 256;
/// Encoded batches waiting for the reader.
pub const CHANNEL_BATCHES: usize = 4;
/// The longest value of a text filter (as in the reports).
const MAX_FILTER_BYTES: usize = 128;

/// An export's parameters as they arrive (the HTTP query, the CLI's flags), before checking.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// `csv` (the default), `jsonl` or `xlsx`.
    pub format: Option<String>,
    /// `conversation` (the default) or `message`.
    pub rows: Option<String>,
    /// Milliseconds since the epoch, an RFC 3339 time or a date (`2026-12-01`) in the tenant's
    /// UTC offset (`to`: through the end of that day).
    pub from: Option<String>,
    pub to: Option<String>,
    pub channel: Option<String>,
    pub skill_group: Option<String>,
    pub agent: Option<String>,
}

/// A checked export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRequest {
    pub tenant: String,
    pub format: ExportFormat,
    pub rows: ExportRows,
    pub filter: ExportFilter,
    /// When the export started (ms).
    pub at: i64,
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportStats {
    pub conversations: u64,
    pub rows: u64,
}

/// One chunk of an export's output, or the error that ended it.
pub type ExportChunk = ServiceResult<Vec<u8>>;

impl ExportRequest {
    /// Checks a query; `now` is the default end of the period, `utc_offset_minutes` the
    /// tenant's (for dates).
    pub fn parse(
        tenant: &str,
        query: &ExportQuery,
        now: i64,
        utc_offset_minutes: i32,
    ) -> ServiceResult<ExportRequest> {
        let format = match query.format.as_deref() {
            None | Some("") => ExportFormat::Csv,
            Some(value) => ExportFormat::parse(value).ok_or_else(|| {
                ServiceError::invalid("bad_format", "format is csv, jsonl or xlsx")
            })?,
        };
        let rows = match query.rows.as_deref() {
            None | Some("") => ExportRows::Conversation,
            Some(value) => ExportRows::parse(value).ok_or_else(|| {
                ServiceError::invalid("bad_rows", "rows is conversation or message")
            })?,
        };
        let from = query
            .from
            .as_deref()
            .filter(|value| !value.is_empty())
            .map(|value| parse_time("from", value, utc_offset_minutes))
            .transpose()?
            .map(|(ms, _)| ms);
        let to = query
            .to
            .as_deref()
            .filter(|value| !value.is_empty())
            .map(|value| parse_time("to", value, utc_offset_minutes))
            .transpose()?
            // Without `to`: everything up to now, this millisecond included (`to` is exclusive).
            .map_or(now + 1, |(ms, date)| if date { ms + DAY_MS } else { ms });
        if from.is_some_and(|from| from >= to) {
            return Err(ServiceError::invalid(
                "bad_period",
                "from must be before to",
            ));
        }
        let channel = text_filter("channel", &query.channel)?;
        if let Some(channel) = &channel {
            if ChannelKind::parse(channel).is_none() {
                return Err(ServiceError::invalid(
                    "bad_channel",
                    "channel is web, mobile, wechat or douyin",
                ));
            }
        }
        Ok(ExportRequest {
            tenant: tenant.to_owned(),
            format,
            rows,
            filter: ExportFilter {
                from,
                to: Some(to),
                channel,
                skill_group: text_filter("skill_group", &query.skill_group)?,
                agent: text_filter("agent", &query.agent)?,
            },
            at: now,
        })
    }

    /// The file's name: `<tenant>-conversations-<time>.csv` (`messages` for message rows).
    pub fn file_name(&self) -> String {
        let what = match self.rows {
            ExportRows::Conversation => "conversations",
            ExportRows::Message => "messages",
        };
        let tenant: String = self
            .tenant
            .chars()
            .map(|ch| {
                if ch.is_ascii_alphanumeric() || ch == '-' || ch == '_' {
                    ch
                } else {
                    '_'
                }
            })
            .collect();
        let stamp: String = rfc3339(self.at - self.at.rem_euclid(1000))
            .chars()
            .filter(|ch| ch.is_ascii_alphanumeric())
            .collect();
        format!("{tenant}-{what}-{stamp}.{}", self.format.as_str())
    }

    /// A summary for the audit log and the logs.
    pub fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "format": self.format.as_str(),
            "rows": self.rows.as_str(),
            "from": self.filter.from,
            "to": self.filter.to,
            "channel": self.filter.channel,
            "skill_group": self.filter.skill_group,
            "agent": self.filter.agent,
        })
    }
}

fn text_filter(name: &str, value: &Option<String>) -> ServiceResult<Option<String>> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(value) if value.len() > MAX_FILTER_BYTES => Err(ServiceError::invalid(
            "bad_filter",
            format!("`{name}` is longer than {MAX_FILTER_BYTES} bytes"),
        )),
        Some(value) => Ok(Some(value.to_owned())),
    }
}

const DAY_MS: i64 = 86_400_000;

/// A period bound: milliseconds since the epoch, an RFC 3339 time, or a date (the start of that
/// day at `utc_offset_minutes`); answers the time and whether it was a date.
pub fn parse_time(name: &str, value: &str, utc_offset_minutes: i32) -> ServiceResult<(i64, bool)> {
    use time::format_description::well_known::Rfc3339;
    let value = value.trim();
    let bad = || {
        ServiceError::invalid(
            "bad_period",
            format!(
                "{name} is milliseconds since the epoch, an RFC 3339 time or a date (YYYY-MM-DD)"
            ),
        )
    };
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value
            .parse::<i64>()
            .map(|ms| (ms, false))
            .map_err(|_| bad());
    }
    if let Ok(time) = time::OffsetDateTime::parse(value, &Rfc3339) {
        let ms = i64::try_from(time.unix_timestamp_nanos() / 1_000_000).map_err(|_| bad())?;
        return Ok((ms, false));
    }
    let date_format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(value, &date_format).map_err(|_| bad())?;
    let midnight = date.midnight().assume_utc().unix_timestamp() * 1000;
    Ok((midnight - i64::from(utc_offset_minutes) * 60_000, true))
}

/// A page's conversations in batches of about [`BATCH_MESSAGES`] messages.
fn batches(page: Vec<ExportedConversation>) -> Vec<Vec<ExportedConversation>> {
    let mut batches = Vec::new();
    let mut batch = Vec::new();
    let mut messages = 0;
    for item in page {
        let count = item.conversation.last_seq.max(1);
        if !batch.is_empty() && messages + count > BATCH_MESSAGES {
            batches.push(std::mem::take(&mut batch));
            messages = 0;
        }
        messages += count;
        batch.push(item);
    }
    if !batch.is_empty() {
        batches.push(batch);
    }
    batches
}

fn by_conversation<T>(items: Vec<T>, key: impl Fn(&T) -> &str) -> HashMap<String, Vec<T>> {
    let mut grouped: HashMap<String, Vec<T>> = HashMap::new();
    for item in items {
        grouped.entry(key(&item).to_owned()).or_default().push(item);
    }
    grouped
}

fn io_error(error: std::io::Error) -> ServiceError {
    ServiceError::Internal(anyhow::anyhow!("export encoding failed: {error}"))
}

/// The error an export ends with when its reader went away.
fn cancelled() -> ServiceError {
    ServiceError::unavailable("export_cancelled", "the export's reader went away")
}

/// Runs an export: its output goes to `out` chunk by chunk, in order; the channel is bounded, so
/// the export waits for a slow reader. On an error the export stops and answers it (the caller
/// tells the reader: see [`spawn`]).
pub async fn run(
    store: &Store,
    request: &ExportRequest,
    out: &mpsc::Sender<ExportChunk>,
) -> ServiceResult<ExportStats> {
    run_with_sheet_rows(store, request, out, MAX_SHEET_ROWS).await
}

/// As [`run`], with XLSX sheets of at most `sheet_rows` rows (tests).
pub async fn run_with_sheet_rows(
    store: &Store,
    request: &ExportRequest,
    out: &mpsc::Sender<ExportChunk>,
    sheet_rows: u32,
) -> ServiceResult<ExportStats> {
    run_with_pages(store, request, out, sheet_rows, PAGE_MESSAGES).await
}

/// As [`run_with_sheet_rows`], with conversations of more than `page_messages` messages read
/// `page_messages` at a time (tests).
#[doc(hidden)]
pub async fn run_with_pages(
    store: &Store,
    request: &ExportRequest,
    out: &mpsc::Sender<ExportChunk>,
    sheet_rows: u32,
    page_messages: i64,
) -> ServiceResult<ExportStats> {
    let page_messages = page_messages.max(1);
    let buffer = Buffer::default();
    let mut encoder =
        Encoder::with_sheet_rows(request.format, request.rows, buffer.clone(), sheet_rows)
            .map_err(io_error)?;
    let mut stats = ExportStats::default();
    let mut after: Option<ExportCursor> = None;
    let long = |item: &ExportedConversation| item.conversation.last_seq > page_messages;
    loop {
        let page = store
            .export_conversations(
                &request.tenant,
                &request.filter,
                after.as_ref(),
                PAGE_CONVERSATIONS,
            )
            .await?;
        let full = page.len() as i64 == PAGE_CONVERSATIONS;
        let Some(last) = page.last() else { break };
        after = Some(last.cursor());
        for batch in batches(page) {
            let ids: Vec<String> = batch
                .iter()
                .map(|item| item.conversation.id.clone())
                .collect();
            // The shorter conversations' messages at once; a long one's a page at a time below.
            let short: Vec<String> = batch
                .iter()
                .filter(|item| !long(item))
                .map(|item| item.conversation.id.clone())
                .collect();
            let messages = store.export_messages(&request.tenant, &short).await?;
            let events = match request.rows {
                ExportRows::Conversation => store.export_events(&request.tenant, &ids).await?,
                ExportRows::Message => Vec::new(),
            };
            let mut messages = by_conversation(messages, |m: &MessageRecord| &m.conversation_id);
            let mut events = by_conversation(events, |e: &ConversationEvent| &e.conversation_id);
            stats.conversations += batch.len() as u64;
            let mut items = batch.into_iter().peekable();
            loop {
                // A run of shorter conversations, in order, encoded together.
                let mut run = Vec::new();
                while let Some(item) = items.next_if(|item| !long(item)) {
                    run.push(item);
                }
                if !run.is_empty() {
                    let mut run_messages = HashMap::new();
                    let mut run_events = HashMap::new();
                    for item in &run {
                        let id = &item.conversation.id;
                        if let Some(list) = messages.remove(id) {
                            run_messages.insert(id.clone(), list);
                        }
                        if let Some(list) = events.remove(id) {
                            run_events.insert(id.clone(), list);
                        }
                    }
                    encoder = encode(encoder, move |encoder| {
                        encode_batch(encoder, &run, &run_messages, &run_events)
                    })
                    .await?;
                }
                let Some(item) = items.next() else { break };
                let item_events = events.remove(&item.conversation.id).unwrap_or_default();
                encoder = export_long(
                    store,
                    request,
                    encoder,
                    (&buffer, out),
                    item,
                    item_events,
                    page_messages,
                )
                .await?;
            }
            encoder = encode(encoder, Encoder::flush).await?;
            send(&buffer, out).await?;
        }
        if !full {
            break;
        }
    }
    stats.rows = encoder.rows_written();
    blocking("export encoding", move || encoder.finish())
        .await?
        .map_err(io_error)?;
    send(&buffer, out).await?;
    Ok(stats)
}

/// Runs `work` on the encoder on the blocking pool; answers the encoder.
async fn encode(
    encoder: Encoder,
    work: impl FnOnce(&mut Encoder) -> std::io::Result<()> + Send + 'static,
) -> ServiceResult<Encoder> {
    let (encoder, written) = blocking("export encoding", move || {
        let mut encoder = encoder;
        let written = work(&mut encoder);
        (encoder, written)
    })
    .await?;
    written.map_err(io_error)?;
    Ok(encoder)
}

/// Sends what the buffer holds, if anything.
async fn send(buffer: &Buffer, out: &mpsc::Sender<ExportChunk>) -> ServiceResult<()> {
    let chunk = buffer.take();
    if !chunk.is_empty() {
        out.send(Ok(chunk)).await.map_err(|_| cancelled())?;
    }
    Ok(())
}

/// One conversation read `page_messages` messages at a time, up to the `last_seq` its row had
/// (so that two readings of it agree): each page is encoded and what it made sent before the
/// next page is read. CSV conversation rows read it twice, first for the counts that come
/// before the transcript.
async fn export_long(
    store: &Store,
    request: &ExportRequest,
    encoder: Encoder,
    (buffer, out): (&Buffer, &mpsc::Sender<ExportChunk>),
    item: ExportedConversation,
    events: Vec<ConversationEvent>,
    page_messages: i64,
) -> ServiceResult<Encoder> {
    let tenant = &request.tenant;
    let id = item.conversation.id.clone();
    let up_to = item.conversation.last_seq;
    let mut encoder = encoder;
    let item = std::sync::Arc::new(item);
    let mut summary = None;
    if encoder.needs_summary() {
        let mut counted = Summary::default();
        let mut after = 0;
        loop {
            let page = store
                .export_message_page(tenant, &id, after, up_to, page_messages)
                .await?;
            counted.add(&page);
            match page.last() {
                Some(last) if page.len() as i64 == page_messages => after = last.seq,
                _ => break,
            }
        }
        if counted.messages() < 2 {
            // Fewer than two messages after all (others were erased): one page, written whole.
            let page = store
                .export_message_page(tenant, &id, 0, up_to, page_messages)
                .await?;
            let encoded = encode(encoder, move |encoder| {
                encoder.conversation(&item, &page, &events)
            })
            .await?;
            send(buffer, out).await?;
            return Ok(encoded);
        }
        summary = Some(counted);
    }
    let begun = std::sync::Arc::clone(&item);
    encoder = encode(encoder, move |encoder| {
        encoder.begin_paged(&begun, summary.as_ref(), &events)
    })
    .await?;
    let mut after = 0;
    loop {
        let page = store
            .export_message_page(tenant, &id, after, up_to, page_messages)
            .await?;
        let more = match page.last() {
            Some(last) if page.len() as i64 == page_messages => {
                after = last.seq;
                true
            }
            _ => false,
        };
        let paged = std::sync::Arc::clone(&item);
        encoder = encode(encoder, move |encoder| {
            encoder.paged_messages(&paged, &page)
        })
        .await?;
        send(buffer, out).await?;
        if !more {
            break;
        }
    }
    encoder = encode(encoder, move |encoder| encoder.end_paged(&item)).await?;
    Ok(encoder)
}

fn encode_batch(
    encoder: &mut Encoder,
    batch: &[ExportedConversation],
    messages: &HashMap<String, Vec<MessageRecord>>,
    events: &HashMap<String, Vec<ConversationEvent>>,
) -> std::io::Result<()> {
    for item in batch {
        let id = &item.conversation.id;
        encoder.conversation(
            item,
            messages.get(id).map_or(&[][..], Vec::as_slice),
            events.get(id).map_or(&[][..], Vec::as_slice),
        )?;
    }
    Ok(())
}

/// Starts an export on its own task; answers the receiving end of its output. A failure is the
/// last item, so a reader can tell a finished export from a broken one.
pub fn spawn(store: Store, request: ExportRequest) -> mpsc::Receiver<ExportChunk> {
    let (sender, receiver) = mpsc::channel(CHANNEL_BATCHES);
    tokio::spawn(async move {
        match run(&store, &request, &sender).await {
            Ok(stats) => tracing::info!(
                tenant = %request.tenant,
                format = request.format.as_str(),
                rows = stats.rows,
                conversations = stats.conversations,
                "export finished"
            ),
            Err(error) if error.code() == "export_cancelled" => {
                tracing::info!(tenant = %request.tenant, "export cancelled by its reader");
            }
            Err(error) => {
                tracing::warn!(tenant = %request.tenant, error = %error.describe(), "export failed");
                let _ = sender.send(Err(error)).await;
            }
        }
    });
    receiver
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> ExportQuery {
        let value: serde_json::Map<String, serde_json::Value> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), serde_json::Value::String((*v).to_owned())))
            .collect();
        serde_json::from_value(serde_json::Value::Object(value)).expect("query")
    }

    #[test]
    fn defaults_are_csv_per_conversation_up_to_now() {
        let request = ExportRequest::parse("acme", &ExportQuery::default(), 5_000, 0).unwrap();
        assert_eq!(request.format, ExportFormat::Csv);
        assert_eq!(request.rows, ExportRows::Conversation);
        assert_eq!(request.filter.from, None);
        assert_eq!(request.filter.to, Some(5_001), "now itself is included");
        assert_eq!(
            request.file_name(),
            "acme-conversations-19700101T000005Z.csv"
        );
    }

    #[test]
    fn periods_take_ms_rfc3339_and_dates() {
        assert_eq!(
            parse_time("from", "1700000000000", 0).unwrap(),
            (1_700_000_000_000, false)
        );
        let at = 1_796_613_195_123;
        assert_eq!(
            parse_time("from", "2026-12-07T03:13:15.123Z", 480).unwrap(),
            (at, false)
        );
        assert_eq!(
            parse_time("from", "2026-12-07T11:13:15.123+08:00", 0).unwrap(),
            (at, false)
        );
        assert_eq!(
            parse_time("to", "2026-12-07", 0).unwrap(),
            (1_796_601_600_000, true)
        );
        // A date at UTC+8 starts 8 hours earlier.
        assert_eq!(
            parse_time("to", "2026-12-07", 480).unwrap(),
            (1_796_601_600_000 - 8 * 3_600_000, true)
        );
        for bad in ["yesterday", "2026-13-01", "-5", "1e9", "2026-12-07 03:13"] {
            let error = parse_time("from", bad, 0).unwrap_err();
            assert_eq!(error.code(), "bad_period", "{bad}");
        }
    }

    #[test]
    fn bad_queries_have_their_codes() {
        let cases = [
            (vec![("format", "pdf")], "bad_format"),
            (vec![("rows", "event")], "bad_rows"),
            (
                vec![("from", "2026-12-02"), ("to", "2026-12-01")],
                "bad_period",
            ),
            (vec![("from", "1000"), ("to", "1000")], "bad_period"),
            (vec![("channel", "fax")], "bad_channel"),
        ];
        for (pairs, code) in cases {
            let error = ExportRequest::parse("t", &query(&pairs), 0, 0).unwrap_err();
            assert_eq!(error.code(), code, "{pairs:?}");
        }
        let long = "x".repeat(201);
        let error = ExportRequest::parse("t", &query(&[("agent", &long)]), 0, 0).unwrap_err();
        assert_eq!(error.code(), "bad_filter");
        let pairs = [
            ("format", "xlsx"),
            ("rows", "message"),
            ("from", "2026-12-01"),
            ("channel", "wechat"),
            ("skill_group", " sales "),
        ];
        let request = ExportRequest::parse("t", &query(&pairs), 1_796_613_195_123, 0).unwrap();
        assert_eq!(request.format, ExportFormat::Xlsx);
        assert_eq!(request.rows, ExportRows::Message);
        assert_eq!(request.filter.channel.as_deref(), Some("wechat"));
        assert_eq!(request.filter.skill_group.as_deref(), Some("sales"));
        assert_eq!(request.filter.from, Some(1_796_083_200_000));
        assert!(request.file_name().ends_with(".xlsx"));
        assert!(request.file_name().starts_with("t-messages-"));
        // A date `to` covers that whole day, so a one-day range is not empty.
        let day = query(&[("from", "2026-12-01"), ("to", "2026-12-01")]);
        let day = ExportRequest::parse("t", &day, 0, 0).unwrap();
        assert_eq!(day.filter.to, Some(1_796_083_200_000 + DAY_MS));
    }

    fn conversation(id: &str, last_seq: i64) -> ExportedConversation {
        ExportedConversation {
            conversation: store::Conversation {
                id: id.into(),
                tenant_id: "t".into(),
                customer_id: "c".into(),
                channel: "web".into(),
                state: store::ConversationState::Bot,
                skill_group: "general".into(),
                priority: 0,
                agent_id: None,
                queue_key: 0,
                handoff_reason: None,
                last_seq,
                customer_acked_seq: 0,
                agent_acked_seq: 0,
                created_at: 0,
                updated_at: 0,
                assigned_at: None,
                first_response_at: None,
                closed_at: None,
            },
            quality_score: None,
        }
    }

    /// A store in a temporary folder with tenant `t`: a long bot conversation of 23 messages
    /// (awkward text, attachments, the bot's decisions, a system note) and two short ones.
    async fn seeded() -> (Store, tempfile::TempDir) {
        use store::crypto::{FieldCipher, SecretKey};
        use store::{CustomerProfile, Entry, UnsureStreak};
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        let store = Store::connect(&url, FieldCipher::new(&SecretKey::generate()))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        store.create_tenant("t", "h").await.unwrap();
        let entry = Entry {
            state: store::ConversationState::Bot,
            skill_group: "general".into(),
            priority: 0,
        };
        let texts = [
            "=1+1",
            "中文, with \"quotes\"\nand a second line",
            "-1 is my order",
            "plain",
            "\"quoted\" start",
        ];
        let customer = store
            .customer_for_identity("t", ChannelKind::Web, "long", &CustomerProfile::default())
            .await
            .unwrap();
        let long = "x".repeat(4_000);
        for index in 0..8 {
            let text = texts[index % texts.len()];
            let meta = (index == 1).then(|| {
                serde_json::json!({"attachments": [{"id": "att-1", "kind": "image",
                    "name": "cup.png", "media_type": "image/png", "size": 812}]})
            });
            let id = store
                .append_customer_message_with(
                    &customer,
                    Some(&format!("c{index}")),
                    &format!("{text} {long}"),
                    &entry,
                    meta,
                )
                .await
                .unwrap()
                .conversation
                .id;
            let decision = ["answer", "clarify", "out_of_scope"][index % 3];
            let meta = serde_json::json!({"decision": decision, "faq_id": "f1", "confidence": 0.5});
            store
                .append_bot_message(&id, &format!("bot, \"{index}\""), meta, UnsureStreak::Keep)
                .await
                .unwrap()
                .unwrap();
            if index % 4 == 3 {
                store.append_system_message(&id, "a note").await.unwrap();
            }
        }
        for (visitor, count) in [("short", 2), ("one", 1)] {
            let customer = store
                .customer_for_identity("t", ChannelKind::Web, visitor, &CustomerProfile::default())
                .await
                .unwrap();
            for index in 0..count {
                store
                    .append_customer_message(
                        &customer,
                        Some(&format!("s{index}")),
                        "hi, \"you\"",
                        &entry,
                    )
                    .await
                    .unwrap();
            }
        }
        (store, dir)
    }

    /// An export's chunks, with conversations past `page_messages` messages read in pages.
    async fn chunks(store: &Store, format: &str, rows: &str, page_messages: i64) -> Vec<Vec<u8>> {
        let now = store::util::now_ms();
        let request =
            ExportRequest::parse("t", &query(&[("format", format), ("rows", rows)]), now, 0)
                .unwrap();
        let (sender, mut receiver) = mpsc::channel(100_000);
        let stats = run_with_pages(store, &request, &sender, MAX_SHEET_ROWS, page_messages)
            .await
            .unwrap();
        assert_eq!(stats.conversations, 3);
        drop(sender);
        let mut chunks = Vec::new();
        while let Some(chunk) = receiver.recv().await {
            chunks.push(chunk.unwrap());
        }
        chunks
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_long_conversation_read_in_pages_exports_the_same_bytes() {
        let (store, _dir) = seeded().await;
        let long = store
            .export_conversations("t", &ExportFilter::default(), None, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|item| item.conversation.last_seq)
            .max()
            .unwrap();
        assert_eq!(long, 18, "8 customer messages, 8 bot answers, 2 notes");
        for format in ["csv", "jsonl", "xlsx"] {
            for rows in ["conversation", "message"] {
                let whole = chunks(&store, format, rows, 1_000).await;
                let whole: Vec<u8> = whole.concat();
                for page in [1, 2, 3, 17, 18] {
                    let paged = chunks(&store, format, rows, page).await;
                    assert!(
                        paged.concat() == whole,
                        "{format} {rows}, pages of {page}: not the same output"
                    );
                    // Sent a page at a time: no chunk holds much more than one page (XLSX
                    // goes through the deflater, which sends when its own buffer fills).
                    if page <= 3 && format != "xlsx" {
                        assert!(paged.len() >= 18 / page as usize, "{format} {rows} {page}");
                        let largest = paged.iter().map(Vec::len).max().unwrap();
                        assert!(
                            largest <= page as usize * 8_200 + 8_192,
                            "{format} {rows}, pages of {page}: a chunk of {largest} bytes"
                        );
                    }
                }
            }
        }
        store.close().await;
    }

    #[test]
    fn batches_are_bounded_by_messages() {
        let page = vec![
            conversation("a", 3_000),
            conversation("b", 1_500),
            conversation("c", 1_000),
            conversation("d", 9_000),
            conversation("e", 1),
        ];
        let sizes: Vec<Vec<String>> = batches(page)
            .into_iter()
            .map(|batch| batch.into_iter().map(|i| i.conversation.id).collect())
            .collect();
        assert_eq!(sizes, vec![vec!["a", "b"], vec!["c"], vec!["d"], vec!["e"]]);
    }
}
