//! The Lua scripts, one file per operation under `lua/`, embedded at compile time. Each file opens
//! with its KEYS/ARGV/returns contract.

use std::sync::LazyLock;

use redis::Script;

macro_rules! scripts {
    ($($name:ident => $file:literal),* $(,)?) => {
        $(
            #[doc = concat!("`lua/", $file, "`")]
            pub static $name: LazyLock<Script> =
                LazyLock::new(|| Script::new(include_str!(concat!("lua/", $file))));
        )*
    };
}

scripts! {
    ENQUEUE => "enqueue.lua",
    ENQUEUE_UNIQUE => "enqueue_unique.lua",
    ENQUEUE_BATCH => "enqueue_batch.lua",
    SCHEDULE => "schedule.lua",
    SCHEDULE_UNIQUE => "schedule_unique.lua",
    ADD_TO_GROUP => "add_to_group.lua",
    ADD_TO_GROUP_UNIQUE => "add_to_group_unique.lua",
    DEQUEUE => "dequeue.lua",
    DONE => "done.lua",
    DONE_BATCH => "done_batch.lua",
    MARK_AS_COMPLETE => "mark_as_complete.lua",
    REQUEUE => "requeue.lua",
    RETRY => "retry.lua",
    ARCHIVE => "archive.lua",
    FORWARD => "forward.lua",
    EXTEND_LEASE => "extend_lease.lua",
    LIST_LEASE_EXPIRED => "list_lease_expired.lua",
    DELETE_EXPIRED_COMPLETED => "delete_expired_completed.lua",
    WRITE_RESULT => "write_result.lua",
    WRITE_SERVER_STATE => "write_server_state.lua",
    CLEAR_SERVER_STATE => "clear_server_state.lua",
    WRITE_SCHEDULER_ENTRIES => "write_scheduler_entries.lua",
    RUN_TASKS => "run_tasks.lua",
    ARCHIVE_TASKS => "archive_tasks.lua",
    DELETE_TASKS => "delete_tasks.lua",
    UPDATE_PAYLOAD => "update_payload.lua",
    REMOVE_QUEUE => "remove_queue.lua",
    DELETE_STRAY => "delete_stray.lua",
}
