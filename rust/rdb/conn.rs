//! Connections from a URL (`redis://`, `rediss://`, `unix://`, with username, password and db;
//! `redis+cluster://` and `redis+sentinel://`, see [`target`](super::target)), reconnected with
//! capped exponential backoff. TCP and Unix sockets to one server use [`SpinConnection`]; TLS and
//! Pub/Sub use redis-rs's connection, and a Redis Cluster redis-rs's cluster connection. Through
//! Sentinel, every connection first asks the sentinels where the master is and checks the server
//! it reaches calls itself master, so a failover is followed at the next reconnection.

use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use redis::cluster::{ClusterClient, ClusterConnection};
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Connection, ConnectionLike, IntoConnectionInfo, RedisResult, Value};

use super::cluster;
use super::spin::SpinConnection;
use super::target::{self, Target};
use crate::error::{Error, Result};

/// A command connection: ours where we can poll the socket, redis-rs's for TLS and clusters.
pub enum Link {
    /// TCP or Unix socket.
    Spin(SpinConnection),
    /// TLS.
    Std(Connection),
    /// A Redis Cluster (pipelines are sent a command at a time by [`cluster`]).
    Cluster(Box<ClusterLink>),
}

/// A cluster connection, and whether a reply said its slot map is stale (a redirect or a
/// topology error answered one command of a pipeline: the call succeeded, but with retries off
/// redis-rs does not refresh the map itself, so the connection is dropped after the call).
pub struct ClusterLink {
    conn: ClusterConnection,
    stale: bool,
}

impl Link {
    /// Runs `cmd` on the node that owns `key`'s slot (for commands that name no key of their own,
    /// such as a `SCAN` of one queue's keys); on one server, just runs it.
    pub fn query_at_slot_of<T: redis::FromRedisValue>(
        &mut self,
        cmd: &redis::Cmd,
        key: &str,
    ) -> RedisResult<T> {
        match self {
            Link::Cluster(c) => {
                let route = Route::new(cluster::key_slot(key.as_bytes()), SlotAddr::Master);
                let v = c.conn.route_command(
                    cmd,
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                )?;
                redis::from_redis_value(v).map_err(Into::into)
            }
            other => cmd.query(other),
        }
    }

    /// Runs a command that names no key on one node: any node of a cluster (where redis-rs
    /// would send `PING` or `INFO` to every node, failing while any is down), the server
    /// otherwise. On a cluster a random master is asked first; when it cannot be reached (a
    /// master down), a node this connection already reached answers instead.
    pub fn query_one_node<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> RedisResult<T> {
        match self {
            Link::Cluster(c) => {
                let one = |c: &mut ClusterLink, to| c.conn.route_command(cmd, RoutingInfo::SingleNode(to));
                let v = match one(c, SingleNodeRoutingInfo::RandomPrimary) {
                    Err(e) if crate::error::is_transport(&e) => one(c, SingleNodeRoutingInfo::Random)?,
                    other => other?,
                };
                redis::from_redis_value(v).map_err(Into::into)
            }
            other => cmd.query(other),
        }
    }
}

impl ConnectionLike for Link {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        match self {
            Link::Spin(c) => c.req_packed_command(cmd),
            Link::Std(c) => c.req_packed_command(cmd),
            Link::Cluster(c) => cluster::send(&mut c.conn, cmd),
        }
    }

    fn req_packed_commands(&mut self, cmd: &[u8], offset: usize, count: usize) -> RedisResult<Vec<Value>> {
        match self {
            Link::Spin(c) => c.req_packed_commands(cmd, offset, count),
            Link::Std(c) => c.req_packed_commands(cmd, offset, count),
            Link::Cluster(c) => {
                let replies = cluster::req_packed_commands(&mut c.conn, cmd, offset, count)?;
                c.stale |= replies.iter().any(cluster::is_topology_reply);
                Ok(replies)
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Link::Spin(c) => c.get_db(),
            Link::Std(c) => c.get_db(),
            Link::Cluster(c) => c.conn.get_db(),
        }
    }

    fn check_connection(&mut self) -> bool {
        match self {
            Link::Spin(c) => c.check_connection(),
            Link::Std(c) => c.check_connection(),
            Link::Cluster(c) => !c.stale && c.conn.check_connection(),
        }
    }

    fn is_open(&self) -> bool {
        match self {
            Link::Spin(c) => c.is_open(),
            Link::Std(c) => c.is_open(),
            Link::Cluster(c) => !c.stale && c.conn.is_open(),
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

/// Where connections go.
#[derive(Clone)]
enum Topology {
    Single(redis::Client),
    /// The cluster, and a client per seed node for Pub/Sub (which any node serves: a `PUBLISH`
    /// reaches every node of a cluster).
    Cluster {
        client: ClusterClient,
        seeds: Vec<redis::Client>,
    },
    Sentinel(Arc<SentinelTarget>),
}

/// A service monitored by Sentinel, asked for its master at every connection (each lookup
/// with its own short-lived connection and timeouts, so one unreachable sentinel delays a
/// reconnection by at most its timeout, and lookups never wait on one another).
struct SentinelTarget {
    sentinels: Vec<redis::Client>,
    service: String,
    /// Builds a client for a master at `host:port` (the URL's credentials, db, TLS and CA).
    node: Box<MasterClient>,
}

/// Makes a client for the master at `host:port`.
type MasterClient = dyn Fn(&str, u16) -> RedisResult<redis::Client> + Send + Sync;

/// How long a sentinel may take to answer where the master is.
const SENTINEL_TIMEOUT: Duration = Duration::from_secs(2);

impl SentinelTarget {
    /// A client for the master the first answering sentinel names now.
    fn master(&self) -> RedisResult<redis::Client> {
        let mut last = None;
        for s in &self.sentinels {
            let asked = s.get_connection_with_timeout(SENTINEL_TIMEOUT).and_then(|mut c| {
                c.set_read_timeout(Some(SENTINEL_TIMEOUT))?;
                c.set_write_timeout(Some(SENTINEL_TIMEOUT))?;
                redis::cmd("SENTINEL")
                    .arg("get-master-addr-by-name")
                    .arg(&self.service)
                    .query::<Option<(String, u16)>>(&mut c)
            });
            match asked {
                Ok(Some((host, port))) => return (self.node)(&host, port),
                Ok(None) => {
                    last = Some(redis::RedisError::from((
                        redis::ErrorKind::Client,
                        "sentinel knows no such service",
                        self.service.clone(),
                    )))
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| redis::RedisError::from((redis::ErrorKind::Client, "no sentinels"))))
    }
}

/// Whether a fresh connection's server calls itself master (`ROLE`): a sentinel may still name
/// a master that was just demoted.
fn is_master(link: &mut Link) -> RedisResult<()> {
    let role: Vec<Value> = redis::cmd("ROLE").query(link)?;
    match role.first() {
        Some(Value::BulkString(r)) if r.as_slice() == b"master" => Ok(()),
        Some(Value::SimpleString(r)) if r == "master" => Ok(()),
        _ => Err(redis::RedisError::from((
            redis::ErrorKind::Client,
            "the server Sentinel named is not a master",
        ))),
    }
}

/// Validated connection settings.
#[derive(Clone)]
pub struct ConnConfig {
    topology: Topology,
    /// `host:port`, the socket path, or the nodes of a cluster or sentinels of a service, for
    /// error messages.
    addr: String,
    /// How long [`Conn::get`] keeps retrying before it reports the failure.
    pub reconnect_budget: Duration,
    /// Durable mode for the writes made through these settings (see [`super::Durability`]).
    pub durability: Option<super::Durability>,
}

impl std::fmt::Debug for ConnConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnConfig").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl ConnConfig {
    /// Parses a Redis URL. Accepts `redis://[user:pass@]host[:port][/db]`, `rediss://` for TLS,
    /// `unix:///path/to.sock[?db=N]`, `redis+cluster://[user:pass@]host:port[,host:port...]` and
    /// `redis+sentinel://[user:pass@]host:port[,host:port...]/service_name[/db]` (`rediss+` for
    /// TLS).
    pub fn from_url(url: &str) -> Result<Self> {
        Self::from_url_with_ca(url, None)
    }

    /// As [`ConnConfig::from_url`], trusting the PEM certificate(s) `ca_pem` instead of the
    /// system's roots for `rediss://` (a private CA, a self-signed server).
    pub fn from_url_with_ca(url: &str, ca_pem: Option<Vec<u8>>) -> Result<Self> {
        let target = target::parse(url)?;
        let tls = url.starts_with("rediss");
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
        let invalid =
            |e: redis::RedisError| Error::InvalidArgument(format!("invalid redis URL {url:?}: {e}"));
        let open = |u: &str| -> Result<redis::Client> {
            let info = u.into_connection_info().map_err(invalid)?;
            match &ca_pem {
                Some(pem) => redis::Client::build_with_tls(
                    info,
                    redis::TlsCertificates { client_tls: None, root_cert: Some(pem.clone()) },
                ),
                None => redis::Client::open(info),
            }
            .map_err(invalid)
        };
        let (topology, addr) = match target {
            Target::Single(u) => {
                let client = open(&u)?;
                let addr = client.get_connection_info().addr().to_string();
                (Topology::Single(client), addr)
            }
            Target::Cluster { nodes } => {
                let seeds = nodes.iter().map(|n| open(n)).collect::<Result<Vec<_>>>()?;
                // No retries inside redis-rs: it would send a command again after a dropped
                // connection (a second lease, a false ID conflict, a transaction without its
                // WATCH). A redirect or a topology error instead drops this connection (see
                // `Conn::run`), and the next one reads the new slot map; callers retry what is
                // safe to retry, as on one server.
                let mut b = ClusterClient::builder(nodes.iter().map(String::as_str))
                    .connection_timeout(CONNECT_TIMEOUT)
                    .response_timeout(IO_TIMEOUT)
                    .retries(0);
                if let Some(pem) = &ca_pem {
                    b = b.certs(redis::TlsCertificates { client_tls: None, root_cert: Some(pem.clone()) });
                }
                let client = b.build().map_err(invalid)?;
                let addr = format!(
                    "cluster {}",
                    seeds
                        .iter()
                        .map(|s| s.get_connection_info().addr().to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                );
                (Topology::Cluster { client, seeds }, addr)
            }
            Target::Sentinel { sentinels, service, node: (before, after) } => {
                let clients = sentinels.iter().map(|u| open(u)).collect::<Result<Vec<_>>>()?;
                // Checked now: a master URL built from these parts must parse.
                open(&format!("{before}127.0.0.1:6379{after}"))?;
                let ca = ca_pem.clone();
                let node = move |host: &str, port: u16| {
                    let host = if host.contains(':') { format!("[{host}]") } else { host.to_string() };
                    let info = format!("{before}{host}:{port}{after}").into_connection_info()?;
                    match &ca {
                        Some(pem) => redis::Client::build_with_tls(
                            info,
                            redis::TlsCertificates { client_tls: None, root_cert: Some(pem.clone()) },
                        ),
                        None => redis::Client::open(info),
                    }
                };
                let addr = format!("sentinel service {service:?} at {}", sentinels.join(","));
                let t = SentinelTarget { sentinels: clients, service, node: Box::new(node) };
                (Topology::Sentinel(Arc::new(t)), addr)
            }
        };
        Ok(Self { topology, addr, reconnect_budget: Duration::from_secs(5), durability: None })
    }

    /// As these settings, in durable mode (`None`: off).
    pub fn with_durability(mut self, durability: Option<super::Durability>) -> Self {
        self.durability = durability;
        self
    }

    /// Whether this is a Redis Cluster: calls must then keep to one slot each.
    pub fn is_cluster(&self) -> bool {
        matches!(self.topology, Topology::Cluster { .. })
    }

    /// Whether the master is found through Sentinel (a connection that finds its server demoted
    /// to a replica is dropped, and the next one asks the sentinels again).
    pub fn follows_master(&self) -> bool {
        matches!(self.topology, Topology::Sentinel(_))
    }

    /// `host:port` (or the socket path) of the server.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// A new lazily-connected connection.
    pub fn connect_lazy(&self) -> Conn {
        Conn { cfg: self.clone(), conn: None, generation: 0, redirected: false }
    }
}

/// One Redis connection that reconnects on demand.
pub struct Conn {
    cfg: ConnConfig,
    conn: Option<Link>,
    /// Counts the connections made: a `WAIT` confirms only its own connection's writes, so
    /// durable mode checks that the write and its `WAIT` shared one.
    generation: u64,
    /// Whether the last call was answered with a redirect or a topology error (MOVED, ASK,
    /// TRYAGAIN, CLUSTERDOWN, MASTERDOWN): it did not run, so even a call that must never run
    /// twice may be tried once more.
    redirected: bool,
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
            self.generation += 1;
        }
        match self.conn.as_mut() {
            Some(c) => Ok(c),
            None => Err(Error::Connection("no connection".into())),
        }
    }

    fn connect(&self) -> Result<Link> {
        self.with_backoff(|| match &self.cfg.topology {
            Topology::Single(client) => single(client),
            Topology::Cluster { client, .. } => {
                let c = client.get_connection()?;
                c.set_read_timeout(Some(IO_TIMEOUT))?;
                c.set_write_timeout(Some(IO_TIMEOUT))?;
                Ok(Link::Cluster(Box::new(ClusterLink { conn: c, stale: false })))
            }
            Topology::Sentinel(t) => {
                let mut link = single(&t.master()?)?;
                is_master(&mut link)?;
                Ok(link)
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

    /// A plain connection for Pub/Sub: to the server, the master, or the first seed node of a
    /// cluster that answers.
    fn try_connect(&self) -> redis::RedisResult<Connection> {
        match &self.cfg.topology {
            Topology::Single(client) => std_connection(client),
            Topology::Sentinel(t) => std_connection(&t.master()?),
            Topology::Cluster { seeds, .. } => {
                let mut last = None;
                for s in seeds {
                    match std_connection(s) {
                        Ok(c) => return Ok(c),
                        Err(e) => last = Some(e),
                    }
                }
                Err(last
                    .unwrap_or_else(|| redis::RedisError::from((redis::ErrorKind::Client, "no seed nodes"))))
            }
        }
    }

    /// Runs `f` on the connection; a transport failure drops the connection so the next call
    /// reconnects, and is reported as [`Error::Connection`] naming the server.
    pub fn run<T>(&mut self, f: impl FnOnce(&mut Link) -> Result<T>) -> Result<T> {
        let follows_master = self.cfg.follows_master();
        self.redirected = false;
        let conn = self.get()?;
        let out = f(conn);
        // A protocol error leaves the stream out of step with the replies: never reuse it. A
        // server Sentinel demoted answers READONLY: the master is elsewhere now.
        let demoted = follows_master && out.as_ref().is_err_and(is_readonly);
        // A stale slot map (the slot moved, its master failed over): the command did not run.
        let moved = matches!(conn, Link::Cluster(_)) && out.as_ref().is_err_and(is_topology_change);
        let broken =
            !conn.is_open() || demoted || moved || out.as_ref().is_err_and(|e| e.is_connection_error());
        if broken {
            self.conn = None;
        }
        self.redirected = moved;
        out.map_err(|e| match e {
            Error::Redis(r) if demoted => {
                Error::Connection(format!("redis at {} is no longer the master: {r}", self.cfg.addr))
            }
            Error::Redis(r) if moved => {
                Error::Connection(format!("redis {} changed its topology: {r}", self.cfg.addr))
            }
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

    /// Whether the last call was redirected (see the field): it did not run.
    pub fn redirected(&self) -> bool {
        self.redirected
    }

    /// Which connection is (or was last) in use: a new one has a higher number. `None` when
    /// there is none now (the next call connects afresh).
    pub fn generation(&self) -> Option<u64> {
        self.conn.as_ref().map(|_| self.generation)
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

/// A command connection to one server: ours for TCP and Unix sockets, redis-rs's for TLS.
fn single(client: &redis::Client) -> RedisResult<Link> {
    match SpinConnection::connect(client.get_connection_info(), CONNECT_TIMEOUT, IO_TIMEOUT)? {
        Some(c) => Ok(Link::Spin(c)),
        None => std_connection(client).map(Link::Std),
    }
}

fn std_connection(client: &redis::Client) -> RedisResult<Connection> {
    let c = client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
    c.set_read_timeout(Some(IO_TIMEOUT))?;
    c.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(c)
}

/// A cluster's answer that a command went to the wrong node or the slot has no master now; such
/// a command did not run.
fn is_topology_change(e: &Error) -> bool {
    use redis::ServerErrorKind as K;
    matches!(e, Error::Redis(r) if matches!(
        r.kind(),
        redis::ErrorKind::Server(K::Moved | K::Ask | K::TryAgain | K::ClusterDown | K::MasterDown)
    ))
}

fn is_readonly(e: &Error) -> bool {
    matches!(e, Error::Redis(r) if r.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly))
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
        let cluster = ConnConfig::from_url("redis+cluster://127.0.0.1:7000,127.0.0.1:7001").expect("valid");
        assert!(cluster.is_cluster() && !cluster.follows_master());
        assert_eq!(cluster.addr(), "cluster 127.0.0.1:7000,127.0.0.1:7001");
        let sentinel = ConnConfig::from_url("redis+sentinel://127.0.0.1:26379/mymaster/1").expect("valid");
        assert!(sentinel.follows_master() && !sentinel.is_cluster());
        assert!(ConnConfig::from_url("rediss+sentinel://127.0.0.1:26379/m").is_ok());
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
