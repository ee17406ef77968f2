//! Every Redis command ferroq's own components send goes through [`Rdb`], as asynq's go through
//! `internal/rdb`. Methods take the time as an argument; scripts never read the clock.
//!
//! The methods are split by concern, as asynq splits `rdb.go` from `inspect.go`:
//! [`enqueue`](self::enqueue) (producers), [`process`](self::process) (the server's hot path and
//! its background components), [`scheduler`](self::scheduler) (periodic firings and published
//! entries), [`inspect`](self::inspect) (reads for tools); [`pipeline`](self::pipeline) batches
//! script calls and [`pool`](self::pool) shares connections between threads.

pub mod admin;
pub mod cluster;
pub mod conn;
pub mod enqueue;
pub mod inspect;
pub mod keys;
pub mod pipeline;
pub mod pool;
pub mod process;
pub mod scheduler;
pub mod scripts;
pub mod spin;
pub mod target;

use std::time::Duration;

use redis::{Connection, Value};

use crate::error::{Error, Result};
pub use admin::Action;
pub use conn::{Conn, ConnConfig};
pub use enqueue::{EnqueueRequest, Placement};
pub use keys::Keys;
pub use pool::RdbPool;
pub use process::{DequeueReply, Dequeued, Finish, Forwarded, Renewal, Scan};
pub use scheduler::Fired;

/// Daily stats keys expire this long after their first write.
pub const STATS_TTL: Duration = Duration::from_secs(90 * 24 * 3600);
/// The most archived tasks a queue keeps by default (asynq's 10,000; its off-by-one keeps 9,999).
pub const ARCHIVE_MAX_SIZE: i64 = 10_000;
/// Archived tasks older than this are deleted, by default, when another task is archived.
pub const ARCHIVE_MAX_AGE: Duration = Duration::from_secs(90 * 24 * 3600);

/// How much of the archive is kept: trimmed whenever a task is archived (asynq hard-codes
/// [`ARCHIVE_MAX_SIZE`] and [`ARCHIVE_MAX_AGE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveLimits {
    /// The most archived tasks kept per queue (the oldest go first).
    pub max_size: i64,
    /// Archived tasks older than this are deleted.
    pub max_age: Duration,
}

/// Durable mode: a write counts as done only once `WAIT` says `replicas` replicas have it.
/// Redis replicates asynchronously, so without it an acknowledged write can vanish when a master
/// fails before its replicas received it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Durability {
    /// How many replicas must confirm each write (at least 1).
    pub replicas: u32,
    /// How long to wait for them before the write is reported unconfirmed.
    pub timeout: Duration,
}

/// Replicas waited for when no timeout is given.
pub const REPLICA_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest wait for replicas a write may ask for.
pub const MAX_REPLICA_TIMEOUT: Duration = Duration::from_secs(10);

impl Durability {
    /// Durable mode for `replicas` replicas (0: off), checking the settings: at most 100
    /// replicas, a timeout from 1 ms to [`MAX_REPLICA_TIMEOUT`].
    pub fn new(replicas: i64, timeout: Duration) -> Result<Option<Self>> {
        if !(0..=100).contains(&replicas) {
            return Err(Error::InvalidArgument(format!(
                "wait_for_replicas must be between 0 (off) and 100, got {replicas}"
            )));
        }
        // Below the connections' 30 s reply timeout, with room for the command itself.
        if timeout < Duration::from_millis(1) || timeout > MAX_REPLICA_TIMEOUT {
            return Err(Error::invalid("replica_timeout must be between 1 ms and 10 s"));
        }
        Ok((replicas > 0).then_some(Self { replicas: replicas as u32, timeout }))
    }
}

/// The largest archive a queue may keep (each archived task is a hash in Redis's memory).
pub const MAX_ARCHIVE_SIZE: i64 = 100_000_000;

impl ArchiveLimits {
    /// Checks the limits: a size of 1 to [`MAX_ARCHIVE_SIZE`], a positive age of at most 100
    /// years.
    pub fn validate(&self) -> Result<()> {
        if !(1..=MAX_ARCHIVE_SIZE).contains(&self.max_size) {
            return Err(Error::InvalidArgument(format!(
                "archive_max_size must be between 1 and {MAX_ARCHIVE_SIZE}, got {}",
                self.max_size
            )));
        }
        if self.max_age.is_zero() || self.max_age > crate::options::MAX_DURATION {
            return Err(Error::invalid("archive_max_age must be positive and at most 100 years"));
        }
        Ok(())
    }
}

impl Default for ArchiveLimits {
    fn default() -> Self {
        Self { max_size: ARCHIVE_MAX_SIZE, max_age: ARCHIVE_MAX_AGE }
    }
}
/// Tasks moved per forward script call, as asynq.
pub const FORWARD_BATCH: usize = 100;
/// Most successes written by one done_batch call.
pub const FINISH_BATCH: usize = 100;

/// A Redis connection that speaks asynq's layout.
pub struct Rdb {
    conn: Conn,
    keys: Keys,
    retry_stale: bool,
    /// A Redis Cluster: every script call and transaction keeps to one slot, so calls that
    /// would span queues are made per queue.
    cluster: bool,
    /// Durable mode: enqueues, leases and outcomes wait for replicas (`WAIT`).
    durability: Option<Durability>,
    /// The connection every call of the last [`Rdb::run_pipeline`] ran on (`None`: more than
    /// one), for [`Rdb::confirm`].
    pipeline_on: Option<u64>,
    /// How archives are trimmed when a task is archived; `None` (an Inspector given no limits)
    /// archives by hand without trimming: the servers trim with their own limits.
    archive: Option<ArchiveLimits>,
    /// Declared-keys mode: the dequeue names every task hash it touches in KEYS, from the ids
    /// its last reply found at the tail of each queue's pending list.
    declare_keys: bool,
    /// In declared-keys mode, the ids at the tail of each queue's pending list, as the last
    /// dequeue that served or stopped at the queue left them (the next to pop last).
    ahead: std::collections::HashMap<String, Vec<Vec<u8>>>,
}

impl Rdb {
    /// An `Rdb` on its own lazily-connected connection.
    /// Commands that fail because a reused connection died (Redis restarted, an idle timeout)
    /// are retried once on a fresh one. Every script is safe to run twice: a second run of an
    /// outcome finds the task gone (code 0, [`Error::NotFound`]) and changes nothing.
    pub fn new(cfg: &ConnConfig, keys: Keys) -> Self {
        Self {
            conn: cfg.connect_lazy(),
            keys,
            retry_stale: true,
            cluster: cfg.is_cluster(),
            durability: cfg.durability,
            pipeline_on: None,
            archive: Some(ArchiveLimits::default()),
            declare_keys: false,
            ahead: std::collections::HashMap::new(),
        }
    }

    /// As this, with the dequeue naming every task hash it touches in KEYS (for proxies that
    /// refuse a script touching any other key): each call names the ids the last one found at
    /// the tail of pending, and a task it was not told of waits for the next call.
    pub fn with_declared_keys(mut self, on: bool) -> Self {
        self.declare_keys = on;
        self
    }

    /// As [`Rdb::new`] without the retry: for enqueues, where a second run after an unseen first
    /// success would report a false ID conflict to the caller.
    pub fn without_retry(mut self) -> Self {
        self.retry_stale = false;
        self
    }

    /// As this, trimming archives to `limits` instead of asynq's (`None`: not trimming archives
    /// it writes by hand; the server's own archive writes always trim).
    pub fn with_archive_limits(mut self, limits: Option<ArchiveLimits>) -> Self {
        self.archive = limits;
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
            Err(e) if (reused && self.retry_stale && e.is_connection_error()) || self.conn.redirected() => {
                log::debug!("retrying on a fresh connection after: {e}");
                self.conn.run(f)
            }
            out => out,
        }
    }

    /// Runs `f` once, never on a second connection (for calls that must not run twice), unless
    /// a cluster redirected it (MOVED, ASK, TRYAGAIN, CLUSTERDOWN, MASTERDOWN): it did not run
    /// then, and runs once more on a fresh connection, with the cluster's new slot map.
    pub(crate) fn run_once<T>(&mut self, mut f: impl FnMut(&mut conn::Link) -> Result<T>) -> Result<T> {
        match self.conn.run(&mut f) {
            Err(e) if self.conn.redirected() => {
                log::debug!("running again after a redirect: {e}");
                self.conn.run(f)
            }
            out => out,
        }
    }

    /// Round-trips a PING.
    /// Checks Redis answers. A server still loading its dataset (`LOADING`) or a replica whose
    /// master is down (`MASTERDOWN`) is unreachable for this purpose: a caller waiting for Redis
    /// keeps waiting.
    pub fn ping(&mut self) -> Result<()> {
        let addr = self.conn.config().addr().to_string();
        self.run(|c| Ok(c.query_one_node::<String>(&redis::cmd("PING")).map(|_| ())?)).map_err(|e| match e {
            Error::Redis(r) if is_not_ready(&r) => {
                Error::Connection(format!("redis at {addr} is not ready: {r}"))
            }
            other => other,
        })
    }

    /// A dedicated connection for Pub/Sub.
    pub fn pubsub_connection(&self) -> Result<Connection> {
        self.conn.pubsub_connection()
    }

    /// The connection in use now (see [`Conn::generation`]): taken right after a write, it is
    /// what [`Rdb::confirm`] checks its `WAIT` goes over.
    pub(crate) fn generation(&self) -> Option<u64> {
        self.conn.generation()
    }

    /// In durable mode, waits until the replicas confirm this connection's writes to `queues`
    /// (one `WAIT` on one server; one per queue's master on a cluster, each node confirming only
    /// its own writes). [`Error::NotReplicated`] when too few did in time: the writes are on the
    /// master, and may be lost if it fails now. `written_on` is the connection the writes were
    /// made on ([`Rdb::generation`] right after them): a `WAIT` on another would confirm
    /// nothing, so a connection replaced in between is [`Error::NotReplicated`] too.
    pub(crate) fn confirm(&mut self, written_on: Option<u64>, queues: &[&str], what: &str) -> Result<()> {
        let Some(d) = self.durability else { return Ok(()) };
        let unconfirmed = |why: String| {
            Error::NotReplicated(format!(
                "the {what} is on the master, but {why}: it is lost if the master fails before a \
                 replica has it"
            ))
        };
        let mut seen: Vec<&str> = Vec::new();
        for q in queues {
            if seen.contains(q) || (!self.cluster && !seen.is_empty()) {
                continue;
            }
            seen.push(q);
            let key = self.keys.queue_prefix(q);
            let mut wait = redis::cmd("WAIT");
            wait.arg(d.replicas).arg(u64::try_from(d.timeout.as_millis()).unwrap_or(u64::MAX));
            if written_on.is_none() || self.conn.generation() != written_on {
                return Err(unconfirmed("the connection it was written on was lost".into()));
            }
            // Never on a second connection, even after a redirect: a `WAIT` there confirms
            // nothing of these writes.
            let got: i64 = self.conn.run(|c| Ok(c.query_at_slot_of(&wait, &key)?))?;
            if got < i64::from(d.replicas) {
                return Err(unconfirmed(format!(
                    "only {got} of {} replicas confirmed it within {:?}",
                    d.replicas, d.timeout
                )));
            }
        }
        Ok(())
    }
}

/// Whether Redis answered that it cannot serve yet (loading its dataset, or a replica whose
/// master is down).
fn is_not_ready(e: &redis::RedisError) -> bool {
    matches!(
        e.kind(),
        redis::ErrorKind::Server(redis::ServerErrorKind::BusyLoading | redis::ServerErrorKind::MasterDown)
    )
}

/// The reply of an outcome script: 1 done, 0 the task is not active here (another server moved
/// it, or it was never leased by us).
pub(crate) fn outcome_code(v: Value, what: &str) -> Result<()> {
    match v {
        Value::Int(1) => Ok(()),
        Value::Int(0) => Err(Error::NotFound),
        other => Err(Error::protocol(format!("{what} returned {other:?}"))),
    }
}

pub(crate) fn bytes_of(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        _ => None,
    }
}

pub(crate) fn string_of(v: Value) -> Option<String> {
    bytes_of(v).and_then(|b| String::from_utf8(b).ok())
}

/// Splits a flat `id, msg, id, msg, ...` script reply.
pub(crate) fn pairs(reply: Value) -> Result<Vec<(String, Option<Vec<u8>>)>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redis_that_is_loading_or_without_its_master_is_not_ready() {
        use redis::{ErrorKind, ServerErrorKind};
        let loading = redis::RedisError::from((ErrorKind::Server(ServerErrorKind::BusyLoading), "loading"));
        let master = redis::RedisError::from((ErrorKind::Server(ServerErrorKind::MasterDown), "down"));
        let other = redis::RedisError::from((ErrorKind::Server(ServerErrorKind::ReadOnly), "ro"));
        assert!(is_not_ready(&loading) && is_not_ready(&master));
        assert!(!is_not_ready(&other));
    }

    #[test]
    fn outcome_codes_are_typed() {
        assert!(outcome_code(Value::Int(1), "done").is_ok());
        assert!(matches!(outcome_code(Value::Int(0), "done"), Err(Error::NotFound)));
        assert!(matches!(outcome_code(Value::Okay, "done"), Err(Error::Protocol(_))));
    }

    #[test]
    fn pairs_skip_ids_that_are_not_text() {
        let reply = Value::Array(vec![
            Value::BulkString(b"a".to_vec()),
            Value::BulkString(b"m".to_vec()),
            Value::BulkString(vec![0xff]),
            Value::BulkString(b"n".to_vec()),
            Value::BulkString(b"b".to_vec()),
            Value::Nil,
        ]);
        let got = pairs(reply).expect("an array");
        assert_eq!(got, vec![("a".into(), Some(b"m".to_vec())), ("b".into(), None)]);
    }
}
