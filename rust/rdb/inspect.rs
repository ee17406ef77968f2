//! Reads for tools (`ferroq doctor`, the demo, the scheduler's served-queue check): what live
//! servers serve, queue sizes, scheduler entries. Each is a constant number of round trips.

use std::collections::BTreeSet;
use std::time::SystemTime;

use prost::Message;

use super::Rdb;
use crate::clock::unix_secs;
use crate::error::Result;
use crate::message::decode_server_info;
use crate::proto::SchedulerEntry;

/// The sizes and counters of one queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueCounts {
    /// Queue name.
    pub queue: String,
    /// Tasks waiting to run.
    pub pending: i64,
    /// Tasks leased by a server.
    pub active: i64,
    /// Tasks waiting for their process-at.
    pub scheduled: i64,
    /// Failed tasks waiting for their next attempt.
    pub retry: i64,
    /// Tasks that used up their retries (or were archived).
    pub archived: i64,
    /// Succeeded tasks kept for their retention.
    pub completed: i64,
    /// Tasks processed since the counter was created (asynq's total).
    pub processed: i64,
    /// Of those, failed.
    pub failed: i64,
    /// Whether the queue is paused.
    pub paused: bool,
}

impl Rdb {
    /// The queues that live servers (heartbeat not expired) serve.
    pub fn served_queues(&mut self, now: SystemTime) -> Result<BTreeSet<String>> {
        let servers = self.keys.servers();
        let now_s = unix_secs(now);
        let blobs: Vec<Option<Vec<u8>>> = self.run(|c| {
            let keys: Vec<String> =
                redis::cmd("ZRANGEBYSCORE").arg(&servers).arg(now_s).arg("+inf").query(c)?;
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            Ok(redis::cmd("MGET").arg(&keys).query(c)?)
        })?;
        let mut out = BTreeSet::new();
        for blob in blobs.into_iter().flatten() {
            // Undecodable records are skipped, as asynq's readers do.
            if let Ok(info) = decode_server_info(&blob) {
                out.extend(info.queues.into_keys());
            }
        }
        Ok(out)
    }

    /// Every queue in `<ns>:queues` with its sizes and counters, by name, in one pipeline.
    pub fn queue_counts(&mut self) -> Result<Vec<QueueCounts>> {
        let all = self.keys.all_queues();
        let keys = self.keys.clone();
        self.run(|c| {
            let mut queues: Vec<String> = redis::cmd("SMEMBERS").arg(&all).query(c)?;
            queues.sort();
            if queues.is_empty() {
                return Ok(Vec::new());
            }
            let mut pipe = redis::pipe();
            for q in &queues {
                pipe.llen(keys.pending(q))
                    .llen(keys.active(q))
                    .zcard(keys.scheduled(q))
                    .zcard(keys.retry(q))
                    .zcard(keys.archived(q))
                    .zcard(keys.completed(q))
                    .get(keys.processed_total(q))
                    .get(keys.failed_total(q))
                    .exists(keys.paused(q));
            }
            // Counters are read as text: a key someone else overwrote must not fail the read.
            let replies: Vec<Option<String>> = pipe.query(c)?;
            let num = |v: &Option<String>| v.as_deref().and_then(|s| s.parse::<i64>().ok()).unwrap_or(0);
            Ok(queues
                .into_iter()
                .zip(replies.chunks(9))
                .map(|(queue, r)| {
                    let at = |i: usize| r.get(i).map(num).unwrap_or(0);
                    QueueCounts {
                        queue,
                        pending: at(0),
                        active: at(1),
                        scheduled: at(2),
                        retry: at(3),
                        archived: at(4),
                        completed: at(5),
                        processed: at(6),
                        failed: at(7),
                        paused: at(8) > 0,
                    }
                })
                .collect())
        })
    }

    /// Entries of live schedulers (undecodable ones skipped, as asynq's readers do).
    pub fn scheduler_entries(&mut self, now: SystemTime) -> Result<Vec<SchedulerEntry>> {
        let all = self.keys.schedulers();
        let now_s = unix_secs(now);
        let blobs: Vec<Vec<u8>> = self.run(|c| {
            let keys: Vec<String> = redis::cmd("ZRANGEBYSCORE").arg(&all).arg(now_s).arg("+inf").query(c)?;
            let mut pipe = redis::pipe();
            for k in &keys {
                pipe.lrange(k, 0, -1);
            }
            let lists: Vec<Vec<Vec<u8>>> = if keys.is_empty() { Vec::new() } else { pipe.query(c)? };
            Ok(lists.into_iter().flatten().collect())
        })?;
        Ok(blobs.iter().filter_map(|b| SchedulerEntry::decode(b.as_slice()).ok()).collect())
    }
}
