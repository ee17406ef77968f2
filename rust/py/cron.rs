//! `NativeCron`: the cron engine behind `ferroq.cron.CronSchedule`. Instants cross the boundary
//! as (Unix seconds, nanoseconds) in UTC; Python owns the datetime objects.

use pyo3::prelude::*;

use super::errors::CronSpecError;
use super::options::PyTaskOptions;
use crate::cron::{utc_from_unix, CronSchedule, Zone};
use crate::error::Error;
use crate::goformat::go_duration_string;

/// A parsed cron spec.
#[pyclass(module = "ferroq._native", frozen)]
pub struct NativeCron {
    inner: CronSchedule,
}

fn instant(secs: i64, nanos: u32) -> PyResult<chrono::NaiveDateTime> {
    utc_from_unix(secs, nanos)
        .ok_or_else(|| Error::InvalidArgument(format!("time out of range: {secs}")).into())
}

fn out(t: Option<chrono::NaiveDateTime>) -> Option<i64> {
    t.map(|t| t.and_utc().timestamp())
}

#[pymethods]
impl NativeCron {
    /// `zone` is an IANA name or `UTC`; `offset` a fixed offset in seconds (used when no name).
    #[new]
    #[pyo3(signature = (spec, zone = None, offset = None))]
    fn new(spec: &str, zone: Option<&str>, offset: Option<i32>) -> PyResult<Self> {
        let z = match (zone, offset) {
            (Some(name), _) => Zone::named(name),
            (None, Some(o)) => Zone::fixed(o),
            (None, None) => Ok(Zone::Utc),
        }
        .map_err(|m| CronSpecError::new_err(format!("invalid cron spec {spec:?}: {m}")))?;
        let inner = CronSchedule::parse(spec, z)
            .map_err(|e| CronSpecError::new_err(format!("invalid cron spec {spec:?}: {e}")))?;
        Ok(Self { inner })
    }

    /// The zone's name: `UTC`, an IANA name, or `+HH:MM`.
    #[getter]
    fn zone(&self) -> String {
        self.inner.zone().name()
    }

    /// The offset (seconds east of UTC) of the zone at a Unix second.
    fn offset_at(&self, secs: i64) -> PyResult<i32> {
        Ok(self.inner.zone().offset_at(instant(secs, 0)?))
    }

    /// `@every`'s interval in seconds, or None.
    #[getter]
    fn every(&self) -> Option<i64> {
        self.inner.every()
    }

    /// The first firing strictly after (secs, nanos), as Unix seconds; None if it never fires.
    fn next_after(&self, py: Python<'_>, secs: i64, nanos: u32) -> PyResult<Option<i64>> {
        let t = instant(secs, nanos)?;
        Ok(py.detach(|| out(self.inner.next_after(t))))
    }

    /// The last firing strictly before (secs, nanos), as Unix seconds.
    fn prev_before(&self, py: Python<'_>, secs: i64, nanos: u32) -> PyResult<Option<i64>> {
        let t = instant(secs, nanos)?;
        Ok(py.detach(|| out(self.inner.prev_before(t))))
    }

    /// Whether it fires at exactly (secs, nanos).
    fn matches(&self, secs: i64, nanos: u32) -> PyResult<bool> {
        Ok(self.inner.matches(instant(secs, nanos)?))
    }
}

/// Formats seconds as Go's `time.Duration.String()` (asynq's option strings use it).
#[pyfunction]
pub fn go_duration(secs: f64) -> String {
    go_duration_string(secs)
}

/// Encodes an asynq `SchedulerEntry` (`prev_at` None is Go's zero time, "never"); the options
/// are written in asynq's `Option.String()` forms.
#[pyfunction]
#[pyo3(signature = (id, spec, task_type, payload, options, next_at, prev_at = None))]
pub fn encode_scheduler_entry<'py>(
    py: Python<'py>,
    id: String,
    spec: String,
    task_type: String,
    payload: Vec<u8>,
    options: &PyTaskOptions,
    next_at: f64,
    prev_at: Option<f64>,
) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
    use prost::Message;
    let ts = |secs: f64| crate::message::timestamp(crate::clock::from_unix_nanos((secs * 1e9) as i64));
    let e = crate::proto::SchedulerEntry {
        id,
        spec,
        task_type,
        task_payload: payload,
        enqueue_options: crate::goformat::option_strings(&options.inner),
        next_enqueue_time: Some(ts(next_at)),
        prev_enqueue_time: Some(prev_at.map(ts).unwrap_or(crate::message::GO_ZERO_TIME)),
    };
    Ok(pyo3::types::PyBytes::new(py, &e.encode_to_vec()))
}
