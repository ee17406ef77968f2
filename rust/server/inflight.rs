//! The one in-flight table: every task this server leased and has not finished, keyed by a
//! token, with the alarms (deadline, cancellation grace) that the watchdog fires. Python's
//! object for a running task rides along as an opaque [`Handle`], so events reach it without a
//! second table on the other side of the line.

use std::any::Any;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use crate::message::TaskMessage;

/// What the caller attached to a delivered task (the Python layer's object for it).
pub type Handle = Arc<dyn Any + Send + Sync>;

/// Why a running handler should stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CancelReason {
    /// `PUBLISH asynq:cancel <id>` (an Inspector's cancel).
    Requested,
    /// The lease could not be renewed; another server may run the task.
    LeaseLost,
    /// The task's deadline passed (its timeout or its deadline option).
    DeadlineExceeded,
    /// The handler was told to stop and has not ended within the grace period: its task is to
    /// be failed without it.
    Unresponsive,
}

/// A leased task as it is handed out: its token, message and effective deadline.
#[derive(Debug, Clone)]
pub struct Lease {
    /// Handle for [`super::ServerCore::finish`]; unique within this server.
    pub token: u64,
    /// The task as dequeued.
    pub msg: TaskMessage,
    /// When its handler must stop.
    pub deadline: SystemTime,
}

/// One task in flight.
pub(crate) struct InFlight {
    pub msg: TaskMessage,
    pub deadline: SystemTime,
    pub started: SystemTime,
    /// Until when this server holds the lease, as last confirmed by Redis.
    pub lease_expiry: SystemTime,
    handle: Option<Handle>,
    /// A cancellation that came before the handle: sent when the handle arrives.
    pending_cancel: Option<CancelReason>,
    grace_at: Option<SystemTime>,
}

impl InFlight {
    pub fn new(msg: TaskMessage, deadline: SystemTime, now: SystemTime, lease_expiry: SystemTime) -> Self {
        Self { msg, deadline, started: now, lease_expiry, handle: None, pending_cancel: None, grace_at: None }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Alarm {
    Deadline,
    Grace,
}

/// The table. Every method is O(log n) or better except the scans named as such.
#[derive(Default)]
pub(crate) struct Table {
    tasks: HashMap<u64, InFlight>,
    alarms: BTreeSet<(SystemTime, u64, Alarm)>,
    /// Entries whose handle was attached (delivered to a handler runner).
    attached: usize,
}

impl Table {
    /// Adds a task; true when its deadline became the earliest alarm (the watchdog must wake).
    pub fn insert(&mut self, token: u64, f: InFlight) -> bool {
        let earliest = self.next_alarm().is_none_or(|t| f.deadline < t);
        self.alarms.insert((f.deadline, token, Alarm::Deadline));
        self.tasks.insert(token, f);
        earliest
    }

    /// Removes a finished task with its alarms.
    pub fn remove(&mut self, token: u64) -> Option<InFlight> {
        let f = self.tasks.remove(&token)?;
        self.alarms.remove(&(f.deadline, token, Alarm::Deadline));
        if let Some(g) = f.grace_at {
            self.alarms.remove(&(g, token, Alarm::Grace));
        }
        if f.handle.is_some() {
            self.attached -= 1;
        }
        Some(f)
    }

    pub fn get(&self, token: u64) -> Option<&InFlight> {
        self.tasks.get(&token)
    }

    pub fn get_mut(&mut self, token: u64) -> Option<&mut InFlight> {
        self.tasks.get_mut(&token)
    }

    /// How many delivered tasks are still running.
    pub fn attached(&self) -> usize {
        self.attached
    }

    pub fn iter(&self) -> impl Iterator<Item = (u64, &InFlight)> {
        self.tasks.iter().map(|(t, f)| (*t, f))
    }

    pub fn tokens(&self) -> Vec<u64> {
        self.tasks.keys().copied().collect()
    }

    /// Attaches the caller's handle to a delivered task; returns a cancellation that arrived
    /// before it, to be sent now. The handler starts only now, so such a task gets its grace
    /// period from `grace_at` (one that ran out before the handle came would never be told);
    /// the bool is true when that alarm became the earliest.
    pub fn attach(
        &mut self,
        token: u64,
        handle: Handle,
        grace_at: SystemTime,
    ) -> (Option<(CancelReason, Handle)>, bool) {
        let earliest = self.next_alarm();
        let Some(f) = self.tasks.get_mut(&token) else { return (None, false) };
        if f.handle.is_none() {
            self.attached += 1;
        }
        f.handle = Some(handle.clone());
        let Some(why) = f.pending_cancel.take() else { return (None, false) };
        if let Some(old) = f.grace_at.replace(grace_at) {
            self.alarms.remove(&(old, token, Alarm::Grace));
        }
        self.alarms.insert((grace_at, token, Alarm::Grace));
        // `why` is the first reason given (see `cancel`), never `Unresponsive`: that one only
        // follows a grace alarm, which only follows an earlier cancellation.
        (Some((why, handle)), earliest.is_none_or(|t| grace_at < t))
    }

    /// Marks `token` cancelled for `why`: returns the event to send (or keeps it until the handle
    /// is attached), and starts the grace period at `grace_at` unless one runs already. The bool
    /// is true when the grace alarm became the earliest.
    pub fn cancel(
        &mut self,
        token: u64,
        why: CancelReason,
        grace_at: SystemTime,
    ) -> (Option<(CancelReason, Handle)>, bool) {
        let earliest = self.next_alarm();
        let Some(f) = self.tasks.get_mut(&token) else { return (None, false) };
        let mut woke = false;
        if why != CancelReason::Unresponsive && f.grace_at.is_none() {
            f.grace_at = Some(grace_at);
            self.alarms.insert((grace_at, token, Alarm::Grace));
            woke = earliest.is_none_or(|t| grace_at < t);
        }
        let event = match &f.handle {
            Some(h) => Some((why, h.clone())),
            None => {
                // The first reason is the one the handler hears; a later one changes nothing.
                f.pending_cancel.get_or_insert(why);
                None
            }
        };
        (event, woke)
    }

    /// Removes and returns the alarms due at `now`.
    pub fn due(&mut self, now: SystemTime) -> Vec<(u64, Alarm)> {
        let mut out = Vec::new();
        while let Some(&(at, token, alarm)) = self.alarms.first() {
            if at > now {
                break;
            }
            self.alarms.pop_first();
            if alarm == Alarm::Grace {
                if let Some(f) = self.tasks.get_mut(&token) {
                    f.grace_at = None;
                }
            }
            out.push((token, alarm));
        }
        out
    }

    /// When the earliest alarm is due.
    pub fn next_alarm(&self) -> Option<SystemTime> {
        self.alarms.first().map(|(t, _, _)| *t)
    }

    /// The handles of every delivered task (a scan), with their tokens.
    pub fn handles(&self) -> Vec<(u64, Handle)> {
        self.tasks.iter().filter_map(|(t, f)| f.handle.clone().map(|h| (*t, h))).collect()
    }

    /// Tokens of the tasks running `id` (a scan).
    pub fn tokens_of(&self, id: &str) -> Vec<u64> {
        self.tasks.iter().filter(|(_, f)| f.msg.id == id).map(|(t, _)| *t).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::from_unix_secs;

    fn entry(deadline: i64) -> InFlight {
        let now = from_unix_secs(0);
        InFlight::new(
            TaskMessage { id: format!("t{deadline}"), ..Default::default() },
            from_unix_secs(deadline),
            now,
            now,
        )
    }

    #[test]
    fn alarms_fire_in_order_and_leave_with_their_task() {
        let mut t = Table::default();
        assert!(t.insert(1, entry(50)));
        assert!(!t.insert(2, entry(60)));
        assert!(t.insert(3, entry(10)));
        assert!(t.remove(3).is_some());
        assert_eq!(t.next_alarm(), Some(from_unix_secs(50)));
        assert_eq!(t.due(from_unix_secs(55)), vec![(1, Alarm::Deadline)]);
        assert_eq!(t.due(from_unix_secs(55)), vec![]);
        assert!(t.remove(2).is_some());
        assert_eq!(t.next_alarm(), None);
    }

    #[test]
    fn a_cancel_before_the_handle_waits_for_it() {
        let mut t = Table::default();
        t.insert(1, entry(100));
        let (event, woke) = t.cancel(1, CancelReason::Requested, from_unix_secs(5));
        assert!(event.is_none());
        assert!(woke, "the grace alarm is the earliest");
        let h: Handle = Arc::new(7_u8);
        let (event, woke) = t.attach(1, h, from_unix_secs(8));
        let (why, got) = event.expect("the early cancel");
        assert_eq!(why, CancelReason::Requested);
        assert_eq!(got.downcast_ref::<u8>(), Some(&7));
        assert!(!woke, "the deadline alarm (100) is later, the old grace alarm (5) replaced");
        assert_eq!(t.attached(), 1);
        let (event, woke) = t.cancel(1, CancelReason::DeadlineExceeded, from_unix_secs(9));
        assert_eq!(event.map(|e| e.0), Some(CancelReason::DeadlineExceeded));
        assert!(!woke, "one grace period per task");
        assert_eq!(t.due(from_unix_secs(7)), vec![], "the grace was re-armed at the attach");
        assert_eq!(t.due(from_unix_secs(8)), vec![(1, Alarm::Grace)]);
        t.remove(1);
        assert_eq!(t.attached(), 0);
        assert!(t.tokens().is_empty());
    }

    #[test]
    fn a_grace_that_ran_out_before_the_handle_starts_again() {
        let mut t = Table::default();
        t.insert(1, entry(10));
        assert_eq!(t.due(from_unix_secs(10)), vec![(1, Alarm::Deadline)]);
        t.cancel(1, CancelReason::DeadlineExceeded, from_unix_secs(11));
        assert_eq!(t.due(from_unix_secs(11)), vec![(1, Alarm::Grace)]);
        t.cancel(1, CancelReason::Unresponsive, from_unix_secs(12));
        let (event, _) = t.attach(1, Arc::new(()), from_unix_secs(20));
        assert_eq!(event.map(|e| e.0), Some(CancelReason::DeadlineExceeded));
        assert_eq!(t.next_alarm(), Some(from_unix_secs(20)), "a new grace period");
    }
}
