//! A tenant's business hours: opening times per weekday and holidays, in the tenant's time zone
//! (`utc_offset_minutes`), and what a customer who asks for a person out of hours is told. The
//! built-in routing applies them; a tenant's WASM routing policy decides for itself (it gets the
//! time and the offset).

use serde::{Deserialize, Serialize};

/// What happens to a handoff out of hours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutOfHours {
    /// The chat queues as usual (the first agent online takes it) and the customer is told when
    /// to expect an answer.
    #[default]
    Queue,
    /// The chat stays with the bot and the customer gets the message.
    Reject,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

/// Open from `open` to `close` (`HH:MM`, local; `close` may be `24:00`) on each of `days`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpeningSpan {
    pub days: Vec<Weekday>,
    pub open: String,
    pub close: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusinessHours {
    /// Off (the default): always open.
    pub enabled: bool,
    pub weekly: Vec<OpeningSpan>,
    /// Closed all day, local dates `YYYY-MM-DD`.
    pub holidays: Vec<String>,
    /// Told to a customer who asks for a person out of hours.
    pub message: String,
    pub out_of_hours: OutOfHours,
}

impl Default for BusinessHours {
    fn default() -> Self {
        BusinessHours {
            enabled: false,
            weekly: vec![OpeningSpan {
                days: vec![
                    Weekday::Mon,
                    Weekday::Tue,
                    Weekday::Wed,
                    Weekday::Thu,
                    Weekday::Fri,
                ],
                open: "09:00".into(),
                close: "18:00".into(),
            }],
            holidays: Vec::new(),
            message: "Our agents are away now; we will answer as soon as we open. \
                      人工客服现在不在工作时间，我们会在上班后尽快回复您。"
                .into(),
            out_of_hours: OutOfHours::Queue,
        }
    }
}

const MAX_SPANS: usize = 28;
const MAX_HOLIDAYS: usize = 400;
const MAX_MESSAGE_CHARS: usize = 1_000;

/// Minutes since midnight of `HH:MM` (`24:00` allowed).
fn minute_of(text: &str) -> Option<i64> {
    let (hours, minutes) = text.split_once(':')?;
    if hours.len() != 2 || minutes.len() != 2 {
        return None;
    }
    let (hours, minutes): (i64, i64) = (hours.parse().ok()?, minutes.parse().ok()?);
    let total = hours * 60 + minutes;
    (minutes < 60 && total <= 24 * 60).then_some(total)
}

/// The civil date (year, month, day) of a day count since 1970-01-01.
fn civil_date(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn valid_date(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    matches!(parts.as_slice(), [y, m, d] if y.len() == 4 && m.len() == 2 && d.len() == 2
        && y.parse::<u32>().is_ok()
        && m.parse::<u32>().is_ok_and(|m| (1..=12).contains(&m))
        && d.parse::<u32>().is_ok_and(|d| (1..=31).contains(&d)))
}

impl BusinessHours {
    pub fn validate(&self) -> Result<(), String> {
        if self.weekly.len() > MAX_SPANS {
            return Err(format!(
                "business_hours.weekly has at most {MAX_SPANS} spans"
            ));
        }
        for span in &self.weekly {
            let (Some(open), Some(close)) = (minute_of(&span.open), minute_of(&span.close)) else {
                return Err(
                    "business_hours.weekly: open and close are HH:MM (00:00 to 24:00)".into(),
                );
            };
            if open >= close {
                return Err(format!(
                    "business_hours.weekly: {} is not before {}",
                    span.open, span.close
                ));
            }
        }
        if self.holidays.len() > MAX_HOLIDAYS {
            return Err(format!(
                "business_hours.holidays has at most {MAX_HOLIDAYS} dates"
            ));
        }
        if let Some(bad) = self.holidays.iter().find(|date| !valid_date(date)) {
            return Err(format!("business_hours.holidays: {bad} is not YYYY-MM-DD"));
        }
        if self.message.trim().is_empty() || self.message.chars().count() > MAX_MESSAGE_CHARS {
            return Err(format!(
                "business_hours.message is 1 to {MAX_MESSAGE_CHARS} characters"
            ));
        }
        Ok(())
    }

    /// Whether the tenant is open at `now_ms` (Unix milliseconds) in its time zone; always
    /// when business hours are off.
    pub fn is_open(&self, now_ms: i64, utc_offset_minutes: i32) -> bool {
        if !self.enabled {
            return true;
        }
        let local = now_ms.div_euclid(60_000) + i64::from(utc_offset_minutes);
        let day = local.div_euclid(24 * 60);
        let minute = local.rem_euclid(24 * 60);
        let (year, month, date) = civil_date(day);
        let today = format!("{year:04}-{month:02}-{date:02}");
        if self.holidays.iter().any(|holiday| *holiday == today) {
            return false;
        }
        // 1970-01-01 was a Thursday.
        let weekday = [
            Weekday::Thu,
            Weekday::Fri,
            Weekday::Sat,
            Weekday::Sun,
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
        ][day.rem_euclid(7) as usize];
        self.weekly.iter().any(|span| {
            span.days.contains(&weekday)
                && match (minute_of(&span.open), minute_of(&span.close)) {
                    (Some(open), Some(close)) => (open..close).contains(&minute),
                    _ => false,
                }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-07 was a Monday; the Unix ms of a UTC time that day.
    fn monday_utc(hour: i64, minute: i64) -> i64 {
        let days = 20_794; // 2026-12-07
        (days * 24 * 60 + hour * 60 + minute) * 60_000
    }

    #[test]
    fn dates_and_weekdays_are_the_calendars() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(20_794), (2026, 12, 7));
        assert_eq!(civil_date(11_016), (2000, 2, 29));
        assert_eq!(civil_date(-1), (1969, 12, 31));
    }

    #[test]
    fn open_within_the_spans_in_the_tenants_time_zone_and_closed_on_holidays() {
        let hours = BusinessHours {
            enabled: true,
            ..BusinessHours::default()
        };
        assert!(hours.validate().is_ok());
        // Beijing (UTC+8): 01:00 UTC is 09:00 local, open; 10:00 UTC is 18:00 local, closed.
        assert!(!hours.is_open(monday_utc(0, 59), 480));
        assert!(hours.is_open(monday_utc(1, 0), 480));
        assert!(hours.is_open(monday_utc(9, 59), 480));
        assert!(!hours.is_open(monday_utc(10, 0), 480));
        // Sunday 23:00 UTC is Monday 07:00 local: not yet.
        assert!(!hours.is_open(monday_utc(-1, 0), 480));
        // Saturday.
        assert!(!hours.is_open(monday_utc(-36, 0), 480));
        let holiday = BusinessHours {
            holidays: vec!["2026-12-07".into()],
            ..hours.clone()
        };
        assert!(!holiday.is_open(monday_utc(3, 0), 480));
        // Off: always open.
        assert!(BusinessHours::default().is_open(monday_utc(-36, 0), 480));
        let all_day = BusinessHours {
            weekly: vec![OpeningSpan {
                days: vec![Weekday::Sat],
                open: "00:00".into(),
                close: "24:00".into(),
            }],
            ..hours
        };
        assert!(all_day.is_open(monday_utc(-48 + 23, 59), 0));
    }

    #[test]
    fn bad_hours_are_refused() {
        let with = |open: &str, close: &str| BusinessHours {
            enabled: true,
            weekly: vec![OpeningSpan {
                days: vec![Weekday::Mon],
                open: open.into(),
                close: close.into(),
            }],
            ..BusinessHours::default()
        };
        assert!(with("9:00", "18:00").validate().is_err());
        assert!(with("18:00", "09:00").validate().is_err());
        assert!(with("09:00", "24:01").validate().is_err());
        assert!(with("09:60", "10:00").validate().is_err());
        let bad_date = BusinessHours {
            holidays: vec!["2026-13-01".into()],
            ..BusinessHours::default()
        };
        assert!(bad_date.validate().is_err());
    }
}
