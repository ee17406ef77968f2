//! `ServerMetrics` and `TaskTypeMetrics`: a running server's worker metrics, as a scrape reads
//! them (the Prometheus collector in `ferroq.metrics` turns them into metric families).

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::server::metrics::{Ended, Snapshot, TypeRow, DURATION_BUCKETS};

/// Upper bounds (seconds) of the handler-duration histogram's buckets.
#[pyfunction]
pub fn duration_buckets() -> Vec<f64> {
    DURATION_BUCKETS.to_vec()
}

/// The runs of one task type in one queue, since the server started.
#[pyclass(module = "ferroq", name = "TaskTypeMetrics", frozen, get_all)]
pub struct PyTaskTypeMetrics {
    /// Queue name.
    queue: String,
    /// Task type.
    task_type: String,
    /// Cumulative counts per bucket of `duration_buckets()` (Prometheus' `le` buckets), then
    /// `+Inf` (equal to `duration_count`).
    duration_buckets: Vec<u64>,
    /// Seconds the handlers ran, in all.
    duration_sum: f64,
    /// Runs measured.
    duration_count: u64,
    /// Runs by how they ended: `succeeded`, `retried`, `archived`, `revoked`, `requeued`
    /// (shutdown) and `dropped` (the task was no longer this server's); every name is present.
    outcomes: Py<PyDict>,
}

impl PyTaskTypeMetrics {
    fn new(py: Python<'_>, r: TypeRow) -> PyResult<Self> {
        let mut acc = 0u64;
        let cumulative: Vec<u64> = r
            .durations
            .counts
            .iter()
            .map(|c| {
                acc += c;
                acc
            })
            .collect();
        let outcomes = PyDict::new(py);
        for (how, n) in &r.ended {
            outcomes.set_item(how.as_str(), n)?;
        }
        Ok(Self {
            duration_count: r.durations.count(),
            duration_sum: r.durations.sum,
            duration_buckets: cumulative,
            outcomes: outcomes.unbind(),
            queue: r.queue,
            task_type: r.task_type,
        })
    }
}

/// The names of the outcomes a run can end with, in a stable order.
#[pyfunction]
pub fn outcome_names() -> Vec<&'static str> {
    Ended::ALL.iter().map(|e| e.as_str()).collect()
}

/// A running server's worker metrics at one instant.
#[pyclass(module = "ferroq", name = "ServerMetrics", frozen, get_all)]
pub struct PyServerMetrics {
    /// Runs by queue and task type.
    tasks: Vec<Py<PyTaskTypeMetrics>>,
    /// Tasks running now, by queue.
    in_flight: Py<PyDict>,
    /// Tasks this server recovered from dead servers, by queue.
    recovered: Py<PyDict>,
    /// Leases this server renewed.
    lease_renewals: u64,
    /// Leases found taken by another server (or a tool) while their task ran here.
    leases_lost: u64,
}

impl PyServerMetrics {
    pub(crate) fn new(py: Python<'_>, snap: Snapshot, in_flight: Vec<(String, usize)>) -> PyResult<Self> {
        let flight = PyDict::new(py);
        for (q, n) in in_flight {
            flight.set_item(q, n)?;
        }
        let recovered = PyDict::new(py);
        for (q, n) in snap.recovered {
            recovered.set_item(q, n)?;
        }
        let tasks = snap
            .by_type
            .into_iter()
            .map(|r| Py::new(py, PyTaskTypeMetrics::new(py, r)?))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(Self {
            tasks,
            in_flight: flight.unbind(),
            recovered: recovered.unbind(),
            lease_renewals: snap.lease_renewals,
            leases_lost: snap.leases_lost,
        })
    }
}
