//! A Redis connection that waits for a reply by polling the socket for a few microseconds before
//! it sleeps.
//!
//! A thread that blocks in `read` pays for being put to sleep and woken by the reply; on a
//! virtual machine the idle vCPU halts and needs an interrupt to wake. On the 2-core VM this
//! project is measured on, that is ~40 µs of a ~65 µs loopback round trip. Every call the core
//! makes is a request with a prompt reply (scripts are O(batch), nothing blocks in Redis), so the
//! socket is non-blocking and a read first retries for up to `spin` before it falls back to a
//! blocking read with the I/O timeout.
//!
//! Polling pays only when the reply comes soon: a script over a batch of tasks, or a Redis across
//! a network, takes longer than any wake-up, and polling for it would burn the CPU that Redis or
//! another worker process on the same machine needs (bench/RESULTS.md, "Polling only for prompt
//! replies"). So each connection keeps a moving average of how long its replies took, and polls
//! only while that average is under half the budget; the blocking reads measure it too, so a
//! connection whose replies turn prompt again goes back to polling.
//!
//! Commands, pipelines and transactions go through [`redis::ConnectionLike`], so scripts and
//! pipelines from redis-rs work unchanged; replies are parsed by redis-rs's own parser. TCP and
//! Unix sockets only: TLS connections stay with redis-rs (their reads decrypt in user space).

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use redis::{ConnectionAddr, ConnectionInfo, ConnectionLike, RedisError, RedisResult, Value};

/// How long a read polls before it blocks, unless `FERROQ_SPIN_US` says otherwise (0: never).
pub const SPIN: Duration = Duration::from_micros(200);

/// The spin budget of new connections: `FERROQ_SPIN_US` (microseconds, read once), else
/// [`SPIN`], or zero on a single-CPU machine, where polling would only keep a local Redis from
/// running.
pub fn spin_budget() -> Duration {
    static BUDGET: std::sync::LazyLock<Duration> = std::sync::LazyLock::new(|| {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let default = if cpus > 1 { SPIN } else { Duration::ZERO };
        std::env::var("FERROQ_SPIN_US")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(default, Duration::from_micros)
    });
    *BUDGET
}

enum Stream {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(UnixStream),
}

impl Stream {
    fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nonblocking(on),
            #[cfg(unix)]
            Stream::Unix(s) => s.set_nonblocking(on),
        }
    }

    fn set_timeouts(&self, io: Duration) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => {
                s.set_read_timeout(Some(io))?;
                s.set_write_timeout(Some(io))
            }
            #[cfg(unix)]
            Stream::Unix(s) => {
                s.set_read_timeout(Some(io))?;
                s.set_write_timeout(Some(io))
            }
        }
    }

    fn read_some(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            #[cfg(unix)]
            Stream::Unix(s) => s.read(buf),
        }
    }

    fn write_some(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            #[cfg(unix)]
            Stream::Unix(s) => s.write(buf),
        }
    }

    /// One blocking attempt (bounded by the socket's timeouts), then back to non-blocking.
    fn blocking<T>(&mut self, f: impl FnOnce(&mut Self) -> io::Result<T>) -> io::Result<T> {
        self.set_nonblocking(false)?;
        let out = f(self);
        self.set_nonblocking(true)?;
        out
    }
}

/// How much of each new reply time the moving average of a connection's reply times takes in:
/// 1/8, so the average follows a change of pace within a few replies, and one slow reply (capped
/// by [`SpinConnection::took`]) stops the polling for a handful of requests at most.
const AVERAGE_WEIGHT: u32 = 8;

/// `Read` over the non-blocking stream: polls for up to `spin`, then blocks.
struct SpinReader<'a> {
    stream: &'a mut Stream,
    spin: Duration,
}

impl Read for SpinReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let start = Instant::now();
        loop {
            match self.stream.read_some(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if start.elapsed() < self.spin {
                        // Yield rather than spin in place: if Redis (or the thread that will
                        // answer) waits for this CPU, it runs now.
                        std::thread::yield_now();
                        continue;
                    }
                    // A signal may interrupt the blocking read too (sockets with a timeout
                    // are not restarted): retry it, the stream has lost nothing.
                    loop {
                        match self.stream.blocking(|s| s.read_some(buf)) {
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                            other => return other,
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }
}

/// A Redis connection over TCP or a Unix socket whose reads spin briefly before blocking, while
/// its replies come promptly.
pub struct SpinConnection {
    stream: Stream,
    parser: redis::Parser,
    db: i64,
    open: bool,
    /// The most a read polls ([`spin_budget`]).
    budget: Duration,
    /// The moving average of the time from a request sent to its (first) reply read.
    replies_take: Duration,
}

impl SpinConnection {
    /// Connects, authenticates and selects the database of `info`; `None` for a TLS address.
    pub fn connect(
        info: &ConnectionInfo,
        connect_timeout: Duration,
        io_timeout: Duration,
    ) -> RedisResult<Option<Self>> {
        let stream = match info.addr() {
            ConnectionAddr::Tcp(host, port) => {
                let mut last = None;
                let mut found = None;
                for addr in (host.as_str(), *port).to_socket_addrs()? {
                    match TcpStream::connect_timeout(&addr, connect_timeout) {
                        Ok(s) => {
                            found = Some(s);
                            break;
                        }
                        Err(e) => last = Some(e),
                    }
                }
                let s = match (found, last) {
                    (Some(s), _) => s,
                    (None, Some(e)) => return Err(e.into()),
                    (None, None) => {
                        return Err(io::Error::new(io::ErrorKind::NotFound, "host has no address").into())
                    }
                };
                s.set_nodelay(true)?;
                Stream::Tcp(s)
            }
            #[cfg(unix)]
            ConnectionAddr::Unix(path) => Stream::Unix(UnixStream::connect(path)?),
            _ => return Ok(None),
        };
        stream.set_timeouts(io_timeout)?;
        stream.set_nonblocking(true)?;
        let settings = info.redis_settings();
        let mut conn = SpinConnection {
            stream,
            parser: redis::Parser::new(),
            db: settings.db(),
            open: true,
            budget: spin_budget(),
            replies_take: Duration::ZERO,
        };
        if let Some(password) = settings.password() {
            let mut auth = redis::cmd("AUTH");
            if let Some(user) = settings.username() {
                auth.arg(user);
            }
            auth.arg(password);
            auth.query::<()>(&mut conn)?;
        }
        if settings.db() != 0 {
            redis::cmd("SELECT").arg(settings.db()).query::<()>(&mut conn)?;
        }
        Ok(Some(conn))
    }

    fn send(&mut self, bytes: &[u8]) -> RedisResult<()> {
        let mut rest = bytes;
        while !rest.is_empty() {
            match self.stream.write_some(rest) {
                Ok(0) => return Err(self.fail(io::ErrorKind::WriteZero.into())),
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // The send buffer is full (a large pipeline): wait for room.
                    match self.stream.blocking(|s| s.write_some(rest)) {
                        Ok(0) => return Err(self.fail(io::ErrorKind::WriteZero.into())),
                        Ok(n) => rest = &rest[n..],
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(self.fail(e)),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.fail(e)),
            }
        }
        Ok(())
    }

    /// How long the next read polls: the budget while replies come in under half of it, else
    /// nothing.
    fn spin(&self) -> Duration {
        if self.replies_take * 2 < self.budget {
            self.budget
        } else {
            Duration::ZERO
        }
    }

    /// Takes the time a request's reply took into the moving average. A reply slower than four
    /// budgets counts as four: Redis stalled once (a slow command, a fork) must not keep the
    /// polling off for long after it answers promptly again.
    fn took(&mut self, reply: Duration) {
        let reply = reply.min(self.budget * 4);
        self.replies_take = (self.replies_take * (AVERAGE_WEIGHT - 1) + reply) / AVERAGE_WEIGHT;
    }

    /// The first reply to the request just sent, timed for the moving average.
    fn recv_first(&mut self) -> RedisResult<Value> {
        let sent = Instant::now();
        let out = self.recv();
        self.took(sent.elapsed());
        out
    }

    fn recv(&mut self) -> RedisResult<Value> {
        let spin = self.spin();
        let reader = SpinReader { stream: &mut self.stream, spin };
        let out = self.parser.parse_value(reader);
        if let Err(e) = &out {
            // After an I/O or protocol error the stream position is unknown: never reuse it.
            if e.is_io_error() || e.is_unrecoverable_error() {
                self.open = false;
            }
        }
        out
    }

    fn fail(&mut self, e: io::Error) -> RedisError {
        self.open = false;
        e.into()
    }
}

impl ConnectionLike for SpinConnection {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        self.send(cmd)?;
        self.recv_first()
    }

    /// `count` replies after skipping `offset` (redis-rs's contract): a transaction is sent as
    /// MULTI, the commands, EXEC with `offset` = commands + 1 and `count` = 1, and an error reply
    /// while queueing aborts it.
    fn req_packed_commands(&mut self, cmd: &[u8], offset: usize, count: usize) -> RedisResult<Vec<Value>> {
        self.send(cmd)?;
        let mut out = Vec::with_capacity(count);
        let mut first_err: Option<RedisError> = None;
        let mut queue_error: Option<RedisError> = None;
        for i in 0..offset + count {
            // The later replies are on their way right behind the first: only its wait says
            // how long this connection's replies take.
            let reply = if i == 0 { self.recv_first() } else { self.recv() };
            match reply {
                Ok(Value::ServerError(e)) if i < offset => {
                    queue_error.get_or_insert_with(|| e.into());
                }
                Ok(v) if i >= offset => out.push(v),
                Ok(_) => {}
                // An I/O error leaves nothing to read; a parse error is fatal for the stream.
                Err(e) if !self.open => return Err(e),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Some(e) = queue_error {
            return Err(e);
        }
        first_err.map_or(Ok(out), Err)
    }

    fn get_db(&self) -> i64 {
        self.db
    }

    fn check_connection(&mut self) -> bool {
        redis::cmd("PING").query::<String>(self).is_ok()
    }

    fn is_open(&self) -> bool {
        self.open
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// A connection to a scripted peer: the test writes the server's replies itself.
    fn pair(spin: Duration) -> (SpinConnection, UnixStream) {
        let (ours, theirs) = UnixStream::pair().expect("socketpair");
        let stream = Stream::Unix(ours);
        stream.set_timeouts(Duration::from_secs(5)).expect("timeouts");
        stream.set_nonblocking(true).expect("non-blocking");
        let c = SpinConnection {
            stream,
            parser: redis::Parser::new(),
            db: 0,
            open: true,
            budget: spin,
            replies_take: Duration::ZERO,
        };
        (c, theirs)
    }

    fn reply_later(
        mut peer: UnixStream,
        after: Duration,
        bytes: &'static [u8],
    ) -> std::thread::JoinHandle<UnixStream> {
        std::thread::spawn(move || {
            std::thread::sleep(after);
            peer.write_all(bytes).expect("write reply");
            peer
        })
    }

    #[test]
    fn a_prompt_reply_is_read_while_spinning() {
        let (mut c, peer) = pair(Duration::from_secs(1));
        let t = reply_later(peer, Duration::from_millis(1), b"+PONG\r\n");
        assert_eq!(
            c.req_packed_command(b"*1\r\n$4\r\nPING\r\n").ok(),
            Some(Value::SimpleString("PONG".into()))
        );
        t.join().expect("peer");
    }

    #[test]
    fn a_slow_reply_is_read_by_the_blocking_fallback() {
        let (mut c, peer) = pair(Duration::from_micros(10));
        let t = reply_later(peer, Duration::from_millis(50), b":42\r\n");
        assert_eq!(c.req_packed_command(b"*1\r\n$4\r\nPING\r\n").ok(), Some(Value::Int(42)));
        // Back to non-blocking after the fallback: a read with nothing to read does not block.
        let mut buf = [0u8; 1];
        let err = c.stream.read_some(&mut buf).expect_err("nothing to read");
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        t.join().expect("peer");
    }

    #[test]
    fn slow_replies_stop_the_polling_and_prompt_ones_bring_it_back() {
        let (mut c, mut peer) = pair(SPIN);
        assert_eq!(c.spin(), SPIN, "a new connection polls");
        // A reply well past the budget: the connection stops polling for the next.
        let t = reply_later(peer, SPIN * 10, b"+OK\r\n");
        assert!(c.req_packed_command(b"").is_ok());
        peer = t.join().expect("peer");
        assert_eq!(c.spin(), Duration::ZERO, "after a reply that took {:?}", SPIN * 10);
        // Replies already waiting when asked for: the average falls and the polling comes back.
        for _ in 0..AVERAGE_WEIGHT * 4 {
            peer.write_all(b"+OK\r\n").expect("write reply");
            assert!(c.req_packed_command(b"").is_ok());
            if c.spin() == SPIN {
                return;
            }
        }
        panic!("still not polling: replies average {:?}", c.replies_take);
    }

    #[test]
    fn only_the_first_reply_of_a_pipeline_is_timed() {
        let (mut c, peer) = pair(SPIN);
        c.replies_take = SPIN / 4;
        let t = reply_later(peer, Duration::ZERO, b"+OK\r\n+OK\r\n+OK\r\n+OK\r\n+OK\r\n+OK\r\n");
        let _peer = t.join().expect("peer");
        assert_eq!(c.req_packed_commands(b"", 0, 6).map(|r| r.len()).ok(), Some(6));
        // One reply, read at once, moved the average down by at most 1/8 of it; six would have
        // moved it by more than half.
        assert!(c.replies_take >= SPIN / 4 * (AVERAGE_WEIGHT - 1) / AVERAGE_WEIGHT, "{:?}", c.replies_take);
    }

    #[test]
    fn no_budget_never_polls() {
        let (c, _peer) = pair(Duration::ZERO);
        assert_eq!(c.spin(), Duration::ZERO);
    }

    #[test]
    fn pipelines_return_each_reply_including_errors() {
        let (mut c, peer) = pair(SPIN);
        let t = reply_later(peer, Duration::ZERO, b"+OK\r\n-ERR boom\r\n:7\r\n");
        let replies = c.req_packed_commands(b"", 0, 3).expect("replies");
        assert_eq!(replies.len(), 3);
        assert!(matches!(replies[1], Value::ServerError(_)));
        assert!(c.is_open());
        t.join().expect("peer");
    }

    #[test]
    fn an_error_while_queueing_aborts_the_transaction() {
        let (mut c, peer) = pair(SPIN);
        // MULTI, two queued commands (one refused), EXEC.
        let t =
            reply_later(peer, Duration::ZERO, b"+OK\r\n+QUEUED\r\n-ERR unknown command\r\n-EXECABORT\r\n");
        assert!(c.req_packed_commands(b"", 3, 1).is_err());
        assert!(c.is_open(), "every reply was read: the connection is still usable");
        t.join().expect("peer");
    }

    #[test]
    fn a_closed_peer_marks_the_connection_dead() {
        let (mut c, peer) = pair(SPIN);
        drop(peer);
        assert!(c.req_packed_command(b"*1\r\n$4\r\nPING\r\n").is_err());
        assert!(!c.is_open());
    }
}
