//! The formats of an export and their rows: CSV, JSON Lines and XLSX; one row per conversation
//! or one per message. An [`Encoder`] writes rows into a [`Buffer`] that the export drains after
//! each batch, so what it holds is one batch's output.
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
use super::xlsx::Workbook;
#[cfg(doc)]
use super::xlsx::MAX_SHEET_ROWS;

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

/// Writes an export's rows in one format.
pub struct Encoder {
    rows: ExportRows,
    sink: Sink,
    written: u64,
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

    fn table_row(&mut self, cells: &[Cell]) -> std::io::Result<()> {
        match &mut self.sink {
            Sink::Csv(writer) => {
                for cell in cells {
                    match cell {
                        Cell::Empty => writer.write_field("")?,
                        Cell::Int(value) => writer.write_field(value.to_string())?,
                        Cell::Number(value) => writer.write_field(value.to_string())?,
                        Cell::Text(text) => writer.write_field(guard_formula(text).as_bytes())?,
                    }
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

fn sender_counts(messages: &[MessageRecord]) -> [i64; 4] {
    let mut counts = [0; 4];
    for message in messages {
        let index = match message.sender.as_str() {
            "customer" => 0,
            "bot" => 1,
            "agent" => 2,
            _ => 3,
        };
        counts[index] += 1;
    }
    counts
}

fn meta_text<'a>(message: &'a MessageRecord, field: &str) -> Option<&'a str> {
    message.meta.as_ref()?.get(field)?.as_str()
}

/// `answer 3; handoff 1`: how often the bot decided what, by name.
fn bot_decisions(messages: &[MessageRecord]) -> String {
    let mut counts: BTreeMap<&str, u32> = BTreeMap::new();
    for message in messages {
        if message.sender.as_str() == "bot" {
            if let Some(decision) = meta_text(message, "decision") {
                *counts.entry(decision).or_default() += 1;
            }
        }
    }
    counts
        .iter()
        .map(|(decision, count)| format!("{decision} {count}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn transcript(messages: &[MessageRecord]) -> String {
    messages
        .iter()
        .map(|message| {
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
        })
        .collect::<Vec<_>>()
        .join("\n")
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
    let c = &item.conversation;
    let [customer, bot, agent, system] = sender_counts(messages);
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
        Cell::Int(messages.len() as i64),
        Cell::Int(customer),
        Cell::Int(bot),
        Cell::Int(agent),
        Cell::Int(system),
        Cell::text(bot_decisions(messages)),
        Cell::text(transcript(messages)),
        Cell::text(event_lines(events)),
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
    let messages: Vec<Value> = messages
        .iter()
        .map(|m| {
            json!({
                "seq": m.seq,
                "created_at": m.created_at,
                "sender_kind": m.sender.as_str(),
                "sender_id": m.sender_id,
                "text": m.text,
                "meta": m.meta,
            })
        })
        .collect();
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
    line.insert("messages".into(), Value::Array(messages));
    line.insert("events".into(), Value::Array(events));
    Value::Object(line)
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
    fn formula_starts_are_guarded_and_other_text_is_not() {
        for risky in ["=1+1", "+1", "-2", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(guard_formula(risky), format!("'{risky}"));
        }
        for plain in ["hello", "1+1", "a=b", "", "'quoted"] {
            assert_eq!(guard_formula(plain), plain);
        }
    }
}
