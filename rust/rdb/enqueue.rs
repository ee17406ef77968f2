//! Producers' writes: one new task per script call, or many in one pipeline.

use std::time::SystemTime;

use redis::Value;

use super::pipeline::{call, plan_calls, spread_replies, Call};
use super::{scripts, Rdb};
use crate::clock::{unix_nanos, unix_secs};
use crate::error::{Error, Result};
use crate::message::{encode_task, TaskMessage};

/// Where a new task goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Straight to pending.
    Pending,
    /// Scheduled for the given Unix second.
    Scheduled(i64),
    /// Into the aggregation group named in the message.
    Group,
}

/// One enqueue request: the message (with `unique_key` set for unique tasks), where it goes, and
/// the lock TTL in seconds for unique tasks.
#[derive(Debug, Clone)]
pub struct EnqueueRequest {
    /// The task.
    pub msg: TaskMessage,
    /// Where it goes.
    pub placement: Placement,
    /// Unique lock TTL in whole seconds (used when `msg.unique_key` is not empty).
    pub unique_ttl: i64,
}

/// Tasks per `enqueue_batch` call.
const CHUNK: usize = 500;

fn enqueue_reply(v: Value) -> Result<()> {
    match v {
        Value::Int(1) => Ok(()),
        Value::Int(0) => Err(Error::TaskIdConflict),
        Value::Int(-1) => Err(Error::DuplicateTask),
        other => Err(Error::protocol(format!("enqueue returned {other:?}"))),
    }
}

impl Rdb {
    /// Registers queue names in `<ns>:queues` so inspectors can find them.
    pub fn register_queues(&mut self, queues: &[&str]) -> Result<()> {
        let key = self.keys.all_queues();
        self.run(|c| Ok(redis::cmd("SADD").arg(&key).arg(queues).query::<i64>(c).map(|_| ())?))
    }

    /// The script call that writes `req`.
    pub(crate) fn enqueue_invocation(&self, req: &EnqueueRequest, now: SystemTime) -> Call {
        let k = &self.keys;
        let m = &req.msg;
        let q = m.queue.as_str();
        let bytes = encode_task(m);
        let task_key = k.task(q, &m.id);
        let unique = !m.unique_key.is_empty();
        match (&req.placement, unique) {
            (Placement::Pending, false) => {
                let (s, mut inv) = call(&scripts::ENQUEUE);
                inv.key(task_key).key(k.pending(q)).arg(bytes).arg(&m.id).arg(unix_nanos(now));
                inv.arg(k.wake_channel(q));
                (s, inv)
            }
            (Placement::Pending, true) => {
                let (s, mut inv) = call(&scripts::ENQUEUE_UNIQUE);
                inv.key(&m.unique_key).key(task_key).key(k.pending(q));
                inv.arg(&m.id).arg(req.unique_ttl).arg(bytes).arg(unix_nanos(now)).arg(k.wake_channel(q));
                (s, inv)
            }
            (Placement::Scheduled(at), false) => {
                let (s, mut inv) = call(&scripts::SCHEDULE);
                inv.key(task_key).key(k.scheduled(q)).arg(bytes).arg(*at).arg(&m.id);
                inv.arg(k.wake_channel(q));
                (s, inv)
            }
            (Placement::Scheduled(at), true) => {
                let (s, mut inv) = call(&scripts::SCHEDULE_UNIQUE);
                inv.key(&m.unique_key).key(task_key).key(k.scheduled(q));
                inv.arg(&m.id).arg(req.unique_ttl).arg(*at).arg(bytes).arg(k.wake_channel(q));
                (s, inv)
            }
            (Placement::Group, false) => {
                let (s, mut inv) = call(&scripts::ADD_TO_GROUP);
                inv.key(task_key).key(k.group(q, &m.group_key)).key(k.groups(q));
                inv.arg(bytes).arg(&m.id).arg(unix_secs(now)).arg(&m.group_key);
                (s, inv)
            }
            (Placement::Group, true) => {
                let (s, mut inv) = call(&scripts::ADD_TO_GROUP_UNIQUE);
                inv.key(task_key).key(k.group(q, &m.group_key)).key(k.groups(q)).key(&m.unique_key);
                inv.arg(bytes).arg(&m.id).arg(unix_secs(now)).arg(&m.group_key).arg(req.unique_ttl);
                (s, inv)
            }
        }
    }

    /// Writes one new task.
    pub fn enqueue(&mut self, req: &EnqueueRequest, now: SystemTime) -> Result<()> {
        let (_, inv) = self.enqueue_invocation(req, now);
        let reply: Value = self.run(|c| Ok(inv.invoke(c)?))?;
        let written_on = self.generation();
        enqueue_reply(reply)?;
        self.confirm(written_on, &[req.msg.queue.as_str()], "enqueue")
    }

    /// Writes many new tasks in one pipeline (not atomic: each succeeds or fails on its own).
    /// Plain pending tasks go in batches of one script call per queue and chunk; unique,
    /// scheduled and grouped ones one call each.
    pub fn enqueue_many(&mut self, reqs: &[EnqueueRequest], now: SystemTime) -> Result<Vec<Result<()>>> {
        let plain = |i: usize| {
            let r = &reqs[i];
            (r.placement == Placement::Pending && r.msg.unique_key.is_empty()).then_some(r.msg.queue.as_str())
        };
        let keys = &self.keys;
        let (invs, owners) = plan_calls(
            reqs.len(),
            CHUNK,
            plain,
            |i| self.enqueue_invocation(&reqs[i], now),
            |q, part| {
                let (s, mut inv) = call(&scripts::ENQUEUE_BATCH);
                inv.key(keys.pending(q)).arg(unix_nanos(now)).arg(keys.wake_channel(q));
                for &i in part {
                    inv.key(keys.task(q, &reqs[i].msg.id));
                    inv.arg(&reqs[i].msg.id).arg(encode_task(&reqs[i].msg));
                }
                (s, inv)
            },
        );
        let replies = self.run_pipeline(&invs)?;
        let written_on = self.pipeline_on;
        let mut out = spread_replies(reqs.len(), &owners, replies, "enqueue", enqueue_reply, enqueue_reply);
        if self.durability.is_some() {
            let written: Vec<&str> =
                reqs.iter().zip(&out).filter(|(_, r)| r.is_ok()).map(|(r, _)| r.msg.queue.as_str()).collect();
            if let Err(e) = self.confirm(written_on, &written, "enqueue") {
                for r in out.iter_mut().filter(|r| r.is_ok()) {
                    *r = Err(e.duplicate());
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enqueue_codes_are_typed() {
        assert!(enqueue_reply(Value::Int(1)).is_ok());
        assert!(matches!(enqueue_reply(Value::Int(0)), Err(Error::TaskIdConflict)));
        assert!(matches!(enqueue_reply(Value::Int(-1)), Err(Error::DuplicateTask)));
        assert!(matches!(enqueue_reply(Value::Int(7)), Err(Error::Protocol(_))));
    }
}
