//! Every Redis command ferroq's own components send goes through [`Rdb`], as asynq's go through
//! `internal/rdb`. Methods take the time as an argument; scripts never read the clock.

pub mod conn;
pub mod keys;
pub mod scripts;
pub mod spin;

use std::time::{Duration, SystemTime};

use redis::{Connection, Script, ScriptInvocation, Value};

use crate::clock::{unix_nanos, unix_secs, utc_date};
use crate::error::{Error, Result};
use crate::message::{encode_task, TaskMessage};
pub use conn::{Conn, ConnConfig};
pub use keys::Keys;

/// How long a dequeued task is leased before another server may recover it.
pub const LEASE_DURATION: Duration = Duration::from_secs(30);
/// Daily stats keys expire this long after their first write.
pub const STATS_TTL: Duration = Duration::from_secs(90 * 24 * 3600);
/// Archive size cap (asynq keeps at most cap-1 entries).
pub const ARCHIVE_MAX_SIZE: i64 = 10_000;
/// Archived tasks older than this are deleted when another task is archived.
pub const ARCHIVE_MAX_AGE: Duration = Duration::from_secs(90 * 24 * 3600);
/// Tasks moved per forward script call, as asynq.
pub const FORWARD_BATCH: usize = 100;
/// Most successes written by one done_batch call.
pub const FINISH_BATCH: usize = 100;

/// What one forwarding pass over a queue did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Forwarded {
    /// Tasks moved to pending (or into their group).
    pub moved: usize,
    /// When the earliest task still waiting is due, in Unix seconds.
    pub next_due: Option<i64>,
}

/// The first whole second at which a zset score (process-at, Unix seconds; asynq writes
/// integers, anyone may write a float) is due, as the forward script compares `score <= now`
/// with `now` in whole seconds. `None` for a score that is not a finite number.
fn due_secs(score: &str) -> Option<i64> {
    let s: f64 = score.trim().parse().ok()?;
    // `as` saturates out-of-range floats, which is what a far-future score should mean.
    s.is_finite().then(|| s.ceil() as i64)
}

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

/// How a leased task ends.
#[derive(Debug, Clone)]
pub enum Finish {
    /// Success: deleted, or kept as completed when the message has retention.
    Done,
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
    },
}

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

/// One dequeued task: its queue, id and raw `msg` (None when the hash had no `msg`).
#[derive(Debug, Clone)]
pub struct Leased {
    /// Queue name.
    pub queue: String,
    /// Task ID.
    pub id: String,
    /// The raw `msg` field.
    pub msg: Option<Vec<u8>>,
}

/// Connections shared by threads that each need one at a time (the Python client).
pub struct RdbPool {
    cfg: ConnConfig,
    keys: Keys,
    idle: parking_lot::Mutex<Vec<Rdb>>,
    max_idle: usize,
}

impl RdbPool {
    /// A pool keeping up to `max_idle` idle connections.
    pub fn new(cfg: ConnConfig, keys: Keys, max_idle: usize) -> Self {
        Self { cfg, keys, idle: parking_lot::Mutex::new(Vec::new()), max_idle }
    }

    /// The key builder.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Takes a connection (idle or new), runs `f`, and keeps the connection if it is still open.
    pub fn with<T>(&self, f: impl FnOnce(&mut Rdb) -> Result<T>) -> Result<T> {
        let popped = self.idle.lock().pop();
        let mut rdb = popped.unwrap_or_else(|| Rdb::new(&self.cfg, self.keys.clone()).without_retry());
        let out = f(&mut rdb);
        if rdb.conn.is_connected() {
            let mut idle = self.idle.lock();
            if idle.len() < self.max_idle {
                idle.push(rdb);
            }
        }
        out
    }

    /// Closes every idle connection.
    pub fn clear(&self) {
        self.idle.lock().clear();
    }
}

/// A script call: the script (so a pipeline can load it once) and its invocation.
pub type Call = (&'static Script, ScriptInvocation<'static>);

fn call(script: &'static Script) -> Call {
    (script, script.prepare_invoke())
}

/// A Redis connection that speaks asynq's layout.
pub struct Rdb {
    conn: Conn,
    keys: Keys,
    retry_stale: bool,
}

/// The calls of a pipeline and, for each, the requests it answers for (`owners[k]`).
type Plan = (Vec<Call>, Vec<Vec<usize>>);

/// Plans one pipeline for `n` requests: those for which `batch_queue` names a queue go in one
/// batch call per queue and chunk of `chunk` (built by `batch`), the others one call each (built
/// by `single`).
fn plan_calls<'a>(
    n: usize,
    chunk: usize,
    batch_queue: impl Fn(usize) -> Option<&'a str>,
    mut single: impl FnMut(usize) -> Call,
    mut batch: impl FnMut(&str, &[usize]) -> Call,
) -> Plan {
    let mut invs = Vec::new();
    let mut owners = Vec::new();
    let mut batches: std::collections::BTreeMap<&str, Vec<usize>> = std::collections::BTreeMap::new();
    for i in 0..n {
        match batch_queue(i) {
            Some(q) => batches.entry(q).or_default().push(i),
            None => {
                invs.push(single(i));
                owners.push(vec![i]);
            }
        }
    }
    for (q, idx) in batches {
        for part in idx.chunks(chunk) {
            invs.push(batch(q, part));
            owners.push(part.to_vec());
        }
    }
    (invs, owners)
}

/// Spreads the replies of a pipeline over the `n` requests they answer for. `owners[k]` lists the
/// requests of call `k`: a batch call answers with an array of per-request codes, which `each`
/// decodes; a call for one request with that request's reply, which `one` decodes (a script
/// error stays that error).
fn spread_replies(
    n: usize,
    owners: &[Vec<usize>],
    replies: Vec<Result<Value>>,
    what: &str,
    one: impl Fn(Value) -> Result<()>,
    each: impl Fn(Value) -> Result<()>,
) -> Vec<Result<()>> {
    let mut out: Vec<Option<Result<()>>> = (0..n).map(|_| None).collect();
    for (idx, reply) in owners.iter().zip(replies) {
        match (idx.as_slice(), reply) {
            ([i], Ok(Value::Array(mut codes))) if codes.len() == 1 => out[*i] = codes.pop().map(&each),
            ([i], reply) => out[*i] = Some(reply.and_then(&one)),
            (_, Ok(Value::Array(codes))) if codes.len() == idx.len() => {
                for (&i, c) in idx.iter().zip(codes) {
                    out[i] = Some(each(c));
                }
            }
            (_, Ok(other)) => {
                for &i in idx {
                    out[i] = Some(Err(Error::protocol(format!("{what} returned {other:?}"))));
                }
            }
            (_, Err(e)) => {
                let text = e.to_string();
                for &i in idx {
                    out[i] = Some(Err(match e {
                        Error::NotFound => Error::NotFound,
                        _ => Error::Protocol(text.clone()),
                    }));
                }
            }
        }
    }
    out.into_iter().map(|r| r.unwrap_or_else(|| Err(Error::protocol(format!("{what}: no reply"))))).collect()
}

fn is_noscript(r: &redis::RedisResult<Value>) -> bool {
    matches!(r, Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript))
}

fn script_error(e: redis::RedisError) -> Error {
    if e.to_string().contains("NOT FOUND") {
        Error::NotFound
    } else {
        Error::Redis(e)
    }
}

fn bytes_of(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        _ => None,
    }
}

fn string_of(v: Value) -> Option<String> {
    bytes_of(v).and_then(|b| String::from_utf8(b).ok())
}

/// Splits a flat `id, msg, id, msg, ...` script reply.
fn pairs(reply: Value) -> Result<Vec<(String, Option<Vec<u8>>)>> {
    let items = match reply {
        Value::Array(items) => items,
        Value::Nil => return Ok(Vec::new()),
        other => return Err(Error::protocol(format!("expected an array, got {other:?}"))),
    };
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(id), Some(msg)) = (it.next(), it.next()) {
        // One unusable ID (not UTF-8) must not hide the others from the caller.
        match string_of(id) {
            Some(id) => out.push((id, bytes_of(msg))),
            None => log::error!("skipping a task id that is not UTF-8"),
        }
    }
    Ok(out)
}

impl Rdb {
    /// An `Rdb` on its own lazily-connected connection.
    /// Commands that fail because a reused connection died (Redis restarted, an idle timeout)
    /// are retried once on a fresh one. Every script is safe to run twice: a second run of an
    /// outcome finds the task gone (NOT FOUND) and changes nothing.
    pub fn new(cfg: &ConnConfig, keys: Keys) -> Self {
        Self { conn: cfg.connect_lazy(), keys, retry_stale: true }
    }

    /// As [`Rdb::new`] without the retry: for enqueues, where a second run after an unseen first
    /// success would report a false ID conflict to the caller.
    pub fn without_retry(mut self) -> Self {
        self.retry_stale = false;
        self
    }

    /// The key builder.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Runs `f` on the live connection.
    pub fn run<T>(&mut self, mut f: impl FnMut(&mut conn::Link) -> Result<T>) -> Result<T> {
        let reused = self.conn.is_connected();
        match self.conn.run(&mut f) {
            Err(e) if reused && self.retry_stale && e.is_connection_error() => {
                log::debug!("retrying on a fresh connection after: {e}");
                self.conn.run(f)
            }
            out => out,
        }
    }

    /// Round-trips a PING.
    pub fn ping(&mut self) -> Result<()> {
        self.run(|c| Ok(redis::cmd("PING").query::<String>(c).map(|_| ())?))
    }

    /// A dedicated connection for Pub/Sub.
    pub fn pubsub_connection(&self) -> Result<Connection> {
        self.conn.pubsub_connection()
    }

    // ---- client side ------------------------------------------------------------------------

    /// Registers queue names in `<ns>:queues` so inspectors can find them.
    pub fn register_queues(&mut self, queues: &[&str]) -> Result<()> {
        let key = self.keys.all_queues();
        self.run(|c| Ok(redis::cmd("SADD").arg(&key).arg(queues).query::<i64>(c).map(|_| ())?))
    }

    fn enqueue_invocation(&self, req: &EnqueueRequest, now: SystemTime) -> Call {
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

    fn enqueue_reply(code: i64) -> Result<()> {
        match code {
            1 => Ok(()),
            0 => Err(Error::TaskIdConflict),
            -1 => Err(Error::DuplicateTask),
            other => Err(Error::protocol(format!("enqueue returned {other}"))),
        }
    }

    /// Writes one new task.
    pub fn enqueue(&mut self, req: &EnqueueRequest, now: SystemTime) -> Result<()> {
        let (_, inv) = self.enqueue_invocation(req, now);
        let code: i64 = self.run(|c| inv.invoke(c).map_err(script_error))?;
        Self::enqueue_reply(code)
    }

    /// Writes many new tasks in one pipeline (not atomic: each succeeds or fails on its own).
    /// Plain pending tasks go in batches of one script call per queue and chunk; unique,
    /// scheduled and grouped ones one call each.
    pub fn enqueue_many(&mut self, reqs: &[EnqueueRequest], now: SystemTime) -> Result<Vec<Result<()>>> {
        const CHUNK: usize = 500;
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
                inv.key(keys.pending(q))
                    .arg(keys.task_prefix(q))
                    .arg(unix_nanos(now))
                    .arg(keys.wake_channel(q));
                for &i in part {
                    inv.arg(&reqs[i].msg.id).arg(encode_task(&reqs[i].msg));
                }
                (s, inv)
            },
        );
        let replies = self.run_pipeline(&invs)?;
        let code = |v: Value| match v {
            Value::Int(code) => Self::enqueue_reply(code),
            other => Err(Error::protocol(format!("enqueue returned {other:?}"))),
        };
        Ok(spread_replies(reqs.len(), &owners, replies, "enqueue", code, code))
    }

    /// Sends script invocations in one pipeline (EVALSHA; scripts are loaded and their calls
    /// re-run only where Redis answered NOSCRIPT); returns one result per invocation.
    fn run_pipeline(&mut self, invs: &[Call]) -> Result<Vec<Result<Value>>> {
        if invs.is_empty() {
            return Ok(Vec::new());
        }
        let all: Vec<usize> = (0..invs.len()).collect();
        let mut replies = self.pipeline_of(invs, &all, false)?;
        // NOSCRIPT means that call did not run (a new server, SCRIPT FLUSH): load the scripts
        // and run exactly those calls again. Loading up front would send every script's source
        // with every pipeline.
        let missing: Vec<usize> = (0..replies.len()).filter(|&i| is_noscript(&replies[i])).collect();
        if !missing.is_empty() {
            let again = self.pipeline_of(invs, &missing, true)?;
            for (i, reply) in missing.into_iter().zip(again) {
                replies[i] = reply;
            }
        }
        Ok(replies.into_iter().map(|r| r.map_err(script_error)).collect())
    }

    /// One pipeline of the calls `which` (indexes into `invs`), one reply per call; with `load`,
    /// each distinct script is loaded first (its reply dropped).
    fn pipeline_of(
        &mut self,
        invs: &[Call],
        which: &[usize],
        load: bool,
    ) -> Result<Vec<redis::RedisResult<Value>>> {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        let mut loaded: Vec<&'static redis::Script> = Vec::new();
        let mut skip = Vec::new();
        for &i in which {
            let (script, inv) = &invs[i];
            if load && !loaded.iter().any(|l| std::ptr::eq(*l, *script)) {
                loaded.push(script);
                pipe.load_script(script);
                skip.push(true);
            }
            pipe.invoke_script(inv);
            skip.push(false);
        }
        let replies: Vec<redis::RedisResult<Value>> = self.run(|c| Ok(pipe.query(c)?))?;
        Ok(replies.into_iter().zip(skip).filter(|(_, s)| !s).map(|(r, _)| r).collect())
    }

    /// Enqueues one firing of periodic entry `entry_id` at `fire_at` (Unix s) unless some replica
    /// already did: the entry's last-fired key is watched, and the enqueue, the new last-fired
    /// value and the history event are written in one MULTI. Of any number of replicas racing
    /// for a firing, exactly one transaction commits.
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
        self.run(|c| {
            // EVALSHA inside MULTI cannot fall back to EVAL: load first.
            script.load(c)?;
            redis::cmd("WATCH").arg(&last_key).query::<()>(c)?;
            let last: Option<i64> = redis::cmd("GET").arg(&last_key).query(c)?;
            if last.is_some_and(|l| l >= fire_at) {
                redis::cmd("UNWATCH").query::<()>(c)?;
                return Ok(Fired::AlreadyFired);
            }
            let mut pipe = redis::pipe();
            pipe.atomic().invoke_script(&inv);
            pipe.cmd("SET").arg(&last_key).arg(fire_at).arg("EX").arg(last_ttl.max(1)).ignore();
            if let Some(ev) = &history_event {
                // As asynq's recordSchedulerEnqueueEvent: at most 1000 events per entry.
                pipe.cmd("ZREMRANGEBYRANK").arg(&history_key).arg(0).arg(-1000).ignore();
                pipe.cmd("ZADD").arg(&history_key).arg(now_s).arg(ev.as_slice()).ignore();
            }
            let committed: Option<(i64,)> = pipe.query(c)?;
            Ok(match committed {
                None => Fired::AlreadyFired,
                Some((1,)) => Fired::Enqueued,
                Some((-1,)) => Fired::Duplicate,
                // 0: a task with this ID exists; IDs are fresh UUIDs, so another replica's.
                Some(_) => Fired::AlreadyFired,
            })
        })
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

    /// The queues that live servers (heartbeat not expired) serve.
    pub fn served_queues(&mut self, now: SystemTime) -> Result<std::collections::BTreeSet<String>> {
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
        let mut out = std::collections::BTreeSet::new();
        for blob in blobs.into_iter().flatten() {
            // Undecodable records are skipped, as asynq's readers do.
            if let Ok(info) = crate::message::decode_server_info(&blob) {
                out.extend(info.queues.into_keys());
            }
        }
        Ok(out)
    }

    /// Every queue in `<ns>:queues` with its pending, scheduled and retry sizes.
    pub fn queue_overview(&mut self) -> Result<Vec<(String, i64, i64, i64)>> {
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
                pipe.llen(keys.pending(q)).zcard(keys.scheduled(q)).zcard(keys.retry(q));
            }
            let sizes: Vec<i64> = pipe.query(c)?;
            Ok(queues
                .into_iter()
                .zip(sizes.chunks(3))
                .map(|(q, s)| {
                    (
                        q,
                        s.first().copied().unwrap_or(0),
                        s.get(1).copied().unwrap_or(0),
                        s.get(2).copied().unwrap_or(0),
                    )
                })
                .collect())
        })
    }

    /// Entries of live schedulers (undecodable ones skipped, as asynq's readers do).
    pub fn scheduler_entries(&mut self, now: SystemTime) -> Result<Vec<crate::proto::SchedulerEntry>> {
        use prost::Message;
        let all = self.keys.schedulers();
        let now_s = unix_secs(now);
        let blobs: Vec<Vec<u8>> = self.run(|c| {
            let keys: Vec<String> = redis::cmd("ZRANGEBYSCORE").arg(&all).arg(now_s).arg("+inf").query(c)?;
            let mut out = Vec::new();
            for k in keys {
                let items: Vec<Vec<u8>> = redis::cmd("LRANGE").arg(&k).arg(0).arg(-1).query(c)?;
                out.extend(items);
            }
            Ok(out)
        })?;
        Ok(blobs.iter().filter_map(|b| crate::proto::SchedulerEntry::decode(b.as_slice()).ok()).collect())
    }

    // ---- processing ---------------------------------------------------------------------------

    /// Leases up to `max` tasks from the first queue in `order` that has any (paused queues are
    /// skipped by the script).
    pub fn dequeue(&mut self, order: &[&str], max: usize, now: SystemTime) -> Result<Vec<Leased>> {
        if order.is_empty() {
            return Ok(Vec::new());
        }
        let expiry = unix_secs(now) + LEASE_DURATION.as_secs() as i64;
        let mut inv = scripts::DEQUEUE.prepare_invoke();
        for q in order {
            inv.key(self.keys.pending(q))
                .key(self.keys.paused(q))
                .key(self.keys.active(q))
                .key(self.keys.lease(q));
        }
        inv.arg(expiry).arg(max.max(1));
        for q in order {
            inv.arg(self.keys.task_prefix(q));
        }
        // Never retried: if the reply was lost after the script ran, a retry would lease a second
        // batch while the first waits in `active` for the recoverer.
        let reply: Value = self.conn.run(|c| inv.invoke(c).map_err(script_error))?;
        let mut items = match reply {
            Value::Array(items) if !items.is_empty() => items,
            _ => return Ok(Vec::new()),
        };
        let served = match items.remove(0) {
            Value::Int(i) => usize::try_from(i - 1).ok().and_then(|i| order.get(i)),
            _ => None,
        }
        .ok_or_else(|| Error::protocol("dequeue named no queue"))?;
        Ok(pairs(Value::Array(items))?
            .into_iter()
            .map(|(id, msg)| Leased { queue: (*served).to_string(), id, msg })
            .collect())
    }

    /// The script invocation that ends a leased task. `msg` is the message as dequeued.
    pub fn finish_invocation(&self, msg: &TaskMessage, finish: &Finish, now: SystemTime) -> Call {
        let k = &self.keys;
        let q = msg.queue.as_str();
        let now_s = unix_secs(now);
        let date = utc_date(now);
        let stats_exp = now_s + STATS_TTL.as_secs() as i64;
        match finish {
            Finish::Done if msg.retention > 0 => {
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
                    .arg(i64::MAX);
                (s, inv)
            }
            Finish::Done | Finish::Revoke => {
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
                    .arg(i64::MAX);
                (s, inv)
            }
            Finish::Archive { error } => {
                let mut m = msg.clone();
                m.error_msg = error.clone();
                m.last_failed_at = now_s;
                self.archive_invocation(q, &msg.id, encode_task(&m), None, now)
            }
        }
    }

    fn archive_invocation(
        &self,
        q: &str,
        id: &str,
        msg_bytes: Vec<u8>,
        decode_error: Option<&str>,
        now: SystemTime,
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
            .arg(now_s - ARCHIVE_MAX_AGE.as_secs() as i64)
            .arg(ARCHIVE_MAX_SIZE)
            .arg(now_s + STATS_TTL.as_secs() as i64)
            .arg(i64::MAX)
            .arg(k.task_prefix(q));
        if let Some(e) = decode_error {
            inv.arg(e);
        }
        (s, inv)
    }

    /// Ends one leased task.
    pub fn finish(&mut self, msg: &TaskMessage, finish: &Finish, now: SystemTime) -> Result<()> {
        let (_, inv) = self.finish_invocation(msg, finish, now);
        self.run(|c| inv.invoke::<Value>(c).map(|_| ()).map_err(script_error))
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
            let plain = matches!(f, Finish::Revoke) || (matches!(f, Finish::Done) && m.retention <= 0);
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
                inv.arg(k.task_prefix(q)).arg(stats_exp);
                for &i in part {
                    inv.arg(&items[i].0.id).arg(&items[i].0.unique_key);
                }
                (s, inv)
            },
        );
        let replies = self.run_pipeline(&invs)?;
        let code = |v: Value| match v {
            Value::Int(1) => Ok(()),
            Value::Int(0) => Err(Error::NotFound),
            other => Err(Error::protocol(format!("done_batch returned {other:?}"))),
        };
        Ok(spread_replies(items.len(), &owners, replies, "done_batch", |_| Ok(()), code))
    }

    /// Archives an active task whose message cannot be decoded, keeping its raw bytes and the
    /// reason in the hash field `error`.
    pub fn archive_malformed(
        &mut self,
        q: &str,
        id: &str,
        raw: Vec<u8>,
        reason: &str,
        now: SystemTime,
    ) -> Result<()> {
        let (_, inv) = self.archive_invocation(q, id, raw, Some(reason), now);
        self.run(|c| inv.invoke::<Value>(c).map(|_| ()).map_err(script_error))
    }

    /// Drops an active id whose task hash is gone (nothing left to run or archive).
    pub fn drop_orphan(&mut self, q: &str, id: &str) -> Result<()> {
        let (active, lease) = (self.keys.active(q), self.keys.lease(q));
        self.run(|c| {
            redis::pipe().lrem(&active, 0, id).zrem(&lease, id).query::<()>(c)?;
            Ok(())
        })
    }

    /// Renews the leases of `ids` in queue `q`; returns the ids whose lease was gone.
    pub fn extend_lease(&mut self, q: &str, ids: &[&str], now: SystemTime) -> Result<Vec<String>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let expiry = unix_secs(now) + LEASE_DURATION.as_secs() as i64;
        let mut inv = scripts::EXTEND_LEASE.prepare_invoke();
        inv.key(self.keys.lease(q)).arg(expiry).arg(ids);
        self.run(|c| Ok(inv.invoke::<Vec<String>>(c)?))
    }

    /// Stores a handler's result in the task hash.
    pub fn write_result(&mut self, q: &str, id: &str, data: &[u8]) -> Result<usize> {
        let mut inv = scripts::WRITE_RESULT.prepare_invoke();
        inv.key(self.keys.task(q, id)).arg(data);
        self.run(|c| Ok(inv.invoke::<usize>(c)?))
    }

    // ---- background components ---------------------------------------------------------------

    /// Moves due scheduled and retry tasks of `q` to pending; returns how many moved and when
    /// the earliest task left in either set is due (Unix seconds), if any is left.
    pub fn forward_if_ready(&mut self, q: &str, now: SystemTime) -> Result<Forwarded> {
        let mut out = Forwarded::default();
        for src in [self.keys.scheduled(q), self.keys.retry(q)] {
            loop {
                let mut inv = scripts::FORWARD.prepare_invoke();
                inv.key(&src)
                    .key(self.keys.pending(q))
                    .arg(unix_secs(now))
                    .arg(self.keys.task_prefix(q))
                    .arg(unix_nanos(now))
                    .arg(self.keys.group_prefix(q));
                let (n, next): (usize, Option<String>) = self.run(|c| Ok(inv.invoke(c)?))?;
                out.moved += n;
                if n < FORWARD_BATCH {
                    if let Some(due) = next.as_deref().and_then(due_secs) {
                        out.next_due = Some(out.next_due.map_or(due, |d: i64| d.min(due)));
                    }
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Active tasks of `q` whose lease ended at or before `cutoff`.
    pub fn list_lease_expired(&mut self, q: &str, cutoff: SystemTime) -> Result<Vec<Leased>> {
        let mut inv = scripts::LIST_LEASE_EXPIRED.prepare_invoke();
        inv.key(self.keys.lease(q)).arg(unix_secs(cutoff)).arg(self.keys.task_prefix(q));
        let reply: Value = self.run(|c| Ok(inv.invoke(c)?))?;
        Ok(pairs(reply)?.into_iter().map(|(id, msg)| Leased { queue: q.to_string(), id, msg }).collect())
    }

    /// Deletes up to `batch` completed tasks of `q` whose retention ended; returns how many.
    pub fn delete_expired_completed(&mut self, q: &str, now: SystemTime, batch: usize) -> Result<usize> {
        let mut inv = scripts::DELETE_EXPIRED_COMPLETED.prepare_invoke();
        inv.key(self.keys.completed(q)).arg(unix_secs(now)).arg(self.keys.task_prefix(q)).arg(batch);
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
        let expiry = unix_secs(now) + ttl.as_secs() as i64;
        let (servers, all_workers) = (self.keys.servers(), self.keys.workers());
        let mut inv = scripts::WRITE_SERVER_STATE.prepare_invoke();
        inv.key(server_key).key(workers_key).arg(ttl.as_secs()).arg(info);
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

#[cfg(test)]
mod tests {
    use super::due_secs;

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
