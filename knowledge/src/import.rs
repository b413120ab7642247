//! Import and export of FAQ files: JSON Lines, CSV with a header row, XLSX (first sheet).
//! Pure functions over bytes: the gateway and the CLI do the I/O and the upserts.
//!
//! Columns (CSV and XLSX) and keys (JSONL): `id, question, answer, alternates, tags, locale,
//! enabled, updated_at_ms`; only `question` and `answer` are required. In CSV and XLSX the lists
//! are joined with `|` (a literal `|` or `\` inside an item is written `\|` or `\\`).

use std::collections::HashMap;
use std::io::{Cursor, Write};

use serde::{Deserialize, Serialize};

use crate::error::ImportError;
use crate::record::FaqRecord;

/// Most data rows accepted in one file (bounds memory; the gateway also limits the body size).
pub const MAX_IMPORT_ROWS: usize = 500_000;

/// Column order of CSV export.
pub const CSV_COLUMNS: [&str; 8] = [
    "id",
    "question",
    "answer",
    "alternates",
    "tags",
    "locale",
    "enabled",
    "updated_at_ms",
];

/// A supported file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImportFormat {
    Jsonl,
    Csv,
    Xlsx,
}

impl ImportFormat {
    /// From a declared name: a format (`jsonl`, `ndjson`, `csv`, `xlsx`), a file name with one
    /// of those extensions, or a MIME type.
    pub fn from_name(name: &str) -> Result<ImportFormat, ImportError> {
        let lower = name.trim().to_ascii_lowercase();
        let last = lower.rsplit(['.', '/', '+']).next().unwrap_or_default();
        match last {
            "jsonl" | "ndjson" | "x-ndjson" | "jsonlines" | "json" => Ok(ImportFormat::Jsonl),
            "csv" => Ok(ImportFormat::Csv),
            "xlsx" | "sheet" => Ok(ImportFormat::Xlsx),
            _ => Err(ImportError::UnknownFormat(name.to_string())),
        }
    }

    /// Guesses from the content: a zip archive is XLSX, text starting with `{` is JSON Lines,
    /// text whose first line names a `question` column is CSV.
    pub fn sniff(bytes: &[u8]) -> Option<ImportFormat> {
        if bytes.starts_with(b"PK\x03\x04") {
            return Some(ImportFormat::Xlsx);
        }
        let text = std::str::from_utf8(bytes).ok()?;
        let text = text.trim_start_matches('\u{feff}').trim_start();
        if text.starts_with('{') {
            return Some(ImportFormat::Jsonl);
        }
        let first_line = text.lines().next()?.to_lowercase();
        (first_line.contains("question") || first_line.contains("问题"))
            .then_some(ImportFormat::Csv)
    }

    fn name(self) -> &'static str {
        match self {
            ImportFormat::Jsonl => "json lines",
            ImportFormat::Csv => "csv",
            ImportFormat::Xlsx => "xlsx",
        }
    }
}

/// A record parsed from a file, with the line (row) it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedRecord {
    /// 1-based line in JSONL and CSV (the header is line 1), 1-based row in XLSX.
    pub line: usize,
    pub record: FaqRecord,
}

/// A rejected row: reported to the user while the good rows still land.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowError {
    pub line: usize,
    pub message: String,
}

/// The result of parsing one file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedImport {
    /// Valid, normalized records (missing ids derived from the question), in file order.
    pub records: Vec<ImportedRecord>,
    /// Rows that were skipped, in file order.
    pub errors: Vec<RowError>,
}

/// Parses a file given its declared format, or by sniffing when `format` is `None`.
/// A file that is not the declared format (or not any format) is an [`ImportError`];
/// bad rows are [`RowError`]s; a repeated id is an error on its later rows.
pub fn parse_import(
    bytes: &[u8],
    format: Option<ImportFormat>,
) -> Result<ParsedImport, ImportError> {
    let sniffed = ImportFormat::sniff(bytes);
    let format = match (format, sniffed) {
        (None, Some(found)) => found,
        (None, None) => return Err(ImportError::Unrecognised),
        (Some(declared), Some(ImportFormat::Xlsx)) if declared != ImportFormat::Xlsx => {
            return Err(ImportError::Mismatch {
                declared: declared.name(),
                detected: "xlsx",
            })
        }
        (Some(declared), _) => declared,
    };
    let rows = match format {
        ImportFormat::Jsonl => parse_jsonl(bytes)?,
        ImportFormat::Csv => parse_csv(bytes)?,
        ImportFormat::Xlsx => parse_xlsx(bytes)?,
    };
    let mut parsed = ParsedImport::default();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (line, row) in rows {
        let checked = row.and_then(|mut record| {
            record.normalize();
            record.validate().map_err(|e| e.to_string())?;
            Ok(record)
        });
        match checked {
            Ok(record) => {
                if let Some(first) = seen.get(&record.id) {
                    parsed.errors.push(RowError {
                        line,
                        message: format!("duplicate id {:?}, first on line {first}", record.id),
                    });
                } else {
                    seen.insert(record.id.clone(), line);
                    parsed.records.push(ImportedRecord { line, record });
                }
            }
            Err(message) => parsed.errors.push(RowError { line, message }),
        }
    }
    Ok(parsed)
}

type Rows = Vec<(usize, Result<FaqRecord, String>)>;

fn utf8(bytes: &[u8]) -> Result<&str, ImportError> {
    std::str::from_utf8(bytes)
        .map(|t| t.trim_start_matches('\u{feff}'))
        .map_err(|_| ImportError::NotUtf8)
}

fn check_row_count(count: usize) -> Result<(), ImportError> {
    if count > MAX_IMPORT_ROWS {
        return Err(ImportError::TooManyRows(count, MAX_IMPORT_ROWS));
    }
    Ok(())
}

/// JSONL keys; every one optional so a missing field is a validation message, not a parse error.
#[derive(Deserialize)]
struct JsonRow {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    question: Option<String>,
    #[serde(default)]
    answer: Option<String>,
    #[serde(default)]
    alternates: Option<Vec<String>>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    locale: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    updated_at_ms: Option<i64>,
}

fn parse_jsonl(bytes: &[u8]) -> Result<Rows, ImportError> {
    let text = utf8(bytes)?;
    let mut rows = Vec::new();
    let mut any_object = false;
    for (index, line) in text.lines().enumerate() {
        let line_text = line.trim();
        if line_text.is_empty() {
            continue;
        }
        check_row_count(rows.len() + 1)?;
        let row = match serde_json::from_str::<serde_json::Value>(line_text) {
            Err(e) => Err(format!("invalid json: {e}")),
            Ok(value) if !value.is_object() => Err("line is not a json object".to_string()),
            Ok(value) => {
                any_object = true;
                serde_json::from_value::<JsonRow>(value)
                    .map(|r| FaqRecord {
                        id: r.id.unwrap_or_default(),
                        question: r.question.unwrap_or_default(),
                        answer: r.answer.unwrap_or_default(),
                        alternates: r.alternates.unwrap_or_default(),
                        tags: r.tags.unwrap_or_default(),
                        locale: r.locale.unwrap_or_default(),
                        enabled: r.enabled.unwrap_or(true),
                        updated_at_ms: r.updated_at_ms.unwrap_or(0),
                    })
                    .map_err(|e| format!("invalid record: {e}"))
            }
        };
        rows.push((index + 1, row));
    }
    if !rows.is_empty() && !any_object {
        return Err(ImportError::NotJsonLines);
    }
    Ok(rows)
}

/// Which column holds which field (CSV and XLSX share this).
struct Columns {
    index: HashMap<&'static str, usize>,
}

impl Columns {
    fn from_header<S: AsRef<str>>(header: &[S]) -> Result<Columns, ImportError> {
        let mut index = HashMap::new();
        for (at, name) in header.iter().enumerate() {
            let name = name
                .as_ref()
                .trim()
                .trim_start_matches('\u{feff}')
                .to_lowercase();
            let field = match name.as_str() {
                "id" => "id",
                "question" | "问题" => "question",
                "answer" | "答案" => "answer",
                "alternates" | "相似问题" => "alternates",
                "tags" | "标签" => "tags",
                "locale" | "语言" => "locale",
                "enabled" | "启用" => "enabled",
                "updated_at_ms" => "updated_at_ms",
                _ => continue,
            };
            index.entry(field).or_insert(at);
        }
        for required in ["question", "answer"] {
            if !index.contains_key(required) {
                return Err(ImportError::MissingColumn(required));
            }
        }
        Ok(Columns { index })
    }

    fn record<S: AsRef<str>>(&self, cells: &[S]) -> Result<FaqRecord, String> {
        let get = |field: &str| -> &str {
            self.index
                .get(field)
                .and_then(|&at| cells.get(at))
                .map(|c| c.as_ref().trim())
                .unwrap_or_default()
        };
        let enabled = match get("enabled").to_lowercase().as_str() {
            "" | "true" | "1" | "yes" | "是" => true,
            "false" | "0" | "no" | "否" => false,
            other => return Err(format!("enabled must be true or false, not {other:?}")),
        };
        let updated_at_ms = match get("updated_at_ms") {
            "" => 0,
            text => text
                .parse::<i64>()
                .map_err(|_| format!("updated_at_ms must be an integer, not {text:?}"))?,
        };
        Ok(FaqRecord {
            id: get("id").to_string(),
            question: get("question").to_string(),
            answer: get("answer").to_string(),
            alternates: split_list(get("alternates")),
            tags: split_list(get("tags")),
            locale: get("locale").to_string(),
            enabled,
            updated_at_ms,
        })
    }
}

fn parse_csv(bytes: &[u8]) -> Result<Rows, ImportError> {
    let text = utf8(bytes)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(text.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| ImportError::BadCsv(e.to_string().to_lowercase()))?
        .clone();
    let columns = Columns::from_header(&header.iter().collect::<Vec<_>>())?;
    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        let line = reader.position().line() as usize;
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map_or(line, |p| p.line() as usize);
                if record.iter().all(|cell| cell.trim().is_empty()) {
                    continue;
                }
                check_row_count(rows.len() + 1)?;
                rows.push((line, columns.record(&record.iter().collect::<Vec<_>>())));
            }
            // The input is valid UTF-8 and the reader is flexible: what is left is a broken quote,
            // after which nothing can be trusted.
            Err(e) => return Err(ImportError::BadCsv(e.to_string().to_lowercase())),
        }
    }
    Ok(rows)
}

fn cell_text(cell: &calamine::Data) -> String {
    match cell {
        calamine::Data::Empty => String::new(),
        calamine::Data::String(s) => s.clone(),
        calamine::Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        other => other.to_string(),
    }
}

fn parse_xlsx(bytes: &[u8]) -> Result<Rows, ImportError> {
    use calamine::Reader;
    let mut workbook = calamine::Xlsx::new(Cursor::new(bytes))
        .map_err(|e| ImportError::NotXlsx(e.to_string().to_lowercase()))?;
    let range = match workbook.worksheet_range_at(0) {
        None => return Err(ImportError::NoSheet),
        Some(Err(e)) => return Err(ImportError::NotXlsx(e.to_string().to_lowercase())),
        Some(Ok(range)) => range,
    };
    let first_row = range.start().map_or(0, |(row, _)| row as usize);
    let mut sheet_rows = range.rows().enumerate();
    let Some((_, header)) = sheet_rows.next() else {
        return Err(ImportError::MissingColumn("question"));
    };
    let header: Vec<String> = header.iter().map(cell_text).collect();
    let columns = Columns::from_header(&header)?;
    let mut rows = Vec::new();
    for (offset, cells) in sheet_rows {
        let cells: Vec<String> = cells.iter().map(cell_text).collect();
        if cells.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        check_row_count(rows.len() + 1)?;
        rows.push((first_row + offset + 1, columns.record(&cells)));
    }
    Ok(rows)
}

/// Splits a `|`-joined list, honouring `\|` and `\\`.
pub fn split_list(text: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(next @ ('|' | '\\')) => current.push(next),
                Some(next) => {
                    current.push('\\');
                    current.push(next);
                }
                None => current.push('\\'),
            },
            '|' => items.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    items.push(current);
    items
        .into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Joins a list with `|`, escaping `\` and `|` inside items (the inverse of [`split_list`]).
pub fn join_list(items: &[String]) -> String {
    items
        .iter()
        .map(|item| item.replace('\\', "\\\\").replace('|', "\\|"))
        .collect::<Vec<_>>()
        .join("|")
}

/// Writes records as JSON Lines (one object a line, every field).
pub fn write_jsonl<'a, W, I>(mut out: W, records: I) -> std::io::Result<()>
where
    W: Write,
    I: IntoIterator<Item = &'a FaqRecord>,
{
    for record in records {
        serde_json::to_writer(&mut out, record)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// Writes records as CSV with a header row of [`CSV_COLUMNS`].
pub fn write_csv<'a, W, I>(out: W, records: I) -> std::io::Result<()>
where
    W: Write,
    I: IntoIterator<Item = &'a FaqRecord>,
{
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(CSV_COLUMNS)?;
    for r in records {
        writer.write_record([
            r.id.as_str(),
            &r.question,
            &r.answer,
            &join_list(&r.alternates),
            &join_list(&r.tags),
            &r.locale,
            if r.enabled { "true" } else { "false" },
            &r.updated_at_ms.to_string(),
        ])?;
    }
    writer.flush()
}
