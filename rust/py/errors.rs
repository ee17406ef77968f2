//! The one place core errors become Python exceptions. The tree is declared here under the name
//! `ferroq.errors` (what users see in tracebacks and `__module__`) and re-exported by that module.

use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::{create_exception, PyErr};

use crate::error::Error;

create_exception!(ferroq.errors, FerroqError, PyException, "Base class of every ferroq error.");
create_exception!(ferroq.errors, BrokerError, FerroqError, "Redis failed or answered with an error.");
create_exception!(
    ferroq.errors,
    BrokerConnectionError,
    BrokerError,
    "Redis could not be reached (refused, timed out, TLS failure)."
);
create_exception!(
    ferroq.errors,
    NotReplicatedError,
    BrokerError,
    "Durable mode: the write is on the master, but fewer replicas than asked confirmed it in time."
);
create_exception!(ferroq.errors, InvalidArgumentError, FerroqError, "A value the API does not accept.");
create_exception!(
    ferroq.errors,
    CronSpecError,
    InvalidArgumentError,
    "A cron spec that cannot be parsed; the message names the field and its position."
);
create_exception!(
    ferroq.errors,
    MalformedMessageError,
    FerroqError,
    "Bytes read from Redis are not a valid task message."
);
create_exception!(
    ferroq.errors,
    DuplicateTaskError,
    FerroqError,
    "A unique task with the same queue, type and payload already holds the lock."
);
create_exception!(
    ferroq.errors,
    TaskIdConflictError,
    FerroqError,
    "A task with the same ID already exists in the queue."
);
create_exception!(ferroq.errors, TaskNotFoundError, FerroqError, "The task is not (or no longer) there.");
create_exception!(
    ferroq.errors,
    QueueNotFoundError,
    FerroqError,
    "The queue does not exist: no producer registered it, or it was deleted."
);
create_exception!(
    ferroq.errors,
    QueueNotEmptyError,
    FerroqError,
    "The queue still holds tasks; delete it with force=True to delete them too."
);
create_exception!(ferroq.errors, ServerClosedError, FerroqError, "The server was shut down or not started.");
create_exception!(
    ferroq.errors,
    HandlerNotFoundError,
    FerroqError,
    "No handler is registered for the task's type."
);
create_exception!(
    ferroq.errors,
    SkipRetry,
    FerroqError,
    "Raise from a handler to archive the task at once, without further retries."
);
create_exception!(
    ferroq.errors,
    RevokeTask,
    FerroqError,
    "Raise from a handler to drop the task: no retry, no archive, counted as processed."
);

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        let text = e.to_string();
        match e {
            _ if e.is_connection_error() => BrokerConnectionError::new_err(text),
            Error::Connection(_) => BrokerConnectionError::new_err(text),
            Error::Redis(_) | Error::Broker(_) | Error::Protocol(_) => BrokerError::new_err(text),
            Error::NotReplicated(_) => NotReplicatedError::new_err(text),
            Error::Thread(_) => FerroqError::new_err(text),
            Error::Decode(_) => MalformedMessageError::new_err(text),
            Error::InvalidArgument(_) => InvalidArgumentError::new_err(text),
            Error::DuplicateTask => DuplicateTaskError::new_err(text),
            Error::TaskIdConflict => TaskIdConflictError::new_err(text),
            Error::NotFound | Error::TaskNotFound { .. } => TaskNotFoundError::new_err(text),
            Error::QueueNotFound(_) => QueueNotFoundError::new_err(text),
            Error::QueueNotEmpty(_) => QueueNotEmptyError::new_err(text),
            Error::ServerClosed => ServerClosedError::new_err(text),
        }
    }
}

/// Adds the exception classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("FerroqError", py.get_type::<FerroqError>())?;
    m.add("BrokerError", py.get_type::<BrokerError>())?;
    m.add("BrokerConnectionError", py.get_type::<BrokerConnectionError>())?;
    m.add("NotReplicatedError", py.get_type::<NotReplicatedError>())?;
    m.add("InvalidArgumentError", py.get_type::<InvalidArgumentError>())?;
    m.add("MalformedMessageError", py.get_type::<MalformedMessageError>())?;
    m.add("DuplicateTaskError", py.get_type::<DuplicateTaskError>())?;
    m.add("TaskIdConflictError", py.get_type::<TaskIdConflictError>())?;
    m.add("TaskNotFoundError", py.get_type::<TaskNotFoundError>())?;
    m.add("QueueNotFoundError", py.get_type::<QueueNotFoundError>())?;
    m.add("QueueNotEmptyError", py.get_type::<QueueNotEmptyError>())?;
    m.add("ServerClosedError", py.get_type::<ServerClosedError>())?;
    m.add("HandlerNotFoundError", py.get_type::<HandlerNotFoundError>())?;
    m.add("CronSpecError", py.get_type::<CronSpecError>())?;
    m.add("SkipRetry", py.get_type::<SkipRetry>())?;
    m.add("RevokeTask", py.get_type::<RevokeTask>())?;
    Ok(())
}
