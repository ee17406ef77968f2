//! What is known of one task: its message and where it is. The same type describes a task just
//! enqueued and one read back from Redis.

use crate::message::TaskMessage;

/// Where a task is in its life, with asynq's state names (the task hash's `state` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskState {
    /// Leased by a server.
    Active,
    /// Waiting to run.
    Pending,
    /// Waiting for its process-at.
    Scheduled,
    /// Failed, waiting for its next attempt.
    Retry,
    /// Out of retries (or archived by hand).
    Archived,
    /// Succeeded, kept for its retention.
    Completed,
    /// Waiting in a group to be aggregated.
    Aggregating,
}

impl TaskState {
    /// Every state, in asynq's order.
    pub const ALL: [TaskState; 7] = [
        TaskState::Active,
        TaskState::Pending,
        TaskState::Scheduled,
        TaskState::Retry,
        TaskState::Archived,
        TaskState::Completed,
        TaskState::Aggregating,
    ];

    /// asynq's name, as stored in the task hash.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Active => "active",
            TaskState::Pending => "pending",
            TaskState::Scheduled => "scheduled",
            TaskState::Retry => "retry",
            TaskState::Archived => "archived",
            TaskState::Completed => "completed",
            TaskState::Aggregating => "aggregating",
        }
    }

    /// The state named `s` (asynq's names); `None` for anything else.
    pub fn parse(s: &str) -> Option<TaskState> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// A task's message, state and what its hash holds beside them.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskInfo {
    /// The message (id, queue, type, payload, options, retries, last error...).
    pub msg: TaskMessage,
    /// Where it is.
    pub state: TaskState,
    /// When it runs next, Unix seconds (0: not known, or not going to run).
    pub next_process_at: i64,
    /// What the handler stored with `write_result`, if anything.
    pub result: Option<Vec<u8>>,
    /// The handler's exception as JSON (`type`, `message`, `traceback`), kept by a ferroq server
    /// when it archived the task (the hash field `exception`).
    pub error_detail: Option<Vec<u8>>,
    /// The last progress its handler reported (`Task.report_progress`: JSON), if any.
    pub progress: Option<Vec<u8>>,
    /// Active, with no live lease: its server died and the recoverer has not reached it yet.
    pub is_orphaned: bool,
}

impl TaskInfo {
    /// A task as an enqueue wrote it (nothing ran yet: no result, not orphaned).
    pub fn written(msg: TaskMessage, state: TaskState, next_process_at: i64) -> Self {
        Self {
            msg,
            state,
            next_process_at,
            result: None,
            error_detail: None,
            progress: None,
            is_orphaned: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_round_trip() {
        for s in TaskState::ALL {
            assert_eq!(TaskState::parse(s.as_str()), Some(s));
        }
        assert_eq!(TaskState::parse("gone"), None);
    }
}
