//! Recoverer: once at start and every `recoverer_interval`, finds active tasks whose lease ended
//! at least 30 s ago (tolerance for clock skew, as asynq) — their server died — and retries or
//! archives them with asynq's "task lease expired" error.

use std::sync::Arc;

use super::policy::{decide, Failure};
use super::{Component, RateLimitedLog, Shared};
use crate::error::Error;
use crate::message::decode_task;
use crate::rdb::{Rdb, LEASE_DURATION};

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
        let cutoff = now - LEASE_DURATION;
        for q in self.sh.selector.names() {
            let expired = match self.rdb.list_lease_expired(q, cutoff) {
                Ok(v) => v,
                Err(e) => {
                    self.errors.error("listing expired leases failed", &e);
                    continue;
                }
            };
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
                // The same policy as a handler's failure, with asynq's default delay.
                let finish = decide(&msg, Failure::new(LEASE_EXPIRED), now);
                match self.rdb.finish(&msg, &finish, now) {
                    Ok(()) => log::warn!("recovered task {} of queue {q} after its lease expired", msg.id),
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
