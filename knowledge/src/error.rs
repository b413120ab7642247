//! Error types: one per concern, all `thiserror`, lowercase messages without a trailing period.

/// A record that fails validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("id is empty")]
    EmptyId,
    #[error("id is longer than {0} characters")]
    IdTooLong(usize),
    #[error("id {0:?} has characters outside A-Z a-z 0-9 _ - . :")]
    BadIdCharset(String),
    #[error("question is empty")]
    EmptyQuestion,
    #[error("answer is empty")]
    EmptyAnswer,
    #[error("{field} is longer than {max} characters")]
    TooLong { field: &'static str, max: usize },
    #[error("more than {max} {field}")]
    TooMany { field: &'static str, max: usize },
    /// The locale, quoted (and cut to its first 64 characters).
    #[error("locale {0} is not a language tag")]
    BadLocale(String),
}

/// A file that cannot be read as the format it claims (or any format): the gateway answers 400.
/// Problems with single rows are not errors of this type but [`crate::RowError`]s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error("file was declared {declared} but is {detected}")]
    Mismatch {
        declared: &'static str,
        detected: &'static str,
    },
    #[error("unknown import format {0:?} (expected jsonl, csv or xlsx)")]
    UnknownFormat(String),
    #[error("the file format could not be recognised (expected json lines, csv or xlsx)")]
    Unrecognised,
    #[error("file is not valid utf-8 text")]
    NotUtf8,
    #[error("file is not json lines: no line is a json object")]
    NotJsonLines,
    #[error("csv header lacks the required column {0:?}")]
    MissingColumn(&'static str),
    #[error("csv file is unreadable: {0}")]
    BadCsv(String),
    #[error("file is not an xlsx workbook: {0}")]
    NotXlsx(String),
    #[error("xlsx workbook is too large to read: {0}")]
    XlsxTooLarge(String),
    #[error("xlsx workbook has no sheet")]
    NoSheet,
    #[error("file has {0} data rows, more than the {1} allowed")]
    TooManyRows(usize, usize),
}

/// Errors of the index and search.
#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    #[error("tenant id {0:?} is invalid (1-64 characters of a-z A-Z 0-9 _ -)")]
    BadTenant(String),
    #[error("invalid record {id:?}: {source}")]
    BadRecord {
        id: String,
        #[source]
        source: RecordError,
    },
    #[error("index i/o failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("index failed: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error("index directory is in use by another writer: {0}")]
    Locked(String),
}
