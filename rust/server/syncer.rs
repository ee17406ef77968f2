//! Syncer: outcome writes that failed (Redis unreachable) are retried every `syncer_interval` until
//! the task's lease ends; after that the recoverer owns the task. One last attempt at shutdown.

use std::sync::Arc;
use std::time::SystemTime;

use super::{Component, Shared};
use crate::error::Error;
use crate::message::TaskMessage;
use crate::rdb::{Finish, Rdb};

/// An outcome waiting to be written.
#[derive(Debug)]
pub(crate) struct Pending {
    pub msg: TaskMessage,
    pub finish: Finish,
    pub deadline: SystemTime,
}

pub(crate) struct Syncer {
    sh: Arc<Shared>,
    rdb: Rdb,
    queue: Vec<Pending>,
}

impl Syncer {
    pub fn new(sh: Arc<Shared>) -> Self {
        let rdb = sh.rdb();
        Self { sh, rdb, queue: Vec::new() }
    }

    fn exec(&mut self) {
        self.queue.extend(self.sh.sync_rx.try_iter());
        let now = self.sh.now();
        let items = std::mem::take(&mut self.queue);
        for p in items {
            if now > p.deadline {
                log::warn!("gave up writing the outcome of task {}: its lease ended", p.msg.id);
                continue;
            }
            match self.rdb.finish(&p.msg, &p.finish, now) {
                Ok(()) | Err(Error::NotFound) => {}
                Err(_) => self.queue.push(p),
            }
        }
    }
}

impl Component for Syncer {
    fn run(mut self) {
        while self.sh.sleep_late(self.sh.cfg.syncer_interval) {
            self.exec();
        }
        self.exec();
    }
}
