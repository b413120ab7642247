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
/// Rejected rows reported one by one (the rest are only counted), and the longest message kept
/// for each: a file of bad rows cannot make a report larger than the file.
pub const MAX_ROW_ERRORS: usize = 1_000;
const MAX_ERROR_CHARS: usize = 300;
/// Items of a list (alternates, tags) kept while parsing: one more than any record may hold, so
/// validation still refuses the record, but a cell or line of a million empty items cannot
/// become a million strings.
const LIST_ITEMS_KEPT: usize = 51;

/// Most bytes one XLSX zip entry may inflate to (checked on the declared size, then while
/// inflating, before calamine reads anything).
pub const MAX_XLSX_ENTRY_BYTES: u64 = 256 << 20;
/// Most bytes all entries of one XLSX file may inflate to together.
pub const MAX_XLSX_TOTAL_BYTES: u64 = 512 << 20;
/// Highest inflated/compressed ratio of an XLSX entry larger than [`XLSX_RATIO_FLOOR_BYTES`]
/// (spreadsheet XML compresses 5-30x; deflate bombs reach 1000x).
pub const MAX_XLSX_RATIO: u64 = 100;
/// Entries up to this size are not checked for their ratio.
pub const XLSX_RATIO_FLOOR_BYTES: u64 = 1 << 20;
/// Most zip entries in one XLSX file.
pub const MAX_XLSX_ENTRIES: usize = 10_000;
/// Widest sheet read: a declared dimension or a cell beyond this column refuses the file.
pub const MAX_XLSX_COLUMNS: u32 = 1024;
/// Most non-empty cells read from the sheet.
pub const MAX_XLSX_CELLS: usize = MAX_IMPORT_ROWS * 16;
/// Most bytes of text all the sheet's cells may hold together. A cell that names a shared
/// string gets its own copy of it, so a small file whose cells all name one long string would
/// otherwise make far more text than the file holds.
pub const MAX_XLSX_TEXT_BYTES: usize = 128 << 20;

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
    /// Rows that were skipped, in file order: the first [`MAX_ROW_ERRORS`].
    pub errors: Vec<RowError>,
    /// Rows skipped beyond those in `errors`.
    pub errors_dropped: usize,
}

impl ParsedImport {
    fn reject(&mut self, line: usize, message: String) {
        if self.errors.len() >= MAX_ROW_ERRORS {
            self.errors_dropped += 1;
            return;
        }
        let message = match message.char_indices().nth(MAX_ERROR_CHARS) {
            Some((cut, _)) => format!("{}…", &message[..cut]),
            None => message,
        };
        self.errors.push(RowError { line, message });
    }
}

/// A cell's value quoted for an error message, cut to its first 64 characters.
pub(crate) fn quoted(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
        None => format!("{text:?}"),
    }
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
                    let message =
                        format!("duplicate id {}, first on line {first}", quoted(&record.id));
                    parsed.reject(line, message);
                } else {
                    seen.insert(record.id.clone(), line);
                    parsed.records.push(ImportedRecord { line, record });
                }
            }
            Err(message) => parsed.reject(line, message),
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
    alternates: Option<BoundedStrings>,
    #[serde(default)]
    tags: Option<BoundedStrings>,
    #[serde(default)]
    locale: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    updated_at_ms: Option<i64>,
}

/// A JSON list of strings of which the first [`LIST_ITEMS_KEPT`] are kept; the rest are read
/// and dropped without being made into strings.
struct BoundedStrings(Vec<String>);

impl<'de> Deserialize<'de> for BoundedStrings {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Items;
        impl<'de> serde::de::Visitor<'de> for Items {
            type Value = BoundedStrings;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of strings")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<BoundedStrings, A::Error> {
                let mut kept = Vec::new();
                while kept.len() < LIST_ITEMS_KEPT {
                    match seq.next_element::<String>()? {
                        Some(item) => kept.push(item),
                        None => return Ok(BoundedStrings(kept)),
                    }
                }
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(BoundedStrings(kept))
            }
        }
        deserializer.deserialize_seq(Items)
    }
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
        // Straight into the record's fields (never a `serde_json::Value` of the whole line,
        // which costs 16 times a line of small numbers): unknown fields are skipped unread.
        let row = if !line_text.starts_with('{') {
            match serde_json::from_str::<serde::de::IgnoredAny>(line_text) {
                Err(e) => Err(format!("invalid json: {e}")),
                Ok(_) => Err("line is not a json object".to_string()),
            }
        } else {
            match serde_json::from_str::<JsonRow>(line_text) {
                Err(e) if e.classify() == serde_json::error::Category::Data => {
                    any_object = true;
                    Err(format!("invalid record: {e}"))
                }
                Err(e) => Err(format!("invalid json: {e}")),
                Ok(r) => {
                    any_object = true;
                    Ok(FaqRecord {
                        id: r.id.unwrap_or_default(),
                        question: r.question.unwrap_or_default(),
                        answer: r.answer.unwrap_or_default(),
                        alternates: r.alternates.map(|list| list.0).unwrap_or_default(),
                        tags: r.tags.map(|list| list.0).unwrap_or_default(),
                        locale: r.locale.unwrap_or_default(),
                        enabled: r.enabled.unwrap_or(true),
                        updated_at_ms: r.updated_at_ms.unwrap_or(0),
                    })
                }
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
            other => {
                return Err(format!(
                    "enabled must be true or false, not {}",
                    quoted(other)
                ))
            }
        };
        let updated_at_ms = match get("updated_at_ms") {
            "" => 0,
            text => text
                .parse::<i64>()
                .map_err(|_| format!("updated_at_ms must be an integer, not {}", quoted(text)))?,
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

fn cell_text(cell: calamine::DataRef<'_>) -> String {
    use calamine::DataRef;
    match cell {
        DataRef::Empty => String::new(),
        DataRef::String(s) => s,
        DataRef::SharedString(s) => s.to_owned(),
        DataRef::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        other => calamine::Data::from(other).to_string(),
    }
}

/// Checks the zip container before calamine sees it: entry count, every entry's declared size,
/// its compression ratio, and then its real inflated size (inflating into nothing, bounded), so a
/// deflate bomb or a lying central directory is refused without allocating.
fn check_xlsx_zip(bytes: &[u8]) -> Result<(), ImportError> {
    let too_large = |what: String| Err(ImportError::XlsxTooLarge(what));
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| ImportError::NotXlsx(e.to_string().to_lowercase()))?;
    if archive.len() > MAX_XLSX_ENTRIES {
        return too_large(format!(
            "{} zip entries, more than {MAX_XLSX_ENTRIES}",
            archive.len()
        ));
    }
    let mut total: u64 = 0;
    for at in 0..archive.len() {
        let (name, declared, compressed) = {
            let entry = archive
                .by_index_raw(at)
                .map_err(|e| ImportError::NotXlsx(e.to_string().to_lowercase()))?;
            (
                entry.name().to_string(),
                entry.size(),
                entry.compressed_size(),
            )
        };
        check_entry_size(&name, declared, compressed, total)?;
        let mut entry = archive
            .by_index(at)
            .map_err(|e| ImportError::NotXlsx(e.to_string().to_lowercase()))?;
        let limit = MAX_XLSX_ENTRY_BYTES.min(MAX_XLSX_TOTAL_BYTES - total);
        let inflated = std::io::copy(
            &mut std::io::Read::take(&mut entry, limit + 1),
            &mut std::io::sink(),
        )
        .map_err(|e| ImportError::NotXlsx(format!("{name}: {}", e.to_string().to_lowercase())))?;
        check_entry_size(&name, inflated, compressed, total)?;
        total += inflated;
    }
    Ok(())
}

fn check_entry_size(name: &str, size: u64, compressed: u64, total: u64) -> Result<(), ImportError> {
    if size > MAX_XLSX_ENTRY_BYTES {
        return Err(ImportError::XlsxTooLarge(format!(
            "{name} inflates to more than {MAX_XLSX_ENTRY_BYTES} bytes"
        )));
    }
    if total.saturating_add(size) > MAX_XLSX_TOTAL_BYTES {
        return Err(ImportError::XlsxTooLarge(format!(
            "the workbook inflates to more than {MAX_XLSX_TOTAL_BYTES} bytes"
        )));
    }
    if size > XLSX_RATIO_FLOOR_BYTES && size / compressed.max(1) > MAX_XLSX_RATIO {
        return Err(ImportError::XlsxTooLarge(format!(
            "{name} inflates more than {MAX_XLSX_RATIO} times (a zip bomb?)"
        )));
    }
    Ok(())
}

/// Reads the first sheet cell by cell (never calamine's dense grid, whose size follows the
/// furthest cell): cells beyond [`MAX_XLSX_COLUMNS`] or more than [`MAX_XLSX_CELLS`] non-empty
/// cells refuse the file. The header is the first non-empty row; columns count from the leftmost
/// non-empty cell, rows are numbered as in the sheet.
fn parse_xlsx(bytes: &[u8]) -> Result<Rows, ImportError> {
    use calamine::Reader;
    check_xlsx_zip(bytes)?;
    let not_xlsx = |e: calamine::XlsxError| ImportError::NotXlsx(e.to_string().to_lowercase());
    let mut workbook: calamine::Xlsx<_> =
        calamine::Xlsx::new(Cursor::new(bytes)).map_err(not_xlsx)?;
    let Some(name) = workbook.sheet_names().first().cloned() else {
        return Err(ImportError::NoSheet);
    };
    let mut reader = workbook.worksheet_cells_reader(&name).map_err(not_xlsx)?;
    let dimensions = reader.dimensions();
    let declared_width = u64::from(dimensions.end.1.saturating_sub(dimensions.start.1)) + 1;
    if dimensions.end.1 >= MAX_XLSX_COLUMNS || declared_width > u64::from(MAX_XLSX_COLUMNS) {
        return Err(ImportError::XlsxTooLarge(format!(
            "the sheet is declared {declared_width} columns wide, more than {MAX_XLSX_COLUMNS}"
        )));
    }
    let mut cells: Vec<(u32, u32, String)> = Vec::new();
    let mut text_bytes = 0usize;
    // calamine indexes the shared-string table with a cell's number unchecked and panics on one
    // past its end: such a workbook is malformed, and the caller is told so.
    let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        while let Some(cell) = reader.next_cell().map_err(not_xlsx)? {
            let (row, col) = cell.get_position();
            if col >= MAX_XLSX_COLUMNS {
                return Err(ImportError::XlsxTooLarge(format!(
                    "a cell is in column {}, beyond the {MAX_XLSX_COLUMNS} read",
                    u64::from(col) + 1
                )));
            }
            let value = cell.get_value();
            // Counted before a shared string is copied out of the table.
            text_bytes += match value {
                calamine::DataRef::SharedString(s) => s.len(),
                calamine::DataRef::String(s) => s.len(),
                _ => 0,
            };
            if text_bytes > MAX_XLSX_TEXT_BYTES {
                return Err(ImportError::XlsxTooLarge(format!(
                    "its cells hold more than {MAX_XLSX_TEXT_BYTES} bytes of text"
                )));
            }
            let text = cell_text(value.clone());
            if text.is_empty() {
                continue;
            }
            if cells.len() >= MAX_XLSX_CELLS {
                return Err(ImportError::XlsxTooLarge(format!(
                    "more than {MAX_XLSX_CELLS} non-empty cells"
                )));
            }
            cells.push((row, col, text));
        }
        Ok(())
    }));
    match read {
        Ok(result) => result?,
        Err(_) => {
            return Err(ImportError::NotXlsx(
                "a cell could not be read (a malformed workbook)".into(),
            ))
        }
    }
    drop(reader);
    cells.sort_by_key(|&(row, col, _)| (row, col));
    let Some(first_col) = cells.iter().map(|&(_, col, _)| col).min() else {
        return Err(ImportError::MissingColumn("question"));
    };
    let mut sheet_rows: Vec<(u32, Vec<String>)> = Vec::new();
    for (row, col, text) in cells {
        if sheet_rows.last().is_none_or(|(last, _)| *last != row) {
            sheet_rows.push((row, Vec::new()));
        }
        let Some((_, cells)) = sheet_rows.last_mut() else {
            continue;
        };
        let at = (col - first_col) as usize;
        if cells.len() <= at {
            cells.resize(at + 1, String::new());
        }
        cells[at] = text;
    }
    let mut sheet_rows = sheet_rows.into_iter();
    let Some((_, header)) = sheet_rows.next() else {
        return Err(ImportError::MissingColumn("question"));
    };
    let columns = Columns::from_header(&header)?;
    let mut rows = Vec::new();
    for (row, cells) in sheet_rows {
        if cells.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        check_row_count(rows.len() + 1)?;
        rows.push((row as usize + 1, columns.record(&cells)));
    }
    Ok(rows)
}

/// Splits a `|`-joined list, honouring `\|` and `\\`.
/// Keeps the first [`LIST_ITEMS_KEPT`] non-empty items.
pub fn split_list(text: &str) -> Vec<String> {
    let mut items = Vec::new();
    let keep = |item: &str, items: &mut Vec<String>| {
        let item = item.trim();
        if !item.is_empty() && items.len() < LIST_ITEMS_KEPT {
            items.push(item.to_string());
        }
    };
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
            '|' => {
                keep(&current, &mut items);
                current.clear();
            }
            _ => current.push(c),
        }
    }
    keep(&current, &mut items);
    items
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
