//! Encoding and decoding of asynq's protobuf messages. Decoding never panics: bytes from Redis are
//! untrusted and every failure becomes [`Error::Decode`].

use std::time::{Duration, SystemTime};

use prost::Message;

use crate::clock::unix_nanos;
use crate::error::{Error, Result};
use crate::options::DEFAULT_TIMEOUT;
pub use crate::proto::{ServerInfo, TaskMessage, Timestamp, WorkerInfo};

/// Go's zero `time.Time` as a protobuf Timestamp (0001-01-01T00:00:00Z). asynq's tools print "N/A"
/// for it; an absent Timestamp would read as 1970 instead.
pub const GO_ZERO_TIME: Timestamp = Timestamp { seconds: -62_135_596_800, nanos: 0 };

/// Decodes a `TaskMessage`, rejecting messages without an ID, type or queue: the server derives
/// every key from them.
pub fn decode_task(bytes: &[u8]) -> Result<TaskMessage> {
    let msg = TaskMessage::decode(bytes).map_err(|e| Error::Decode(e.to_string()))?;
    if msg.id.is_empty() {
        return Err(Error::Decode("task message has no id".into()));
    }
    if msg.r#type.trim().is_empty() {
        return Err(Error::Decode("task message has no type".into()));
    }
    if msg.queue.trim().is_empty() {
        return Err(Error::Decode("task message has no queue".into()));
    }
    Ok(msg)
}

/// Encodes a `TaskMessage`.
pub fn encode_task(msg: &TaskMessage) -> Vec<u8> {
    msg.encode_to_vec()
}

/// Decodes a `ServerInfo`.
pub fn decode_server_info(bytes: &[u8]) -> Result<ServerInfo> {
    ServerInfo::decode(bytes).map_err(|e| Error::Decode(e.to_string()))
}

/// Decodes a `WorkerInfo`.
pub fn decode_worker_info(bytes: &[u8]) -> Result<WorkerInfo> {
    WorkerInfo::decode(bytes).map_err(|e| Error::Decode(e.to_string()))
}

/// A Timestamp for `t`.
pub fn timestamp(t: SystemTime) -> Timestamp {
    let nanos = unix_nanos(t);
    Timestamp { seconds: nanos.div_euclid(1_000_000_000), nanos: nanos.rem_euclid(1_000_000_000) as i32 }
}

/// The instant of a Timestamp (Go's zero time and anything before 1970 read as the epoch).
pub fn from_timestamp(t: &Timestamp) -> SystemTime {
    let nanos = t.seconds.saturating_mul(1_000_000_000).saturating_add(i64::from(t.nanos));
    crate::clock::from_unix_nanos(nanos.max(0))
}

/// Longest timeout or deadline distance honoured; larger values from Redis are clamped so time
/// arithmetic cannot overflow.
const MAX_SPAN: Duration = Duration::from_secs(100 * 365 * 86_400);

/// The deadline a handler runs under, per asynq's processor: the earlier of now+timeout (at full
/// precision) and the deadline; either alone; neither → now + 30 min.
pub fn effective_deadline(msg: &TaskMessage, now: SystemTime) -> SystemTime {
    let after = |d: Duration| now.checked_add(d.min(MAX_SPAN)).unwrap_or(now);
    let by_timeout = (msg.timeout > 0).then(|| after(Duration::from_secs(msg.timeout.unsigned_abs())));
    let by_deadline = (msg.deadline > 0).then(|| {
        let latest = after(MAX_SPAN);
        let d = crate::clock::from_unix_secs(msg.deadline);
        if d > latest {
            latest
        } else {
            d
        }
    });
    match (by_timeout, by_deadline) {
        (Some(t), Some(d)) => t.min(d),
        (Some(t), None) => t,
        (None, Some(d)) => d,
        (None, None) => after(DEFAULT_TIMEOUT),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> TaskMessage {
        TaskMessage {
            r#type: "email:send".into(),
            payload: b"{\"to\":1}".to_vec(),
            headers: [("trace".to_string(), "abc".to_string())].into_iter().collect(),
            id: "0b4e5a4c-0000-4000-8000-000000000001".into(),
            queue: "default".into(),
            retry: 25,
            timeout: 1800,
            ..Default::default()
        }
    }

    #[test]
    fn round_trip() {
        let m = sample();
        assert_eq!(decode_task(&encode_task(&m)).ok(), Some(m));
    }

    #[test]
    fn field_numbers_match_asynq() {
        // type=1 (0x0a), payload=2 (0x12), id=3 (0x1a), queue=4 (0x22), retry=5 (0x28).
        let m = TaskMessage {
            r#type: "t".into(),
            payload: vec![1],
            id: "i".into(),
            queue: "q".into(),
            retry: 3,
            ..Default::default()
        };
        assert_eq!(encode_task(&m), vec![0x0a, 1, b't', 0x12, 1, 1, 0x1a, 1, b'i', 0x22, 1, b'q', 0x28, 3]);
        let h = TaskMessage {
            headers: [("k".to_string(), "v".to_string())].into_iter().collect(),
            ..Default::default()
        };
        // headers=15, wire type 2 → tag byte 0x7a; entry key=1, value=2.
        assert_eq!(encode_task(&h), vec![0x7a, 6, 0x0a, 1, b'k', 0x12, 1, b'v']);
    }

    #[test]
    fn rejects_garbage_and_incomplete_messages() {
        assert!(matches!(decode_task(b"\xff\xff\xff"), Err(Error::Decode(_))));
        assert!(matches!(decode_task(b""), Err(Error::Decode(_))));
        let mut m = sample();
        m.queue = " ".into();
        assert!(decode_task(&encode_task(&m)).is_err());
    }

    #[test]
    fn deadlines_follow_asynq() {
        let now = crate::clock::from_unix_nanos(1_000_500_000_000);
        let at = |m: &TaskMessage| crate::clock::unix_nanos(effective_deadline(m, now));
        let mut m = sample();
        m.timeout = 10;
        m.deadline = 0;
        assert_eq!(at(&m), 1_010_500_000_000, "timeout keeps the sub-second part");
        m.deadline = 1_005;
        assert_eq!(at(&m), 1_005_000_000_000);
        m.timeout = 0;
        assert_eq!(at(&m), 1_005_000_000_000);
        m.deadline = 0;
        assert_eq!(at(&m), 2_800_500_000_000);
        m.timeout = i64::MAX;
        assert!(effective_deadline(&m, now) > now, "huge values are clamped, not overflowed");
        m.deadline = i64::MAX;
        assert!(effective_deadline(&m, now) > now);
    }

    #[test]
    fn timestamps_split_negative_times_like_go() {
        let t = crate::clock::from_unix_nanos(-1_500_000_000);
        assert_eq!(timestamp(t), Timestamp { seconds: -2, nanos: 500_000_000 });
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_task(&bytes);
            let _ = decode_server_info(&bytes);
            let _ = decode_worker_info(&bytes);
        }

        #[test]
        fn messages_round_trip(
            ty in "[a-z:]{1,20}",
            payload in proptest::collection::vec(any::<u8>(), 0..256),
            id in "[a-f0-9-]{1,36}",
            queue in "[a-z]{1,10}",
            retry in any::<i32>(),
            retried in any::<i32>(),
            timeout in any::<i64>(),
            deadline in any::<i64>(),
            headers in proptest::collection::btree_map(".{0,8}", ".{0,8}", 0..4),
            err in ".{0,40}",
        ) {
            let m = TaskMessage {
                r#type: ty, payload, headers, id, queue, retry, retried,
                error_msg: err, timeout, deadline, ..Default::default()
            };
            prop_assert_eq!(decode_task(&encode_task(&m)).ok(), Some(m));
        }
    }
}
