//! `NativeClient`: the producer side.

use std::collections::BTreeMap;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use super::{duration, instant};
use crate::client::{Client, EnqueueOptions, Enqueued, NewTask};
use crate::rdb::{ConnConfig, Keys};

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

    /// Sends PING.
    fn ping(&self, py: Python<'_>) -> PyResult<()> {
        Ok(py.detach(|| self.inner.run(|rdb| rdb.ping()))?)
    }

    /// Closes idle connections.
    fn close(&self) {
        self.inner.close();
    }
}
