//! Watchdog: fires the in-flight table's alarms. When a task's deadline passes its handler is
//! told to stop ([`CancelReason::DeadlineExceeded`], the path every cancellation takes); when a
//! handler told to stop still runs after the grace period, its runner is told to fail the task
//! without it ([`CancelReason::Unresponsive`]). It sleeps until the earliest alarm: nothing scans
//! the running tasks.

use std::sync::Arc;
use std::time::Duration;

use super::inflight::{Alarm, CancelReason};
use super::{Component, Shared};

/// The longest sleep between checks for shutdown when no alarm is set.
const IDLE: Duration = Duration::from_secs(60);

pub(crate) struct Watchdog {
    sh: Arc<Shared>,
}

impl Watchdog {
    pub fn new(sh: Arc<Shared>) -> Self {
        Self { sh }
    }

    /// Fires what is due; returns how long to sleep until the next alarm.
    fn exec(&mut self) -> Duration {
        let due = self.sh.inflight.lock().due(self.sh.now());
        for (token, alarm) in due {
            let why = match alarm {
                Alarm::Deadline => CancelReason::DeadlineExceeded,
                Alarm::Grace => CancelReason::Unresponsive,
            };
            self.sh.cancel(token, why);
        }
        // Planned after firing: the grace periods just started are among the alarms. Under the
        // table's lock, so an alarm set after the plan sees it and wakes the watchdog if earlier.
        let now = self.sh.now();
        self.sh.inflight.lock().plan_watchdog(now, IDLE)
    }
}

impl Component for Watchdog {
    fn run(mut self) {
        loop {
            let wait = self.exec();
            if !self.sh.alarm_wait(wait) {
                break;
            }
        }
    }
}
