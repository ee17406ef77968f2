//! The Inspector's writes, as asynq's `inspect.go` has them: run, archive and delete tasks (one
//! or all of a state), edit a scheduled task's payload, pause, delete a queue, cancel a run.
//!
//! Every script names every key it touches in KEYS, within the queue's slot: the caller reads
//! where a task is (its state, group and unique lock) and the script moves it only if it is still
//! there, so a task that a server or another tool moved meanwhile is never moved twice. A
//! bulk operation works in batches of [`BULK_BATCH`] tasks, one script call each, so Redis never
//! blocks on one huge script, and stops after the tasks that were there when it began (a queue
//! fed faster than it drains cannot keep it running).

use std::time::SystemTime;

use redis::Value;

use super::inspect::{container, glob_escape, pending_since};
use super::{bytes_of, scripts, string_of, Rdb};
use crate::clock::unix_secs;
use crate::error::{Error, Result};
use crate::info::{TaskInfo, TaskState};
use crate::message::{decode_task, encode_task};

/// Tasks moved per script call of a bulk operation.
pub const BULK_BATCH: usize = 1000;
/// How often a single-task operation reads the task again when it moved under it.
const ATTEMPTS: usize = 3;
/// Keys deleted per `UNLINK` when a queue goes.
const UNLINK_BATCH: usize = 500;

/// What an Inspector does to tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Move to pending, to run now.
    Run,
    /// Move to the archive.
    Archive,
    /// Delete (and release its unique lock).
    Delete,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Action::Run => "run",
            Action::Archive => "archive",
            Action::Delete => "delete",
        }
    }

    /// Why a task in `state` cannot be acted on, one task at a time.
    fn refuse_one(self, state: TaskState) -> Option<&'static str> {
        match (self, state) {
            (_, TaskState::Active) => Some("it is running (cancel it first)"),
            (Action::Run, TaskState::Pending) => Some("it is already pending"),
            (Action::Archive, TaskState::Archived) => Some("it is already archived"),
            _ => None,
        }
    }

    /// The states whose tasks can be acted on all at once (asynq's `RunAll*`, `ArchiveAll*`,
    /// `DeleteAll*`).
    pub fn bulk_states(self) -> &'static [TaskState] {
        use TaskState::*;
        match self {
            Action::Run => &[Scheduled, Retry, Archived, Aggregating],
            Action::Archive => &[Pending, Scheduled, Retry, Aggregating],
            Action::Delete => &[Pending, Scheduled, Retry, Archived, Completed, Aggregating],
        }
    }
}

/// Where one task is, as read before acting on it.
struct Located {
    state: TaskState,
    group: Option<String>,
    lock: Option<String>,
}

impl Rdb {
    /// Acts on one task: [`Error::QueueNotFound`], [`Error::TaskNotFound`], or
    /// [`Error::InvalidArgument`] when its state forbids it (an active task; running a pending
    /// one; archiving an archived one).
    pub fn act_on_task(&mut self, action: Action, q: &str, id: &str, now: SystemTime) -> Result<()> {
        let mut last = None;
        for _ in 0..ATTEMPTS {
            let at = self.locate(q, id)?;
            if let Some(why) = action.refuse_one(at.state) {
                return Err(Error::invalid(format!("cannot {} task {id:?}: {why}", action.verb())));
            }
            let ids = [id.to_string()];
            let locks = [at.lock.clone()];
            if self.act(action, q, at.state, at.group.as_deref(), &ids, &locks, now)? == 1 {
                return Ok(());
            }
            // Moved between the read and the script (a forwarder, a server, another tool).
            last = Some(at.state);
        }
        if action == Action::Delete {
            // A hash that no container holds (asynq's Inspector leaves such hashes when it trims
            // an archive) is deleted as it is, with the lock it owns.
            let hash = self.keys.task(q, id).into_bytes();
            let lock: Vec<Vec<u8>> = self.locate(q, id)?.lock.into_iter().map(String::into_bytes).collect();
            if self.delete_stray(q, std::slice::from_ref(&hash), &[])? > 0 {
                self.delete_stray(q, &[], &lock)?;
                return Ok(());
            }
        }
        Err(Error::protocol(format!(
            "task {id:?} is marked {} but is not where that state keeps it",
            last.map_or("?", TaskState::as_str)
        )))
    }

    /// Acts on every task of `q` in `state` (of `group` for aggregating ones); returns how many.
    pub fn act_on_all(
        &mut self,
        action: Action,
        q: &str,
        state: TaskState,
        group: Option<&str>,
        now: SystemTime,
    ) -> Result<u64> {
        if !action.bulk_states().contains(&state) {
            let allowed: Vec<&str> = action.bulk_states().iter().map(|s| s.as_str()).collect();
            return Err(Error::invalid(format!(
                "cannot {} all {} tasks: one of {} expected",
                action.verb(),
                state.as_str(),
                allowed.join(", ")
            )));
        }
        self.check_queue(q)?;
        let k = self.keys.clone();
        let (source, is_list) = container(&k, q, state, group)?;
        let initial: i64 = self.run(|c| {
            Ok(if is_list {
                redis::cmd("LLEN").arg(&source).query(c)?
            } else {
                redis::cmd("ZCARD").arg(&source).query(c)?
            })
        })?;
        let mut seen = 0i64;
        let mut done = 0u64;
        while seen < initial {
            let n = BULK_BATCH.min(usize::try_from(initial - seen).unwrap_or(BULK_BATCH)) as isize;
            let ids: Vec<String> = self.run(|c| {
                // Oldest first: the tail of a list, the lowest scores of a zset.
                Ok(if is_list {
                    redis::cmd("LRANGE").arg(&source).arg(-n).arg(-1).query(c)?
                } else {
                    redis::cmd("ZRANGE").arg(&source).arg(0).arg(n - 1).query(c)?
                })
            })?;
            if ids.is_empty() {
                break;
            }
            let mut ids = ids;
            if is_list {
                // Oldest (the tail) first: each script's LREM from the tail finds it at once.
                ids.reverse();
            }
            seen += ids.len() as i64;
            let locks =
                if action == Action::Delete { self.locks_of(q, &ids)? } else { vec![None; ids.len()] };
            done += self.act(action, q, state, group, &ids, &locks, now)?;
        }
        Ok(done)
    }

    /// Reads where a task is.
    fn locate(&mut self, q: &str, id: &str) -> Result<Located> {
        let k = self.keys.clone();
        let r: Vec<Value> = self.run(|c| {
            Ok(redis::pipe()
                .cmd("SISMEMBER")
                .arg(k.all_queues())
                .arg(q)
                .cmd("HMGET")
                .arg(k.task(q, id))
                .arg("state")
                .arg("group")
                .arg("unique_key")
                .arg("msg")
                .query(c)?)
        })?;
        let mut r = r.into_iter();
        if !matches!(r.next(), Some(Value::Int(1))) {
            return Err(Error::QueueNotFound(q.to_string()));
        }
        let mut f = match r.next() {
            Some(Value::Array(f)) => f.into_iter(),
            _ => Vec::new().into_iter(),
        };
        let (state, group, lock, msg) = (f.next(), f.next(), f.next(), f.next());
        let state = state
            .and_then(string_of)
            .ok_or_else(|| Error::TaskNotFound { queue: q.to_string(), id: id.to_string() })?;
        let state = TaskState::parse(&state)
            .ok_or_else(|| Error::Decode(format!("task {id:?} has an unknown state {state:?}")))?;
        let msg = msg.and_then(bytes_of).and_then(|m| decode_task(&m).ok());
        let group = group
            .and_then(string_of)
            .filter(|g| !g.is_empty())
            .or_else(|| msg.as_ref().map(|m| m.group_key.clone()).filter(|g| !g.is_empty()));
        Ok(Located { state, group, lock: lock_of(lock, msg.as_ref()) })
    }

    /// The unique lock each task names (the hash's `unique_key`, else its message's).
    fn locks_of(&mut self, q: &str, ids: &[String]) -> Result<Vec<Option<String>>> {
        let k = self.keys.clone();
        let r: Vec<Value> = self.run(|c| {
            let mut pipe = redis::pipe();
            for id in ids {
                pipe.cmd("HMGET").arg(k.task(q, id)).arg("unique_key").arg("msg");
            }
            Ok(pipe.query(c)?)
        })?;
        Ok(r.into_iter()
            .map(|v| {
                let mut f = match v {
                    Value::Array(f) => f.into_iter(),
                    _ => Vec::new().into_iter(),
                };
                let (lock, msg) = (f.next(), f.next());
                lock_of(lock, msg.and_then(bytes_of).and_then(|m| decode_task(&m).ok()).as_ref())
            })
            .collect())
    }

    /// One script call acting on `ids`, which were read in `state`; returns how many it moved.
    #[allow(clippy::too_many_arguments)]
    fn act(
        &mut self,
        action: Action,
        q: &str,
        state: TaskState,
        group: Option<&str>,
        ids: &[String],
        locks: &[Option<String>],
        now: SystemTime,
    ) -> Result<u64> {
        let k = self.keys.clone();
        let (source, is_list) = container(&k, q, state, group)?;
        let group_name = if state == TaskState::Aggregating { group.unwrap_or("") } else { "" };
        let kind = if is_list { "list" } else { "zset" };
        let inv = match action {
            Action::Run => {
                let mut inv = scripts::RUN_TASKS.prepare_invoke();
                inv.key(&source).key(k.pending(q)).key(k.groups(q));
                for id in ids {
                    inv.key(k.task(q, id));
                }
                inv.arg(group_name).arg(pending_since(now)).arg(k.wake_channel(q));
                for id in ids {
                    inv.arg(id);
                }
                inv
            }
            Action::Archive => {
                let mut inv = scripts::ARCHIVE_TASKS.prepare_invoke();
                inv.key(&source).key(k.archived(q)).key(k.groups(q));
                for id in ids {
                    inv.key(k.task(q, id));
                }
                inv.arg(group_name).arg(unix_secs(now)).arg(kind);
                for id in ids {
                    inv.arg(id);
                }
                inv
            }
            Action::Delete => {
                let mut inv = scripts::DELETE_TASKS.prepare_invoke();
                inv.key(&source).key(k.groups(q));
                for id in ids {
                    inv.key(k.task(q, id));
                }
                let mut n_locks = 0usize;
                for lock in locks.iter().flatten() {
                    inv.key(lock);
                }
                inv.arg(group_name).arg(kind);
                for (id, lock) in ids.iter().zip(locks) {
                    let idx = if lock.is_some() {
                        n_locks += 1;
                        n_locks
                    } else {
                        0
                    };
                    inv.arg(id).arg(idx);
                }
                inv
            }
        };
        // Sent once: if its reply is lost the caller sees the connection error, and running it
        // again is the caller's choice (a second run finds the tasks moved and moves nothing).
        let reply: Value = self.run_once(|c| Ok(inv.invoke(c)?))?;
        let n = match reply {
            Value::Int(n) if n >= 0 => n as u64,
            other => return Err(Error::protocol(format!("{} script returned {other:?}", action.verb()))),
        };
        // Without limits (an Inspector given none) nothing is trimmed: the servers trim with
        // their own.
        if action == Action::Archive && self.archive.is_some() && n > 0 {
            let just: Vec<&str> = ids.iter().map(String::as_str).collect();
            self.trim_after_archive(q, &just, now);
        }
        Ok(n)
    }

    /// Replaces the payload of a scheduled task (asynq's `UpdateTaskPayload`); returns the task
    /// as it now is.
    pub fn update_task_payload(
        &mut self,
        q: &str,
        id: &str,
        payload: Vec<u8>,
        now: SystemTime,
    ) -> Result<TaskInfo> {
        let k = self.keys.clone();
        for _ in 0..ATTEMPTS {
            let info = self.task_info(q, id, now)?;
            if info.state != TaskState::Scheduled {
                return Err(Error::invalid(format!(
                    "cannot update task {id:?}: it is {}, and only a scheduled task's payload can change",
                    info.state.as_str()
                )));
            }
            let old: Option<Vec<u8>> =
                self.run(|c| Ok(redis::cmd("HGET").arg(k.task(q, id)).arg("msg").query(c)?))?;
            let Some(old) = old else { continue };
            let mut msg = decode_task(&old)?;
            msg.payload = payload.clone();
            let mut inv = scripts::UPDATE_PAYLOAD.prepare_invoke();
            inv.key(k.task(q, id)).arg(&old).arg(encode_task(&msg));
            let written: i64 = self.run_once(|c| Ok(inv.invoke(c)?))?;
            if written == 1 {
                return self.task_info(q, id, now);
            }
        }
        Err(Error::invalid(format!("cannot update task {id:?}: it kept changing while being updated")))
    }

    /// Pauses `q`: servers stop leasing its tasks ([`Error::InvalidArgument`] when it already is).
    pub fn pause_queue(&mut self, q: &str, now: SystemTime) -> Result<()> {
        self.check_queue(q)?;
        let key = self.keys.paused(q);
        let set: bool =
            self.run_once(|c| Ok(redis::cmd("SETNX").arg(&key).arg(unix_secs(now)).query(c)?))?;
        if set {
            Ok(())
        } else {
            Err(Error::invalid(format!("queue {q:?} is already paused")))
        }
    }

    /// Resumes `q` ([`Error::InvalidArgument`] when it is not paused).
    pub fn unpause_queue(&mut self, q: &str) -> Result<()> {
        self.check_queue(q)?;
        let key = self.keys.paused(q);
        let n: i64 = self.run_once(|c| Ok(redis::cmd("DEL").arg(&key).query(c)?))?;
        if n == 1 {
            Ok(())
        } else {
            Err(Error::invalid(format!("queue {q:?} is not paused")))
        }
    }

    /// Deletes `q` and every key of it: tasks in every state, completed ones, groups, counters,
    /// unique locks, the pause flag (asynq's `DeleteQueue` leaves most of those). Without
    /// `force`, [`Error::QueueNotEmpty`] when it holds pending, scheduled, retry, archived or
    /// aggregating tasks; never while it has active ones.
    ///
    /// The tasks and their containers go in one script, so nothing is leased or enqueued between
    /// the check and the deletion; the other keys are then found by `SCAN` (a task enqueued
    /// meanwhile is kept, with its hash and lock), and the name goes last: a deletion cut short
    /// (a dropped connection) leaves the queue listed, and running it again finishes it.
    pub fn delete_queue(&mut self, q: &str, force: bool) -> Result<()> {
        self.check_queue(q)?;
        let k = self.keys.clone();
        let mut removed = false;
        // The task hashes and locks the script asked for: named in every later call.
        let mut named: Vec<Vec<u8>> = Vec::new();
        let mut asked = 0;
        let mut changed = 0;
        while changed < ATTEMPTS && asked < 2 * ATTEMPTS {
            let (mut groups, sets): (Vec<String>, Vec<String>) = self.run(|c| {
                Ok(redis::pipe().smembers(k.groups(q)).zrange(k.aggregation_sets(q), 0, -1).query(c)?)
            })?;
            groups.sort();
            let mut inv = scripts::REMOVE_QUEUE.prepare_invoke();
            inv.key(k.pending(q))
                .key(k.active(q))
                .key(k.scheduled(q))
                .key(k.retry(q))
                .key(k.archived(q))
                .key(k.lease(q))
                .key(k.completed(q))
                .key(k.groups(q))
                .key(k.aggregation_sets(q));
            for g in &groups {
                inv.key(k.group(q, g));
            }
            for set in &sets {
                inv.key(set);
            }
            for key in &named {
                inv.key(key.as_slice());
            }
            inv.arg(if force { "1" } else { "0" }).arg(k.task_prefix(q)).arg(groups.len());
            for g in &groups {
                inv.arg(g);
            }
            inv.arg(sets.len()).arg(k.queue_prefix(q));
            let code = match self.run_once(|c| Ok(inv.invoke::<Value>(c)?))? {
                Value::Int(code) => code,
                // Keys to name: the hashes of the tasks it holds, then the locks they point to.
                Value::Array(keys) => {
                    let before = named.len();
                    named.extend(keys.into_iter().filter_map(|v| match v {
                        Value::BulkString(b) => Some(b),
                        _ => None,
                    }));
                    if named.len() == before {
                        return Err(Error::protocol("remove_queue asked for keys without naming any"));
                    }
                    asked += 1;
                    continue;
                }
                other => return Err(Error::protocol(format!("remove_queue returned {other:?}"))),
            };
            match code {
                1 => {
                    removed = true;
                    break;
                }
                -1 => {
                    let c = self.queue_infos(&[q.to_string()], false, false, SystemTime::now())?;
                    let c = c
                        .into_iter()
                        .next()
                        .unwrap_or_else(|| super::inspect::QueueInfo::empty(q.into(), SystemTime::now()));
                    return Err(Error::QueueNotEmpty(format!(
                        "queue {q:?} is not empty ({} pending, {} scheduled, {} retry, {} archived, {} aggregating): \
                         delete it with force to delete its tasks too",
                        c.pending, c.scheduled, c.retry, c.archived, c.aggregating
                    )));
                }
                -2 => {
                    return Err(Error::QueueNotEmpty(format!(
                        "queue {q:?} has active tasks: stop its servers, or wait for them to finish"
                    )))
                }
                // Its groups changed between the read and the script: read them again.
                -3 => changed += 1,
                other => return Err(Error::protocol(format!("remove_queue returned {other}"))),
            }
        }
        if !removed {
            return Err(Error::protocol(format!(
                "the tasks or groups of queue {q:?} kept changing while deleting it"
            )));
        }
        self.delete_leftovers(q)?;
        // Tasks enqueued while the leftovers went keep the queue (and its name).
        let left: Vec<i64> = self.run(|c| {
            Ok(redis::pipe()
                .llen(k.pending(q))
                .llen(k.active(q))
                .zcard(k.scheduled(q))
                .zcard(k.retry(q))
                .zcard(k.archived(q))
                .zcard(k.completed(q))
                .scard(k.groups(q))
                .query(c)?)
        })?;
        if left.iter().any(|n| *n > 0) {
            return Err(Error::QueueNotEmpty(format!(
                "tasks arrived in queue {q:?} while it was being deleted: the queue is kept with them"
            )));
        }
        let all = k.all_queues();
        self.run_once(|c| Ok(redis::cmd("SREM").arg(&all).arg(q).query::<i64>(c).map(|_| ())?))
    }

    /// After the containers went: the other keys of `q` (counters, the pause flag, periodic
    /// markers), and task hashes and unique locks that no container holds or owns.
    fn delete_leftovers(&mut self, q: &str) -> Result<()> {
        let k = self.keys.clone();
        // Keys of queues whose names extend this one's (`<q>}:...`) match its pattern too:
        // they are left alone.
        let others: Vec<Vec<u8>> = self
            .queue_names()?
            .into_iter()
            .filter(|o| o != q && o.starts_with(&format!("{q}}}:")))
            .map(|o| k.queue_prefix(&o).into_bytes())
            .collect();
        let prefix = k.queue_prefix(q).into_bytes();
        let pattern = format!("{}*", glob_escape(&k.queue_prefix(q)));
        let mut cursor: u64 = 0;
        loop {
            // Keys as bytes: one that is not UTF-8 must not stop the deletion half-way.
            // On a cluster, the SCAN goes to the node serving the queue's slot.
            let (next, found): (u64, Vec<Vec<u8>>) = self.run(|c| {
                let mut scan = redis::cmd("SCAN");
                scan.arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(1000);
                Ok(c.query_at_slot_of(&scan, &k.queue_prefix(q))?)
            })?;
            let mut plain: Vec<Vec<u8>> = Vec::new();
            let mut hashes: Vec<Vec<u8>> = Vec::new();
            let mut locks: Vec<Vec<u8>> = Vec::new();
            for key in found {
                if !key.starts_with(&prefix) || others.iter().any(|o| key.starts_with(o)) {
                    continue;
                }
                match leftover_kind(&key[prefix.len()..]) {
                    Leftover::Plain => plain.push(key),
                    Leftover::TaskHash => hashes.push(key),
                    Leftover::Lock => locks.push(key),
                    Leftover::Container | Leftover::Foreign => {}
                }
            }
            for chunk in plain.chunks(UNLINK_BATCH) {
                self.run(|c| Ok(redis::cmd("UNLINK").arg(chunk).query::<i64>(c).map(|_| ())?))?;
            }
            for chunk in hashes.chunks(UNLINK_BATCH) {
                self.delete_stray(q, chunk, &[])?;
            }
            for chunk in locks.chunks(UNLINK_BATCH) {
                self.delete_stray(q, &[], chunk)?;
            }
            cursor = next;
            if cursor == 0 {
                return Ok(());
            }
        }
    }

    /// Runs `delete_stray.lua` on task hash keys and lock keys of `q`.
    fn delete_stray(&mut self, q: &str, hashes: &[Vec<u8>], locks: &[Vec<u8>]) -> Result<i64> {
        let k = self.keys.clone();
        let tprefix = k.task_prefix(q).into_bytes();
        // Who each lock names: a lock that is not a string names nobody (and is left alone).
        let owners: Vec<Option<Vec<u8>>> = if locks.is_empty() {
            Vec::new()
        } else {
            let types: Vec<String> = self.run(|c| {
                let mut pipe = redis::pipe();
                for l in locks {
                    pipe.cmd("TYPE").arg(l.as_slice());
                }
                Ok(pipe.query(c)?)
            })?;
            let strings: Vec<&Vec<u8>> =
                locks.iter().zip(&types).filter(|(_, t)| *t == "string").map(|(l, _)| l).collect();
            let values: Vec<Option<Vec<u8>>> = if strings.is_empty() {
                Vec::new()
            } else {
                self.run(|c| {
                    let mut pipe = redis::pipe();
                    for l in &strings {
                        pipe.get(l.as_slice());
                    }
                    Ok(pipe.query(c)?)
                })?
            };
            let mut values = values.into_iter();
            types.iter().map(|t| if t == "string" { values.next().flatten() } else { None }).collect()
        };
        let mut inv = scripts::DELETE_STRAY.prepare_invoke();
        inv.key(k.pending(q))
            .key(k.active(q))
            .key(k.scheduled(q))
            .key(k.retry(q))
            .key(k.archived(q))
            .key(k.completed(q));
        for h in hashes {
            inv.key(h.as_slice());
        }
        for (l, owner) in locks.iter().zip(&owners) {
            let Some(owner) = owner else { continue };
            let mut key = tprefix.clone();
            key.extend_from_slice(owner);
            inv.key(l.as_slice()).key(key);
        }
        inv.arg(hashes.len());
        for h in hashes {
            inv.arg(&h[tprefix.len().min(h.len())..]);
        }
        self.run_once(|c| Ok(inv.invoke(c)?))
    }

    /// Asks the server running task `id` to cancel it (asynq's `CancelProcessing`: best effort,
    /// no confirmation); returns how many servers heard it.
    pub fn cancel_processing(&mut self, id: &str) -> Result<i64> {
        let channel = self.keys.cancel_channel();
        self.run_once(|c| Ok(redis::cmd("PUBLISH").arg(&channel).arg(id).query(c)?))
    }
}

/// The lock a task holds: its hash's `unique_key` field, else the one in its message.
fn lock_of(field: Option<Value>, msg: Option<&crate::message::TaskMessage>) -> Option<String> {
    field
        .and_then(string_of)
        .filter(|s| !s.is_empty())
        .or_else(|| msg.map(|m| m.unique_key.clone()).filter(|s| !s.is_empty()))
}

/// What a key of a queue is, by its rest after `<ns>:{<q>}:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leftover {
    /// A container of tasks (`remove_queue.lua` deleted them; one seen again was made since).
    Container,
    /// A task hash: deleted only if no container holds the task.
    TaskHash,
    /// A unique lock: deleted only if the task it names is gone.
    Lock,
    /// Counters, the pause flag, periodic markers: deleted.
    Plain,
    /// Not a key of this queue (a queue whose name merely starts with `<q>}:`).
    Foreign,
}

fn leftover_kind(rest: &[u8]) -> Leftover {
    const CONTAINERS: [&str; 9] = [
        "pending",
        "active",
        "lease",
        "scheduled",
        "retry",
        "archived",
        "completed",
        "groups",
        "aggregation_sets",
    ];
    const PLAIN: [&str; 3] = ["paused", "processed", "failed"];
    if CONTAINERS.iter().any(|e| e.as_bytes() == rest) || rest.starts_with(b"g:") {
        Leftover::Container
    } else if rest.starts_with(b"t:") {
        Leftover::TaskHash
    } else if rest.starts_with(b"unique:") {
        Leftover::Lock
    } else if PLAIN.iter().any(|e| e.as_bytes() == rest)
        || [&b"processed:"[..], b"failed:", b"periodic:"].iter().any(|p| rest.starts_with(p))
    {
        Leftover::Plain
    } else {
        Leftover::Foreign
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_task_refusals_follow_asynq() {
        use TaskState::*;
        for a in [Action::Run, Action::Archive, Action::Delete] {
            assert!(a.refuse_one(Active).is_some());
            assert!(a.refuse_one(Scheduled).is_none());
        }
        assert!(Action::Run.refuse_one(Pending).is_some());
        assert!(Action::Archive.refuse_one(Pending).is_none());
        assert!(Action::Archive.refuse_one(Archived).is_some());
        assert!(Action::Run.refuse_one(Archived).is_none());
        assert!(Action::Delete.refuse_one(Completed).is_none());
    }

    #[test]
    fn verbs_name_the_action() {
        assert_eq!(
            [Action::Run.verb(), Action::Archive.verb(), Action::Delete.verb()],
            ["run", "archive", "delete"]
        );
    }

    #[test]
    fn a_task_owns_its_hash_lock_else_its_message_lock() {
        let msg = crate::message::TaskMessage { unique_key: "from-msg".into(), ..Default::default() };
        let field = |s: &str| Some(Value::BulkString(s.as_bytes().to_vec()));
        assert_eq!(lock_of(field("from-hash"), Some(&msg)).as_deref(), Some("from-hash"));
        assert_eq!(lock_of(field(""), Some(&msg)).as_deref(), Some("from-msg"));
        assert_eq!(lock_of(None, Some(&msg)).as_deref(), Some("from-msg"));
        let plain = crate::message::TaskMessage::default();
        assert_eq!(lock_of(None, Some(&plain)), None);
        assert_eq!(lock_of(None, None), None);
    }

    #[test]
    fn bulk_states_are_asynqs() {
        use TaskState::*;
        assert!(!Action::Run.bulk_states().contains(&Pending));
        assert!(Action::Archive.bulk_states().contains(&Pending));
        assert!(!Action::Archive.bulk_states().contains(&Archived));
        assert!(Action::Delete.bulk_states().contains(&Completed));
        for a in [Action::Run, Action::Archive, Action::Delete] {
            assert!(!a.bulk_states().contains(&Active));
        }
    }

    #[test]
    fn leftover_keys_are_sorted_by_what_they_hold() {
        use Leftover::*;
        for (rest, kind) in [
            ("pending", Container),
            ("aggregation_sets", Container),
            ("g:grp", Container),
            ("t:abc", TaskHash),
            ("unique:t:x", Lock),
            ("processed:2026-01-01", Plain),
            ("failed", Plain),
            ("paused", Plain),
            ("periodic:e", Plain),
            ("b}:pending", Foreign),
            ("pendingx", Foreign),
            ("x", Foreign),
        ] {
            assert_eq!(leftover_kind(rest.as_bytes()), kind, "{rest}");
        }
    }
}
