//! Subscriber: listens on `asynq:cancel` and cancels the handler of any task ID published there
//! that runs in this process; listens on the wake channels of the served queues and wakes the
//! processor when a ferroq producer announces work. Reconnects every 5 s while Redis is
//! unreachable (the processor's poll covers the gap).

use std::sync::Arc;
use std::time::Duration;

use super::{CancelReason, Component, Shared};

const RECONNECT: Duration = Duration::from_secs(5);
/// How often the blocking read returns to check for shutdown.
const POLL: Duration = Duration::from_millis(200);

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
        // Work may have arrived while we were not listening.
        self.sh.wake();
        ps.set_read_timeout(Some(POLL))?;
        while !self.sh.stopping() {
            match ps.get_message() {
                Ok(m) if m.get_channel_name() != cancel => self.sh.wake(),
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
