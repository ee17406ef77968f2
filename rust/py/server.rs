//! `NativeServer` and the types that cross the line with it: `ServerConfig` (settings in),
//! `Lease` (a leased task out), `Outcome` (how a run ended, in) and `CancelReason` (events out).

use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use super::info::PyTaskInfo;
use super::{duration, Seconds, StrictInt};
use crate::error::Error;
use crate::info::{TaskInfo, TaskState};
use crate::rdb::keys::DEFAULT_NAMESPACE;
use crate::rdb::{ConnConfig, Keys};
use crate::server::config::concurrency_or_default;
use crate::server::policy::will_retry;
use crate::server::{CancelReason, Failure, FailurePolicy, Handle, Lease, Outcome, ServerConfig, ServerCore};

/// A server's settings, checked when built; every option left out takes its default, and
/// `ServerConfig()` holds them all.
#[pyclass(module = "ferroq", name = "ServerConfig", frozen)]
#[derive(Clone)]
pub struct PyServerConfig {
    pub(crate) inner: ServerConfig,
}

/// Queue name → priority from any mapping, in its own order (equal priorities keep it).
fn queue_priorities(m: &Bound<'_, PyAny>) -> PyResult<Vec<(String, i32)>> {
    let bad =
        || pyo3::exceptions::PyTypeError::new_err("queues must map queue names (str) to priorities (int)");
    let items = m.call_method0("items").map_err(|_| bad())?;
    let mut out = Vec::new();
    for item in items.try_iter()? {
        let (name, p): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item?.extract()?;
        let name: String = name.extract().map_err(|_| bad())?;
        let StrictInt(p) = p.extract::<StrictInt<i32>>().map_err(|e| {
            if e.is_instance_of::<pyo3::exceptions::PyTypeError>(m.py()) {
                bad()
            } else {
                e
            }
        })?;
        out.push((name, p));
    }
    Ok(out)
}

/// A duration setting in seconds, or its default when not given (the rules are the config's).
fn secs_or(v: Option<Seconds>, what: &str, default: Duration) -> PyResult<Duration> {
    v.map(|s| duration(what, s.0)).transpose().map(|d| d.unwrap_or(default))
}

#[pymethods]
impl PyServerConfig {
    #[new]
    #[pyo3(signature = (
        *, concurrency = None, queues = None, strict_priority = None, task_check_interval = None,
        delayed_task_check_interval = None, janitor_interval = None, janitor_batch_size = None,
        heartbeat_interval = None, recoverer_interval = None, syncer_interval = None,
        shutdown_timeout = None, cancel_grace = None, lease_duration = None, lease_grace = None,
        archive_max_size = None, archive_max_age = None, wait_for_replicas = None,
        replica_timeout = None, declare_keys = None,
    ))]
    fn new(
        concurrency: Option<StrictInt<i64>>,
        queues: Option<Bound<'_, PyAny>>,
        strict_priority: Option<bool>,
        task_check_interval: Option<Seconds>,
        delayed_task_check_interval: Option<Seconds>,
        janitor_interval: Option<Seconds>,
        janitor_batch_size: Option<StrictInt<i64>>,
        heartbeat_interval: Option<Seconds>,
        recoverer_interval: Option<Seconds>,
        syncer_interval: Option<Seconds>,
        shutdown_timeout: Option<Seconds>,
        cancel_grace: Option<Seconds>,
        lease_duration: Option<Seconds>,
        lease_grace: Option<Seconds>,
        archive_max_size: Option<StrictInt<i64>>,
        archive_max_age: Option<Seconds>,
        wait_for_replicas: Option<StrictInt<i64>>,
        replica_timeout: Option<Seconds>,
        declare_keys: Option<bool>,
    ) -> PyResult<Self> {
        let d = ServerConfig::default();
        let batch = match janitor_batch_size {
            None => d.janitor_batch_size,
            Some(StrictInt(n)) => usize::try_from(n).map_err(|_| {
                Error::InvalidArgument(format!("janitor_batch_size must be at least 1, got {n}"))
            })?,
        };
        let queues = match queues {
            None => d.queues.clone(),
            Some(m) => queue_priorities(&m)?,
        };
        let inner = ServerConfig {
            // asynq's reading: zero or less is the number of CPUs.
            concurrency: concurrency.map_or(d.concurrency, |StrictInt(n)| concurrency_or_default(n)),
            queues,
            strict_priority: strict_priority.unwrap_or(d.strict_priority),
            task_check_interval: secs_or(task_check_interval, "task_check_interval", d.task_check_interval)?,
            delayed_task_check_interval: secs_or(
                delayed_task_check_interval,
                "delayed_task_check_interval",
                d.delayed_task_check_interval,
            )?,
            janitor_interval: secs_or(janitor_interval, "janitor_interval", d.janitor_interval)?,
            janitor_batch_size: batch,
            heartbeat_interval: secs_or(heartbeat_interval, "heartbeat_interval", d.heartbeat_interval)?,
            recoverer_interval: secs_or(recoverer_interval, "recoverer_interval", d.recoverer_interval)?,
            syncer_interval: secs_or(syncer_interval, "syncer_interval", d.syncer_interval)?,
            shutdown_timeout: secs_or(shutdown_timeout, "shutdown_timeout", d.shutdown_timeout)?,
            cancel_grace: secs_or(cancel_grace, "cancel_grace", d.cancel_grace)?,
            lease_duration: secs_or(lease_duration, "lease_duration", d.lease_duration)?,
            lease_grace: secs_or(lease_grace, "lease_grace", d.lease_grace)?,
            archive_max_size: archive_max_size.map_or(d.archive_max_size, |StrictInt(n)| n),
            archive_max_age: secs_or(archive_max_age, "archive_max_age", d.archive_max_age)?,
            wait_for_replicas: match wait_for_replicas {
                None => d.wait_for_replicas,
                Some(StrictInt(n)) => u32::try_from(n).map_err(|_| {
                    Error::InvalidArgument(format!(
                        "wait_for_replicas must be between 0 (off) and 100, got {n}"
                    ))
                })?,
            },
            replica_timeout: secs_or(replica_timeout, "replica_timeout", d.replica_timeout)?,
            declare_keys: declare_keys.or(d.declare_keys),
        }
        .validated()?;
        Ok(Self { inner })
    }

    /// Most tasks in flight at once (default: the number of CPUs).
    #[getter]
    fn concurrency(&self) -> usize {
        self.inner.concurrency
    }

    /// Queue name → priority (default `{"default": 1}`).
    #[getter]
    fn queues<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (q, p) in &self.inner.queues {
            d.set_item(q, p)?;
        }
        Ok(d)
    }

    /// Always serve higher priorities first (default: weighted random order, as asynq).
    #[getter]
    fn strict_priority(&self) -> bool {
        self.inner.strict_priority
    }

    /// Seconds between polls while every queue is empty (randomised ±50 %).
    #[getter]
    fn task_check_interval(&self) -> f64 {
        self.inner.task_check_interval.as_secs_f64()
    }

    /// Seconds between forwarder runs when no due time is announced.
    #[getter]
    fn delayed_task_check_interval(&self) -> f64 {
        self.inner.delayed_task_check_interval.as_secs_f64()
    }

    /// Seconds between janitor runs (deleting completed tasks whose retention ended).
    #[getter]
    fn janitor_interval(&self) -> f64 {
        self.inner.janitor_interval.as_secs_f64()
    }

    /// Completed tasks deleted per janitor script call.
    #[getter]
    fn janitor_batch_size(&self) -> usize {
        self.inner.janitor_batch_size
    }

    /// Seconds between heartbeats (server state and lease renewal); at most a third of a lease.
    #[getter]
    fn heartbeat_interval(&self) -> f64 {
        self.inner.heartbeat_interval.as_secs_f64()
    }

    /// Seconds between recoverer runs (tasks of dead servers).
    #[getter]
    fn recoverer_interval(&self) -> f64 {
        self.inner.recoverer_interval.as_secs_f64()
    }

    /// Seconds between retries of outcome writes that failed.
    #[getter]
    fn syncer_interval(&self) -> f64 {
        self.inner.syncer_interval.as_secs_f64()
    }

    /// Seconds running handlers get at shutdown before their tasks are requeued.
    #[getter]
    fn shutdown_timeout(&self) -> f64 {
        self.inner.shutdown_timeout.as_secs_f64()
    }

    /// Seconds a cancelled handler may take to stop before its task is failed without it.
    #[getter]
    fn cancel_grace(&self) -> f64 {
        self.inner.cancel_grace.as_secs_f64()
    }

    /// Seconds a dequeued task is leased (whole seconds; renewed by every heartbeat).
    #[getter]
    fn lease_duration(&self) -> f64 {
        self.inner.lease_duration.as_secs_f64()
    }

    /// Seconds after a lease ended before its task is recovered (allowance for clock skew).
    #[getter]
    fn lease_grace(&self) -> f64 {
        self.inner.lease_grace.as_secs_f64()
    }

    /// The most archived tasks kept per queue; the oldest are deleted first (asynq: 10,000).
    #[getter]
    fn archive_max_size(&self) -> i64 {
        self.inner.archive_max_size
    }

    /// Seconds an archived task is kept (asynq: 90 days).
    #[getter]
    fn archive_max_age(&self) -> f64 {
        self.inner.archive_max_age.as_secs_f64()
    }

    /// Replicas that must confirm each lease and outcome (durable mode; 0: off).
    #[getter]
    fn wait_for_replicas(&self) -> u32 {
        self.inner.wait_for_replicas
    }

    /// Seconds durable mode waits for the replicas.
    #[getter]
    fn replica_timeout(&self) -> f64 {
        self.inner.replica_timeout.as_secs_f64()
    }

    /// Declared-keys mode: the dequeue names every task hash it touches in KEYS; `None` (the
    /// default): on for a Redis Cluster URL, off otherwise.
    #[getter]
    fn declare_keys(&self) -> Option<bool> {
        self.inner.declare_keys
    }

    fn __repr__(&self) -> String {
        format!("ServerConfig({:?})", self.inner)
    }
}

/// A task leased by this server, as the core hands it over: its token, its deadline, and what
/// is known of it (a `TaskInfo` in state `ACTIVE`).
#[pyclass(module = "ferroq._native", name = "Lease", frozen)]
pub struct PyLease {
    token: u64,
    deadline: f64,
    expired: bool,
    info: Py<PyTaskInfo>,
}

impl PyLease {
    fn new(py: Python<'_>, lease: Lease) -> PyResult<Self> {
        let Lease { token, msg, deadline, expired } = lease;
        let info = Py::new(py, PyTaskInfo { inner: TaskInfo::written(msg, TaskState::Active, 0) })?;
        Ok(Self { token, deadline: crate::clock::unix_f64(deadline), expired, info })
    }
}

#[pymethods]
impl PyLease {
    /// The handle `NativeServer.finish` takes.
    #[getter]
    fn token(&self) -> u64 {
        self.token
    }

    /// When the handler must stop, Unix seconds.
    #[getter]
    fn deadline(&self) -> f64 {
        self.deadline
    }

    /// The deadline had passed when the task was leased: its handler must not start, and the
    /// run fails with `DeadlineExceeded` (asynq never starts such a handler).
    #[getter]
    fn expired(&self) -> bool {
        self.expired
    }

    /// The task: id, queue, type, payload, headers, retries...
    #[getter]
    fn info(&self, py: Python<'_>) -> Py<PyTaskInfo> {
        self.info.clone_ref(py)
    }
}

/// Whether a failed run of a task that was retried `retried` times of `max_retry` is retried
/// (rather than archived): the core's failure policy, asked before a hook such as
/// `retry_delay` runs, so it runs only when a retry will happen.
#[pyfunction]
#[pyo3(name = "will_retry", signature = (retried, max_retry, skip_retry = false, is_failure = true))]
pub fn py_will_retry(retried: i32, max_retry: i32, skip_retry: bool, is_failure: bool) -> bool {
    will_retry(retried, max_retry, skip_retry, is_failure)
}

/// How a handler run ended.
#[pyclass(module = "ferroq._native", name = "Outcome", frozen)]
pub struct PyOutcome {
    inner: Outcome,
}

#[pymethods]
impl PyOutcome {
    /// Success: deleted, or kept as completed for its retention, with `result` stored in the
    /// task's `result` field in the same write (None keeps what the handler wrote).
    #[staticmethod]
    #[pyo3(signature = (result = None))]
    fn done(result: Option<Vec<u8>>) -> Self {
        Self { inner: Outcome::Done(result) }
    }

    /// `RevokeTask`: deleted without retry or archive, counted as processed.
    #[staticmethod]
    fn revoke() -> Self {
        Self { inner: Outcome::Revoke }
    }

    /// Back to the head of its queue (shutdown).
    #[staticmethod]
    fn requeue() -> Self {
        Self { inner: Outcome::Requeue }
    }

    /// A failure: retried after `retry_delay` (asynq's formula when None) while retries are
    /// left and `skip_retry` is false, else archived. `is_failure=False` retries without using
    /// up a retry. `detail` (the exception as JSON) is kept in the task's `exception` field if
    /// the task is archived.
    #[staticmethod]
    #[pyo3(signature = (error, *, is_failure = true, skip_retry = false, retry_delay = None, detail = None))]
    fn failure(
        error: String,
        is_failure: bool,
        skip_retry: bool,
        retry_delay: Option<Seconds>,
        detail: Option<Vec<u8>>,
    ) -> PyResult<Self> {
        let delay = retry_delay.map(|s| duration("retry_delay", s.0)).transpose()?;
        Ok(Self { inner: Outcome::Failed(Failure { error, is_failure, skip_retry, delay, detail }) })
    }

    fn __repr__(&self) -> String {
        format!("Outcome({:?})", self.inner)
    }
}

/// Why a running handler must stop.
#[pyclass(module = "ferroq._native", name = "CancelReason", eq, eq_int, frozen)]
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum PyCancelReason {
    /// An Inspector's cancel (`PUBLISH asynq:cancel <id>`).
    #[pyo3(name = "REQUESTED")]
    Requested,
    /// The lease could not be renewed: another server may run the task.
    #[pyo3(name = "LEASE_LOST")]
    LeaseLost,
    /// The task's deadline passed.
    #[pyo3(name = "DEADLINE_EXCEEDED")]
    DeadlineExceeded,
    /// Told to stop, the handler still runs after the grace period: fail its task now.
    #[pyo3(name = "UNRESPONSIVE")]
    Unresponsive,
}

impl From<CancelReason> for PyCancelReason {
    fn from(c: CancelReason) -> Self {
        match c {
            CancelReason::Requested => Self::Requested,
            CancelReason::LeaseLost => Self::LeaseLost,
            CancelReason::DeadlineExceeded => Self::DeadlineExceeded,
            CancelReason::Unresponsive => Self::Unresponsive,
        }
    }
}

/// A Python callable as the core's [`FailurePolicy`]; called from a core thread (the recoverer),
/// which holds no lock while it waits for the GIL.
struct PyFailurePolicy(Py<PyAny>);

impl FailurePolicy for PyFailurePolicy {
    fn failure(&self, msg: &crate::message::TaskMessage, error: &str) -> Option<Failure> {
        Python::attach(|py| {
            let info = PyTaskInfo { inner: TaskInfo::written(msg.clone(), TaskState::Active, 0) };
            let got = self.0.call1(py, (info, error)).and_then(|o| {
                let o = o.bind(py).cast::<PyOutcome>().map_err(PyErr::from)?.get().inner.clone();
                match o {
                    Outcome::Failed(f) => Ok(Some(f)),
                    other => Err(pyo3::exceptions::PyTypeError::new_err(format!(
                        "the failure policy must return Outcome.failure(...), got {other:?}"
                    ))),
                }
            });
            got.unwrap_or_else(|e| {
                log::error!("the failure policy failed for task {}: {e}; using asynq's defaults", msg.id);
                None
            })
        })
    }
}

/// The Python object a handle holds.
fn object(py: Python<'_>, h: &Handle) -> Option<Py<PyAny>> {
    h.downcast_ref::<Py<PyAny>>().map(|o| o.clone_ref(py))
}

/// The Rust server core behind `ferroq.Server`.
#[pyclass(module = "ferroq._native", frozen)]
pub struct NativeServer {
    core: ServerCore,
    config: PyServerConfig,
}

#[pymethods]
impl NativeServer {
    #[new]
    #[pyo3(signature = (url, config = None, *, namespace = None, tls_ca = None))]
    fn new(
        url: &str,
        config: Option<PyServerConfig>,
        namespace: Option<&str>,
        tls_ca: Option<Vec<u8>>,
    ) -> PyResult<Self> {
        let config = config.unwrap_or(PyServerConfig { inner: ServerConfig::default() });
        let conn = ConnConfig::from_url_with_ca(url, tls_ca)?;
        let keys = Keys::new(namespace.unwrap_or(DEFAULT_NAMESPACE));
        Ok(Self { core: ServerCore::new(conn, keys, config.inner.clone())?, config })
    }

    /// Server ID (UUID v4).
    #[getter]
    fn server_id(&self) -> String {
        self.core.server_id().to_string()
    }

    /// Whether this server runs in declared-keys mode (`declare_keys`, resolved for its URL).
    #[getter]
    fn declares_keys(&self) -> bool {
        self.core.declares_keys()
    }

    /// The worker metrics now (durations and outcomes by queue and type, tasks in flight,
    /// leases, recoveries).
    fn metrics(&self, py: Python<'_>) -> PyResult<super::metrics::PyServerMetrics> {
        let (snap, in_flight) = self.core.metrics();
        super::metrics::PyServerMetrics::new(py, snap, in_flight)
    }

    /// `new`, `active`, `stopped` or `closed`.
    #[getter]
    fn status(&self) -> &'static str {
        self.core.status().as_str()
    }

    /// The settings the server runs with.
    #[getter]
    fn config(&self) -> PyServerConfig {
        self.config.clone()
    }

    /// Queues served with normalised priorities, highest first.
    #[getter]
    fn queues(&self) -> Vec<(String, u32)> {
        self.core.queues()
    }

    /// Sets the policy for tasks that fail outside any handler (the recoverer's "lease
    /// expired"): `policy(info, error)` returns the `Outcome.failure(...)` to apply, so the
    /// application's `is_failure` and `retry_delay` count for them too. Anything else it
    /// returns, or raises, means asynq's defaults (logged).
    fn set_failure_policy(&self, policy: Py<PyAny>) {
        self.core.set_failure_policy(Arc::new(PyFailurePolicy(policy)));
    }

    /// Connects and starts every component.
    fn start(&self, py: Python<'_>) -> PyResult<()> {
        Ok(py.detach(|| self.core.start())?)
    }

    /// Waits up to `timeout` seconds for leased tasks; returns `wrap(lease)` for at most `max` of
    /// them. What `wrap` returns is the task's handle: `cancellations` and `requeue_running`
    /// give it back. A lease `wrap` cannot take is archived with the reason.
    fn next_batch<'py>(
        &self,
        py: Python<'py>,
        max: usize,
        timeout: f64,
        wrap: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let wait = duration("timeout", timeout)?;
        let batch = py.detach(|| self.core.next_batch(max.max(1), wait));
        let out = PyList::empty(py);
        let mut handles: Vec<(u64, Handle)> = Vec::with_capacity(batch.len());
        for lease in batch {
            let (token, id) = (lease.token, lease.msg.id.clone());
            // Every lease ends attached, archived or requeued: none may stay in flight unseen.
            let wrapped = PyLease::new(py, lease).and_then(|l| wrap.call1((l,)));
            match wrapped {
                Ok(obj) => match out.append(&obj) {
                    Ok(()) => handles.push((token, Arc::new(obj.unbind()))),
                    Err(e) => {
                        log::error!("requeueing task {id}: it could not be handed over: {e}");
                        self.core.finish(token, Outcome::Requeue);
                    }
                },
                Err(e) => {
                    log::error!("archiving task {id}: unusable task message: {e}");
                    let why = format!("ferroq: unusable task message: {e}");
                    let f = Failure { skip_retry: true, ..Failure::new(why) };
                    self.core.finish(token, Outcome::Failed(f));
                }
            }
        }
        // Detached: the heartbeat may hold the table's lock while it encodes the workers.
        py.detach(|| self.core.attach(handles));
        Ok(out)
    }

    /// Reports how the run of task `token` ended.
    fn finish(&self, token: u64, outcome: &PyOutcome) {
        self.core.finish(token, outcome.inner.clone());
    }

    /// Stores `data` as the result of the running task `token`.
    fn write_result(&self, py: Python<'_>, token: u64, data: Vec<u8>) -> PyResult<usize> {
        Ok(py.detach(|| self.core.write_result(token, &data))?)
    }

    /// Stores a running task's progress report.
    fn write_progress(&self, py: Python<'_>, token: u64, data: Vec<u8>) -> PyResult<usize> {
        Ok(py.detach(|| self.core.write_progress(token, &data))?)
    }

    /// Waits up to `timeout` seconds for cancellations: (the task's handle, why).
    fn cancellations(&self, py: Python<'_>, timeout: f64) -> PyResult<Vec<(Py<PyAny>, PyCancelReason)>> {
        let wait = duration("timeout", timeout)?;
        let got = py.detach(|| self.core.cancellations(wait));
        Ok(got.iter().filter_map(|(why, h)| object(py, h).map(|o| (o, PyCancelReason::from(*why)))).collect())
    }

    /// Waits up to `timeout` seconds until no delivered task runs; True when none does.
    fn wait_idle(&self, py: Python<'_>, timeout: f64) -> PyResult<bool> {
        let wait = duration("timeout", timeout)?;
        Ok(py.detach(|| self.core.wait_idle(wait)))
    }

    /// Requeues every delivered task still running; returns their handles.
    fn requeue_running(&self, py: Python<'_>) -> Vec<Py<PyAny>> {
        let handles = py.detach(|| self.core.requeue_running());
        handles.iter().filter_map(|h| object(py, h)).collect()
    }

    /// Stops fetching new tasks.
    fn stop_fetching(&self) {
        self.core.stop_fetching();
    }

    /// Requeues what is still leased, writes every outcome and stops all components.
    fn shutdown(&self, py: Python<'_>) {
        py.detach(|| self.core.shutdown());
    }
}
