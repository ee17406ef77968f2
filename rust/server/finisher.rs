//! The outcome writer: drains the outcomes Python reports, removes their tasks from the in-flight
//! table, turns each into its Redis transition (failures through the one policy) and writes them
//! in one pipeline per batch. A slot is freed only once its outcome is written (or given to the
//! syncer); a write that fails goes to the syncer, which retries it while the lease lasts.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crossbeam_channel::{RecvTimeoutError, TryRecvError};

use super::metrics::Ended;
use super::policy::Outcome;
use super::{Component, Shared};
use crate::error::Error;
use crate::message::TaskMessage;
use crate::rdb::{Finish, Rdb};

/// Most outcomes written by one pipeline.
const MAX_FINISH_BATCH: usize = 256;

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
        // (message, transition, lease expiry, seconds the run took)
        let mut items: Vec<(TaskMessage, Finish, SystemTime, f64)> = Vec::with_capacity(batch.len());
        let mut freed = 0;
        let mut expired = Vec::new();
        let tokens: Vec<u64> = batch.iter().map(|(t, _)| *t).collect();
        let taken = self.sh.take_finished(&tokens);
        for ((_, outcome), f) in batch.into_iter().zip(taken) {
            // Unknown token: a late outcome for a task already requeued or finished.
            let Some(f) = f else { continue };
            freed += 1;
            let ran = now.duration_since(f.started).unwrap_or_default().as_secs_f64();
            if !f.still_ours(now, self.sh.cfg.lease_grace) {
                // Another server has it (it left active), or our lease ended long enough ago
                // that a recoverer may have taken it: either way the outcome is not ours to write.
                expired.push((f.msg, f.lost, ran));
                continue;
            }
            let finish = outcome.to_finish(&f.msg, now);
            items.push((f.msg, finish, f.lease_expiry, ran));
        }
        if !expired.is_empty() {
            self.sh.metrics.ended(
                expired.iter().map(|(m, _, ran)| (m.queue.as_str(), m.r#type.as_str(), Ended::Dropped, *ran)),
            );
        }
        // Logged after the table's lock is released: logging takes the GIL, and Python threads
        // take that lock.
        for (msg, lost, _) in &expired {
            if *lost {
                log::warn!("task {} ended here after another server took it; its outcome is dropped", msg.id);
            } else {
                log::warn!(
                    "lease of task {} expired before its outcome; leaving it to the recoverer",
                    msg.id
                );
            }
        }
        if items.is_empty() {
            self.sh.slots.release(freed);
            return;
        }
        let refs: Vec<(&TaskMessage, &Finish)> = items.iter().map(|(m, f, _, _)| (m, f)).collect();
        let results: Vec<crate::error::Result<()>> = match self.rdb.finish_many(&refs, now) {
            Ok(results) => results,
            Err(e) => items.iter().map(|_| Err(e.duplicate())).collect(),
        };
        // Counted as written (a write that failed goes to the syncer, which writes it or leaves
        // the task to the recoverer); a task gone when finishing it is a dropped outcome.
        self.sh.metrics.ended(items.iter().zip(&results).map(|((m, finish, _, ran), r)| {
            let how = if matches!(r, Err(Error::NotFound)) { Ended::Dropped } else { ended_as(finish) };
            (m.queue.as_str(), m.r#type.as_str(), how, *ran)
        }));
        for ((msg, finish, lease, _), r) in items.into_iter().zip(results) {
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
        self.sh.slots.release(freed);
    }

    /// Hands a failed write to the syncer, which retries it until the task's lease ends (then the
    /// task is the recoverer's).
    fn to_syncer(&self, msg: TaskMessage, finish: Finish, lease_expiry: SystemTime, e: &Error) {
        log::warn!("could not write the outcome of task {}: {e}; retrying in the background", msg.id);
        let deadline = lease_expiry.checked_add(self.sh.cfg.lease_grace / 2).unwrap_or(lease_expiry);
        let _ = self.sh.sync_tx.send(super::syncer::Pending { msg, finish, deadline });
    }
}

/// How a written outcome ended the run, for the metrics.
fn ended_as(f: &Finish) -> Ended {
    match f {
        Finish::Done { .. } => Ended::Succeeded,
        Finish::Revoke => Ended::Revoked,
        Finish::Requeue => Ended::Requeued,
        Finish::Retry { .. } => Ended::Retried,
        Finish::Archive { .. } => Ended::Archived,
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
