//! Forwarder: every `delayed_task_check_interval` moves due scheduled and retry tasks to pending.

use std::sync::Arc;

use super::{Component, RateLimitedLog, Shared};
use crate::rdb::Rdb;

pub(crate) struct Forwarder {
    sh: Arc<Shared>,
    rdb: Rdb,
    errors: RateLimitedLog,
}

impl Forwarder {
    pub fn new(sh: Arc<Shared>) -> Self {
        let rdb = sh.rdb();
        Self { sh, rdb, errors: RateLimitedLog::new(std::time::Duration::from_secs(3)) }
    }

    fn exec(&mut self) {
        let now = self.sh.now();
        for q in self.sh.selector.names() {
            match self.rdb.forward_if_ready(q, now) {
                Ok(0) => {}
                Ok(_) => self.sh.wake(),
                Err(e) => self.errors.error("forwarding scheduled tasks failed", &e),
            }
        }
    }
}

impl Component for Forwarder {
    fn run(mut self) {
        while self.sh.sleep(self.sh.cfg.delayed_task_check_interval) {
            self.exec();
        }
    }
}
