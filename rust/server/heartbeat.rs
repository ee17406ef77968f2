//! Heartbeat: every `heartbeat_interval` publishes `ServerInfo` and one `WorkerInfo` per task in
//! flight (TTL 2× the interval, as asynq), and renews the lease of every task in flight. A task
//! whose lease could not be renewed is cancelled in Python: another server may now run it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use prost::Message;

use super::inflight::CancelReason;
use super::{Component, RateLimitedLog, Shared};
use crate::message::{timestamp, ServerInfo, WorkerInfo};
use crate::rdb::Rdb;

pub(crate) struct Heartbeat {
    sh: Arc<Shared>,
    rdb: Rdb,
    errors: RateLimitedLog,
}

impl Heartbeat {
    pub fn new(sh: Arc<Shared>) -> Self {
        let rdb = sh.rdb();
        Self { sh, rdb, errors: RateLimitedLog::new(std::time::Duration::from_secs(3)) }
    }

    fn keys(&self) -> (String, String) {
        let id = &self.sh.id;
        (
            self.sh.keys.server_info(&id.host, id.pid, &id.server_id),
            self.sh.keys.workers_of(&id.host, id.pid, &id.server_id),
        )
    }

    fn renew_leases(&mut self, now: SystemTime) {
        // Tasks whose lease already ended, and the others by queue: (token, task id).
        let mut expired: Vec<(u64, String)> = Vec::new();
        let mut by_queue: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
        for (token, f) in self.sh.inflight.lock().iter() {
            let entry = (token, f.msg.id.clone());
            // A lease that ended less than the grace ago is still renewed: no recoverer has
            // taken the task yet (after a Redis outage, say), and Redis has the last word.
            if !f.still_ours(now, self.sh.cfg.lease_grace) {
                expired.push(entry);
            } else {
                by_queue.entry(f.msg.queue.clone()).or_default().push(entry);
            }
        }
        for (token, id) in expired {
            if self.sh.cancel(token, CancelReason::LeaseLost) {
                log::warn!("lease of task {id} expired; cancelling its handler");
            }
        }
        let (lease_until, lease_expiry) = self.sh.lease_until(now);
        for (q, tasks) in by_queue {
            let ids: Vec<&str> = tasks.iter().map(|(_, id)| id.as_str()).collect();
            let renewal = match self.rdb.extend_lease(&q, &ids, lease_until) {
                Ok(r) => r,
                Err(e) => {
                    self.errors.error("lease renewal failed", &e);
                    continue;
                }
            };
            self.sh.metrics.renewed(ids.len().saturating_sub(renewal.lost.len()));
            self.sh.metrics.lost(renewal.lost.len());
            let mut lost_tokens = Vec::new();
            {
                let mut table = self.sh.inflight.lock();
                for (token, id) in &tasks {
                    let Some(f) = table.get_mut(*token) else { continue };
                    if renewal.lost.contains(id) {
                        f.lost = true;
                        lost_tokens.push((*token, id));
                    } else {
                        f.lease_expiry = lease_expiry;
                    }
                }
            }
            // Logged outside the lock: logging takes the GIL.
            for id in &renewal.retaken {
                log::warn!("task {id} of queue {q} had lost its lease entry while still running here; leased it again");
            }
            for (token, id) in lost_tokens {
                if self.sh.cancel(token, CancelReason::LeaseLost) {
                    log::warn!(
                        "task {id} is no longer active here (recovered or moved elsewhere); cancelling it"
                    );
                }
            }
        }
    }

    fn write_state(&mut self, now: SystemTime) {
        let (c, me) = (&self.sh.cfg, &self.sh.id);
        // Copied under the table's lock, encoded after it: Python threads wait on that lock.
        let running: Vec<_> = self
            .sh
            .inflight
            .lock()
            .iter()
            .map(|(_, f)| {
                (
                    f.msg.id.clone(),
                    f.msg.r#type.clone(),
                    f.msg.payload.clone(),
                    f.msg.queue.clone(),
                    f.started,
                    f.deadline,
                )
            })
            .collect();
        let workers: Vec<(String, Vec<u8>)> = running
            .into_iter()
            .map(|(task_id, task_type, task_payload, queue, started, deadline)| {
                let w = WorkerInfo {
                    host: me.host.clone(),
                    pid: me.pid,
                    server_id: me.server_id.clone(),
                    task_id: task_id.clone(),
                    task_type,
                    task_payload,
                    queue,
                    start_time: Some(timestamp(started)),
                    deadline: Some(timestamp(deadline)),
                };
                (task_id, w.encode_to_vec())
            })
            .collect();
        let info = ServerInfo {
            host: me.host.clone(),
            pid: me.pid,
            server_id: me.server_id.clone(),
            concurrency: i32::try_from(c.concurrency).unwrap_or(i32::MAX),
            queues: c.queues.iter().cloned().collect(),
            strict_priority: c.strict_priority,
            status: self.sh.status.lock().as_str().to_string(),
            start_time: Some(timestamp(self.sh.started)),
            active_worker_count: i32::try_from(workers.len()).unwrap_or(i32::MAX),
        };
        let (server_key, workers_key) = self.keys();
        let ttl = self.sh.cfg.heartbeat_interval * 2;
        if let Err(e) =
            self.rdb.write_server_state(&server_key, &workers_key, info.encode_to_vec(), &workers, ttl, now)
        {
            self.errors.error("heartbeat failed", &e);
        }
    }

    fn exec(&mut self) {
        let now = self.sh.now();
        self.renew_leases(now);
        self.write_state(now);
    }
}

impl Component for Heartbeat {
    fn run(mut self) {
        loop {
            self.exec();
            if !self.sh.sleep_late(self.sh.cfg.heartbeat_interval) {
                break;
            }
        }
        // Stopped last: keep leases of tasks still being requeued, then disappear.
        let (server_key, workers_key) = self.keys();
        if let Err(e) = self.rdb.clear_server_state(&server_key, &workers_key) {
            log::warn!("could not clear server state: {e}");
        }
    }
}
