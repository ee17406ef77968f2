//! Redis Cluster: key slots, and pipelines sent a command at a time.
//!
//! redis-rs's synchronous cluster connection sends a pipeline to the node of its first command
//! and turns any error reply in it into an error for the whole pipeline: the replies of the
//! commands that ran are lost, so a caller cannot tell which writes happened (a NOSCRIPT, a
//! broken queue's WRONGTYPE, a MOVED during a failover). On a cluster, the commands of a
//! pipeline are therefore sent one by one, each routed by redis-rs from its key, each keeping
//! its own reply or error; a transaction (MULTI ... EXEC) still goes whole to the node of its
//! first key, as ferroq's keep to one slot. A `WAIT` is sent to every slot's master written to
//! since the previous `WAIT` (each master confirms only its own writes) and answers with the
//! fewest replicas any of them confirmed.

use std::ops::Range;

use redis::cluster::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{ConnectionLike, RedisResult, ServerError, Value};

/// Number of hash slots in a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// The hash slot of `key`: CRC16 (XMODEM) of its hash tag (the text between the first `{` and the
/// next `}`, when not empty), else of the whole key, modulo 16384.
pub fn key_slot(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.iter().position(|&b| b == b'}').filter(|&len| len > 0).map(|len| &rest[..len])
        })
        .unwrap_or(key);
    crc16::State::<crc16::XMODEM>::calculate(tagged) % SLOTS
}

/// One command of a packed pipeline.
#[derive(Debug, PartialEq, Eq)]
struct Packed {
    /// Its bytes in the packed pipeline.
    span: Range<usize>,
    /// Its slot; `None` for a command without a key.
    slot: Option<u16>,
    /// `WAIT`'s arguments (replicas, timeout), when it is one.
    wait: Option<(Vec<u8>, Vec<u8>)>,
}

/// Reads `\r\n`-terminated decimal at `at`, returning it and the position after the terminator.
fn read_len(buf: &[u8], at: usize, marker: u8) -> Option<(usize, usize)> {
    if *buf.get(at)? != marker {
        return None;
    }
    let end = at + 1 + buf.get(at + 1..)?.windows(2).position(|w| w == b"\r\n")?;
    let n = std::str::from_utf8(&buf[at + 1..end]).ok()?.parse().ok()?;
    Some((n, end + 2))
}

/// Reads the command (a RESP array of bulk strings) at `at`: its arguments and the position after
/// it.
fn read_command(buf: &[u8], at: usize) -> Option<(Vec<&[u8]>, usize)> {
    let (argc, mut pos) = read_len(buf, at, b'*')?;
    let mut args: Vec<&[u8]> = Vec::with_capacity(argc.min(8));
    for _ in 0..argc {
        let (len, body) = read_len(buf, pos, b'$')?;
        let end = body.checked_add(len)?;
        args.push(buf.get(body..end)?);
        if buf.get(end..end + 2)? != b"\r\n" {
            return None;
        }
        pos = end + 2;
    }
    Some((args, pos))
}

/// The `EVAL` of one of ferroq's scripts that a packed `EVALSHA` calls: same keys and
/// arguments, so it goes to the same node. `None` for any other command.
fn as_eval(packed: &[u8]) -> Option<Vec<u8>> {
    let (args, end) = read_command(packed, 0)?;
    if end != packed.len() || !args.first()?.eq_ignore_ascii_case(b"EVALSHA") {
        return None;
    }
    let mut eval = redis::cmd("EVAL");
    eval.arg(super::scripts::source_of(args.get(1)?)?);
    for a in &args[2..] {
        eval.arg(*a);
    }
    Some(eval.get_packed_command())
}

/// Sends one packed command over a cluster connection. A script the command's node does not
/// have (NOSCRIPT: a new node, a promoted replica, `SCRIPT FLUSH`) is run again with `EVAL`,
/// which loads it on that node only: redis-rs's fallback, `SCRIPT LOAD`, goes to every master,
/// and fails while any one of them is down.
pub fn send(conn: &mut ClusterConnection, packed: &[u8]) -> RedisResult<Value> {
    match conn.req_packed_command(packed) {
        Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
            match as_eval(packed) {
                Some(eval) => conn.req_packed_command(&eval),
                None => Err(e),
            }
        }
        other => other,
    }
}

/// Splits a packed pipeline (RESP arrays of bulk strings, as redis-rs encodes commands) into its
/// commands; `None` when it is not one (it is then sent unsplit).
fn split(buf: &[u8]) -> Option<Vec<Packed>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let start = at;
        let (args, pos) = read_command(buf, at)?;
        let name = args.first()?.to_ascii_uppercase();
        let key = match name.as_slice() {
            b"EVAL" | b"EVALSHA" | b"EVAL_RO" | b"EVALSHA_RO" | b"FCALL" | b"FCALL_RO" => {
                let numkeys: usize = std::str::from_utf8(args.get(2)?).ok()?.parse().ok()?;
                if numkeys > 0 {
                    args.get(3).copied()
                } else {
                    None
                }
            }
            b"WAIT" | b"PING" | b"SCRIPT" | b"MULTI" | b"EXEC" | b"DISCARD" | b"UNWATCH" | b"ECHO" => None,
            // `MEMORY USAGE key`
            b"MEMORY" => args.get(2).copied(),
            _ => args.get(1).copied(),
        };
        let wait = match (name.as_slice(), args.get(1), args.get(2)) {
            (b"WAIT", Some(n), Some(t)) => Some((n.to_vec(), t.to_vec())),
            _ => None,
        };
        out.push(Packed { span: start..pos, slot: key.map(key_slot), wait });
        at = pos;
    }
    Some(out)
}

/// Whether a reply says the command went to the wrong node or its slot has no master now (the
/// command did not run, and the slot map is stale).
pub fn is_topology_reply(v: &Value) -> bool {
    use redis::ServerErrorKind as K;
    matches!(v, Value::ServerError(e)
        if matches!(e.kind(), Some(K::Moved | K::Ask | K::TryAgain | K::ClusterDown | K::MasterDown)))
}

/// A reply as a pipeline holds it: an error reply (NOSCRIPT, WRONGTYPE) stays one command's
/// value; a transport failure is the whole call's.
fn as_reply(r: RedisResult<Value>) -> RedisResult<Value> {
    match r {
        Ok(v) => Ok(v),
        Err(e) => ServerError::try_from(e).map(Value::ServerError),
    }
}

/// Sends a pipeline of `count` commands over a cluster connection a command at a time (see the
/// module's doc); the replies come back in the commands' order.
pub fn req_packed_commands(
    conn: &mut ClusterConnection,
    packed: &[u8],
    offset: usize,
    count: usize,
) -> RedisResult<Vec<Value>> {
    let cmds = match split(packed) {
        Some(cmds) if offset == 0 && cmds.len() == count => cmds,
        // A transaction runs on one node: redis-rs routes it by its first key.
        _ => return conn.req_packed_commands(packed, offset, count),
    };
    let mut out = Vec::with_capacity(count);
    let mut written: Vec<u16> = Vec::new();
    for c in &cmds {
        let Some((replicas, timeout)) = &c.wait else {
            out.push(as_reply(send(conn, &packed[c.span.clone()]))?);
            if let Some(slot) = c.slot.filter(|s| !written.contains(s)) {
                written.push(slot);
            }
            continue;
        };
        let mut wait = redis::cmd("WAIT");
        wait.arg(replicas.as_slice()).arg(timeout.as_slice());
        let mut fewest_seen: Option<Value> = None;
        for slot in written.drain(..) {
            let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::new(
                slot,
                SlotAddr::Master,
            )));
            fewest_seen = fewest(fewest_seen, Some(as_reply(conn.route_command(&wait, route))?));
        }
        out.push(match fewest_seen {
            Some(v) => v,
            // Nothing written before it: some node answers.
            None => as_reply(conn.req_command(&wait))?,
        });
    }
    Ok(out)
}

/// The smaller of two `WAIT` replies (an error wins: it must reach the caller).
fn fewest(a: Option<Value>, b: Option<Value>) -> Option<Value> {
    match (a, b) {
        (Some(Value::Int(x)), Some(Value::Int(y))) => Some(Value::Int(x.min(y))),
        (None, b) => b,
        (a, None) => a,
        // One of them is not a count (an error reply): keep it.
        (Some(Value::Int(_)), b) => b,
        (a, _) => a,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packed(cmds: &[&[&str]]) -> Vec<u8> {
        let mut pipe = redis::pipe();
        for c in cmds {
            let mut cmd = redis::cmd(c[0]);
            for a in &c[1..] {
                cmd.arg(*a);
            }
            pipe.add_command(cmd);
        }
        pipe.get_packed_pipeline()
    }

    #[test]
    fn an_evalsha_of_a_ferroq_script_becomes_its_eval() {
        let script = &*super::super::scripts::ENQUEUE;
        let mut inv = script.prepare_invoke();
        inv.key("{q}k").arg("a1");
        let mut evalsha = redis::cmd("EVALSHA");
        evalsha.arg(script.get_hash()).arg(1).arg("{q}k").arg("a1");
        let eval = as_eval(&evalsha.get_packed_command()).expect("an EVAL");
        let (args, _) = read_command(&eval, 0).expect("a command");
        let src = super::super::scripts::source_of(script.get_hash().as_bytes()).expect("ours");
        assert_eq!(args, vec![&b"EVAL"[..], src.as_bytes(), b"1", b"{q}k", b"a1"]);
        // Not ours, not an EVALSHA, or two commands: left alone.
        let foreign = packed(&[&["EVALSHA", "0000000000000000000000000000000000000000", "0"]]);
        assert_eq!(as_eval(&foreign), None);
        assert_eq!(as_eval(&packed(&[&["GET", "k"]])), None);
        let two = [evalsha.get_packed_command(), evalsha.get_packed_command()].concat();
        assert_eq!(as_eval(&two), None);
    }

    #[test]
    fn slots_follow_the_cluster_spec() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(key_slot(b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"asynq:{default}:pending"), key_slot(b"default"));
        // An empty tag is no tag; only the first `{` counts.
        assert_eq!(key_slot(b"foo{}{bar}"), crc16::State::<crc16::XMODEM>::calculate(b"foo{}{bar}") % SLOTS);
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
    }

    #[test]
    fn pipelines_split_into_their_commands_and_keys() {
        let buf = packed(&[
            &["EVALSHA", "abc", "2", "asynq:{a}:x", "asynq:{a}:y", "1"],
            &["GET", "k"],
            &["WAIT", "1", "10"],
            &["MEMORY", "USAGE", "{m}k"],
        ]);
        let cmds = split(&buf).expect("a pipeline");
        assert_eq!(cmds.len(), 4);
        assert_eq!(cmds[3].slot, Some(key_slot(b"m")));
        assert_eq!(cmds[0].slot, Some(key_slot(b"a")));
        assert_eq!(cmds[1].slot, Some(key_slot(b"k")));
        assert_eq!((cmds[2].slot, cmds[2].wait.clone()), (None, Some((b"1".to_vec(), b"10".to_vec()))));
        assert_eq!(cmds[3].span.end, buf.len());
        let zero_keys = packed(&[&["EVALSHA", "abc", "0", "arg"]]);
        assert_eq!(split(&zero_keys).expect("a pipeline")[0].slot, None);
        assert_eq!(split(b"*1\r\n$4\r\nPING"), None);
        assert_eq!(split(b"+OK\r\n"), None);
        assert_eq!(split(b"*1\r\n$9\r\nPING\r\n"), None);
    }

    #[test]
    fn redirects_in_a_pipeline_mark_the_slot_map_stale() {
        let moved = redis::parse_redis_value(b"-MOVED 3999 127.0.0.1:6381\r\n").expect("a reply");
        let other = redis::parse_redis_value(b"-WRONGTYPE x\r\n").expect("a reply");
        assert!(is_topology_reply(&moved));
        assert!(!is_topology_reply(&other) && !is_topology_reply(&Value::Int(1)));
    }

    #[test]
    fn the_fewest_confirmations_answer_for_a_spread_wait() {
        assert_eq!(fewest(None, Some(Value::Int(2))), Some(Value::Int(2)));
        assert_eq!(fewest(Some(Value::Int(2)), Some(Value::Int(1))), Some(Value::Int(1)));
        let err = redis::parse_redis_value(b"-ERR x\r\n").expect("an error reply");
        assert!(matches!(err, Value::ServerError(_)));
        assert!(matches!(fewest(Some(Value::Int(2)), Some(err.clone())), Some(Value::ServerError(_))));
        assert!(matches!(fewest(Some(err), Some(Value::Int(1))), Some(Value::ServerError(_))));
    }
}
