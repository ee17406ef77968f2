//! `NativeClient`: the producer side (and the scheduler's writes).

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use pyo3::prelude::*;
use pyo3::types::PyList;

use super::info::PyTaskInfo;
use super::options::PyTaskOptions;
use super::{duration, Seconds, StrictInt};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::client::{Client, NewTask};
use crate::error::Error;
use crate::info::TaskInfo;
use crate::io::{Deliver, Io, Job, Reply};
use crate::options::TaskOptions;
use crate::rdb::keys::DEFAULT_NAMESPACE;
use crate::rdb::{ConnConfig, Fired, Keys};
use crate::waiter::End;

/// What one periodic firing did.
#[pyclass(module = "ferroq._native", name = "Fired", eq, eq_int, frozen)]
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum PyFired {
    /// This replica enqueued it.
    #[pyo3(name = "ENQUEUED")]
    Enqueued,
    /// Another replica had (or has now) enqueued it.
    #[pyo3(name = "ALREADY_FIRED")]
    AlreadyFired,
    /// A unique duplicate holds the lock: the firing is spent without a task.
    #[pyo3(name = "DUPLICATE")]
    Duplicate,
}

impl From<Fired> for PyFired {
    fn from(f: Fired) -> Self {
        match f {
            Fired::Enqueued => Self::Enqueued,
            Fired::AlreadyFired => Self::AlreadyFired,
            Fired::Duplicate => Self::Duplicate,
        }
    }
}

/// The Rust client behind `ferroq.Client` and `ferroq.Scheduler`.
#[pyclass(module = "ferroq._native", frozen)]
pub struct NativeClient {
    inner: Arc<Client>,
    /// The I/O thread of asyncio callers (`AsyncClient`), started by the first `start_io`.
    io: Mutex<Option<Io<Py<PyAny>>>>,
}

fn new_task(task_type: String, payload: Option<Vec<u8>>, headers: BTreeMap<String, String>) -> NewTask {
    NewTask { task_type, payload, headers }
}

/// How often a thread waiting for a task's end returns to Python to handle signals.
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// A waited task's end as the task read back, or the error that tells why there is none.
fn end_result(queue: &str, task_id: &str, end: End) -> crate::error::Result<TaskInfo> {
    match end {
        End::Ended(info) => Ok(*info),
        End::Gone => Err(Error::TaskNotFound { queue: queue.to_string(), id: task_id.to_string() }),
        End::Closed => Err(Error::Connection("the client was closed while waiting for a task".into())),
    }
}

impl NativeClient {
    fn submit(&self, job: Job, context: Py<PyAny>) -> PyResult<()> {
        let io = self.io.lock();
        let Some(io) = io.as_ref() else {
            return Err(Error::invalid("start_io was not called").into());
        };
        io.submit(job, context).map_err(|_| Error::Thread("ferroq-io has stopped".into()).into())
    }
}

/// The options of a submitted job, owned by it (a `TaskOptions` is frozen: one clone).
fn shared_options(o: Option<&Bound<'_, PyTaskOptions>>) -> Arc<TaskOptions> {
    Arc::new(options(o).clone())
}

/// Hands a batch of I/O replies to the Python `deliver` callable.
fn deliver_to(deliver: Py<PyAny>) -> Deliver<Py<PyAny>> {
    Box::new(move |batch: Vec<(Py<PyAny>, crate::error::Result<Reply>)>| {
        Python::attach(|py| {
            let items = PyList::empty(py);
            for (ctx, reply) in batch {
                // Each item settles on its own: a reply that cannot be converted fails its own
                // future, not the batch's.
                let (ok, value) = match reply.map_err(PyErr::from).and_then(|r| reply_value(py, r)) {
                    Ok(v) => (true, v),
                    Err(e) => (false, e.into_value(py).into_any()),
                };
                if let Err(e) = items.append((ctx, ok, value)) {
                    e.write_unraisable(py, None);
                }
            }
            if let Err(e) = deliver.call1(py, (items,)) {
                e.write_unraisable(py, None);
            }
        })
    })
}

fn reply_value(py: Python<'_>, r: Reply) -> PyResult<Py<PyAny>> {
    Ok(match r {
        Reply::Info(info) => Py::new(py, PyTaskInfo { inner: *info })?.into_any(),
        Reply::Many(results) => {
            let out = PyList::empty(py);
            for r in results {
                match r {
                    Ok(info) => out.append(PyTaskInfo { inner: info })?,
                    Err(e) => out.append(PyErr::from(e).into_value(py))?,
                }
            }
            out.into_any().unbind()
        }
        Reply::Pong => py.None(),
    })
}

/// No options: asynq's defaults for everything.
static NO_OPTIONS: std::sync::LazyLock<TaskOptions> = std::sync::LazyLock::new(TaskOptions::default);

/// The options a call was given, borrowed (a `TaskOptions` is frozen: nothing to copy).
fn options<'a>(o: Option<&'a Bound<'_, PyTaskOptions>>) -> &'a TaskOptions {
    o.map_or(&NO_OPTIONS, |o| &o.get().inner)
}

#[pymethods]
impl NativeClient {
    #[new]
    #[pyo3(signature = (url, namespace = None, max_idle = 8, tls_ca = None, wait_for_replicas = None, replica_timeout = None))]
    fn new(
        url: &str,
        namespace: Option<&str>,
        max_idle: usize,
        tls_ca: Option<Vec<u8>>,
        wait_for_replicas: Option<StrictInt<i64>>,
        replica_timeout: Option<Seconds>,
    ) -> PyResult<Self> {
        let timeout = match replica_timeout {
            Some(s) => duration("replica_timeout", s.0)?,
            None => crate::rdb::REPLICA_TIMEOUT,
        };
        let durability = crate::rdb::Durability::new(wait_for_replicas.map_or(0, |n| n.0), timeout)?;
        let cfg = ConnConfig::from_url_with_ca(url, tls_ca)?.with_durability(durability);
        let keys = Keys::new(namespace.unwrap_or(DEFAULT_NAMESPACE));
        Ok(Self { inner: Arc::new(Client::new(cfg, keys, max_idle)?), io: Mutex::new(None) })
    }

    /// Enqueues one task.
    #[pyo3(signature = (task_type, payload, headers, options = None))]
    fn enqueue(
        &self,
        py: Python<'_>,
        task_type: String,
        payload: Option<Vec<u8>>,
        headers: BTreeMap<String, String>,
        options: Option<Bound<'_, PyTaskOptions>>,
    ) -> PyResult<PyTaskInfo> {
        let task = new_task(task_type, payload, headers);
        let opts = self::options(options.as_ref());
        let info = py.detach(|| self.inner.enqueue(task, opts, SystemTime::now()))?;
        Ok(PyTaskInfo { inner: info })
    }

    /// Enqueues many tasks (`types[i]`, `payloads[i]`, `headers[i]`) with the same options in
    /// one pipeline; returns a `TaskInfo` or an exception per task.
    #[pyo3(signature = (types, payloads, headers, options = None))]
    fn enqueue_many<'py>(
        &self,
        py: Python<'py>,
        types: Vec<String>,
        payloads: Vec<Option<Vec<u8>>>,
        headers: Vec<BTreeMap<String, String>>,
        options: Option<Bound<'_, PyTaskOptions>>,
    ) -> PyResult<Bound<'py, PyList>> {
        if types.len() != payloads.len() || types.len() != headers.len() {
            return Err(crate::error::Error::invalid("types, payloads and headers differ in length").into());
        }
        let tasks: Vec<NewTask> =
            types.into_iter().zip(payloads).zip(headers).map(|((t, p), h)| new_task(t, p, h)).collect();
        let opts = self::options(options.as_ref());
        let results = py.detach(|| self.inner.enqueue_many(tasks, opts, SystemTime::now()))?;
        let out = PyList::empty(py);
        for r in results {
            match r {
                Ok(info) => out.append(PyTaskInfo { inner: info })?,
                Err(e) => out.append(PyErr::from(e).into_value(py))?,
            }
        }
        Ok(out)
    }

    /// Enqueues one firing of a periodic entry unless a replica already did; returns what
    /// happened and the task as it was (or would have been) written.
    #[pyo3(signature = (task_type, payload, headers, options, entry_id, fire_at, last_ttl, record_history = true))]
    fn periodic_enqueue(
        &self,
        py: Python<'_>,
        task_type: String,
        payload: Option<Vec<u8>>,
        headers: BTreeMap<String, String>,
        options: Bound<'_, PyTaskOptions>,
        entry_id: &str,
        fire_at: i64,
        last_ttl: u64,
        record_history: bool,
    ) -> PyResult<(PyFired, PyTaskInfo)> {
        let task = new_task(task_type, payload, headers);
        let opts = &options.get().inner;
        let (fired, info) = py.detach(|| {
            self.inner.periodic_enqueue(
                task,
                opts,
                entry_id,
                fire_at,
                last_ttl,
                record_history,
                SystemTime::now(),
            )
        })?;
        Ok((fired.into(), PyTaskInfo { inner: info }))
    }

    /// The last firing (Unix s) of a periodic entry that any replica enqueued.
    fn periodic_last(&self, py: Python<'_>, queue: &str, entry_id: &str) -> PyResult<Option<i64>> {
        Ok(py.detach(|| self.inner.run(|rdb| rdb.periodic_last(queue, entry_id)))?)
    }

    /// Publishes a scheduler's encoded `SchedulerEntry` messages for `ttl` seconds.
    fn write_scheduler_entries(
        &self,
        py: Python<'_>,
        scheduler_id: &str,
        entries: Vec<Vec<u8>>,
        ttl: f64,
    ) -> PyResult<()> {
        let ttl = duration("ttl", ttl)?;
        Ok(py.detach(|| {
            self.inner.run(|rdb| rdb.write_scheduler_entries(scheduler_id, &entries, ttl, SystemTime::now()))
        })?)
    }

    /// Removes a scheduler's published entries.
    fn clear_scheduler_entries(&self, py: Python<'_>, scheduler_id: &str) -> PyResult<()> {
        Ok(py.detach(|| self.inner.run(|rdb| rdb.clear_scheduler_entries(scheduler_id)))?)
    }

    /// Queues served by live servers, from their heartbeats.
    fn served_queues(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let set = py.detach(|| self.inner.run(|rdb| rdb.served_queues(SystemTime::now())))?;
        Ok(set.into_iter().collect())
    }

    /// One task, read back: `QueueNotFoundError`/`TaskNotFoundError` when it is not there.
    fn task_info(&self, py: Python<'_>, queue: &str, task_id: &str) -> PyResult<PyTaskInfo> {
        let info = py.detach(|| self.inner.task_info(queue, task_id, SystemTime::now()))?;
        Ok(PyTaskInfo { inner: info })
    }

    /// Waits up to `timeout` seconds (None: until it happens) for the task to end (completed
    /// or archived) and returns it as read after its end; None on timeout. Raises
    /// `TaskNotFoundError` when the task is gone (revoked, deleted, or ended without retention).
    /// Signals (Ctrl-C) are handled while waiting.
    #[pyo3(signature = (queue, task_id, timeout = None))]
    fn wait_task(
        &self,
        py: Python<'_>,
        queue: &str,
        task_id: &str,
        timeout: Option<f64>,
    ) -> PyResult<Option<PyTaskInfo>> {
        let limit = timeout.map(|t| duration("timeout", t)).transpose()?;
        let started = Instant::now();
        let waiter = self.inner.waiter();
        let (wid, slot) = py.detach(|| waiter.watch(queue, task_id))?;
        let out = loop {
            let left = limit.map(|l| l.saturating_sub(started.elapsed()));
            let step = left.map_or(SIGNAL_CHECK, |l| l.min(SIGNAL_CHECK));
            if let Some(end) = py.detach(|| slot.wait(step)) {
                break Ok(Some(end));
            }
            if let Err(e) = py.check_signals() {
                break Err(e);
            }
            if left.is_some_and(|l| l.is_zero()) {
                break Ok(None);
            }
        };
        waiter.unwatch(wid);
        match out? {
            // The waiter reads a task only once subscribed: a short timeout may end before that
            // first read, so a task that had already ended is read here.
            None => match py.detach(|| self.inner.task_info(queue, task_id, SystemTime::now())) {
                Ok(info) => {
                    let ended = matches!(
                        info.state,
                        crate::info::TaskState::Completed | crate::info::TaskState::Archived
                    );
                    Ok(ended.then_some(PyTaskInfo { inner: info }))
                }
                // As the waiter reports it: no such task (whether or not its queue exists).
                Err(Error::TaskNotFound { .. } | Error::QueueNotFound(_)) => {
                    Err(Error::TaskNotFound { queue: queue.to_string(), id: task_id.to_string() }.into())
                }
                // The wait ran out; a failing last look does not change that.
                Err(_) => Ok(None),
            },
            Some(end) => Ok(Some(PyTaskInfo { inner: end_result(queue, task_id, end)? })),
        }
    }

    /// Runs a scheduled, retry or archived task now (back to pending), as `Inspector.run_task`.
    fn run_task(&self, py: Python<'_>, queue: &str, task_id: &str) -> PyResult<()> {
        let act = |rdb: &mut crate::rdb::Rdb| {
            rdb.act_on_task(crate::rdb::admin::Action::Run, queue, task_id, SystemTime::now())
        };
        Ok(py.detach(|| self.inner.run(act))?)
    }

    /// Calls `callback(TaskInfo | FerroqError)` once, on the waiter thread, when the task ends
    /// (see `wait_task`); returns the watch's id for `unwatch`.
    fn watch_task(&self, py: Python<'_>, queue: &str, task_id: &str, callback: Py<PyAny>) -> PyResult<u64> {
        let (q, id) = (queue.to_string(), task_id.to_string());
        let deliver = Box::new(move |end: End| {
            Python::attach(|py| {
                let arg = match end_result(&q, &id, end) {
                    Ok(info) => Py::new(py, PyTaskInfo { inner: info }).map(Py::into_any),
                    Err(e) => Ok(PyErr::from(e).into_value(py).into_any()),
                };
                let called = arg.and_then(|a| callback.call1(py, (a,)));
                if let Err(e) = called {
                    e.write_unraisable(py, None);
                }
            })
        });
        let waiter = self.inner.waiter();
        Ok(py.detach(|| waiter.watch_with(queue, task_id, deliver))?)
    }

    /// Stops a watch of `watch_task`; its callback is not called afterwards.
    fn unwatch(&self, watch_id: u64) {
        self.inner.waiter().unwatch(watch_id);
    }

    /// Starts the I/O thread (once; later calls do nothing): every `submit_*` reply is handed
    /// to `deliver(list[(context, ok, value)])` on that thread, a batch at a time, `value` being
    /// the result or, when `ok` is False, the exception.
    fn start_io(&self, deliver: Py<PyAny>) -> PyResult<()> {
        let mut io = self.io.lock();
        if io.is_none() {
            *io = Some(Io::start(self.inner.clone(), deliver_to(deliver))?);
        }
        Ok(())
    }

    /// Enqueues one task on the I/O thread; the reply (a `TaskInfo`) goes to `deliver` with
    /// `context`. Never waits on Redis.
    #[pyo3(signature = (task_type, payload, headers, options, context))]
    fn submit_enqueue(
        &self,
        task_type: String,
        payload: Option<Vec<u8>>,
        headers: BTreeMap<String, String>,
        options: Option<Bound<'_, PyTaskOptions>>,
        context: Py<PyAny>,
    ) -> PyResult<()> {
        let opts = shared_options(options.as_ref());
        self.submit(Job::Enqueue(new_task(task_type, payload, headers), opts), context)
    }

    /// As `enqueue_many`, on the I/O thread; the reply is the list of results.
    #[pyo3(signature = (types, payloads, headers, options, context))]
    fn submit_enqueue_many(
        &self,
        types: Vec<String>,
        payloads: Vec<Option<Vec<u8>>>,
        headers: Vec<BTreeMap<String, String>>,
        options: Option<Bound<'_, PyTaskOptions>>,
        context: Py<PyAny>,
    ) -> PyResult<()> {
        if types.len() != payloads.len() || types.len() != headers.len() {
            return Err(Error::invalid("types, payloads and headers differ in length").into());
        }
        let tasks =
            types.into_iter().zip(payloads).zip(headers).map(|((t, p), h)| new_task(t, p, h)).collect();
        self.submit(Job::EnqueueMany(tasks, shared_options(options.as_ref())), context)
    }

    /// Reads one task on the I/O thread; the reply is its `TaskInfo`.
    fn submit_task_info(&self, queue: String, task_id: String, context: Py<PyAny>) -> PyResult<()> {
        self.submit(Job::TaskInfo(queue, task_id), context)
    }

    /// PING on the I/O thread; the reply is None.
    fn submit_ping(&self, context: Py<PyAny>) -> PyResult<()> {
        self.submit(Job::Ping, context)
    }

    /// Sends PING.
    fn ping(&self, py: Python<'_>) -> PyResult<()> {
        Ok(py.detach(|| self.inner.run(|rdb| rdb.ping()))?)
    }

    /// Closes idle connections.
    fn close(&self) {
        self.inner.close();
    }
}
