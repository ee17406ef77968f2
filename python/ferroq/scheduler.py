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
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from typing import TYPE_CHECKING, Any

from ferroq import _options
from ferroq._native import (
    DEFAULT_QUEUE,
    Fired,
    NativeClient,
    ServerConfig,
    TaskOptions,
    encode_scheduler_entry,
)
from ferroq._options import Duration
from ferroq._signals import run_until_signalled
from ferroq.app import _TaskBase
from ferroq.cron import CronSchedule
from ferroq.errors import FerroqError, InvalidArgumentError
from ferroq.task import Task, TaskInfo

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ferroq.options import PeriodicOptions

__all__ = ["ENTRY_HEADER", "FIRED_AT_HEADER", "OPTION_NAMES", "Scheduler", "entry_id"]

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
# How long a queue must stay unserved before the warning: a server's heartbeat TTL (twice its
# interval), so servers whose heartbeats expired during a Redis outage can publish them again.
_SERVED_GRACE = 2 * ServerConfig().heartbeat_interval
# The longest the loop sleeps, so new entries and shutdowns are noticed.
_TICK = 1.0
#: The options a periodic entry may set (a firing has no fixed process-at or task ID).
OPTION_NAMES = (
    "queue", "max_retry", "timeout", "deadline", "unique", "retention", "group", "headers",
)  # fmt: skip


@dataclass
class _Entry:
    id: str
    spec: str
    schedule: CronSchedule
    make: Callable[[], Task]
    opts: dict[str, Any]
    options: TaskOptions
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
        namespace: Key prefix (default asynq's, ``asynq``).
        tls_ca_file: PEM CA for ``rediss://`` URLs.
        wait_for_replicas: Durable mode: a firing counts as enqueued only once this many
            replicas confirm it (see ``Client``); 0 (the default) is off.
        replica_timeout: Seconds durable mode waits for the replicas (default 1).

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
        namespace: str | None = None,
        tls_ca_file: str | os.PathLike[str] | None = None,
        wait_for_replicas: int = 0,
        replica_timeout: Duration = 1.0,
    ) -> None:
        self._native = NativeClient(
            _options.redis_url(redis_url),
            namespace,
            tls_ca=_options.read_ca(tls_ca_file),
            wait_for_replicas=wait_for_replicas,
            replica_timeout=replica_timeout,
        )
        self.tz = tz
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4()}"
        self._heartbeat = _options.positive_seconds("heartbeat_interval", heartbeat_interval)
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
        # Queue → when it was first seen unserved (monotonic seconds).
        self._unserved_since: dict[str, float] = {}
        self._warned: set[str] = set()

    # ---- entries -------------------------------------------------------------------------

    def register(
        self,
        spec: str,
        task: Task | Callable[[], Task] | _TaskBase[[], Any],
        **options: Unpack[PeriodicOptions],
    ) -> str:
        """Adds a periodic entry; returns its ID (the same for the same entry on every replica).

        Args:
            spec: Cron spec (see ``ferroq.cron``).
            task: The task to enqueue, or a function building it at each firing (called once
                now, too, to describe the entry), or a task function taking no arguments
                (Celery's beat entry; its queue, retries, timeout and result TTL are the
                firing's unless ``options`` say otherwise).
            **options: The options of every firing's task (``ferroq.options.PeriodicOptions``:
                ``queue``, ``max_retry``, ``timeout``, ``deadline``, ``unique``, ``retention``,
                ``group``, ``headers``; the ferroq-periodic-* headers are added). ``unique``
                refuses a firing while a previous one's task still holds the lock.

        Raises:
            CronSpecError: The spec is invalid.
            InvalidArgumentError: The same entry is registered already, or an option is bad
                (checked now by the core, not at the first firing).
            TypeError: An option of the wrong type, or one a periodic entry cannot have.
        """
        unknown = set(options) - set(OPTION_NAMES)
        if unknown:
            raise TypeError(f"a periodic entry takes no option {', '.join(sorted(unknown))}")
        if isinstance(task, _TaskBase):
            options = {**task.periodic_options(), **options}  # type: ignore[typeddict-item]
            task = task.message()
        schedule = CronSchedule(spec, tz=self.tz)
        make: Callable[[], Task] = (lambda: task) if isinstance(task, Task) else task
        sample = make()
        if not isinstance(sample, Task):
            raise TypeError(f"the task factory returned {sample.__class__.__name__}, not a Task")
        opts: dict[str, Any] = dict(options)
        # Built (and so checked by the core) now, not at the first firing.
        task_options = TaskOptions(**options)
        eid = entry_id(spec, sample, opts)
        now = datetime.now(timezone.utc)
        first = schedule.next_after(now)
        entry = _Entry(
            id=eid, spec=spec, schedule=schedule, make=make, opts=opts, options=task_options,
            task_type=sample.type, payload=sample.payload, next_at=first,
            queue=task_options.queue or DEFAULT_QUEUE,
            period=max(1.0, (schedule.next_after(first) - first).total_seconds()),
        )  # fmt: skip
        with self._lock:
            if eid in self._entries:
                raise InvalidArgumentError(f"entry {spec!r} {sample.type!r} is registered already")
            self._entries[eid] = entry
        self._wake.set()
        return eid

    def periodic(
        self, spec: str, **options: Unpack[PeriodicOptions]
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
        run_until_signalled(self.start, self.shutdown)

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
            # A queue seen unserved is looked at again once its grace is over, not only at its
            # entry's next firing (an hourly entry would warn an hour late).
            mono = time.monotonic()
            for queue, since in list(self._unserved_since.items()):
                if queue not in self._warned and mono - since >= _SERVED_GRACE:
                    self._check_served(queue)
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
        if self._pre is not None:
            try:
                self._pre(task, e.opts)
            except Exception:
                log.exception("pre_enqueue raised")
        info: TaskInfo | None = None
        error: BaseException | None = None
        try:
            if not isinstance(task, Task):
                raise TypeError(f"the task factory returned {task.__class__.__name__}, not a Task")
            stamp_headers = TaskOptions(headers={ENTRY_HEADER: e.id, FIRED_AT_HEADER: stamp})
            ttl = int(max(86_400.0, 3 * e.period))
            outcome, written = self._native.periodic_enqueue(
                task.type, task._payload, task.headers, e.options.merge(stamp_headers), e.id,
                int(fire_at.timestamp()), ttl, True,
            )  # fmt: skip
        except Exception as exc:
            log.error(
                "entry %s (%s): enqueue of the %s firing failed: %s", e.id, e.spec, stamp, exc
            )
            error = exc
        else:
            e.prev_at = fire_at
            if outcome == Fired.ALREADY_FIRED:
                return
            if outcome == Fired.DUPLICATE:
                log.info("entry %s: the %s firing found a unique duplicate; skipped", e.id, stamp)
                return
            info = written
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
        """Warns (once per queue, until served) when no live server served ``queue`` lately.

        A queue must stay unserved for ``_SERVED_GRACE`` seconds before the warning.
        """
        now = time.monotonic()
        if now - self._served_at > _SERVED_REFRESH or queue not in self._served:
            try:
                self._served = set(self._native.served_queues())
                self._served_at = now
            except FerroqError:
                # What was seen before an outage says nothing about the servers after it.
                self._unserved_since.clear()
                return
        if queue in self._served:
            self._warned.discard(queue)
            self._unserved_since.pop(queue, None)
            return
        since = self._unserved_since.setdefault(queue, now)
        if now - since >= _SERVED_GRACE and queue not in self._warned:
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
                e.options,
                e.next_at.timestamp(),
                e.prev_at.timestamp() if e.prev_at else None,
            )
            for e in entries
        ]
        self._native.write_scheduler_entries(self.id, blobs, 2 * self._heartbeat)
