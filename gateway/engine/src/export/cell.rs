//! One cell of an export's table, as the CSV and XLSX writers take it.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Empty,
    Int(i64),
    Number(f64),
    Text(String),
}

impl Cell {
    pub fn text(value: impl Into<String>) -> Cell {
        Cell::Text(value.into())
    }

    pub fn optional_text(value: Option<&str>) -> Cell {
        value.map_or(Cell::Empty, Cell::text)
    }

    /// A time (ms since the epoch) as RFC 3339 in UTC.
    pub fn time(ms: i64) -> Cell {
        Cell::Text(rfc3339(ms))
    }

    pub fn optional_time(ms: Option<i64>) -> Cell {
        ms.map_or(Cell::Empty, Cell::time)
    }

    pub fn optional_int(value: Option<i64>) -> Cell {
        value.map_or(Cell::Empty, Cell::Int)
    }
}

/// Milliseconds since the epoch as RFC 3339 in UTC (`2026-12-07T03:13:15.123Z`).
pub fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|time| time.format(&Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_in_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_796_613_195_123), "2026-12-07T03:13:15.123Z");
    }
}
