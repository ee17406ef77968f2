//! The client's I/O thread: runs what asyncio callers submit, so that no event loop ever waits on
//! Redis, and batches it: every enqueue waiting when the thread looks goes out in one pipeline,
//! and the replies of a batch are delivered in one call (one wake-up of each loop).
//!
//! A caller submits a [`Job`] with an opaque context (the Python side's future); the thread
//! hands `(context, reply)` pairs to the `deliver` function it was started with. Jobs are
//! delivered in the order they were submitted.

use std::sync::Arc;
use std::time::SystemTime;

use crossbeam_channel::{Receiver, Sender};

use crate::client::{Client, NewTask};
use crate::error::{Error, Result};
use crate::info::TaskInfo;
use crate::options::TaskOptions;

/// Most jobs taken in one batch (one pipeline of enqueues).
pub const MAX_BATCH: usize = 512;

/// Work for the I/O thread.
pub enum Job {
    /// Enqueue one task.
    Enqueue(NewTask, Arc<TaskOptions>),
    /// Enqueue many tasks with the same options.
    EnqueueMany(Vec<NewTask>, Arc<TaskOptions>),
    /// Read one task back.
    TaskInfo(String, String),
    /// Round-trip a PING.
    Ping,
}

/// What a job gave.
pub enum Reply {
    /// The task enqueued or read.
    Info(Box<TaskInfo>),
    /// One result per task of an `EnqueueMany`.
    Many(Vec<Result<TaskInfo>>),
    /// PONG.
    Pong,
}

/// Delivers a batch of replies with their contexts.
pub type Deliver<C> = Box<dyn Fn(Vec<(C, Result<Reply>)>) + Send>;

/// A running I/O thread; it stops when the `Io` is dropped, after finishing what was submitted.
pub struct Io<C: Send + 'static> {
    tx: Sender<(Job, C)>,
}

impl<C: Send + 'static> Io<C> {
    /// Starts the thread for `client`.
    pub fn start(client: Arc<Client>, deliver: Deliver<C>) -> Result<Self> {
        let (tx, rx) = crossbeam_channel::unbounded::<(Job, C)>();
        std::thread::Builder::new()
            .name("ferroq-io".into())
            .spawn(move || run(&client, &rx, &deliver))
            .map_err(|e| Error::Thread(format!("ferroq-io: {e}")))?;
        Ok(Self { tx })
    }

    /// Submits `job`; its reply goes to `deliver` with `ctx`. Gives `ctx` back if the thread is
    /// gone.
    pub fn submit(&self, job: Job, ctx: C) -> std::result::Result<(), C> {
        self.tx.send((job, ctx)).map_err(|e| e.into_inner().1)
    }
}

fn run<C>(client: &Client, rx: &Receiver<(Job, C)>, deliver: &Deliver<C>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter().take(MAX_BATCH - 1));
        let (jobs, ctxs): (Vec<Job>, Vec<C>) = batch.into_iter().unzip();
        let n = jobs.len();
        // A panic must not end the thread every later caller waits on; its batch is failed.
        let replies = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| exec(client, jobs)));
        let replies = replies.unwrap_or_else(|p| {
            let why = crate::server::panic_text(&p);
            log::error!("an I/O batch panicked: {why}");
            (0..n).map(|_| Err(Error::Protocol(format!("the I/O thread panicked: {why}")))).collect()
        });
        let out: Vec<(C, Result<Reply>)> = ctxs.into_iter().zip(replies).collect();
        // Nor may one in delivering (the interpreter finalizing): the thread goes on.
        if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| deliver(out))) {
            log::error!("delivering an I/O batch panicked: {}", crate::server::panic_text(&p));
        }
    }
}

/// Runs a batch: its enqueues in one pipeline, the rest one by one; one reply per job, in order.
fn exec(client: &Client, jobs: Vec<Job>) -> Vec<Result<Reply>> {
    let now = SystemTime::now();
    let mut tasks: Vec<NewTask> = Vec::new();
    let mut opts: Vec<Arc<TaskOptions>> = Vec::new();
    let mut rest: Vec<Option<Job>> = Vec::with_capacity(jobs.len());
    for j in jobs {
        match j {
            Job::Enqueue(t, o) => {
                tasks.push(t);
                opts.push(o);
                rest.push(None);
            }
            other => rest.push(Some(other)),
        }
    }
    let n = tasks.len();
    let mut written = match n {
        0 => Vec::new(),
        _ => match client.enqueue_each(tasks.into_iter().zip(opts.iter().map(|o| o.as_ref())).collect(), now)
        {
            Ok(r) => r,
            Err(e) => (0..n).map(|_| Err(e.duplicate())).collect(),
        },
    }
    .into_iter();
    rest.into_iter()
        .map(|j| match j {
            None => written
                .next()
                .unwrap_or_else(|| Err(Error::protocol("missing pipeline reply")))
                .map(|i| Reply::Info(Box::new(i))),
            Some(Job::EnqueueMany(tasks, o)) => client.enqueue_many(tasks, &o, now).map(Reply::Many),
            Some(Job::TaskInfo(q, id)) => client.task_info(&q, &id, now).map(|i| Reply::Info(Box::new(i))),
            Some(Job::Ping) => client.run(|rdb| rdb.ping()).map(|()| Reply::Pong),
            Some(Job::Enqueue(..)) => Err(Error::protocol("enqueue job left in the batch")),
        })
        .collect()
}
