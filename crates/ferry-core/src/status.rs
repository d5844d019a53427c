//! Task statuses.

use std::fmt;
use std::str::FromStr;

/// Where a task is in its lifecycle (PRODUCT.md, "Task lifecycle").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    New,
    Processing,
    Finished,
    Failed,
    Skipped,
    Retry,
}

impl Status {
    /// Every status, in the order the product lists them.
    pub const ALL: [Status; 6] = [
        Status::New,
        Status::Processing,
        Status::Finished,
        Status::Failed,
        Status::Skipped,
        Status::Retry,
    ];

    /// The wire and storage name of the status.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Processing => "processing",
            Status::Finished => "finished",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
            Status::Retry => "retry",
        }
    }

    /// Parses a wire name; the error says which names exist.
    pub fn parse(value: &str) -> Result<Status, UnknownStatus> {
        Status::ALL
            .into_iter()
            .find(|s| s.as_str() == value)
            .ok_or_else(|| UnknownStatus(value.to_owned()))
    }

    /// Final statuses are the ones retention may prune.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Finished | Status::Failed | Status::Skipped)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::parse(s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown status '{0}'; expected one of new, processing, finished, failed, skipped, retry")]
pub struct UnknownStatus(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_round_trips_through_its_name() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Ok(s));
        }
    }

    #[test]
    fn an_unknown_status_names_the_valid_ones() {
        let err = Status::parse("done").unwrap_err();
        assert!(err.to_string().contains("'done'"));
        assert!(err.to_string().contains("finished"));
    }

    #[test]
    fn only_finished_failed_and_skipped_are_final() {
        let finals: Vec<_> = Status::ALL.into_iter().filter(|s| s.is_final()).collect();
        assert_eq!(finals, [Status::Finished, Status::Failed, Status::Skipped]);
    }
}
