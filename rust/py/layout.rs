//! asynq's Redis layout and queue selection, exposed for tooling, tests and benchmarks: the
//! functions the core itself uses, so what Python sees is what the server does.

use std::collections::BTreeMap;

use pyo3::prelude::*;

use crate::rdb::keys::{Keys, DEFAULT_NAMESPACE};
use crate::server::queues::QueueSelector;

fn keys(namespace: Option<&str>) -> Keys {
    Keys::new(namespace.unwrap_or(DEFAULT_NAMESPACE))
}

/// Every per-queue key and channel of `queue` under `namespace`, by role.
#[pyfunction]
#[pyo3(signature = (queue, namespace = None))]
pub fn queue_keys(queue: &str, namespace: Option<&str>) -> BTreeMap<&'static str, String> {
    let k = keys(namespace);
    BTreeMap::from([
        ("pending", k.pending(queue)),
        ("active", k.active(queue)),
        ("lease", k.lease(queue)),
        ("scheduled", k.scheduled(queue)),
        ("retry", k.retry(queue)),
        ("archived", k.archived(queue)),
        ("completed", k.completed(queue)),
        ("paused", k.paused(queue)),
        ("processed", k.processed_total(queue)),
        ("failed", k.failed_total(queue)),
        ("groups", k.groups(queue)),
        ("task_prefix", k.task_prefix(queue)),
        ("wake", k.wake_channel(queue)),
    ])
}

/// The hash key of task `task_id` in `queue`.
#[pyfunction]
#[pyo3(signature = (queue, task_id, namespace = None))]
pub fn task_key(queue: &str, task_id: &str, namespace: Option<&str>) -> String {
    keys(namespace).task(queue, task_id)
}

/// The unique lock of (queue, type, payload); `None` is asynq's nil payload.
#[pyfunction]
#[pyo3(signature = (queue, task_type, payload, namespace = None))]
pub fn unique_key(queue: &str, task_type: &str, payload: Option<&[u8]>, namespace: Option<&str>) -> String {
    keys(namespace).unique(queue, task_type, payload)
}

/// The server's queue selection: weighted random order (asynq's) or strict priority.
#[pyclass(module = "ferroq._native", frozen)]
pub struct NativeQueueSelector {
    inner: QueueSelector,
}

#[pymethods]
impl NativeQueueSelector {
    #[new]
    #[pyo3(signature = (queues, strict_priority = false))]
    fn new(queues: BTreeMap<String, i32>, strict_priority: bool) -> Self {
        let qs: Vec<(String, i32)> = queues.into_iter().collect();
        Self { inner: QueueSelector::new(&qs, strict_priority) }
    }

    /// Queue names and priorities after normalisation, highest first.
    fn queues(&self) -> Vec<(String, u32)> {
        self.inner.queues().to_vec()
    }

    /// The order in which one dequeue tries the queues.
    fn order(&self) -> Vec<&str> {
        self.inner.order()
    }
}
