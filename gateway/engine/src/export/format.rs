//! The formats of an export and their rows: CSV, JSON Lines and XLSX; one row per conversation
//! or one per message. An [`Encoder`] writes rows into a [`Buffer`] that the export drains after
//! each batch, so what it holds is one batch's output. A conversation too long for a batch is
//! written a page of messages at a time ([`Encoder::begin_paged`]): its row (or its rows) come
//! out byte for byte as if it had been read whole, and the buffer is drained after each page.
//!
//! CSV follows RFC 4180 (CRLF line ends, fields quoted when they hold a comma, a quote or a line
//! break, quotes doubled), starts with a UTF-8 byte order mark (so spreadsheet programs read it
//! as UTF-8), and guards against formula injection as OWASP recommends: a text cell that starts
//! with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'`, so a spreadsheet shows
//! it as text instead of running it. XLSX cells are typed (inline strings are never formulas),
//! so they carry the text unchanged.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use store::export::ExportedConversation;
use store::{ConversationEvent, MessageRecord};

use super::cell::{rfc3339, Cell};
#[cfg(doc)]
use super::xlsx::MAX_SHEET_ROWS;
use super::xlsx::{Workbook, MAX_CELL_CHARS};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Jsonl,
    Xlsx,
}

impl ExportFormat {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "csv" => Some(ExportFormat::Csv),
            "jsonl" => Some(ExportFormat::Jsonl),
            "xlsx" => Some(ExportFormat::Xlsx),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Jsonl => "jsonl",
            ExportFormat::Xlsx => "xlsx",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Csv => "text/csv; charset=utf-8",
            ExportFormat::Jsonl => "application/x-ndjson",
            ExportFormat::Xlsx => {
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            }
        }
    }
}

/// What one row (one JSON line) is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportRows {
    /// One per conversation, with its transcript and events (nested in JSON Lines).
    Conversation,
    /// One per message, with its conversation's channel, skill group, state and agent.
    Message,
}

impl ExportRows {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "conversation" => Some(ExportRows::Conversation),
            "message" => Some(ExportRows::Message),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ExportRows::Conversation => "conversation",
            ExportRows::Message => "message",
        }
    }

    /// The table's columns (CSV and XLSX).
    pub fn columns(self) -> Vec<&'static str> {
        match self {
            ExportRows::Conversation => CONVERSATION_COLUMNS.to_vec(),
            ExportRows::Message => MESSAGE_COLUMNS.to_vec(),
        }
    }

    fn sheet_name(self) -> &'static str {
        match self {
            ExportRows::Conversation => "conversations",
            ExportRows::Message => "messages",
        }
    }
}

pub const CONVERSATION_COLUMNS: [&str; 22] = [
    "conversation_id",
    "channel",
    "state",
    "skill_group",
    "agent_id",
    "customer_id",
    "priority",
    "handoff_reason",
    "quality_score",
    "created_at",
    "updated_at",
    "assigned_at",
    "first_response_at",
    "closed_at",
    "messages",
    "customer_messages",
    "bot_messages",
    "agent_messages",
    "system_messages",
    "bot_decisions",
    "transcript",
    "events",
];

pub const MESSAGE_COLUMNS: [&str; 15] = [
    "conversation_id",
    "seq",
    "created_at",
    "sender_kind",
    "sender_id",
    "text",
    "attachments",
    "bot_decision",
    "bot_confidence",
    "faq_id",
    "reason",
    "channel",
    "skill_group",
    "conversation_state",
    "agent_id",
];

/// Bytes written and not yet taken; cloned handles share them.
#[derive(Clone, Default)]
pub struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Buffer {
    /// Everything written since the last take.
    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The cell a CSV gets for a text: a leading `'` when a spreadsheet would take it for a formula.
pub fn guard_formula(text: &str) -> std::borrow::Cow<'_, str> {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}").into(),
        _ => text.into(),
    }
}

enum Sink {
    Csv(Box<csv::Writer<Buffer>>),
    Jsonl(Buffer),
    Xlsx(Box<Workbook<Buffer>>),
}

/// Where a conversation's row written a page at a time stands, between its pages.
enum Paged {
    /// Message rows: each page's messages are rows of their own.
    Messages,
    /// JSON Lines: the `messages` array is open; the fields after it are kept for the end.
    Json {
        first: bool,
        rest: Vec<(String, Value)>,
    },
    /// CSV: the quoted transcript cell is open; the events cell comes last.
    Csv { first: bool, events: String },
    /// XLSX: the row is made in memory (counts, and a transcript kept only up to the cell
    /// limit, since the cell is cut there anyway) and written at the end.
    Xlsx {
        summary: Summary,
        transcript: String,
        units: usize,
        events: String,
    },
}

/// What a conversation row says about its messages before its transcript: how many, by
/// sender, and the bot's decisions. CSV needs it before the first page of a conversation
/// written in pages, so such a conversation's messages are read twice there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    messages: i64,
    senders: [i64; 4],
    decisions: BTreeMap<String, u32>,
}

impl Summary {
    /// The summary of these messages.
    pub fn of(messages: &[MessageRecord]) -> Summary {
        let mut summary = Summary::default();
        summary.add(messages);
        summary
    }

    /// Counts one more page of messages.
    pub fn add(&mut self, messages: &[MessageRecord]) {
        for message in messages {
            self.messages += 1;
            let index = match message.sender.as_str() {
                "customer" => 0,
                "bot" => 1,
                "agent" => 2,
                _ => 3,
            };
            self.senders[index] += 1;
            if message.sender.as_str() == "bot" {
                if let Some(decision) = meta_text(message, "decision") {
                    match self.decisions.get_mut(decision) {
                        Some(count) => *count += 1,
                        None => {
                            self.decisions.insert(decision.to_owned(), 1);
                        }
                    }
                }
            }
        }
    }

    /// Messages counted.
    pub fn messages(&self) -> i64 {
        self.messages
    }

    /// `answer 3; handoff 1`: how often the bot decided what, by name.
    fn decisions(&self) -> String {
        self.decisions
            .iter()
            .map(|(decision, count)| format!("{decision} {count}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Where the transcript is in a conversation row (the events follow it).
const TRANSCRIPT_CELL: usize = 20;

/// Writes an export's rows in one format.
pub struct Encoder {
    rows: ExportRows,
    sink: Sink,
    written: u64,
    /// The conversation being written a page at a time, if any.
    paged: Option<Paged>,
    /// The output, for what goes around the CSV writer (a transcript written in pages).
    raw: Buffer,
}

impl Encoder {
    /// An encoder writing to `out`, the header written (CSV, XLSX); XLSX sheets hold at most
    /// `sheet_rows` rows ([`MAX_SHEET_ROWS`] but in tests).
    pub fn with_sheet_rows(
        format: ExportFormat,
        rows: ExportRows,
        mut out: Buffer,
        sheet_rows: u32,
    ) -> std::io::Result<Self> {
        let raw = out.clone();
        let sink = match format {
            ExportFormat::Csv => {
                out.write_all("\u{feff}".as_bytes())?;
                let mut writer = csv::WriterBuilder::new()
                    .terminator(csv::Terminator::CRLF)
                    .quote_style(csv::QuoteStyle::Necessary)
                    .from_writer(out);
                writer.write_record(rows.columns())?;
                Sink::Csv(Box::new(writer))
            }
            ExportFormat::Jsonl => Sink::Jsonl(out),
            ExportFormat::Xlsx => Sink::Xlsx(Box::new(Workbook::new(
                out,
                rows.sheet_name(),
                rows.columns(),
                sheet_rows,
            )?)),
        };
        Ok(Encoder {
            rows,
            sink,
            written: 0,
            paged: None,
            raw,
        })
    }

    /// Rows written so far.
    pub fn rows_written(&self) -> u64 {
        self.written
    }

    /// Writes a conversation's row, or one row per message.
    pub fn conversation(
        &mut self,
        item: &ExportedConversation,
        messages: &[MessageRecord],
        events: &[ConversationEvent],
    ) -> std::io::Result<()> {
        match self.rows {
            ExportRows::Conversation => {
                if let Sink::Jsonl(out) = &mut self.sink {
                    let line = conversation_json(item, messages, events);
                    serde_json::to_writer(&mut *out, &line)?;
                    out.write_all(b"\n")?;
                } else {
                    let cells = conversation_cells(item, messages, events);
                    self.table_row(&cells)?;
                }
                self.written += 1;
            }
            ExportRows::Message => {
                for message in messages {
                    if let Sink::Jsonl(out) = &mut self.sink {
                        serde_json::to_writer(&mut *out, &message_json(item, message))?;
                        out.write_all(b"\n")?;
                    } else {
                        let cells = message_cells(item, message);
                        self.table_row(&cells)?;
                    }
                    self.written += 1;
                }
            }
        }
        Ok(())
    }

    /// Whether a conversation written in pages needs its [`Summary`] first
    /// ([`Encoder::begin_paged`]): CSV conversation rows, whose counts come before the
    /// transcript.
    pub fn needs_summary(&self) -> bool {
        self.rows == ExportRows::Conversation && matches!(self.sink, Sink::Csv(_))
    }

    /// Starts a conversation whose messages come a page at a time ([`Encoder::paged_messages`],
    /// then [`Encoder::end_paged`]); what it writes is what [`Encoder::conversation`] writes
    /// for the same messages. `summary` is the summary of all its messages, when
    /// [`Encoder::needs_summary`]; then it must count at least two messages (so the transcript
    /// has a line break and is quoted), a shorter conversation is written whole.
    pub fn begin_paged(
        &mut self,
        item: &ExportedConversation,
        summary: Option<&Summary>,
        events: &[ConversationEvent],
    ) -> std::io::Result<()> {
        let paged = match (self.rows, &mut self.sink) {
            (ExportRows::Message, _) => Paged::Messages,
            (ExportRows::Conversation, Sink::Jsonl(out)) => {
                let mut line = conversation_fields(item);
                line.insert("messages".into(), Value::Null);
                line.insert("events".into(), events_json(events));
                out.write_all(b"{")?;
                let mut entries = line.into_iter();
                let mut first = true;
                for (key, value) in entries.by_ref() {
                    if !first {
                        out.write_all(b",")?;
                    }
                    first = false;
                    serde_json::to_writer(&mut *out, &key)?;
                    out.write_all(b":")?;
                    if key == "messages" {
                        out.write_all(b"[")?;
                        break;
                    }
                    serde_json::to_writer(&mut *out, &value)?;
                }
                Paged::Json {
                    first: true,
                    rest: entries.collect(),
                }
            }
            (ExportRows::Conversation, Sink::Csv(writer)) => {
                let summary = match summary {
                    Some(summary) if summary.messages >= 2 => summary,
                    _ => return Err(std::io::Error::other(
                        "a CSV conversation row in pages needs the summary of two or more messages",
                    )),
                };
                let cells = conversation_cells_with(item, summary, String::new(), String::new());
                for cell in &cells[..TRANSCRIPT_CELL] {
                    csv_field(writer, cell)?;
                }
                // The transcript's place: its text goes straight to the output, quoted (two
                // lines or more hold a line break, so the writer would quote them too).
                writer.write_field("")?;
                writer.flush()?;
                self.raw.write_all(b"\"")?;
                Paged::Csv {
                    first: true,
                    events: event_lines(events),
                }
            }
            (ExportRows::Conversation, Sink::Xlsx(_)) => Paged::Xlsx {
                summary: Summary::default(),
                transcript: String::new(),
                units: 0,
                events: event_lines(events),
            },
        };
        self.paged = Some(paged);
        Ok(())
    }

    /// The next page of the conversation begun with [`Encoder::begin_paged`], in seq order; what
    /// it makes is in the buffer (but for what the XLSX deflater holds).
    pub fn paged_messages(
        &mut self,
        item: &ExportedConversation,
        messages: &[MessageRecord],
    ) -> std::io::Result<()> {
        if matches!(self.paged, Some(Paged::Messages)) {
            self.conversation(item, messages, &[])?;
            // The CSV writer's rows go to the buffer with their page (which does not change a
            // byte); the deflater of XLSX keeps its own bounded buffer and is flushed only
            // where an export read whole flushes it, so the zip comes out the same.
            if let Sink::Csv(writer) = &mut self.sink {
                writer.flush()?;
            }
            return Ok(());
        }
        match (&mut self.paged, &mut self.sink) {
            (Some(Paged::Json { first, .. }), Sink::Jsonl(out)) => {
                for message in messages {
                    if !*first {
                        out.write_all(b",")?;
                    }
                    *first = false;
                    serde_json::to_writer(&mut *out, &nested_message_json(message))?;
                }
                Ok(())
            }
            (Some(Paged::Csv { first, .. }), Sink::Csv(_)) => {
                let out = &mut self.raw;
                for message in messages {
                    let line = transcript_line(message);
                    let text = if *first {
                        guard_formula(&line)
                    } else {
                        out.write_all(b"\n")?;
                        line.as_str().into()
                    };
                    *first = false;
                    write_quoted(out, &text)?;
                }
                Ok(())
            }
            (
                Some(Paged::Xlsx {
                    summary,
                    transcript,
                    units,
                    ..
                }),
                Sink::Xlsx(_),
            ) => {
                for message in messages {
                    let first = summary.messages == 0;
                    summary.add(std::slice::from_ref(message));
                    // Past the cell's limit the rest would be cut: not kept.
                    if *units > MAX_CELL_CHARS {
                        continue;
                    }
                    if !first {
                        transcript.push('\n');
                        *units += 1;
                    }
                    let line = transcript_line(message);
                    *units += line.encode_utf16().count();
                    transcript.push_str(&line);
                }
                Ok(())
            }
            _ => Err(not_paged()),
        }
    }

    /// Ends the conversation begun with [`Encoder::begin_paged`].
    pub fn end_paged(&mut self, item: &ExportedConversation) -> std::io::Result<()> {
        match (self.paged.take(), &mut self.sink) {
            (Some(Paged::Messages), _) => return Ok(()),
            (Some(Paged::Json { rest, .. }), Sink::Jsonl(out)) => {
                out.write_all(b"]")?;
                for (key, value) in rest {
                    out.write_all(b",")?;
                    serde_json::to_writer(&mut *out, &key)?;
                    out.write_all(b":")?;
                    serde_json::to_writer(&mut *out, &value)?;
                }
                out.write_all(b"}\n")?;
            }
            (Some(Paged::Csv { events, .. }), Sink::Csv(writer)) => {
                self.raw.write_all(b"\"")?;
                csv_field(writer, &Cell::Text(events))?;
                writer.write_record(None::<&[u8]>)?;
            }
            (
                Some(Paged::Xlsx {
                    summary,
                    transcript,
                    events,
                    ..
                }),
                Sink::Xlsx(_),
            ) => {
                let cells = conversation_cells_with(item, &summary, transcript, events);
                self.table_row(&cells)?;
            }
            _ => return Err(not_paged()),
        }
        self.written += 1;
        Ok(())
    }

    fn table_row(&mut self, cells: &[Cell]) -> std::io::Result<()> {
        match &mut self.sink {
            Sink::Csv(writer) => {
                for cell in cells {
                    csv_field(writer, cell)?;
                }
                writer.write_record(None::<&[u8]>)?;
                Ok(())
            }
            Sink::Xlsx(workbook) => workbook.row(cells),
            Sink::Jsonl(_) => Ok(()),
        }
    }

    /// Pushes what the writers hold into the buffer.
    pub fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.sink {
            Sink::Csv(writer) => writer.flush(),
            Sink::Jsonl(_) => Ok(()),
            Sink::Xlsx(workbook) => workbook.flush(),
        }
    }

    /// Ends the output (the XLSX's parts and directory).
    pub fn finish(self) -> std::io::Result<()> {
        match self.sink {
            Sink::Csv(mut writer) => writer.flush(),
            Sink::Jsonl(_) => Ok(()),
            Sink::Xlsx(workbook) => workbook.finish().map(|_| ()),
        }
    }
}

fn not_paged() -> std::io::Error {
    std::io::Error::other("no conversation of this kind is being written in pages")
}

fn csv_field(writer: &mut csv::Writer<Buffer>, cell: &Cell) -> std::io::Result<()> {
    match cell {
        Cell::Empty => writer.write_field("")?,
        Cell::Int(value) => writer.write_field(value.to_string())?,
        Cell::Number(value) => writer.write_field(value.to_string())?,
        Cell::Text(text) => writer.write_field(guard_formula(text).as_bytes())?,
    }
    Ok(())
}

/// Text inside a quoted CSV field, its quotes doubled (RFC 4180, as the writer does).
fn write_quoted(out: &mut Buffer, text: &str) -> std::io::Result<()> {
    for (index, part) in text.split('"').enumerate() {
        if index > 0 {
            out.write_all(b"\"\"")?;
        }
        out.write_all(part.as_bytes())?;
    }
    Ok(())
}

fn meta_text<'a>(message: &'a MessageRecord, field: &str) -> Option<&'a str> {
    message.meta.as_ref()?.get(field)?.as_str()
}

fn transcript(messages: &[MessageRecord]) -> String {
    messages
        .iter()
        .map(transcript_line)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A message's line in a transcript: `<time> <sender>: <text> [<attachments>]`.
fn transcript_line(message: &MessageRecord) -> String {
    let mut line = format!(
        "{} {}: {}",
        rfc3339(message.created_at),
        message.sender.as_str(),
        message.text
    );
    let attachments = attachment_names(message);
    if !attachments.is_empty() {
        if !message.text.is_empty() {
            line.push(' ');
        }
        line.push_str(&format!("[{attachments}]"));
    }
    line
}

/// A message's attachments as `image cup.png; file invoice.pdf` (empty without any).
fn attachment_names(message: &MessageRecord) -> String {
    crate::files::attachments_of(message)
        .iter()
        .map(|attachment| format!("{} {}", attachment.kind.as_str(), attachment.name))
        .collect::<Vec<_>>()
        .join("; ")
}

fn event_lines(events: &[ConversationEvent]) -> String {
    events
        .iter()
        .map(|event| {
            let mut line = format!(
                "{} {} by {}",
                rfc3339(event.created_at),
                event.kind,
                event.actor_kind
            );
            if let Some(actor) = &event.actor_id {
                line.push_str(&format!(" {actor}"));
            }
            if let Some(reason) = &event.reason {
                line.push_str(&format!(" ({reason})"));
            }
            line
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn conversation_cells(
    item: &ExportedConversation,
    messages: &[MessageRecord],
    events: &[ConversationEvent],
) -> Vec<Cell> {
    conversation_cells_with(
        item,
        &Summary::of(messages),
        transcript(messages),
        event_lines(events),
    )
}

fn conversation_cells_with(
    item: &ExportedConversation,
    summary: &Summary,
    transcript: String,
    events: String,
) -> Vec<Cell> {
    let c = &item.conversation;
    let [customer, bot, agent, system] = summary.senders;
    vec![
        Cell::text(&c.id),
        Cell::text(&c.channel),
        Cell::text(c.state.as_str()),
        Cell::text(&c.skill_group),
        Cell::optional_text(c.agent_id.as_deref()),
        Cell::text(&c.customer_id),
        Cell::Int(c.priority),
        Cell::optional_text(c.handoff_reason.as_deref()),
        Cell::optional_int(item.quality_score),
        Cell::time(c.created_at),
        Cell::time(c.updated_at),
        Cell::optional_time(c.assigned_at),
        Cell::optional_time(c.first_response_at),
        Cell::optional_time(c.closed_at),
        Cell::Int(summary.messages),
        Cell::Int(customer),
        Cell::Int(bot),
        Cell::Int(agent),
        Cell::Int(system),
        Cell::text(summary.decisions()),
        Cell::Text(transcript),
        Cell::Text(events),
    ]
}

fn message_cells(item: &ExportedConversation, message: &MessageRecord) -> Vec<Cell> {
    let c = &item.conversation;
    let confidence = message
        .meta
        .as_ref()
        .and_then(|meta| meta.get("confidence"))
        .and_then(Value::as_f64);
    vec![
        Cell::text(&message.conversation_id),
        Cell::Int(message.seq),
        Cell::time(message.created_at),
        Cell::text(message.sender.as_str()),
        Cell::optional_text(message.sender_id.as_deref()),
        Cell::text(&message.text),
        Cell::text(attachment_names(message)),
        Cell::optional_text(meta_text(message, "decision")),
        confidence.map_or(Cell::Empty, Cell::Number),
        Cell::optional_text(meta_text(message, "faq_id")),
        Cell::optional_text(meta_text(message, "reason")),
        Cell::text(&c.channel),
        Cell::text(&c.skill_group),
        Cell::text(c.state.as_str()),
        Cell::optional_text(c.agent_id.as_deref()),
    ]
}

fn conversation_fields(item: &ExportedConversation) -> serde_json::Map<String, Value> {
    let c = &item.conversation;
    let value = json!({
        "conversation_id": c.id,
        "channel": c.channel,
        "state": c.state.as_str(),
        "skill_group": c.skill_group,
        "agent_id": c.agent_id,
        "customer_id": c.customer_id,
        "priority": c.priority,
        "handoff_reason": c.handoff_reason,
        "quality_score": item.quality_score,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
        "assigned_at": c.assigned_at,
        "first_response_at": c.first_response_at,
        "closed_at": c.closed_at,
    });
    match value {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

fn conversation_json(
    item: &ExportedConversation,
    messages: &[MessageRecord],
    events: &[ConversationEvent],
) -> Value {
    let mut line = conversation_fields(item);
    let messages: Vec<Value> = messages.iter().map(nested_message_json).collect();
    line.insert("messages".into(), Value::Array(messages));
    line.insert("events".into(), events_json(events));
    Value::Object(line)
}

/// A message inside its conversation's JSON line.
fn nested_message_json(m: &MessageRecord) -> Value {
    json!({
        "seq": m.seq,
        "created_at": m.created_at,
        "sender_kind": m.sender.as_str(),
        "sender_id": m.sender_id,
        "text": m.text,
        "meta": m.meta,
    })
}

fn events_json(events: &[ConversationEvent]) -> Value {
    let events: Vec<Value> = events
        .iter()
        .map(|e| {
            json!({
                "kind": e.kind,
                "actor_kind": e.actor_kind,
                "actor_id": e.actor_id,
                "reason": e.reason,
                "created_at": e.created_at,
            })
        })
        .collect();
    Value::Array(events)
}

fn message_json(item: &ExportedConversation, m: &MessageRecord) -> Value {
    let c = &item.conversation;
    json!({
        "conversation_id": m.conversation_id,
        "seq": m.seq,
        "created_at": m.created_at,
        "sender_kind": m.sender.as_str(),
        "sender_id": m.sender_id,
        "text": m.text,
        "meta": m.meta,
        "channel": c.channel,
        "skill_group": c.skill_group,
        "conversation_state": c.state.as_str(),
        "agent_id": c.agent_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transcript_is_the_last_cell_but_the_events() {
        assert_eq!(CONVERSATION_COLUMNS[TRANSCRIPT_CELL], "transcript");
        assert_eq!(CONVERSATION_COLUMNS.len(), TRANSCRIPT_CELL + 2);
    }

    #[test]
    fn formula_starts_are_guarded_and_other_text_is_not() {
        for risky in ["=1+1", "+1", "-2", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(guard_formula(risky), format!("'{risky}"));
        }
        for plain in ["hello", "1+1", "a=b", "", "'quoted"] {
            assert_eq!(guard_formula(plain), plain);
        }
    }
}
