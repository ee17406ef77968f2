//! The one in-flight table: every task this server leased and has not finished, keyed by a
//! token, with the alarms (deadline, cancellation grace) that the watchdog fires. Python's
//! object for a running task rides along as an opaque [`Handle`], so events reach it without a
//! second table on the other side of the line.

use std::any::Any;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

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
    /// The deadline had already passed when the task was leased: its handler must not start
    /// (asynq checks before running a handler); the task fails with the deadline's error.
    pub expired: bool,
}

/// One task in flight.
pub(crate) struct InFlight {
    pub msg: TaskMessage,
    pub deadline: SystemTime,
    pub started: SystemTime,
    /// Until when this server holds the lease, as last confirmed by Redis.
    pub lease_expiry: SystemTime,
    /// Redis said the task is no longer active here: someone else has it.
    pub lost: bool,
    handle: Option<Handle>,
    /// Why the handler is to stop: the first reason given, the only one it hears.
    reason: Option<CancelReason>,
    /// Whether `reason` was sent (it waits for the handle when it came before).
    told: bool,
    grace_at: Option<SystemTime>,
}

impl InFlight {
    pub fn new(msg: TaskMessage, deadline: SystemTime, now: SystemTime, lease_expiry: SystemTime) -> Self {
        Self {
            msg,
            deadline,
            started: now,
            lease_expiry,
            lost: false,
            handle: None,
            reason: None,
            told: false,
            grace_at: None,
        }
    }

    /// Whether the task is still this server's at `now`: Redis has not said it left, and no
    /// recoverer can have taken it, which none does before `lease_grace` has passed after the
    /// lease. For half of that (the other half stays an allowance for clock skew) a renewal or
    /// an outcome may still be written — the scripts check that the lease entry is there — so a
    /// short Redis outage does not abandon running work.
    pub fn still_ours(&self, now: SystemTime, lease_grace: Duration) -> bool {
        !self.lost && self.lease_expiry.checked_add(lease_grace / 2).is_none_or(|end| now <= end)
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
    /// When the watchdog wakes next, as it planned under this table's lock (`None` before it
    /// first did): only an alarm set before that instant must wake it, since it reads the
    /// earliest alarm again whenever it wakes. Waking it for every alarm that became the
    /// earliest cost a wake-up each time the table ran empty, thousands a second on no-op tasks.
    watchdog_wakes: Option<SystemTime>,
}

impl Table {
    /// Adds a task; true when its deadline comes before the watchdog wakes (it must wake now),
    /// or the task started after that wake-up was due: the wall clock jumped past the plan (the
    /// watchdog's sleep is monotonic), and a deadline after the planned instant may come before
    /// the watchdog actually wakes.
    pub fn insert(&mut self, token: u64, f: InFlight) -> bool {
        let wake = self.watchdog_wakes.is_none_or(|w| f.deadline < w || f.started >= w);
        self.alarms.insert((f.deadline, token, Alarm::Deadline));
        self.tasks.insert(token, f);
        wake
    }

    /// How long the watchdog may sleep from `now`: until the earliest alarm, at most `idle`. The
    /// wake-up is noted, so that from now on only an alarm set before it wakes the watchdog.
    pub fn plan_watchdog(&mut self, now: SystemTime, idle: Duration) -> Duration {
        let wait =
            self.next_alarm().map_or(idle, |t| t.duration_since(now).unwrap_or(Duration::ZERO).min(idle));
        // Past SystemTime's range (no such alarm can be set): every alarm wakes it, as before
        // its first plan.
        self.watchdog_wakes = now.checked_add(wait);
        wait
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

    /// Sets the grace alarm of `token` at `at` (replacing a running one); true when it was set,
    /// and the watchdog must wake to plan again. A grace period starts only with a cancellation,
    /// rare enough that it always wakes the watchdog, whatever the wall clock did since its plan.
    fn arm_grace(&mut self, token: u64, at: SystemTime) -> bool {
        let Some(f) = self.tasks.get_mut(&token) else { return false };
        if let Some(old) = f.grace_at.replace(at) {
            self.alarms.remove(&(old, token, Alarm::Grace));
        }
        self.alarms.insert((at, token, Alarm::Grace));
        true
    }

    /// Attaches the caller's handle to a delivered task; returns the cancellation that came
    /// before it, to be sent now. The handler starts only now, so such a task gets its grace
    /// period from `grace_at` (one that ran out before the handle came would never be told);
    /// the bool is true when that alarm was set (the watchdog must wake).
    pub fn attach(
        &mut self,
        token: u64,
        handle: Handle,
        grace_at: SystemTime,
    ) -> (Option<(CancelReason, Handle)>, bool) {
        let Some(f) = self.tasks.get_mut(&token) else { return (None, false) };
        if f.handle.is_none() {
            self.attached += 1;
        }
        f.handle = Some(handle.clone());
        let Some(why) = f.reason.filter(|_| !f.told) else { return (None, false) };
        f.told = true;
        (Some((why, handle)), self.arm_grace(token, grace_at))
    }

    /// Tells `token` to stop for `why`, once: the first reason starts the grace period at
    /// `grace_at` and is sent (or kept until the handle is attached); a later one changes
    /// nothing. `Unresponsive`, which the grace alarm gives, is sent whenever a handle can hear
    /// it. Returns the event to send, whether a grace alarm was set (the watchdog must wake),
    /// and whether this was the first reason.
    pub fn cancel(
        &mut self,
        token: u64,
        why: CancelReason,
        grace_at: SystemTime,
    ) -> (Option<(CancelReason, Handle)>, bool, bool) {
        let Some(f) = self.tasks.get_mut(&token) else { return (None, false, false) };
        if why == CancelReason::Unresponsive {
            return (f.handle.clone().map(|h| (why, h)), false, false);
        }
        if f.reason.is_some() {
            return (None, false, false);
        }
        f.reason = Some(why);
        f.told = f.handle.is_some();
        let event = f.handle.clone().map(|h| (why, h));
        (event, self.arm_grace(token, grace_at), true)
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

    #[test]
    fn the_table_finds_what_it_holds() {
        let t0 = crate::clock::from_unix_secs(1_000);
        let task = |id: &str, deadline: u64| {
            let msg = TaskMessage { id: id.into(), ..Default::default() };
            InFlight::new(msg, t0 + Duration::from_secs(deadline), t0, t0 + Duration::from_secs(30))
        };
        let mut table = Table::default();
        assert!(table.insert(1, task("a", 20)), "before its first plan, every alarm wakes the watchdog");
        assert_eq!(table.plan_watchdog(t0, Duration::from_secs(60)), Duration::from_secs(20));
        assert!(table.insert(2, task("b", 10)), "an earlier deadline wakes the watchdog");
        assert!(!table.insert(4, task("c", 30)), "a later one need not");
        assert_eq!(table.remove(4).map(|f| f.msg.id), Some("c".into()));
        assert_eq!(table.plan_watchdog(t0, Duration::from_secs(60)), Duration::from_secs(10));
        assert!(!table.insert(3, task("a", 10)), "an alarm at the planned instant is fired then");
        assert_eq!(table.get(2).map(|f| f.msg.id.as_str()), Some("b"));
        assert!(table.get(9).is_none());
        table.get_mut(2).expect("held").lost = true;
        assert!(table.get(2).is_some_and(|f| f.lost));
        let mut tokens = table.tokens();
        tokens.sort_unstable();
        assert_eq!(tokens, [1, 2, 3]);
        let mut ids: Vec<_> = table.iter().map(|(t, f)| (t, f.msg.id.clone())).collect();
        ids.sort();
        assert_eq!(ids, [(1, "a".to_string()), (2, "b".into()), (3, "a".into())]);
        let mut of_a = table.tokens_of("a");
        of_a.sort_unstable();
        assert_eq!(of_a, [1, 3]);
        assert!(table.tokens_of("zzz").is_empty());
        assert!(table.handles().is_empty(), "nothing attached yet");
        let handle: Handle = Arc::new(7_u8);
        let _ = table.attach(2, handle, t0);
        let handles = table.handles();
        assert_eq!(handles.len(), 1);
        assert_eq!(handles[0].0, 2);
        assert_eq!(table.due(t0 + Duration::from_secs(10)).len(), 2, "both deadlines at 10 s");
    }

    #[test]
    fn a_task_stays_ours_until_redis_says_otherwise_or_half_the_grace_is_over() {
        let t0 = crate::clock::from_unix_secs(1_000);
        let grace = Duration::from_secs(30);
        let mut f = InFlight::new(TaskMessage::default(), t0, t0, t0 + Duration::from_secs(30));
        assert!(f.still_ours(t0, grace));
        assert!(
            f.still_ours(t0 + Duration::from_secs(45), grace),
            "an outage shorter than the lease and half the grace"
        );
        assert!(!f.still_ours(t0 + Duration::from_secs(46), grace), "a recoverer may have it now");
        assert!(
            f.still_ours(t0 + Duration::from_secs(30), Duration::ZERO),
            "without a grace: to the lease's end"
        );
        assert!(!f.still_ours(t0 + Duration::from_secs(31), Duration::ZERO));
        f.lost = true;
        assert!(!f.still_ours(t0, grace), "Redis said it left: someone else has it");
    }
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
        t.plan_watchdog(from_unix_secs(0), Duration::from_secs(3600));
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
    fn a_task_leased_after_the_planned_wake_up_wakes_the_watchdog() {
        let mut t = Table::default();
        t.insert(1, entry(100));
        assert_eq!(t.plan_watchdog(from_unix_secs(0), Duration::from_secs(60)), Duration::from_secs(60));
        // The wall clock jumped an hour: the watchdog sleeps on (its sleep is monotonic) while
        // a task leased now has a deadline after the planned instant but before it wakes.
        let msg = TaskMessage { id: "late".into(), ..Default::default() };
        let (leased, deadline) = (from_unix_secs(3_600), from_unix_secs(3_630));
        assert!(t.insert(2, InFlight::new(msg, deadline, leased, deadline)));
        assert!(!t.insert(3, entry(90)), "leased before the planned instant, due after it");
    }

    #[test]
    fn a_cancel_before_the_handle_waits_for_it() {
        let mut t = Table::default();
        t.insert(1, entry(100));
        t.plan_watchdog(from_unix_secs(0), Duration::from_secs(3600));
        let (event, woke, first) = t.cancel(1, CancelReason::Requested, from_unix_secs(5));
        assert!(event.is_none() && first);
        assert!(woke, "a grace alarm wakes the watchdog");
        // Woken, the watchdog plans to wake at the grace's end (5).
        assert_eq!(t.plan_watchdog(from_unix_secs(0), Duration::from_secs(3600)), Duration::from_secs(5));
        let h: Handle = Arc::new(7_u8);
        let (event, woke) = t.attach(1, h, from_unix_secs(8));
        let (why, got) = event.expect("the early cancel");
        assert_eq!(why, CancelReason::Requested);
        assert_eq!(got.downcast_ref::<u8>(), Some(&7));
        assert!(woke, "the new grace period (8, replacing the old) wakes it too");
        assert_eq!(t.attached(), 1);
        let (event, woke, first) = t.cancel(1, CancelReason::DeadlineExceeded, from_unix_secs(9));
        assert!(event.is_none() && !woke && !first, "told once, one grace period");
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
        let (event, _, _) = t.cancel(1, CancelReason::Unresponsive, from_unix_secs(21));
        assert_eq!(event.map(|e| e.0), Some(CancelReason::Unresponsive), "the grace's end is heard");
    }
}
