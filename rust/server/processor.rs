//! The dequeue/lease loop (`Processor`) and the outcome writer (`Finisher`).
//!
//! The processor takes as many free concurrency slots as it can, leases up to that many tasks in
//! one script call from the first non-empty queue of this round's order, and hands them to Python
//! through a channel. The finisher drains outcomes and writes them in one pipeline per batch; a
//! slot is freed only once its outcome is written (or given to the syncer).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crossbeam_channel::{RecvTimeoutError, TryRecvError};

use super::{Component, Delivery, InFlight, Outcome, RateLimitedLog, Shared};
use crate::error::Error;
use crate::message::{decode_task, effective_deadline, TaskMessage};
use crate::rdb::{Finish, Leased, Rdb, LEASE_DURATION};

/// Most tasks leased by one script call.
const MAX_BATCH: usize = 100;
/// Most outcomes written by one pipeline.
const MAX_FINISH_BATCH: usize = 256;

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
    fn admit(&mut self, l: Leased, now: std::time::SystemTime) -> bool {
        let Leased { queue, id, msg } = l;
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
        let entry = InFlight { msg: msg.clone(), deadline, started: now, lease_expiry: now + LEASE_DURATION };
        self.sh.inflight.lock().insert(token, entry);
        // Fails only while the server is torn down; shutdown then requeues what is in flight.
        let _ = self.sh.ready_tx.send(Delivery { token, msg, deadline });
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

pub(crate) struct Finisher {
    sh: Arc<Shared>,
    rdb: Rdb,
}

impl Finisher {
    pub fn new(sh: Arc<Shared>) -> Self {
        let rdb = sh.rdb();
        Self { sh, rdb }
    }

    /// Writes one batch of outcomes.
    fn exec(&mut self, batch: Vec<(u64, Outcome)>) {
        let now = self.sh.now();
        let mut items: Vec<(TaskMessage, Finish, SystemTime)> = Vec::with_capacity(batch.len());
        let mut freed = 0;
        let mut expired = Vec::new();
        {
            let mut inflight = self.sh.inflight.lock();
            for (token, outcome) in batch {
                // Unknown token: a late outcome for a task already requeued or finished.
                let Some(f) = inflight.remove(&token) else {
                    continue;
                };
                freed += 1;
                if now > f.lease_expiry {
                    // Our lease ended; the task may be running elsewhere. The recoverer owns it.
                    expired.push(f.msg.id);
                    continue;
                }
                let finish = outcome.to_finish(&f.msg, now);
                items.push((f.msg, finish, f.lease_expiry));
            }
        }
        // Logged outside the lock: logging takes the GIL, and Python threads take this lock.
        for id in expired {
            log::warn!("lease of task {id} expired before its outcome; leaving it to the recoverer");
        }
        if !items.is_empty() {
            let refs: Vec<(&TaskMessage, &Finish)> = items.iter().map(|(m, f, _)| (m, f)).collect();
            match self.rdb.finish_many(&refs, now) {
                Ok(results) => {
                    for ((msg, finish, lease), r) in items.into_iter().zip(results) {
                        match r {
                            // Written: the forwarder can now see it, and must not wait longer.
                            Ok(()) => {
                                if let Finish::Retry { retry_at, .. } = finish {
                                    self.sh.note_due(retry_at);
                                }
                            }
                            Err(Error::NotFound) => {
                                log::warn!("task {} was gone when finishing it", msg.id)
                            }
                            Err(e) => self.to_syncer(msg, finish, lease, &e),
                        }
                    }
                }
                Err(e) => {
                    for (msg, finish, lease) in items {
                        self.to_syncer(msg, finish, lease, &e);
                    }
                }
            }
        }
        self.sh.slots.release(freed);
    }

    /// Hands a failed write to the syncer, which retries it until the task's lease ends (then the
    /// task is the recoverer's).
    fn to_syncer(&self, msg: TaskMessage, finish: Finish, lease_expiry: SystemTime, e: &Error) {
        log::warn!("could not write the outcome of task {}: {e}; retrying in the background", msg.id);
        let _ = self.sh.sync_tx.send(super::syncer::Pending { msg, finish, deadline: lease_expiry });
    }
}

impl Component for Finisher {
    fn run(mut self) {
        let rx = self.sh.finish_rx.clone();
        let stop = self.sh.finish_stop_rx.clone();
        loop {
            let first = match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(o) => o,
                Err(RecvTimeoutError::Timeout) => {
                    // Drain fully before exiting so shutdown loses no outcome.
                    if matches!(stop.try_recv(), Err(TryRecvError::Disconnected)) && rx.is_empty() {
                        break;
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut batch = vec![first];
            batch.extend(rx.try_iter().take(MAX_FINISH_BATCH - 1));
            // A panic writing one batch must not end the writer: every later outcome depends on it.
            if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.exec(batch))) {
                log::error!("writing a batch of outcomes panicked: {}", super::panic_text(&p));
            }
        }
    }
}
