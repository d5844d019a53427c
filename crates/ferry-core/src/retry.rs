//! Retry policy ("activate retrying of failed tasks"): what happens after a failed attempt.

use crate::Timestamp;
use std::time::Duration;

pub const MAX_ATTEMPTS_LIMIT: u32 = 10;
pub const MAX_INTERVAL: Duration = Duration::from_secs(6 * 3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backoff {
    #[default]
    Fixed,
    /// interval × 2^(attempt − 1), capped at six hours.
    Exponential,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    pub enabled: bool,
    /// Every processing attempt counts, the first included: 3 = one try and two retries.
    pub max_attempts: u32,
    pub interval: Duration,
    pub backoff: Backoff,
    /// Publisher HTTP status codes that qualify for a retry.
    pub on_http_status: Vec<u16>,
    /// Substrings (case-insensitive) of error messages that qualify for a retry.
    pub on_message: Vec<String>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            enabled: false,
            max_attempts: 3,
            interval: Duration::from_secs(600),
            backoff: Backoff::Fixed,
            on_http_status: Vec::new(),
            on_message: Vec::new(),
        }
    }
}

/// What went wrong in one attempt.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Failure {
    pub message: String,
    pub http_status: Option<u16>,
    /// The target said no for good (an answer in the publisher's `fail_on`): no retry,
    /// whatever the route's policy.
    pub permanent: bool,
    /// The target asked to be left alone this long (`Retry-After`): a retry waits at
    /// least that.
    pub retry_after: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    Retry { at: Timestamp },
    Fail,
}

impl RetryPolicy {
    /// Whether this error qualifies: no rules means every error does.
    pub fn qualifies(&self, failure: &Failure) -> bool {
        if failure.permanent {
            return false;
        }
        if self.on_http_status.is_empty() && self.on_message.is_empty() {
            return true;
        }
        let by_status = failure
            .http_status
            .is_some_and(|s| self.on_http_status.contains(&s));
        let lower = failure.message.to_lowercase();
        let by_message = self
            .on_message
            .iter()
            .any(|p| lower.contains(&p.to_lowercase()));
        by_status || by_message
    }

    /// The delay before the attempt that follows attempt number `attempt` (1-based).
    pub fn delay_after(&self, attempt: u32) -> Duration {
        match self.backoff {
            Backoff::Fixed => self.interval,
            Backoff::Exponential => {
                let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
                self.interval.saturating_mul(factor).min(MAX_INTERVAL)
            }
        }
    }

    /// Decides after attempt number `attempt` (1-based, this one included) failed.
    pub fn after_failure(&self, attempt: u32, failure: &Failure, now: Timestamp) -> AfterFailure {
        if self.enabled && attempt < self.max_attempts && self.qualifies(failure) {
            let wait = self
                .delay_after(attempt)
                .max(failure.retry_after.unwrap_or_default());
            let delay = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
            AfterFailure::Retry {
                at: now.plus_millis(delay),
            }
        } else {
            AfterFailure::Fail
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(message: &str, status: Option<u16>) -> Failure {
        Failure {
            message: message.into(),
            http_status: status,
            ..Failure::default()
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            enabled: true,
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn a_disabled_policy_fails_at_once() {
        let p = RetryPolicy::default();
        let now = Timestamp::from_millis(0);
        assert_eq!(
            p.after_failure(1, &failure("x", None), now),
            AfterFailure::Fail
        );
    }

    #[test]
    fn max_attempts_counts_the_first_try() {
        let p = policy();
        let now = Timestamp::from_millis(0);
        let f = failure("boom", None);
        assert!(matches!(
            p.after_failure(1, &f, now),
            AfterFailure::Retry { .. }
        ));
        assert!(matches!(
            p.after_failure(2, &f, now),
            AfterFailure::Retry { .. }
        ));
        assert_eq!(p.after_failure(3, &f, now), AfterFailure::Fail);
    }

    #[test]
    fn the_next_attempt_is_one_interval_later() {
        let p = policy();
        let at = p.after_failure(1, &failure("x", None), Timestamp::from_millis(1_000));
        assert_eq!(
            at,
            AfterFailure::Retry {
                at: Timestamp::from_millis(601_000)
            }
        );
    }

    #[test]
    fn exponential_backoff_doubles_and_stops_at_six_hours() {
        let p = RetryPolicy {
            backoff: Backoff::Exponential,
            ..policy()
        };
        assert_eq!(p.delay_after(1), Duration::from_secs(600));
        assert_eq!(p.delay_after(2), Duration::from_secs(1200));
        assert_eq!(p.delay_after(3), Duration::from_secs(2400));
        assert_eq!(p.delay_after(9), MAX_INTERVAL);
    }

    #[test]
    fn with_rules_only_matching_errors_qualify() {
        let p = RetryPolicy {
            on_http_status: vec![429, 503],
            on_message: vec!["Timeout".into()],
            ..policy()
        };
        assert!(p.qualifies(&failure("server said 503", Some(503))));
        assert!(p.qualifies(&failure("connect timeout after 5s", None)));
        assert!(!p.qualifies(&failure("bad request", Some(400))));
    }

    #[test]
    fn a_permanent_failure_is_never_retried_whatever_the_policy() {
        let every = RetryPolicy {
            enabled: true,
            ..RetryPolicy::default()
        };
        let mut f = failure("422 Unprocessable Entity", Some(422));
        assert!(every.qualifies(&f));
        f.permanent = true;
        assert!(!every.qualifies(&f));
    }

    #[test]
    fn a_retry_waits_at_least_as_long_as_the_target_asked() {
        let policy = RetryPolicy {
            enabled: true,
            max_attempts: 3,
            interval: Duration::from_secs(10),
            ..RetryPolicy::default()
        };
        let now = Timestamp::from_millis(0);
        let mut f = failure("429 Too Many Requests", Some(429));
        f.retry_after = Some(Duration::from_secs(120));
        assert_eq!(
            policy.after_failure(1, &f, now),
            AfterFailure::Retry {
                at: now.plus_millis(120_000)
            }
        );
        f.retry_after = Some(Duration::from_secs(1));
        assert_eq!(
            policy.after_failure(1, &f, now),
            AfterFailure::Retry {
                at: now.plus_millis(10_000)
            }
        );
    }
}
