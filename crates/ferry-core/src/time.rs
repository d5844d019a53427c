//! Timestamps: integer epoch milliseconds inside, RFC 3339 in UTC at the edges.
//!
//! Storing integers keeps SQLite and PostgreSQL in agreement on ordering and ranges.

use chrono::{DateTime, SecondsFormat, Utc};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub fn from_millis(ms: i64) -> Timestamp {
        Timestamp(ms)
    }

    pub fn now() -> Timestamp {
        Timestamp(Utc::now().timestamp_millis())
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    pub fn plus_millis(self, ms: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(ms))
    }

    /// Parses an RFC 3339 time with any offset (`2026-11-28T10:00:00Z`,
    /// `2026-11-28T11:00:00+01:00`), with or without fractional seconds.
    pub fn parse_rfc3339(value: &str) -> Result<Timestamp, BadTime> {
        DateTime::parse_from_rfc3339(value.trim())
            .map(|t| Timestamp(t.timestamp_millis()))
            .map_err(|_| BadTime(value.to_owned()))
    }

    /// RFC 3339 in UTC with millisecond precision: `2026-11-28T10:00:00.000Z`.
    pub fn to_rfc3339(self) -> String {
        match DateTime::<Utc>::from_timestamp_millis(self.0) {
            Some(t) => t.to_rfc3339_opts(SecondsFormat::Millis, true),
            None => self.0.to_string(),
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not an RFC 3339 time; write it like 2026-11-28T10:00:00Z")]
pub struct BadTime(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_with_offsets_are_read_as_utc() {
        let a = Timestamp::parse_rfc3339("2026-11-28T11:00:00+01:00").unwrap();
        let b = Timestamp::parse_rfc3339("2026-11-28T10:00:00Z").unwrap();
        assert_eq!(a, b);
        assert_eq!(b.to_rfc3339(), "2026-11-28T10:00:00.000Z");
    }

    #[test]
    fn a_date_without_time_is_refused_with_an_example() {
        let err = Timestamp::parse_rfc3339("2026-11-28").unwrap_err();
        assert!(err.to_string().contains("2026-11-28T10:00:00Z"));
    }
}
