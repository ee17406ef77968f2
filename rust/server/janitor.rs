//! Janitor: every `janitor_interval` deletes completed tasks whose retention ended.

use std::sync::Arc;

use super::{Component, RateLimitedLog, Shared};
use crate::rdb::Rdb;

pub(crate) struct Janitor {
    sh: Arc<Shared>,
    rdb: Rdb,
    errors: RateLimitedLog,
}

impl Janitor {
    pub fn new(sh: Arc<Shared>) -> Self {
        let rdb = sh.rdb();
        Self { sh, rdb, errors: RateLimitedLog::new(std::time::Duration::from_secs(3)) }
    }

    fn exec(&mut self) {
        let batch = self.sh.cfg.janitor_batch_size.max(1);
        for q in self.sh.selector.names() {
            loop {
                match self.rdb.delete_expired_completed(q, self.sh.now(), batch) {
                    Ok(n) if n >= batch => continue,
                    Ok(_) => break,
                    Err(e) => {
                        self.errors.error("deleting expired completed tasks failed", &e);
                        break;
                    }
                }
            }
        }
    }
}

impl Component for Janitor {
    fn run(mut self) {
        while self.sh.sleep(self.sh.cfg.janitor_interval) {
            self.exec();
        }
    }
}
