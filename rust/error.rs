//! The one error type of the Rust core. `py/errors.rs` maps each variant to a Python exception of
//! `ferroq.errors`; nothing matches on error text.

use std::fmt;

/// Everything that can go wrong in the core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Redis answered with an error, or redis-rs failed mid-command (a transport failure is
    /// turned into [`Error::Connection`] where the address is known).
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// No connection could be made, or it dropped: the text names the address.
    #[error("{0}")]
    Connection(String),
    /// An error reply from Redis, as text (a copy of [`Error::Redis`] for every request of a
    /// pipeline call that failed).
    #[error("redis: {0}")]
    Broker(String),
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
    /// An Inspector call named a queue that no producer ever registered (or that was deleted).
    #[error("queue {0:?} does not exist")]
    QueueNotFound(String),
    /// A queue still holds tasks and the deletion was not forced.
    #[error("{0}")]
    QueueNotEmpty(String),
    /// An Inspector call named a task that is not in the queue (in any state).
    #[error("task {id:?} not found in queue {queue:?}")]
    TaskNotFound {
        /// Queue name.
        queue: String,
        /// Task ID.
        id: String,
    },
    /// A script returned a value outside its contract.
    #[error("unexpected reply from redis: {0}")]
    Protocol(String),
    /// Durable mode: the write is on the master, but too few replicas confirmed it in time.
    #[error("{0}")]
    NotReplicated(String),
    /// The server was shut down or never started.
    #[error("server is closed")]
    ServerClosed,
    /// The operating system refused a thread the core needs.
    #[error("cannot start thread {0}")]
    Thread(String),
}

impl Error {
    /// True when the failure was in the transport, so retrying on a fresh connection may succeed.
    pub fn is_connection_error(&self) -> bool {
        match self {
            Error::Connection(_) => true,
            Error::Redis(e) => is_transport(e),
            _ => false,
        }
    }

    /// A copy of this error for another request that failed with it (one pipeline call answers
    /// for many tasks): same kind, same text.
    pub fn duplicate(&self) -> Error {
        match self {
            e if e.is_connection_error() => Error::Connection(e.to_string()),
            Error::Redis(e) => Error::Broker(e.to_string()),
            Error::Connection(s) => Error::Connection(s.clone()),
            Error::Broker(s) => Error::Broker(s.clone()),
            Error::Decode(s) => Error::Decode(s.clone()),
            Error::InvalidArgument(s) => Error::InvalidArgument(s.clone()),
            Error::DuplicateTask => Error::DuplicateTask,
            Error::TaskIdConflict => Error::TaskIdConflict,
            Error::NotFound => Error::NotFound,
            Error::QueueNotFound(q) => Error::QueueNotFound(q.clone()),
            Error::QueueNotEmpty(s) => Error::QueueNotEmpty(s.clone()),
            Error::TaskNotFound { queue, id } => Error::TaskNotFound { queue: queue.clone(), id: id.clone() },
            Error::Protocol(s) => Error::Protocol(s.clone()),
            Error::ServerClosed => Error::ServerClosed,
            Error::NotReplicated(s) => Error::NotReplicated(s.clone()),
            Error::Thread(s) => Error::Thread(s.clone()),
        }
    }

    /// Builds a protocol error from anything printable.
    pub fn protocol(what: impl fmt::Display) -> Self {
        Error::Protocol(what.to_string())
    }

    /// Builds an invalid-argument error from anything printable.
    pub fn invalid(what: impl fmt::Display) -> Self {
        Error::InvalidArgument(what.to_string())
    }
}

/// True when a redis-rs error is a transport failure (the connection is gone), not a reply.
pub fn is_transport(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout()
}

/// Result alias used across the core.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_keep_the_kind() {
        let io = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        let e = Error::from(io);
        assert!(e.is_connection_error());
        assert!(e.duplicate().is_connection_error());
        let server = redis::RedisError::from((redis::ErrorKind::Client, "WRONGTYPE", "x".to_string()));
        assert!(matches!(Error::from(server).duplicate(), Error::Broker(_)));
        assert!(matches!(Error::NotFound.duplicate(), Error::NotFound));
    }
}
