//! Routes the core's `log` records to Python's `logging`: a record whose target is
//! [`crate::server::TASK_LOG`] goes to that logger (`ferroq.task`, where the Python side logs
//! every failed attempt), every other to `ferroq.core`. Only warnings and errors are emitted
//! from hot paths, so taking the GIL per record is cheap enough.

use pyo3::prelude::*;

struct PyLogger;

static LOGGER: PyLogger = PyLogger;

impl log::Log for PyLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Info
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            log::Level::Error => 40,
            log::Level::Warn => 30,
            log::Level::Info => 20,
            log::Level::Debug => 10,
            log::Level::Trace => 5,
        };
        let text = record.args().to_string();
        let name =
            if record.target() == crate::server::TASK_LOG { crate::server::TASK_LOG } else { "ferroq.core" };
        Python::attach(|py| {
            let emitted = py
                .import("logging")
                .and_then(|logging| logging.call_method1("getLogger", (name,)))
                .and_then(|logger| logger.call_method1("log", (level, text.as_str())));
            if emitted.is_err() {
                // Logging itself failed (interpreter shutting down); stderr is the last resort.
                eprintln!("ferroq: {text}");
            }
        });
    }

    fn flush(&self) {}
}

/// Installs the logger once per process.
pub fn install() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
}
