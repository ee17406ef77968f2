//! Forwarder: moves due scheduled and retry tasks to pending.
//!
//! It runs when the earliest waiting task is due, and at the latest every
//! `delayed_task_check_interval` (asynq checks only at that interval). Each pass learns from
//! Redis when the next task is due; ferroq producers announce new scheduled tasks on the queue's
//! wake channel and this server's own retries are noted directly, so a task scheduled or retried
//! in 1 s runs in about 1 s, not at the next check. Tasks scheduled by producers that do not
//! announce (asynq's) are picked up by the periodic check, as asynq's forwarder would.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Component, RateLimitedLog, Shared};
use crate::rdb::Rdb;

/// Shortest wait between passes, so that a task that cannot be moved (a bad entry, a clock
/// jump) never turns the loop into a busy one.
const MIN_WAIT: Duration = Duration::from_millis(5);

pub(crate) struct Forwarder {
    sh: Arc<Shared>,
    rdb: Rdb,
    errors: RateLimitedLog,
}

/// How long to wait at `now` for a task due at `due` (Unix seconds), at most `left`.
fn wait_for(now: SystemTime, due: i64, left: Duration) -> Duration {
    let until_due = match u64::try_from(due) {
        Ok(secs) => {
            let at = UNIX_EPOCH.checked_add(Duration::from_secs(secs));
            at.map_or(left, |at| at.duration_since(now).unwrap_or(Duration::ZERO))
        }
        Err(_) => Duration::ZERO, // before 1970: long overdue
    };
    until_due.min(left).max(MIN_WAIT)
}

impl Forwarder {
    pub fn new(sh: Arc<Shared>) -> Self {
        let rdb = sh.rdb();
        Self { sh, rdb, errors: RateLimitedLog::new(std::time::Duration::from_secs(3)) }
    }

    /// One pass over every queue; due times it reads are noted in `Shared`.
    fn exec(&mut self) {
        self.sh.take_next_due();
        let now = self.sh.now();
        let mut moved = false;
        for q in self.sh.selector.names() {
            match self.rdb.forward_if_ready(q, now) {
                Ok(f) => {
                    moved |= f.moved > 0;
                    if let Some(due) = f.next_due {
                        self.sh.note_due(due);
                    }
                }
                Err(e) => self.errors.error(&format!("forwarding scheduled tasks of queue {q} failed"), &e),
            }
        }
        if moved {
            self.sh.wake();
        }
    }

    /// Waits until the earliest noted task is due or the check interval has passed; false at
    /// shutdown.
    fn wait(&self) -> bool {
        let interval = self.sh.cfg.delayed_task_check_interval;
        let start = std::time::Instant::now();
        loop {
            let left = interval.saturating_sub(start.elapsed());
            if left.is_zero() {
                return true;
            }
            let due = self.sh.next_due();
            let wait = if due == i64::MAX { left } else { wait_for(self.sh.now(), due, left) };
            let deadline = std::time::Instant::now() + wait;
            if !self.sh.due_wait(wait) {
                return false;
            }
            if std::time::Instant::now() >= deadline {
                return true; // waited the whole time: the task is due (or the interval passed)
            }
            // Woken early: an earlier due time was noted; wait again with it.
        }
    }
}

impl Component for Forwarder {
    fn run(mut self) {
        // A first pass at start: overdue tasks move at once, and the next due time is learnt.
        loop {
            self.exec();
            if !self.wait() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis)
    }

    #[test]
    fn waits_until_the_whole_second_the_task_is_due() {
        let left = Duration::from_secs(5);
        assert_eq!(wait_for(at(100, 250), 101, left), Duration::from_millis(750));
        assert_eq!(wait_for(at(100, 0), 102, left), Duration::from_secs(2));
    }

    #[test]
    fn never_waits_longer_than_the_interval_left() {
        assert_eq!(wait_for(at(100, 0), 200, Duration::from_secs(5)), Duration::from_secs(5));
        assert_eq!(wait_for(at(100, 0), i64::MAX - 1, Duration::from_secs(5)), Duration::from_secs(5));
    }

    #[test]
    fn overdue_tasks_wait_only_the_minimum() {
        let left = Duration::from_secs(5);
        assert_eq!(wait_for(at(100, 500), 100, left), MIN_WAIT);
        assert_eq!(wait_for(at(100, 0), 50, left), MIN_WAIT);
        assert_eq!(wait_for(at(100, 0), -7, left), MIN_WAIT);
    }
}
