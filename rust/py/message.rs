//! asynq's `TaskMessage` as a dict with asynq's field names, for tooling and benchmarks (the
//! server itself never builds Python objects from messages).

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::message::{decode_task, encode_task, TaskMessage};

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
