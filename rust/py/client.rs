//! `NativeClient`: the producer side.

use std::collections::BTreeMap;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use super::{duration, instant};
use crate::client::{Client, EnqueueOptions, Enqueued, NewTask};
use crate::rdb::{ConnConfig, Fired, Keys};

/// One enqueue request as Python passes it.
type PyRequest = (
    String,                   // type
    Option<Vec<u8>>,          // payload (None: Go's nil payload)
    BTreeMap<String, String>, // headers
    Option<String>,           // queue
    Option<i32>,              // max_retry
    Option<f64>,              // timeout, seconds
    Option<f64>,              // deadline, Unix seconds
    Option<f64>,              // unique TTL, seconds
    Option<f64>,              // process_at, Unix seconds
    Option<String>,           // task_id
    Option<f64>,              // retention, seconds
    Option<String>,           // group
);

/// (entry id, spec, task type, enqueue option strings)
type EntryRow = (String, String, String, Vec<String>);

fn convert(r: PyRequest) -> PyResult<(NewTask, EnqueueOptions)> {
    let (
        task_type,
        payload,
        headers,
        queue,
        max_retry,
        timeout,
        deadline,
        unique,
        process_at,
        task_id,
        retention,
        group,
    ) = r;
    let opts = EnqueueOptions {
        queue,
        max_retry,
        timeout: timeout.map(|s| duration("timeout", s)).transpose()?,
        deadline: deadline.map(|s| s.floor() as i64),
        unique: unique.map(|s| duration("unique", s)).transpose()?,
        process_at: process_at.map(instant).transpose()?,
        task_id,
        retention: retention.map(|s| duration("retention", s)).transpose()?,
        group,
    };
    Ok((NewTask { task_type, payload, headers }, opts))
}

/// (id, queue, type, payload, headers, state, max_retry, timeout, deadline, next_process_at,
/// retention, group)
fn info<'py>(py: Python<'py>, e: &Enqueued) -> PyResult<Bound<'py, PyTuple>> {
    let m = &e.msg;
    let headers = PyDict::new(py);
    for (k, v) in &m.headers {
        headers.set_item(k, v)?;
    }
    PyTuple::new(
        py,
        [
            m.id.clone().into_pyobject(py)?.into_any(),
            m.queue.clone().into_pyobject(py)?.into_any(),
            m.r#type.clone().into_pyobject(py)?.into_any(),
            PyBytes::new(py, &m.payload).into_any(),
            headers.into_any(),
            e.state.into_pyobject(py)?.into_any(),
            m.retry.into_pyobject(py)?.into_any(),
            m.timeout.into_pyobject(py)?.into_any(),
            m.deadline.into_pyobject(py)?.into_any(),
            e.next_process_at.into_pyobject(py)?.into_any(),
            m.retention.into_pyobject(py)?.into_any(),
            m.group_key.clone().into_pyobject(py)?.into_any(),
        ],
    )
}

/// The Rust client behind `ferroq.Client`.
#[pyclass(module = "ferroq._native", frozen)]
pub struct NativeClient {
    inner: Client,
}

#[pymethods]
impl NativeClient {
    #[new]
    #[pyo3(signature = (url, namespace = "asynq", max_idle = 8, tls_ca = None))]
    fn new(url: &str, namespace: &str, max_idle: usize, tls_ca: Option<Vec<u8>>) -> PyResult<Self> {
        let cfg = ConnConfig::from_url_with_ca(url, tls_ca)?;
        Ok(Self { inner: Client::new(cfg, Keys::new(namespace), max_idle)? })
    }

    /// Enqueues one task; returns the TaskInfo tuple.
    fn enqueue<'py>(&self, py: Python<'py>, request: PyRequest) -> PyResult<Bound<'py, PyTuple>> {
        let (task, opts) = convert(request)?;
        let done = py.detach(|| self.inner.enqueue(task, opts, std::time::SystemTime::now()))?;
        info(py, &done)
    }

    /// Enqueues many tasks in one pipeline; returns a TaskInfo tuple or an exception per task.
    fn enqueue_many<'py>(&self, py: Python<'py>, requests: Vec<PyRequest>) -> PyResult<Bound<'py, PyList>> {
        let items = requests.into_iter().map(convert).collect::<PyResult<Vec<_>>>()?;
        let results = py.detach(|| self.inner.enqueue_many(items, std::time::SystemTime::now()))?;
        let out = PyList::empty(py);
        for r in results {
            match r {
                Ok(e) => out.append(info(py, &e)?)?,
                Err(e) => out.append(PyErr::from(e).into_value(py))?,
            }
        }
        Ok(out)
    }

    /// Enqueues one firing of a periodic entry unless a replica already did; returns
    /// ("enqueued" | "already_fired" | "duplicate", the TaskInfo tuple).
    #[pyo3(signature = (request, entry_id, fire_at, last_ttl, record_history = true))]
    fn periodic_enqueue<'py>(
        &self,
        py: Python<'py>,
        request: PyRequest,
        entry_id: &str,
        fire_at: i64,
        last_ttl: u64,
        record_history: bool,
    ) -> PyResult<(&'static str, Bound<'py, PyTuple>)> {
        let (task, opts) = convert(request)?;
        let (fired, done) = py.detach(|| {
            self.inner.periodic_enqueue(
                task,
                opts,
                entry_id,
                fire_at,
                last_ttl,
                record_history,
                std::time::SystemTime::now(),
            )
        })?;
        let what = match fired {
            Fired::Enqueued => "enqueued",
            Fired::AlreadyFired => "already_fired",
            Fired::Duplicate => "duplicate",
        };
        Ok((what, info(py, &done)?))
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
            self.inner.run(|rdb| {
                rdb.write_scheduler_entries(scheduler_id, &entries, ttl, std::time::SystemTime::now())
            })
        })?)
    }

    /// Removes a scheduler's published entries.
    fn clear_scheduler_entries(&self, py: Python<'_>, scheduler_id: &str) -> PyResult<()> {
        Ok(py.detach(|| self.inner.run(|rdb| rdb.clear_scheduler_entries(scheduler_id)))?)
    }

    /// Queues served by live servers, from their heartbeats.
    fn served_queues(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let set = py.detach(|| self.inner.run(|rdb| rdb.served_queues(std::time::SystemTime::now())))?;
        Ok(set.into_iter().collect())
    }

    /// Every known queue with its (pending, scheduled, retry) sizes.
    fn queue_overview(&self, py: Python<'_>) -> PyResult<Vec<(String, i64, i64, i64)>> {
        Ok(py.detach(|| self.inner.run(|rdb| rdb.queue_overview()))?)
    }

    /// Entries of live schedulers: (entry id, spec, task type, enqueue option strings).
    fn scheduler_entries(&self, py: Python<'_>) -> PyResult<Vec<EntryRow>> {
        let entries =
            py.detach(|| self.inner.run(|rdb| rdb.scheduler_entries(std::time::SystemTime::now())))?;
        Ok(entries.into_iter().map(|e| (e.id, e.spec, e.task_type, e.enqueue_options)).collect())
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
