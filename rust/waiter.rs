//! The waiter: tells whoever waits for a task's end when it ended, over one Pub/Sub connection
//! per client however many wait.
//!
//! A server announces a task's end on the task's own channel ([`Keys::done_channel`]) when the
//! task keeps its hash afterwards (completed with retention, archived) or was revoked while it
//! had retention. A waiter registers a watch; the waiter thread subscribes to the channel and
//! only then reads the task once (it may have ended before the subscription), and reads it once
//! more when the notice arrives. Every [`RECHECK`] it also reads the tasks still watched: the
//! notices a dropped connection missed, and the ends that announce nothing (a task deleted or
//! moved by an Inspector), are found that way. Nothing is polled per waiter.
//!
//! The thread blocks reading its connection; a new watch wakes it with a message on the
//! client's private wake channel (sent only while it blocks), sent by a second thread so that
//! watching never waits on Redis (an asyncio caller must not block its loop).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, Result};
use crate::info::{TaskInfo, TaskState};
use crate::rdb::{ConnConfig, Keys, Rdb, RdbPool};

/// Watch ids, unique in the process: a waiter replaced by a client's close must not hand out an id
/// a watch of the old one still holds (its unwatch would remove someone else's). 0 is never one.
static NEXT_WATCH: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// How often the tasks still watched are read again.
pub const RECHECK: Duration = Duration::from_secs(5);
/// How long the thread waits before reconnecting after its connection failed.
const RECONNECT: Duration = Duration::from_secs(1);

/// How a watched task ended.
#[derive(Debug, Clone, PartialEq)]
pub enum End {
    /// It completed or was archived: the task as it was read after its end.
    Ended(Box<TaskInfo>),
    /// Its hash is gone: revoked, deleted, or completed without retention.
    Gone,
    /// The waiter was closed (its client closed) before the task ended.
    Closed,
}

/// What a watch delivers to: a waiting thread, or a callback (run on the waiter thread).
enum Sink {
    Slot(Arc<Slot>),
    Callback(Box<dyn FnOnce(End) + Send>),
}

impl Sink {
    fn deliver(self, end: End) {
        match self {
            Sink::Slot(s) => s.set(end),
            Sink::Callback(f) => {
                // A callback that panics must not end the thread every other waiter relies on.
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(end))).is_err() {
                    log::error!("a task-end callback panicked");
                }
            }
        }
    }
}

/// Where a waiting thread finds its task's end.
#[derive(Default)]
pub struct Slot {
    end: Mutex<Option<End>>,
    cv: Condvar,
}

impl Slot {
    fn set(&self, end: End) {
        *self.end.lock() = Some(end);
        self.cv.notify_all();
    }

    /// Waits up to `timeout` for the end; `None` when it has not come.
    pub fn wait(&self, timeout: Duration) -> Option<End> {
        let mut g = self.end.lock();
        if g.is_none() {
            let _ = self.cv.wait_for(&mut g, timeout);
        }
        g.clone()
    }
}

struct Watch {
    id: u64,
    sink: Sink,
}

/// The watched tasks of one channel.
struct Watched {
    queue: String,
    task: String,
    watches: Vec<Watch>,
}

#[derive(Default)]
struct State {
    channels: HashMap<String, Watched>,
    /// Channels watched since the thread last looked (to subscribe, then read).
    added: Vec<String>,
    /// Channels that may have no watch left (to unsubscribe).
    dropped: Vec<String>,
    started: bool,
    /// The thread blocks on its connection: a new watch must wake it.
    listening: bool,
    /// A wake message is wanted (the waker thread sends it).
    need_wake: bool,
    /// Watch ids by channel, to find a watch on unwatch.
    owner: HashMap<u64, String>,
}

struct Inner {
    cfg: ConnConfig,
    keys: Keys,
    /// Reads of watched tasks and wake messages.
    pool: RdbPool,
    wake: String,
    state: Mutex<State>,
    /// Signals the waker thread.
    wake_cv: Condvar,
    stop: AtomicBool,
}

/// One client's waiter (see the module documentation).
pub struct Waiter {
    inner: Arc<Inner>,
}

impl Waiter {
    /// A waiter for tasks under `keys`; its thread starts with the first watch.
    pub fn new(cfg: ConnConfig, keys: Keys) -> Self {
        let wake = keys.waiter_channel(&uuid::Uuid::new_v4().to_string());
        let pool = RdbPool::new(cfg.clone(), keys.clone(), 2);
        let inner = Inner {
            cfg,
            keys,
            pool,
            wake,
            state: Mutex::new(State::default()),
            wake_cv: Condvar::new(),
            stop: AtomicBool::new(false),
        };
        Self { inner: Arc::new(inner) }
    }

    /// Watches task `id` of queue `q` for a thread that will wait on the returned slot.
    pub fn watch(&self, q: &str, id: &str) -> Result<(u64, Arc<Slot>)> {
        let slot = Arc::new(Slot::default());
        let wid = self.add(q, id, Sink::Slot(slot.clone()))?;
        Ok((wid, slot))
    }

    /// Watches task `id` of queue `q`; `callback` runs once, on the waiter thread, when it ends
    /// (it may still run just after [`Waiter::unwatch`] returned, if the end was being delivered;
    /// at once, with [`End::Closed`], when the waiter is closed).
    pub fn watch_with(&self, q: &str, id: &str, callback: Box<dyn FnOnce(End) + Send>) -> Result<u64> {
        self.add(q, id, Sink::Callback(callback))
    }

    /// Stops a watch (a waiter gave up); nothing is delivered to it afterwards.
    pub fn unwatch(&self, wid: u64) {
        let mut st = self.inner.state.lock();
        let Some(ch) = st.owner.remove(&wid) else { return };
        if let Some(w) = st.channels.get_mut(&ch) {
            w.watches.retain(|x| x.id != wid);
            if w.watches.is_empty() {
                st.channels.remove(&ch);
                st.dropped.push(ch);
            }
        }
    }

    /// How many tasks are watched (for tests and metrics).
    pub fn watched(&self) -> usize {
        self.inner.state.lock().channels.len()
    }

    fn add(&self, q: &str, id: &str, sink: Sink) -> Result<u64> {
        let ch = self.inner.keys.done_channel(q, id);
        let (wid, start) = {
            let mut st = self.inner.state.lock();
            if self.inner.stop.load(Ordering::Acquire) {
                // Closed (under this lock, so no watch slips past close): told so at once.
                drop(st);
                sink.deliver(End::Closed);
                return Ok(0);
            }
            let wid = NEXT_WATCH.fetch_add(1, Ordering::Relaxed);
            let w = st.channels.entry(ch.clone()).or_insert_with(|| Watched {
                queue: q.to_string(),
                task: id.to_string(),
                watches: Vec::new(),
            });
            let first = w.watches.is_empty();
            w.watches.push(Watch { id: wid, sink });
            st.owner.insert(wid, ch.clone());
            if first {
                st.added.push(ch);
            }
            let start = !st.started;
            st.started = true;
            if first && st.listening {
                st.need_wake = true;
                self.inner.wake_cv.notify_one();
            }
            (wid, start)
        };
        if start {
            if let Err(e) = self.start() {
                self.inner.state.lock().started = false;
                self.unwatch(wid);
                return Err(Error::Thread(format!("ferroq-waiter: {e}")));
            }
        }
        Ok(wid)
    }

    fn start(&self) -> std::io::Result<()> {
        let inner = self.inner.clone();
        std::thread::Builder::new().name("ferroq-waiter".into()).spawn(move || Listener { inner }.run())?;
        let inner = self.inner.clone();
        std::thread::Builder::new().name("ferroq-waiter-wake".into()).spawn(move || inner.run_waker())?;
        Ok(())
    }

    /// Stops the thread; every watch left is told [`End::Closed`].
    pub fn close(&self) {
        let left: Vec<Watch> = {
            let mut st = self.inner.state.lock();
            self.inner.stop.store(true, Ordering::Release);
            st.owner.clear();
            st.need_wake = true;
            self.inner.wake_cv.notify_one();
            st.channels.drain().flat_map(|(_, w)| w.watches).collect()
        };
        for w in left {
            w.sink.deliver(End::Closed);
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.close();
    }
}

impl Inner {
    /// The waker thread: sends a wake message whenever one is wanted, until the waiter closes
    /// (the last wake stops the listener).
    fn run_waker(&self) {
        loop {
            let stopping = {
                let mut st = self.state.lock();
                while !st.need_wake {
                    self.wake_cv.wait(&mut st);
                }
                st.need_wake = false;
                // Read with the request: the wake sent for it is the one the listener stops on.
                self.stop.load(Ordering::Acquire)
            };
            self.wake();
            if stopping {
                return;
            }
        }
    }

    fn wake(&self) {
        let ch = self.wake.clone();
        let sent =
            self.pool.with(|rdb| rdb.run(|c| Ok(redis::cmd("PUBLISH").arg(&ch).arg("").query::<i64>(c)?)));
        if let Err(e) = sent {
            // The thread finds the watch at its next timeout anyway.
            log::debug!("waking the waiter failed: {e}");
        }
    }

    /// Reads the tasks of `channels` and delivers to the watches of those that ended.
    fn check(&self, channels: &[String]) {
        let targets: Vec<(String, String, String)> = {
            let st = self.state.lock();
            channels
                .iter()
                .filter_map(|ch| st.channels.get(ch).map(|w| (ch.clone(), w.queue.clone(), w.task.clone())))
                .collect()
        };
        // Many at once (a recheck, a reconnection): their states in one round trip first, and
        // the full read only for those that ended.
        let mut ended: Vec<bool> = vec![true; targets.len()];
        if targets.len() > 1 {
            let keys: Vec<(&str, &str)> =
                targets.iter().map(|(_, q, id)| (q.as_str(), id.as_str())).collect();
            match self.pool.with(|rdb| rdb.task_states(&keys)) {
                Ok(states) => {
                    for (e, st) in ended.iter_mut().zip(states) {
                        *e = !matches!(st.as_deref(), Some(s) if s != "completed" && s != "archived");
                    }
                }
                Err(e) => log::debug!("reading the states of watched tasks failed: {e}"),
            }
        }
        for ((ch, q, id), _) in targets.into_iter().zip(ended).filter(|(_, e)| *e) {
            let read = self.pool.with(|rdb| rdb.task_info(&q, &id, SystemTime::now()));
            let end = match read {
                Ok(info) if matches!(info.state, TaskState::Completed | TaskState::Archived) => {
                    End::Ended(Box::new(info))
                }
                Ok(_) => continue,
                Err(Error::TaskNotFound { .. } | Error::QueueNotFound(_)) => End::Gone,
                Err(e) => {
                    // Read again at the next recheck: the end stays readable until its retention.
                    log::debug!("reading watched task {id:?} failed: {e}");
                    continue;
                }
            };
            self.deliver(&ch, end);
        }
    }

    fn deliver(&self, ch: &str, end: End) {
        let watches = {
            let mut st = self.state.lock();
            let Some(w) = st.channels.remove(ch) else { return };
            for x in &w.watches {
                st.owner.remove(&x.id);
            }
            st.dropped.push(ch.to_string());
            w.watches
        };
        for w in watches {
            w.sink.deliver(end.clone());
        }
    }
}

struct Listener {
    inner: Arc<Inner>,
}

impl Listener {
    fn run(self) {
        while !self.inner.stop.load(Ordering::Acquire) {
            if let Err(e) = self.exec() {
                if self.inner.stop.load(Ordering::Acquire) {
                    break;
                }
                let waiting = {
                    let mut st = self.inner.state.lock();
                    st.listening = false;
                    st.channels.len()
                };
                // Nobody waiting: nothing is late, so nothing worth a warning.
                if waiting > 0 {
                    log::warn!("the result waiter lost its connection ({waiting} tasks waited on): {e}; reconnecting");
                } else {
                    log::debug!("the result waiter lost its connection: {e}; reconnecting");
                }
                std::thread::sleep(RECONNECT);
            }
        }
    }

    /// Listens until the waiter closes (Ok) or the connection fails (Err).
    fn exec(&self) -> Result<()> {
        let inner = &self.inner;
        let rdb = Rdb::new(&inner.cfg, inner.keys.clone());
        let mut conn = rdb.pubsub_connection()?;
        let mut ps = conn.as_pubsub();
        ps.subscribe(&inner.wake)?;
        // Everything watched is (re)subscribed and read: notices may have been missed.
        {
            let mut st = inner.state.lock();
            st.added = st.channels.keys().cloned().collect();
            st.dropped.clear();
        }
        ps.set_read_timeout(Some(RECHECK))?;
        let mut last_check = Instant::now();
        let mut subscribed: std::collections::HashSet<String> = std::collections::HashSet::new();
        while !inner.stop.load(Ordering::Acquire) {
            let (added, dropped) = {
                let mut st = inner.state.lock();
                // A watch given up before the thread saw it needs no subscription.
                let added: Vec<String> = std::mem::take(&mut st.added)
                    .into_iter()
                    .filter(|c| st.channels.contains_key(c))
                    .collect();
                let dropped: Vec<String> = std::mem::take(&mut st.dropped)
                    .into_iter()
                    .filter(|c| !st.channels.contains_key(c))
                    .collect();
                st.listening = added.is_empty() && dropped.is_empty();
                (added, dropped)
            };
            if !dropped.is_empty() {
                let gone: Vec<&String> = dropped.iter().filter(|c| subscribed.remove(*c)).collect();
                if !gone.is_empty() {
                    ps.unsubscribe(&gone)?;
                }
            }
            if !added.is_empty() {
                ps.subscribe(&added)?;
                subscribed.extend(added.iter().cloned());
                // Subscribed first, read second: an end between the two is seen either way.
                inner.check(&added);
            }
            if !(added.is_empty() && dropped.is_empty()) {
                // Only a pass that found nothing to do may block: it alone said it listens.
                continue;
            }
            if last_check.elapsed() >= RECHECK {
                let all: Vec<String> = inner.state.lock().channels.keys().cloned().collect();
                inner.check(&all);
                last_check = Instant::now();
                continue;
            }
            match ps.get_message() {
                Ok(m) => {
                    let ch = m.get_channel_name().to_string();
                    if ch != inner.wake {
                        inner.check(std::slice::from_ref(&ch));
                    }
                }
                Err(e) if e.is_timeout() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_returns_what_was_set_or_times_out() {
        let s = Slot::default();
        assert_eq!(s.wait(Duration::from_millis(1)), None);
        s.set(End::Gone);
        assert_eq!(s.wait(Duration::from_secs(5)), Some(End::Gone));
    }

    #[test]
    fn a_panicking_callback_is_contained() {
        let sink = Sink::Callback(Box::new(|_| panic!("user code")));
        sink.deliver(End::Gone);
    }
}
