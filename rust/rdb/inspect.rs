//! Reads for tools (the Inspector, `ferroq doctor`, the demo, metrics, the scheduler's
//! served-queue check), as asynq's `internal/rdb/inspect.go`. Each read is a constant number of
//! round trips, whatever the number of queues or the page size: a page of tasks is one range read
//! and one pipeline of hash reads, never one round trip per task.
//!
//! Nothing read is trusted: a counter someone overwrote reads as 0, an undecodable record is
//! skipped (and logged) instead of failing the whole listing.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use prost::Message;
use redis::Value;

use super::{bytes_of, string_of, Rdb};
use crate::clock::{from_unix_nanos, from_unix_secs, unix_nanos, unix_secs, utc_date};
use crate::error::{Error, Result};
use crate::info::{TaskInfo, TaskState};
use crate::message::{decode_server_info, decode_task, decode_worker_info, from_timestamp};
use crate::proto::{SchedulerEnqueueEvent, SchedulerEntry, ServerInfo, WorkerInfo};

/// Everything asynq's `QueueInfo` holds about one queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueInfo {
    /// Queue name.
    pub queue: String,
    /// Approximate bytes used by the queue's keys and tasks (sampled); `None` when not asked for.
    pub memory_usage: Option<i64>,
    /// How long the oldest pending task has waited.
    pub latency: Duration,
    /// Every task in the queue, in any state (completed and aggregating included, as asynq).
    pub size: i64,
    /// Groups with tasks waiting for aggregation.
    pub groups: i64,
    /// Tasks waiting to run.
    pub pending: i64,
    /// Tasks leased by a server.
    pub active: i64,
    /// Tasks waiting for their process-at.
    pub scheduled: i64,
    /// Failed tasks waiting for their next attempt.
    pub retry: i64,
    /// Archived tasks.
    pub archived: i64,
    /// Succeeded tasks kept for their retention.
    pub completed: i64,
    /// Tasks waiting in groups.
    pub aggregating: i64,
    /// Tasks processed today (UTC).
    pub processed: i64,
    /// Tasks failed today (UTC).
    pub failed: i64,
    /// Tasks processed in total.
    pub processed_total: i64,
    /// Tasks failed in total.
    pub failed_total: i64,
    /// Whether the queue is paused.
    pub paused: bool,
    /// When the numbers were read.
    pub timestamp: SystemTime,
}

/// Processed and failed counts of one queue on one UTC day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyStats {
    /// Queue name.
    pub queue: String,
    /// The day, `YYYY-MM-DD` (UTC).
    pub date: String,
    /// Tasks processed that day.
    pub processed: i64,
    /// Of those, failed.
    pub failed: i64,
}

/// One group of a queue and how many tasks wait in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    /// Group name.
    pub group: String,
    /// Tasks waiting in it.
    pub size: i64,
}

/// A live server and the tasks it is running.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerRecord {
    /// What the server published.
    pub info: ServerInfo,
    /// Its in-flight tasks, by start time.
    pub workers: Vec<WorkerInfo>,
}

/// One enqueue a scheduler recorded for an entry.
#[derive(Debug, Clone, PartialEq)]
pub struct EnqueueEvent {
    /// The task it enqueued.
    pub task_id: String,
    /// When.
    pub enqueued_at: SystemTime,
}

/// A page of a listing: asynq's `Page` (1-based) and `PageSize` (30 by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// 1-based page number.
    pub page: u32,
    /// Items per page.
    pub size: u32,
}

/// asynq's default page size.
pub const DEFAULT_PAGE_SIZE: u32 = 30;
/// The largest page a listing returns (a page is read in one pipeline).
pub const MAX_PAGE_SIZE: u32 = 10_000;
/// Tasks sampled per container for the memory estimate, as asynq.
const MEMORY_SAMPLE: isize = 20;
/// Groups sampled for the memory estimate, as asynq.
const GROUP_SAMPLE: usize = 5;
/// The most days of history asked at once (daily counters expire after 90 days).
pub const MAX_HISTORY_DAYS: u32 = 3650;

impl QueueInfo {
    /// An empty queue named `queue`, read at `timestamp`.
    pub fn empty(queue: String, timestamp: SystemTime) -> Self {
        Self {
            queue,
            memory_usage: None,
            latency: Duration::ZERO,
            size: 0,
            groups: 0,
            pending: 0,
            active: 0,
            scheduled: 0,
            retry: 0,
            archived: 0,
            completed: 0,
            aggregating: 0,
            processed: 0,
            failed: 0,
            processed_total: 0,
            failed_total: 0,
            paused: false,
            timestamp,
        }
    }
}

impl Default for Page {
    fn default() -> Self {
        Self { page: 1, size: DEFAULT_PAGE_SIZE }
    }
}

impl Page {
    /// A page, checked: `page` ≥ 1 and 1 ≤ `size` ≤ [`MAX_PAGE_SIZE`].
    pub fn new(page: i64, size: i64) -> Result<Self> {
        let page = u32::try_from(page)
            .ok()
            .filter(|p| *p >= 1)
            .ok_or_else(|| Error::invalid(format!("page must be 1 or more, got {page}")))?;
        let size = u32::try_from(size)
            .ok()
            .filter(|s| (1..=MAX_PAGE_SIZE).contains(s))
            .ok_or_else(|| Error::invalid(format!("page size must be 1 to {MAX_PAGE_SIZE}, got {size}")))?;
        Ok(Self { page, size })
    }

    /// First and last rank of the page (0-based, inclusive).
    fn ranks(self) -> (isize, isize) {
        let start = (self.page as isize - 1) * self.size as isize;
        (start, start + self.size as isize - 1)
    }
}

/// A counter read as text: a key someone overwrote must not fail the read.
fn num(v: &Value) -> i64 {
    match v {
        Value::Int(n) => *n,
        Value::BulkString(b) => std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()).unwrap_or(0),
        Value::SimpleString(s) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

fn array(v: Value) -> Vec<Value> {
    match v {
        Value::Array(items) | Value::Set(items) => items,
        _ => Vec::new(),
    }
}

fn strings(v: Value) -> Vec<String> {
    array(v).into_iter().filter_map(string_of).collect()
}

/// A zset score (a float in text) as whole Unix seconds, rounded up (as the forwarder reads it).
fn score_secs(v: &Value) -> Option<i64> {
    match v {
        Value::BulkString(b) => super::process::due_secs(std::str::from_utf8(b).ok()?),
        Value::Double(d) => d.is_finite().then(|| d.ceil() as i64),
        Value::Int(n) => Some(*n),
        _ => None,
    }
}

/// The escape of `s` for a SCAN MATCH pattern: it matches `s` only.
pub(crate) fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^' | '-') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Which container holds tasks of a state, and whether it is a list.
pub(crate) fn container(
    keys: &super::Keys,
    q: &str,
    state: TaskState,
    group: Option<&str>,
) -> Result<(String, bool)> {
    Ok(match state {
        TaskState::Pending => (keys.pending(q), true),
        TaskState::Active => (keys.active(q), true),
        TaskState::Scheduled => (keys.scheduled(q), false),
        TaskState::Retry => (keys.retry(q), false),
        TaskState::Archived => (keys.archived(q), false),
        TaskState::Completed => (keys.completed(q), false),
        TaskState::Aggregating => match group {
            Some(g) if !g.is_empty() => (keys.group(q, g), false),
            _ => return Err(Error::invalid("aggregating tasks are listed by group: give the group")),
        },
    })
}

/// When a task in `state` runs next, asynq's way: the score for scheduled and retry tasks, now
/// for pending ones, never (0) for the others.
fn next_process_at(state: TaskState, score: Option<i64>, now: SystemTime) -> i64 {
    match state {
        TaskState::Pending => unix_secs(now),
        TaskState::Scheduled | TaskState::Retry => score.unwrap_or(0),
        _ => 0,
    }
}

impl Rdb {
    /// The queues that live servers (heartbeat not expired) serve.
    pub fn served_queues(&mut self, now: SystemTime) -> Result<BTreeSet<String>> {
        let mut out = BTreeSet::new();
        // Their heartbeat records alone: the workers they run are not needed here.
        for info in self.server_infos(now)? {
            out.extend(info.queues.into_keys());
        }
        Ok(out)
    }

    /// What `ferroq stats` shows of the server: its version, uptime, clients and memory, from
    /// `INFO` (Valkey's `valkey_version` too).
    pub fn server_summary(&mut self) -> Result<Vec<(String, String)>> {
        // On a cluster: one master's view (any master).
        let text: String = self.run(|c| Ok(c.query_one_node(&redis::cmd("INFO"))?))?;
        let info: std::collections::HashMap<&str, &str> =
            text.lines().filter_map(|l| l.trim_end().split_once(':')).collect();
        let version = info
            .get("valkey_version")
            .map(|v| format!("valkey {v}"))
            .or_else(|| info.get("redis_version").map(|v| format!("redis {v}")));
        let mut out = vec![("version".to_string(), version.unwrap_or_else(|| "?".into()))];
        for (name, key) in [
            ("uptime", "uptime_in_seconds"),
            ("connected clients", "connected_clients"),
            ("memory used", "used_memory_human"),
            ("memory peak", "used_memory_peak_human"),
            ("role", "role"),
        ] {
            if let Some(v) = info.get(key) {
                let v = if key == "uptime_in_seconds" { format!("{v}s") } else { (*v).to_string() };
                out.push((name.to_string(), v));
            }
        }
        Ok(out)
    }

    /// Every queue name in `<ns>:queues`, sorted.
    pub fn queue_names(&mut self) -> Result<Vec<String>> {
        let all = self.keys.all_queues();
        let mut queues: Vec<String> = self.run(|c| Ok(redis::cmd("SMEMBERS").arg(&all).query(c)?))?;
        queues.sort();
        Ok(queues)
    }

    /// [`Error::QueueNotFound`] unless `q` is in `<ns>:queues`.
    pub fn check_queue(&mut self, q: &str) -> Result<()> {
        let all = self.keys.all_queues();
        let known: bool = self.run(|c| Ok(redis::cmd("SISMEMBER").arg(&all).arg(q).query(c)?))?;
        if known {
            Ok(())
        } else {
            Err(Error::QueueNotFound(q.to_string()))
        }
    }

    /// asynq's `QueueInfo` of each queue in `queues` (unknown ones fail with
    /// [`Error::QueueNotFound`]); with `memory`, the sampled memory estimate too (asynq always
    /// samples; it is the costly part of a read). Two round trips (four with `memory`) whatever the
    /// number of queues. With `skip_missing`, a queue deleted since its name was read is left out
    /// instead.
    pub fn queue_infos(
        &mut self,
        queues: &[String],
        memory: bool,
        skip_missing: bool,
        now: SystemTime,
    ) -> Result<Vec<QueueInfo>> {
        if queues.is_empty() {
            return Ok(Vec::new());
        }
        let k = self.keys.clone();
        let date = utc_date(now);
        const PER: usize = 14;
        let first: Vec<Value> = self.run(|c| {
            let mut pipe = redis::pipe();
            for q in queues {
                pipe.cmd("SISMEMBER").arg(k.all_queues()).arg(q);
                pipe.llen(k.pending(q))
                    .llen(k.active(q))
                    .zcard(k.scheduled(q))
                    .zcard(k.retry(q))
                    .zcard(k.archived(q))
                    .zcard(k.completed(q))
                    .get(k.processed(q, &date))
                    .get(k.failed(q, &date))
                    .get(k.processed_total(q))
                    .get(k.failed_total(q))
                    .exists(k.paused(q))
                    .cmd("LINDEX")
                    .arg(k.pending(q))
                    .arg(-1)
                    .smembers(k.groups(q));
            }
            Ok(pipe.query(c)?)
        })?;
        let mut infos = Vec::with_capacity(queues.len());
        let mut oldest: Vec<Option<String>> = Vec::with_capacity(queues.len());
        let mut groups: Vec<Vec<String>> = Vec::with_capacity(queues.len());
        for (q, r) in queues.iter().zip(first.chunks(PER)) {
            let at = |i: usize| r.get(i).map(num).unwrap_or(0);
            if at(0) == 0 {
                if skip_missing {
                    continue;
                }
                return Err(Error::QueueNotFound(q.clone()));
            }
            infos.push(QueueInfo {
                queue: q.clone(),
                pending: at(1),
                active: at(2),
                scheduled: at(3),
                retry: at(4),
                archived: at(5),
                completed: at(6),
                processed: at(7),
                failed: at(8),
                processed_total: at(9),
                failed_total: at(10),
                paused: at(11) > 0,
                ..QueueInfo::empty(q.clone(), now)
            });
            oldest.push(r.get(12).cloned().and_then(string_of));
            let mut g = r.get(13).cloned().map(strings).unwrap_or_default();
            g.sort();
            groups.push(g);
        }
        let present: Vec<String> = infos.iter().map(|i| i.queue.clone()).collect();
        let queues = present.as_slice();
        if queues.is_empty() {
            return Ok(infos);
        }
        // Second round: the oldest pending task's age and each group's size.
        let second: Vec<Value> = self.run(|c| {
            let mut pipe = redis::pipe();
            for (i, q) in queues.iter().enumerate() {
                match &oldest[i] {
                    Some(id) => pipe.hget(k.task(q, id), "pending_since"),
                    None => pipe.cmd("ECHO").arg(""),
                };
                for g in &groups[i] {
                    pipe.zcard(k.group(q, g));
                }
            }
            Ok(pipe.query(c)?)
        })?;
        let mut it = second.iter();
        for (i, info) in infos.iter_mut().enumerate() {
            let since = it.next().map(num).unwrap_or(0);
            if since > 0 {
                info.latency = now.duration_since(from_unix_nanos(since)).unwrap_or_default();
            }
            info.groups = groups[i].len() as i64;
            info.aggregating = groups[i].iter().map(|_| it.next().map(num).unwrap_or(0)).sum();
            info.size = info.pending
                + info.active
                + info.scheduled
                + info.retry
                + info.archived
                + info.completed
                + info.aggregating;
        }
        if memory {
            let aggregating: Vec<i64> = infos.iter().map(|i| i.aggregating).collect();
            let usage = self.memory_usage(queues, &groups, &aggregating)?;
            for (info, m) in infos.iter_mut().zip(usage) {
                info.memory_usage = Some(m);
            }
        }
        Ok(infos)
    }

    /// asynq's memory estimate (its `memoryUsageCmd`): for each container, its own `MEMORY
    /// USAGE` plus the average of up to 20 of its task hashes times its length; for groups, the
    /// average of up to 20 tasks from each of the first five groups times every aggregating
    /// task. `MEMORY USAGE` samples nested values as Redis does by default, as asynq's does.
    fn memory_usage(
        &mut self,
        queues: &[String],
        groups: &[Vec<String>],
        aggregating: &[i64],
    ) -> Result<Vec<i64>> {
        let k = self.keys.clone();
        const CONTAINERS: usize = 6;
        // Per queue: the containers (key, is a list), then its sampled groups.
        let sampled: Vec<Vec<(String, bool)>> = queues
            .iter()
            .zip(groups)
            .map(|(q, gs)| {
                let mut c = vec![
                    (k.pending(q), true),
                    (k.active(q), true),
                    (k.scheduled(q), false),
                    (k.retry(q), false),
                    (k.archived(q), false),
                    (k.completed(q), false),
                ];
                c.extend(gs.iter().take(GROUP_SAMPLE).map(|g| (k.group(q, g), false)));
                c
            })
            .collect();
        // Round one: each container's own memory and length, and a sample of IDs of each.
        let first: Vec<Value> = self.run(|c| {
            let mut pipe = redis::pipe();
            for list in &sampled {
                for (key, is_list) in list {
                    pipe.cmd("MEMORY").arg("USAGE").arg(key);
                    if *is_list {
                        pipe.llen(key).lrange(key, 0, MEMORY_SAMPLE - 1);
                    } else {
                        pipe.zcard(key).zrange(key, 0, MEMORY_SAMPLE - 1);
                    }
                }
            }
            Ok(pipe.query(c)?)
        })?;
        let mut it = first.into_iter();
        // Per queue, per container: (own bytes, length, sampled IDs).
        let mut read: Vec<Vec<(i64, i64, Vec<String>)>> = Vec::with_capacity(queues.len());
        for list in &sampled {
            let mut per = Vec::with_capacity(list.len());
            for _ in list {
                let own = it.next().map(|v| num(&v)).unwrap_or(0);
                let len = it.next().map(|v| num(&v)).unwrap_or(0);
                let ids = it.next().map(strings).unwrap_or_default();
                per.push((own, len, ids));
            }
            read.push(per);
        }
        // Round two: the sampled hashes.
        let second: Vec<Value> = self.run(|c| {
            let mut pipe = redis::pipe();
            let mut any = false;
            for (q, per) in queues.iter().zip(&read) {
                for (_, _, ids) in per {
                    for id in ids {
                        pipe.cmd("MEMORY").arg("USAGE").arg(k.task(q, id));
                        any = true;
                    }
                }
            }
            if any {
                Ok(pipe.query(c)?)
            } else {
                Ok(Vec::new())
            }
        })?;
        let mut it = second.iter();
        let mut out = Vec::with_capacity(queues.len());
        for (i, per) in read.iter().enumerate() {
            let mut total = 0i64;
            let (mut group_bytes, mut group_samples) = (0i64, 0i64);
            for (j, (own, len, ids)) in per.iter().enumerate() {
                let bytes: i64 = ids.iter().map(|_| it.next().map(num).unwrap_or(0)).sum();
                let n = ids.len() as i64;
                if j < CONTAINERS {
                    if n > 0 {
                        total = total.saturating_add(bytes.saturating_mul(*len) / n);
                    }
                    total = total.saturating_add(*own);
                } else {
                    group_bytes = group_bytes.saturating_add(bytes);
                    group_samples += n;
                }
            }
            if group_samples > 0 {
                let all = aggregating.get(i).copied().unwrap_or(0);
                total = total.saturating_add(group_bytes.saturating_mul(all) / group_samples);
            }
            out.push(total);
        }
        Ok(out)
    }

    /// Processed and failed counts of `q` for today and the `days - 1` UTC days before it, newest
    /// first.
    pub fn history(&mut self, q: &str, days: u32, now: SystemTime) -> Result<Vec<DailyStats>> {
        if !(1..=MAX_HISTORY_DAYS).contains(&days) {
            return Err(Error::invalid(format!("days must be 1 to {MAX_HISTORY_DAYS}, got {days}")));
        }
        self.check_queue(q)?;
        let dates: Vec<String> =
            (0..days).map(|d| utc_date(now - Duration::from_secs(u64::from(d) * 86_400))).collect();
        let k = self.keys.clone();
        let replies: Vec<Value> = self.run(|c| {
            let mut pipe = redis::pipe();
            for d in &dates {
                pipe.get(k.processed(q, d)).get(k.failed(q, d));
            }
            Ok(pipe.query(c)?)
        })?;
        Ok(dates
            .into_iter()
            .zip(replies.chunks(2))
            .map(|(date, r)| DailyStats {
                queue: q.to_string(),
                date,
                processed: r.first().map(num).unwrap_or(0),
                failed: r.get(1).map(num).unwrap_or(0),
            })
            .collect())
    }

    /// The groups of `q` with their sizes, by name.
    pub fn groups(&mut self, q: &str) -> Result<Vec<GroupInfo>> {
        self.check_queue(q)?;
        let k = self.keys.clone();
        let mut names: Vec<String> = self.run(|c| Ok(redis::cmd("SMEMBERS").arg(k.groups(q)).query(c)?))?;
        names.sort();
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let sizes: Vec<Value> = self.run(|c| {
            let mut pipe = redis::pipe();
            for g in &names {
                pipe.zcard(k.group(q, g));
            }
            Ok(pipe.query(c)?)
        })?;
        Ok(names.into_iter().zip(sizes.iter()).map(|(group, s)| GroupInfo { group, size: num(s) }).collect())
    }

    /// The `state` field of many tasks' hashes (`None` where the hash is gone), in one round
    /// trip: what the result waiter rechecks.
    pub fn task_states(&mut self, tasks: &[(&str, &str)]) -> Result<Vec<Option<String>>> {
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        let k = self.keys.clone();
        let replies: Vec<Value> = self.run(|c| {
            let mut pipe = redis::pipe();
            for (q, id) in tasks {
                pipe.hget(k.task(q, id), "state");
            }
            Ok(pipe.query(c)?)
        })?;
        Ok(replies.into_iter().map(string_of).collect())
    }

    /// One task, in whatever state: [`Error::QueueNotFound`], [`Error::TaskNotFound`], or
    /// [`Error::Decode`] when its message cannot be read. One round trip.
    pub fn task_info(&mut self, q: &str, id: &str, now: SystemTime) -> Result<TaskInfo> {
        let k = self.keys.clone();
        let r: Vec<Value> = self.run(|c| {
            Ok(redis::pipe()
                .cmd("SISMEMBER")
                .arg(k.all_queues())
                .arg(q)
                .cmd("HMGET")
                .arg(k.task(q, id))
                .arg("msg")
                .arg("state")
                .arg("result")
                .arg("exception")
                .arg("progress")
                .zscore(k.scheduled(q), id)
                .zscore(k.retry(q), id)
                .zscore(k.lease(q), id)
                .query(c)?)
        })?;
        let mut r = r.into_iter();
        if r.next().map(|v| num(&v)).unwrap_or(0) == 0 {
            return Err(Error::QueueNotFound(q.to_string()));
        }
        let fields = r.next().map(array).unwrap_or_default();
        let (scheduled, retry, lease) = (r.next(), r.next(), r.next());
        let mut fields = fields.into_iter();
        let (msg, state, result) = (fields.next(), fields.next(), fields.next());
        let (detail, progress) = (fields.next(), fields.next());
        let missing = || Error::TaskNotFound { queue: q.to_string(), id: id.to_string() };
        let state = state.and_then(string_of).ok_or_else(missing)?;
        let state = TaskState::parse(&state)
            .ok_or_else(|| Error::Decode(format!("task {id:?} has an unknown state {state:?}")))?;
        let msg =
            msg.and_then(bytes_of).ok_or_else(|| Error::Decode(format!("task {id:?} has no message")))?;
        let msg = decode_task(&msg)?;
        let score = match state {
            TaskState::Scheduled => scheduled.as_ref().and_then(score_secs),
            TaskState::Retry => retry.as_ref().and_then(score_secs),
            _ => None,
        };
        let orphaned = state == TaskState::Active && is_orphan(lease.as_ref(), now);
        Ok(TaskInfo {
            msg,
            state,
            next_process_at: next_process_at(state, score, now),
            result: result.and_then(bytes_of),
            error_detail: detail.and_then(bytes_of),
            progress: progress.and_then(bytes_of),
            is_orphaned: orphaned,
        })
    }

    /// A page of the tasks of `q` in `state` (of `group` for aggregating ones), oldest first as
    /// asynq lists them. Tasks whose hash vanished meanwhile are left out; undecodable ones are
    /// logged and left out. Two round trips.
    pub fn list_tasks(
        &mut self,
        q: &str,
        state: TaskState,
        group: Option<&str>,
        page: Page,
        now: SystemTime,
    ) -> Result<Vec<TaskInfo>> {
        let k = self.keys.clone();
        let (source, is_list) = container(&k, q, state, group)?;
        let (start, stop) = page.ranks();
        let first: Vec<Value> = self.run(|c| {
            let mut pipe = redis::pipe();
            pipe.cmd("SISMEMBER").arg(k.all_queues()).arg(q);
            if is_list {
                // The tail is the oldest: page 1 is the last `size` entries, read backwards.
                pipe.lrange(&source, -(stop + 1), -(start + 1));
            } else {
                pipe.cmd("ZRANGE").arg(&source).arg(start).arg(stop).arg("WITHSCORES");
            }
            Ok(pipe.query(c)?)
        })?;
        let mut first = first.into_iter();
        if first.next().map(|v| num(&v)).unwrap_or(0) == 0 {
            return Err(Error::QueueNotFound(q.to_string()));
        }
        let raw = first.next().map(array).unwrap_or_default();
        let entries: Vec<(String, Option<i64>)> = if is_list {
            raw.into_iter().rev().filter_map(string_of).map(|id| (id, None)).collect()
        } else {
            zset_pairs(raw)
        };
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let active = state == TaskState::Active;
        let hashes: Vec<Value> = self.run(|c| {
            let mut pipe = redis::pipe();
            for (id, _) in &entries {
                pipe.cmd("HMGET")
                    .arg(k.task(q, id))
                    .arg("msg")
                    .arg("result")
                    .arg("exception")
                    .arg("progress");
                if active {
                    pipe.zscore(k.lease(q), id);
                }
            }
            Ok(pipe.query(c)?)
        })?;
        let per = if active { 2 } else { 1 };
        let mut out = Vec::with_capacity(entries.len());
        for ((id, score), r) in entries.into_iter().zip(hashes.chunks(per)) {
            let mut fields = r.first().cloned().map(array).unwrap_or_default().into_iter();
            let (msg, result, detail) = (
                fields.next().and_then(bytes_of),
                fields.next().and_then(bytes_of),
                fields.next().and_then(bytes_of),
            );
            let Some(msg) = msg else { continue };
            let msg = match decode_task(&msg) {
                Ok(m) => m,
                Err(e) => {
                    log::warn!("skipping task {id:?} of queue {q:?} in the listing: {e}");
                    continue;
                }
            };
            let orphaned = active && is_orphan(r.get(1), now);
            out.push(TaskInfo {
                msg,
                state,
                next_process_at: next_process_at(state, score, now),
                result,
                error_detail: detail,
                progress: fields.next().and_then(bytes_of),
                is_orphaned: orphaned,
            });
        }
        Ok(out)
    }

    /// Live servers (heartbeat not expired) with their in-flight tasks, by host, PID and ID.
    /// Undecodable records are skipped, as asynq's readers do. Two round trips.
    pub fn servers(&mut self, now: SystemTime) -> Result<Vec<ServerRecord>> {
        let infos = self.server_infos(now)?;
        if infos.is_empty() {
            return Ok(Vec::new());
        }
        let k = self.keys.clone();
        let workers: Vec<Vec<Vec<u8>>> = self.run(|c| {
            let mut pipe = redis::pipe();
            for s in &infos {
                pipe.hvals(k.workers_of(&s.host, s.pid, &s.server_id));
            }
            Ok(pipe.query(c)?)
        })?;
        Ok(infos
            .into_iter()
            .zip(workers)
            .map(|(info, blobs)| {
                let mut workers: Vec<WorkerInfo> =
                    blobs.iter().filter_map(|b| decode_worker_info(b).ok()).collect();
                workers.sort_by_key(|w| w.start_time.as_ref().map(|t| (t.seconds, t.nanos)));
                ServerRecord { info, workers }
            })
            .collect())
    }

    /// The heartbeat records of live servers, by host, PID and ID (undecodable ones skipped).
    /// One round trip.
    fn server_infos(&mut self, now: SystemTime) -> Result<Vec<ServerInfo>> {
        let servers = self.keys.servers();
        let now_s = unix_secs(now);
        let blobs: Vec<Option<Vec<u8>>> = self.run(|c| {
            let keys: Vec<String> =
                redis::cmd("ZRANGEBYSCORE").arg(&servers).arg(now_s).arg("+inf").query(c)?;
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            // GETs, not one MGET: each server's key is in its own Redis Cluster slot.
            let mut pipe = redis::pipe();
            for k in &keys {
                pipe.get(k);
            }
            Ok(pipe.query(c)?)
        })?;
        let mut infos: Vec<ServerInfo> =
            blobs.into_iter().flatten().filter_map(|b| decode_server_info(&b).ok()).collect();
        infos.sort_by(|a, b| (&a.host, a.pid, &a.server_id).cmp(&(&b.host, b.pid, &b.server_id)));
        Ok(infos)
    }

    /// Entries of live schedulers, by ID (undecodable ones skipped, as asynq's readers do).
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
        let mut entries: Vec<SchedulerEntry> =
            blobs.iter().filter_map(|b| SchedulerEntry::decode(b.as_slice()).ok()).collect();
        entries.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(entries)
    }

    /// A page of the enqueues a scheduler recorded for `entry_id`, newest first.
    pub fn scheduler_enqueue_events(&mut self, entry_id: &str, page: Page) -> Result<Vec<EnqueueEvent>> {
        let key = self.keys.scheduler_history(entry_id);
        let (start, stop) = page.ranks();
        let raw: Vec<Value> = self.run(|c| {
            Ok(array(redis::cmd("ZREVRANGE").arg(&key).arg(start).arg(stop).arg("WITHSCORES").query(c)?))
        })?;
        let mut out = Vec::with_capacity(raw.len() / 2);
        let mut it = raw.into_iter();
        while let (Some(member), Some(score)) = (it.next(), it.next()) {
            let Some(bytes) = bytes_of(member) else { continue };
            let Ok(ev) = SchedulerEnqueueEvent::decode(bytes.as_slice()) else { continue };
            let at = match &ev.enqueue_time {
                Some(t) => from_timestamp(t),
                None => from_unix_secs(score_secs(&score).unwrap_or(0)),
            };
            out.push(EnqueueEvent { task_id: ev.task_id, enqueued_at: at });
        }
        Ok(out)
    }
}

/// Active with no lease, or a lease that ended: asynq's `IsOrphaned`.
fn is_orphan(lease: Option<&Value>, now: SystemTime) -> bool {
    match lease.and_then(score_secs) {
        // asynq's `listLeaseExpired(now)`: a lease scored at or before now has ended.
        Some(until) => until <= unix_secs(now),
        None => true,
    }
}

/// `id, score, id, score, ...` as (id, whole seconds).
fn zset_pairs(raw: Vec<Value>) -> Vec<(String, Option<i64>)> {
    let mut out = Vec::with_capacity(raw.len() / 2);
    let mut it = raw.into_iter();
    while let (Some(id), Some(score)) = (it.next(), it.next()) {
        if let Some(id) = string_of(id) {
            out.push((id, score_secs(&score)));
        }
    }
    out
}

/// Unix nanoseconds now, for `pending_since`.
pub(crate) fn pending_since(now: SystemTime) -> i64 {
    unix_nanos(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_checked_and_ranked() {
        assert_eq!(Page::default(), Page { page: 1, size: 30 });
        assert_eq!(Page::new(1, 30).expect("valid").ranks(), (0, 29));
        assert_eq!(Page::new(3, 10).expect("valid").ranks(), (20, 29));
        for (p, s) in [(0, 30), (-1, 30), (1, 0), (1, -5), (1, i64::from(MAX_PAGE_SIZE) + 1), (i64::MAX, 1)] {
            assert!(matches!(Page::new(p, s), Err(Error::InvalidArgument(_))), "{p} {s}");
        }
        assert!(Page::new(1, i64::from(MAX_PAGE_SIZE)).is_ok());
    }

    #[test]
    fn counters_that_are_not_numbers_read_as_zero() {
        assert_eq!(num(&Value::BulkString(b"12".to_vec())), 12);
        assert_eq!(num(&Value::BulkString(b"x".to_vec())), 0);
        assert_eq!(num(&Value::Nil), 0);
        assert_eq!(num(&Value::Int(3)), 3);
    }

    #[test]
    fn scores_round_up_and_reject_junk() {
        assert_eq!(score_secs(&Value::BulkString(b"10.2".to_vec())), Some(11));
        assert_eq!(score_secs(&Value::BulkString(b"10".to_vec())), Some(10));
        assert_eq!(score_secs(&Value::BulkString(b"inf".to_vec())), None);
        assert_eq!(score_secs(&Value::Nil), None);
    }

    #[test]
    fn glob_patterns_match_only_the_name() {
        assert_eq!(glob_escape("a*b?[c]"), "a\\*b\\?\\[c\\]");
        assert_eq!(glob_escape("plain"), "plain");
    }

    #[test]
    fn orphans_have_no_live_lease() {
        let now = from_unix_secs(100);
        assert!(is_orphan(None, now));
        assert!(is_orphan(Some(&Value::BulkString(b"100".to_vec())), now));
        assert!(!is_orphan(Some(&Value::BulkString(b"101".to_vec())), now));
    }

    #[test]
    fn replies_are_read_defensively() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        assert_eq!(num(&Value::SimpleString("7".into())), 7);
        assert_eq!(score_secs(&Value::Double(4.5)), Some(5));
        assert_eq!(score_secs(&Value::Int(4)), Some(4));
        assert_eq!(array(Value::Set(vec![bulk("a")])).len(), 1);
        assert!(array(Value::Nil).is_empty());
        assert_eq!(strings(Value::Array(vec![bulk("a"), Value::Nil, bulk("b")])), vec!["a", "b"]);
        let pairs = zset_pairs(vec![
            bulk("x"),
            bulk("3.2"),
            Value::BulkString(vec![0xff]),
            bulk("1"),
            bulk("y"),
            bulk("no"),
        ]);
        assert_eq!(pairs, vec![("x".to_string(), Some(4)), ("y".to_string(), None)]);
        assert_eq!(pending_since(from_unix_secs(2)), 2_000_000_000);
    }

    #[test]
    fn each_state_has_its_container() {
        let k = super::super::Keys::default();
        assert_eq!(
            container(&k, "q", TaskState::Pending, None).ok(),
            Some(("asynq:{q}:pending".into(), true))
        );
        assert_eq!(container(&k, "q", TaskState::Active, None).ok(), Some(("asynq:{q}:active".into(), true)));
        assert_eq!(container(&k, "q", TaskState::Retry, None).ok(), Some(("asynq:{q}:retry".into(), false)));
        assert_eq!(
            container(&k, "q", TaskState::Aggregating, Some("g")).ok(),
            Some(("asynq:{q}:g:g".into(), false))
        );
        for group in [None, Some("")] {
            assert!(matches!(
                container(&k, "q", TaskState::Aggregating, group),
                Err(Error::InvalidArgument(_))
            ));
        }
    }

    #[test]
    fn next_process_at_follows_asynq() {
        let now = from_unix_secs(50);
        assert_eq!(next_process_at(TaskState::Pending, None, now), 50);
        assert_eq!(next_process_at(TaskState::Retry, Some(70), now), 70);
        assert_eq!(next_process_at(TaskState::Archived, Some(70), now), 0);
    }
}
