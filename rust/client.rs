//! Turning a task and enqueue options into the message and placement asynq would write. Pure logic;
//! the Redis side is `rdb`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;
use prost::Message;

use crate::clock::{unix_secs, unix_secs_ceil};
use crate::error::{Error, Result};
use crate::info::{TaskInfo, TaskState};
use crate::message::TaskMessage;
use crate::options::{check_task_type, TaskOptions, DEFAULT_MAX_RETRY, DEFAULT_TIMEOUT};
use crate::rdb::{ConnConfig, EnqueueRequest, Fired, Keys, Placement, Rdb, RdbPool};
use crate::waiter::Waiter;

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

/// Builds the message and placement for one task, with asynq's option semantics.
pub fn build(
    keys: &Keys,
    task: NewTask,
    opts: &TaskOptions,
    now: SystemTime,
) -> Result<(EnqueueRequest, TaskInfo)> {
    check_task_type(&task.task_type)?;
    opts.validate()?;
    let queue = opts.queue_or_default().to_string();
    let id = opts.task_id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let deadline = opts.deadline.map(unix_secs);
    // asynq reads Timeout(0) as "not given": a message always carries a timeout or a deadline.
    let timeout = match (opts.timeout.filter(|t| !t.is_zero()), deadline) {
        (None, None) => DEFAULT_TIMEOUT.as_secs() as i64,
        (Some(t), _) => i64::try_from(t.as_secs()).unwrap_or(i64::MAX),
        (None, Some(_)) => 0,
    };
    let now_s = unix_secs(now);
    // Compared at full precision, as asynq (`processAt.After(now)`); the score is whole seconds.
    let delay = opts.process_at_from(now).and_then(|at| at.duration_since(now).ok()).filter(|d| !d.is_zero());
    let unique_ttl = match opts.unique {
        // A scheduled unique task holds its lock until process-at plus the TTL.
        Some(d) => i64::try_from(d.saturating_add(delay.unwrap_or_default()).as_secs()).unwrap_or(i64::MAX),
        None => 0,
    };
    let unique_key = if opts.unique.is_some() {
        keys.unique(&queue, &task.task_type, task.payload.as_deref())
    } else {
        String::new()
    };
    let mut headers = task.headers;
    headers.extend(opts.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
    let msg = TaskMessage {
        r#type: task.task_type,
        payload: task.payload.unwrap_or_default(),
        headers,
        id,
        queue,
        retry: opts.max_retry.unwrap_or(DEFAULT_MAX_RETRY),
        timeout,
        deadline: deadline.unwrap_or(0),
        unique_key,
        group_key: opts.group.clone().unwrap_or_default(),
        retention: opts.retention.map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)).unwrap_or(0),
        ..Default::default()
    };
    let (placement, state, next) = if let Some(d) = delay {
        // Rounded up: a task never runs before its time (asynq's scores are whole seconds).
        let at = unix_secs_ceil(now + d);
        (Placement::Scheduled(at), TaskState::Scheduled, at)
    } else if opts.group.is_some() {
        (Placement::Group, TaskState::Aggregating, 0)
    } else {
        (Placement::Pending, TaskState::Pending, now_s)
    };
    let info = TaskInfo::written(msg.clone(), state, next);
    Ok((EnqueueRequest { msg, placement, unique_ttl }, info))
}

/// A producer: builds messages and writes them through a connection pool.
pub struct Client {
    pool: RdbPool,
    /// Queues already added to `<ns>:queues` by this process (asynq caches the same way).
    registered: Mutex<HashSet<String>>,
    cfg: ConnConfig,
    /// Made by the first wait for a task's end; dropped (and its thread stopped) by `close`.
    waiter: Mutex<Option<Arc<Waiter>>>,
}

impl Client {
    /// A client for `url` in `namespace`.
    pub fn new(cfg: ConnConfig, keys: Keys, max_idle: usize) -> Result<Self> {
        Ok(Self {
            pool: RdbPool::new(cfg.clone(), keys, max_idle),
            registered: Mutex::new(HashSet::new()),
            cfg,
            waiter: Mutex::new(None),
        })
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
    pub fn enqueue(&self, task: NewTask, opts: &TaskOptions, now: SystemTime) -> Result<TaskInfo> {
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
        tasks: Vec<NewTask>,
        opts: &TaskOptions,
        now: SystemTime,
    ) -> Result<Vec<Result<TaskInfo>>> {
        self.enqueue_built(tasks.into_iter().map(|t| build(self.keys(), t, opts, now)).collect(), now)
    }

    /// Enqueues many tasks, each with its own options, in one pipeline; one result per task.
    pub fn enqueue_each(
        &self,
        tasks: Vec<(NewTask, &TaskOptions)>,
        now: SystemTime,
    ) -> Result<Vec<Result<TaskInfo>>> {
        self.enqueue_built(tasks.into_iter().map(|(t, o)| build(self.keys(), t, o, now)).collect(), now)
    }

    /// Writes the tasks that were built; each refused one keeps its error.
    fn enqueue_built(
        &self,
        items: Vec<Result<(EnqueueRequest, TaskInfo)>>,
        now: SystemTime,
    ) -> Result<Vec<Result<TaskInfo>>> {
        let mut reqs: Vec<EnqueueRequest> = Vec::with_capacity(items.len());
        // Per item: what it reports if its write succeeds, or why it was refused before sending.
        let mut built: Vec<Result<TaskInfo>> = Vec::with_capacity(items.len());
        for item in items {
            built.push(item.map(|(r, info)| {
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
        opts: &TaskOptions,
        entry_id: &str,
        fire_at: i64,
        last_ttl: u64,
        record_history: bool,
        now: SystemTime,
    ) -> Result<(Fired, TaskInfo)> {
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

    /// The waiter that tells this client's callers when a task ended (one Pub/Sub connection).
    pub fn waiter(&self) -> Arc<Waiter> {
        self.waiter
            .lock()
            .get_or_insert_with(|| Arc::new(Waiter::new(self.cfg.clone(), self.keys().clone())))
            .clone()
    }

    /// One task, read back (see [`Rdb::task_info`]).
    pub fn task_info(&self, q: &str, id: &str, now: SystemTime) -> Result<TaskInfo> {
        self.with_rdb(|rdb| rdb.task_info(q, id, now))
    }

    /// Runs `f` with a pooled connection (for inspection helpers).
    pub fn run<T>(&self, f: impl FnOnce(&mut Rdb) -> Result<T>) -> Result<T> {
        self.with_rdb(f)
    }

    /// Closes idle connections.
    pub fn close(&self) {
        // Taken out first: closing tells waiters, whose callbacks must not find the lock held.
        let waiter = self.waiter.lock().take();
        if let Some(w) = waiter {
            w.close();
        }
        self.pool.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::from_unix_secs;
    use std::time::Duration;

    fn task(t: &str, p: &[u8]) -> NewTask {
        NewTask { task_type: t.into(), payload: Some(p.to_vec()), headers: BTreeMap::new() }
    }

    #[test]
    fn defaults_follow_asynq() {
        let now = from_unix_secs(1_000);
        let (req, info) =
            build(&Keys::default(), task("t", b"x"), &TaskOptions::default(), now).expect("valid");
        assert_eq!(req.msg.queue, "default");
        assert_eq!(req.msg.retry, 25);
        assert_eq!(req.msg.timeout, 1800);
        assert_eq!(req.msg.deadline, 0);
        assert_eq!(req.placement, Placement::Pending);
        assert_eq!(info.state, TaskState::Pending);
        assert_eq!(req.msg.id.len(), 36);
    }

    #[test]
    fn options_table() {
        let now = from_unix_secs(1_000);
        let k = Keys::default();
        struct Case {
            opts: TaskOptions,
            timeout: i64,
            deadline: i64,
            placement: Placement,
            state: TaskState,
        }
        let cases = [
            Case {
                opts: TaskOptions { deadline: Some(from_unix_secs(2_000)), ..Default::default() },
                timeout: 0,
                deadline: 2_000,
                placement: Placement::Pending,
                state: TaskState::Pending,
            },
            Case {
                opts: TaskOptions { timeout: Some(Duration::from_secs(5)), ..Default::default() },
                timeout: 5,
                deadline: 0,
                placement: Placement::Pending,
                state: TaskState::Pending,
            },
            Case {
                opts: TaskOptions { process_at: Some(from_unix_secs(1_060)), ..Default::default() },
                timeout: 1800,
                deadline: 0,
                placement: Placement::Scheduled(1_060),
                state: TaskState::Scheduled,
            },
            Case {
                opts: TaskOptions { process_at: Some(from_unix_secs(10)), ..Default::default() },
                timeout: 1800,
                deadline: 0,
                placement: Placement::Pending,
                state: TaskState::Pending,
            },
            Case {
                opts: TaskOptions { group: Some("g".into()), ..Default::default() },
                timeout: 1800,
                deadline: 0,
                placement: Placement::Group,
                state: TaskState::Aggregating,
            },
        ];
        for c in cases {
            let (req, info) = build(&k, task("t", b""), &c.opts, now).expect("valid");
            assert_eq!((req.msg.timeout, req.msg.deadline), (c.timeout, c.deadline), "{:?}", c.opts);
            assert_eq!(req.placement, c.placement, "{:?}", c.opts);
            assert_eq!(info.state, c.state);
        }
    }

    #[test]
    fn zero_timeout_means_asynqs_default() {
        let now = from_unix_secs(1_000);
        let opts = TaskOptions { timeout: Some(Duration::ZERO), ..Default::default() };
        let (req, _) = build(&Keys::default(), task("t", b""), &opts, now).expect("valid");
        assert_eq!((req.msg.timeout, req.msg.deadline), (1800, 0));
    }

    #[test]
    fn process_at_is_compared_at_full_precision() {
        let now = crate::clock::from_unix_nanos(1_000_100_000_000);
        let at = crate::clock::from_unix_nanos(1_000_900_000_000);
        let opts = TaskOptions { process_at: Some(at), ..Default::default() };
        let (req, info) = build(&Keys::default(), task("t", b""), &opts, now).expect("valid");
        // Scheduled (it is later than now), at the next whole second: never early.
        assert_eq!(req.placement, Placement::Scheduled(1_001));
        assert_eq!(info.state, TaskState::Scheduled);
    }

    #[test]
    fn unique_ttl_extends_to_process_at() {
        let now = from_unix_secs(1_000);
        let opts = TaskOptions {
            unique: Some(Duration::from_secs(60)),
            process_at: Some(from_unix_secs(1_100)),
            ..Default::default()
        };
        let (req, _) = build(&Keys::default(), task("t", b""), &opts, now).expect("valid");
        assert_eq!(req.unique_ttl, 160);
        assert_eq!(req.msg.unique_key, "asynq:{default}:unique:t:d41d8cd98f00b204e9800998ecf8427e");
        let nil = NewTask { payload: None, ..task("t", b"") };
        let (req, _) = build(&Keys::default(), nil, &opts, now).expect("valid");
        assert_eq!(req.msg.unique_key, "asynq:{default}:unique:t:");
    }

    #[test]
    fn bad_input_is_rejected() {
        let now = from_unix_secs(1_000);
        let k = Keys::default();
        let bad = [
            (task(" ", b""), TaskOptions::default()),
            (task("t", b""), TaskOptions { queue: Some("".into()), ..Default::default() }),
            (task("t", b""), TaskOptions { task_id: Some(" ".into()), ..Default::default() }),
            (task("t", b""), TaskOptions { group: Some("".into()), ..Default::default() }),
            (task("t", b""), TaskOptions { unique: Some(Duration::from_millis(500)), ..Default::default() }),
            (task("t", b""), TaskOptions { max_retry: Some(-3), ..Default::default() }),
        ];
        for (t, o) in bad {
            assert!(matches!(build(&k, t, &o, now), Err(Error::InvalidArgument(_))));
        }
    }
}
