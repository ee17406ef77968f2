//! `NativeClient`: the producer side (and the scheduler's writes).

use std::collections::BTreeMap;
use std::time::SystemTime;

use pyo3::prelude::*;
use pyo3::types::PyList;

use super::duration;
use super::info::PyTaskInfo;
use super::options::PyTaskOptions;
use crate::client::{Client, NewTask};
use crate::options::TaskOptions;
use crate::rdb::keys::DEFAULT_NAMESPACE;
use crate::rdb::{ConnConfig, Fired, Keys};

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
    inner: Client,
}

fn new_task(task_type: String, payload: Option<Vec<u8>>, headers: BTreeMap<String, String>) -> NewTask {
    NewTask { task_type, payload, headers }
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
    #[pyo3(signature = (url, namespace = None, max_idle = 8, tls_ca = None))]
    fn new(url: &str, namespace: Option<&str>, max_idle: usize, tls_ca: Option<Vec<u8>>) -> PyResult<Self> {
        let cfg = ConnConfig::from_url_with_ca(url, tls_ca)?;
        let keys = Keys::new(namespace.unwrap_or(DEFAULT_NAMESPACE));
        Ok(Self { inner: Client::new(cfg, keys, max_idle)? })
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

    /// Sends PING.
    fn ping(&self, py: Python<'_>) -> PyResult<()> {
        Ok(py.detach(|| self.inner.run(|rdb| rdb.ping()))?)
    }

    /// Closes idle connections.
    fn close(&self) {
        self.inner.close();
    }
}
