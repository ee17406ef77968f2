//! The server's settings: every default written once ([`ServerConfig::default`]) and every rule
//! checked once ([`ServerConfig::validate`]). The Python `Server`, its docstring, the stub and
//! the CLI all read them from here.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::options::{check_name, DEFAULT_QUEUE};

/// Server settings, with asynq's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Most tasks in flight at once (default: the number of CPUs).
    pub concurrency: usize,
    /// Queue priorities (default `{"default": 1}`); every priority is at least 1.
    pub queues: Vec<(String, i32)>,
    /// Serve higher-priority queues first, always.
    pub strict_priority: bool,
    /// Sleep between polls when every queue is empty (randomised to [½, 1½]×).
    pub task_check_interval: Duration,
    /// Forwarder period (scheduled/retry → pending).
    pub delayed_task_check_interval: Duration,
    /// Janitor period (expired completed tasks).
    pub janitor_interval: Duration,
    /// Completed tasks deleted per janitor script call.
    pub janitor_batch_size: usize,
    /// Heartbeat period (server state and lease renewal); at most a third of the lease.
    pub heartbeat_interval: Duration,
    /// How long a dequeued task is leased; the heartbeat renews the lease of every task in
    /// flight, so only a server that stopped renewing (it died, or lost Redis) loses one.
    pub lease_duration: Duration,
    /// How long after a lease ended its task is recovered (asynq's allowance for clock skew
    /// between servers).
    pub lease_grace: Duration,
    /// Recoverer period (expired leases, and active tasks that no lease covers).
    pub recoverer_interval: Duration,
    /// Syncer period (retrying failed outcome writes).
    pub syncer_interval: Duration,
    /// How long running handlers may finish at shutdown before their tasks are requeued.
    pub shutdown_timeout: Duration,
    /// How long a cancelled handler may take to stop before its task is failed without it.
    pub cancel_grace: Duration,
    /// The most archived tasks kept per queue (asynq hard-codes 10,000).
    pub archive_max_size: i64,
    /// Archived tasks older than this are deleted (asynq hard-codes 90 days).
    pub archive_max_age: Duration,
    /// Durable mode: leases and outcomes count as written only once this many replicas
    /// confirm them (`WAIT`); 0 is off.
    pub wait_for_replicas: u32,
    /// How long durable mode waits for the replicas.
    pub replica_timeout: Duration,
    /// Declared-keys mode: the dequeue names every task hash it touches in KEYS (for proxies
    /// that refuse any other key), reading ahead the ids at the tail of pending. `None`: on for
    /// a Redis Cluster, off otherwise ([`ServerConfig::declares_keys`]).
    pub declare_keys: Option<bool>,
}

/// The number of CPUs, asynq's default concurrency.
pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// asynq's reading of a concurrency: zero or less means the number of CPUs.
pub fn concurrency_or_default(n: i64) -> usize {
    usize::try_from(n).ok().filter(|n| *n > 0).unwrap_or_else(cpu_count)
}

/// The most tasks one server keeps in flight (its hand-off channel is allocated up front).
pub const MAX_CONCURRENCY: usize = 100_000;
/// The largest sum of queue priorities once divided by their GCD (the weighted order expands
/// each queue `priority` times).
pub const MAX_PRIORITY_SUM: u64 = 10_000;
impl ServerConfig {
    /// The archive trimming these settings ask for.
    pub fn archive_limits(&self) -> crate::rdb::ArchiveLimits {
        crate::rdb::ArchiveLimits { max_size: self.archive_max_size, max_age: self.archive_max_age }
    }

    /// The durable mode these settings ask for (`None`: off).
    pub fn durability(&self) -> Result<Option<crate::rdb::Durability>> {
        crate::rdb::Durability::new(i64::from(self.wait_for_replicas), self.replica_timeout)
    }
}

/// The longest interval or timeout accepted (100 years): longer ones would overflow time
/// arithmetic, and mean "never" anyway.
pub const MAX_SETTING: Duration = Duration::from_secs(100 * 365 * 86_400);

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            concurrency: cpu_count(),
            queues: vec![(DEFAULT_QUEUE.into(), 1)],
            strict_priority: false,
            task_check_interval: Duration::from_secs(1),
            delayed_task_check_interval: Duration::from_secs(5),
            janitor_interval: Duration::from_secs(8),
            janitor_batch_size: 100,
            heartbeat_interval: Duration::from_secs(5),
            lease_duration: Duration::from_secs(30),
            lease_grace: Duration::from_secs(30),
            recoverer_interval: Duration::from_secs(60),
            syncer_interval: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(8),
            cancel_grace: Duration::from_secs(1),
            archive_max_size: crate::rdb::ARCHIVE_MAX_SIZE,
            archive_max_age: crate::rdb::ARCHIVE_MAX_AGE,
            wait_for_replicas: 0,
            replica_timeout: crate::rdb::REPLICA_TIMEOUT,
            declare_keys: None,
        }
    }
}

impl ServerConfig {
    /// Whether a server of these settings on `conn` runs in declared-keys mode: as set, else on
    /// a Redis Cluster, where every script then names every key it touches (Redis's rule for
    /// scripts, which cluster proxies enforce), and off on one server, where the default
    /// dequeue serves every queue in one call.
    pub fn declares_keys(&self, conn: &crate::rdb::ConnConfig) -> bool {
        self.declare_keys.unwrap_or_else(|| conn.is_cluster())
    }

    /// Checks every rule; returns the settings unchanged when they hold.
    pub fn validated(self) -> Result<Self> {
        self.validate()?;
        Ok(self)
    }

    /// Checks every rule: at least one queue, each named and with a priority of at least 1; a
    /// concurrency and batch size of at least 1; positive intervals; heartbeats well inside a
    /// lease, so a live server never loses one.
    pub fn validate(&self) -> Result<()> {
        if self.concurrency == 0 || self.concurrency > MAX_CONCURRENCY {
            return Err(Error::InvalidArgument(format!(
                "concurrency must be between 1 and {MAX_CONCURRENCY}, got {}",
                self.concurrency
            )));
        }
        if self.queues.is_empty() {
            return Err(Error::invalid("queues must name at least one queue"));
        }
        for (name, priority) in &self.queues {
            check_name("queue", name)?;
            if *priority < 1 {
                return Err(Error::InvalidArgument(format!(
                    "queue {name:?} has priority {priority}: priorities must be at least 1 \
                     (a queue that is not to be served is left out)"
                )));
            }
        }
        // The weighted order expands each queue `priority` times, after the selector's division.
        let sum: u64 = super::queues::normalized(&self.queues).iter().map(|(_, p)| u64::from(*p)).sum();
        if sum > MAX_PRIORITY_SUM {
            return Err(Error::InvalidArgument(format!(
                "queue priorities are weights: their sum, divided by their greatest common \
                 divisor, must be at most {MAX_PRIORITY_SUM} (got {sum})"
            )));
        }
        self.archive_limits().validate()?;
        self.durability()?;
        if self.janitor_batch_size == 0 {
            return Err(Error::invalid("janitor_batch_size must be at least 1"));
        }
        // (name, value, whether zero is refused)
        for (name, d, positive) in [
            ("task_check_interval", self.task_check_interval, true),
            ("delayed_task_check_interval", self.delayed_task_check_interval, true),
            ("janitor_interval", self.janitor_interval, true),
            ("heartbeat_interval", self.heartbeat_interval, true),
            ("recoverer_interval", self.recoverer_interval, true),
            ("lease_duration", self.lease_duration, true),
            ("lease_grace", self.lease_grace, false),
            ("syncer_interval", self.syncer_interval, true),
            ("shutdown_timeout", self.shutdown_timeout, false),
            ("cancel_grace", self.cancel_grace, false),
        ] {
            if positive && d.is_zero() {
                return Err(Error::InvalidArgument(format!("{name} must be positive")));
            }
            if d > MAX_SETTING {
                return Err(Error::InvalidArgument(format!("{name} must be at most 100 years")));
            }
        }
        // Lease expiries are whole Unix seconds in Redis (asynq's layout).
        if self.lease_duration < Duration::from_secs(1) || self.lease_duration.subsec_nanos() != 0 {
            return Err(Error::InvalidArgument(format!(
                "lease_duration must be a whole number of seconds, at least 1 (got {:?})",
                self.lease_duration
            )));
        }
        if self.heartbeat_interval > self.lease_duration / 3 {
            // Renewals must come well inside a lease, or a live server loses its tasks.
            return Err(Error::InvalidArgument(format!(
                "heartbeat_interval ({:?}) must be at most a third of lease_duration ({:?})",
                self.heartbeat_interval, self.lease_duration
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdb::ConnConfig;

    #[test]
    fn declared_keys_default_to_on_for_a_cluster_only() {
        let one = ConnConfig::from_url("redis://127.0.0.1:6379/0").expect("valid");
        let sentinel = ConnConfig::from_url("redis+sentinel://127.0.0.1:26379/m").expect("valid");
        let cluster = ConnConfig::from_url("redis+cluster://127.0.0.1:7000").expect("valid");
        let auto = ServerConfig::default();
        assert_eq!(auto.declare_keys, None);
        assert!(!auto.declares_keys(&one) && !auto.declares_keys(&sentinel));
        assert!(auto.declares_keys(&cluster));
        let on = ServerConfig { declare_keys: Some(true), ..ServerConfig::default() };
        let off = ServerConfig { declare_keys: Some(false), ..ServerConfig::default() };
        assert!(on.declares_keys(&one) && !off.declares_keys(&cluster));
    }

    #[test]
    fn defaults_are_valid_and_asynqs() {
        let c = ServerConfig::default();
        assert!(c.validate().is_ok());
        assert_eq!(c.queues, vec![("default".to_string(), 1)]);
        assert_eq!(c.task_check_interval, Duration::from_secs(1));
        assert_eq!((c.lease_duration, c.lease_grace), (Duration::from_secs(30), Duration::from_secs(30)));
        let fast = ServerConfig {
            lease_duration: Duration::from_secs(5),
            lease_grace: Duration::ZERO,
            heartbeat_interval: Duration::from_secs(1),
            ..c.clone()
        };
        assert!(fast.validate().is_ok());
        assert_eq!(c.concurrency, cpu_count());
        let big = vec![("a".to_string(), 6_000), ("b".to_string(), 3_000), ("c".to_string(), 1_000)];
        assert!(ServerConfig { queues: big, ..ServerConfig::default() }.validate().is_ok(), "6:3:1");
        assert_eq!(concurrency_or_default(0), cpu_count());
        assert_eq!(concurrency_or_default(-3), cpu_count());
        assert_eq!(concurrency_or_default(7), 7);
    }

    #[test]
    fn rules_are_checked() {
        let d = ServerConfig::default;
        let bad = [
            ServerConfig { concurrency: 0, ..d() },
            ServerConfig { queues: vec![], ..d() },
            ServerConfig { queues: vec![("a".into(), 0)], ..d() },
            ServerConfig { queues: vec![("a".into(), 2), ("b".into(), -1)], ..d() },
            ServerConfig { queues: vec![(" ".into(), 1)], ..d() },
            ServerConfig { queues: vec![("q\u{0}".into(), 1)], ..d() },
            ServerConfig { janitor_batch_size: 0, ..d() },
            ServerConfig { syncer_interval: Duration::ZERO, ..d() },
            ServerConfig { heartbeat_interval: Duration::from_secs(11), ..d() },
            ServerConfig { concurrency: MAX_CONCURRENCY + 1, ..d() },
            ServerConfig { queues: vec![("a".into(), i32::MAX), ("b".into(), 1)], ..d() },
            ServerConfig { cancel_grace: Duration::from_secs(u64::MAX), ..d() },
            ServerConfig { shutdown_timeout: MAX_SETTING * 2, ..d() },
            ServerConfig { lease_duration: Duration::ZERO, ..d() },
            ServerConfig { lease_duration: Duration::from_millis(2_500), ..d() },
            ServerConfig {
                lease_duration: Duration::from_secs(6),
                heartbeat_interval: Duration::from_secs(3),
                ..d()
            },
            ServerConfig { lease_grace: MAX_SETTING * 2, ..d() },
            ServerConfig { archive_max_size: 0, ..d() },
            ServerConfig { archive_max_size: crate::rdb::MAX_ARCHIVE_SIZE + 1, ..d() },
            ServerConfig { archive_max_age: Duration::ZERO, ..d() },
            ServerConfig { archive_max_age: MAX_SETTING * 2, ..d() },
            ServerConfig { wait_for_replicas: 101, ..d() },
            ServerConfig { replica_timeout: Duration::ZERO, ..d() },
            ServerConfig { replica_timeout: Duration::from_millis(10_001), ..d() },
        ];
        for c in bad {
            assert!(matches!(c.validate(), Err(Error::InvalidArgument(_))), "{c:?}");
        }
    }

    #[test]
    fn archive_limits_are_the_settings() {
        let c = ServerConfig {
            archive_max_size: 7,
            archive_max_age: Duration::from_secs(60),
            ..Default::default()
        };
        assert!(c.validate().is_ok());
        let l = c.archive_limits();
        assert_eq!((l.max_size, l.max_age), (7, Duration::from_secs(60)));
        let d = ServerConfig::default().archive_limits();
        assert_eq!((d.max_size, d.max_age), (10_000, Duration::from_secs(90 * 86_400)));
    }

    #[test]
    fn every_limit_itself_is_accepted() {
        let d = ServerConfig::default;
        let at_limit = [
            ServerConfig { concurrency: MAX_CONCURRENCY, ..d() },
            ServerConfig { queues: vec![("a".into(), 9_999), ("b".into(), 1)], ..d() },
            ServerConfig { shutdown_timeout: MAX_SETTING, ..d() },
            ServerConfig {
                lease_duration: Duration::from_secs(15),
                heartbeat_interval: Duration::from_secs(5),
                ..d()
            },
            ServerConfig {
                lease_duration: Duration::from_secs(1),
                heartbeat_interval: Duration::from_millis(300),
                ..d()
            },
        ];
        for c in at_limit {
            assert!(c.validate().is_ok(), "{c:?}");
        }
        let fractional = ServerConfig {
            lease_duration: Duration::from_millis(1_500),
            heartbeat_interval: Duration::from_millis(100),
            ..d()
        };
        assert!(fractional.validate().is_err(), "whole seconds only");
        let custom = ServerConfig { concurrency: 3, strict_priority: true, ..d() };
        assert_eq!(custom.clone().validated().expect("valid"), custom, "returned unchanged");
    }
}
