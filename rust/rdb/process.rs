//! The server's side: leasing tasks, writing their outcomes, renewing leases, and the writes of
//! the background components (forwarder, recoverer, janitor, heartbeat).

use std::time::{Duration, SystemTime};

use redis::Value;

use super::pipeline::{call, plan_calls, spread_replies, Call};
use super::{bytes_of, ArchiveLimits, FINISH_BATCH, FORWARD_BATCH, STATS_TTL};
use super::{outcome_code, pairs, scripts, Rdb};
use crate::clock::{unix_nanos, unix_secs, utc_date};
use crate::error::{Error, Result};
use crate::message::{encode_task, TaskMessage};

/// One dequeued task as Redis holds it: its queue, id and raw `msg` (None when the hash had no
/// `msg`). Nothing is decoded yet: the server checks it before running anything.
#[derive(Debug, Clone)]
pub struct Dequeued {
    /// Queue name.
    pub queue: String,
    /// Task ID.
    pub id: String,
    /// The raw `msg` field.
    pub msg: Option<Vec<u8>>,
}

/// What one dequeue call returned: the tasks leased (and ghost ids dropped, with no message), and
/// the queues it skipped because one of their keys has the wrong type.
#[derive(Debug, Default, Clone)]
pub struct DequeueReply {
    /// Leased tasks; an item without `msg` is a ghost id the script already dropped.
    pub tasks: Vec<Dequeued>,
    /// Declared-keys mode: no task was leased because the last call found only tasks it was
    /// not told of (other servers took the ones it named); it has learnt their ids, so tasks
    /// are waiting and the caller should not sleep.
    pub learnt: bool,
    /// Broken queues: name and the error Redis gave.
    pub broken: Vec<(String, String)>,
    /// On a cluster, queues whose node failed this round's call (down, loading, out of
    /// memory...), with the error; the other queues were still tried.
    pub unreachable: Vec<(String, String)>,
    /// On a cluster, the queues whose node answered this round (with tasks or without).
    pub reached: Vec<String>,
}

/// What one lease renewal found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Renewal {
    /// Tasks no longer active here (another server or a tool moved them): stop working on them.
    pub lost: Vec<String>,
    /// Tasks whose lease entry alone had vanished: still active and nobody else's, leased again.
    pub retaken: Vec<String>,
}

/// What one recoverer scan of a queue found.
#[derive(Debug, Default, Clone)]
pub struct Scan {
    /// Active ids that no lease covered, given a lease that ends now.
    pub adopted: usize,
    /// Expired entries dropped: ghosts (nothing to run) and strays (the task is elsewhere).
    pub dropped: usize,
    /// Tasks whose lease ended at or before the cutoff: to recover.
    pub expired: Vec<Dequeued>,
}

/// How a leased task ends, as written to Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// Success: deleted, or kept as completed (with `result`, when given) when the message has
    /// retention.
    Done {
        /// The result to store with the completed task (`None`: keep what the handler wrote).
        result: Option<Vec<u8>>,
    },
    /// `RevokeTask`: deleted (even with retention), counted as processed, lock released.
    Revoke,
    /// Back to pending at the head of the line (shutdown).
    Requeue,
    /// To the retry zset.
    Retry {
        /// When to run again, Unix seconds.
        retry_at: i64,
        /// The error text.
        error: String,
        /// Whether it counts as a failure (increments `retried` and the failed counters).
        is_failure: bool,
    },
    /// To the archive.
    Archive {
        /// The error text.
        error: String,
        /// The handler's exception (type, message, traceback) as JSON, kept in the hash.
        detail: Option<Vec<u8>>,
    },
}

/// What an archive keeps beside the message: why it could not be decoded, or the handler's
/// exception.
#[derive(Debug, Clone, Copy, Default)]
struct Archived<'a> {
    decode_error: Option<&'a str>,
    detail: Option<&'a [u8]>,
}

/// What one forwarding pass over a queue did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Forwarded {
    /// Tasks moved to pending (or into their group).
    pub moved: usize,
    /// When the earliest task still waiting is due, in Unix seconds.
    pub next_due: Option<i64>,
}

/// Declared-keys mode: how many times the tail a dequeue can take (`max`) each call reads
/// ahead, so that a few servers reading the same tail still each find tasks they named.
const READ_AHEAD_FACTOR: usize = 2;
/// Declared-keys mode: the fewest ids read ahead, so that a call with one free slot does not
/// leave the next, with many, only one or two tasks it may take.
const READ_AHEAD_MIN: usize = 64;
/// Declared-keys mode: calls one dequeue makes more while each finds only tasks it was not
/// told of (other servers took the ones it named).
const DECLARED_RETRIES: usize = 3;

/// Oldest archived ids a trim reads with its counts, before it knows how many must go, is
/// twice this (or twice the tasks just archived, if fewer).
const TRIM_AHEAD: usize = 16;
/// Most archived tasks one trim_archive call deletes (and names in KEYS).
const TRIM_BATCH: usize = 1000;
/// Most trim_archive calls one trim makes: what is left waits for the next archive.
const TRIM_ROUNDS: usize = 100;

/// The first whole second at which a zset score (process-at, Unix seconds; asynq writes
/// integers, anyone may write a float) is due, as the forward script compares `score <= now`
/// with `now` in whole seconds. `None` for a score that is not a finite number.
pub(crate) fn due_secs(score: &str) -> Option<i64> {
    let s: f64 = score.trim().parse().ok()?;
    // `as` saturates out-of-range floats, which is what a far-future score should mean.
    s.is_finite().then(|| s.ceil() as i64)
}

impl Rdb {
    /// Leases up to `max` tasks, until Unix second `lease_until`, from the first queue in `order`
    /// that has any; paused and broken queues are skipped by the script.
    pub fn dequeue(&mut self, order: &[&str], max: usize, lease_until: i64) -> Result<DequeueReply> {
        if order.is_empty() {
            return Ok(DequeueReply::default());
        }
        if (self.cluster || self.declare_keys) && order.len() > 1 {
            // One script call per queue, in order: a call's keys must share one slot (a proxy
            // in front of a cluster, where declared-keys mode is for, asks that too). A queue
            // whose node fails (down, still loading its data, out of memory) must not stop the
            // queues on the other nodes: its error is reported with the queue, and the next
            // queue is tried. Only when no queue's node answered is the round an error.
            let mut out = DequeueReply::default();
            let mut first_error = None;
            for q in order {
                match self.dequeue(std::slice::from_ref(q), max, lease_until) {
                    Ok(mut one) => {
                        out.reached.push(q.to_string());
                        out.broken.append(&mut one.broken);
                        if !one.tasks.is_empty() {
                            out.tasks = one.tasks;
                            return Ok(out);
                        }
                        // Declared-keys mode: tasks wait at this queue's tail (others took the
                        // ones it named); a lower queue is not served before them.
                        if one.learnt {
                            out.learnt = true;
                            return Ok(out);
                        }
                    }
                    Err(e) => {
                        out.unreachable.push((q.to_string(), e.to_string()));
                        first_error.get_or_insert(e);
                    }
                }
            }
            return match first_error {
                Some(e) if out.reached.is_empty() => Err(e),
                _ => Ok(out),
            };
        }
        let mut out = self.dequeue_once(order, max, lease_until)?;
        // Declared-keys mode: a call that found only tasks it was not told of has just learnt
        // their ids; the next call names them. Each call checks the same queues, so the last
        // one's broken list is the round's.
        for _ in 0..DECLARED_RETRIES {
            if !out.learnt {
                break;
            }
            out = self.dequeue_once(order, max, lease_until)?;
        }
        Ok(out)
    }

    /// One dequeue.lua call, or dequeue_declared.lua's in declared-keys mode (see
    /// [`Rdb::dequeue`]).
    fn dequeue_once(&mut self, order: &[&str], max: usize, lease_until: i64) -> Result<DequeueReply> {
        let max = max.max(1);
        let script = if self.declare_keys { &scripts::DEQUEUE_DECLARED } else { &scripts::DEQUEUE };
        let mut inv = script.prepare_invoke();
        for q in order {
            inv.key(self.keys.pending(q))
                .key(self.keys.paused(q))
                .key(self.keys.active(q))
                .key(self.keys.lease(q));
        }
        // Declared-keys mode: how many ids at the tail of a queue the reply carries.
        let read_ahead = self.declare_keys.then(|| max.saturating_mul(READ_AHEAD_FACTOR).max(READ_AHEAD_MIN));
        if let Some(read_ahead) = read_ahead {
            for q in order {
                let prefix = self.keys.task_prefix(q);
                let ids = self.ahead.get(*q).map_or(&[][..], Vec::as_slice);
                // The tail end of what was read: the next to pop are last.
                for id in &ids[ids.len().saturating_sub(read_ahead)..] {
                    inv.key([prefix.as_bytes(), id].concat());
                }
            }
        }
        inv.arg(lease_until).arg(max);
        if let Some(read_ahead) = read_ahead {
            inv.arg(read_ahead);
        }
        for q in order {
            inv.arg(self.keys.task_prefix(q));
        }
        // Never retried: if the reply was lost after the script ran, a retry would lease a second
        // batch while the first waits in `active` for the recoverer.
        let reply: Value = self.run_once(|c| Ok(inv.invoke(c)?))?;
        let written_on = self.generation();
        let (mut out, ahead, served) = parse_dequeue(reply, order)?;
        if read_ahead.is_some() {
            out.learnt = !served && ahead.is_some();
            // Every queue before the one the script stopped at was paused, empty or broken:
            // what was read of it is stale.
            let stop = ahead.as_ref().and_then(|(q, _)| order.iter().position(|o| o == q));
            for q in &order[..stop.unwrap_or(order.len())] {
                self.ahead.remove(*q);
            }
            if let Some((q, ids)) = ahead {
                self.ahead.insert(q, ids);
            }
        }
        // Durable mode: the lease is waited for, but an unconfirmed one still runs its tasks
        // (logged): they are leased on the master, and dropping them here would only leave
        // them to the recoverer, costing each a retry. Should the master fail before a replica
        // has the lease, the tasks are pending again there and run once more (at least once).
        if let Some(t) = out.tasks.first() {
            let q = t.queue.clone();
            if let Err(e) = self.confirm(written_on, &[q.as_str()], "lease") {
                log::warn!("running {} leased task(s) of queue {q} unconfirmed: {e}", out.tasks.len());
            }
        }
        Ok(out)
    }

    /// The script call that ends a leased task. `msg` is the message as dequeued.
    pub fn finish_invocation(&self, msg: &TaskMessage, finish: &Finish, now: SystemTime) -> Call {
        self.finish_invocation_until(msg, finish, now, i64::MAX)
    }

    /// As [`Rdb::finish_invocation`]; a retry or an archive happens only while the task's lease
    /// (its score) is at most `lease_cutoff`, so a recovery never takes over a lease renewed
    /// since it was listed.
    fn finish_invocation_until(
        &self,
        msg: &TaskMessage,
        finish: &Finish,
        now: SystemTime,
        lease_cutoff: i64,
    ) -> Call {
        let k = &self.keys;
        let q = msg.queue.as_str();
        let now_s = unix_secs(now);
        let date = utc_date(now);
        let stats_exp = now_s + STATS_TTL.as_secs() as i64;
        match finish {
            Finish::Done { result } if msg.retention > 0 => {
                let mut done = msg.clone();
                done.completed_at = now_s;
                let (s, mut inv) = call(&scripts::MARK_AS_COMPLETE);
                inv.key(k.active(q))
                    .key(k.lease(q))
                    .key(k.completed(q))
                    .key(k.task(q, &msg.id))
                    .key(k.processed(q, &date))
                    .key(k.processed_total(q));
                if !msg.unique_key.is_empty() {
                    inv.key(&msg.unique_key);
                }
                inv.arg(&msg.id)
                    .arg(stats_exp)
                    .arg(now_s.saturating_add(msg.retention))
                    .arg(encode_task(&done))
                    .arg(i64::MAX)
                    .arg(k.done_channel(q, &msg.id));
                if let Some(r) = result {
                    inv.arg(r.as_slice());
                }
                (s, inv)
            }
            Finish::Done { .. } | Finish::Revoke => {
                let (s, mut inv) = call(&scripts::DONE);
                inv.key(k.active(q))
                    .key(k.lease(q))
                    .key(k.task(q, &msg.id))
                    .key(k.processed(q, &date))
                    .key(k.processed_total(q));
                if !msg.unique_key.is_empty() {
                    inv.key(&msg.unique_key);
                }
                inv.arg(&msg.id).arg(stats_exp).arg(i64::MAX);
                if msg.retention > 0 {
                    // Only a revoke ends a task with retention here: its waiters learn it is gone.
                    inv.arg(k.done_channel(q, &msg.id));
                }
                (s, inv)
            }
            Finish::Requeue => {
                let (s, mut inv) = call(&scripts::REQUEUE);
                inv.key(k.active(q)).key(k.lease(q)).key(k.pending(q)).key(k.task(q, &msg.id));
                inv.arg(&msg.id);
                (s, inv)
            }
            Finish::Retry { retry_at, error, is_failure } => {
                let mut m = msg.clone();
                if *is_failure {
                    m.retried = m.retried.saturating_add(1);
                }
                m.error_msg = error.clone();
                m.last_failed_at = now_s;
                let (s, mut inv) = call(&scripts::RETRY);
                inv.key(k.task(q, &msg.id))
                    .key(k.active(q))
                    .key(k.lease(q))
                    .key(k.retry(q))
                    .key(k.processed(q, &date))
                    .key(k.failed(q, &date))
                    .key(k.processed_total(q))
                    .key(k.failed_total(q));
                inv.arg(&msg.id)
                    .arg(encode_task(&m))
                    .arg(*retry_at)
                    .arg(stats_exp)
                    .arg(i64::from(*is_failure))
                    .arg(i64::MAX)
                    .arg(lease_cutoff);
                (s, inv)
            }
            Finish::Archive { error, detail } => {
                let mut m = msg.clone();
                m.error_msg = error.clone();
                m.last_failed_at = now_s;
                let why = Archived { decode_error: None, detail: detail.as_deref() };
                self.archive_invocation(q, &msg.id, encode_task(&m), why, now, lease_cutoff)
            }
        }
    }

    fn archive_invocation(
        &self,
        q: &str,
        id: &str,
        msg_bytes: Vec<u8>,
        why: Archived<'_>,
        now: SystemTime,
        lease_cutoff: i64,
    ) -> Call {
        let k = &self.keys;
        let now_s = unix_secs(now);
        let date = utc_date(now);
        let (s, mut inv) = call(&scripts::ARCHIVE);
        inv.key(k.task(q, id))
            .key(k.active(q))
            .key(k.lease(q))
            .key(k.archived(q))
            .key(k.processed(q, &date))
            .key(k.failed(q, &date))
            .key(k.processed_total(q))
            .key(k.failed_total(q));
        inv.arg(id)
            .arg(msg_bytes)
            .arg(now_s)
            .arg(now_s + STATS_TTL.as_secs() as i64)
            .arg(i64::MAX)
            .arg(lease_cutoff)
            .arg(why.decode_error.unwrap_or(""))
            .arg(k.done_channel(q, id));
        if let Some(d) = why.detail {
            inv.arg(d);
        }
        (s, inv)
    }

    /// Ends one leased task; [`Error::NotFound`] when it is no longer active here.
    pub fn finish(&mut self, msg: &TaskMessage, finish: &Finish, now: SystemTime) -> Result<()> {
        let (_, inv) = self.finish_invocation(msg, finish, now);
        let reply: Value = self.run(|c| Ok(inv.invoke(c)?))?;
        let written_on = self.generation();
        outcome_code(reply, "finish")?;
        self.confirm(written_on, &[msg.queue.as_str()], "outcome")?;
        if matches!(finish, Finish::Archive { .. }) {
            self.trim_after_archive(&msg.queue, &[&msg.id], now);
        }
        Ok(())
    }

    /// Recovers a task whose lease ended at or before `cutoff` (Unix seconds): as
    /// [`Rdb::finish`], and [`Error::NotFound`] also when its lease was renewed meanwhile.
    pub fn recover(
        &mut self,
        msg: &TaskMessage,
        finish: &Finish,
        cutoff: i64,
        now: SystemTime,
    ) -> Result<()> {
        let (_, inv) = self.finish_invocation_until(msg, finish, now, cutoff);
        let reply: Value = self.run(|c| Ok(inv.invoke(c)?))?;
        outcome_code(reply, "recover")?;
        if matches!(finish, Finish::Archive { .. }) {
            self.trim_after_archive(&msg.queue, &[&msg.id], now);
        }
        Ok(())
    }

    /// Ends many leased tasks in one pipeline; one result per item.
    pub fn finish_many(
        &mut self,
        items: &[(&TaskMessage, &Finish)],
        now: SystemTime,
    ) -> Result<Vec<Result<()>>> {
        // Plain successes of one queue go in one done_batch call; everything else one call each.
        let batchable = |i: usize| {
            let (m, f) = items[i];
            // With retention a task's end is announced to its waiters, which done_batch does not.
            let plain = matches!(f, Finish::Revoke | Finish::Done { .. }) && m.retention <= 0;
            plain.then_some(m.queue.as_str())
        };
        let stats_exp = unix_secs(now) + STATS_TTL.as_secs() as i64;
        let date = utc_date(now);
        let (invs, owners) = plan_calls(
            items.len(),
            FINISH_BATCH,
            batchable,
            |i| self.finish_invocation(items[i].0, items[i].1, now),
            |q, part| {
                let k = &self.keys;
                let (s, mut inv) = call(&scripts::DONE_BATCH);
                inv.key(k.active(q)).key(k.lease(q)).key(k.processed(q, &date)).key(k.processed_total(q));
                inv.arg(stats_exp);
                let mut locks = 0;
                for &i in part {
                    let m = items[i].0;
                    inv.key(k.task(q, &m.id)).arg(&m.id);
                    if m.unique_key.is_empty() {
                        inv.arg(0);
                    } else {
                        locks += 1;
                        inv.arg(locks);
                    }
                }
                for &i in part {
                    let lock = &items[i].0.unique_key;
                    if !lock.is_empty() {
                        inv.key(lock);
                    }
                }
                (s, inv)
            },
        );
        let replies = self.run_pipeline(&invs)?;
        let written_on = self.pipeline_on;
        let code = |v: Value| outcome_code(v, "finish");
        let mut out = spread_replies(items.len(), &owners, replies, "finish", code, code);
        // Durable mode: unconfirmed outcomes are failed writes, which the syncer writes again
        // (a failover that lost one finds the task still active on the new master).
        if self.durability.is_some() {
            let written: Vec<&str> = items
                .iter()
                .zip(&out)
                .filter(|(_, r)| r.is_ok())
                .map(|((m, _), _)| m.queue.as_str())
                .collect();
            if let Err(e) = self.confirm(written_on, &written, "outcome") {
                for r in out.iter_mut().filter(|r| r.is_ok()) {
                    *r = Err(e.duplicate());
                }
            }
        }
        let mut archived: Vec<(&str, Vec<&str>)> = Vec::new();
        for ((m, f), r) in items.iter().zip(&out) {
            if matches!(f, Finish::Archive { .. }) && r.is_ok() {
                match archived.iter_mut().find(|(q, _)| *q == m.queue) {
                    Some((_, ids)) => ids.push(&m.id),
                    None => archived.push((&m.queue, vec![&m.id])),
                }
            }
        }
        for (q, ids) in archived {
            self.trim_after_archive(q, &ids, now);
        }
        Ok(out)
    }

    /// Archives an active task whose message cannot be decoded, keeping its raw bytes and the
    /// reason in the hash field `error`, while its lease is at most `lease_cutoff`.
    pub fn archive_malformed(
        &mut self,
        q: &str,
        id: &str,
        raw: Vec<u8>,
        reason: &str,
        now: SystemTime,
        lease_cutoff: i64,
    ) -> Result<()> {
        let why = Archived { decode_error: Some(reason), detail: None };
        let (_, inv) = self.archive_invocation(q, id, raw, why, now, lease_cutoff);
        let reply: Value = self.run(|c| Ok(inv.invoke(c)?))?;
        outcome_code(reply, "archive")?;
        self.trim_after_archive(q, &[id], now);
        Ok(())
    }

    /// The trim after `ids` of `q` were archived, with this `Rdb`'s limits (a server's are
    /// asynq's unless configured). The archive is already written: a trim that fails is logged,
    /// and the next archive's trim deletes what this one left.
    pub(super) fn trim_after_archive(&mut self, q: &str, ids: &[&str], now: SystemTime) {
        let limits = self.archive.unwrap_or_default();
        if let Err(e) = self.trim_archive(q, limits, ids, now) {
            log::warn!("could not trim the archive of queue {q:?} to its limits: {e}");
        }
    }

    /// Deletes the archived tasks of `q` past `limits` (older than the age, then the oldest
    /// beyond the size), with their hashes; `just_archived` are trimmed by size only when
    /// nothing older is left. Returns how many were deleted.
    ///
    /// The oldest entries are read first, so that the script names every hash it deletes.
    pub fn trim_archive(
        &mut self,
        q: &str,
        limits: ArchiveLimits,
        just_archived: &[&str],
        now: SystemTime,
    ) -> Result<usize> {
        let archived = self.keys.archived(q);
        let age = i64::try_from(limits.max_age.as_secs()).unwrap_or(i64::MAX);
        let cutoff = unix_secs(now).saturating_sub(age);
        let mut deleted = 0;
        // Bounded: each round deletes at least one task or stops, and a round names at most
        // TRIM_BATCH of them.
        for _ in 0..TRIM_ROUNDS {
            // How many of the oldest must go, with the few a trim at the cap needs (as many
            // again as were just archived: those are kept, the older go), so that the usual
            // trim reads once.
            let ahead = just_archived.len().min(TRIM_AHEAD) * 2;
            let (card, old, mut ids): (i64, i64, Vec<String>) = self.run(|c| {
                Ok(redis::pipe()
                    .zcard(&archived)
                    .zcount(&archived, "-inf", cutoff)
                    .zrange(&archived, 0, isize::try_from(ahead).unwrap_or(isize::MAX) - 1)
                    .query(c)?)
            })?;
            let over = (card - limits.max_size).max(old).max(0);
            if over == 0 {
                break;
            }
            let want = usize::try_from(over)
                .unwrap_or(usize::MAX)
                .saturating_add(just_archived.len())
                .min(TRIM_BATCH);
            if want > ids.len() {
                let last = isize::try_from(want).unwrap_or(isize::MAX) - 1;
                ids = self.run(|c| Ok(redis::cmd("ZRANGE").arg(&archived).arg(0).arg(last).query(c)?))?;
            }
            let mut inv = scripts::TRIM_ARCHIVE.prepare_invoke();
            inv.key(&archived).arg(cutoff).arg(limits.max_size).arg(self.keys.task_prefix(q));
            for id in &ids {
                inv.key(self.keys.task(q, id));
            }
            for id in just_archived {
                inv.arg(*id);
            }
            let (n, short): (usize, i64) = self.run(|c| Ok(inv.invoke(c)?))?;
            deleted += n;
            if short == 0 || n == 0 {
                break;
            }
        }
        Ok(deleted)
    }

    /// Renews, until Unix second `lease_until`, the leases of `ids` in queue `q`.
    pub fn extend_lease(&mut self, q: &str, ids: &[&str], lease_until: i64) -> Result<Renewal> {
        if ids.is_empty() {
            return Ok(Renewal::default());
        }
        let mut inv = scripts::EXTEND_LEASE.prepare_invoke();
        inv.key(self.keys.lease(q)).key(self.keys.active(q)).arg(lease_until).arg(ids);
        let (lost, retaken): (Vec<String>, Vec<String>) = self.run(|c| Ok(inv.invoke(c)?))?;
        Ok(Renewal { lost, retaken })
    }

    /// Stores a handler's result in the task hash.
    pub fn write_result(&mut self, q: &str, id: &str, data: &[u8]) -> Result<usize> {
        self.write_field(q, id, "result", data)
    }

    /// Stores a running task's progress report in the task hash.
    pub fn write_progress(&mut self, q: &str, id: &str, data: &[u8]) -> Result<usize> {
        self.write_field(q, id, "progress", data)
    }

    /// Writes `field` of the task hash; [`Error::TaskNotFound`] when the hash is gone.
    fn write_field(&mut self, q: &str, id: &str, field: &str, data: &[u8]) -> Result<usize> {
        let mut inv = scripts::WRITE_RESULT.prepare_invoke();
        inv.key(self.keys.task(q, id)).arg(data).arg(field);
        let n: i64 = self.run(|c| Ok(inv.invoke::<i64>(c)?))?;
        usize::try_from(n).map_err(|_| Error::TaskNotFound { queue: q.to_string(), id: id.to_string() })
    }

    /// Moves due scheduled and retry tasks of `q` to pending; returns how many moved and when
    /// the earliest task left in either set is due (Unix seconds), if any is left.
    pub fn forward_if_ready(&mut self, q: &str, now: SystemTime) -> Result<Forwarded> {
        let mut out = Forwarded::default();
        let now_s = unix_secs(now);
        for src in [self.keys.scheduled(q), self.keys.retry(q)] {
            loop {
                // The due IDs are read first, so that the script names every task hash in KEYS;
                // with the earliest entry, which is all a pass with nothing due needs.
                let (ids, head): (Vec<String>, Vec<String>) = self.run(|c| {
                    Ok(redis::pipe()
                        .cmd("ZRANGEBYSCORE")
                        .arg(&src)
                        .arg("-inf")
                        .arg(now_s)
                        .arg("LIMIT")
                        .arg(0)
                        .arg(FORWARD_BATCH)
                        .cmd("ZRANGE")
                        .arg(&src)
                        .arg(0)
                        .arg(0)
                        .arg("WITHSCORES")
                        .query(c)?)
                })?;
                let next = if ids.is_empty() {
                    head.into_iter().nth(1)
                } else {
                    let (mut handled, mut next, groups) = self.forward_ids(q, &src, &ids, &[], now)?;
                    if !groups.is_empty() {
                        // Grouped tasks wait for a second call that names their group zsets.
                        let again = self.forward_ids(q, &src, &ids, &groups, now)?;
                        handled += again.0;
                        next = again.1;
                    }
                    out.moved += handled;
                    // A full batch means more may be due; none handled means the rest changed
                    // under us (a group renamed twice in a row) and waits for the next pass.
                    if ids.len() == FORWARD_BATCH && handled > 0 {
                        continue;
                    }
                    next
                };
                if let Some(due) = next.as_deref().and_then(due_secs) {
                    out.next_due = Some(out.next_due.map_or(due, |d: i64| d.min(due)));
                }
                break;
            }
        }
        Ok(out)
    }

    /// One forward.lua call over `ids`, naming the zsets of `groups`: how many it handled, the
    /// earliest score left in `src`, and the groups it still needs named. Tasks put back into
    /// their group while the queue's groups key holds another type are logged: asynq's
    /// aggregator, which looks for groups there, will not find theirs.
    fn forward_ids(
        &mut self,
        q: &str,
        src: &str,
        ids: &[String],
        groups: &[Vec<u8>],
        now: SystemTime,
    ) -> Result<(usize, Option<String>, Vec<Vec<u8>>)> {
        let prefix = self.keys.group_prefix(q);
        let mut inv = scripts::FORWARD.prepare_invoke();
        inv.key(src).key(self.keys.pending(q)).key(self.keys.groups(q));
        inv.arg(unix_secs(now)).arg(unix_nanos(now)).arg(&prefix);
        for id in ids {
            inv.key(self.keys.task(q, id)).arg(id);
        }
        for g in groups {
            inv.key([prefix.as_bytes(), g].concat());
        }
        let reply: Value = self.run(|c| Ok(inv.invoke(c)?))?;
        let Value::Array(items) = reply else {
            return Err(Error::protocol("forward: expected an array"));
        };
        let mut items = items.into_iter();
        let handled = match items.next() {
            Some(Value::Int(n)) => usize::try_from(n).unwrap_or(0),
            _ => return Err(Error::protocol("forward: expected a count")),
        };
        let next = match items.next() {
            Some(Value::BulkString(b)) => Some(String::from_utf8_lossy(&b).into_owned()),
            _ => None,
        };
        if let Some(Value::Int(n)) = items.next() {
            if n > 0 {
                log::warn!(
                    "forwarded {n} task(s) of queue {q} into their groups, but adding the groups to {} \
                     failed (does it hold another type?): an aggregator looking for groups there will \
                     not find them",
                    self.keys.groups(q)
                );
            }
        } else {
            return Err(Error::protocol("forward: expected a count of tasks whose group was not listed"));
        }
        let missing = items
            .filter_map(|v| match v {
                Value::BulkString(b) => Some(b),
                _ => None,
            })
            .collect();
        Ok((handled, next, missing))
    }

    /// Active tasks of `q` whose lease ended at or before `cutoff` (Unix seconds), after giving
    /// a lease until `adopt_until` to every active id that had none and dropping expired entries
    /// that cannot run.
    pub fn list_lease_expired(&mut self, q: &str, cutoff: i64, adopt_until: i64) -> Result<Scan> {
        // The expired IDs are read first, so that the script names every task hash in KEYS.
        let lease = self.keys.lease(q);
        let ids: Vec<String> =
            self.run(|c| Ok(redis::cmd("ZRANGEBYSCORE").arg(&lease).arg("-inf").arg(cutoff).query(c)?))?;
        let mut inv = scripts::LIST_LEASE_EXPIRED.prepare_invoke();
        inv.key(&lease).key(self.keys.active(q)).arg(cutoff).arg(adopt_until);
        for id in &ids {
            inv.key(self.keys.task(q, id)).arg(id);
        }
        let reply: Value = self.run(|c| Ok(inv.invoke(c)?))?;
        let Value::Array(mut items) = reply else {
            return Err(Error::protocol("list_lease_expired: expected an array"));
        };
        if items.len() < 2 {
            return Err(Error::protocol("list_lease_expired: expected two counts"));
        }
        let rest = items.split_off(2);
        let count = |v: &Value| match v {
            Value::Int(n) => usize::try_from(*n).unwrap_or(0),
            _ => 0,
        };
        let expired = pairs(Value::Array(rest))?
            .into_iter()
            .map(|(id, msg)| Dequeued { queue: q.to_string(), id, msg })
            .collect();
        Ok(Scan { adopted: count(&items[0]), dropped: count(&items[1]), expired })
    }

    /// Deletes up to `batch` completed tasks of `q` whose retention ended; returns how many
    /// (0 also when another janitor took this batch first: the next pass finds the rest). The
    /// IDs are read first, so that the script names every hash it deletes in KEYS.
    pub fn delete_expired_completed(&mut self, q: &str, now: SystemTime, batch: usize) -> Result<usize> {
        let completed = self.keys.completed(q);
        let now_s = unix_secs(now);
        let ids: Vec<String> = self.run(|c| {
            Ok(redis::cmd("ZRANGEBYSCORE")
                .arg(&completed)
                .arg("-inf")
                .arg(now_s)
                .arg("LIMIT")
                .arg(0)
                .arg(batch.max(1))
                .query(c)?)
        })?;
        if ids.is_empty() {
            return Ok(0);
        }
        let mut inv = scripts::DELETE_EXPIRED_COMPLETED.prepare_invoke();
        inv.key(&completed).arg(now_s);
        for id in &ids {
            inv.key(self.keys.task(q, id)).arg(id);
        }
        self.run(|c| Ok(inv.invoke(c)?))
    }

    /// Publishes server and worker state with a TTL.
    pub fn write_server_state(
        &mut self,
        server_key: &str,
        workers_key: &str,
        info: Vec<u8>,
        workers: &[(String, Vec<u8>)],
        ttl: Duration,
        now: SystemTime,
    ) -> Result<()> {
        // Whole seconds, rounded up and at least one: a sub-second heartbeat must not ask for
        // `SETEX 0` (an error) nor publish a state that expires before the next beat.
        let ttl_secs = ttl.as_secs().saturating_add(u64::from(ttl.subsec_nanos() > 0)).max(1);
        let expiry = unix_secs(now).saturating_add(i64::try_from(ttl_secs).unwrap_or(i64::MAX));
        let (servers, all_workers) = (self.keys.servers(), self.keys.workers());
        let mut inv = scripts::WRITE_SERVER_STATE.prepare_invoke();
        inv.key(server_key).key(workers_key).arg(ttl_secs).arg(info);
        for (id, w) in workers {
            inv.arg(id).arg(w.as_slice());
        }
        self.run(|c| {
            redis::pipe()
                .zadd(&servers, server_key, expiry)
                .zadd(&all_workers, workers_key, expiry)
                .query::<()>(c)?;
            inv.invoke::<Value>(c)?;
            Ok(())
        })
    }

    /// Removes a server's published state.
    pub fn clear_server_state(&mut self, server_key: &str, workers_key: &str) -> Result<()> {
        let (servers, all_workers) = (self.keys.servers(), self.keys.workers());
        let mut inv = scripts::CLEAR_SERVER_STATE.prepare_invoke();
        inv.key(server_key).key(workers_key);
        self.run(|c| {
            redis::pipe().zrem(&servers, server_key).zrem(&all_workers, workers_key).query::<()>(c)?;
            inv.invoke::<Value>(c)?;
            Ok(())
        })
    }
}

/// The ids dequeue_declared.lua found at the tail of one queue's pending list (the next to pop
/// last).
type ReadAhead = (String, Vec<Vec<u8>>);

/// Reads dequeue.lua's (or dequeue_declared.lua's) reply, `{served, broken, ahead, id1, msg1,
/// ...}`; with whether a queue was served (its tasks may all have been dropped as unreadable
/// ids).
fn parse_dequeue(reply: Value, order: &[&str]) -> Result<(DequeueReply, Option<ReadAhead>, bool)> {
    let Value::Array(mut items) = reply else {
        return Err(Error::protocol("dequeue: expected an array"));
    };
    if items.len() < 3 {
        return Err(Error::protocol("dequeue: expected a queue index, a broken list and a read-ahead"));
    }
    let rest = items.split_off(3);
    let queue_at = |v: &Value| match v {
        Value::Int(i) => {
            i.checked_sub(1).and_then(|i| usize::try_from(i).ok()).and_then(|i| order.get(i)).copied()
        }
        _ => None,
    };
    let mut broken = Vec::new();
    if let Value::Array(b) = &items[1] {
        for pair in b.chunks(2) {
            if let [q, why] = pair {
                let q = queue_at(q).ok_or_else(|| Error::protocol("dequeue named no queue"))?;
                let why = bytes_of(why.clone()).map(|b| String::from_utf8_lossy(&b).into_owned());
                broken.push((q.to_string(), why.unwrap_or_default()));
            }
        }
    }
    let mut ahead = None;
    if let Value::Array(a) = &items[2] {
        if let [q, Value::Array(ids)] = a.as_slice() {
            let q = queue_at(q).ok_or_else(|| Error::protocol("dequeue's read-ahead named no queue"))?;
            let ids = ids.iter().filter_map(|v| bytes_of(v.clone())).collect();
            ahead = Some((q.to_string(), ids));
        }
    }
    let served = !matches!(items[0], Value::Int(0));
    let tasks: Vec<Dequeued> = match &items[0] {
        Value::Int(0) => Vec::new(),
        v => {
            let served = queue_at(v).ok_or_else(|| Error::protocol("dequeue named no queue"))?;
            pairs(Value::Array(rest))?
                .into_iter()
                .map(|(id, msg)| Dequeued { queue: served.to_string(), id, msg })
                .collect()
        }
    };
    Ok((DequeueReply { tasks, broken, ..DequeueReply::default() }, ahead, served))
}

#[cfg(test)]
mod tests {
    use super::{due_secs, parse_dequeue};
    use redis::Value;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn dequeue_replies_name_the_served_and_the_broken_queues() {
        let order = ["a", "b", "c"];
        let none = || Value::Array(vec![]);
        let reply = Value::Array(vec![
            Value::Int(3),
            Value::Array(vec![Value::Int(1), bulk("pending: WRONGTYPE"), Value::Int(2), bulk("lease: x")]),
            none(),
            bulk("id1"),
            bulk("m1"),
            bulk("ghost"),
            Value::Nil,
        ]);
        let (got, ahead, served) = parse_dequeue(reply, &order).expect("a reply");
        assert!(served);
        assert_eq!(
            got.broken,
            vec![("a".into(), "pending: WRONGTYPE".into()), ("b".into(), "lease: x".into())]
        );
        let tasks: Vec<_> =
            got.tasks.iter().map(|t| (t.queue.as_str(), t.id.as_str(), t.msg.is_some())).collect();
        assert_eq!(tasks, [("c", "id1", true), ("c", "ghost", false)]);
        assert!(ahead.is_none());
        let (empty, _, _) =
            parse_dequeue(Value::Array(vec![Value::Int(0), none(), none()]), &order).expect("empty");
        assert!(empty.tasks.is_empty() && empty.broken.is_empty());
        assert!(parse_dequeue(Value::Array(vec![Value::Int(9), none(), none()]), &order).is_err());
        assert!(parse_dequeue(Value::Array(vec![Value::Int(i64::MIN), none(), none()]), &order).is_err());
        assert!(parse_dequeue(Value::Array(vec![Value::Int(0), none()]), &order).is_err(), "no read-ahead");
        assert!(parse_dequeue(Value::Nil, &order).is_err());
    }

    #[test]
    fn a_dequeue_that_named_none_of_the_tail_learns_it() {
        let order = ["a", "b"];
        let tail = Value::Array(vec![Value::Int(2), Value::Array(vec![bulk("t2"), bulk("t1")])]);
        let reply = Value::Array(vec![Value::Int(0), Value::Array(vec![]), tail]);
        let (got, ahead, served) = parse_dequeue(reply, &order).expect("a reply");
        assert!(got.tasks.is_empty() && !served);
        assert_eq!(ahead, Some(("b".to_string(), vec![b"t2".to_vec(), b"t1".to_vec()])));
        let bad = Value::Array(vec![Value::Int(3), Value::Array(vec![])]);
        assert!(parse_dequeue(Value::Array(vec![Value::Int(0), Value::Array(vec![]), bad]), &order).is_err());
    }

    #[test]
    fn due_secs_rounds_up_and_rejects_junk() {
        assert_eq!(due_secs("1764230000"), Some(1_764_230_000));
        assert_eq!(due_secs("1764230000.25"), Some(1_764_230_001));
        assert_eq!(due_secs("-3.5"), Some(-3));
        assert_eq!(due_secs("1e300"), Some(i64::MAX));
        assert_eq!(due_secs("inf"), None);
        assert_eq!(due_secs("nan"), None);
        assert_eq!(due_secs("soon"), None);
    }
}
