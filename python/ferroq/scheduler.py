"""Periodic tasks: ``Scheduler`` enqueues tasks on cron schedules; servers process them.

A scheduler executes nothing itself: at each firing it enqueues a task, which any ``Server`` (or
Go asynq server) serving the queue runs. Any number of scheduler replicas may run: every replica
tries every firing, and an optimistic transaction on the entry's last-fired key in Redis lets
exactly one of them enqueue it. If the replica that would have won dies, the others are trying
the same firing at the same moment, so it still happens once (within one tick, 1 s, of its time,
as long as one replica lives).

Entries and their enqueue history are published in asynq's layout (``asynq:schedulers``,
``asynq:scheduler_history:<entry>``), so asynq's tools and ferroq's Inspector list them.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from types import FrameType
from typing import Any

from ferroq import _options
from ferroq._native import NativeClient, encode_scheduler_entry, go_duration
from ferroq._options import Duration
from ferroq.client import build_request
from ferroq.cron import CronSchedule
from ferroq.errors import FerroqError, InvalidArgumentError
from ferroq.task import Task, TaskInfo

__all__ = ["PeriodicTaskConfig", "PeriodicTaskManager", "Scheduler"]

log = logging.getLogger("ferroq.scheduler")

#: Headers every periodic task carries: which entry fired it, and for which instant.
ENTRY_HEADER = "ferroq-periodic-entry"
FIRED_AT_HEADER = "ferroq-periodic-at"

PreEnqueue = Callable[[Task, Mapping[str, Any]], None]
"""``pre_enqueue(task, options)``: called before each firing's enqueue."""
PostEnqueue = Callable[[TaskInfo | None, BaseException | None], None]
"""``post_enqueue(info, error)``: called after each enqueue this replica attempted."""

# How often the set of queues that live servers serve is re-read.
_SERVED_REFRESH = 30.0
# The longest the loop sleeps, so new entries and shutdowns are noticed.
_TICK = 1.0
_OPTION_NAMES = ("queue", "max_retry", "timeout", "deadline", "unique", "retention", "group")


def _unix_date(dt: datetime) -> str:
    """Go's ``time.UnixDate`` layout, used by asynq's option strings."""
    return dt.astimezone(timezone.utc).strftime("%a %b %e %H:%M:%S UTC %Y")


def option_strings(opts: Mapping[str, Any]) -> list[str]:
    """Asynq's ``Option.String()`` forms of enqueue options (what its Inspector parses back)."""
    out: list[str] = []
    if opts.get("max_retry") is not None:
        out.append(f"MaxRetry({int(opts['max_retry'])})")
    if opts.get("queue") is not None:
        out.append(f"Queue({json.dumps(opts['queue'])})")
    for key, name in (("timeout", "Timeout"), ("unique", "Unique"), ("retention", "Retention")):
        secs = _options.seconds(key, opts.get(key))
        if secs is not None:
            out.append(f"{name}({go_duration(secs)})")
    if opts.get("deadline") is not None:
        out.append(f"Deadline({_unix_date(opts['deadline'])})")
    if opts.get("group") is not None:
        out.append(f"Group({json.dumps(opts['group'])})")
    return out


@dataclass
class _Entry:
    id: str
    spec: str
    schedule: CronSchedule
    make: Callable[[], Task]
    opts: dict[str, Any]
    task_type: str
    payload: bytes
    next_at: datetime
    prev_at: datetime | None = None
    queue: str = "default"
    period: float = field(default=60.0)


def entry_id(spec: str, task: Task, opts: Mapping[str, Any]) -> str:
    """A stable ID for (spec, task, options): every replica registering the same entry agrees."""
    described = json.dumps(
        [spec, task.type, task.payload.hex(), sorted(task.headers.items()), sorted(
            (k, repr(v)) for k, v in opts.items() if v is not None
        )],
        default=str,
    )  # fmt: skip
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "ferroq-periodic:" + described))


class Scheduler:
    """Enqueues tasks on cron schedules; run one or several (for high availability).

    Args:
        redis_url: Redis URL (see ``Client``); defaults to ``$REDIS_URL``.
        tz: Zone the specs are read in (IANA name or tzinfo), UTC by default; a spec's own
            ``CRON_TZ=`` prefix wins.
        heartbeat_interval: How often entries are published for inspectors (10 s, asynq's).
        pre_enqueue: Called with (task, options) before each enqueue.
        post_enqueue: Called with (TaskInfo or None, error or None) after each enqueue this
            replica attempted (a firing another replica enqueued does not call it).
        catch_up: At start, enqueue the latest firing of each entry that was missed while no
            scheduler ran (default: missed firings are skipped).
        namespace: Key prefix (``asynq``).
        tls_ca_file: PEM CA for ``rediss://`` URLs.

    Example::

        scheduler = Scheduler("redis://127.0.0.1:6379")
        scheduler.register("*/5 * * * *", Task("report:build"), queue="reports")

        @scheduler.periodic("@every 30s")
        def heartbeat() -> Task:
            return Task("ping", str(time.time()).encode())

        scheduler.run()
    """

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        tz: str | tzinfo | None = None,
        heartbeat_interval: Duration = 10.0,
        pre_enqueue: PreEnqueue | None = None,
        post_enqueue: PostEnqueue | None = None,
        catch_up: bool = False,
        namespace: str = "asynq",
        tls_ca_file: str | os.PathLike[str] | None = None,
    ) -> None:
        self._native = NativeClient(
            _options.redis_url(redis_url), namespace, tls_ca=_options.read_ca(tls_ca_file)
        )
        self.tz = tz
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4()}"
        self._heartbeat = _options.seconds("heartbeat_interval", heartbeat_interval) or 10.0
        self._pre = pre_enqueue
        self._post = post_enqueue
        self._catch_up = catch_up
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._served: set[str] = set()
        self._served_at = 0.0
        self._warned: set[str] = set()

    # ---- entries -------------------------------------------------------------------------

    def register(
        self,
        spec: str,
        task: Task | Callable[[], Task],
        *,
        queue: str | None = None,
        max_retry: int | None = None,
        timeout: Duration | None = None,
        deadline: datetime | None = None,
        unique: Duration | None = None,
        retention: Duration | None = None,
        group: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> str:
        """Adds a periodic entry; returns its ID (the same for the same entry on every replica).

        Args:
            spec: Cron spec (see ``ferroq.cron``).
            task: The task to enqueue, or a function building it at each firing (called once
                now, too, to describe the entry).
            queue: Queue (``default``).
            max_retry: Retries allowed (25).
            timeout: Per-run time limit.
            deadline: Absolute deadline of every firing's task.
            unique: Refuse a firing while a previous one's task is still unique-locked.
            retention: Keep each task this long after success.
            group: Aggregation group.
            headers: Headers on every task (with the ferroq-periodic-* headers added).

        Raises:
            CronSpecError: The spec is invalid.
            InvalidArgumentError: The same entry is registered already, or an option is bad.
        """
        schedule = CronSchedule(spec, tz=self.tz)
        make: Callable[[], Task] = (lambda: task) if isinstance(task, Task) else task
        sample = make()
        if not isinstance(sample, Task):
            raise TypeError(f"the task factory returned {sample.__class__.__name__}, not a Task")
        opts: dict[str, Any] = {
            "queue": queue, "max_retry": max_retry, "timeout": timeout, "deadline": deadline,
            "unique": unique, "retention": retention, "group": group, "headers": headers,
        }  # fmt: skip
        # Validate the options now rather than at the first firing.
        build_request(sample, **opts)
        eid = entry_id(spec, sample, opts)
        now = datetime.now(timezone.utc)
        first = schedule.next_after(now)
        entry = _Entry(
            id=eid, spec=spec, schedule=schedule, make=make, opts=opts, task_type=sample.type,
            payload=sample.payload, next_at=first, queue=queue or "default",
            period=max(1.0, (schedule.next_after(first) - first).total_seconds()),
        )  # fmt: skip
        with self._lock:
            if eid in self._entries:
                raise InvalidArgumentError(f"entry {spec!r} {sample.type!r} is registered already")
            self._entries[eid] = entry
        self._wake.set()
        return eid

    def periodic(
        self, spec: str, **options: Any
    ) -> Callable[[Callable[[], Task]], Callable[[], Task]]:
        """Decorator form of ``register`` for a function that builds the task at each firing."""

        def decorate(fn: Callable[[], Task]) -> Callable[[], Task]:
            self.register(spec, fn, **options)
            return fn

        return decorate

    def unregister(self, entry_id: str) -> None:
        """Removes an entry; raises ``KeyError`` if there is none with that ID."""
        with self._lock:
            del self._entries[entry_id]
        self._wake.set()

    @property
    def entry_ids(self) -> list[str]:
        """IDs of the registered entries."""
        with self._lock:
            return list(self._entries)

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Starts firing (and publishing entries) in background threads."""
        if self._threads:
            raise FerroqError("scheduler already started")
        self._native.ping()
        if self._catch_up:
            self._catch_up_missed()
        for name, target in (
            ("ferroq-scheduler", self._loop),
            ("ferroq-scheduler-heartbeat", self._heartbeat_loop),
        ):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def shutdown(self) -> None:
        """Stops firing and removes the published entries.

        The enqueue history is kept: other replicas may still be writing it.
        """
        if self._stop.is_set():
            return
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout=10)
        try:
            self._native.clear_scheduler_entries(self.id)
        except FerroqError as e:
            log.warning("could not remove the scheduler's entries: %s", e)

    def run(self) -> None:
        """Starts, then blocks until SIGTERM or SIGINT and shuts down."""
        done = threading.Event()
        if threading.current_thread() is threading.main_thread():
            # Before start(): a signal during start-up must not be the default "terminate now".

            def on_signal(signum: int, frame: FrameType | None) -> None:
                done.set()

            signal.signal(signal.SIGTERM, on_signal)
            signal.signal(signal.SIGINT, on_signal)
        self.start()
        try:
            while not done.wait(0.5):
                pass
        finally:
            self.shutdown()

    def __enter__(self) -> Scheduler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # ---- firing --------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            now = datetime.now(timezone.utc)
            with self._lock:
                due = [e for e in self._entries.values() if e.next_at <= now]
            for e in due:
                # Fire the latest due instant once; older ones were missed (process paused).
                fire_at = e.schedule.prev_before(now + timedelta(microseconds=1))
                if fire_at < e.next_at:
                    fire_at = e.next_at
                e.next_at = e.schedule.next_after(fire_at)
                self._fire(e, fire_at)
            with self._lock:
                upcoming = min((e.next_at for e in self._entries.values()), default=None)
            wait = _TICK
            if upcoming is not None:
                wait = max(0.0, min(_TICK, (upcoming - datetime.now(timezone.utc)).total_seconds()))
            self._wake.wait(wait)
            self._wake.clear()

    def _fire(self, e: _Entry, fire_at: datetime) -> None:
        try:
            task = e.make()
        except Exception:
            log.exception("entry %s (%s): building the task failed; firing skipped", e.id, e.spec)
            return
        stamp = fire_at.astimezone(timezone.utc).isoformat()
        headers = {**(e.opts.get("headers") or {}), ENTRY_HEADER: e.id, FIRED_AT_HEADER: stamp}
        if self._pre is not None:
            try:
                self._pre(task, e.opts)
            except Exception:
                log.exception("pre_enqueue raised")
        info: TaskInfo | None = None
        error: BaseException | None = None
        try:
            req = build_request(task, **{**e.opts, "headers": headers})
            ttl = int(max(86_400.0, 3 * e.period))
            outcome, row = self._native.periodic_enqueue(
                req, e.id, int(fire_at.timestamp()), ttl, True
            )
        except Exception as exc:
            log.error(
                "entry %s (%s): enqueue of the %s firing failed: %s", e.id, e.spec, stamp, exc
            )
            error = exc
        else:
            e.prev_at = fire_at
            if outcome == "already_fired":
                return
            if outcome == "duplicate":
                log.info("entry %s: the %s firing found a unique duplicate; skipped", e.id, stamp)
                return
            info = TaskInfo._from_native(row)
            self._check_served(info.queue)
        if self._post is not None:
            try:
                self._post(info, error)
            except Exception:
                log.exception("post_enqueue raised")

    def _catch_up_missed(self) -> None:
        now = datetime.now(timezone.utc)
        with self._lock:
            entries = list(self._entries.values())
        for e in entries:
            prev = e.schedule.prev_before(now)
            last = self._native.periodic_last(e.queue, e.id)
            if last is not None and last < int(prev.timestamp()):
                log.info("entry %s: catching up the missed %s firing", e.id, prev.isoformat())
                self._fire(e, prev)

    def _check_served(self, queue: str) -> None:
        """Warns (once per queue, until it is served) when no live server serves ``queue``."""
        now = time.monotonic()
        if now - self._served_at > _SERVED_REFRESH or queue not in self._served:
            try:
                self._served = set(self._native.served_queues())
                self._served_at = now
            except FerroqError:
                return
        if queue in self._served:
            self._warned.discard(queue)
        elif queue not in self._warned:
            self._warned.add(queue)
            log.warning(
                "no live server serves queue %r: periodic tasks enqueued there wait until one "
                "does (start a server with that queue, e.g. `ferroq worker app:mux --queue %s`)",
                queue, queue,
            )  # fmt: skip

    # ---- publishing ----------------------------------------------------------------------

    def _heartbeat_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._publish()
            except FerroqError as e:
                log.warning("publishing scheduler entries failed: %s", e)
            self._stop.wait(self._heartbeat)

    def _publish(self) -> None:
        with self._lock:
            entries = list(self._entries.values())
        blobs = [
            encode_scheduler_entry(
                e.id,
                e.spec,
                e.task_type,
                e.payload,
                option_strings(e.opts),
                e.next_at.timestamp(),
                e.prev_at.timestamp() if e.prev_at else None,
            )
            for e in entries
        ]
        self._native.write_scheduler_entries(self.id, blobs, 2 * self._heartbeat)


@dataclass(frozen=True)
class PeriodicTaskConfig:
    """One periodic entry as a ``PeriodicTaskManager`` provider returns it.

    Attributes:
        spec: Cron spec.
        task: The task.
        options: Enqueue options, as ``Scheduler.register`` takes them.
    """

    spec: str
    task: Task
    options: Mapping[str, Any] = field(default_factory=dict)


class PeriodicTaskManager:
    """Keeps a scheduler's entries in line with a provider (a database, a config file...).

    Every ``sync_interval`` the provider is called; entries it no longer returns are removed and
    new ones registered (unchanged ones keep their timing).

    Args:
        provider: Returns the wanted entries.
        sync_interval: How often to re-sync (asynq's default: 3 minutes).
        scheduler: The scheduler to manage (default: a new one from ``scheduler_options``).
        **scheduler_options: Passed to ``Scheduler`` when none is given.
    """

    def __init__(
        self,
        provider: Callable[[], Sequence[PeriodicTaskConfig]],
        *,
        sync_interval: Duration = 180.0,
        scheduler: Scheduler | None = None,
        **scheduler_options: Any,
    ) -> None:
        self.provider = provider
        self.scheduler = scheduler or Scheduler(**scheduler_options)
        self._interval = _options.seconds("sync_interval", sync_interval) or 180.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._managed: dict[str, str] = {}

    def sync(self) -> None:
        """Re-reads the provider and updates the entries now."""
        configs = self.provider()
        wanted: dict[str, PeriodicTaskConfig] = {}
        for c in configs:
            opts = {k: c.options.get(k) for k in (*_OPTION_NAMES, "headers")}
            wanted[entry_id(c.spec, c.task, opts)] = c
        for eid in list(self._managed):
            if eid not in wanted:
                self.scheduler.unregister(eid)
                del self._managed[eid]
        for eid, c in wanted.items():
            if eid not in self._managed:
                self._managed[eid] = self.scheduler.register(c.spec, c.task, **dict(c.options))

    def start(self) -> None:
        """Syncs once, starts the scheduler, then re-syncs in the background."""
        self.sync()
        self.scheduler.start()

        def loop() -> None:
            while not self._stop.wait(self._interval):
                try:
                    self.sync()
                except Exception:
                    log.exception("periodic task provider failed; keeping the current entries")

        self._thread = threading.Thread(target=loop, name="ferroq-periodic-sync", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        """Stops syncing and shuts the scheduler down."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.scheduler.shutdown()

    def run(self) -> None:
        """Starts, then blocks until SIGTERM or SIGINT."""
        done = threading.Event()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda s, f: done.set())
            signal.signal(signal.SIGINT, lambda s, f: done.set())
        self.start()
        try:
            while not done.wait(0.5):
                pass
        finally:
            self.shutdown()
