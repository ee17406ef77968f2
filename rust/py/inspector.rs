//! `NativeInspector` and the typed results it returns (`QueueInfo`, `DailyStats`, `GroupInfo`,
//! `ServerInfo`, `WorkerInfo`, `SchedulerEntry`, `SchedulerEnqueueEvent`): asynq's Inspector,
//! its reads and writes done by the core.

use std::time::SystemTime;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use super::info::{PyTaskInfo, PyTaskState};
use super::{py_instant, py_timedelta, Seconds, StrictInt};
use crate::error::Error;
use crate::info::TaskState;
use crate::message::from_timestamp;
use crate::proto::{ServerInfo, Timestamp, WorkerInfo};
use crate::rdb::inspect::{DailyStats, EnqueueEvent, GroupInfo, Page, QueueInfo, ServerRecord};
use crate::rdb::keys::DEFAULT_NAMESPACE;
use crate::rdb::{Action, ArchiveLimits, ConnConfig, Keys, Rdb, RdbPool};

/// A protobuf Timestamp as an aware datetime; Go's zero time (and none) as `None`.
fn instant_of(py: Python<'_>, t: Option<&Timestamp>) -> PyResult<Option<Py<PyAny>>> {
    match t {
        Some(t) if t.seconds > 0 => Ok(Some(py_instant(py, from_timestamp(t))?)),
        _ => Ok(None),
    }
}

/// Everything known of one queue (asynq's `QueueInfo`).
#[pyclass(module = "ferroq", name = "QueueInfo", frozen, get_all)]
pub struct PyQueueInfo {
    /// Queue name.
    queue: String,
    /// Approximate bytes its keys and tasks use (sampled as asynq does); `None` unless asked for.
    memory_usage: Option<i64>,
    /// How long the oldest pending task has waited (a `timedelta`; zero when none waits).
    latency: Py<PyAny>,
    /// Tasks in the queue in every state (completed and aggregating included, as asynq counts).
    size: i64,
    /// Groups with tasks waiting for aggregation.
    groups: i64,
    /// Tasks waiting to run.
    pending: i64,
    /// Tasks leased by a server.
    active: i64,
    /// Tasks waiting for their process-at.
    scheduled: i64,
    /// Failed tasks waiting for their next attempt.
    retry: i64,
    /// Archived tasks.
    archived: i64,
    /// Succeeded tasks kept for their retention.
    completed: i64,
    /// Tasks waiting in groups.
    aggregating: i64,
    /// Tasks processed today (UTC).
    processed: i64,
    /// Tasks failed today (UTC).
    failed: i64,
    /// Tasks processed in total.
    processed_total: i64,
    /// Tasks failed in total.
    failed_total: i64,
    /// Whether the queue is paused.
    paused: bool,
    /// When these numbers were read.
    timestamp: Py<PyAny>,
}

impl PyQueueInfo {
    fn new(py: Python<'_>, q: QueueInfo) -> PyResult<Self> {
        Ok(Self {
            latency: py_timedelta(py, q.latency)?,
            timestamp: py_instant(py, q.timestamp)?,
            queue: q.queue,
            memory_usage: q.memory_usage,
            size: q.size,
            groups: q.groups,
            pending: q.pending,
            active: q.active,
            scheduled: q.scheduled,
            retry: q.retry,
            archived: q.archived,
            completed: q.completed,
            aggregating: q.aggregating,
            processed: q.processed,
            failed: q.failed,
            processed_total: q.processed_total,
            failed_total: q.failed_total,
            paused: q.paused,
        })
    }
}

#[pymethods]
impl PyQueueInfo {
    fn __repr__(&self) -> String {
        format!(
            "QueueInfo(queue={:?}, size={}, pending={}, active={}, scheduled={}, retry={}, archived={}, \
             completed={}, aggregating={}, paused={})",
            self.queue,
            self.size,
            self.pending,
            self.active,
            self.scheduled,
            self.retry,
            self.archived,
            self.completed,
            self.aggregating,
            if self.paused { "True" } else { "False" }
        )
    }
}

/// Processed and failed counts of one queue on one UTC day (asynq's `DailyStats`).
#[pyclass(module = "ferroq", name = "DailyStats", frozen, get_all)]
pub struct PyDailyStats {
    /// Queue name.
    queue: String,
    /// The day (a `datetime.date`, UTC).
    date: Py<PyAny>,
    /// Tasks processed that day.
    processed: i64,
    /// Of those, failed.
    failed: i64,
}

#[pymethods]
impl PyDailyStats {
    fn __repr__(&self, py: Python<'_>) -> String {
        let date = self.date.bind(py).str().map(|s| s.to_string()).unwrap_or_default();
        format!(
            "DailyStats(queue={:?}, date={date}, processed={}, failed={})",
            self.queue, self.processed, self.failed
        )
    }
}

/// One group of a queue and how many tasks wait in it (asynq's `GroupInfo`).
#[pyclass(module = "ferroq", name = "GroupInfo", frozen, get_all, eq)]
#[derive(PartialEq)]
pub struct PyGroupInfo {
    /// Group name.
    group: String,
    /// Tasks waiting in it.
    size: i64,
}

#[pymethods]
impl PyGroupInfo {
    fn __repr__(&self) -> String {
        format!("GroupInfo(group={:?}, size={})", self.group, self.size)
    }
}

/// A task a live server is running (asynq's `WorkerInfo`).
#[pyclass(module = "ferroq", name = "WorkerInfo", frozen, get_all)]
pub struct PyWorkerInfo {
    /// Task ID.
    task_id: String,
    /// Task type.
    task_type: String,
    /// Task payload.
    task_payload: Py<PyBytes>,
    /// Queue name.
    queue: String,
    /// When its run started.
    started: Option<Py<PyAny>>,
    /// When its run must end.
    deadline: Option<Py<PyAny>>,
}

impl PyWorkerInfo {
    fn new(py: Python<'_>, w: WorkerInfo) -> PyResult<Self> {
        Ok(Self {
            started: instant_of(py, w.start_time.as_ref())?,
            deadline: instant_of(py, w.deadline.as_ref())?,
            task_payload: PyBytes::new(py, &w.task_payload).unbind(),
            task_id: w.task_id,
            task_type: w.task_type,
            queue: w.queue,
        })
    }
}

#[pymethods]
impl PyWorkerInfo {
    fn __repr__(&self) -> String {
        format!(
            "WorkerInfo(task_id={:?}, task_type={:?}, queue={:?})",
            self.task_id, self.task_type, self.queue
        )
    }
}

/// A live server, from its heartbeat (asynq's `ServerInfo`), with the tasks it runs.
#[pyclass(module = "ferroq", name = "ServerInfo", frozen, get_all)]
pub struct PyServerInfo {
    /// Server ID.
    id: String,
    /// Host name.
    host: String,
    /// Process ID.
    pid: i32,
    /// Most tasks it runs at once.
    concurrency: i32,
    /// Queue name → priority.
    queues: Py<PyDict>,
    /// Whether it drains higher priorities first.
    strict_priority: bool,
    /// When it started.
    started: Option<Py<PyAny>>,
    /// `active`, `stopped`, ... as the server published it.
    status: String,
    /// The tasks it is running, by start time.
    active_workers: Vec<Py<PyWorkerInfo>>,
}

impl PyServerInfo {
    fn new(py: Python<'_>, r: ServerRecord) -> PyResult<Self> {
        let ServerInfo {
            host, pid, server_id, concurrency, queues, strict_priority, status, start_time, ..
        } = r.info;
        let d = PyDict::new(py);
        for (q, p) in queues {
            d.set_item(q, p)?;
        }
        let workers = r
            .workers
            .into_iter()
            .map(|w| Py::new(py, PyWorkerInfo::new(py, w)?))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(Self {
            id: server_id,
            host,
            pid,
            concurrency,
            queues: d.unbind(),
            strict_priority,
            started: instant_of(py, start_time.as_ref())?,
            status,
            active_workers: workers,
        })
    }
}

#[pymethods]
impl PyServerInfo {
    fn __repr__(&self) -> String {
        format!(
            "ServerInfo(id={:?}, host={:?}, pid={}, status={:?}, active_workers={})",
            self.id,
            self.host,
            self.pid,
            self.status,
            self.active_workers.len()
        )
    }
}

/// One entry a live scheduler publishes (asynq's `SchedulerEntry`).
#[pyclass(module = "ferroq", name = "SchedulerEntry", frozen)]
pub struct PySchedulerEntry {
    pub(crate) inner: crate::proto::SchedulerEntry,
}

#[pymethods]
impl PySchedulerEntry {
    /// Entry ID.
    #[getter]
    fn id(&self) -> &str {
        &self.inner.id
    }

    /// Cron spec.
    #[getter]
    fn spec(&self) -> &str {
        &self.inner.spec
    }

    /// Type of the task it enqueues.
    #[getter]
    fn task_type(&self) -> &str {
        &self.inner.task_type
    }

    /// Payload of the task it enqueues.
    #[getter]
    fn task_payload<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.task_payload)
    }

    /// Its enqueue options in asynq's `Option.String()` forms.
    #[getter]
    fn enqueue_options(&self) -> Vec<String> {
        self.inner.enqueue_options.clone()
    }

    /// The queue it feeds (from its `Queue(...)` option; `default` without one).
    #[getter]
    fn queue(&self) -> String {
        self.inner
            .enqueue_options
            .iter()
            .find_map(|o| crate::goformat::parse_queue_option(o))
            .unwrap_or_else(|| crate::options::DEFAULT_QUEUE.to_string())
    }

    /// When it fires next.
    #[getter]
    fn next_enqueue_at(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        instant_of(py, self.inner.next_enqueue_time.as_ref())
    }

    /// When it last fired, if it has.
    #[getter]
    fn prev_enqueue_at(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        instant_of(py, self.inner.prev_enqueue_time.as_ref())
    }

    fn __repr__(&self) -> String {
        format!(
            "SchedulerEntry(id={:?}, spec={:?}, task_type={:?})",
            self.inner.id, self.inner.spec, self.inner.task_type
        )
    }
}

/// One enqueue a scheduler recorded for an entry (asynq's `SchedulerEnqueueEvent`).
#[pyclass(module = "ferroq", name = "SchedulerEnqueueEvent", frozen, get_all)]
pub struct PySchedulerEnqueueEvent {
    /// The task it enqueued.
    task_id: String,
    /// When.
    enqueued_at: Py<PyAny>,
}

#[pymethods]
impl PySchedulerEnqueueEvent {
    fn __repr__(&self) -> String {
        format!("SchedulerEnqueueEvent(task_id={:?})", self.task_id)
    }
}

/// The Rust side of `ferroq.Inspector`: every read and write of asynq's Inspector.
#[pyclass(module = "ferroq._native", frozen)]
pub struct NativeInspector {
    pool: RdbPool,
}

impl NativeInspector {
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut Rdb) -> crate::error::Result<T> + Send,
    ) -> PyResult<T> {
        Ok(py.detach(|| self.pool.with(f))?)
    }

    /// One bulk action on every task of `state` in `queue` (of `group` for aggregating ones).
    fn bulk(
        &self,
        py: Python<'_>,
        action: Action,
        queue: String,
        state: PyTaskState,
        group: Option<String>,
    ) -> PyResult<u64> {
        let state = TaskState::from(state);
        self.with(py, |r| r.act_on_all(action, &queue, state, group.as_deref(), SystemTime::now()))
    }
}

fn page(page: Option<StrictInt<i64>>, size: Option<StrictInt<i64>>) -> PyResult<Page> {
    let d = Page::default();
    Ok(Page::new(page.map_or(i64::from(d.page), |p| p.0), size.map_or(i64::from(d.size), |s| s.0))?)
}

fn infos(tasks: Vec<crate::info::TaskInfo>) -> Vec<PyTaskInfo> {
    tasks.into_iter().map(|inner| PyTaskInfo { inner }).collect()
}

#[pymethods]
impl NativeInspector {
    #[new]
    #[pyo3(signature = (url, namespace = None, tls_ca = None, archive_max_size = None, archive_max_age = None))]
    fn new(
        url: &str,
        namespace: Option<&str>,
        tls_ca: Option<Vec<u8>>,
        archive_max_size: Option<StrictInt<i64>>,
        archive_max_age: Option<Seconds>,
    ) -> PyResult<Self> {
        // No limits given: archiving by hand does not trim (the servers trim with theirs); one
        // given: the other is asynq's.
        let limits = if archive_max_size.is_none() && archive_max_age.is_none() {
            None
        } else {
            let d = ArchiveLimits::default();
            let l = ArchiveLimits {
                max_size: archive_max_size.map_or(d.max_size, |n| n.0),
                max_age: match archive_max_age {
                    None => d.max_age,
                    Some(s) => super::duration("archive_max_age", s.0)?,
                },
            };
            l.validate()?;
            Some(l)
        };
        let cfg = ConnConfig::from_url_with_ca(url, tls_ca)?;
        let keys = Keys::new(namespace.unwrap_or(DEFAULT_NAMESPACE));
        Ok(Self { pool: RdbPool::retrying(cfg, keys, 4, limits) })
    }

    /// Every queue name, sorted.
    fn queues(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        self.with(py, |r| r.queue_names())
    }

    /// `QueueInfo` of each named queue (every queue when `queues` is None).
    #[pyo3(signature = (queues = None, memory = false))]
    fn queue_infos(
        &self,
        py: Python<'_>,
        queues: Option<Vec<String>>,
        memory: bool,
    ) -> PyResult<Vec<PyQueueInfo>> {
        let all = self.with(py, |r| {
            // Every queue: one deleted since the names were read is left out, not an error.
            let (names, skip) = match queues {
                Some(q) => (q, false),
                None => (r.queue_names()?, true),
            };
            r.queue_infos(&names, memory, skip, SystemTime::now())
        })?;
        all.into_iter().map(|q| PyQueueInfo::new(py, q)).collect()
    }

    /// Daily processed/failed counts of a queue, newest first.
    fn history(&self, py: Python<'_>, queue: String, days: StrictInt<i64>) -> PyResult<Vec<PyDailyStats>> {
        let days = u32::try_from(days.0)
            .map_err(|_| Error::invalid(format!("days must be 1 or more, got {}", days.0)))?;
        let rows = self.with(py, |r| r.history(&queue, days, SystemTime::now()))?;
        let date = py.import("datetime")?.getattr("date")?;
        rows.into_iter()
            .map(|DailyStats { queue, date: d, processed, failed }| {
                Ok(PyDailyStats {
                    queue,
                    date: date.call_method1("fromisoformat", (d,))?.unbind(),
                    processed,
                    failed,
                })
            })
            .collect()
    }

    /// The groups of a queue with their sizes.
    fn groups(&self, py: Python<'_>, queue: String) -> PyResult<Vec<PyGroupInfo>> {
        let rows = self.with(py, |r| r.groups(&queue))?;
        Ok(rows.into_iter().map(|GroupInfo { group, size }| PyGroupInfo { group, size }).collect())
    }

    /// Deletes a queue and all its keys.
    #[pyo3(signature = (queue, force = false))]
    fn delete_queue(&self, py: Python<'_>, queue: String, force: bool) -> PyResult<()> {
        self.with(py, |r| r.delete_queue(&queue, force))
    }

    /// Pauses a queue.
    fn pause_queue(&self, py: Python<'_>, queue: String) -> PyResult<()> {
        self.with(py, |r| r.pause_queue(&queue, SystemTime::now()))
    }

    /// Resumes a paused queue.
    fn unpause_queue(&self, py: Python<'_>, queue: String) -> PyResult<()> {
        self.with(py, |r| r.unpause_queue(&queue))
    }

    /// One task, in any state.
    fn task_info(&self, py: Python<'_>, queue: String, task_id: String) -> PyResult<PyTaskInfo> {
        let inner = self.with(py, |r| r.task_info(&queue, &task_id, SystemTime::now()))?;
        Ok(PyTaskInfo { inner })
    }

    /// A page of the tasks of a queue in one state (of one group, for aggregating tasks).
    #[pyo3(signature = (queue, state, page = None, page_size = None, group = None))]
    fn list_tasks(
        &self,
        py: Python<'_>,
        queue: String,
        state: PyTaskState,
        page: Option<StrictInt<i64>>,
        page_size: Option<StrictInt<i64>>,
        group: Option<String>,
    ) -> PyResult<Vec<PyTaskInfo>> {
        let p = self::page(page, page_size)?;
        let state = TaskState::from(state);
        let tasks = self.with(py, |r| r.list_tasks(&queue, state, group.as_deref(), p, SystemTime::now()))?;
        Ok(infos(tasks))
    }

    /// Moves a task to pending.
    fn run_task(&self, py: Python<'_>, queue: String, task_id: String) -> PyResult<()> {
        self.with(py, |r| r.act_on_task(Action::Run, &queue, &task_id, SystemTime::now()))
    }

    /// Archives a task.
    fn archive_task(&self, py: Python<'_>, queue: String, task_id: String) -> PyResult<()> {
        self.with(py, |r| r.act_on_task(Action::Archive, &queue, &task_id, SystemTime::now()))
    }

    /// Deletes a task.
    fn delete_task(&self, py: Python<'_>, queue: String, task_id: String) -> PyResult<()> {
        self.with(py, |r| r.act_on_task(Action::Delete, &queue, &task_id, SystemTime::now()))
    }

    /// Moves every task in a state to pending; returns how many.
    #[pyo3(signature = (queue, state, group = None))]
    fn run_all(
        &self,
        py: Python<'_>,
        queue: String,
        state: PyTaskState,
        group: Option<String>,
    ) -> PyResult<u64> {
        self.bulk(py, Action::Run, queue, state, group)
    }

    /// Archives every task in a state; returns how many.
    #[pyo3(signature = (queue, state, group = None))]
    fn archive_all(
        &self,
        py: Python<'_>,
        queue: String,
        state: PyTaskState,
        group: Option<String>,
    ) -> PyResult<u64> {
        self.bulk(py, Action::Archive, queue, state, group)
    }

    /// Deletes every task in a state; returns how many.
    #[pyo3(signature = (queue, state, group = None))]
    fn delete_all(
        &self,
        py: Python<'_>,
        queue: String,
        state: PyTaskState,
        group: Option<String>,
    ) -> PyResult<u64> {
        self.bulk(py, Action::Delete, queue, state, group)
    }

    /// Replaces a scheduled task's payload; returns the task as it now is.
    fn update_task_payload(
        &self,
        py: Python<'_>,
        queue: String,
        task_id: String,
        payload: Vec<u8>,
    ) -> PyResult<PyTaskInfo> {
        let inner = self.with(py, |r| r.update_task_payload(&queue, &task_id, payload, SystemTime::now()))?;
        Ok(PyTaskInfo { inner })
    }

    /// Asks the server running a task to cancel it; returns how many servers heard it.
    fn cancel_processing(&self, py: Python<'_>, task_id: String) -> PyResult<i64> {
        self.with(py, |r| r.cancel_processing(&task_id))
    }

    /// Live servers with the tasks they run.
    fn servers(&self, py: Python<'_>) -> PyResult<Vec<PyServerInfo>> {
        let rows = self.with(py, |r| r.servers(SystemTime::now()))?;
        rows.into_iter().map(|s| PyServerInfo::new(py, s)).collect()
    }

    /// Entries of live schedulers.
    fn scheduler_entries(&self, py: Python<'_>) -> PyResult<Vec<PySchedulerEntry>> {
        let rows = self.with(py, |r| r.scheduler_entries(SystemTime::now()))?;
        Ok(rows.into_iter().map(|inner| PySchedulerEntry { inner }).collect())
    }

    /// A page of the enqueues a scheduler recorded for an entry, newest first.
    #[pyo3(signature = (entry_id, page = None, page_size = None))]
    fn scheduler_enqueue_events(
        &self,
        py: Python<'_>,
        entry_id: String,
        page: Option<StrictInt<i64>>,
        page_size: Option<StrictInt<i64>>,
    ) -> PyResult<Vec<PySchedulerEnqueueEvent>> {
        let p = self::page(page, page_size)?;
        let rows = self.with(py, |r| r.scheduler_enqueue_events(&entry_id, p))?;
        rows.into_iter()
            .map(|EnqueueEvent { task_id, enqueued_at }| {
                Ok(PySchedulerEnqueueEvent { task_id, enqueued_at: py_instant(py, enqueued_at)? })
            })
            .collect()
    }

    /// The page size listings use when none is given.
    #[classattr]
    fn default_page_size() -> u32 {
        Page::default().size
    }

    /// The largest page a listing returns.
    #[classattr]
    fn max_page_size() -> u32 {
        crate::rdb::inspect::MAX_PAGE_SIZE
    }

    /// The states whose tasks can be acted on all at once: `{"run": [...], "archive": [...],
    /// "delete": [...]}` (asynq's `RunAll*`, `ArchiveAll*`, `DeleteAll*`).
    #[staticmethod]
    fn bulk_states(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
        let d = PyDict::new(py);
        for (name, action) in [("run", Action::Run), ("archive", Action::Archive), ("delete", Action::Delete)]
        {
            let states = action
                .bulk_states()
                .iter()
                .map(|s| PyTaskState::object(py, *s))
                .collect::<PyResult<Vec<_>>>()?;
            d.set_item(name, states)?;
        }
        Ok(d)
    }

    /// The server's version, uptime, clients and memory, by name, in a stable order.
    fn server_summary<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let rows = self.with(py, |r| r.server_summary())?;
        let d = PyDict::new(py);
        for (k, v) in rows {
            d.set_item(k, v)?;
        }
        Ok(d)
    }

    /// Sends PING.
    fn ping(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |r| r.ping())
    }

    /// Closes idle connections.
    fn close(&self) {
        self.pool.clear();
    }
}
