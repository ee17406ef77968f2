//! The server core: a dequeue/lease loop and the background components asynq's server runs, each
//! on its own Rust thread with its own Redis connection. Python pulls leased tasks in batches with
//! [`ServerCore::next_batch`] and reports outcomes with [`ServerCore::finish`]; neither waits on
//! Redis while holding the GIL.

mod forwarder;
mod heartbeat;
mod janitor;
mod processor;
pub mod queues;
mod recoverer;
mod subscriber;
mod syncer;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crossbeam_channel::{bounded, unbounded, Receiver, RecvTimeoutError, Sender};
use parking_lot::{Condvar, Mutex};

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::message::TaskMessage;
use crate::rdb::{ConnConfig, Finish, Keys, Rdb};
use queues::QueueSelector;

/// Server settings, with asynq's defaults.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Most tasks in flight at once.
    pub concurrency: usize,
    /// Queue priorities.
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
    /// Heartbeat period (server state and lease renewal).
    pub heartbeat_interval: Duration,
    /// Recoverer period (expired leases).
    pub recoverer_interval: Duration,
    /// Syncer period (retrying failed outcome writes).
    pub syncer_interval: Duration,
    /// Host name published in heartbeats.
    pub host: String,
    /// Process ID published in heartbeats.
    pub pid: i32,
    /// Server ID (UUID v4).
    pub server_id: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            concurrency: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            queues: vec![("default".into(), 1)],
            strict_priority: false,
            task_check_interval: Duration::from_secs(1),
            delayed_task_check_interval: Duration::from_secs(5),
            janitor_interval: Duration::from_secs(8),
            janitor_batch_size: 100,
            heartbeat_interval: Duration::from_secs(5),
            recoverer_interval: Duration::from_secs(60),
            syncer_interval: Duration::from_secs(5),
            host: hostname::get()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "unknown-host".into()),
            pid: i32::try_from(std::process::id()).unwrap_or(0),
            server_id: uuid::Uuid::new_v4().to_string(),
        }
    }
}

/// A leased task handed to Python.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Handle for [`ServerCore::finish`]; unique within this server.
    pub token: u64,
    /// The task as dequeued.
    pub msg: TaskMessage,
    /// Effective deadline.
    pub deadline: SystemTime,
}

/// How a handler run ended, as Python reports it.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Success.
    Done,
    /// `RevokeTask`: deleted whatever its retention.
    Revoke,
    /// Give the task back to pending (shutdown).
    Requeue,
    /// Retry after `delay` (asynq's default formula when `None`).
    Retry {
        /// Delay before the next attempt.
        delay: Option<Duration>,
        /// Error text.
        error: String,
        /// Whether it counts as a failure.
        is_failure: bool,
    },
    /// Archive (retries exhausted or `SkipRetry`).
    Archive {
        /// Error text.
        error: String,
    },
}

impl Outcome {
    /// The Redis-side transition for a task `msg` at `now`.
    pub fn to_finish(self, msg: &TaskMessage, now: SystemTime) -> Finish {
        match self {
            Outcome::Done => Finish::Done,
            Outcome::Revoke => Finish::Revoke,
            Outcome::Requeue => Finish::Requeue,
            Outcome::Retry { delay, error, is_failure } => {
                // Clamped: a user's retry_delay may return anything finite.
                let delay = delay.unwrap_or_else(|| default_retry_delay(msg.retried)).min(MAX_RETRY_DELAY);
                let at = crate::clock::unix_secs(now.checked_add(delay).unwrap_or(now));
                Finish::Retry { retry_at: at, error, is_failure }
            }
            Outcome::Archive { error } => Finish::Archive { error },
        }
    }
}

/// Why Python should stop a running handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    /// `PUBLISH asynq:cancel <id>` (an Inspector's cancel).
    Requested,
    /// The lease could not be renewed; another server may run the task.
    LeaseLost,
}

/// A task in flight.
#[derive(Debug, Clone)]
pub(crate) struct InFlight {
    pub msg: TaskMessage,
    pub deadline: SystemTime,
    pub started: SystemTime,
    /// Until when this server holds the lease, as last confirmed by Redis.
    pub lease_expiry: SystemTime,
}

/// Counting semaphore over the concurrency slots.
pub(crate) struct Slots {
    free: Mutex<usize>,
    cv: Condvar,
}

impl Slots {
    fn new(n: usize) -> Self {
        Self { free: Mutex::new(n), cv: Condvar::new() }
    }

    /// Waits up to `timeout` for at least one free slot, then takes up to `max`. Returns how many.
    pub fn acquire_up_to(&self, max: usize, timeout: Duration) -> usize {
        let mut free = self.free.lock();
        if *free == 0 {
            self.cv.wait_for(&mut free, timeout);
        }
        let n = (*free).min(max);
        *free -= n;
        n
    }

    pub fn release(&self, n: usize) {
        if n == 0 {
            return;
        }
        *self.free.lock() += n;
        self.cv.notify_one();
    }
}

/// Lifecycle of a server, as asynq names it in `ServerInfo.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Created, not started.
    New,
    /// Fetching and processing.
    Active,
    /// No longer fetching; finishing what runs.
    Stopped,
    /// Shut down.
    Closed,
}

impl Status {
    /// asynq's status string.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Active => "active",
            Status::Stopped => "stopped",
            Status::Closed => "closed",
        }
    }
}

/// State shared by the components.
pub(crate) struct Shared {
    pub cfg: ServerConfig,
    pub conn: ConnConfig,
    pub keys: Keys,
    pub clock: Arc<dyn Clock>,
    pub selector: QueueSelector,
    pub inflight: Mutex<HashMap<u64, InFlight>>,
    pub slots: Slots,
    next_token: AtomicU64,
    pub ready_tx: Sender<Delivery>,
    pub ready_rx: Receiver<Delivery>,
    pub finish_tx: Sender<(u64, Outcome)>,
    pub finish_rx: Receiver<(u64, Outcome)>,
    pub cancel_tx: Sender<(u64, CancelReason)>,
    pub cancel_rx: Receiver<(u64, CancelReason)>,
    pub sync_tx: Sender<syncer::Pending>,
    pub sync_rx: Receiver<syncer::Pending>,
    pub fetching: AtomicBool,
    pub status: Mutex<Status>,
    pub started: SystemTime,
    /// Dropped at shutdown: every `sleep` returns at once.
    stop_tx: Mutex<Option<Sender<()>>>,
    stop_rx: Receiver<()>,
    /// Dropped when the outcome writer must drain and exit.
    finish_stop_tx: Mutex<Option<Sender<()>>>,
    pub finish_stop_rx: Receiver<()>,
    /// One pending wake-up for the processor's idle wait (new work was announced).
    wake_tx: Sender<()>,
    wake_rx: Receiver<()>,
    /// When the earliest known scheduled or retry task is due (Unix seconds; `i64::MAX`: none
    /// known), and one pending wake-up for the forwarder when that time moves earlier.
    next_due: AtomicI64,
    due_tx: Sender<()>,
    due_rx: Receiver<()>,
    /// Dropped last: the syncer and the heartbeat outlive the outcome writer.
    late_stop_tx: Mutex<Option<Sender<()>>>,
    late_stop_rx: Receiver<()>,
}

impl Shared {
    pub fn now(&self) -> SystemTime {
        self.clock.now()
    }

    pub fn rdb(&self) -> Rdb {
        Rdb::new(&self.conn, self.keys.clone())
    }

    /// Sleeps for `d`; returns false when the server is shutting down.
    pub fn sleep(&self, d: Duration) -> bool {
        matches!(self.stop_rx.recv_timeout(d), Err(RecvTimeoutError::Timeout))
    }

    /// Wakes the processor from its idle wait (one wake-up is kept if it is not waiting yet).
    pub fn wake(&self) {
        let _ = self.wake_tx.try_send(());
    }

    /// Records that a scheduled or retry task is due at `secs` (Unix seconds); wakes the
    /// forwarder if that is earlier than anything it waits for.
    pub fn note_due(&self, secs: i64) {
        if secs < self.next_due.fetch_min(secs, Ordering::AcqRel) {
            let _ = self.due_tx.try_send(());
        }
    }

    /// Forgets the earliest due time before a forwarding pass re-reads it from Redis (times
    /// noted during the pass are kept).
    pub fn take_next_due(&self) -> i64 {
        self.next_due.swap(i64::MAX, Ordering::AcqRel)
    }

    /// The earliest due time noted so far (Unix seconds, `i64::MAX`: none).
    pub fn next_due(&self) -> i64 {
        self.next_due.load(Ordering::Acquire)
    }

    /// Waits up to `d` or until an earlier due time is noted; returns false at shutdown.
    pub fn due_wait(&self, d: Duration) -> bool {
        self.wait_or(&self.due_rx, d)
    }

    /// Waits up to `d` or until woken; returns false when the server is shutting down.
    pub fn idle_wait(&self, d: Duration) -> bool {
        self.wait_or(&self.wake_rx, d)
    }

    /// Waits up to `d` or until `early` has a message; false when the server is shutting down.
    fn wait_or(&self, early: &Receiver<()>, d: Duration) -> bool {
        crossbeam_channel::select! {
            recv(self.stop_rx) -> _ => false,
            recv(early) -> _ => true,
            default(d) => !self.stopping(),
        }
    }

    /// As [`Shared::sleep`], for the components stopped after every outcome is written.
    pub fn sleep_late(&self, d: Duration) -> bool {
        matches!(self.late_stop_rx.recv_timeout(d), Err(RecvTimeoutError::Timeout))
    }

    pub fn stopping(&self) -> bool {
        self.stop_tx.lock().is_none()
    }

    pub fn next_token(&self) -> u64 {
        self.next_token.fetch_add(1, Ordering::Relaxed)
    }

    /// Cancels the handlers running task `id` (any queue).
    pub fn cancel_task_id(&self, id: &str, why: CancelReason) -> usize {
        let tokens: Vec<u64> =
            self.inflight.lock().iter().filter(|(_, f)| f.msg.id == id).map(|(t, _)| *t).collect();
        for t in &tokens {
            let _ = self.cancel_tx.send((*t, why));
        }
        tokens.len()
    }
}

/// Logs at most once per `every` (asynq rate-limits dequeue errors the same way).
pub(crate) struct RateLimitedLog {
    last: Option<std::time::Instant>,
    every: Duration,
}

impl RateLimitedLog {
    pub fn new(every: Duration) -> Self {
        Self { last: None, every }
    }

    pub fn error(&mut self, what: &str, e: &Error) {
        let now = std::time::Instant::now();
        if self.last.is_none_or(|t| now.duration_since(t) >= self.every) {
            self.last = Some(now);
            log::error!("{what}: {e}");
        }
    }
}

/// A running server core.
pub struct ServerCore {
    shared: Arc<Shared>,
    threads: Mutex<Vec<(&'static str, JoinHandle<()>)>>,
    processor: Mutex<Option<JoinHandle<()>>>,
    finisher: Mutex<Option<JoinHandle<()>>>,
    heartbeat: Mutex<Option<JoinHandle<()>>>,
    syncer: Mutex<Option<JoinHandle<()>>>,
}

impl ServerCore {
    /// A server core for `url`; nothing runs until [`ServerCore::start`].
    pub fn new(conn: ConnConfig, keys: Keys, cfg: ServerConfig) -> Result<Self> {
        Self::with_clock(conn, keys, cfg, Arc::new(SystemClock))
    }

    /// As [`ServerCore::new`] with an injected clock.
    pub fn with_clock(
        conn: ConnConfig,
        keys: Keys,
        mut cfg: ServerConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        if cfg.concurrency == 0 {
            cfg.concurrency = ServerConfig::default().concurrency;
        }
        let selector = QueueSelector::new(&cfg.queues, cfg.strict_priority);
        let (ready_tx, ready_rx) = bounded(cfg.concurrency.max(1));
        let (finish_tx, finish_rx) = unbounded();
        let (cancel_tx, cancel_rx) = unbounded();
        let (sync_tx, sync_rx) = unbounded();
        let (stop_tx, stop_rx) = bounded(0);
        let (finish_stop_tx, finish_stop_rx) = bounded(0);
        let (late_stop_tx, late_stop_rx) = bounded(0);
        let (wake_tx, wake_rx) = bounded(1);
        let (due_tx, due_rx) = bounded(1);
        let slots = Slots::new(cfg.concurrency);
        let started = clock.now();
        let shared = Shared {
            cfg,
            conn,
            keys,
            clock,
            selector,
            inflight: Mutex::new(HashMap::new()),
            slots,
            next_token: AtomicU64::new(1),
            ready_tx,
            ready_rx,
            finish_tx,
            finish_rx,
            cancel_tx,
            cancel_rx,
            sync_tx,
            sync_rx,
            fetching: AtomicBool::new(false),
            status: Mutex::new(Status::New),
            started,
            stop_tx: Mutex::new(Some(stop_tx)),
            stop_rx,
            finish_stop_tx: Mutex::new(Some(finish_stop_tx)),
            finish_stop_rx,
            late_stop_tx: Mutex::new(Some(late_stop_tx)),
            late_stop_rx,
            wake_tx,
            wake_rx,
            next_due: AtomicI64::new(i64::MAX),
            due_tx,
            due_rx,
        };
        Ok(Self {
            shared: Arc::new(shared),
            threads: Mutex::new(Vec::new()),
            processor: Mutex::new(None),
            finisher: Mutex::new(None),
            heartbeat: Mutex::new(None),
            syncer: Mutex::new(None),
        })
    }

    /// The server ID published in heartbeats.
    pub fn server_id(&self) -> &str {
        &self.shared.cfg.server_id
    }

    /// Current status.
    pub fn status(&self) -> Status {
        *self.shared.status.lock()
    }

    /// The queues served, with normalised priorities.
    pub fn queues(&self) -> Vec<(String, u32)> {
        self.shared.selector.queues().to_vec()
    }

    /// Checks Redis is reachable, then starts every component. Order: heartbeat first (so the
    /// server is visible before it takes work), background components, then the processor.
    pub fn start(&self) -> Result<()> {
        {
            let mut st = self.shared.status.lock();
            if *st != Status::New {
                return Err(Error::ServerClosed);
            }
            self.shared.rdb().ping()?;
            *st = Status::Active;
        }
        self.shared.fetching.store(true, Ordering::SeqCst);
        let sh = &self.shared;
        *self.heartbeat.lock() = Some(spawn("ferroq-heartbeat", heartbeat::Heartbeat::new(sh.clone()))?);
        let mut threads = self.threads.lock();
        threads.push(("forwarder", spawn("ferroq-forwarder", forwarder::Forwarder::new(sh.clone()))?));
        threads.push(("recoverer", spawn("ferroq-recoverer", recoverer::Recoverer::new(sh.clone()))?));
        threads.push(("janitor", spawn("ferroq-janitor", janitor::Janitor::new(sh.clone()))?));
        *self.syncer.lock() = Some(spawn("ferroq-syncer", syncer::Syncer::new(sh.clone()))?);
        threads.push(("subscriber", spawn("ferroq-subscriber", subscriber::Subscriber::new(sh.clone()))?));
        *self.finisher.lock() = Some(spawn("ferroq-finisher", processor::Finisher::new(sh.clone()))?);
        *self.processor.lock() = Some(spawn("ferroq-processor", processor::Processor::new(sh.clone()))?);
        Ok(())
    }

    /// Waits up to `timeout` for leased tasks; returns at most `max` of them.
    pub fn next_batch(&self, max: usize, timeout: Duration) -> Vec<Delivery> {
        let rx = &self.shared.ready_rx;
        let first = match rx.recv_timeout(timeout) {
            Ok(d) => d,
            Err(_) => return Vec::new(),
        };
        let mut out = vec![first];
        while out.len() < max {
            match rx.try_recv() {
                Ok(d) => out.push(d),
                Err(_) => break,
            }
        }
        out
    }

    /// Reports outcomes; the finisher thread writes them to Redis in batches.
    pub fn finish(&self, outcomes: Vec<(u64, Outcome)>) {
        for o in outcomes {
            // The receiver lives as long as `shared`; a send cannot fail while we hold it.
            let _ = self.shared.finish_tx.send(o);
        }
    }

    /// Stores a result for the running task `token`.
    pub fn write_result(&self, token: u64, data: &[u8]) -> Result<usize> {
        let (q, id) = {
            let inflight = self.shared.inflight.lock();
            let f = inflight.get(&token).ok_or(Error::NotFound)?;
            (f.msg.queue.clone(), f.msg.id.clone())
        };
        self.shared.rdb().write_result(&q, &id, data)
    }

    /// Waits up to `timeout` for cancellations of running tasks.
    pub fn cancellations(&self, timeout: Duration) -> Vec<(u64, CancelReason)> {
        let rx = &self.shared.cancel_rx;
        let mut out = Vec::new();
        if let Ok(c) = rx.recv_timeout(timeout) {
            out.push(c);
            out.extend(rx.try_iter());
        }
        out
    }

    /// Tokens of the tasks in flight.
    pub fn inflight_tokens(&self) -> Vec<u64> {
        self.shared.inflight.lock().keys().copied().collect()
    }

    /// Stops fetching new tasks (SIGTSTP); running tasks go on.
    pub fn stop_fetching(&self) {
        self.shared.fetching.store(false, Ordering::SeqCst);
        let mut st = self.shared.status.lock();
        if *st == Status::Active {
            *st = Status::Stopped;
        }
    }

    /// Shuts down: stops fetching, requeues every task still leased (the caller has already waited
    /// for handlers), writes all outcomes, stops the components and clears the server state last
    /// so the server stays visible while it still holds tasks.
    pub fn shutdown(&self) {
        {
            let mut st = self.shared.status.lock();
            if *st == Status::Closed {
                return;
            }
            *st = Status::Closed;
        }
        self.shared.fetching.store(false, Ordering::SeqCst);
        // Stop sleepers, including the processor's idle wait.
        self.shared.stop_tx.lock().take();
        join(self.processor.lock().take(), "processor");
        let sh = &self.shared;
        let leftover: Vec<u64> = sh.inflight.lock().keys().copied().collect();
        for token in leftover {
            let _ = sh.finish_tx.send((token, Outcome::Requeue));
        }
        sh.finish_stop_tx.lock().take();
        join(self.finisher.lock().take(), "finisher");
        for (name, h) in self.threads.lock().drain(..) {
            join(Some(h), name);
        }
        // Now that every outcome went out, the syncer makes its last attempt, and the heartbeat
        // (which kept the leases of the tasks being requeued) clears the server state.
        sh.late_stop_tx.lock().take();
        join(self.syncer.lock().take(), "syncer");
        join(self.heartbeat.lock().take(), "heartbeat");
    }
}

impl Drop for ServerCore {
    /// Signals every component to stop without waiting: a drop may run with the GIL held, and a
    /// component that logs needs the GIL. Leased tasks are left to the recoverer.
    fn drop(&mut self) {
        if !matches!(self.status(), Status::New | Status::Closed) {
            self.shared.fetching.store(false, Ordering::SeqCst);
            self.shared.stop_tx.lock().take();
            self.shared.finish_stop_tx.lock().take();
            self.shared.late_stop_tx.lock().take();
        }
    }
}

/// One background component: runs until the server stops.
pub(crate) trait Component: Send + 'static {
    fn run(self);
}

fn spawn<C: Component>(name: &str, c: C) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            // A panic must never take the worker down: log it and let the thread end.
            if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.run())) {
                log::error!("{} panicked: {}", std::thread::current().name().unwrap_or("?"), panic_text(&p));
            }
        })
        .map_err(|e| Error::InvalidArgument(format!("cannot start thread: {e}")))
}

pub(crate) fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

fn join(h: Option<JoinHandle<()>>, name: &str) {
    if let Some(h) = h {
        if h.join().is_err() {
            log::error!("{name} thread ended with a panic");
        }
    }
}

/// Queue → task ids, for per-queue commands.
pub(crate) fn by_queue<'a>(items: impl Iterator<Item = &'a InFlight>) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in items {
        m.entry(f.msg.queue.clone()).or_default().push(f.msg.id.clone());
    }
    m
}

/// Longest retry delay honoured (100 years); longer ones are clamped.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(100 * 365 * 86_400);

/// asynq's default retry delay: n⁴ + 15 + rand[0, 30)·(n+1) seconds, n = retries so far.
pub fn default_retry_delay(retried: i32) -> Duration {
    let n = u64::try_from(retried.max(0)).unwrap_or(0).min(10_000);
    let secs = n.saturating_pow(4).saturating_add(15).saturating_add(fastrand::u64(0..30) * (n + 1));
    Duration::from_secs(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_is_sidekiqs() {
        for _ in 0..100 {
            let d0 = default_retry_delay(0).as_secs();
            assert!((15..45).contains(&d0), "{d0}");
            let d5 = default_retry_delay(5).as_secs();
            assert!((640..=640 + 29 * 6).contains(&d5), "{d5}");
        }
        assert!(default_retry_delay(i32::MAX).as_secs() > 0);
    }

    #[test]
    fn slots_bound_what_is_taken() {
        let s = Slots::new(3);
        assert_eq!(s.acquire_up_to(2, Duration::ZERO), 2);
        assert_eq!(s.acquire_up_to(5, Duration::ZERO), 1);
        assert_eq!(s.acquire_up_to(5, Duration::from_millis(5)), 0);
        s.release(2);
        assert_eq!(s.acquire_up_to(5, Duration::ZERO), 2);
    }

    #[test]
    fn status_strings_match_asynq() {
        let all = [Status::New, Status::Active, Status::Stopped, Status::Closed];
        let names: Vec<_> = all.iter().map(|s| s.as_str()).collect();
        assert_eq!(names, ["new", "active", "stopped", "closed"]);
    }
}
