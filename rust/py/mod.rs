//! The PyO3 layer: the only place (with `lib.rs`) that uses `pyo3`.

pub mod client;
pub mod cron;
pub mod errors;
pub mod layout;
pub mod log;
pub mod server;

use std::time::{Duration, SystemTime};

use pyo3::prelude::*;

use crate::clock::from_unix_nanos;
use crate::error::Error;

/// Seconds from Python (validated) to a `Duration`.
pub(crate) fn duration(what: &str, secs: f64) -> PyResult<Duration> {
    if !secs.is_finite() || secs < 0.0 {
        return Err(Error::InvalidArgument(format!(
            "{what} must be a non-negative number of seconds, got {secs}"
        ))
        .into());
    }
    Duration::try_from_secs_f64(secs).map_err(|e| Error::InvalidArgument(format!("{what}: {e}")).into())
}

/// Unix seconds from Python to a `SystemTime`.
pub(crate) fn instant(secs: f64) -> PyResult<SystemTime> {
    if !secs.is_finite() {
        return Err(Error::InvalidArgument(format!("not a valid time: {secs}")).into());
    }
    Ok(from_unix_nanos((secs * 1e9) as i64))
}
