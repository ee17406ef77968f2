//! The dequeue/lease loop. The processor takes as many free concurrency slots as it can, leases up
//! to that many tasks in one script call from the first non-empty queue of this round's order,
//! checks each message, enters it in the in-flight table and hands it to Python through a
//! channel. A slot is freed by the finisher once the task's outcome is written.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::inflight::{InFlight, Lease};
use super::{Component, RateLimitedLog, Shared};
use crate::error::Error;
use crate::message::{decode_task, effective_deadline};
use crate::rdb::{Dequeued, Rdb, LEASE_DURATION};

/// Most tasks leased by one script call.
const MAX_BATCH: usize = 100;

pub(crate) struct Processor {
    sh: Arc<Shared>,
    rdb: Rdb,
    errors: RateLimitedLog,
}

impl Processor {
    pub fn new(sh: Arc<Shared>) -> Self {
        let rdb = sh.rdb();
        Self { sh, rdb, errors: RateLimitedLog::new(Duration::from_secs(3)) }
    }

    /// asynq's idle sleep, interval/2 + rand[0, interval), cut short when a ferroq producer
    /// announces new work (asynq producers do not: their tasks wait for the poll).
    fn idle_sleep(&self) -> bool {
        let base = self.sh.cfg.task_check_interval;
        let jitter = base.mul_f64(fastrand::f64());
        self.sh.idle_wait(base / 2 + jitter)
    }

    /// One round: lease what fits and deliver it. Returns how many tasks were delivered, or
    /// None when every slot was busy (not a reason to sleep: a slot frees when a task ends).
    fn exec(&mut self) -> Result<Option<usize>, Error> {
        let n = self.sh.slots.acquire_up_to(MAX_BATCH, Duration::from_millis(100));
        if n == 0 {
            return Ok(None);
        }
        let now = self.sh.now();
        let leased = {
            let order = self.sh.selector.order();
            self.rdb.dequeue(&order, n, now)
        };
        let leased = match leased {
            Ok(l) => l,
            Err(e) => {
                self.sh.slots.release(n);
                return Err(e);
            }
        };
        self.sh.slots.release(n - leased.len());
        let mut delivered = 0;
        for l in leased {
            if self.admit(l, now) {
                delivered += 1;
            } else {
                self.sh.slots.release(1);
            }
        }
        Ok(Some(delivered))
    }

    /// Registers a leased task and hands it to Python; false when it could not be run.
    fn admit(&mut self, l: Dequeued, now: std::time::SystemTime) -> bool {
        let Dequeued { queue, id, msg } = l;
        let Some(raw) = msg else {
            log::warn!("task {} in queue {} has no message; dropping the id", id, queue);
            if let Err(e) = self.rdb.drop_orphan(&queue, &id) {
                log::warn!("could not drop orphan id {}: {e}", id);
            }
            return false;
        };
        let msg = match decode_task(&raw) {
            Ok(m) if m.id == id && m.queue == queue => m,
            Ok(m) => {
                let why =
                    format!("message id/queue {}/{} do not match its key {}/{}", m.id, m.queue, id, queue);
                self.archive_malformed(&queue, &id, raw, &why);
                return false;
            }
            Err(e) => {
                self.archive_malformed(&queue, &id, raw, &e.to_string());
                return false;
            }
        };
        let token = self.sh.next_token();
        let deadline = effective_deadline(&msg, now);
        let entry = InFlight::new(msg.clone(), deadline, now, now + LEASE_DURATION);
        if self.sh.inflight.lock().insert(token, entry) {
            self.sh.wake_watchdog();
        }
        // Fails only while the server is torn down; shutdown then requeues what is in flight.
        let _ = self.sh.ready_tx.send(Lease { token, msg, deadline });
        true
    }

    fn archive_malformed(&mut self, queue: &str, id: &str, raw: Vec<u8>, why: &str) {
        log::error!("archiving task {id} of queue {queue}: malformed message: {why}");
        let reason = format!("ferroq: malformed task message: {why}");
        if let Err(e) = self.rdb.archive_malformed(queue, id, raw, &reason, self.sh.now()) {
            log::error!("could not archive malformed task {id}: {e}");
        }
    }
}

impl Component for Processor {
    fn run(mut self) {
        while !self.sh.stopping() {
            if !self.sh.fetching.load(Ordering::SeqCst) {
                if !self.sh.sleep(Duration::from_millis(100)) {
                    break;
                }
                continue;
            }
            match self.exec() {
                Ok(Some(0)) => {
                    if !self.idle_sleep() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    self.errors.error("dequeue failed", &e);
                    if !self.sh.sleep(Duration::from_secs(1)) {
                        break;
                    }
                }
            }
        }
    }
}
