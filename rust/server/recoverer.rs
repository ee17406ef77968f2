//! Recoverer: once at start and every `recoverer_interval`, finds active tasks whose lease ended
//! at least `lease_grace` ago (asynq's tolerance for clock skew, 30 s) — their server died — and
//! retries or archives them with asynq's "task lease expired" error, through the application's
//! failure policy (its `is_failure` and `retry_delay`). An active task that no lease covers is
//! given one that ends now, so it is recovered the same way unless a live server renews it.

use std::sync::Arc;

use super::policy::decide;
use super::{Component, RateLimitedLog, Shared};
use crate::error::Error;
use crate::message::decode_task;
use crate::rdb::Rdb;

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
        let cutoff = now.checked_sub(self.sh.cfg.lease_grace).unwrap_or(std::time::UNIX_EPOCH);
        for q in self.sh.selector.names() {
            let scan = match self.rdb.list_lease_expired(q, cutoff, now) {
                Ok(v) => v,
                Err(e) => {
                    self.errors.error(&format!("listing expired leases of queue {q} failed"), &e);
                    continue;
                }
            };
            if scan.adopted > 0 {
                log::warn!(
                    "queue {q}: {} active task(s) had no lease; they are recovered unless a live server renews them",
                    scan.adopted
                );
            }
            if scan.dropped > 0 {
                log::warn!(
                    "queue {q}: dropped {} expired lease(s) of tasks that cannot run here",
                    scan.dropped
                );
            }
            let expired = scan.expired;
            for l in expired {
                let raw = l.msg.unwrap_or_default();
                let decoded = decode_task(&raw).and_then(|m| {
                    if m.id == l.id && m.queue == q {
                        Ok(m)
                    } else {
                        Err(Error::Decode(format!(
                            "message id/queue {}/{} do not match its key",
                            m.id, m.queue
                        )))
                    }
                });
                let msg = match decoded {
                    Ok(m) => m,
                    Err(e) => {
                        let why = format!("ferroq: malformed task message: {e}");
                        if let Err(e) = self.rdb.archive_malformed(q, &l.id, raw, &why, now) {
                            log::warn!("could not archive malformed task {}: {e}", l.id);
                        }
                        continue;
                    }
                };
                // The same policy as a handler's failure: the application's hooks decide.
                let failure = self.sh.failure_outside_handler(&msg, LEASE_EXPIRED);
                let finish = decide(&msg, failure, now);
                match self.rdb.finish(&msg, &finish, now) {
                    Ok(()) => {
                        log::warn!("recovered task {} of queue {q} after its lease expired", msg.id);
                        if let crate::rdb::Finish::Retry { retry_at, .. } = finish {
                            // The forwarder must not wait its interval for a short retry delay.
                            self.sh.note_due(retry_at);
                        }
                    }
                    // Another server recovered it first.
                    Err(Error::NotFound) => {}
                    Err(e) => self.errors.error("recovering a task failed", &e),
                }
            }
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
