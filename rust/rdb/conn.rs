//! Connections from a URL (`redis://`, `rediss://`, `unix://`, with username, password and db),
//! reconnected with capped exponential backoff. TCP and Unix sockets use [`SpinConnection`]; TLS
//! and Pub/Sub use redis-rs's connection.

use std::sync::Once;
use std::time::{Duration, Instant};

use redis::{Connection, ConnectionLike, IntoConnectionInfo, RedisResult, Value};

use super::spin::SpinConnection;
use crate::error::{Error, Result};

/// A command connection: ours where we can poll the socket, redis-rs's for TLS.
pub enum Link {
    /// TCP or Unix socket.
    Spin(SpinConnection),
    /// TLS.
    Std(Connection),
}

impl ConnectionLike for Link {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        match self {
            Link::Spin(c) => c.req_packed_command(cmd),
            Link::Std(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands(&mut self, cmd: &[u8], offset: usize, count: usize) -> RedisResult<Vec<Value>> {
        match self {
            Link::Spin(c) => c.req_packed_commands(cmd, offset, count),
            Link::Std(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Link::Spin(c) => c.get_db(),
            Link::Std(c) => c.get_db(),
        }
    }

    fn check_connection(&mut self) -> bool {
        match self {
            Link::Spin(c) => c.check_connection(),
            Link::Std(c) => c.check_connection(),
        }
    }

    fn is_open(&self) -> bool {
        match self {
            Link::Spin(c) => c.is_open(),
            Link::Std(c) => c.is_open(),
        }
    }
}

/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Replies slower than this mean the connection is dead; scripts here are O(batch), never slow.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

static TLS_PROVIDER: Once = Once::new();

/// Validated connection settings.
#[derive(Clone, Debug)]
pub struct ConnConfig {
    client: redis::Client,
    /// `host:port` or the socket path, for error messages.
    addr: String,
    /// How long [`Conn::get`] keeps retrying before it reports the failure.
    pub reconnect_budget: Duration,
}

impl ConnConfig {
    /// Parses a Redis URL. Accepts `redis://[user:pass@]host[:port][/db]`, `rediss://` for TLS
    /// and `unix:///path/to.sock[?db=N]`.
    pub fn from_url(url: &str) -> Result<Self> {
        Self::from_url_with_ca(url, None)
    }

    /// As [`ConnConfig::from_url`], trusting the PEM certificate(s) `ca_pem` instead of the
    /// system's roots for `rediss://` (a private CA, a self-signed server).
    pub fn from_url_with_ca(url: &str, ca_pem: Option<Vec<u8>>) -> Result<Self> {
        let tls = url.starts_with("rediss://");
        if ca_pem.is_some() && !tls {
            return Err(Error::InvalidArgument("a TLS CA certificate needs a rediss:// URL".into()));
        }
        if let Some(pem) = &ca_pem {
            if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
                return Err(Error::InvalidArgument("the TLS CA file holds no PEM certificate".into()));
            }
        }
        if tls {
            TLS_PROVIDER.call_once(|| {
                // Fails only when another provider is installed already, which serves as well.
                let _ = rustls::crypto::ring::default_provider().install_default();
            });
        }
        let info = url
            .into_connection_info()
            .map_err(|e| Error::InvalidArgument(format!("invalid redis URL {url:?}: {e}")))?;
        let client = match ca_pem {
            Some(pem) => redis::Client::build_with_tls(
                info,
                redis::TlsCertificates { client_tls: None, root_cert: Some(pem) },
            ),
            None => redis::Client::open(info),
        }
        .map_err(|e| Error::InvalidArgument(format!("invalid redis URL {url:?}: {e}")))?;
        let addr = client.get_connection_info().addr().to_string();
        Ok(Self { client, addr, reconnect_budget: Duration::from_secs(5) })
    }

    /// `host:port` (or the socket path) of the server.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// A new lazily-connected connection.
    pub fn connect_lazy(&self) -> Conn {
        Conn { cfg: self.clone(), conn: None }
    }
}

/// One Redis connection that reconnects on demand.
pub struct Conn {
    cfg: ConnConfig,
    conn: Option<Link>,
}

impl Conn {
    /// What this connection connects to.
    pub fn config(&self) -> &ConnConfig {
        &self.cfg
    }
}

impl Conn {
    /// The live connection, connecting (with backoff, within the reconnect budget) if needed.
    pub fn get(&mut self) -> Result<&mut Link> {
        if self.conn.is_none() {
            self.conn = Some(self.connect()?);
        }
        match self.conn.as_mut() {
            Some(c) => Ok(c),
            None => Err(Error::Connection("no connection".into())),
        }
    }

    fn connect(&self) -> Result<Link> {
        self.with_backoff(|| {
            let info = self.cfg.client.get_connection_info();
            match SpinConnection::connect(info, CONNECT_TIMEOUT, IO_TIMEOUT)? {
                Some(c) => Ok(Link::Spin(c)),
                None => self.try_connect().map(Link::Std),
            }
        })
    }

    fn with_backoff<C>(&self, mut attempt: impl FnMut() -> redis::RedisResult<C>) -> Result<C> {
        let started = Instant::now();
        let mut delay = BACKOFF_MIN;
        loop {
            match attempt() {
                Ok(c) => return Ok(c),
                Err(e) => {
                    if started.elapsed() + delay > self.cfg.reconnect_budget {
                        return Err(Error::Connection(format!(
                            "cannot connect to redis at {}: {e}",
                            self.cfg.addr
                        )));
                    }
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    fn try_connect(&self) -> redis::RedisResult<Connection> {
        let c = self.cfg.client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        c.set_read_timeout(Some(IO_TIMEOUT))?;
        c.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(c)
    }

    /// Runs `f` on the connection; a transport failure drops the connection so the next call
    /// reconnects, and is reported as [`Error::Connection`] naming the server.
    pub fn run<T>(&mut self, f: impl FnOnce(&mut Link) -> Result<T>) -> Result<T> {
        let conn = self.get()?;
        let out = f(conn);
        // A protocol error leaves the stream out of step with the replies: never reuse it.
        let broken = !conn.is_open() || out.as_ref().is_err_and(|e| e.is_connection_error());
        if broken {
            self.conn = None;
        }
        out.map_err(|e| match e {
            Error::Redis(r) if crate::error::is_transport(&r) => {
                Error::Connection(format!("connection to redis at {} lost: {r}", self.cfg.addr))
            }
            e => e,
        })
    }

    /// A dedicated connection for Pub/Sub (it cannot be shared with commands).
    pub fn pubsub_connection(&self) -> Result<Connection> {
        self.with_backoff(|| self.try_connect())
    }

    /// Whether a connection is open (it may still have died since its last use).
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Drops the current connection.
    pub fn reset(&mut self) {
        self.conn = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_validated() {
        assert!(ConnConfig::from_url("redis://127.0.0.1:6379/0").is_ok());
        assert!(ConnConfig::from_url("redis://user:secret@127.0.0.1:6379/3").is_ok());
        assert!(ConnConfig::from_url("unix:///tmp/redis.sock").is_ok());
        assert!(ConnConfig::from_url("rediss://127.0.0.1:6380").is_ok());
        assert!(matches!(ConnConfig::from_url("http://x"), Err(Error::InvalidArgument(_))));
        assert!(matches!(ConnConfig::from_url("not a url"), Err(Error::InvalidArgument(_))));
        let pem = b"not a certificate".to_vec();
        assert!(matches!(
            ConnConfig::from_url_with_ca("redis://127.0.0.1", Some(pem.clone())),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            ConnConfig::from_url_with_ca("rediss://127.0.0.1", Some(pem)),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn refused_connection_is_a_connection_error() {
        let mut cfg = ConnConfig::from_url("redis://127.0.0.1:1").expect("valid url");
        cfg.reconnect_budget = Duration::from_millis(120);
        let mut c = cfg.connect_lazy();
        let err = c.get().err().expect("port 1 refuses");
        assert!(err.is_connection_error(), "{err}");
        assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
    }
}
