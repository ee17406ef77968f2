//! `NativeServer`: the dequeue/lease loop and background components behind `ferroq.Server`, and
//! message helpers.

use std::collections::BTreeMap;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use super::duration;
use crate::error::Error;
use crate::message::{decode_task, encode_task, TaskMessage};
use crate::rdb::{ConnConfig, Keys};
use crate::server::{CancelReason, Outcome, ServerConfig, ServerCore};

/// Outcome codes shared with `ferroq/server.py`.
const DONE: u8 = 0;
const RETRY: u8 = 1;
const ARCHIVE: u8 = 2;
const REQUEUE: u8 = 3;
const REVOKE: u8 = 4;

/// The Rust server core behind `ferroq.Server`.
#[pyclass(module = "ferroq._native", frozen)]
pub struct NativeServer {
    core: ServerCore,
}

#[pymethods]
impl NativeServer {
    #[new]
    #[pyo3(signature = (
        url, *, namespace = "asynq", concurrency = 0, queues = None, strict_priority = false,
        task_check_interval = 1.0, delayed_task_check_interval = 5.0, janitor_interval = 8.0,
        janitor_batch_size = 100, heartbeat_interval = 5.0, recoverer_interval = 60.0,
        syncer_interval = 5.0, tls_ca = None,
    ))]
    fn new(
        url: &str,
        namespace: &str,
        concurrency: usize,
        queues: Option<BTreeMap<String, i32>>,
        strict_priority: bool,
        task_check_interval: f64,
        delayed_task_check_interval: f64,
        janitor_interval: f64,
        janitor_batch_size: usize,
        heartbeat_interval: f64,
        recoverer_interval: f64,
        syncer_interval: f64,
        tls_ca: Option<Vec<u8>>,
    ) -> PyResult<Self> {
        let positive = |what: &str, s: f64| -> PyResult<Duration> {
            let d = duration(what, s)?;
            if d.is_zero() {
                return Err(Error::InvalidArgument(format!("{what} must be positive")).into());
            }
            Ok(d)
        };
        let heartbeat = positive("heartbeat_interval", heartbeat_interval)?;
        if heartbeat > crate::rdb::LEASE_DURATION / 3 {
            // Leases last 30 s; renewals must come well inside them.
            return Err(Error::InvalidArgument("heartbeat_interval must be at most 10 seconds".into()).into());
        }
        let mut cfg = ServerConfig {
            concurrency,
            strict_priority,
            task_check_interval: positive("task_check_interval", task_check_interval)?,
            delayed_task_check_interval: positive(
                "delayed_task_check_interval",
                delayed_task_check_interval,
            )?,
            janitor_interval: positive("janitor_interval", janitor_interval)?,
            janitor_batch_size,
            heartbeat_interval: heartbeat,
            recoverer_interval: positive("recoverer_interval", recoverer_interval)?,
            syncer_interval: positive("syncer_interval", syncer_interval)?,
            ..ServerConfig::default()
        };
        if let Some(q) = queues {
            cfg.queues = q.into_iter().collect();
        }
        let conn = ConnConfig::from_url_with_ca(url, tls_ca)?;
        Ok(Self { core: ServerCore::new(conn, Keys::new(namespace), cfg)? })
    }

    /// Server ID (UUID v4).
    #[getter]
    fn server_id(&self) -> String {
        self.core.server_id().to_string()
    }

    /// `new`, `active`, `stopped` or `closed`.
    #[getter]
    fn status(&self) -> &'static str {
        self.core.status().as_str()
    }

    /// Queues served with normalised priorities.
    #[getter]
    fn queues(&self) -> Vec<(String, u32)> {
        self.core.queues()
    }

    /// Connects and starts every component.
    fn start(&self, py: Python<'_>) -> PyResult<()> {
        Ok(py.detach(|| self.core.start())?)
    }

    /// Waits up to `timeout` seconds for leased tasks; returns at most `max` tuples
    /// (token, id, type, payload, headers, queue, retried, max_retry, deadline).
    fn next_batch<'py>(&self, py: Python<'py>, max: usize, timeout: f64) -> PyResult<Bound<'py, PyList>> {
        let wait = duration("timeout", timeout)?;
        let batch = py.detach(|| self.core.next_batch(max.max(1), wait));
        let out = PyList::empty(py);
        for d in batch {
            let m = d.msg;
            let headers = PyDict::new(py);
            for (k, v) in m.headers {
                headers.set_item(k, v)?;
            }
            let t = PyTuple::new(
                py,
                [
                    d.token.into_pyobject(py)?.into_any(),
                    m.id.into_pyobject(py)?.into_any(),
                    m.r#type.into_pyobject(py)?.into_any(),
                    PyBytes::new(py, &m.payload).into_any(),
                    headers.into_any(),
                    m.queue.into_pyobject(py)?.into_any(),
                    m.retried.into_pyobject(py)?.into_any(),
                    m.retry.into_pyobject(py)?.into_any(),
                    crate::clock::unix_f64(d.deadline).into_pyobject(py)?.into_any(),
                ],
            )?;
            out.append(t)?;
        }
        Ok(out)
    }

    /// Reports outcomes: (token, code, error, retry delay seconds or None, is_failure).
    fn finish(&self, outcomes: Vec<(u64, u8, String, Option<f64>, bool)>) -> PyResult<()> {
        let mut out = Vec::with_capacity(outcomes.len());
        for (token, code, error, delay, is_failure) in outcomes {
            let o = match code {
                DONE => Outcome::Done,
                RETRY => Outcome::Retry {
                    delay: delay.map(|d| duration("retry delay", d)).transpose()?,
                    error,
                    is_failure,
                },
                ARCHIVE => Outcome::Archive { error },
                REQUEUE => Outcome::Requeue,
                REVOKE => Outcome::Revoke,
                other => return Err(Error::InvalidArgument(format!("unknown outcome code {other}")).into()),
            };
            out.push((token, o));
        }
        self.core.finish(out);
        Ok(())
    }

    /// Stores `data` as the result of the running task `token`.
    fn write_result(&self, py: Python<'_>, token: u64, data: Vec<u8>) -> PyResult<usize> {
        Ok(py.detach(|| self.core.write_result(token, &data))?)
    }

    /// Waits up to `timeout` seconds for cancellations: (token, "requested" | "lease_lost").
    fn cancellations(&self, py: Python<'_>, timeout: f64) -> PyResult<Vec<(u64, &'static str)>> {
        let wait = duration("timeout", timeout)?;
        let got = py.detach(|| self.core.cancellations(wait));
        Ok(got
            .into_iter()
            .map(|(t, why)| {
                (
                    t,
                    match why {
                        CancelReason::Requested => "requested",
                        CancelReason::LeaseLost => "lease_lost",
                    },
                )
            })
            .collect())
    }

    /// Tokens of the tasks in flight.
    fn inflight(&self, py: Python<'_>) -> Vec<u64> {
        // Detached: core threads may hold the in-flight lock while they wait for the GIL.
        py.detach(|| self.core.inflight_tokens())
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

fn get<'py, T>(d: &Bound<'py, PyDict>, key: &str) -> PyResult<Option<T>>
where
    T: for<'a> FromPyObject<'a, 'py, Error = PyErr>,
{
    match d.get_item(key)? {
        Some(v) if !v.is_none() => Ok(Some(v.extract::<T>()?)),
        _ => Ok(None),
    }
}

/// Encodes a TaskMessage from a dict with asynq's field names.
#[pyfunction]
pub fn encode_task_message<'py>(
    py: Python<'py>,
    fields: &Bound<'py, PyDict>,
) -> PyResult<Bound<'py, PyBytes>> {
    let m = TaskMessage {
        r#type: get(fields, "type")?.unwrap_or_default(),
        payload: get(fields, "payload")?.unwrap_or_default(),
        headers: get(fields, "headers")?.unwrap_or_default(),
        id: get(fields, "id")?.unwrap_or_default(),
        queue: get(fields, "queue")?.unwrap_or_default(),
        retry: get(fields, "retry")?.unwrap_or_default(),
        retried: get(fields, "retried")?.unwrap_or_default(),
        error_msg: get(fields, "error_msg")?.unwrap_or_default(),
        last_failed_at: get(fields, "last_failed_at")?.unwrap_or_default(),
        timeout: get(fields, "timeout")?.unwrap_or_default(),
        deadline: get(fields, "deadline")?.unwrap_or_default(),
        unique_key: get(fields, "unique_key")?.unwrap_or_default(),
        group_key: get(fields, "group_key")?.unwrap_or_default(),
        retention: get(fields, "retention")?.unwrap_or_default(),
        completed_at: get(fields, "completed_at")?.unwrap_or_default(),
    };
    Ok(PyBytes::new(py, &encode_task(&m)))
}

/// Decodes a TaskMessage into a dict with asynq's field names; raises `MalformedMessageError`.
#[pyfunction]
pub fn decode_task_message<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyDict>> {
    let m = decode_task(data)?;
    let d = PyDict::new(py);
    d.set_item("type", m.r#type)?;
    d.set_item("payload", PyBytes::new(py, &m.payload))?;
    d.set_item("headers", m.headers)?;
    d.set_item("id", m.id)?;
    d.set_item("queue", m.queue)?;
    d.set_item("retry", m.retry)?;
    d.set_item("retried", m.retried)?;
    d.set_item("error_msg", m.error_msg)?;
    d.set_item("last_failed_at", m.last_failed_at)?;
    d.set_item("timeout", m.timeout)?;
    d.set_item("deadline", m.deadline)?;
    d.set_item("unique_key", m.unique_key)?;
    d.set_item("group_key", m.group_key)?;
    d.set_item("retention", m.retention)?;
    d.set_item("completed_at", m.completed_at)?;
    Ok(d)
}
