//! Requests at once through a connection: a fixed number, or a level that adapts to the
//! target (`max_in_flight = "auto"`), and the spacing of a rate limit.
//!
//! The adaptive level follows Vector's adaptive request concurrency (AIMD): the answers
//! are judged once per round trip. A round with a `429`/`503`, a timeout or a transport
//! error cuts the level to 90 %; one whose mean round trip rose well above the fastest
//! seen cuts it by √(fastest ÷ mean), kept between 50 and 90 %; a round that
//! used the whole level and stayed fast raises it by one. Until the first cut the level
//! doubles instead (TCP's slow start), so a fast target is reached in a few round trips
//! rather than one request per round trip.

use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// The upper bound of `"auto"` when none is given (Vector's default).
pub const DEFAULT_AUTO_MAX: usize = 200;
/// Where `"auto"` starts: the default of a fixed level, which any API takes.
const AUTO_START: usize = 8;
/// A round whose mean round trip is more than this many times the fastest seen means
/// the target queues requests: the level is cut.
const RISING: f64 = 1.25;
/// The share of the level a cut keeps.
const CUT: f64 = 0.9;
/// The fastest round trip is the fastest of the last 10 to 20 seconds, so a target that
/// became slower for good is not cut forever.
const EPOCH: Duration = Duration::from_secs(10);

/// How an answer bears on the level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// An answer (whatever its status, except the ones below).
    Answered,
    /// `429`, `503`, a timeout or a transport error: the target is overloaded.
    Backpressure,
}

/// Limits requests at once; see the module's text.
pub struct Limiter {
    state: Mutex<State>,
    freed: Notify,
}

struct State {
    limit: usize,
    in_flight: usize,
    aimd: Option<Aimd>,
}

struct Aimd {
    max: usize,
    slow_start: bool,
    /// The fastest mean round trip of a round in this epoch and in the one before.
    fastest: Option<Duration>,
    fastest_before: Option<Duration>,
    epoch_began: Instant,
    /// When the level last changed: answers to requests sent before it measured the
    /// level before, so they are not judged (else a cut is followed by more cuts while
    /// the requests of the old level drain, and a doubling looks fast on answers to
    /// requests sent at half of it).
    changed: Instant,
    round: Round,
}

struct Round {
    began: Instant,
    answers: u32,
    /// The round trips of the answers that were not backpressure (a `429` comes back
    /// fast and says nothing of how fast the target serves), and how many.
    total: Duration,
    timed: u32,
    backpressure: bool,
    /// Whether every slot was taken at some point of the round.
    full: bool,
}

impl Round {
    fn new() -> Round {
        Round {
            began: Instant::now(),
            answers: 0,
            total: Duration::ZERO,
            timed: 0,
            backpressure: false,
            full: false,
        }
    }
}

/// What the pages show of a limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Level {
    /// Requests allowed at once now (the adaptive level, or the fixed number).
    pub limit: usize,
    pub in_flight: usize,
    /// The upper bound of an adaptive level; `None` when fixed.
    pub adaptive_max: Option<usize>,
}

impl std::fmt::Display for Level {
    /// `8 (3 in flight now)`, or `auto: 57 now, at most 200 (41 in flight now)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.adaptive_max {
            None => write!(f, "{} ({} in flight now)", self.limit, self.in_flight),
            Some(max) => write!(
                f,
                "auto: {} now, at most {max} ({} in flight now)",
                self.limit, self.in_flight
            ),
        }
    }
}

impl Limiter {
    pub fn fixed(n: usize) -> Limiter {
        Limiter::with(n.max(1), None)
    }

    /// An adaptive level starting at [`AUTO_START`] requests (or `max`, if lower),
    /// at most `max`.
    pub fn adaptive(max: usize) -> Limiter {
        Limiter::with(
            AUTO_START.min(max.max(1)),
            Some(Aimd {
                max: max.max(1),
                slow_start: true,
                fastest: None,
                fastest_before: None,
                epoch_began: Instant::now(),
                changed: Instant::now(),
                round: Round::new(),
            }),
        )
    }

    fn with(limit: usize, aimd: Option<Aimd>) -> Limiter {
        Limiter {
            state: Mutex::new(State {
                limit,
                in_flight: 0,
                aimd,
            }),
            freed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The most requests that may ever be in flight at once (the bound of `"auto"`).
    pub fn ceiling(&self) -> usize {
        let s = self.lock();
        s.aimd.as_ref().map_or(s.limit, |a| a.max)
    }

    pub fn level(&self) -> Level {
        let s = self.lock();
        Level {
            limit: s.limit,
            in_flight: s.in_flight,
            adaptive_max: s.aimd.as_ref().map(|a| a.max),
        }
    }

    /// Waits for a slot; the request it admits is judged by [`Permit::done`].
    pub async fn acquire(&self) -> Permit<'_> {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let mut s = self.lock();
                if s.in_flight < s.limit {
                    s.in_flight += 1;
                    let full = s.in_flight >= s.limit;
                    if let Some(a) = &mut s.aimd {
                        a.round.full |= full;
                    }
                    return Permit {
                        limiter: self,
                        sent: Instant::now(),
                        done: false,
                    };
                }
            }
            freed.await;
        }
    }

    fn release(&self, sent: Instant, signal: Option<Signal>) {
        let grew = {
            let mut s = self.lock();
            s.in_flight -= 1;
            let before = s.limit;
            if let Some(signal) = signal {
                let limit = s.limit;
                if let Some(a) = &mut s.aimd {
                    s.limit = a.judge(limit, sent, signal);
                }
            }
            s.limit > before
        };
        if grew {
            self.freed.notify_waiters();
        } else {
            self.freed.notify_one();
        }
    }
}

impl Aimd {
    /// Counts the answer to a request sent at `sent`; at the end of a round (one mean
    /// round trip long), answers the new level.
    fn judge(&mut self, limit: usize, sent: Instant, signal: Signal) -> usize {
        if sent < self.changed {
            return limit;
        }
        let level = self.judged(limit, sent.elapsed(), signal);
        if level != limit {
            self.changed = Instant::now();
            self.round = Round::new();
        }
        level
    }

    fn judged(&mut self, limit: usize, took: Duration, signal: Signal) -> usize {
        let r = &mut self.round;
        r.answers += 1;
        match signal {
            Signal::Answered => {
                r.total += took;
                r.timed += 1;
            }
            Signal::Backpressure => r.backpressure = true,
        }
        let mean = if r.timed == 0 {
            took
        } else {
            r.total / r.timed
        };
        // A round is one mean round trip and at least half a level of answers (the
        // first answer after a change alone is no measure of the new level).
        if r.began.elapsed() < mean.max(Duration::from_millis(5))
            || (r.answers as usize) < limit / 2
        {
            return limit;
        }
        let (backpressure, full) = (r.backpressure, r.full);
        self.round = Round::new();
        if backpressure {
            self.slow_start = false;
            return ((limit as f64 * CUT) as usize).clamp(1, limit.saturating_sub(1).max(1));
        }
        if self.epoch_began.elapsed() >= EPOCH {
            self.fastest_before = self.fastest.take();
            self.epoch_began = Instant::now();
        }
        self.fastest = Some(self.fastest.map_or(mean, |f| f.min(mean)));
        let fastest = self.fastest.into_iter().chain(self.fastest_before).min();
        let rising = fastest.is_some_and(|f| mean.as_secs_f64() > f.as_secs_f64() * RISING);
        if rising {
            self.slow_start = false;
            // A target that queues answers about as fast at fewer requests: a level
            // that overshot (a doubling in slow start) comes back in one or two rounds
            // rather than a tenth at a time. The cut is the square root of the share
            // that would empty the target's queue: a few requests stay queued there,
            // so none of its slots idles while an answer travels back and the next
            // request comes.
            let queued = fastest.map_or(CUT, |f| f.as_secs_f64() / mean.as_secs_f64());
            let share = queued.sqrt().clamp(0.5, CUT);
            return ((limit as f64 * share) as usize).clamp(1, limit.saturating_sub(1).max(1));
        }
        if !full {
            return limit;
        }
        let more = if self.slow_start {
            limit * 2
        } else {
            limit + 1
        };
        more.min(self.max)
    }
}

/// A slot for one request; dropped without [`Permit::done`] (a request that was not
/// sent), it frees the slot without judging.
pub struct Permit<'a> {
    limiter: &'a Limiter,
    sent: Instant,
    done: bool,
}

impl Permit<'_> {
    /// Frees the slot, judging the answer by `signal`.
    pub fn done(mut self, signal: Signal) {
        self.done = true;
        self.limiter.release(self.sent, Some(signal));
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.limiter.release(self.sent, None);
        }
    }
}

/// A margin on a rate limit's period, 3 % of it and 5 ms: a request the timer sends
/// late, or one the network or a busy machine delays on its way (seen: up to about
/// 15 ms on a loaded 2-core machine), then still cannot put one request too many into
/// any window of the period as the target counts it. The rate is met at about 0.96×.
const RATE_SHARE: f64 = 1.03;
const RATE_SLACK: Duration = Duration::from_millis(5);
/// The most recent sends a [`Pacer`] remembers (a rate of more spaces them by this many).
const PACER_MEMORY: usize = 256;

/// Spaces requests for `rate_limit = "N/s"`: evenly, on a schedule (so a timer that
/// wakes late does not lower the rate), and never more than the limit in any window of
/// the period, judged by the moments requests really went. An idle connection starts a
/// new schedule with no burst saved up.
pub struct Pacer {
    spacing: Duration,
    /// The last sends, at most `memory`; the oldest of them may not be newer than
    /// `window` when the next goes.
    sent: std::collections::VecDeque<Instant>,
    memory: usize,
    window: Duration,
    next: Instant,
}

impl Pacer {
    pub fn new(requests: u32, per: Duration) -> Pacer {
        let requests = requests.max(1);
        let memory = (requests as usize).min(PACER_MEMORY);
        let period = per.mul_f64(RATE_SHARE) + RATE_SLACK;
        Pacer {
            spacing: period / requests,
            sent: std::collections::VecDeque::with_capacity(memory),
            memory,
            window: period.mul_f64(memory as f64 / f64::from(requests)),
            next: Instant::now(),
        }
    }

    /// The earliest moment the next request may go, asked at `now`.
    pub fn earliest(&self, now: Instant) -> Instant {
        let scheduled = self.next.max(now);
        match self.sent.front() {
            Some(oldest) if self.sent.len() == self.memory => scheduled.max(*oldest + self.window),
            _ => scheduled,
        }
    }

    /// Counts a request sent at `at` (once [`Pacer::earliest`] allowed it); `turn` is
    /// the moment it was given.
    pub fn sent(&mut self, turn: Instant, at: Instant) {
        if self.sent.len() == self.memory {
            self.sent.pop_front();
        }
        self.sent.push_back(at);
        self.next = turn + self.spacing;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `rounds` rounds of answers through `aimd`, each round with the level's
    /// requests all in flight, each answer taking `rtt(level)`.
    fn drive(
        a: &mut Aimd,
        mut level: usize,
        rounds: usize,
        rtt: impl Fn(usize) -> Duration,
    ) -> usize {
        for _ in 0..rounds {
            a.round.full = true;
            a.round.began = Instant::now() - rtt(level) - Duration::from_millis(6);
            let mut next = level;
            for _ in 0..(level / 2).max(1) {
                next = a.judged(level, rtt(level), Signal::Answered);
            }
            level = next;
        }
        level
    }

    fn fresh(max: usize) -> Aimd {
        Aimd {
            max,
            slow_start: true,
            fastest: None,
            fastest_before: None,
            epoch_began: Instant::now(),
            changed: Instant::now(),
            round: Round::new(),
        }
    }

    #[test]
    fn an_adaptive_level_doubles_until_the_target_slows_then_settles_near_its_capacity() {
        // A target serving 64 at once in 50 ms; more wait their turn.
        let rtt = |level: usize| Duration::from_millis(50 * level.max(64) as u64 / 64);
        let mut a = fresh(200);
        let level = drive(&mut a, 1, 6, rtt);
        assert_eq!(level, 64, "1, 2, 4 … 64 in six rounds");
        let level = drive(&mut a, level, 200, rtt);
        assert!((64..=90).contains(&level), "settles near 64, at {level}");
    }

    #[test]
    fn an_adaptive_level_never_passes_its_bound() {
        let mut a = fresh(12);
        assert_eq!(drive(&mut a, 1, 50, |_| Duration::from_millis(10)), 12);
    }

    #[test]
    fn backpressure_cuts_the_level_and_ends_slow_start() {
        let mut a = fresh(200);
        let level = drive(&mut a, 1, 5, |_| Duration::from_millis(10));
        assert_eq!(level, 32);
        a.round.began = Instant::now() - Duration::from_millis(20);
        let mut cut = a.judged(level, Duration::from_millis(10), Signal::Backpressure);
        for _ in 1..level / 2 {
            cut = a.judged(level, Duration::from_millis(10), Signal::Answered);
        }
        assert_eq!(cut, 28);
        assert_eq!(
            drive(&mut a, cut, 1, |_| Duration::from_millis(10)),
            29,
            "then one more per round"
        );
    }

    #[test]
    fn a_round_that_did_not_use_the_whole_level_leaves_it() {
        let mut a = fresh(200);
        a.round.began = Instant::now() - Duration::from_millis(20);
        assert_eq!(a.judged(8, Duration::from_millis(10), Signal::Answered), 8);
    }

    #[test]
    fn answers_to_requests_sent_before_the_level_changed_are_not_judged() {
        let mut a = fresh(200);
        a.changed = Instant::now() - Duration::from_secs(1);
        let before = Instant::now() - Duration::from_millis(500);
        a.round.full = true;
        a.round.began = Instant::now() - Duration::from_millis(20);
        let sent = Instant::now() - Duration::from_millis(10);
        for _ in 0..3 {
            assert_eq!(
                a.judge(8, sent, Signal::Backpressure),
                8,
                "half a level of answers"
            );
        }
        assert_eq!(a.judge(8, sent, Signal::Backpressure), 7, "a cut");
        for _ in 0..20 {
            assert_eq!(
                a.judge(7, before, Signal::Backpressure),
                7,
                "sent at 8: not judged"
            );
        }
    }

    #[tokio::test]
    async fn a_limiter_admits_no_more_than_its_level() {
        let l = Limiter::fixed(2);
        let a = l.acquire().await;
        let _b = l.acquire().await;
        assert!(
            tokio::time::timeout(Duration::from_millis(30), l.acquire())
                .await
                .is_err()
        );
        drop(a);
        let _c = tokio::time::timeout(Duration::from_millis(300), l.acquire())
            .await
            .expect("a freed slot admits the next");
        assert_eq!(l.level().in_flight, 2);
    }

    #[test]
    fn a_pacer_never_lets_more_than_its_rate_into_any_window_even_when_sends_are_late() {
        let mut p = Pacer::new(200, Duration::from_secs(1));
        let start = Instant::now();
        let mut now = start;
        let mut sends = Vec::new();
        for k in 0..1_000u32 {
            let turn = p.earliest(now);
            // Every seventh send goes 4 ms late, as a busy timer's would.
            let at = if k % 7 == 0 {
                turn + Duration::from_millis(4)
            } else {
                turn
            };
            p.sent(turn, at);
            sends.push(at);
            now = at;
        }
        for (i, first) in sends.iter().enumerate() {
            let within = sends[i..]
                .iter()
                .take_while(|t| **t < *first + Duration::from_millis(1_030))
                .count();
            assert!(
                within <= 200,
                "{within} sends within the window from send {i}"
            );
        }
        let rate = 999.0 / (sends[999] - start).as_secs_f64();
        assert!(rate > 185.0, "still close to the limit: {rate:.1}/s");
    }

    #[test]
    fn an_idle_pacer_saves_up_no_burst() {
        let mut p = Pacer::new(10, Duration::from_secs(1));
        let t0 = Instant::now();
        p.sent(t0, t0);
        let later = t0 + Duration::from_secs(5);
        assert_eq!(p.earliest(later), later);
        p.sent(later, later);
        assert!(p.earliest(later) >= later + Duration::from_millis(100));
    }
}
