//! Subscriber: listens on `asynq:cancel` and cancels the handler of any task ID published there
//! that runs in this process; listens on the wake channels of the served queues and wakes the
//! processor when a ferroq producer announces pending work (empty message), or tells the
//! forwarder when an announced scheduled task is due (the message is its process-at, Unix
//! seconds). Reconnects every 5 s while Redis is unreachable (the polls cover the gap).

use std::sync::Arc;
use std::time::Duration;

use super::{CancelReason, Component, Shared};

const RECONNECT: Duration = Duration::from_secs(5);
/// How often the blocking read returns to check for shutdown.
const POLL: Duration = Duration::from_millis(200);

/// The process-at announced for a scheduled task; `None` for an announcement of pending work
/// (empty) or anything else (treated as one: a spurious wake-up costs one dequeue call).
fn parse_due(payload: &[u8]) -> Option<i64> {
    std::str::from_utf8(payload).ok()?.trim().parse().ok()
}

pub(crate) struct Subscriber {
    sh: Arc<Shared>,
}

impl Subscriber {
    pub fn new(sh: Arc<Shared>) -> Self {
        Self { sh }
    }

    /// Listens until shutdown (Ok) or a connection failure (Err).
    fn exec(&mut self) -> crate::error::Result<()> {
        let mut conn = self.sh.rdb().pubsub_connection()?;
        let mut ps = conn.as_pubsub();
        let cancel = self.sh.keys.cancel_channel();
        ps.subscribe(&cancel)?;
        for q in self.sh.selector.names() {
            ps.subscribe(self.sh.keys.wake_channel(q))?;
        }
        // Work may have arrived, or been scheduled, while we were not listening: dequeue, and
        // have the forwarder re-read when the next scheduled task is due.
        self.sh.wake();
        self.sh.note_due(0);
        ps.set_read_timeout(Some(POLL))?;
        while !self.sh.stopping() {
            match ps.get_message() {
                Ok(m) if m.get_channel_name() != cancel => {
                    let payload: Vec<u8> = m.get_payload().unwrap_or_default();
                    match parse_due(&payload) {
                        Some(due) => self.sh.note_due(due),
                        None => self.sh.wake(),
                    }
                }
                Ok(m) => {
                    let id: String = match m.get_payload() {
                        Ok(id) => id,
                        Err(_) => continue,
                    };
                    if self.sh.cancel_task_id(&id, CancelReason::Requested) > 0 {
                        log::info!("cancelling task {id} on request");
                    }
                }
                Err(e) if e.is_timeout() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

impl Component for Subscriber {
    fn run(mut self) {
        while !self.sh.stopping() {
            match self.exec() {
                Ok(()) => break,
                Err(e) => {
                    log::warn!("cancel subscriber lost its connection: {e}");
                    if !self.sh.sleep(RECONNECT) {
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_due;

    #[test]
    fn wake_messages_are_pending_work_or_a_due_time() {
        assert_eq!(parse_due(b""), None);
        assert_eq!(parse_due(b"1764230000"), Some(1_764_230_000));
        assert_eq!(parse_due(b"soon"), None);
        assert_eq!(parse_due(b"\xff\xfe"), None);
    }
}
