//! How a run ends ([`Outcome`], as Python reports it) and the one failure policy that turns a
//! failure into a retry or an archive, used by the finisher and the recoverer alike (asynq's
//! `handleFailedMessage`).

use std::time::{Duration, SystemTime};

use crate::clock::unix_secs_ceil;
use crate::message::TaskMessage;
use crate::rdb::Finish;

/// Longest retry delay honoured (100 years); longer ones are clamped.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(100 * 365 * 86_400);

/// asynq's default retry delay: n⁴ + 15 + rand[0, 30)·(n+1) seconds, n = retries so far.
pub fn default_retry_delay(retried: i32) -> Duration {
    let n = u64::try_from(retried.max(0)).unwrap_or(0).min(10_000);
    let secs = n.saturating_pow(4).saturating_add(15).saturating_add(fastrand::u64(0..30) * (n + 1));
    Duration::from_secs(secs)
}

/// A failed run, as the handler's error and the user's hooks describe it.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// The error text stored with the task.
    pub error: String,
    /// Whether it counts as a failed attempt (asynq's `IsFailure`); one that does not is retried
    /// without using up a retry.
    pub is_failure: bool,
    /// `SkipRetry`: archive at once.
    pub skip_retry: bool,
    /// The user's `retry_delay`, when one was given; asynq's formula otherwise.
    pub delay: Option<Duration>,
    /// The exception (type, message, traceback) as JSON, kept with the task if it is archived.
    pub detail: Option<Vec<u8>>,
}

impl Failure {
    /// A failure counted as one, with the default delay.
    pub fn new(error: impl Into<String>) -> Self {
        Self { error: error.into(), is_failure: true, skip_retry: false, delay: None, detail: None }
    }
}

/// The application's failure policy for a task that failed outside any handler (the recoverer's
/// "lease expired"): the same hooks (`is_failure`, `retry_delay`) a handler's error goes
/// through, so a recovered task waits the recovering server's retry delay.
pub trait FailurePolicy: Send + Sync {
    /// How `msg` failing with `error` counts; None for asynq's defaults.
    fn failure(&self, msg: &TaskMessage, error: &str) -> Option<Failure>;
}

/// How a handler run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Success, with the result to store when the task keeps one.
    Done(Option<Vec<u8>>),
    /// `RevokeTask`: deleted whatever its retention, counted as processed.
    Revoke,
    /// Give the task back to pending (shutdown).
    Requeue,
    /// The handler failed: retried or archived by [`decide`].
    Failed(Failure),
}

/// Whether a task that failed is retried (rather than archived), as asynq decides it: an error
/// that does not count as a failure is always retried (without using a retry); one that counts
/// is retried while retries are left and it does not skip them.
pub fn will_retry(retried: i32, max_retry: i32, skip_retry: bool, is_failure: bool) -> bool {
    !is_failure || (!skip_retry && retried < max_retry)
}

/// The Redis-side transition for a failure of `msg` at `now`.
pub fn decide(msg: &TaskMessage, f: Failure, now: SystemTime) -> Finish {
    if !will_retry(msg.retried, msg.retry, f.skip_retry, f.is_failure) {
        return Finish::Archive { error: f.error, detail: f.detail };
    }
    // Clamped: a user's retry_delay may return anything finite.
    let delay = f.delay.unwrap_or_else(|| default_retry_delay(msg.retried)).min(MAX_RETRY_DELAY);
    // Rounded up: a retry never runs before its delay is over.
    let at = unix_secs_ceil(now.checked_add(delay).unwrap_or(now));
    Finish::Retry { retry_at: at, error: f.error, is_failure: f.is_failure }
}

impl Outcome {
    /// The Redis-side transition for `msg` at `now`.
    pub fn to_finish(self, msg: &TaskMessage, now: SystemTime) -> Finish {
        match self {
            Outcome::Done(result) => Finish::Done { result },
            Outcome::Revoke => Finish::Revoke,
            Outcome::Requeue => Finish::Requeue,
            Outcome::Failed(f) => decide(msg, f, now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::from_unix_secs;

    #[test]
    fn retry_delay_is_sidekiqs() {
        for _ in 0..100 {
            let d0 = default_retry_delay(0).as_secs();
            assert!((15..45).contains(&d0), "{d0}");
            let d5 = default_retry_delay(5).as_secs();
            assert!((640..=640 + 29 * 6).contains(&d5), "{d5}");
        }
        assert!(default_retry_delay(i32::MAX).as_secs() > 0);
    }

    fn msg(retried: i32, retry: i32) -> TaskMessage {
        TaskMessage { retried, retry, ..Default::default() }
    }

    #[test]
    fn failures_retry_until_the_retries_are_used() {
        let now = from_unix_secs(1_000);
        let at = |f: Finish| match f {
            Finish::Retry { retry_at, .. } => Some(retry_at),
            _ => None,
        };
        let with_delay = Failure { delay: Some(Duration::from_secs(7)), ..Failure::new("boom") };
        assert_eq!(at(decide(&msg(0, 2), with_delay.clone(), now)), Some(1_007));
        assert!(matches!(decide(&msg(2, 2), with_delay, now), Finish::Archive { .. }));
        let skip = Failure { skip_retry: true, ..Failure::new("no") };
        assert_eq!(decide(&msg(0, 5), skip, now), Finish::Archive { error: "no".into(), detail: None });
        let default = at(decide(&msg(0, 5), Failure::new("x"), now)).expect("a retry");
        assert!((1_015..1_045).contains(&default));
        // A sub-second delay is rounded up to the next whole second, never down.
        let short = Failure { delay: Some(Duration::from_millis(300)), ..Failure::new("x") };
        let half_past = crate::clock::from_unix_nanos(1_000_500_000_000);
        assert_eq!(at(decide(&msg(0, 2), short, half_past)), Some(1_001));
        let huge = Failure { delay: Some(Duration::MAX), ..Failure::new("x") };
        assert!(at(decide(&msg(0, 5), huge, now)).is_some_and(|t| t > 1_000));
    }

    #[test]
    fn a_failure_that_does_not_count_is_retried_even_without_retries_left() {
        // asynq's handleFailedMessage: IsFailure is asked before the retries are counted.
        for (retried, skip) in [(0, false), (1, false), (5, true)] {
            let f = Failure { is_failure: false, skip_retry: skip, ..Failure::new("later") };
            match decide(&msg(retried, 1), f, from_unix_secs(0)) {
                Finish::Retry { is_failure, .. } => assert!(!is_failure),
                other => panic!("expected a retry, got {other:?}"),
            }
        }
        assert!(will_retry(9, 1, true, false));
        assert!(!will_retry(1, 1, false, true));
    }
}
