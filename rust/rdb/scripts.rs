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

        /// Every script's SHA1 (lowercase hex, as `EVALSHA` sends it) and source.
        static SOURCES: LazyLock<Vec<(String, &'static str)>> = LazyLock::new(|| {
            vec![$(($name.get_hash().to_string(), include_str!(concat!("lua/", $file)))),*]
        });
    };
}

/// The source of the script whose SHA1 is `sha` (hex, any case), if it is one of ferroq's.
///
/// redis-rs does not expose a script's source. A cluster needs it: redis-rs sends `SCRIPT LOAD`
/// to every master (so one master down fails every load), where `EVAL` goes to the node of the
/// call's key and caches the script there.
pub fn source_of(sha: &[u8]) -> Option<&'static str> {
    SOURCES.iter().find(|(hash, _)| hash.as_bytes().eq_ignore_ascii_case(sha)).map(|(_, src)| *src)
}

/// `SCRIPT LOAD` of `script`, to send to one node (`Link::query_at_slot_of`).
pub fn load_cmd(script: &Script) -> Option<redis::Cmd> {
    let src = source_of(script.get_hash().as_bytes())?;
    let mut cmd = redis::cmd("SCRIPT");
    cmd.arg("LOAD").arg(src);
    Some(cmd)
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
    DEQUEUE_DECLARED => "dequeue_declared.lua",
    DONE => "done.lua",
    DONE_BATCH => "done_batch.lua",
    MARK_AS_COMPLETE => "mark_as_complete.lua",
    REQUEUE => "requeue.lua",
    RETRY => "retry.lua",
    ARCHIVE => "archive.lua",
    TRIM_ARCHIVE => "trim_archive.lua",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_is_found_by_its_hash() {
        for script in [&*DEQUEUE, &*DEQUEUE_DECLARED, &*DONE_BATCH, &*ENQUEUE, &*DELETE_STRAY] {
            let src = source_of(script.get_hash().as_bytes()).expect("a ferroq script");
            assert_eq!(Script::new(src).get_hash(), script.get_hash());
            let upper = script.get_hash().to_ascii_uppercase();
            assert_eq!(source_of(upper.as_bytes()), Some(src), "hex in any case");
        }
        // Every file under lua/ is registered.
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/rust/rdb/lua");
        let files = std::fs::read_dir(dir)
            .expect("the lua directory")
            .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "lua")))
            .count();
        assert_eq!(SOURCES.len(), files);
        assert_eq!(source_of(b"0000000000000000000000000000000000000000"), None);
        assert!(load_cmd(&ENQUEUE).is_some());
        assert!(load_cmd(&Script::new("return 1")).is_none());
    }
}
