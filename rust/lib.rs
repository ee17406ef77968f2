//! ferroq's Rust core, loaded by Python as `ferroq._native`. This file only registers the module.

pub mod client;
pub mod clock;
pub mod cron;
pub mod error;
pub mod goformat;
pub mod info;
pub mod io;
pub mod message;
pub mod options;
pub mod proto;
pub mod py;
pub mod rdb;
pub mod server;
pub mod waiter;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    py::log::install();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("DEFAULT_NAMESPACE", rdb::keys::DEFAULT_NAMESPACE)?;
    m.add("DEFAULT_QUEUE", options::DEFAULT_QUEUE)?;
    m.add("DEFAULT_MAX_RETRY", options::DEFAULT_MAX_RETRY)?;
    py::errors::register(m)?;
    m.add_class::<py::options::PyTaskOptions>()?;
    m.add_class::<py::info::PyTaskInfo>()?;
    m.add_class::<py::info::PyTaskState>()?;
    m.add_class::<py::client::NativeClient>()?;
    m.add_class::<py::client::PyFired>()?;
    m.add_class::<py::inspector::NativeInspector>()?;
    m.add_class::<py::inspector::PyQueueInfo>()?;
    m.add_class::<py::inspector::PyDailyStats>()?;
    m.add_class::<py::inspector::PyGroupInfo>()?;
    m.add_class::<py::inspector::PyServerInfo>()?;
    m.add_class::<py::inspector::PyWorkerInfo>()?;
    m.add_class::<py::inspector::PySchedulerEntry>()?;
    m.add_class::<py::inspector::PySchedulerEnqueueEvent>()?;
    m.add_class::<py::server::NativeServer>()?;
    m.add_class::<py::metrics::PyServerMetrics>()?;
    m.add_class::<py::metrics::PyTaskTypeMetrics>()?;
    m.add_function(wrap_pyfunction!(py::metrics::duration_buckets, m)?)?;
    m.add_function(wrap_pyfunction!(py::metrics::outcome_names, m)?)?;
    m.add_class::<py::server::PyServerConfig>()?;
    m.add_class::<py::server::PyLease>()?;
    m.add_class::<py::server::PyOutcome>()?;
    m.add_class::<py::server::PyCancelReason>()?;
    m.add_class::<py::cron::NativeCron>()?;
    m.add_class::<py::layout::NativeQueueSelector>()?;
    m.add_function(wrap_pyfunction!(py::options::check_task, m)?)?;
    m.add_function(wrap_pyfunction!(py::server::py_will_retry, m)?)?;
    m.add_function(wrap_pyfunction!(py::layout::queue_keys, m)?)?;
    m.add_function(wrap_pyfunction!(py::layout::task_key, m)?)?;
    m.add_function(wrap_pyfunction!(py::layout::unique_key, m)?)?;
    m.add_function(wrap_pyfunction!(py::cron::go_duration, m)?)?;
    m.add_function(wrap_pyfunction!(py::cron::encode_scheduler_entry, m)?)?;
    m.add_function(wrap_pyfunction!(py::message::encode_task_message, m)?)?;
    m.add_function(wrap_pyfunction!(py::message::decode_task_message, m)?)?;
    Ok(())
}
