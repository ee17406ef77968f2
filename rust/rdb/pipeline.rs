//! Batched script calls: one pipeline of EVALSHAs, with scripts loaded only where Redis answers
//! NOSCRIPT, and the replies spread back over the requests they answer for.

use std::collections::BTreeMap;

use redis::{Script, ScriptInvocation, Value};

use super::Rdb;
use crate::error::{Error, Result};

/// A script call: the script (so a pipeline can load it once) and its invocation.
pub type Call = (&'static Script, ScriptInvocation<'static>);

/// A call of `script`, its keys and arguments still to add.
pub fn call(script: &'static Script) -> Call {
    (script, script.prepare_invoke())
}

/// The calls of a pipeline and, for each, the requests it answers for (`owners[k]`).
pub type Plan = (Vec<Call>, Vec<Vec<usize>>);

/// Plans one pipeline for `n` requests: those for which `batch_queue` names a queue go in one
/// batch call per queue and chunk of `chunk` (built by `batch`), the others one call each (built
/// by `single`).
pub fn plan_calls<'a>(
    n: usize,
    chunk: usize,
    batch_queue: impl Fn(usize) -> Option<&'a str>,
    mut single: impl FnMut(usize) -> Call,
    mut batch: impl FnMut(&str, &[usize]) -> Call,
) -> Plan {
    let mut invs = Vec::new();
    let mut owners = Vec::new();
    let mut batches: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for i in 0..n {
        match batch_queue(i) {
            Some(q) => batches.entry(q).or_default().push(i),
            None => {
                invs.push(single(i));
                owners.push(vec![i]);
            }
        }
    }
    for (q, idx) in batches {
        for part in idx.chunks(chunk) {
            invs.push(batch(q, part));
            owners.push(part.to_vec());
        }
    }
    (invs, owners)
}

/// Spreads the replies of a pipeline over the `n` requests they answer for. `owners[k]` lists the
/// requests of call `k`: a batch call answers with an array of per-request codes, which `each`
/// decodes; a call for one request with that request's reply, which `one` decodes. An error
/// reply reaches every request of its call with its kind kept (see [`Error::duplicate`]).
pub fn spread_replies(
    n: usize,
    owners: &[Vec<usize>],
    replies: Vec<Result<Value>>,
    what: &str,
    one: impl Fn(Value) -> Result<()>,
    each: impl Fn(Value) -> Result<()>,
) -> Vec<Result<()>> {
    let mut out: Vec<Option<Result<()>>> = (0..n).map(|_| None).collect();
    for (idx, reply) in owners.iter().zip(replies) {
        match (idx.as_slice(), reply) {
            ([i], Ok(Value::Array(mut codes))) if codes.len() == 1 => out[*i] = codes.pop().map(&each),
            ([i], reply) => out[*i] = Some(reply.and_then(&one)),
            (_, Ok(Value::Array(codes))) if codes.len() == idx.len() => {
                for (&i, c) in idx.iter().zip(codes) {
                    out[i] = Some(each(c));
                }
            }
            (_, Ok(other)) => {
                for &i in idx {
                    out[i] = Some(Err(Error::protocol(format!("{what} returned {other:?}"))));
                }
            }
            (_, Err(e)) => {
                for &i in idx {
                    out[i] = Some(Err(e.duplicate()));
                }
            }
        }
    }
    out.into_iter().map(|r| r.unwrap_or_else(|| Err(Error::protocol(format!("{what}: no reply"))))).collect()
}

fn is_noscript(r: &redis::RedisResult<Value>) -> bool {
    matches!(r, Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript))
}

impl Rdb {
    /// Sends script invocations in one pipeline (EVALSHA; scripts are loaded and their calls
    /// re-run only where Redis answered NOSCRIPT); returns one result per invocation.
    pub(crate) fn run_pipeline(&mut self, invs: &[Call]) -> Result<Vec<Result<Value>>> {
        if invs.is_empty() {
            return Ok(Vec::new());
        }
        let all: Vec<usize> = (0..invs.len()).collect();
        let mut replies = self.pipeline_of(invs, &all, false)?;
        let first_on = self.generation();
        // NOSCRIPT means that call did not run (a new server, SCRIPT FLUSH): load the scripts
        // and run exactly those calls again. Loading up front would send every script's source
        // with every pipeline.
        let missing: Vec<usize> = (0..replies.len()).filter(|&i| is_noscript(&replies[i])).collect();
        if !missing.is_empty() {
            let again = self.pipeline_of(invs, &missing, true)?;
            for (i, reply) in missing.into_iter().zip(again) {
                replies[i] = reply;
            }
        }
        // The writes were on one connection only if the re-run did not reconnect: durable mode
        // cannot confirm them otherwise.
        self.pipeline_on = if self.generation() == first_on { first_on } else { None };
        Ok(replies.into_iter().map(|r| r.map_err(Error::from)).collect())
    }

    /// One pipeline of the calls `which` (indexes into `invs`), one reply per call; with `load`,
    /// each distinct script is loaded first (its reply dropped).
    fn pipeline_of(
        &mut self,
        invs: &[Call],
        which: &[usize],
        load: bool,
    ) -> Result<Vec<redis::RedisResult<Value>>> {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        let mut loaded: Vec<&'static Script> = Vec::new();
        let mut skip = Vec::new();
        for &i in which {
            let (script, inv) = &invs[i];
            if load && !loaded.iter().any(|l| std::ptr::eq(*l, *script)) {
                loaded.push(script);
                pipe.load_script(script);
                skip.push(true);
            }
            pipe.invoke_script(inv);
            skip.push(false);
        }
        let replies: Vec<redis::RedisResult<Value>> = self.run(|c| Ok(pipe.query(c)?))?;
        Ok(replies.into_iter().zip(skip).filter(|(_, s)| !s).map(|(r, _)| r).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(code: i64) -> Result<Value> {
        Ok(Value::Int(code))
    }

    fn code(v: Value) -> Result<()> {
        super::super::outcome_code(v, "test")
    }

    #[test]
    fn plans_batch_by_queue_and_chunk() {
        let queues = ["a", "b", "a", "a", "-"];
        let (invs, owners) = plan_calls(
            queues.len(),
            2,
            |i| (queues[i] != "-").then_some(queues[i]),
            |_| call(&super::super::scripts::DONE),
            |_, _| call(&super::super::scripts::DONE_BATCH),
        );
        assert_eq!(invs.len(), 4);
        assert_eq!(owners, vec![vec![4], vec![0, 2], vec![3], vec![1]]);
    }

    #[test]
    fn replies_keep_their_kind_for_every_request_of_a_call() {
        let owners = vec![vec![0], vec![1, 2], vec![3, 4]];
        let dropped = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        let replies =
            vec![ok(0), Ok(Value::Array(vec![Value::Int(1), Value::Int(0)])), Err(Error::from(dropped))];
        let out = spread_replies(5, &owners, replies, "test", code, code);
        assert!(matches!(out[0], Err(Error::NotFound)));
        assert!(out[1].is_ok());
        assert!(matches!(out[2], Err(Error::NotFound)));
        assert!(out[3].as_ref().is_err_and(Error::is_connection_error));
        assert!(out[4].as_ref().is_err_and(Error::is_connection_error));
    }

    #[test]
    fn a_missing_reply_is_a_protocol_error() {
        let out = spread_replies(2, &[vec![0, 1]], vec![Ok(Value::Array(vec![]))], "x", code, code);
        assert!(out.iter().all(|r| matches!(r, Err(Error::Protocol(_)))));
    }
}
