//! Turning a task and enqueue options into the message and placement asynq would write. Pure logic;
//! the Redis side is `rdb`.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

use crate::clock::unix_secs;
use crate::error::{Error, Result};
use crate::message::TaskMessage;
use prost::Message;

use crate::rdb::{ConnConfig, EnqueueRequest, Fired, Keys, Placement, Rdb, RdbPool};

/// asynq's default `MaxRetry`.
pub const DEFAULT_MAX_RETRY: i32 = 25;
/// asynq's default timeout, applied only when neither a timeout nor a deadline is given.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// asynq's default queue.
pub const DEFAULT_QUEUE: &str = "default";

/// A task to enqueue.
#[derive(Debug, Clone, Default)]
pub struct NewTask {
    /// Task type.
    pub task_type: String,
    /// Payload; `None` is Go's nil payload, which gives a different unique key than an empty one
    /// (see [`Keys::unique`]).
    pub payload: Option<Vec<u8>>,
    /// Headers.
    pub headers: BTreeMap<String, String>,
}

/// Enqueue options; `None` means asynq's default.
#[derive(Debug, Clone, Default)]
pub struct EnqueueOptions {
    /// Queue name (default `default`).
    pub queue: Option<String>,
    /// Retries allowed (default 25; negative → 0).
    pub max_retry: Option<i32>,
    /// Handler time limit; zero = none.
    pub timeout: Option<Duration>,
    /// Absolute deadline, Unix seconds.
    pub deadline: Option<i64>,
    /// Unique lock TTL (≥ 1 s).
    pub unique: Option<Duration>,
    /// When to process.
    pub process_at: Option<SystemTime>,
    /// Task ID (default random UUID v4).
    pub task_id: Option<String>,
    /// How long to keep the task after success.
    pub retention: Option<Duration>,
    /// Aggregation group.
    pub group: Option<String>,
}

/// What an enqueue produced, for `TaskInfo`.
#[derive(Debug, Clone)]
pub struct Enqueued {
    /// The stored message.
    pub msg: TaskMessage,
    /// `pending`, `scheduled` or `aggregating`.
    pub state: &'static str,
    /// When it will be processed, Unix seconds (now for pending).
    pub next_process_at: i64,
}

fn non_blank(what: &str, v: &str) -> Result<()> {
    if v.trim().is_empty() {
        return Err(Error::InvalidArgument(format!("{what} must not be blank")));
    }
    Ok(())
}

/// Builds the message and placement for one task, with asynq's option semantics.
pub fn build(
    keys: &Keys,
    task: NewTask,
    opts: EnqueueOptions,
    now: SystemTime,
) -> Result<(EnqueueRequest, Enqueued)> {
    non_blank("task type", &task.task_type)?;
    let queue = opts.queue.unwrap_or_else(|| DEFAULT_QUEUE.to_string());
    non_blank("queue name", &queue)?;
    let id = match opts.task_id {
        Some(id) => {
            non_blank("task id", &id)?;
            id
        }
        None => uuid::Uuid::new_v4().to_string(),
    };
    if let Some(g) = &opts.group {
        non_blank("group", g)?;
    }
    // asynq reads Timeout(0) as "not given": a message always carries a timeout or a deadline.
    let timeout = match (opts.timeout.filter(|t| !t.is_zero()), opts.deadline) {
        (None, None) => DEFAULT_TIMEOUT.as_secs() as i64,
        (Some(t), _) => i64::try_from(t.as_secs()).unwrap_or(i64::MAX),
        (None, Some(_)) => 0,
    };
    let now_s = unix_secs(now);
    // Compared at full precision, as asynq (`processAt.After(now)`); the score is whole seconds.
    let delay = opts.process_at.and_then(|at| at.duration_since(now).ok()).filter(|d| !d.is_zero());
    let unique_ttl = match opts.unique {
        Some(d) if d < Duration::from_secs(1) => {
            return Err(Error::InvalidArgument("unique TTL must be at least 1 second".into()))
        }
        // A scheduled unique task holds its lock until process-at plus the TTL.
        Some(d) => i64::try_from(d.saturating_add(delay.unwrap_or_default()).as_secs()).unwrap_or(i64::MAX),
        None => 0,
    };
    let payload_for_key = task.payload.as_deref();
    let unique_key = if opts.unique.is_some() {
        keys.unique(&queue, &task.task_type, payload_for_key)
    } else {
        String::new()
    };
    let msg = TaskMessage {
        r#type: task.task_type,
        payload: task.payload.unwrap_or_default(),
        headers: task.headers,
        id,
        queue,
        retry: opts.max_retry.unwrap_or(DEFAULT_MAX_RETRY).max(0),
        timeout,
        deadline: opts.deadline.unwrap_or(0),
        unique_key,
        group_key: opts.group.clone().unwrap_or_default(),
        retention: opts.retention.map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)).unwrap_or(0),
        ..Default::default()
    };
    let (placement, state, next) = if let Some(d) = delay {
        let at = unix_secs(now + d);
        (Placement::Scheduled(at), "scheduled", at)
    } else if opts.group.is_some() {
        (Placement::Group, "aggregating", 0)
    } else {
        (Placement::Pending, "pending", now_s)
    };
    let info = Enqueued { msg: msg.clone(), state, next_process_at: next };
    Ok((EnqueueRequest { msg, placement, unique_ttl }, info))
}

/// A producer: builds messages and writes them through a connection pool.
pub struct Client {
    pool: RdbPool,
    /// Queues already added to `<ns>:queues` by this process (asynq caches the same way).
    registered: Mutex<HashSet<String>>,
}

impl Client {
    /// A client for `url` in `namespace`.
    pub fn new(cfg: ConnConfig, keys: Keys, max_idle: usize) -> Result<Self> {
        Ok(Self { pool: RdbPool::new(cfg, keys, max_idle), registered: Mutex::new(HashSet::new()) })
    }

    /// The key builder.
    pub fn keys(&self) -> &Keys {
        self.pool.keys()
    }

    fn with_rdb<T>(&self, f: impl FnOnce(&mut Rdb) -> Result<T>) -> Result<T> {
        self.pool.with(f)
    }

    fn register(&self, rdb: &mut Rdb, queues: &[&str]) -> Result<()> {
        let missing: Vec<&str> = {
            let reg = self.registered.lock();
            queues.iter().copied().filter(|q| !reg.contains(*q)).collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        rdb.register_queues(&missing)?;
        self.registered.lock().extend(missing.into_iter().map(str::to_string));
        Ok(())
    }

    /// Enqueues one task.
    pub fn enqueue(&self, task: NewTask, opts: EnqueueOptions, now: SystemTime) -> Result<Enqueued> {
        let (req, info) = build(self.keys(), task, opts, now)?;
        self.with_rdb(|rdb| {
            self.register(rdb, &[req.msg.queue.as_str()])?;
            rdb.enqueue(&req, now)
        })?;
        Ok(info)
    }

    /// Enqueues many tasks in one pipeline; one result per task, in order.
    pub fn enqueue_many(
        &self,
        items: Vec<(NewTask, EnqueueOptions)>,
        now: SystemTime,
    ) -> Result<Vec<Result<Enqueued>>> {
        let mut reqs: Vec<EnqueueRequest> = Vec::with_capacity(items.len());
        // Per item: what it reports if its write succeeds, or why it was refused before sending.
        let mut built: Vec<Result<Enqueued>> = Vec::with_capacity(items.len());
        for (t, o) in items {
            built.push(build(self.keys(), t, o, now).map(|(r, info)| {
                reqs.push(r);
                info
            }));
        }
        let mut queues: Vec<&str> = reqs.iter().map(|r| r.msg.queue.as_str()).collect();
        queues.sort_unstable();
        queues.dedup();
        let mut written = self
            .with_rdb(|rdb| {
                self.register(rdb, &queues)?;
                rdb.enqueue_many(&reqs, now)
            })?
            .into_iter();
        Ok(built
            .into_iter()
            .map(|b| match b {
                Ok(info) => match written.next() {
                    Some(Ok(())) => Ok(info),
                    Some(Err(e)) => Err(e),
                    None => Err(Error::protocol("missing pipeline reply")),
                },
                Err(e) => Err(e),
            })
            .collect())
    }

    /// Enqueues one firing of a periodic entry exactly once across replicas (see
    /// [`Rdb::periodic_enqueue`]). Returns what happened and the task as it would be written.
    pub fn periodic_enqueue(
        &self,
        task: NewTask,
        opts: EnqueueOptions,
        entry_id: &str,
        fire_at: i64,
        last_ttl: u64,
        record_history: bool,
        now: SystemTime,
    ) -> Result<(Fired, Enqueued)> {
        let (req, info) = build(self.keys(), task, opts, now)?;
        let event = record_history.then(|| {
            crate::proto::SchedulerEnqueueEvent {
                task_id: req.msg.id.clone(),
                enqueue_time: Some(crate::message::timestamp(now)),
            }
            .encode_to_vec()
        });
        let fired = self.with_rdb(|rdb| {
            self.register(rdb, &[req.msg.queue.as_str()])?;
            rdb.periodic_enqueue(&req, entry_id, fire_at, last_ttl, event.clone(), now)
        })?;
        Ok((fired, info))
    }

    /// Runs `f` with a pooled connection (for inspection helpers).
    pub fn run<T>(&self, f: impl FnOnce(&mut Rdb) -> Result<T>) -> Result<T> {
        self.with_rdb(f)
    }

    /// Closes idle connections.
    pub fn close(&self) {
        self.pool.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::from_unix_secs;

    fn task(t: &str, p: &[u8]) -> NewTask {
        NewTask { task_type: t.into(), payload: Some(p.to_vec()), headers: BTreeMap::new() }
    }

    #[test]
    fn defaults_follow_asynq() {
        let now = from_unix_secs(1_000);
        let (req, info) =
            build(&Keys::default(), task("t", b"x"), EnqueueOptions::default(), now).expect("valid");
        assert_eq!(req.msg.queue, "default");
        assert_eq!(req.msg.retry, 25);
        assert_eq!(req.msg.timeout, 1800);
        assert_eq!(req.msg.deadline, 0);
        assert_eq!(req.placement, Placement::Pending);
        assert_eq!(info.state, "pending");
        assert_eq!(req.msg.id.len(), 36);
    }

    #[test]
    fn options_table() {
        let now = from_unix_secs(1_000);
        let k = Keys::default();
        struct Case {
            opts: EnqueueOptions,
            timeout: i64,
            deadline: i64,
            placement: Placement,
            state: &'static str,
        }
        let cases = [
            Case {
                opts: EnqueueOptions { deadline: Some(2_000), ..Default::default() },
                timeout: 0,
                deadline: 2_000,
                placement: Placement::Pending,
                state: "pending",
            },
            Case {
                opts: EnqueueOptions { timeout: Some(Duration::from_secs(5)), ..Default::default() },
                timeout: 5,
                deadline: 0,
                placement: Placement::Pending,
                state: "pending",
            },
            Case {
                opts: EnqueueOptions { process_at: Some(from_unix_secs(1_060)), ..Default::default() },
                timeout: 1800,
                deadline: 0,
                placement: Placement::Scheduled(1_060),
                state: "scheduled",
            },
            Case {
                opts: EnqueueOptions { process_at: Some(from_unix_secs(10)), ..Default::default() },
                timeout: 1800,
                deadline: 0,
                placement: Placement::Pending,
                state: "pending",
            },
            Case {
                opts: EnqueueOptions { group: Some("g".into()), ..Default::default() },
                timeout: 1800,
                deadline: 0,
                placement: Placement::Group,
                state: "aggregating",
            },
        ];
        for c in cases {
            let (req, info) = build(&k, task("t", b""), c.opts.clone(), now).expect("valid");
            assert_eq!((req.msg.timeout, req.msg.deadline), (c.timeout, c.deadline), "{:?}", c.opts);
            assert_eq!(req.placement, c.placement, "{:?}", c.opts);
            assert_eq!(info.state, c.state);
        }
    }

    #[test]
    fn zero_timeout_means_asynqs_default() {
        let now = from_unix_secs(1_000);
        let opts = EnqueueOptions { timeout: Some(Duration::ZERO), ..Default::default() };
        let (req, _) = build(&Keys::default(), task("t", b""), opts, now).expect("valid");
        assert_eq!((req.msg.timeout, req.msg.deadline), (1800, 0));
    }

    #[test]
    fn process_at_is_compared_at_full_precision() {
        let now = crate::clock::from_unix_nanos(1_000_100_000_000);
        let at = crate::clock::from_unix_nanos(1_000_900_000_000);
        let opts = EnqueueOptions { process_at: Some(at), ..Default::default() };
        let (req, info) = build(&Keys::default(), task("t", b""), opts, now).expect("valid");
        assert_eq!(req.placement, Placement::Scheduled(1_000));
        assert_eq!(info.state, "scheduled");
    }

    #[test]
    fn unique_ttl_extends_to_process_at() {
        let now = from_unix_secs(1_000);
        let opts = EnqueueOptions {
            unique: Some(Duration::from_secs(60)),
            process_at: Some(from_unix_secs(1_100)),
            ..Default::default()
        };
        let (req, _) = build(&Keys::default(), task("t", b""), opts.clone(), now).expect("valid");
        assert_eq!(req.unique_ttl, 160);
        assert_eq!(req.msg.unique_key, "asynq:{default}:unique:t:d41d8cd98f00b204e9800998ecf8427e");
        let nil = NewTask { payload: None, ..task("t", b"") };
        let (req, _) = build(&Keys::default(), nil, opts, now).expect("valid");
        assert_eq!(req.msg.unique_key, "asynq:{default}:unique:t:");
    }

    #[test]
    fn bad_input_is_rejected() {
        let now = from_unix_secs(1_000);
        let k = Keys::default();
        let bad = [
            (task(" ", b""), EnqueueOptions::default()),
            (task("t", b""), EnqueueOptions { queue: Some("".into()), ..Default::default() }),
            (task("t", b""), EnqueueOptions { task_id: Some(" ".into()), ..Default::default() }),
            (task("t", b""), EnqueueOptions { group: Some("".into()), ..Default::default() }),
            (
                task("t", b""),
                EnqueueOptions { unique: Some(Duration::from_millis(500)), ..Default::default() },
            ),
        ];
        for (t, o) in bad {
            assert!(matches!(build(&k, t, o, now), Err(Error::InvalidArgument(_))));
        }
        let (req, _) =
            build(&k, task("t", b""), EnqueueOptions { max_retry: Some(-3), ..Default::default() }, now)
                .expect("valid");
        assert_eq!(req.msg.retry, 0);
    }
}
