"""The consumer: ``Server`` runs handlers for the tasks its Rust core leases.

The core (``ferroq._native.NativeServer``) owns Redis and time: it leases tasks in batches on its
own threads, renews leases, forwards scheduled tasks, recovers tasks of dead servers, fires
deadlines and writes outcomes in batches. This module owns the lifecycle; ``ferroq._dispatch``
runs user code (a bounded thread pool for plain functions, one asyncio loop for ``async def``).

Start order: the core (heartbeat first, so the server is visible before it takes work, then the
background components, then the lease loop), then the dispatcher. Shutdown runs the other way
round: stop taking tasks, give running handlers ``shutdown_timeout``, requeue the tasks of those
still running and tell them to stop, then stop the core (which writes every outcome before it
clears the server's heartbeat).
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING

from ferroq import _options
from ferroq._dispatch import Dispatcher, ErrorHandler, FailurePolicy, IsFailure, RetryDelay
from ferroq._native import NativeServer, ServerConfig, ServerMetrics
from ferroq._signals import run_until_signalled
from ferroq.errors import DeadlineExceeded, ServerClosedError, TaskCancelled
from ferroq.servemux import Handler, ServeMux

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ferroq.options import ServerSettings

__all__ = [
    "DeadlineExceeded",
    "ErrorHandler",
    "IsFailure",
    "RetryDelay",
    "Server",
    "ServerConfig",
    "TaskCancelled",
]


class Server:
    """Processes tasks from asynq-layout queues with a pool of workers.

    Every setting left out takes the core's default (``ServerConfig()`` holds them all; they
    are asynq's). The settings (``ferroq.options.ServerSettings``) are keywords:

    Args:
        redis_url: Redis URL (see ``Client``); defaults to ``$REDIS_URL``.
        concurrency: Most tasks in flight at once (default: {concurrency}, the number of CPUs).
        queues: Queue name → priority, each at least 1 (default {queues}).
        strict_priority: Always drain higher priorities first instead of weighted random order.
        retry_delay: Delay before a retry; default asynq's ``n⁴ + 15 + rand(30)·(n+1)`` s.
        is_failure: Whether an error counts as a failed attempt (default: always).
        error_handler: Called for every handler error (including ``SkipRetry`` and timeouts).
        shutdown_timeout: On shutdown, how long running handlers may finish before their tasks
            are requeued (default {shutdown_timeout} s).
        task_check_interval: Poll period when every queue is empty (default
            {task_check_interval} s, randomised).
        delayed_task_check_interval: How often scheduled and retry tasks are forwarded when no
            due time was announced (default {delayed_task_check_interval} s).
        janitor_interval: How often expired completed tasks are deleted (default
            {janitor_interval} s).
        janitor_batch_size: Completed tasks deleted per call (default {janitor_batch_size}).
        namespace: Key prefix (default ``{namespace}``, asynq's).
        heartbeat_interval: Heartbeat and lease renewal period, at most a third of
            ``lease_duration`` (default {heartbeat_interval} s).
        lease_duration: How long a dequeued task is leased, whole seconds; every heartbeat
            renews the leases of running tasks (default {lease_duration} s, asynq's).
        lease_grace: How long after a lease ended its task is recovered: the allowance for
            clock skew between servers (default {lease_grace} s, asynq's). A killed worker's
            task runs again about ``lease_duration + lease_grace + recoverer_interval`` later.
        recoverer_interval: How often tasks of dead servers (expired leases, and active tasks
            no lease covers) are recovered (default {recoverer_interval} s). A recovered task
            goes through this server's ``is_failure`` and ``retry_delay`` (it fails with
            ``LeaseExpired``).
        syncer_interval: How often outcome writes that failed are retried (default
            {syncer_interval} s).
        cancel_grace: How long a cancelled handler may take to stop before its task is failed
            without it (default {cancel_grace} s).
        archive_max_size: The most archived tasks kept per queue; the oldest go first when
            another is archived (default {archive_max_size}; asynq hard-codes it).
        archive_max_age: Seconds an archived task is kept (default {archive_max_age} s, 90
            days; asynq hard-codes it).
        wait_for_replicas: Durable mode: a lease and an outcome count as written only once
            this many replicas confirm them (``WAIT``); default {wait_for_replicas} (off). The
            tasks of an unconfirmed lease still run (logged: they are leased on the master); an
            unconfirmed outcome goes to the syncer, which writes it again if a failover lost
            it (the task still active); otherwise it stays unconfirmed (a later failover runs
            the task again).
        replica_timeout: Seconds durable mode waits for the replicas (default
            {replica_timeout} s).
        declare_keys: Declared-keys mode: every script call is given every key it touches, as
            Redis asks of scripts (for a proxy or tool that checks calls by their declared
            keys). The dequeue names every task hash it leases, from the ids its last call found
            at the tail of each queue, at the cost of a second call whenever it finds only tasks
            it was not told of, and of one call per queue (docs/scaling.md). Default: on for a
            ``redis+cluster://`` (or ``rediss+cluster://``) URL; off otherwise, where the
            dequeue builds the hash names of the tasks it pops, in their queue's slot, as asynq
            does, and serves every queue in one call. Behind a cluster proxy reached with
            ``redis://``, set it. ``declares_keys`` says which mode a server runs.
        tls_ca_file: PEM file of the CA to trust for ``rediss://`` instead of the system's roots.
        config: A ``ServerConfig`` to use instead of the settings above.

    Raises:
        InvalidArgumentError: A setting the core refuses (a queue priority under 1, an empty
            ``queues``, a heartbeat longer than a third of a lease...). A concurrency under 1
            is asynq's "the number of CPUs".
        TypeError: A setting of the wrong type (``concurrency="4"``).
    """

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        retry_delay: RetryDelay | None = None,
        is_failure: IsFailure | None = None,
        error_handler: ErrorHandler | None = None,
        namespace: str | None = None,
        tls_ca_file: str | os.PathLike[str] | None = None,
        config: ServerConfig | None = None,
        **settings: Unpack[ServerSettings],
    ) -> None:
        if config is None:
            config = ServerConfig(**settings)
        elif settings:
            raise TypeError("give a ServerConfig or settings, not both")
        self._native = NativeServer(
            _options.redis_url(redis_url),
            config,
            namespace=namespace,
            tls_ca=_options.read_ca(tls_ca_file),
        )
        self._policy = FailurePolicy(retry_delay, is_failure, error_handler)
        # Set before start: the recoverer's first pass runs as the core starts.
        self._native.set_failure_policy(self._policy.recovered)
        self._dispatcher: Dispatcher | None = None
        self._closed = threading.Event()
        # Set by a second Ctrl-C in run(): the shutdown stops waiting for handlers.
        self._hurry = threading.Event()

    @property
    def config(self) -> ServerConfig:
        """The settings this server runs with."""
        return self._native.config

    @property
    def concurrency(self) -> int:
        """Most tasks in flight at once."""
        return self._native.config.concurrency

    @property
    def server_id(self) -> str:
        """This server's ID, as published in its heartbeat."""
        return self._native.server_id

    @property
    def declares_keys(self) -> bool:
        """Whether this server runs in declared-keys mode.

        ``config.declare_keys`` when set; when it is None, whether the URL is a Redis Cluster's.
        """
        return self._native.declares_keys

    def metrics(self) -> ServerMetrics:
        """This server's worker metrics now.

        Handler durations and outcomes by queue and task type, tasks in flight, leases renewed
        and lost, tasks recovered; ``ferroq.metrics`` exports them to Prometheus.
        """
        return self._native.metrics()

    @property
    def status(self) -> str:
        """``new``, ``active``, ``stopped`` or ``closed``."""
        return self._native.status

    def start(self, handler: ServeMux | Handler) -> None:
        """Starts processing in background threads and returns.

        Args:
            handler: A ``ServeMux`` or any sync/async handler taking a ``Task``.

        Raises:
            ServerClosedError: The server was already started or shut down.
            BrokerConnectionError: Redis is unreachable.
        """
        if self._dispatcher is not None or self._closed.is_set():
            raise ServerClosedError("server already started or shut down")
        if not callable(handler):
            raise TypeError("handler must be callable (a ServeMux or a function taking a Task)")
        self._native.start()
        self._dispatcher = Dispatcher(
            self._native,
            handler,
            # Twice the slots: a sync handler that overran its deadline keeps its thread until
            # it returns, and must not keep the next task from starting.
            pool_size=2 * self.concurrency,
            policy=self._policy,
        )
        self._dispatcher.start()

    def stop(self) -> None:
        """Stops fetching new tasks; running ones go on (asynq's ``Stop``, SIGTSTP)."""
        self._native.stop_fetching()

    def shutdown(self) -> None:
        """Stops fetching and shuts down, requeueing what does not finish in time.

        Waits up to ``shutdown_timeout`` for running handlers, requeues the tasks of those still
        running, writes every outcome and stops all threads. Safe to call more than once.
        """
        if self._closed.is_set():
            return
        self._closed.set()
        self._native.stop_fetching()
        d = self._dispatcher
        if d is not None:
            d.stop_dispatching()
            if not self._wait_idle(self.config.shutdown_timeout):
                d.abandon(self._native.requeue_running())
        self._native.shutdown()
        if d is not None:
            d.close()

    def _wait_idle(self, timeout: float) -> bool:
        """Waits up to ``timeout`` seconds for the running handlers; True when none runs.

        A slice at a time, so that a signal handler in the main thread can cut the wait short
        (``_hurry``).
        """
        deadline = time.monotonic() + timeout
        while not self._hurry.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if self._native.wait_idle(min(left, 0.1)):
                return True
        return self._native.wait_idle(0.0)

    def run(self, handler: ServeMux | Handler, *, wait_for_redis: bool = True) -> None:
        """Starts, then blocks until SIGTERM or SIGINT and shuts down (SIGTSTP stops fetching).

        Signal handlers are installed only when called from the main thread, and before the
        server starts, so a signal during start-up is not the default "terminate now". A second
        SIGINT (Ctrl-C), half a second or more after the first stop signal, stops the wait for
        running handlers: their tasks are requeued at once, as when ``shutdown_timeout`` runs
        out. A repeated SIGTERM does not.

        Args:
            handler: A ``ServeMux`` or any sync/async handler taking a ``Task``.
            wait_for_redis: While Redis is unreachable at start, retry with backoff (logging a
                line every 10 s) until it answers or a signal arrives, instead of raising
                ``BrokerConnectionError``. Once started, the server rides out outages anyway.
        """
        run_until_signalled(
            lambda: self.start(handler),
            self.shutdown,
            on_tstp=self.stop,
            on_hurry=self._hurry.set,
            finished=self._closed.is_set,
            wait_for_redis=wait_for_redis,
        )

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def _document_defaults() -> None:
    """Fills the defaults into ``Server``'s docstring from the core, where they are written."""
    from ferroq._native import DEFAULT_NAMESPACE

    d = ServerConfig()
    values = {
        name: getattr(d, name)
        for name in (
            "concurrency", "queues", "shutdown_timeout", "task_check_interval",
            "delayed_task_check_interval", "janitor_interval", "janitor_batch_size",
            "heartbeat_interval", "recoverer_interval", "syncer_interval", "cancel_grace",
            "lease_duration", "lease_grace", "archive_max_size", "archive_max_age",
            "wait_for_replicas", "replica_timeout",
        )
    }  # fmt: skip
    values = {k: (f"{v:g}" if isinstance(v, float) else v) for k, v in values.items()}
    if Server.__doc__:
        Server.__doc__ = Server.__doc__.format(namespace=DEFAULT_NAMESPACE, **values)


_document_defaults()
