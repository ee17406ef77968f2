//! Heartbeat: every `heartbeat_interval` publishes `ServerInfo` and one `WorkerInfo` per task in
//! flight (TTL 2× the interval, as asynq), and renews the lease of every task in flight. A task
//! whose lease could not be renewed is cancelled in Python: another server may now run it.

use std::sync::Arc;
use std::time::SystemTime;

use prost::Message;

use super::{by_queue, CancelReason, Component, RateLimitedLog, Shared};
use crate::message::{timestamp, ServerInfo, WorkerInfo};
use crate::rdb::{Rdb, LEASE_DURATION};

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
        let c = &self.sh.cfg;
        (
            self.sh.keys.server_info(&c.host, c.pid, &c.server_id),
            self.sh.keys.workers_of(&c.host, c.pid, &c.server_id),
        )
    }

    fn renew_leases(&mut self, now: SystemTime) {
        let (valid, expired): (Vec<_>, Vec<_>) = {
            let inflight = self.sh.inflight.lock();
            inflight.iter().map(|(t, f)| (*t, f.clone())).partition(|(_, f)| f.lease_expiry >= now)
        };
        for (token, f) in expired {
            log::warn!("lease of task {} expired; cancelling its handler", f.msg.id);
            let _ = self.sh.cancel_tx.send((token, CancelReason::LeaseLost));
        }
        for (q, ids) in by_queue(valid.iter().map(|(_, f)| f)) {
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            match self.rdb.extend_lease(&q, &refs, now) {
                Ok(lost) => {
                    let mut lost_ids = Vec::new();
                    {
                        let mut inflight = self.sh.inflight.lock();
                        for (token, f) in valid.iter().filter(|(_, f)| f.msg.queue == q) {
                            let Some(e) = inflight.get_mut(token) else { continue };
                            if lost.contains(&f.msg.id) {
                                e.lease_expiry = now;
                                let _ = self.sh.cancel_tx.send((*token, CancelReason::LeaseLost));
                                lost_ids.push(f.msg.id.clone());
                            } else {
                                e.lease_expiry = now + LEASE_DURATION;
                            }
                        }
                    }
                    // Logged outside the lock: logging takes the GIL.
                    for id in lost_ids {
                        log::warn!("task {id} lost its lease (recovered elsewhere); cancelling it");
                    }
                }
                Err(e) => self.errors.error("lease renewal failed", &e),
            }
        }
    }

    fn write_state(&mut self, now: SystemTime) {
        let c = &self.sh.cfg;
        let workers: Vec<(String, Vec<u8>)> = self
            .sh
            .inflight
            .lock()
            .values()
            .map(|f| {
                let w = WorkerInfo {
                    host: c.host.clone(),
                    pid: c.pid,
                    server_id: c.server_id.clone(),
                    task_id: f.msg.id.clone(),
                    task_type: f.msg.r#type.clone(),
                    task_payload: f.msg.payload.clone(),
                    queue: f.msg.queue.clone(),
                    start_time: Some(timestamp(f.started)),
                    deadline: Some(timestamp(f.deadline)),
                };
                (f.msg.id.clone(), w.encode_to_vec())
            })
            .collect();
        let info = ServerInfo {
            host: c.host.clone(),
            pid: c.pid,
            server_id: c.server_id.clone(),
            concurrency: i32::try_from(c.concurrency).unwrap_or(i32::MAX),
            queues: c.queues.iter().filter(|(n, p)| !n.trim().is_empty() && *p > 0).cloned().collect(),
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
