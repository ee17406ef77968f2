//! One function per Redis key, as asynq's `internal/base` has them. Every per-queue key starts with
//! `<ns>:{<queue>}:` so all keys of a queue share one Redis Cluster slot.

use md5::{Digest, Md5};

/// asynq's namespace.
pub const DEFAULT_NAMESPACE: &str = "asynq";

/// Key builder for one namespace.
#[derive(Debug, Clone)]
pub struct Keys {
    ns: String,
}

impl Default for Keys {
    fn default() -> Self {
        Self::new(DEFAULT_NAMESPACE)
    }
}

impl Keys {
    /// Keys under `namespace` (asynq's is `asynq`).
    pub fn new(namespace: &str) -> Self {
        Self { ns: namespace.to_string() }
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.ns
    }

    /// `<ns>:{<q>}:` — the prefix every per-queue key starts with.
    pub fn queue_prefix(&self, q: &str) -> String {
        format!("{}:{{{}}}:", self.ns, q)
    }

    fn queue_key(&self, q: &str, suffix: &str) -> String {
        let mut k = self.queue_prefix(q);
        k.push_str(suffix);
        k
    }

    /// SET of every queue name producers wrote to.
    pub fn all_queues(&self) -> String {
        format!("{}:queues", self.ns)
    }
    /// LIST of pending task IDs.
    pub fn pending(&self, q: &str) -> String {
        self.queue_key(q, "pending")
    }
    /// LIST of active task IDs.
    pub fn active(&self, q: &str) -> String {
        self.queue_key(q, "active")
    }
    /// ZSET of active task IDs scored by lease expiry.
    pub fn lease(&self, q: &str) -> String {
        self.queue_key(q, "lease")
    }
    /// ZSET of scheduled task IDs scored by process-at.
    pub fn scheduled(&self, q: &str) -> String {
        self.queue_key(q, "scheduled")
    }
    /// ZSET of retry task IDs scored by retry-at.
    pub fn retry(&self, q: &str) -> String {
        self.queue_key(q, "retry")
    }
    /// ZSET of archived task IDs scored by archive time.
    pub fn archived(&self, q: &str) -> String {
        self.queue_key(q, "archived")
    }
    /// ZSET of completed task IDs scored by expiry.
    pub fn completed(&self, q: &str) -> String {
        self.queue_key(q, "completed")
    }
    /// STRING present while the queue is paused.
    pub fn paused(&self, q: &str) -> String {
        self.queue_key(q, "paused")
    }
    /// Prefix of task hash keys: `<ns>:{<q>}:t:`.
    pub fn task_prefix(&self, q: &str) -> String {
        self.queue_key(q, "t:")
    }
    /// HASH of one task.
    pub fn task(&self, q: &str, id: &str) -> String {
        let mut k = self.task_prefix(q);
        k.push_str(id);
        k
    }
    /// Lifetime processed counter.
    pub fn processed_total(&self, q: &str) -> String {
        self.queue_key(q, "processed")
    }
    /// Lifetime failed counter.
    pub fn failed_total(&self, q: &str) -> String {
        self.queue_key(q, "failed")
    }
    /// Processed counter of one UTC day (`YYYY-MM-DD`).
    pub fn processed(&self, q: &str, date: &str) -> String {
        self.queue_key(q, &format!("processed:{date}"))
    }
    /// Failed counter of one UTC day (`YYYY-MM-DD`).
    pub fn failed(&self, q: &str, date: &str) -> String {
        self.queue_key(q, &format!("failed:{date}"))
    }
    /// Unique lock of (queue, type, payload). `None` is Go's nil payload: asynq writes a trailing
    /// colon and no checksum for it.
    pub fn unique(&self, q: &str, task_type: &str, payload: Option<&[u8]>) -> String {
        match payload {
            None => self.queue_key(q, &format!("unique:{task_type}:")),
            Some(p) => {
                let digest = Md5::digest(p);
                let mut hex = String::with_capacity(32);
                for b in digest {
                    hex.push_str(&format!("{b:02x}"));
                }
                self.queue_key(q, &format!("unique:{task_type}:{hex}"))
            }
        }
    }
    /// Prefix of group zsets: `<ns>:{<q>}:g:`.
    pub fn group_prefix(&self, q: &str) -> String {
        self.queue_key(q, "g:")
    }
    /// ZSET of tasks waiting in a group.
    pub fn group(&self, q: &str, g: &str) -> String {
        self.queue_key(q, &format!("g:{g}"))
    }
    /// ZSET of a queue's aggregation sets (full key names) scored by their deadline.
    pub fn aggregation_sets(&self, q: &str) -> String {
        self.queue_key(q, "aggregation_sets")
    }
    /// SET of group names of a queue.
    pub fn groups(&self, q: &str) -> String {
        self.queue_key(q, "groups")
    }
    /// ZSET of server-info keys scored by expiry.
    pub fn servers(&self) -> String {
        format!("{}:servers", self.ns)
    }
    /// STRING holding one server's `ServerInfo`.
    pub fn server_info(&self, host: &str, pid: i32, server_id: &str) -> String {
        format!("{}:servers:{{{host}:{pid}:{server_id}}}", self.ns)
    }
    /// ZSET of workers keys scored by expiry.
    pub fn workers(&self) -> String {
        format!("{}:workers", self.ns)
    }
    /// HASH of one server's in-flight tasks (`WorkerInfo` by task ID).
    pub fn workers_of(&self, host: &str, pid: i32, server_id: &str) -> String {
        format!("{}:workers:{{{host}:{pid}:{server_id}}}", self.ns)
    }
    /// ZSET of scheduler-entries keys scored by expiry.
    pub fn schedulers(&self) -> String {
        format!("{}:schedulers", self.ns)
    }
    /// LIST of one scheduler's `SchedulerEntry` messages.
    pub fn scheduler_entries(&self, scheduler_id: &str) -> String {
        format!("{}:schedulers:{{{scheduler_id}}}", self.ns)
    }
    /// ZSET of `SchedulerEnqueueEvent`s of one entry (no hash tag, as asynq).
    pub fn scheduler_history(&self, entry_id: &str) -> String {
        format!("{}:scheduler_history:{entry_id}", self.ns)
    }
    /// STRING: the last firing (Unix s) of a periodic entry that was enqueued, shared by every
    /// scheduler replica (ferroq's; in the queue's slot so it can join the enqueue's transaction).
    pub fn periodic_last(&self, q: &str, entry_id: &str) -> String {
        self.queue_key(q, &format!("periodic:{entry_id}"))
    }
    /// Pub/Sub channel on which ferroq producers announce new pending tasks of a queue, so idle
    /// servers wake at once instead of at their next poll (asynq producers do not publish; they
    /// are served at the poll).
    pub fn wake_channel(&self, q: &str) -> String {
        self.queue_key(q, "wake")
    }
    /// Pub/Sub channel on which a task's end (`completed`, `archived`, `deleted`) is announced to
    /// whoever waits for its result; in the queue's slot, like its hash.
    pub fn done_channel(&self, q: &str, id: &str) -> String {
        let mut k = self.queue_key(q, "done:");
        k.push_str(id);
        k
    }
    /// Pub/Sub channel that wakes one client's waiter thread (`<ns>:ferroq:waiter:<uuid>`).
    pub fn waiter_channel(&self, uuid: &str) -> String {
        format!("{}:ferroq:waiter:{uuid}", self.ns)
    }
    /// Pub/Sub channel on which task IDs to cancel are published.
    pub fn cancel_channel(&self) -> String {
        format!("{}:cancel", self.ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_asynq() {
        let k = Keys::default();
        let cases = [
            (k.all_queues(), "asynq:queues"),
            (k.pending("default"), "asynq:{default}:pending"),
            (k.active("default"), "asynq:{default}:active"),
            (k.lease("default"), "asynq:{default}:lease"),
            (k.scheduled("q"), "asynq:{q}:scheduled"),
            (k.retry("q"), "asynq:{q}:retry"),
            (k.archived("q"), "asynq:{q}:archived"),
            (k.completed("q"), "asynq:{q}:completed"),
            (k.paused("q"), "asynq:{q}:paused"),
            (k.task("q", "id1"), "asynq:{q}:t:id1"),
            (k.processed_total("q"), "asynq:{q}:processed"),
            (k.failed_total("q"), "asynq:{q}:failed"),
            (k.processed("q", "2026-11-27"), "asynq:{q}:processed:2026-11-27"),
            (k.failed("q", "2026-11-27"), "asynq:{q}:failed:2026-11-27"),
            (k.group("q", "g1"), "asynq:{q}:g:g1"),
            (k.groups("q"), "asynq:{q}:groups"),
            (k.aggregation_sets("q"), "asynq:{q}:aggregation_sets"),
            (k.servers(), "asynq:servers"),
            (k.server_info("h", 7, "sid"), "asynq:servers:{h:7:sid}"),
            (k.workers(), "asynq:workers"),
            (k.workers_of("h", 7, "sid"), "asynq:workers:{h:7:sid}"),
            (k.cancel_channel(), "asynq:cancel"),
            (k.schedulers(), "asynq:schedulers"),
            (k.scheduler_entries("h:1:u"), "asynq:schedulers:{h:1:u}"),
            (k.scheduler_history("e1"), "asynq:scheduler_history:e1"),
            (k.periodic_last("q", "e1"), "asynq:{q}:periodic:e1"),
            (k.wake_channel("q"), "asynq:{q}:wake"),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }

    #[test]
    fn unique_keys_hash_the_payload() {
        let k = Keys::default();
        assert_eq!(k.unique("q", "t", None), "asynq:{q}:unique:t:");
        assert_eq!(k.unique("q", "t", Some(b"")), "asynq:{q}:unique:t:d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(
            k.unique("default", "email", Some(b"hello")),
            "asynq:{default}:unique:email:5d41402abc4b2a76b9719d911017c592"
        );
    }

    #[test]
    fn namespace_is_configurable() {
        let k = Keys::new("myapp");
        assert_eq!(k.pending("default"), "myapp:{default}:pending");
        assert_eq!(k.servers(), "myapp:servers");
    }
}
