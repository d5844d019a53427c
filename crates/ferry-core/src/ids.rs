//! Identifiers, parsed once at the edge so the inside never re-checks them.

use crate::Timestamp;
use std::fmt;
use std::sync::Mutex;
use ulid::Ulid;

/// A task identifier: a ULID, unique across the installation and sortable by time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(String);

impl TaskId {
    /// A fresh identifier whose time part is `at`. Identifiers made by one process are
    /// strictly increasing, so tasks created in the same millisecond keep their order.
    pub fn generate(at: Timestamp) -> TaskId {
        static LAST: Mutex<Option<Ulid>> = Mutex::new(None);
        let ms = u64::try_from(at.millis()).unwrap_or(0);
        let mut candidate = Ulid::from_parts(ms, Ulid::generate().random());
        let mut last = LAST.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(prev) = *last
            && candidate <= prev
        {
            candidate = prev.increment().unwrap_or(candidate);
        }
        *last = Some(candidate);
        TaskId(candidate.to_string())
    }

    /// Accepts a 26-character ULID in Crockford base 32 (any case; stored upper case).
    pub fn parse(value: &str) -> Result<TaskId, BadTaskId> {
        Ulid::from_string(value)
            .map(|u| TaskId(u.to_string()))
            .map_err(|_| BadTaskId(value.chars().take(64).collect()))
    }

    /// Wraps a value read back from the store, which only holds parsed identifiers.
    pub fn from_stored(value: String) -> TaskId {
        TaskId(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{0}' is not a task identifier; task identifiers are 26-character ULIDs like 01JDQ8M5V3W3K1C7Y2P6Z0A9BX"
)]
pub struct BadTaskId(pub String);

/// The identifier of a configuration (entity schema, incoming, outgoing) or a route:
/// `^[a-z0-9-]+$`, 1–255 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConfigId(String);

impl ConfigId {
    pub fn parse(value: &str) -> Result<ConfigId, BadConfigId> {
        let ok = !value.is_empty()
            && value.len() <= 255
            && value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(ConfigId(value.to_owned()))
        } else {
            Err(BadConfigId(value.chars().take(64).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConfigId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{0}' is not a valid identifier; use 1 to 255 lower-case letters, digits and '-' (like shop-to-erp)"
)]
pub struct BadConfigId(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_task_ids_sort_by_time() {
        let a = TaskId::generate(Timestamp::from_millis(1_000));
        let b = TaskId::generate(Timestamp::from_millis(2_000));
        assert!(a < b);
        assert_eq!(TaskId::parse(a.as_str()), Ok(a));
    }

    #[test]
    fn task_ids_made_in_the_same_millisecond_keep_their_order() {
        let at = Timestamp::from_millis(5_000);
        let ids: Vec<TaskId> = (0..100).map(|_| TaskId::generate(at)).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn task_ids_are_normalised_to_upper_case() {
        let id = TaskId::generate(Timestamp::now());
        let lower = id.as_str().to_lowercase();
        assert_eq!(TaskId::parse(&lower), Ok(id));
    }

    #[test]
    fn a_task_id_that_is_not_a_ulid_is_refused() {
        assert!(TaskId::parse("42").is_err());
        assert!(TaskId::parse("").is_err());
    }

    #[test]
    fn config_ids_allow_lower_case_digits_and_dashes_only() {
        assert!(ConfigId::parse("shop-to-erp-2").is_ok());
        assert!(ConfigId::parse("Shop").is_err());
        assert!(ConfigId::parse("a_b").is_err());
        assert!(ConfigId::parse("").is_err());
        assert!(ConfigId::parse(&"a".repeat(255)).is_ok());
        assert!(ConfigId::parse(&"a".repeat(256)).is_err());
    }
}
