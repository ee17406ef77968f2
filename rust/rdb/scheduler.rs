//! The scheduler's writes: one firing of a periodic entry, exactly once across replicas, and the
//! entries it publishes for inspectors.

use std::time::{Duration, SystemTime};

use redis::Value;

use super::{scripts, EnqueueRequest, Rdb};
use crate::clock::unix_secs;
use crate::error::Result;

/// What happened to one periodic firing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fired {
    /// This caller enqueued it.
    Enqueued,
    /// Another replica had enqueued it already (or did so first).
    AlreadyFired,
    /// The task is unique and a duplicate holds the lock: the firing is spent without a task.
    Duplicate,
}

impl Rdb {
    /// Enqueues one firing of periodic entry `entry_id` at `fire_at` (Unix s) unless some replica
    /// already did: the entry's last-fired key (in the queue's slot) is watched, and the enqueue
    /// and the new last-fired value are written in one MULTI. Of any number of replicas racing
    /// for a firing, exactly one transaction commits. The history event (a key outside the
    /// queue's slot) is written after the commit, by the replica that committed: the
    /// transaction keeps to one Redis Cluster slot, and a crash between the two loses only the
    /// event.
    pub fn periodic_enqueue(
        &mut self,
        req: &EnqueueRequest,
        entry_id: &str,
        fire_at: i64,
        last_ttl: u64,
        history_event: Option<Vec<u8>>,
        now: SystemTime,
    ) -> Result<Fired> {
        let last_key = self.keys.periodic_last(&req.msg.queue, entry_id);
        let history_key = self.keys.scheduler_history(entry_id);
        let (script, inv) = self.enqueue_invocation(req, now);
        let now_s = unix_secs(now);
        let fired = self.run(|c| {
            // EVALSHA inside MULTI cannot fall back to EVAL: load first. On a cluster, on the
            // node of the transaction's slot only (redis-rs would send both `SCRIPT LOAD` and
            // `UNWATCH` to every node, failing while any is down).
            match scripts::load_cmd(script) {
                Some(load) => c.query_at_slot_of::<()>(&load, &last_key)?,
                None => {
                    script.load(c)?;
                }
            }
            redis::cmd("WATCH").arg(&last_key).query::<()>(c)?;
            let last: Option<i64> = redis::cmd("GET").arg(&last_key).query(c)?;
            if last.is_some_and(|l| l >= fire_at) {
                c.query_at_slot_of::<()>(&redis::cmd("UNWATCH"), &last_key)?;
                return Ok(Fired::AlreadyFired);
            }
            let mut pipe = redis::pipe();
            pipe.atomic().invoke_script(&inv);
            pipe.cmd("SET").arg(&last_key).arg(fire_at).arg("EX").arg(last_ttl.max(1)).ignore();
            let committed: Option<(i64,)> = pipe.query(c)?;
            Ok(match committed {
                None => Fired::AlreadyFired,
                Some((1,)) => Fired::Enqueued,
                Some((-1,)) => Fired::Duplicate,
                // 0: a task with this ID exists; IDs are fresh UUIDs, so another replica's.
                Some(_) => Fired::AlreadyFired,
            })
        })?;
        if fired == Fired::Enqueued {
            let written_on = self.generation();
            self.confirm(written_on, &[req.msg.queue.as_str()], "periodic enqueue")?;
        }
        if let (Fired::Enqueued, Some(ev)) = (fired, &history_event) {
            // As asynq's recordSchedulerEnqueueEvent: at most 1000 events per entry. Losing it
            // (Redis gone since the commit) must not make the firing look failed.
            let recorded = self.run(|c| {
                redis::pipe()
                    .cmd("ZREMRANGEBYRANK")
                    .arg(&history_key)
                    .arg(0)
                    .arg(-1000)
                    .ignore()
                    .cmd("ZADD")
                    .arg(&history_key)
                    .arg(now_s)
                    .arg(ev.as_slice())
                    .ignore()
                    .query::<()>(c)?;
                Ok(())
            });
            if let Err(e) = recorded {
                log::warn!("periodic entry {entry_id}: the enqueue event was not recorded: {e}");
            }
        }
        Ok(fired)
    }

    /// The last firing (Unix s) of a periodic entry that any replica enqueued.
    pub fn periodic_last(&mut self, queue: &str, entry_id: &str) -> Result<Option<i64>> {
        let key = self.keys.periodic_last(queue, entry_id);
        self.run(|c| Ok(redis::cmd("GET").arg(&key).query::<Option<i64>>(c)?))
    }

    /// Publishes a scheduler's entries with a TTL.
    pub fn write_scheduler_entries(
        &mut self,
        scheduler_id: &str,
        entries: &[Vec<u8>],
        ttl: Duration,
        now: SystemTime,
    ) -> Result<()> {
        let key = self.keys.scheduler_entries(scheduler_id);
        let all = self.keys.schedulers();
        let expiry = unix_secs(now) + ttl.as_secs() as i64;
        let mut inv = scripts::WRITE_SCHEDULER_ENTRIES.prepare_invoke();
        inv.key(&key).arg(ttl.as_secs().max(1));
        for e in entries {
            inv.arg(e.as_slice());
        }
        self.run(|c| {
            redis::cmd("ZADD").arg(&all).arg(expiry).arg(&key).query::<()>(c)?;
            inv.invoke::<Value>(c)?;
            Ok(())
        })
    }

    /// Removes a scheduler's published entries.
    pub fn clear_scheduler_entries(&mut self, scheduler_id: &str) -> Result<()> {
        let key = self.keys.scheduler_entries(scheduler_id);
        let all = self.keys.schedulers();
        self.run(|c| {
            redis::pipe().zrem(&all, &key).del(&key).query::<()>(c)?;
            Ok(())
        })
    }
}
