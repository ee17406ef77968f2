//! The one error type of the Rust core. `py/errors.rs` maps each variant to a Python exception.

use std::fmt;

/// Everything that can go wrong in the core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Redis answered with an error, or the connection failed mid-command.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// No connection could be made (bad URL, refused, TLS failure).
    #[error("cannot connect to redis: {0}")]
    Connection(String),
    /// Bytes read from Redis are not a valid protobuf message of the expected type.
    #[error("malformed message: {0}")]
    Decode(String),
    /// A caller passed a value the API does not accept.
    #[error("{0}")]
    InvalidArgument(String),
    /// A unique task with the same (queue, type, payload) holds the lock.
    #[error("task already exists")]
    DuplicateTask,
    /// A task with the same ID exists in the queue, in any state.
    #[error("task ID conflicts with another task")]
    TaskIdConflict,
    /// The task is not where the operation expected it (another server took it over).
    #[error("task not found")]
    NotFound,
    /// A script returned a value outside its contract.
    #[error("unexpected reply from redis: {0}")]
    Protocol(String),
    /// The server was shut down or never started.
    #[error("server is closed")]
    ServerClosed,
}

impl Error {
    /// True when the failure was in the transport, so retrying on a fresh connection may succeed.
    pub fn is_connection_error(&self) -> bool {
        match self {
            Error::Connection(_) => true,
            Error::Redis(e) => {
                e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout()
            }
            _ => false,
        }
    }

    /// Builds a protocol error from anything printable.
    pub fn protocol(what: impl fmt::Display) -> Self {
        Error::Protocol(what.to_string())
    }
}

/// Result alias used across the core.
pub type Result<T> = std::result::Result<T, Error>;
