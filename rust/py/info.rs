//! `TaskInfo` and `TaskState`: what is known of a task, whether it was just enqueued or read back.

use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use super::{py_datetime, py_timedelta};
use crate::info::{TaskInfo, TaskState};

/// Where a task is in its life, with asynq's state names: `TaskState.PENDING.value ==
/// "pending"`, and a state compares equal to its name (`TaskState("pending")` is
/// `TaskState.PENDING`), as the `str` enum it replaces did.
#[pyclass(module = "ferroq", name = "TaskState", frozen)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum PyTaskState {
    /// Leased by a server.
    #[pyo3(name = "ACTIVE")]
    Active,
    /// Waiting to run.
    #[pyo3(name = "PENDING")]
    Pending,
    /// Waiting for its process-at.
    #[pyo3(name = "SCHEDULED")]
    Scheduled,
    /// Failed, waiting for its next attempt.
    #[pyo3(name = "RETRY")]
    Retry,
    /// Out of retries (or archived by hand).
    #[pyo3(name = "ARCHIVED")]
    Archived,
    /// Succeeded, kept for its retention.
    #[pyo3(name = "COMPLETED")]
    Completed,
    /// Waiting in a group to be aggregated.
    #[pyo3(name = "AGGREGATING")]
    Aggregating,
}

impl From<TaskState> for PyTaskState {
    fn from(s: TaskState) -> Self {
        match s {
            TaskState::Active => Self::Active,
            TaskState::Pending => Self::Pending,
            TaskState::Scheduled => Self::Scheduled,
            TaskState::Retry => Self::Retry,
            TaskState::Archived => Self::Archived,
            TaskState::Completed => Self::Completed,
            TaskState::Aggregating => Self::Aggregating,
        }
    }
}

impl From<PyTaskState> for TaskState {
    fn from(s: PyTaskState) -> Self {
        match s {
            PyTaskState::Active => Self::Active,
            PyTaskState::Pending => Self::Pending,
            PyTaskState::Scheduled => Self::Scheduled,
            PyTaskState::Retry => Self::Retry,
            PyTaskState::Archived => Self::Archived,
            PyTaskState::Completed => Self::Completed,
            PyTaskState::Aggregating => Self::Aggregating,
        }
    }
}

impl PyTaskState {
    /// The class attribute for `s`: the same object every time, so `state is TaskState.PENDING`.
    pub(crate) fn object(py: Python<'_>, s: TaskState) -> PyResult<Bound<'_, PyAny>> {
        let name = s.as_str().to_ascii_uppercase();
        py.get_type::<PyTaskState>().getattr(name.as_str())
    }
}

#[pymethods]
impl PyTaskState {
    /// The state named `value` (asynq's names).
    #[new]
    fn new(py: Python<'_>, value: &str) -> PyResult<Py<PyTaskState>> {
        let s = TaskState::parse(value).ok_or_else(|| {
            pyo3::exceptions::PyValueError::new_err(format!("{value:?} is not a valid TaskState"))
        })?;
        Ok(Self::object(py, s)?.cast_into::<PyTaskState>()?.unbind())
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        if let Ok(o) = other.cast::<PyTaskState>() {
            return *o.get() == *self;
        }
        other.extract::<&str>().is_ok_and(|s| s == self.value())
    }

    /// The hash of its name, so a state and its name are the same dict key.
    fn __hash__(&self, py: Python<'_>) -> PyResult<isize> {
        pyo3::types::PyString::new(py, self.value()).hash()
    }

    fn __repr__(&self) -> String {
        format!("TaskState.{}", self.value().to_ascii_uppercase())
    }

    /// asynq's name of the state, as stored in the task hash.
    #[getter]
    fn value(&self) -> &'static str {
        TaskState::from(*self).as_str()
    }

    fn __str__(&self) -> &'static str {
        self.value()
    }
}

fn secs_to_dt(py: Python<'_>, secs: i64) -> PyResult<Option<Py<PyAny>>> {
    if secs > 0 {
        Ok(Some(py_datetime(py, secs as f64)?))
    } else {
        Ok(None)
    }
}

fn nonempty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// What is known of a task (read-only): its message, its state and what its hash holds.
///
/// Returned by every enqueue; the same class describes a task read back from Redis.
#[pyclass(module = "ferroq", name = "TaskInfo", frozen)]
pub struct PyTaskInfo {
    pub(crate) inner: TaskInfo,
}

#[pymethods]
impl PyTaskInfo {
    /// Task ID.
    #[getter]
    fn id(&self) -> &str {
        &self.inner.msg.id
    }

    /// Queue name.
    #[getter]
    fn queue(&self) -> &str {
        &self.inner.msg.queue
    }

    /// Task type.
    #[getter]
    fn r#type(&self) -> &str {
        &self.inner.msg.r#type
    }

    /// Payload bytes (`b""` for none).
    #[getter]
    fn payload<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.msg.payload)
    }

    /// Headers (a new dict).
    #[getter]
    fn headers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in &self.inner.msg.headers {
            d.set_item(k, v)?;
        }
        Ok(d)
    }

    /// Current state.
    #[getter]
    fn state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        PyTaskState::object(py, self.inner.state)
    }

    /// Retries allowed.
    #[getter]
    fn max_retry(&self) -> i32 {
        self.inner.msg.retry
    }

    /// Retries done so far.
    #[getter]
    fn retried(&self) -> i32 {
        self.inner.msg.retried
    }

    /// The last error's text, if the task ever failed.
    #[getter]
    fn last_error(&self) -> Option<&str> {
        nonempty(&self.inner.msg.error_msg)
    }

    /// When it last failed, if ever.
    #[getter]
    fn last_failed_at(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        secs_to_dt(py, self.inner.msg.last_failed_at)
    }

    /// Per-run time limit, if any.
    #[getter]
    fn timeout(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let t = self.inner.msg.timeout;
        (t > 0).then(|| py_timedelta(py, Duration::from_secs(t.unsigned_abs()))).transpose()
    }

    /// Absolute deadline, if any.
    #[getter]
    fn deadline(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        secs_to_dt(py, self.inner.msg.deadline)
    }

    /// Aggregation group, if any.
    #[getter]
    fn group(&self) -> Option<&str> {
        nonempty(&self.inner.msg.group_key)
    }

    /// When it runs next, if known.
    #[getter]
    fn next_process_at(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        secs_to_dt(py, self.inner.next_process_at)
    }

    /// How long it is kept after success.
    #[getter]
    fn retention(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        py_timedelta(py, Duration::from_secs(self.inner.msg.retention.max(0).unsigned_abs()))
    }

    /// When it succeeded, for a completed task.
    #[getter]
    fn completed_at(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        secs_to_dt(py, self.inner.msg.completed_at)
    }

    /// The handler's exception as JSON (`type`, `message`, `traceback`), kept when a ferroq
    /// server archived the task.
    #[getter]
    fn error_detail<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.inner.error_detail.as_deref().map(|r| PyBytes::new(py, r))
    }

    /// The last progress its handler reported (JSON bytes), if any.
    #[getter]
    fn progress<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.inner.progress.as_deref().map(|r| PyBytes::new(py, r))
    }

    /// What its handler stored with `write_result`, if anything.
    #[getter]
    fn result<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.inner.result.as_deref().map(|r| PyBytes::new(py, r))
    }

    /// Active with no live lease: its server died and no recoverer has retried it yet.
    #[getter]
    fn is_orphaned(&self) -> bool {
        self.inner.is_orphaned
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.cast::<PyTaskInfo>().is_ok_and(|o| o.get().inner == self.inner)
    }

    fn __hash__(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.inner.msg.queue.hash(&mut h);
        self.inner.msg.id.hash(&mut h);
        h.finish()
    }

    fn __repr__(&self) -> String {
        let m = &self.inner.msg;
        format!(
            "TaskInfo(id={:?}, queue={:?}, type={:?}, state={:?}, next_process_at={})",
            m.id,
            m.queue,
            m.r#type,
            self.inner.state.as_str(),
            self.inner.next_process_at
        )
    }
}
