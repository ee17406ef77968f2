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
        let mut items: Vec<(TaskMessage, Finish, SystemTime)> = Vec::with_capacity(batch.len());
        let mut freed = 0;
        let mut expired = Vec::new();
        let mut ended = Vec::with_capacity(batch.len());
        let tokens: Vec<u64> = batch.iter().map(|(t, _)| *t).collect();
        let taken = self.sh.take_finished(&tokens);
        for ((_, outcome), f) in batch.into_iter().zip(taken) {
            // Unknown token: a late outcome for a task already requeued or finished.
            let Some(f) = f else { continue };
            freed += 1;
            if !f.still_ours(now, self.sh.cfg.lease_grace) {
                // Another server has it (it left active), or our lease ended long enough ago
                // that a recoverer may have taken it: either way the outcome is not ours to write.
                expired.push((f.msg.id, f.lost));
                continue;
            }
            let finish = outcome.to_finish(&f.msg, now);
            let ran = now.duration_since(f.started).unwrap_or_default().as_secs_f64();
            ended.push((ended_as(&finish), ran));
            items.push((f.msg, finish, f.lease_expiry));
        }
        self.sh.metrics.ended(
            items
                .iter()
                .zip(&ended)
                .map(|((m, _, _), (how, secs))| (m.queue.as_str(), m.r#type.as_str(), *how, *secs)),
        );
        // Logged after the table's lock is released: logging takes the GIL, and Python threads
        // take that lock.
        for (id, lost) in expired {
            if lost {
                log::warn!("task {id} ended here after another server took it; its outcome is dropped");
            } else {
                log::warn!("lease of task {id} expired before its outcome; leaving it to the recoverer");
            }
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
        let deadline = lease_expiry.checked_add(self.sh.cfg.lease_grace / 2).unwrap_or(lease_expiry);
        let _ = self.sh.sync_tx.send(super::syncer::Pending { msg, finish, deadline });
    }
}

/// How a written outcome ended the run, for the metrics.
fn ended_as(f: &Finish) -> Ended {
    match f {
        Finish::Done => Ended::Succeeded,
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
