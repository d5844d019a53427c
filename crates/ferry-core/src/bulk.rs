//! Bulk actions by filter as tracked jobs: their states and the progress figures shown
//! to operators (PRODUCT.md, "Operator actions"). Pure: the store keeps the jobs, the
//! engine runs them.

use crate::Timestamp;
use std::fmt;

/// How often the node working a job renews its sign of life, whatever its batches do.
pub const JOB_HEARTBEAT_MS: i64 = 2_000;

/// A job that has shown no sign of life for this long, while still marked running, is
/// taken as interrupted (its node stopped): five missed heartbeats.
pub const STALE_AFTER_MS: i64 = 5 * JOB_HEARTBEAT_MS;

/// Where a bulk job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Working through its batches.
    Running,
    /// Every eligible task was acted on.
    Done,
    /// Stopped by an operator between two batches; the batches done stay done.
    Cancelled,
    /// Stopped by an error; the batches done stay done.
    Failed,
    /// Marked running but silent for [`STALE_AFTER_MS`]: the node running it stopped.
    /// It can be resumed, by one node only, and finishes what is left.
    Interrupted,
}

impl JobState {
    pub const ALL: [JobState; 5] = [
        JobState::Running,
        JobState::Done,
        JobState::Cancelled,
        JobState::Failed,
        JobState::Interrupted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Cancelled => "cancelled",
            JobState::Failed => "failed",
            JobState::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|v| v.as_str() == s)
    }

    pub fn is_finished(self) -> bool {
        self != JobState::Running
    }

    /// The state to show at `now`, given the stored state and the last sign of life.
    pub fn seen_at(self, last_progress: Timestamp, now: Timestamp) -> JobState {
        if self == JobState::Running && now.millis() - last_progress.millis() > STALE_AFTER_MS {
            JobState::Interrupted
        } else {
            self
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How far a job is: `changed` of the `eligible` tasks it found at its start, and the
/// rate and time left that follow from its elapsed time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// 0.0 to 1.0. Workers may move tasks in and out of the eligible set while the
    /// job runs, so the count acted on can differ from the count at the start; the
    /// fraction is capped, and a finished job is complete whatever the counts.
    pub fraction: f64,
    pub tasks_per_second: Option<f64>,
    pub seconds_left: Option<f64>,
}

impl Progress {
    pub fn of(
        state: JobState,
        eligible: u64,
        changed: u64,
        started: Timestamp,
        until: Timestamp,
    ) -> Progress {
        let fraction = if state == JobState::Done || eligible == 0 {
            1.0
        } else {
            (changed as f64 / eligible as f64).min(1.0)
        };
        let elapsed = (until.millis() - started.millis()) as f64 / 1_000.0;
        let tasks_per_second = (elapsed > 0.0 && changed > 0).then(|| changed as f64 / elapsed);
        let seconds_left = match (state, tasks_per_second) {
            (JobState::Running, Some(rate)) => Some(eligible.saturating_sub(changed) as f64 / rate),
            _ => None,
        };
        Progress {
            fraction,
            tasks_per_second,
            seconds_left,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    #[test]
    fn a_running_job_silent_for_a_few_heartbeats_is_interrupted() {
        assert_eq!(
            JobState::Running.seen_at(at(0), at(STALE_AFTER_MS)),
            JobState::Running
        );
        assert_eq!(
            JobState::Running.seen_at(at(0), at(STALE_AFTER_MS + 1)),
            JobState::Interrupted
        );
        assert_eq!(
            JobState::Done.seen_at(at(0), at(10 * STALE_AFTER_MS)),
            JobState::Done
        );
        // A job heartbeating on time never looks interrupted.
        assert_eq!(
            JobState::Running.seen_at(at(0), at(2 * JOB_HEARTBEAT_MS)),
            JobState::Running
        );
    }

    #[test]
    fn an_interrupted_job_shows_no_time_left() {
        let p = Progress::of(JobState::Interrupted, 1_000, 250, at(0), at(5_000));
        assert_eq!(p.seconds_left, None);
    }

    #[test]
    fn state_names_round_trip() {
        for s in JobState::ALL {
            assert_eq!(JobState::parse(s.as_str()), Some(s));
        }
        assert_eq!(JobState::parse("paused"), None);
    }

    #[test]
    fn progress_gives_rate_and_time_left_while_running() {
        let p = Progress::of(JobState::Running, 1_000, 250, at(0), at(5_000));
        assert_eq!(p.fraction, 0.25);
        assert_eq!(p.tasks_per_second, Some(50.0));
        assert_eq!(p.seconds_left, Some(15.0));
    }

    #[test]
    fn a_done_job_is_complete_even_when_workers_moved_tasks_meanwhile() {
        let p = Progress::of(JobState::Done, 1_000, 990, at(0), at(1_000));
        assert_eq!(p.fraction, 1.0);
        assert_eq!(p.seconds_left, None);
        let more = Progress::of(JobState::Running, 10, 12, at(0), at(1_000));
        assert_eq!(more.fraction, 1.0);
    }

    #[test]
    fn a_job_with_nothing_to_do_is_complete() {
        let p = Progress::of(JobState::Running, 0, 0, at(0), at(0));
        assert_eq!(p.fraction, 1.0);
        assert_eq!(p.tasks_per_second, None);
    }
}
