//! Cron schedules: five fields (minute hour day-of-month month day-of-week), or six with
//! seconds first. Times are UTC.

use crate::Timestamp;
use chrono::{DateTime, Utc};
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSchedule {
    expression: String,
    cron: croner::Cron,
}

impl CronSchedule {
    pub fn parse(expression: &str) -> Result<CronSchedule, String> {
        croner::Cron::from_str(expression)
            .map(|cron| CronSchedule {
                expression: expression.trim().to_owned(),
                cron,
            })
            .map_err(|e| {
                format!(
                    "'{expression}' is not a cron expression ({e}); write minute hour day-of-month month day-of-week, like \"*/5 * * * *\""
                )
            })
    }

    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The first time strictly after `after` that the schedule fires.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let start = DateTime::<Utc>::from_timestamp_millis(after.millis())?;
        self.cron
            .find_next_occurrence(&start, false)
            .ok()
            .map(|t| Timestamp::from_millis(t.timestamp_millis()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn every_five_minutes_fires_on_the_next_multiple_of_five() {
        let c = CronSchedule::parse("*/5 * * * *").unwrap();
        assert_eq!(
            c.next_after(at("2026-11-28T10:03:10Z")),
            Some(at("2026-11-28T10:05:00Z"))
        );
        assert_eq!(
            c.next_after(at("2026-11-28T10:05:00Z")),
            Some(at("2026-11-28T10:10:00Z"))
        );
    }

    #[test]
    fn a_six_field_expression_has_seconds() {
        let c = CronSchedule::parse("*/10 * * * * *").unwrap();
        assert_eq!(
            c.next_after(at("2026-11-28T10:00:01Z")),
            Some(at("2026-11-28T10:00:10Z"))
        );
    }

    #[test]
    fn nonsense_is_refused_with_an_example() {
        let err = CronSchedule::parse("every minute").unwrap_err();
        assert!(err.contains("*/5 * * * *"), "{err}");
        assert!(CronSchedule::parse("61 * * * *").is_err());
    }
}
