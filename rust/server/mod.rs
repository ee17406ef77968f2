//! The server core: a dequeue/lease loop and the background components asynq's server runs, each
//! on its own Rust thread with its own Redis connection. Python pulls leased tasks in batches with
//! [`ServerCore::next_batch`] and reports outcomes with [`ServerCore::finish`]; neither waits on
//! Redis while holding the GIL.

pub mod config;
mod finisher;
mod forwarder;
mod heartbeat;
pub mod inflight;
mod janitor;
pub mod metrics;
pub mod policy;
mod processor;
pub mod queues;
mod recoverer;
mod subscriber;
mod syncer;
mod watchdog;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crossbeam_channel::{bounded, unbounded, Receiver, RecvTimeoutError, Sender};
use parking_lot::{Condvar, Mutex};

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::rdb::{ConnConfig, Keys, Rdb};
pub use config::ServerConfig;
use inflight::Table;
pub use inflight::{CancelReason, Handle, Lease};
pub use policy::{Failure, FailurePolicy, Outcome};
use queues::QueueSelector;

/// The log target of a task's failed attempt: the Python logger `ferroq.task`, where the
/// dispatcher logs a handler's failures, so a recovery's line goes to the same place.
pub const TASK_LOG: &str = "ferroq.task";

/// Who this server is, as its heartbeat publishes it.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Host name.
    pub host: String,
    /// Process ID.
    pub pid: i32,
    /// Server ID (UUID v4).
    pub server_id: String,
}

impl Identity {
    /// This process, with a fresh server ID.
    pub fn current() -> Self {
        Self {
            host: hostname::get()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "unknown-host".into()),
            pid: i32::try_from(std::process::id()).unwrap_or(0),
            server_id: uuid::Uuid::new_v4().to_string(),
        }
    }
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
    pub id: Identity,
    pub conn: ConnConfig,
    pub keys: Keys,
    pub clock: Arc<dyn Clock>,
    pub selector: QueueSelector,
    /// The one in-flight table; `idle` is signalled when a delivered task leaves it.
    pub inflight: Mutex<Table>,
    /// Worker metrics (durations, outcomes, leases, recoveries).
    pub metrics: metrics::Metrics,
    idle: Condvar,
    pub slots: Slots,
    next_token: AtomicU64,
    pub ready_tx: Sender<Lease>,
    pub ready_rx: Receiver<Lease>,
    pub finish_tx: Sender<(u64, Outcome)>,
    pub finish_rx: Receiver<(u64, Outcome)>,
    cancel_tx: Sender<(CancelReason, Handle)>,
    cancel_rx: Receiver<(CancelReason, Handle)>,
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
    /// One pending wake-up for the watchdog when an earlier alarm was set.
    alarm_tx: Sender<()>,
    alarm_rx: Receiver<()>,
    /// The application's policy for failures outside handlers (set before start).
    failure_policy: parking_lot::RwLock<Option<Arc<dyn FailurePolicy>>>,
    /// Dropped last: the syncer and the heartbeat outlive the outcome writer.
    late_stop_tx: Mutex<Option<Sender<()>>>,
    /// Connections for what handlers write while they run (results, progress): a task that
    /// reports progress often must not open a connection each time.
    handler_writes: crate::rdb::RdbPool,
    late_stop_rx: Receiver<()>,
}

impl Shared {
    pub fn now(&self) -> SystemTime {
        self.clock.now()
    }

    pub fn rdb(&self) -> Rdb {
        Rdb::new(&self.conn, self.keys.clone())
            .with_archive_limits(Some(self.cfg.archive_limits()))
            .with_declared_keys(self.cfg.declares_keys(&self.conn))
    }

    /// The failure of `msg` with `error` outside a handler, as the application's policy counts
    /// it (asynq's defaults without one); the stored error text stays `error`.
    pub fn failure_outside_handler(&self, msg: &crate::message::TaskMessage, error: &str) -> Failure {
        let policy = self.failure_policy.read().clone();
        let f = policy.and_then(|p| p.failure(msg, error));
        Failure { error: error.to_string(), ..f.unwrap_or_else(|| Failure::new(error)) }
    }

    /// When a lease taken or renewed at `now` ends: in Unix seconds, as Redis stores it, and as
    /// the same instant (the in-flight table's view must not outlast Redis's). Rounded up, so a
    /// lease lasts at least `lease_duration` (a floored one could end within the next second).
    pub fn lease_until(&self, now: SystemTime) -> (i64, SystemTime) {
        let lease = i64::try_from(self.cfg.lease_duration.as_secs()).unwrap_or(i64::MAX);
        let secs = crate::clock::unix_secs_ceil(now).saturating_add(lease);
        (secs, crate::clock::from_unix_secs(secs))
    }

    /// Sleeps for `d`; returns false when the server is shutting down.
    pub fn sleep(&self, d: Duration) -> bool {
        matches!(self.stop_rx.recv_timeout(d), Err(RecvTimeoutError::Timeout))
    }

    /// Wakes the processor from its idle wait (one wake-up is kept if it is not waiting yet).
    pub fn wake(&self) {
        let _ = self.wake_tx.try_send(());
    }

    /// Wakes the watchdog: an alarm earlier than the one it waits for was set.
    pub fn wake_watchdog(&self) {
        let _ = self.alarm_tx.try_send(());
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

    /// Waits up to `d` or until an earlier alarm is set; returns false at shutdown.
    pub fn alarm_wait(&self, d: Duration) -> bool {
        self.wait_or(&self.alarm_rx, d)
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

    /// Tells the handler of `token` to stop (the one path every cancellation takes: requests,
    /// lost leases, deadlines), once, and starts its grace period; true the first time.
    pub fn cancel(&self, token: u64, why: CancelReason) -> bool {
        let grace_at = self.grace_at();
        let (event, woke, first) = self.inflight.lock().cancel(token, why, grace_at);
        self.send_cancel(event, woke);
        first
    }

    /// When a grace period starting now ends.
    fn grace_at(&self) -> SystemTime {
        let now = self.now();
        now.checked_add(self.cfg.cancel_grace).unwrap_or(now + config::MAX_SETTING)
    }

    fn send_cancel(&self, event: Option<(CancelReason, Handle)>, woke: bool) {
        if let Some(e) = event {
            // The receiver lives as long as `self`.
            let _ = self.cancel_tx.send(e);
        }
        if woke {
            self.wake_watchdog();
        }
    }

    /// Cancels the handlers running task `id` (any queue); returns how many.
    pub fn cancel_task_id(&self, id: &str, why: CancelReason) -> usize {
        let tokens = self.inflight.lock().tokens_of(id);
        for t in &tokens {
            self.cancel(*t, why);
        }
        tokens.len()
    }

    /// Removes finished tasks from the table; returns them in `tokens` order (`None`: unknown,
    /// an outcome for a task already requeued or finished).
    pub fn take_finished(&self, tokens: &[u64]) -> Vec<Option<inflight::InFlight>> {
        let mut table = self.inflight.lock();
        let before = table.attached();
        let out: Vec<_> = tokens.iter().map(|t| table.remove(*t)).collect();
        if table.attached() < before {
            self.idle.notify_all();
        }
        out
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
    /// A server core for `url`; nothing runs until [`ServerCore::start`]. `cfg` is validated.
    pub fn new(conn: ConnConfig, keys: Keys, cfg: ServerConfig) -> Result<Self> {
        Self::with_clock(conn, keys, cfg, Arc::new(SystemClock))
    }

    /// As [`ServerCore::new`] with an injected clock.
    pub fn with_clock(
        conn: ConnConfig,
        keys: Keys,
        cfg: ServerConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        cfg.validate()?;
        let conn = conn.with_durability(cfg.durability()?);
        let selector = QueueSelector::new(&cfg.queues, cfg.strict_priority);
        let (ready_tx, ready_rx) = bounded(cfg.concurrency);
        let (finish_tx, finish_rx) = unbounded();
        let (cancel_tx, cancel_rx) = unbounded();
        let (sync_tx, sync_rx) = unbounded();
        let (stop_tx, stop_rx) = bounded(0);
        let (finish_stop_tx, finish_stop_rx) = bounded(0);
        let (late_stop_tx, late_stop_rx) = bounded(0);
        let (wake_tx, wake_rx) = bounded(1);
        let (due_tx, due_rx) = bounded(1);
        let (alarm_tx, alarm_rx) = bounded(1);
        let slots = Slots::new(cfg.concurrency);
        let started = clock.now();
        // Retrying: a pooled connection Redis closed (a restart, an idle timeout) is replaced
        // on the next write instead of failing the handler; the writes are idempotent HSETs.
        let handler_writes = crate::rdb::RdbPool::retrying(conn.clone(), keys.clone(), 4, None);
        let shared = Shared {
            handler_writes,
            cfg,
            id: Identity::current(),
            conn,
            keys,
            clock,
            selector,
            inflight: Mutex::new(Table::default()),
            metrics: metrics::Metrics::default(),
            idle: Condvar::new(),
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
            alarm_tx,
            alarm_rx,
            failure_policy: parking_lot::RwLock::new(None),
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
        &self.shared.id.server_id
    }

    /// The worker metrics now, with the tasks in flight per queue.
    pub fn metrics(&self) -> (metrics::Snapshot, Vec<(String, usize)>) {
        let snap = self.shared.metrics.snapshot();
        let mut in_flight: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
        for (_, f) in self.shared.inflight.lock().iter() {
            *in_flight.entry(f.msg.queue.clone()).or_insert(0) += 1;
        }
        (snap, in_flight.into_iter().collect())
    }

    /// Sets the policy for failures outside handlers (recovered tasks): the application's
    /// `is_failure` and `retry_delay`.
    pub fn set_failure_policy(&self, policy: Arc<dyn FailurePolicy>) {
        *self.shared.failure_policy.write() = Some(policy);
    }

    /// The settings this server runs with.
    pub fn config(&self) -> &ServerConfig {
        &self.shared.cfg
    }

    /// Whether this server runs in declared-keys mode: its setting, resolved for its connection.
    pub fn declares_keys(&self) -> bool {
        self.shared.cfg.declares_keys(&self.shared.conn)
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
        if *self.shared.status.lock() != Status::New {
            return Err(Error::ServerClosed);
        }
        // Not under the status lock: a caller may retry this while Redis is down, and readers of
        // the status must not wait for the connect.
        self.shared.rdb().ping()?;
        {
            let mut st = self.shared.status.lock();
            if *st != Status::New {
                return Err(Error::ServerClosed);
            }
            *st = Status::Active;
        }
        self.shared.fetching.store(true, Ordering::SeqCst);
        let sh = &self.shared;
        *self.heartbeat.lock() = Some(spawn("ferroq-heartbeat", heartbeat::Heartbeat::new(sh.clone()))?);
        let mut threads = self.threads.lock();
        threads.push(("forwarder", spawn("ferroq-forwarder", forwarder::Forwarder::new(sh.clone()))?));
        threads.push(("recoverer", spawn("ferroq-recoverer", recoverer::Recoverer::new(sh.clone()))?));
        threads.push(("janitor", spawn("ferroq-janitor", janitor::Janitor::new(sh.clone()))?));
        threads.push(("watchdog", spawn("ferroq-watchdog", watchdog::Watchdog::new(sh.clone()))?));
        *self.syncer.lock() = Some(spawn("ferroq-syncer", syncer::Syncer::new(sh.clone()))?);
        threads.push(("subscriber", spawn("ferroq-subscriber", subscriber::Subscriber::new(sh.clone()))?));
        *self.finisher.lock() = Some(spawn("ferroq-finisher", finisher::Finisher::new(sh.clone()))?);
        *self.processor.lock() = Some(spawn("ferroq-processor", processor::Processor::new(sh.clone()))?);
        Ok(())
    }

    /// Waits up to `timeout` for leased tasks; returns at most `max` of them. Each must be
    /// attached ([`ServerCore::attach`]) before its cancellations can be delivered.
    pub fn next_batch(&self, max: usize, timeout: Duration) -> Vec<Lease> {
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

    /// Attaches the caller's handle to delivered tasks, in one lock round; cancellations that
    /// came before a handle are sent now.
    pub fn attach(&self, items: Vec<(u64, Handle)>) {
        let grace_at = self.shared.grace_at();
        let early: Vec<_> = {
            let mut table = self.shared.inflight.lock();
            items.into_iter().map(|(t, h)| table.attach(t, h, grace_at)).collect()
        };
        for (event, woke) in early {
            self.shared.send_cancel(event, woke);
        }
    }

    /// Reports how a task ended; the finisher writes it to Redis in a batch. An outcome for a
    /// task no longer in flight (already reported, requeued at shutdown) is dropped.
    pub fn finish(&self, token: u64, outcome: Outcome) {
        // The receiver lives as long as `shared`; a send cannot fail while we hold it.
        let _ = self.shared.finish_tx.send((token, outcome));
    }

    /// Stores a result for the running task `token`.
    pub fn write_result(&self, token: u64, data: &[u8]) -> Result<usize> {
        let (q, id) = self.running(token)?;
        self.shared.handler_writes.with(|rdb| rdb.write_result(&q, &id, data))
    }

    /// Stores a running task's progress report (`Task.report_progress`).
    pub fn write_progress(&self, token: u64, data: &[u8]) -> Result<usize> {
        let (q, id) = self.running(token)?;
        self.shared.handler_writes.with(|rdb| rdb.write_progress(&q, &id, data))
    }

    /// Queue and ID of the task running under `token`.
    fn running(&self, token: u64) -> Result<(String, String)> {
        let table = self.shared.inflight.lock();
        let f = table.get(token).ok_or(Error::NotFound)?;
        Ok((f.msg.queue.clone(), f.msg.id.clone()))
    }

    /// Waits up to `timeout` for cancellations of running tasks: why, and the task's handle.
    pub fn cancellations(&self, timeout: Duration) -> Vec<(CancelReason, Handle)> {
        let rx = &self.shared.cancel_rx;
        let mut out = Vec::new();
        if let Ok(c) = rx.recv_timeout(timeout) {
            out.push(c);
            out.extend(rx.try_iter());
        }
        out
    }

    /// Waits up to `timeout` until no delivered task is in flight; true when none is.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let now = std::time::Instant::now();
        let until = now.checked_add(timeout).unwrap_or(now + config::MAX_SETTING);
        let mut table = self.shared.inflight.lock();
        while table.attached() > 0 {
            if self.shared.idle.wait_until(&mut table, until).timed_out() {
                return table.attached() == 0;
            }
        }
        true
    }

    /// Gives every delivered task still running back to pending (shutdown, after the wait) and
    /// returns their handles, so their handlers can be told to stop.
    pub fn requeue_running(&self) -> Vec<Handle> {
        let running = self.shared.inflight.lock().handles();
        running
            .into_iter()
            .map(|(token, h)| {
                self.finish(token, Outcome::Requeue);
                h
            })
            .collect()
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
        let leftover = sh.inflight.lock().tokens();
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
        .map_err(|e| Error::Thread(format!("{name}: {e}")))
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

#[cfg(test)]
mod tests {
    use super::*;

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
