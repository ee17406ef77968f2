//! Connections shared by threads that each need one at a time (the Python client).

use parking_lot::Mutex;

use super::{ArchiveLimits, ConnConfig, Keys, Rdb};
use crate::error::Result;

/// A pool of [`Rdb`]s, by default without the stale-connection retry (see
/// [`Rdb::without_retry`]).
pub struct RdbPool {
    cfg: ConnConfig,
    keys: Keys,
    idle: Mutex<Vec<Rdb>>,
    max_idle: usize,
    retrying: bool,
    archive: Option<ArchiveLimits>,
}

impl RdbPool {
    /// A pool keeping up to `max_idle` idle connections.
    pub fn new(cfg: ConnConfig, keys: Keys, max_idle: usize) -> Self {
        Self {
            cfg,
            keys,
            idle: Mutex::new(Vec::new()),
            max_idle,
            retrying: false,
            archive: Some(ArchiveLimits::default()),
        }
    }

    /// A pool whose reads retry once on a fresh connection when a reused one died (for tools:
    /// their writes are run once anyway), trimming the archives they write to `archive` (none:
    /// not trimming them).
    pub fn retrying(cfg: ConnConfig, keys: Keys, max_idle: usize, archive: Option<ArchiveLimits>) -> Self {
        Self { retrying: true, archive, ..Self::new(cfg, keys, max_idle) }
    }

    /// The key builder.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Takes a connection (idle or new), runs `f`, and keeps the connection if it is still open.
    pub fn with<T>(&self, f: impl FnOnce(&mut Rdb) -> Result<T>) -> Result<T> {
        let popped = self.idle.lock().pop();
        let mut rdb = popped.unwrap_or_else(|| {
            let rdb = Rdb::new(&self.cfg, self.keys.clone()).with_archive_limits(self.archive);
            if self.retrying {
                rdb
            } else {
                rdb.without_retry()
            }
        });
        let out = f(&mut rdb);
        if rdb.conn.is_connected() {
            let mut idle = self.idle.lock();
            if idle.len() < self.max_idle {
                idle.push(rdb);
            }
        }
        out
    }

    /// Closes every idle connection.
    pub fn clear(&self) {
        self.idle.lock().clear();
    }
}
