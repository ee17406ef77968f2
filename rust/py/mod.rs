//! The PyO3 layer: the only place (with `lib.rs`) that uses `pyo3`. Python values become the
//! core's types here, at the edge, and the core's results become Python objects; the rules live
//! in the core.

pub mod client;
pub mod cron;
pub mod errors;
pub mod info;
pub mod inspector;
pub mod layout;
pub mod log;
pub mod message;
pub mod metrics;
pub mod options;
pub mod server;

use std::time::{Duration, SystemTime};

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{IntoPyDict, PyBool, PyFloat, PyInt, PyType};

use crate::clock::{from_unix_nanos, unix_f64};
use crate::error::Error;

static DATETIME: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static TIMEDELTA: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static UTC: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into())
}

/// Seconds from Python (validated) to a `Duration`: finite and not negative.
pub(crate) fn duration(what: &str, secs: f64) -> PyResult<Duration> {
    if !secs.is_finite() || secs < 0.0 {
        return Err(Error::InvalidArgument(format!(
            "{what} must be a non-negative number of seconds, got {secs}"
        ))
        .into());
    }
    Duration::try_from_secs_f64(secs).map_err(|e| Error::InvalidArgument(format!("{what}: {e}")).into())
}

/// A duration as Python gives it: seconds (int or float, not bool) or a `datetime.timedelta`.
pub(crate) struct Seconds(pub f64);

impl<'a, 'py> FromPyObject<'a, 'py> for Seconds {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let py = obj.py();
        if obj.is_instance_of::<PyFloat>()
            || (obj.is_instance_of::<PyInt>() && !obj.is_instance_of::<PyBool>())
        {
            return Ok(Seconds(obj.extract()?));
        }
        if obj.is_instance(TIMEDELTA.import(py, "datetime", "timedelta")?)? {
            return Ok(Seconds(obj.call_method0("total_seconds")?.extract()?));
        }
        Err(PyTypeError::new_err(format!("expected seconds or a timedelta, not {}", type_name(&obj))))
    }
}

/// An instant as Python gives it: an aware `datetime.datetime` (a naive one is refused: which
/// zone would it be in?).
pub(crate) struct Instant(pub SystemTime);

impl<'a, 'py> FromPyObject<'a, 'py> for Instant {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let py = obj.py();
        if !obj.is_instance(DATETIME.import(py, "datetime", "datetime")?)? {
            return Err(PyTypeError::new_err(format!("expected an aware datetime, not {}", type_name(&obj))));
        }
        if obj.call_method0("utcoffset")?.is_none() {
            return Err(Error::invalid("a naive datetime is refused: give it a tzinfo").into());
        }
        let secs: f64 = obj.call_method0("timestamp")?.extract()?;
        Ok(Instant(unix_time(secs)?))
    }
}

/// An int that is not a bool (`True` is not a retry count).
pub(crate) struct StrictInt<T>(pub T);

impl<'a, 'py, T> FromPyObject<'a, 'py> for StrictInt<T>
where
    T: for<'b> FromPyObject<'b, 'py, Error = PyErr>,
{
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if obj.is_instance_of::<PyBool>() || !obj.is_instance_of::<PyInt>() {
            return Err(PyTypeError::new_err(format!("expected an int, not {}", type_name(&obj))));
        }
        obj.extract::<T>().map(StrictInt).map_err(|e: PyErr| {
            if e.is_instance_of::<pyo3::exceptions::PyOverflowError>(obj.py()) {
                let shown = obj.str().map(|s| s.to_string()).unwrap_or_default();
                Error::InvalidArgument(format!("{shown} is out of range")).into()
            } else {
                e
            }
        })
    }
}

/// A mapping of str to str (headers), from a dict or any object with `items()`.
pub struct StrMap(pub std::collections::BTreeMap<String, String>);

impl StrMap {
    /// The one error for a header that is not str to str.
    pub fn type_error() -> PyErr {
        PyTypeError::new_err("headers must map str to str")
    }
}

impl<'a, 'py> FromPyObject<'a, 'py> for StrMap {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let items = obj.call_method0("items").map_err(|_| {
            PyTypeError::new_err(format!("expected a mapping of str to str, not {}", type_name(&obj)))
        })?;
        let mut out = std::collections::BTreeMap::new();
        for item in items.try_iter()? {
            let (k, v): (Bound<'py, PyAny>, Bound<'py, PyAny>) = item?.extract()?;
            match (k.extract::<String>(), v.extract::<String>()) {
                (Ok(k), Ok(v)) => {
                    out.insert(k, v);
                }
                _ => return Err(StrMap::type_error()),
            }
        }
        Ok(StrMap(out))
    }
}

/// Unix seconds to a `SystemTime`.
pub(crate) fn unix_time(secs: f64) -> PyResult<SystemTime> {
    if !secs.is_finite() {
        return Err(Error::InvalidArgument(format!("not a valid time: {secs}")).into());
    }
    Ok(from_unix_nanos((secs * 1e9) as i64))
}

/// Unix seconds to an aware UTC `datetime`; beyond datetime's range (year 9999) it is the
/// largest one.
pub(crate) fn py_datetime(py: Python<'_>, secs: f64) -> PyResult<Py<PyAny>> {
    let cls = DATETIME.import(py, "datetime", "datetime")?;
    let utc = UTC.get_or_try_init(py, || -> PyResult<_> {
        Ok(py.import("datetime")?.getattr("timezone")?.getattr("utc")?.unbind())
    })?;
    match cls.call_method1("fromtimestamp", (secs, utc.bind(py))) {
        Ok(d) => Ok(d.unbind()),
        Err(_) => Ok(cls
            .getattr("max")?
            .call_method("replace", (), Some(&[("tzinfo", utc.bind(py))].into_py_dict(py)?))?
            .unbind()),
    }
}

/// A `SystemTime` as an aware UTC `datetime`.
pub(crate) fn py_instant(py: Python<'_>, t: SystemTime) -> PyResult<Py<PyAny>> {
    py_datetime(py, unix_f64(t))
}

/// A `Duration` as a `datetime.timedelta`.
pub(crate) fn py_timedelta(py: Python<'_>, d: Duration) -> PyResult<Py<PyAny>> {
    let cls = TIMEDELTA.import(py, "datetime", "timedelta")?;
    let secs = d.as_secs_f64().min(86_400.0 * 999_999_999.0);
    Ok(cls.call((), Some(&[("seconds", secs)].into_py_dict(py)?))?.unbind())
}
