//! Enqueue options: one validated type for every producer (the client, the scheduler, the typed
//! task API), with asynq's defaults. Every rule about an option is checked here, once.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};

/// asynq's default `MaxRetry`.
pub const DEFAULT_MAX_RETRY: i32 = 25;
/// asynq's default timeout, applied only when neither a timeout nor a deadline is given.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// asynq's default queue.
pub const DEFAULT_QUEUE: &str = "default";
/// The shortest unique-lock TTL asynq accepts.
pub const MIN_UNIQUE_TTL: Duration = Duration::from_secs(1);
/// The longest duration option accepted (100 years): longer ones overflow time arithmetic here
/// and in Go, and mean "never" anyway.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);

/// Enqueue options; `None` means asynq's default. Build with [`TaskOptions::validated`] (or
/// check with [`TaskOptions::validate`]): a value that exists is a valid one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskOptions {
    /// Queue name (default `default`).
    pub queue: Option<String>,
    /// Retries allowed (default 25; at least 0).
    pub max_retry: Option<i32>,
    /// Handler time limit; zero = not given (asynq's reading).
    pub timeout: Option<Duration>,
    /// Absolute deadline.
    pub deadline: Option<SystemTime>,
    /// Unique lock TTL (≥ 1 s).
    pub unique: Option<Duration>,
    /// When to process.
    pub process_at: Option<SystemTime>,
    /// Delay before processing, from the moment of the enqueue.
    pub process_in: Option<Duration>,
    /// Task ID (default random UUID v4).
    pub task_id: Option<String>,
    /// How long to keep the task after success.
    pub retention: Option<Duration>,
    /// Aggregation group.
    pub group: Option<String>,
    /// Headers laid over the task's own.
    pub headers: BTreeMap<String, String>,
}

/// Refuses an empty or all-white-space name.
pub fn non_blank(what: &str, v: &str) -> Result<()> {
    if v.trim().is_empty() {
        return Err(Error::InvalidArgument(format!("{what} must be a non-blank string")));
    }
    Ok(())
}

/// The rule for a name that becomes part of Redis keys (queue, group, task ID): non-blank and
/// free of control characters, which no command line can pass and no log line shows.
pub fn check_name(what: &str, v: &str) -> Result<()> {
    non_blank(what, v)?;
    if let Some(c) = v.chars().find(|c| c.is_control()) {
        return Err(Error::InvalidArgument(format!(
            "{what} {v:?} contains the control character {c:?}: names may not"
        )));
    }
    Ok(())
}

/// The rule for `max_retry`: 0 to 2³¹−1 (asynq's `int32` field).
pub fn check_max_retry(n: i64) -> Result<i32> {
    i32::try_from(n).ok().filter(|n| *n >= 0).ok_or_else(|| {
        Error::InvalidArgument(format!("max_retry must be between 0 and {}, got {n}", i32::MAX))
    })
}

/// The rule for a task type: any non-blank string.
pub fn check_task_type(t: &str) -> Result<()> {
    non_blank("task type", t)
}

impl TaskOptions {
    /// Checks every rule; returns the options unchanged when they hold.
    pub fn validated(self) -> Result<Self> {
        self.validate()?;
        Ok(self)
    }

    /// Checks every rule: non-blank names, a unique TTL of at least a second, one way to say
    /// when to process.
    pub fn validate(&self) -> Result<()> {
        if let Some(q) = &self.queue {
            check_name("queue", q)?;
        }
        if let Some(id) = &self.task_id {
            check_name("task_id", id)?;
        }
        if let Some(g) = &self.group {
            check_name("group", g)?;
        }
        if let Some(m) = self.max_retry {
            check_max_retry(i64::from(m))?;
        }
        for (name, d) in [
            ("timeout", self.timeout),
            ("unique", self.unique),
            ("process_in", self.process_in),
            ("retention", self.retention),
        ] {
            if d.is_some_and(|d| d > MAX_DURATION) {
                return Err(Error::InvalidArgument(format!(
                    "{name} must be at most 100 years, got {:?}",
                    d.unwrap_or_default()
                )));
            }
        }
        if self.unique.is_some_and(|u| u < MIN_UNIQUE_TTL) {
            return Err(Error::invalid("unique TTL must be at least 1 second"));
        }
        if self.process_at.is_some() && self.process_in.is_some() {
            return Err(Error::invalid("give process_at or process_in, not both"));
        }
        Ok(())
    }

    /// These options with every option `over` sets laid over them (headers merged key by key).
    pub fn merged(&self, over: &TaskOptions) -> Result<TaskOptions> {
        let mut headers = self.headers.clone();
        headers.extend(over.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
        // A time given on one side replaces the other side's, in either form.
        let when_over = over.process_at.is_some() || over.process_in.is_some();
        let (process_at, process_in) =
            if when_over { (over.process_at, over.process_in) } else { (self.process_at, self.process_in) };
        TaskOptions {
            queue: over.queue.clone().or_else(|| self.queue.clone()),
            max_retry: over.max_retry.or(self.max_retry),
            timeout: over.timeout.or(self.timeout),
            deadline: over.deadline.or(self.deadline),
            unique: over.unique.or(self.unique),
            process_at,
            process_in,
            task_id: over.task_id.clone().or_else(|| self.task_id.clone()),
            retention: over.retention.or(self.retention),
            group: over.group.clone().or_else(|| self.group.clone()),
            headers,
        }
        .validated()
    }

    /// The queue the task goes to.
    pub fn queue_or_default(&self) -> &str {
        self.queue.as_deref().unwrap_or(DEFAULT_QUEUE)
    }

    /// When the task should run, given the moment of the enqueue (`None`: now).
    pub fn process_at_from(&self, now: SystemTime) -> Option<SystemTime> {
        self.process_at.or_else(|| self.process_in.map(|d| now.checked_add(d).unwrap_or(now)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::from_unix_secs;

    #[test]
    fn rules_are_checked() {
        let bad = [
            TaskOptions { queue: Some(" ".into()), ..Default::default() },
            TaskOptions { queue: Some("a\0b".into()), ..Default::default() },
            TaskOptions { queue: Some("tab\there".into()), ..Default::default() },
            TaskOptions { group: Some("g\u{7f}".into()), ..Default::default() },
            TaskOptions { task_id: Some("id\n".into()), ..Default::default() },
            TaskOptions { max_retry: Some(-1), ..Default::default() },
            TaskOptions { timeout: Some(MAX_DURATION * 2), ..Default::default() },
            TaskOptions { retention: Some(Duration::from_secs(u64::MAX)), ..Default::default() },
            TaskOptions { timeout: Some(MAX_DURATION + Duration::from_secs(1)), ..Default::default() },
            TaskOptions { task_id: Some(String::new()), ..Default::default() },
            TaskOptions { group: Some("\t".into()), ..Default::default() },
            TaskOptions { unique: Some(Duration::from_millis(500)), ..Default::default() },
            TaskOptions {
                process_at: Some(from_unix_secs(10)),
                process_in: Some(Duration::from_secs(1)),
                ..Default::default()
            },
        ];
        for o in bad {
            assert!(matches!(o.validate(), Err(Error::InvalidArgument(_))), "{o:?}");
        }
        assert!(TaskOptions { unique: Some(MIN_UNIQUE_TTL), ..Default::default() }.validate().is_ok());
        assert!(TaskOptions { timeout: Some(MAX_DURATION), ..Default::default() }.validate().is_ok());
        assert_eq!(MAX_DURATION.as_secs(), 3_153_600_000, "100 years of 365 days");
        assert_eq!(check_max_retry(i64::from(i32::MAX)).ok(), Some(i32::MAX));
        assert!(check_max_retry(i64::from(i32::MAX) + 1).is_err());
        assert!(check_task_type(" ").is_err());
        assert!(check_task_type("email:send").is_ok());
    }

    #[test]
    fn merged_lays_the_override_over() {
        let base = TaskOptions {
            queue: Some("a".into()),
            max_retry: Some(3),
            process_in: Some(Duration::from_secs(5)),
            headers: BTreeMap::from([("k".into(), "1".into()), ("j".into(), "x".into())]),
            ..Default::default()
        };
        let over = TaskOptions {
            queue: Some("b".into()),
            process_at: Some(from_unix_secs(100)),
            headers: BTreeMap::from([("k".into(), "2".into())]),
            ..Default::default()
        };
        let m = base.merged(&over).expect("valid");
        assert_eq!(m.queue.as_deref(), Some("b"));
        assert_eq!(m.max_retry, Some(3));
        assert_eq!((m.process_at, m.process_in), (Some(from_unix_secs(100)), None));
        assert_eq!(m.headers.get("k").map(String::as_str), Some("2"));
        assert_eq!(m.headers.get("j").map(String::as_str), Some("x"));
        assert_eq!(m.process_at_from(from_unix_secs(1)), Some(from_unix_secs(100)));
        assert_eq!(base.process_at_from(from_unix_secs(1)), Some(from_unix_secs(6)));
    }
}
