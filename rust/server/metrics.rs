//! In-process worker metrics asynq lacks: how long handlers ran and how their tasks ended, by
//! queue and type; leases renewed and lost; tasks recovered from dead servers. Counted where the
//! core already handles each event (the outcome writer, the heartbeat, the recoverer), one lock
//! per batch, and read by a scrape as a [`Snapshot`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// Upper bounds (seconds) of the handler-duration histogram buckets: a millisecond to five
/// minutes, roughly ×2.5 apart (Prometheus' default buckets, widened for background jobs).
pub const DURATION_BUCKETS: [f64; 15] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 300.0];

/// How a task's run ended, as its outcome was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ended {
    /// The handler returned.
    Succeeded,
    /// It failed and will be retried.
    Retried,
    /// It failed for good (or with `SkipRetry`) and was archived.
    Archived,
    /// `RevokeTask`: dropped.
    Revoked,
    /// Put back to pending at shutdown.
    Requeued,
    /// Not written: the task was no longer this server's when its handler ended (its lease
    /// ran out, or another server or a tool took it).
    Dropped,
}

impl Ended {
    /// Every kind, in a stable order.
    pub const ALL: [Ended; 6] =
        [Ended::Succeeded, Ended::Retried, Ended::Archived, Ended::Revoked, Ended::Requeued, Ended::Dropped];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Ended::Succeeded => "succeeded",
            Ended::Retried => "retried",
            Ended::Archived => "archived",
            Ended::Revoked => "revoked",
            Ended::Requeued => "requeued",
            Ended::Dropped => "dropped",
        }
    }
}

/// One handler-duration histogram: a count per bucket (not cumulative; the last is `+Inf`),
/// their sum and count.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// Observations per bucket of [`DURATION_BUCKETS`], then above the last bound.
    pub counts: [u64; DURATION_BUCKETS.len() + 1],
    /// Sum of the observations, seconds.
    pub sum: f64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self { counts: [0; DURATION_BUCKETS.len() + 1], sum: 0.0 }
    }
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        let secs = if secs.is_finite() && secs > 0.0 { secs } else { 0.0 };
        let i = DURATION_BUCKETS.iter().position(|b| secs <= *b).unwrap_or(DURATION_BUCKETS.len());
        self.counts[i] += 1;
        self.sum += secs;
    }

    /// Observations in all.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// Per (queue, type): durations and outcome counts.
#[derive(Debug, Default, Clone)]
struct PerType {
    durations: Histogram,
    ended: [u64; Ended::ALL.len()],
}

#[derive(Debug, Default)]
struct Inner {
    /// queue → type → numbers (looked up by `&str`: no allocation once a pair was seen).
    by_queue: HashMap<String, HashMap<String, PerType>>,
    recovered: HashMap<String, u64>,
}

/// The server's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
    lease_renewals: AtomicU64,
    leases_lost: AtomicU64,
}

/// One (queue, type) row of a snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeRow {
    /// Queue name.
    pub queue: String,
    /// Task type.
    pub task_type: String,
    /// Handler durations.
    pub durations: Histogram,
    /// Outcomes, by kind.
    pub ended: Vec<(Ended, u64)>,
}

/// The counters at one instant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// By queue and type, sorted.
    pub by_type: Vec<TypeRow>,
    /// Tasks this server recovered from dead servers, by queue.
    pub recovered: Vec<(String, u64)>,
    /// Leases this server renewed.
    pub lease_renewals: u64,
    /// Leases found taken by another server (or a tool) while the task ran here.
    pub leases_lost: u64,
}

impl Metrics {
    /// Records ended runs: (queue, type, how it ended, seconds it ran), under one lock.
    pub fn ended<'a>(&self, runs: impl IntoIterator<Item = (&'a str, &'a str, Ended, f64)>) {
        let mut inner = self.inner.lock();
        for (queue, task_type, how, secs) in runs {
            let types = match inner.by_queue.get_mut(queue) {
                Some(t) => t,
                None => inner.by_queue.entry(queue.to_string()).or_default(),
            };
            let row = match types.get_mut(task_type) {
                Some(r) => r,
                None => types.entry(task_type.to_string()).or_default(),
            };
            // A run cut short by a shutdown is not a handler's duration.
            if how != Ended::Requeued {
                row.durations.observe(secs);
            }
            if let Some(i) = Ended::ALL.iter().position(|e| *e == how) {
                row.ended[i] += 1;
            }
        }
    }

    /// Counts `n` leases renewed.
    pub fn renewed(&self, n: usize) {
        self.lease_renewals.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Counts `n` leases lost.
    pub fn lost(&self, n: usize) {
        self.leases_lost.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Counts one task of `queue` recovered.
    pub fn recovered(&self, queue: &str) {
        *self.inner.lock().recovered.entry(queue.to_string()).or_insert(0) += 1;
    }

    /// The counters now.
    pub fn snapshot(&self) -> Snapshot {
        let inner = self.inner.lock();
        let mut by_type: Vec<TypeRow> = inner
            .by_queue
            .iter()
            .flat_map(|(q, types)| {
                types.iter().map(move |(t, r)| TypeRow {
                    queue: q.clone(),
                    task_type: t.clone(),
                    durations: r.durations.clone(),
                    ended: Ended::ALL.iter().copied().zip(r.ended.iter().copied()).collect(),
                })
            })
            .collect();
        by_type.sort_by(|a, b| (&a.queue, &a.task_type).cmp(&(&b.queue, &b.task_type)));
        let mut recovered: Vec<(String, u64)> =
            inner.recovered.iter().map(|(q, n)| (q.clone(), *n)).collect();
        recovered.sort();
        Snapshot {
            by_type,
            recovered,
            lease_renewals: self.lease_renewals.load(Ordering::Relaxed),
            leases_lost: self.leases_lost.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_listed_once() {
        // The match is exhaustive: a new kind fails to compile here until it is listed.
        let index = |e: Ended| match e {
            Ended::Succeeded => 0,
            Ended::Retried => 1,
            Ended::Archived => 2,
            Ended::Revoked => 3,
            Ended::Requeued => 4,
            Ended::Dropped => 5,
        };
        for (i, e) in Ended::ALL.iter().enumerate() {
            assert_eq!(index(*e), i, "{}", e.as_str());
        }
        let names: Vec<&str> = Ended::ALL.iter().map(|e| e.as_str()).collect();
        assert_eq!(names, ["succeeded", "retried", "archived", "revoked", "requeued", "dropped"]);
        assert_eq!(Ended::ALL.len(), 6);
    }

    #[test]
    fn durations_land_in_their_bucket() {
        let mut h = Histogram::default();
        for s in [0.0005, 0.001, 0.002, 400.0, f64::NAN, -1.0] {
            h.observe(s);
        }
        // 0.0005, 0.001, NaN and -1 (read as 0) in the first bucket; 0.002 in the second; 400 s
        // above the last bound.
        assert_eq!(h.counts[0], 4);
        assert_eq!(h.counts[1], 1);
        assert_eq!(h.counts[DURATION_BUCKETS.len()], 1);
        assert_eq!(h.count(), 6);
        assert!((h.sum - 400.0035).abs() < 1e-9);
    }

    #[test]
    fn snapshots_sum_by_queue_and_type() {
        let m = Metrics::default();
        m.ended([
            ("q", "a", Ended::Succeeded, 0.01),
            ("q", "a", Ended::Retried, 0.02),
            ("r", "b", Ended::Archived, 1.0),
        ]);
        m.ended([("q", "a", Ended::Succeeded, 0.01)]);
        // A requeued run is counted, but its (cut short) duration is not a handler's.
        m.ended([("q", "a", Ended::Requeued, 9.0)]);
        m.renewed(3);
        m.lost(1);
        m.recovered("q");
        m.recovered("q");
        let s = m.snapshot();
        assert_eq!(s.by_type.len(), 2);
        let qa = &s.by_type[0];
        assert_eq!((qa.queue.as_str(), qa.task_type.as_str(), qa.durations.count()), ("q", "a", 3));
        assert!(qa.ended.contains(&(Ended::Succeeded, 2)) && qa.ended.contains(&(Ended::Retried, 1)));
        assert!(qa.ended.contains(&(Ended::Requeued, 1)) && qa.durations.sum < 1.0);
        assert!(s.by_type[1].ended.contains(&(Ended::Archived, 1)));
        assert_eq!((s.lease_renewals, s.leases_lost), (3, 1));
        assert_eq!(s.recovered, vec![("q".to_string(), 2)]);
    }
}
