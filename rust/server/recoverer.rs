//! Recoverer: once at start and every `recoverer_interval`, finds active tasks whose lease ended
//! at least `lease_grace` ago (asynq's tolerance for clock skew, 30 s) — their server died — and
//! retries or archives them with asynq's "task lease expired" error, through the application's
//! failure policy (its `is_failure` and `retry_delay`; with no retries left it is archived, as
//! asynq does). An active task that no lease covers is given a lease of its own (at least
//! [`ADOPTED_LEASE_MIN`]), so it is recovered the same way unless a live server renews it.

use std::sync::Arc;

use super::policy::{decide, Failure};
use super::{Component, RateLimitedLog, Shared};
use crate::clock::{unix_secs, unix_secs_ceil};
use crate::error::Error;
use crate::message::decode_task;
use crate::rdb::{Finish, Rdb};

/// The shortest lease given to an active task that had none: twice asynq's heartbeat interval
/// (5 s, fixed), so a live Go server, or a ferroq one (which renews at most every third of its
/// own lease), renews the entry before anyone recovers the task.
const ADOPTED_LEASE_MIN: std::time::Duration = std::time::Duration::from_secs(10);

/// asynq's `ErrLeaseExpired` text.
pub(crate) const LEASE_EXPIRED: &str = "asynq: task lease expired";

pub(crate) struct Recoverer {
    sh: Arc<Shared>,
    rdb: Rdb,
    errors: RateLimitedLog,
}

impl Recoverer {
    pub fn new(sh: Arc<Shared>) -> Self {
        let rdb = sh.rdb();
        Self { sh, rdb, errors: RateLimitedLog::new(std::time::Duration::from_secs(3)) }
    }

    fn exec(&mut self) {
        let now = self.sh.now();
        let cutoff = unix_secs(now.checked_sub(self.sh.cfg.lease_grace).unwrap_or(std::time::UNIX_EPOCH));
        let adopted_lease = self.sh.cfg.lease_duration.max(ADOPTED_LEASE_MIN);
        let adopt_until = unix_secs_ceil(now.checked_add(adopted_lease).unwrap_or(now));
        let sh = self.sh.clone();
        for q in sh.selector.names() {
            let scan = match self.rdb.list_lease_expired(q, cutoff, adopt_until) {
                Ok(v) => v,
                Err(e) => {
                    self.errors.error(&format!("listing expired leases of queue {q} failed"), &e);
                    continue;
                }
            };
            if scan.adopted > 0 {
                log::warn!(
                    "queue {q}: {} active task(s) had no lease; leased them for {}s: recovered \
                     then unless a live server renews them",
                    scan.adopted,
                    adopted_lease.as_secs()
                );
            }
            if scan.dropped > 0 {
                log::warn!(
                    "queue {q}: dropped {} expired lease(s) of tasks that cannot run here",
                    scan.dropped
                );
            }
            for l in scan.expired {
                // A hook that hangs must not keep the server from shutting down for long.
                if self.sh.stopping() {
                    return;
                }
                self.recover(q, l, cutoff, now);
            }
        }
    }

    fn recover(&mut self, q: &str, l: crate::rdb::Dequeued, cutoff: i64, now: std::time::SystemTime) {
        let raw = l.msg.unwrap_or_default();
        let decoded = decode_task(&raw).and_then(|m| {
            if m.id == l.id && m.queue == q {
                Ok(m)
            } else {
                Err(Error::Decode(format!("message id/queue {}/{} do not match its key", m.id, m.queue)))
            }
        });
        let msg = match decoded {
            Ok(m) => m,
            Err(e) => {
                let why = format!("ferroq: malformed task message: {e}");
                if let Err(e) = self.rdb.archive_malformed(q, &l.id, raw, &why, now, cutoff) {
                    log::warn!("could not archive malformed task {}: {e}", l.id);
                }
                return;
            }
        };
        // As asynq's recoverer: a task with no retries left is archived whatever the hooks say
        // (an uncounted retry would let a task that kills its worker loop forever); otherwise
        // the application's is_failure and retry_delay decide, as for a handler's error.
        let failure = if msg.retried >= msg.retry {
            Failure::new(LEASE_EXPIRED)
        } else {
            self.sh.failure_outside_handler(&msg, LEASE_EXPIRED)
        };
        let finish = decide(&msg, failure, now);
        match self.rdb.recover(&msg, &finish, cutoff, now) {
            Ok(()) => {
                self.sh.metrics.recovered(q);
                // Logged once, by the server whose write won.
                let (attempt, of) = (i64::from(msg.retried) + 1, i64::from(msg.retry) + 1);
                match finish {
                    Finish::Retry { retry_at, .. } => {
                        log::warn!(
                            target: super::TASK_LOG,
                            "task {} (type {}, queue {q}) failed, attempt {attempt} of {of}: {LEASE_EXPIRED}; \
                             it will be retried",
                            msg.id,
                            msg.r#type
                        );
                        // The forwarder must not wait its interval for a short retry delay.
                        self.sh.note_due(retry_at);
                    }
                    _ => log::error!(
                        target: super::TASK_LOG,
                        "task {} (type {}, queue {q}) failed, attempt {attempt} of {of}: {LEASE_EXPIRED}; archived",
                        msg.id,
                        msg.r#type
                    ),
                }
            }
            // Another server recovered it first, or its lease was renewed meanwhile.
            Err(Error::NotFound) => {}
            Err(e) => self.errors.error("recovering a task failed", &e),
        }
    }
}

impl Component for Recoverer {
    fn run(mut self) {
        loop {
            self.exec();
            if !self.sh.sleep(self.sh.cfg.recoverer_interval) {
                break;
            }
        }
    }
}
