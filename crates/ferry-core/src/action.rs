//! Operator actions and which statuses allow them (PRODUCT.md, "Operator actions").

use crate::Status;
use std::fmt;

/// What an operator can do to a task. Tasks are never deleted: skipping is how a task
/// is taken out of circulation by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `new` or `retry` → `skipped`: no route run will process it.
    Skip,
    /// `finished`, `failed` or `skipped` → `new`, attempts reset.
    Retry,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Skip => "skip",
            Action::Retry => "retry",
        }
    }

    /// The statuses from which this action is allowed.
    pub fn allowed_from(self) -> &'static [Status] {
        match self {
            Action::Skip => &[Status::New, Status::Retry],
            Action::Retry => &[Status::Finished, Status::Failed, Status::Skipped],
        }
    }

    /// The status a task has after the action.
    pub fn target(self) -> Status {
        match self {
            Action::Skip => Status::Skipped,
            Action::Retry => Status::New,
        }
    }

    pub fn is_allowed_from(self, status: Status) -> bool {
        self.allowed_from().contains(&status)
    }

    /// The transition for a task in `status`, or the reason it is refused.
    pub fn apply(self, status: Status) -> Result<Status, NotEligible> {
        if self.is_allowed_from(status) {
            Ok(self.target())
        } else {
            Err(NotEligible {
                action: self,
                status,
            })
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a task cannot take an action; the message names the allowed statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotEligible {
    pub action: Action,
    pub status: Status,
}

impl fmt::Display for NotEligible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let allowed: Vec<&str> = self
            .action
            .allowed_from()
            .iter()
            .map(|s| s.as_str())
            .collect();
        let verb = match self.action {
            Action::Skip => "skipped",
            Action::Retry => "retried",
        };
        write!(
            f,
            "the task is {}; only {} tasks can be {verb}",
            self.status,
            join_or(&allowed)
        )
    }
}

fn join_or(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_is_allowed_from_new_and_retry_only() {
        for s in Status::ALL {
            let expected = matches!(s, Status::New | Status::Retry);
            assert_eq!(Action::Skip.apply(s).is_ok(), expected, "{s}");
        }
        assert_eq!(Action::Skip.apply(Status::New), Ok(Status::Skipped));
    }

    #[test]
    fn retry_is_allowed_from_finished_failed_and_skipped_only() {
        for s in Status::ALL {
            let expected = matches!(s, Status::Finished | Status::Failed | Status::Skipped);
            assert_eq!(Action::Retry.apply(s).is_ok(), expected, "{s}");
        }
        assert_eq!(Action::Retry.apply(Status::Failed), Ok(Status::New));
    }

    #[test]
    fn a_processing_task_can_be_neither_skipped_nor_retried() {
        assert!(Action::Skip.apply(Status::Processing).is_err());
        assert!(Action::Retry.apply(Status::Processing).is_err());
    }

    #[test]
    fn the_refusal_says_what_the_status_is_and_what_is_allowed() {
        let err = Action::Skip.apply(Status::Finished).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the task is finished; only new or retry tasks can be skipped"
        );
        let err = Action::Retry.apply(Status::New).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the task is new; only finished, failed or skipped tasks can be retried"
        );
    }
}
