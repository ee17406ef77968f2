//! `TaskOptions`: the enqueue options as one Python object. Python values are converted here
//! (seconds or `timedelta`, aware `datetime`); every rule is [`crate::options::TaskOptions`]'s.

use std::collections::BTreeMap;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use super::{duration, py_instant, py_timedelta, Instant, Seconds, StrMap, StrictInt};
use crate::options::TaskOptions as Options;

/// Enqueue options for `Client.enqueue`, `Scheduler.register` and task functions, checked when
/// built: a `TaskOptions` that exists is a valid one.
///
/// Durations are seconds or a `timedelta`; instants are aware `datetime`s. An option left out
/// is asynq's default (queue `default`, 25 retries, a 30-minute timeout when neither `timeout`
/// nor `deadline` is given).
#[pyclass(module = "ferroq", name = "TaskOptions", frozen)]
#[derive(Clone)]
pub struct PyTaskOptions {
    pub(crate) inner: Options,
}

fn secs(what: &str, v: Option<Seconds>) -> PyResult<Option<std::time::Duration>> {
    v.map(|s| duration(what, s.0)).transpose()
}

#[pymethods]
impl PyTaskOptions {
    #[new]
    #[pyo3(signature = (
        *, queue = None, max_retry = None, timeout = None, deadline = None, unique = None,
        process_at = None, process_in = None, task_id = None, retention = None, group = None,
        headers = None,
    ))]
    fn new(
        queue: Option<String>,
        max_retry: Option<StrictInt<i64>>,
        timeout: Option<Seconds>,
        deadline: Option<Instant>,
        unique: Option<Seconds>,
        process_at: Option<Instant>,
        process_in: Option<Seconds>,
        task_id: Option<String>,
        retention: Option<Seconds>,
        group: Option<String>,
        headers: Option<StrMap>,
    ) -> PyResult<Self> {
        let inner = Options {
            queue,
            max_retry: max_retry.map(|m| crate::options::check_max_retry(m.0)).transpose()?,
            timeout: secs("timeout", timeout)?,
            deadline: deadline.map(|d| d.0),
            unique: secs("unique", unique)?,
            process_at: process_at.map(|d| d.0),
            process_in: secs("process_in", process_in)?,
            task_id,
            retention: secs("retention", retention)?,
            group,
            headers: headers.map(|h| h.0).unwrap_or_default(),
        }
        .validated()?;
        Ok(Self { inner })
    }

    /// These options with every option `other` sets laid over them (headers merged).
    fn merge(&self, other: &PyTaskOptions) -> PyResult<Self> {
        Ok(Self { inner: self.inner.merged(&other.inner)? })
    }

    /// Queue name, if set.
    #[getter]
    fn queue(&self) -> Option<&str> {
        self.inner.queue.as_deref()
    }

    /// Retries allowed, if set.
    #[getter]
    fn max_retry(&self) -> Option<i32> {
        self.inner.max_retry
    }

    /// Per-run time limit, if set.
    #[getter]
    fn timeout(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        self.inner.timeout.map(|d| py_timedelta(py, d)).transpose()
    }

    /// Absolute deadline, if set.
    #[getter]
    fn deadline(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        self.inner.deadline.map(|t| py_instant(py, t)).transpose()
    }

    /// Unique-lock TTL, if set.
    #[getter]
    fn unique(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        self.inner.unique.map(|d| py_timedelta(py, d)).transpose()
    }

    /// When to run, if set as an instant.
    #[getter]
    fn process_at(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        self.inner.process_at.map(|t| py_instant(py, t)).transpose()
    }

    /// Delay before running, if set as a delay.
    #[getter]
    fn process_in(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        self.inner.process_in.map(|d| py_timedelta(py, d)).transpose()
    }

    /// Explicit task ID, if set.
    #[getter]
    fn task_id(&self) -> Option<&str> {
        self.inner.task_id.as_deref()
    }

    /// How long a succeeded task is kept, if set.
    #[getter]
    fn retention(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        self.inner.retention.map(|d| py_timedelta(py, d)).transpose()
    }

    /// Aggregation group, if set.
    #[getter]
    fn group(&self) -> Option<&str> {
        self.inner.group.as_deref()
    }

    /// Headers laid over the task's own.
    #[getter]
    fn headers(&self) -> BTreeMap<String, String> {
        self.inner.headers.clone()
    }

    /// asynq's `Option.String()` forms of these options (what a scheduler publishes).
    fn asynq_strings(&self) -> Vec<String> {
        crate::goformat::option_strings(&self.inner)
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.cast::<PyTaskOptions>().is_ok_and(|o| o.get().inner == self.inner)
    }

    fn __repr__(&self) -> String {
        let o = &self.inner;
        let mut parts = Vec::new();
        if let Some(q) = &o.queue {
            parts.push(format!("queue={q:?}"));
        }
        if let Some(m) = o.max_retry {
            parts.push(format!("max_retry={m}"));
        }
        for (name, d) in [
            ("timeout", o.timeout),
            ("unique", o.unique),
            ("process_in", o.process_in),
            ("retention", o.retention),
        ] {
            if let Some(d) = d {
                parts.push(format!("{name}={}", d.as_secs_f64()));
            }
        }
        for (name, t) in [("deadline", o.deadline), ("process_at", o.process_at)] {
            if let Some(t) = t {
                parts.push(format!("{name}={}", crate::clock::unix_f64(t)));
            }
        }
        if let Some(id) = &o.task_id {
            parts.push(format!("task_id={id:?}"));
        }
        if let Some(g) = &o.group {
            parts.push(format!("group={g:?}"));
        }
        if !o.headers.is_empty() {
            parts.push(format!("headers={:?}", o.headers));
        }
        format!("TaskOptions({})", parts.join(", "))
    }
}

/// Checks a task's type and headers (the rules `Task(...)` is held to): returns the headers as
/// a new dict of str to str. Raises `TypeError` for a type or header that is not a str, and
/// `InvalidArgumentError` for a blank type.
#[pyfunction]
#[pyo3(signature = (task_type, headers = None))]
pub fn check_task<'py>(
    py: Python<'py>,
    task_type: &Bound<'py, PyAny>,
    headers: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let t: &str = task_type
        .cast::<PyString>()
        .map_err(|_| pyo3::exceptions::PyTypeError::new_err("task type must be a str"))?
        .to_str()?;
    crate::options::check_task_type(t)?;
    let Some(h) = headers else { return Ok(PyDict::new(py)) };
    // A copy made in C, then checked in place: the common case allocates nothing else.
    let d = match h.cast::<PyDict>() {
        Ok(d) => d.copy()?,
        Err(_) => {
            let d = PyDict::new(py);
            for (k, v) in StrMap::extract(h.as_borrowed())?.0 {
                d.set_item(k, v)?;
            }
            d
        }
    };
    for (k, v) in d.iter() {
        // `to_str` also refuses text that is not valid UTF-8 (a lone surrogate), which could not
        // be written later.
        let text =
            |o: &Bound<'py, PyAny>| o.cast::<PyString>().ok().and_then(|s| s.to_str().ok().map(|_| ()));
        if text(&k).is_none() || text(&v).is_none() {
            return Err(StrMap::type_error());
        }
    }
    Ok(d)
}
