//! Small shared helpers: clock, ids, RFC 3339 formatting, blocking work.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// How far this process's clock is moved from the system's (0 but in `switchboard
/// demo-traffic`, which replays a simulated period through the real code paths).
static CLOCK_OFFSET_MS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// Milliseconds since the Unix epoch; every stored time uses this unit.
pub fn now_ms() -> i64 {
    let now = OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000_000) as i64
        + CLOCK_OFFSET_MS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Moves this process's stored times by `offset_ms` from the system clock. Only for a process
/// that simulates traffic (`switchboard demo-traffic`): a server never calls it.
pub fn simulate_clock_offset(offset_ms: i64) {
    CLOCK_OFFSET_MS.store(offset_ms, std::sync::atomic::Ordering::Relaxed);
}

/// RFC 3339 with millisecond precision, as sent in frames.
pub fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// A new time-ordered id with a short kind prefix (`cv_`, `cu_`, `ag_`...).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::now_v7().simple())
}

/// A tenant name is a URL-safe slug: 2-48 of `a-z 0-9 -`, starting with a letter or digit.
pub fn is_valid_slug(name: &str) -> bool {
    let length_ok = (2..=48).contains(&name.len());
    let chars_ok = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    length_ok && chars_ok && !name.starts_with('-') && !name.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert!(is_valid_slug("demo"));
        assert!(is_valid_slug("acme-shop-2"));
        assert!(!is_valid_slug("Acme"));
        assert!(!is_valid_slug("a"));
        assert!(!is_valid_slug("-x"));
        assert!(!is_valid_slug("a/b"));
    }

    #[test]
    fn formats_times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_500), "1970-01-01T00:00:01.5Z");
    }
}
