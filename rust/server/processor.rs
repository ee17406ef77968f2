//! The dequeue/lease loop. The processor takes as many free concurrency slots as it can, leases up
//! to that many tasks in one script call from the first non-empty queue of this round's order,
//! checks each message, enters it in the in-flight table and hands it to Python through a
//! channel. A slot is freed by the finisher once the task's outcome is written.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::inflight::{InFlight, Lease};
use super::{Component, RateLimitedLog, Shared};
use crate::error::Error;
use crate::message::{decode_task, effective_deadline};
use crate::rdb::{Dequeued, Rdb};

/// Most tasks leased by one script call.
const MAX_BATCH: usize = 100;
/// A broken queue is first skipped this long, then twice as long each time it is still broken.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest a broken queue is skipped between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How long a queue whose cluster node failed is first skipped, doubling while it keeps failing
/// up to [`UNREACHABLE_MAX_BACKOFF`]: short, since a failover usually ends within seconds and the
/// queue should be served soon after, but each try of a node that does not answer costs a
/// connection attempt.
const UNREACHABLE_BACKOFF: Duration = Duration::from_secs(1);
/// The longest a queue whose cluster node failed is skipped between two tries.
const UNREACHABLE_MAX_BACKOFF: Duration = Duration::from_secs(8);

/// Queues skipped for a while: the others go on at full speed. A queue with a key of the wrong
/// type, or whose cluster node failed, is tried again after a backoff that doubles while it
/// keeps failing (from `first` up to `max`).
struct Quarantine {
    /// Queue → (skipped until, the backoff that set it).
    queues: HashMap<String, (Instant, Duration)>,
    first: Duration,
    max: Duration,
}

impl Quarantine {
    fn new(first: Duration, max: Duration) -> Self {
        Self { queues: HashMap::new(), first, max }
    }

    fn is_skipped(&self, q: &str, now: Instant) -> bool {
        self.queues.get(q).is_some_and(|(until, _)| now < *until)
    }

    /// Skips `q` for its next backoff; returns how long.
    fn skip(&mut self, q: &str, now: Instant) -> Duration {
        let backoff = match self.queues.get(q) {
            Some((_, last)) => (*last * 2).min(self.max),
            None => self.first,
        };
        self.queues.insert(q.to_string(), (now + backoff, backoff));
        backoff
    }

    /// Whether `q` is in quarantine (skipped now or not), i.e. failed when last tried.
    fn holds(&self, q: &str) -> bool {
        self.queues.contains_key(q)
    }

    /// `q` was served: it works again.
    fn healed(&mut self, q: &str) -> bool {
        self.queues.remove(q).is_some()
    }
}

pub(crate) struct Processor {
    sh: Arc<Shared>,
    rdb: Rdb,
    errors: RateLimitedLog,
    broken: Quarantine,
    unreachable: Quarantine,
}

impl Processor {
    pub fn new(sh: Arc<Shared>) -> Self {
        let rdb = sh.rdb();
        Self {
            sh,
            rdb,
            errors: RateLimitedLog::new(Duration::from_secs(3)),
            broken: Quarantine::new(FIRST_BACKOFF, MAX_BACKOFF),
            unreachable: Quarantine::new(UNREACHABLE_BACKOFF, UNREACHABLE_MAX_BACKOFF),
        }
    }

    /// asynq's idle sleep, interval/2 + rand[0, interval), cut short when a ferroq producer
    /// announces new work (asynq producers do not: their tasks wait for the poll).
    fn idle_sleep(&self) -> bool {
        let base = self.sh.cfg.task_check_interval;
        let jitter = base.mul_f64(fastrand::f64());
        self.sh.idle_wait(base / 2 + jitter)
    }

    /// One round: lease what fits and deliver it. Returns how many tasks came back (delivered or
    /// dropped as unusable), or None when there is no reason to sleep: every slot was busy (a
    /// slot frees when a task ends), or, in declared-keys mode, the dequeue found only tasks it
    /// was not told of (it has learnt them, and the next round may take them).
    fn exec(&mut self) -> Result<Option<usize>, Error> {
        let n = self.sh.slots.acquire_up_to(MAX_BATCH, Duration::from_millis(100));
        if n == 0 {
            return Ok(None);
        }
        let now = self.sh.now();
        let (lease_until, lease_expiry) = self.sh.lease_until(now);
        let reply = {
            let clock = Instant::now();
            let order: Vec<&str> = self
                .sh
                .selector
                .order()
                .into_iter()
                .filter(|q| !self.broken.is_skipped(q, clock) && !self.unreachable.is_skipped(q, clock))
                .collect();
            self.rdb.dequeue(&order, n, lease_until)
        };
        let reply = match reply {
            Ok(r) => r,
            Err(e) => {
                self.sh.slots.release(n);
                return Err(e);
            }
        };
        for (q, why) in &reply.broken {
            let backoff = self.broken.skip(q, Instant::now());
            log::error!(
                "queue {q} is broken ({why}); skipping it for {}s while the other queues are served",
                backoff.as_secs()
            );
        }
        for (q, why) in &reply.unreachable {
            // One warning when a queue's node starts failing, not one per try.
            let first = !self.unreachable.holds(q);
            let backoff = self.unreachable.skip(q, Instant::now());
            if first {
                log::warn!(
                    "queue {q} is unreachable ({why}); skipping it for {}s (doubling up to {}s) while \
                     the other queues are served",
                    backoff.as_secs(),
                    UNREACHABLE_MAX_BACKOFF.as_secs()
                );
            } else {
                log::debug!("queue {q} is still unreachable ({why}); skipping it for {}s", backoff.as_secs());
            }
        }
        for q in &reply.reached {
            if self.unreachable.healed(q) {
                log::info!("queue {q} is reachable again");
            }
        }
        if let Some(first) = reply.tasks.first() {
            if self.broken.healed(&first.queue) {
                log::info!("queue {} works again", first.queue);
            }
        }
        let got = reply.tasks.len();
        self.sh.slots.release(n - got);
        if got == 0 && reply.learnt {
            return Ok(None);
        }
        for l in reply.tasks {
            if !self.admit(l, now, lease_expiry) {
                self.sh.slots.release(1);
            }
        }
        Ok(Some(got))
    }

    /// Registers a leased task and hands it to Python; false when it could not be run.
    fn admit(
        &mut self,
        l: Dequeued,
        now: std::time::SystemTime,
        lease_expiry: std::time::SystemTime,
    ) -> bool {
        let Dequeued { queue, id, msg } = l;
        let Some(raw) = msg else {
            // The script already removed it (and any hash without a message): nothing to run.
            log::warn!("dropped task id {id} of queue {queue}: it has no task message");
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
        let expired = deadline <= now;
        let entry = InFlight::new(msg.clone(), deadline, now, lease_expiry);
        if self.sh.inflight.lock().insert(token, entry) {
            self.sh.wake_watchdog();
        }
        // Fails only while the server is torn down; shutdown then requeues what is in flight.
        let _ = self.sh.ready_tx.send(Lease { token, msg, deadline, expired });
        true
    }

    fn archive_malformed(&mut self, queue: &str, id: &str, raw: Vec<u8>, why: &str) {
        log::error!("archiving task {id} of queue {queue}: malformed message: {why}");
        let reason = format!("ferroq: malformed task message: {why}");
        if let Err(e) = self.rdb.archive_malformed(queue, id, raw, &reason, self.sh.now(), i64::MAX) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_queue_is_skipped_for_a_short_doubling_backoff() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut q = Quarantine::new(UNREACHABLE_BACKOFF, UNREACHABLE_MAX_BACKOFF);
        assert!(!q.holds("a"));
        let got: Vec<Duration> = (0..6).map(|_| q.skip("a", t0)).collect();
        assert_eq!(got, vec![s(1), s(2), s(4), s(8), s(8), s(8)]);
        assert!(q.holds("a") && q.healed("a") && !q.healed("a") && !q.holds("a"));
    }

    #[test]
    fn a_broken_queue_is_skipped_for_a_doubling_backoff_until_it_heals() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut q = Quarantine::new(FIRST_BACKOFF, MAX_BACKOFF);
        assert!(!q.is_skipped("a", t0), "nothing is skipped at first");
        assert_eq!(q.skip("a", t0), s(1));
        assert!(q.is_skipped("a", t0) && q.is_skipped("a", t0 + Duration::from_millis(999)));
        assert!(!q.is_skipped("a", t0 + s(1)), "tried again once its backoff is over");
        assert!(!q.is_skipped("b", t0), "other queues are not skipped");
        assert_eq!(q.skip("a", t0 + s(1)), s(2));
        assert!(q.is_skipped("a", t0 + s(2)) && !q.is_skipped("a", t0 + s(3)));
        let mut last = s(2);
        for _ in 0..10 {
            last = q.skip("a", t0);
        }
        assert_eq!(last, MAX_BACKOFF, "capped");
        assert!(q.healed("a") && !q.healed("a"), "healed once");
        assert_eq!(q.skip("a", t0), FIRST_BACKOFF, "a healed queue starts over");
    }
}
