//! asynq's protobuf messages (`internal/proto/asynq.proto`, proto3, package `asynq`), with asynq's
//! field numbers. Declared with prost's derive so no `protoc` is needed at build time.

use std::collections::BTreeMap;

/// `google.protobuf.Timestamp`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Timestamp {
    /// Seconds since the Unix epoch.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Non-negative fraction of a second, in nanoseconds.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// A task as stored in the `msg` field of `asynq:{q}:t:<id>`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TaskMessage {
    /// Task type name.
    #[prost(string, tag = "1")]
    pub r#type: String,
    /// Opaque payload.
    #[prost(bytes = "vec", tag = "2")]
    pub payload: Vec<u8>,
    /// Metadata (asynq v0.26.0+). A `BTreeMap` so encoding is deterministic.
    #[prost(btree_map = "string, string", tag = "15")]
    pub headers: BTreeMap<String, String>,
    /// Task ID.
    #[prost(string, tag = "3")]
    pub id: String,
    /// Queue name.
    #[prost(string, tag = "4")]
    pub queue: String,
    /// Maximum number of retries.
    #[prost(int32, tag = "5")]
    pub retry: i32,
    /// Retries done so far.
    #[prost(int32, tag = "6")]
    pub retried: i32,
    /// Last error text.
    #[prost(string, tag = "7")]
    pub error_msg: String,
    /// Unix seconds of the last failure; 0 = none.
    #[prost(int64, tag = "11")]
    pub last_failed_at: i64,
    /// Timeout in seconds; 0 = none.
    #[prost(int64, tag = "8")]
    pub timeout: i64,
    /// Deadline in Unix seconds; 0 = none.
    #[prost(int64, tag = "9")]
    pub deadline: i64,
    /// Name of the unique-lock key; empty = not unique.
    #[prost(string, tag = "10")]
    pub unique_key: String,
    /// Group name; empty = none.
    #[prost(string, tag = "14")]
    pub group_key: String,
    /// Seconds to keep the task after success.
    #[prost(int64, tag = "12")]
    pub retention: i64,
    /// Unix seconds of success; 0 = none.
    #[prost(int64, tag = "13")]
    pub completed_at: i64,
}

/// What a server publishes about itself at `asynq:servers:{host:pid:id}`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ServerInfo {
    /// Host name.
    #[prost(string, tag = "1")]
    pub host: String,
    /// Process ID.
    #[prost(int32, tag = "2")]
    pub pid: i32,
    /// Server ID (UUID v4).
    #[prost(string, tag = "3")]
    pub server_id: String,
    /// Maximum in-flight tasks.
    #[prost(int32, tag = "4")]
    pub concurrency: i32,
    /// Configured queue priorities.
    #[prost(btree_map = "string, int32", tag = "5")]
    pub queues: BTreeMap<String, i32>,
    /// Strict priority enabled.
    #[prost(bool, tag = "6")]
    pub strict_priority: bool,
    /// `active`, `stopped` or `closed`.
    #[prost(string, tag = "7")]
    pub status: String,
    /// When the server started.
    #[prost(message, optional, tag = "8")]
    pub start_time: Option<Timestamp>,
    /// Tasks in flight.
    #[prost(int32, tag = "9")]
    pub active_worker_count: i32,
}

/// One in-flight task, a field of `asynq:workers:{host:pid:id}`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WorkerInfo {
    /// Host name.
    #[prost(string, tag = "1")]
    pub host: String,
    /// Process ID.
    #[prost(int32, tag = "2")]
    pub pid: i32,
    /// Server ID.
    #[prost(string, tag = "3")]
    pub server_id: String,
    /// Task ID.
    #[prost(string, tag = "4")]
    pub task_id: String,
    /// Task type.
    #[prost(string, tag = "5")]
    pub task_type: String,
    /// Task payload.
    #[prost(bytes = "vec", tag = "6")]
    pub task_payload: Vec<u8>,
    /// Queue name.
    #[prost(string, tag = "7")]
    pub queue: String,
    /// When processing started.
    #[prost(message, optional, tag = "8")]
    pub start_time: Option<Timestamp>,
    /// Effective deadline of the task.
    #[prost(message, optional, tag = "9")]
    pub deadline: Option<Timestamp>,
}

/// One periodic entry of a scheduler, in `asynq:schedulers:{<scheduler id>}`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SchedulerEntry {
    /// Entry ID.
    #[prost(string, tag = "1")]
    pub id: String,
    /// Cron spec as given.
    #[prost(string, tag = "2")]
    pub spec: String,
    /// Task type.
    #[prost(string, tag = "3")]
    pub task_type: String,
    /// Task payload.
    #[prost(bytes = "vec", tag = "4")]
    pub task_payload: Vec<u8>,
    /// asynq `Option.String()` forms of the enqueue options.
    #[prost(string, repeated, tag = "5")]
    pub enqueue_options: Vec<String>,
    /// Next firing.
    #[prost(message, optional, tag = "6")]
    pub next_enqueue_time: Option<Timestamp>,
    /// Last firing (Go's zero time when none).
    #[prost(message, optional, tag = "7")]
    pub prev_enqueue_time: Option<Timestamp>,
}

/// One firing, in `asynq:scheduler_history:<entry id>`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SchedulerEnqueueEvent {
    /// ID of the enqueued task.
    #[prost(string, tag = "1")]
    pub task_id: String,
    /// When it was enqueued.
    #[prost(message, optional, tag = "2")]
    pub enqueue_time: Option<Timestamp>,
}
