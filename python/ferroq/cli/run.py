"""``ferroq worker``, ``scheduler``, ``doctor``, ``demo`` and ``metrics``: commands that run."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import shlex
import signal
import sys
import time
from typing import Any, cast

from ferroq._native import ServerConfig
from ferroq.app import App
from ferroq.cli._common import connection_flags, duration
from ferroq.inspector import Inspector
from ferroq.servemux import Handler
from ferroq.server import Server

__all__ = ["doctor", "load_object", "register"]


def load_object(path: str) -> object:
    """Imports ``module:attribute`` (``module.attribute`` also works), as ``celery -A`` does.

    Raises:
        ValueError: ``path`` names no module or attribute.
    """
    if ":" in path:
        module_name, _, attr = path.partition(":")
    else:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"expected module:attribute, got {path!r}")
    if os.getcwd() not in sys.path:
        # Like celery and rq: the app module usually lives in the working directory.
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"cannot import {module_name!r}: {e}") from e
    obj: object = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"{module_name!r} has no attribute {attr!r}") from None
    return obj


def _queue(spec: str) -> tuple[str, int]:
    name, sep, prio = spec.partition("=")
    if not name.strip():
        raise argparse.ArgumentTypeError(f"bad queue {spec!r}: expected name or name=priority")
    try:
        return name, int(prio) if sep else 1
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad priority in {spec!r}: expected an integer") from None


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Adds ``worker``, ``scheduler``, ``doctor``, ``demo`` and ``metrics``."""
    # Defaults are the core's (ServerConfig): the options below default to "not given".
    defaults = ServerConfig()
    queues = ", ".join(f"{q}={prio}" for q, prio in defaults.queues.items())

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], help=help)

    w = command("worker", help="run a server for an App, a ServeMux or a handler by import path")
    w.add_argument(
        "app", help="module:attribute of an App, ServeMux or handler, e.g. myapp.tasks:app"
    )
    connection_flags(w)
    w.add_argument(
        "--concurrency", "-c", type=int, default=None,
        help=f"tasks in flight (default {defaults.concurrency}, the number of CPUs)",
    )  # fmt: skip
    w.add_argument(
        "--queue", "-q", action="append", type=_queue, default=None,
        help=f"queue=priority, repeatable (default: {queues})",
    )  # fmt: skip
    w.add_argument("--strict-priority", action="store_true", help="drain higher priorities first")
    w.add_argument(
        "--declare-keys", action=argparse.BooleanOptionalAction, default=None,
        help="give every script call every key it touches, the dequeue's task hashes included "
        "(for proxies that check calls by their declared keys; default: on for a "
        "redis[s]+cluster:// URL, off otherwise); costs a call per queue, and a second one when a "
        "queue was empty when last seen or other servers took its tasks",
    )  # fmt: skip
    w.add_argument(
        "--shutdown-timeout", type=float, default=None,
        help=f"seconds running tasks get at shutdown (default {defaults.shutdown_timeout:g})",
    )  # fmt: skip
    w.add_argument(
        "--task-check-interval", type=float, default=None,
        help=f"idle poll, seconds (default {defaults.task_check_interval:g})",
    )  # fmt: skip
    for flag, name, what in (
        ("--heartbeat-interval", "heartbeat_interval", "heartbeat and lease renewal period"),
        ("--lease-duration", "lease_duration", "lease of a dequeued task, whole seconds"),
        ("--lease-grace", "lease_grace", "wait after a lease ended before recovering its task"),
        (
            "--recoverer-interval",
            "recoverer_interval",
            "period of the recovery of dead servers' tasks",
        ),
        ("--archive-max-age", "archive_max_age", "how long archived tasks are kept"),
        ("--replica-timeout", "replica_timeout", "how long --wait-for-replicas waits"),
    ):
        w.add_argument(
            flag, type=float, default=None,
            help=f"{what}, seconds (default {getattr(defaults, name):g})",
        )  # fmt: skip
    w.add_argument(
        "--processes", "-p", type=_processes, default=1, metavar="N",
        help="run N worker processes under a supervisor that forwards signals and restarts "
        "the ones that die (default 1: this process is the worker)",
    )  # fmt: skip
    w.add_argument(
        "--reload", action="store_true",
        help="restart the worker when a .py file under --reload-dir changes (needs watchfiles)",
    )  # fmt: skip
    w.add_argument(
        "--reload-dir", action="append", default=None, metavar="DIR",
        help="directory to watch, repeatable (default: the working directory)",
    )  # fmt: skip
    w.add_argument(
        "--archive-max-size", type=int, default=None,
        help=f"most archived tasks kept per queue (default {defaults.archive_max_size})",
    )  # fmt: skip
    w.add_argument(
        "--wait-for-replicas", type=int, default=None, metavar="N",
        help="durable mode: leases and outcomes wait until N replicas confirm them "
        f"(default {defaults.wait_for_replicas}: off)",
    )  # fmt: skip
    w.add_argument(
        "--retry-delay", type=duration, default=None,
        help="seconds before every retry, recovered tasks included (default asynq's "
        "n**4 + 15 + rand(30)*(n+1), n = retries so far)",
    )  # fmt: skip
    w.add_argument(
        "--metrics-port", type=_port, default=None,
        help="serve this worker's Prometheus metrics on http://0.0.0.0:PORT/metrics",
    )  # fmt: skip
    w.add_argument(
        "--metrics-addr", default="0.0.0.0", help="address the metrics listen on (default 0.0.0.0)"
    )
    w.set_defaults(func=_worker)

    s = command("scheduler", help="run a Scheduler (or PeriodicTaskManager) by import path")
    s.add_argument("app", help="module:attribute of a Scheduler, e.g. myapp.periodic:scheduler")
    s.add_argument(
        "--redis", default=None,
        help="Redis URL for a Scheduler built without one: sets $REDIS_URL before the import",
    )  # fmt: skip
    s.set_defaults(func=_scheduler)

    doc = command("doctor", help="check that every queue with work has a live server")
    connection_flags(doc)
    doc.add_argument(
        "--grace", type=float, default=defaults.heartbeat_interval,
        help="seconds to wait before confirming a missing server: one heartbeat round "
        f"(default {defaults.heartbeat_interval:g})",
    )  # fmt: skip
    doc.set_defaults(func=_doctor)

    d = command("demo", help="a client, a periodic producer and a server working together")
    d.add_argument("--tasks", type=int, default=2000, help="size of the burst (default 2000)")
    d.add_argument("--redis", default=None, help="Redis URL (default $REDIS_URL, else embedded)")
    d.set_defaults(func=_demo)

    m = command("metrics", help="serve asynq's queue metrics for Prometheus (an exporter)")
    connection_flags(m)
    m.add_argument("--port", type=_port, default=9876, help="port (default 9876, asynq's)")
    m.add_argument("--addr", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    m.add_argument(
        "--memory", action="store_true",
        help="also sample queue memory (asynq_queue_memory_usage_approx_bytes; costly)",
    )  # fmt: skip
    m.set_defaults(func=_metrics)


def _port(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {v}")
    return v


def _processes(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of processes, got {text!r}") from None
    if not 1 <= v <= 256:
        raise argparse.ArgumentTypeError(f"expected 1 to 256 processes, got {v}")
    return v


def _without(words: list[str], flags: tuple[str, ...]) -> list[str]:
    """``words`` without the given flags and their values (``--flag V`` or ``--flag=V``)."""
    out, skip = [], False
    for w in words:
        if skip:
            skip = False
        elif w in flags:
            skip = True
        elif not any(w.startswith(f + "=") for f in flags if f.startswith("--")):
            out.append(w)
    return out


def _supervise(args: argparse.Namespace) -> int:
    """Runs ``--processes`` workers under a supervisor (``ferroq.cli.supervise``).

    The app is imported here first, so a wrong import path fails at once instead of as a
    crash loop; each child gets this command line without ``--processes``, and worker ``i``
    of a ``--metrics-port P`` serves its metrics on ``P + i``.
    """
    from ferroq.cli.supervise import ENV_INDEX, Supervisor

    if os.environ.get(ENV_INDEX):
        print("ferroq worker: a supervised worker cannot supervise workers", file=sys.stderr)
        return 2
    try:
        load_object(args.app)
    except ValueError as e:
        print(f"ferroq worker: {e}", file=sys.stderr)
        return 2
    words = _without(args.argv, ("--processes", "-p", "--metrics-port"))
    extra: dict[int, list[str]] = {}
    if args.metrics_port is not None:
        if args.metrics_port + args.processes - 1 > 65535:
            print("ferroq worker: --metrics-port leaves no port for every process", file=sys.stderr)
            return 2
        extra = {i: ["--metrics-port", str(args.metrics_port + i)] for i in range(args.processes)}
    grace = (
        args.shutdown_timeout
        if args.shutdown_timeout is not None
        else (ServerConfig().shutdown_timeout)
    )
    return Supervisor(args.processes, words, extra, shutdown_timeout=grace).run()


def _reload(args: argparse.Namespace) -> int:
    """Runs the worker in a child process, restarted whenever watched Python code changes.

    The child is this same command without ``--reload``; a change sends it SIGINT (a graceful
    shutdown: running tasks get ``shutdown_timeout``, then are requeued) and starts a new one.
    """
    try:
        import watchfiles
    except ImportError:
        print("ferroq worker --reload needs watchfiles: pip install 'ferroq[reload]'",
              file=sys.stderr)  # fmt: skip
        return 2
    words, skip = [], False
    for w in args.argv:
        if skip:
            skip = False
        elif w == "--reload":
            continue
        elif w == "--reload-dir":
            skip = True
        elif not w.startswith("--reload-dir="):
            words.append(w)
    command = shlex.join([sys.executable, "-m", "ferroq", *words])
    dirs = args.reload_dir or [os.getcwd()]
    log = logging.getLogger("ferroq")
    log.info("reloading the worker when Python files under %s change", ", ".join(dirs))

    def changed(changes: set[tuple[Any, str]]) -> None:
        log.info("restarting the worker: %s changed", ", ".join(sorted({p for _, p in changes})))

    grace = args.shutdown_timeout if args.shutdown_timeout is not None else (
        ServerConfig().shutdown_timeout
    )  # fmt: skip
    # SIGTERM stops the watcher as Ctrl-C does (watchfiles then stops the worker gracefully).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with contextlib.suppress(KeyboardInterrupt):
        watchfiles.run_process(
            *dirs, target=command, target_type="command", callback=changed,
            watch_filter=watchfiles.PythonFilter(), sigint_timeout=int(grace) + 5,
        )  # fmt: skip
    return 0


def _worker(args: argparse.Namespace) -> int:
    if args.reload and args.processes > 1:
        print("ferroq worker: --reload runs one worker; leave out --processes", file=sys.stderr)
        return 2
    if args.reload:
        return _reload(args)
    if args.processes > 1:
        return _supervise(args)
    try:
        handler = load_object(args.app)
    except ValueError as e:
        print(f"ferroq worker: {e}", file=sys.stderr)
        return 2
    redis_url, namespace, tls_ca_file = args.redis, args.namespace, args.tls_ca_file
    queues = dict(args.queue) if args.queue else None
    if isinstance(handler, App):
        # An App brings its Redis, namespace and queues; the command line overrides them.
        app = handler
        handler = app.mux
        redis_url = redis_url or app.redis_url
        namespace = namespace or app.namespace
        queues = queues or app.queues
        tls_ca_file = tls_ca_file or app.tls_ca_file
    if not callable(handler):
        print(f"ferroq worker: {args.app} is not an App, a ServeMux or a handler", file=sys.stderr)
        return 2
    fixed: float | None = args.retry_delay
    server = Server(
        redis_url,
        retry_delay=None if fixed is None else (lambda retried, error, task: fixed),
        concurrency=args.concurrency,
        queues=queues,
        strict_priority=args.strict_priority or None,
        declare_keys=args.declare_keys,
        shutdown_timeout=args.shutdown_timeout,
        task_check_interval=args.task_check_interval,
        heartbeat_interval=args.heartbeat_interval,
        lease_duration=args.lease_duration,
        lease_grace=args.lease_grace,
        recoverer_interval=args.recoverer_interval,
        archive_max_size=args.archive_max_size,
        archive_max_age=args.archive_max_age,
        wait_for_replicas=args.wait_for_replicas,
        replica_timeout=args.replica_timeout,
        namespace=namespace,
        tls_ca_file=tls_ca_file,
    )
    logging.getLogger("ferroq").info(
        "worker %s serving %s with concurrency %d%s", server.server_id, server.config.queues,
        server.concurrency, ", declared keys" if server.declares_keys else "",
    )  # fmt: skip
    if args.metrics_port is not None:
        from prometheus_client import start_http_server
        from prometheus_client.core import CollectorRegistry

        from ferroq.metrics import WorkerMetricsCollector

        registry = CollectorRegistry()
        registry.register(WorkerMetricsCollector(server))
        start_http_server(args.metrics_port, addr=args.metrics_addr, registry=registry)
        logging.getLogger("ferroq").info(
            "worker metrics on http://%s:%d/metrics", args.metrics_addr, args.metrics_port
        )
    from ferroq.cli.supervise import exit_with_supervisor

    exit_with_supervisor()
    server.run(cast(Handler, handler))
    return 0


def _scheduler(args: argparse.Namespace) -> int:
    from ferroq.periodic import PeriodicTaskManager
    from ferroq.scheduler import Scheduler

    if args.redis:
        # A module-level Scheduler reads $REDIS_URL as it is built, at the import below.
        os.environ["REDIS_URL"] = args.redis
    try:
        obj = load_object(args.app)
    except ValueError as e:
        print(f"ferroq scheduler: {e}", file=sys.stderr)
        return 2
    if not isinstance(obj, (Scheduler, PeriodicTaskManager)):
        print(f"ferroq scheduler: {args.app} is not a Scheduler", file=sys.stderr)
        return 2
    obj.run()
    return 0


def doctor(
    redis_url: str | None,
    namespace: str | None = None,
    grace: float = 0.0,
    tls_ca_file: str | None = None,
) -> list[str]:
    """Problems of a deployment: queues with work, or fed by a scheduler, that no server serves.

    Args:
        redis_url: Redis URL (default ``$REDIS_URL``).
        namespace: Key prefix (default asynq's).
        grace: When a problem is found, look again this many seconds later and report only what
            persists: a server whose heartbeat expired during a Redis outage publishes it again
            within one heartbeat round, and is not missing.
        tls_ca_file: PEM CA to trust for ``rediss://``.

    Returns:
        The problems, or an empty list when all is well.
    """
    with Inspector(redis_url, namespace=namespace, tls_ca_file=tls_ca_file) as insp:
        problems = _problems(insp)
        if problems and grace > 0:
            time.sleep(grace)
            # Compared by what is unserved, not by the text: the counts in it move as tasks arrive.
            again = _problems(insp)
            return [again[k] for k in problems if k in again]
        return list(problems.values())


def _problems(insp: Inspector) -> dict[tuple[str, str], str]:
    """The problems found, keyed by ("queue", name) or ("entry", entry ID)."""
    served = {q for s in insp.servers() for q in s.queues}
    problems: dict[tuple[str, str], str] = {}
    for c in insp.get_queue_infos():
        if c.queue not in served and c.pending + c.scheduled + c.retry > 0:
            problems[("queue", c.queue)] = (
                f"queue {c.queue!r} has {c.pending} pending, {c.scheduled} scheduled and "
                f"{c.retry} retry tasks but no live server serves it"
            )
    for e in insp.scheduler_entries():
        if e.queue not in served:
            problems[("entry", e.id)] = (
                f"scheduler entry {e.id} ({e.spec!r}, {e.task_type}) feeds queue {e.queue!r}, "
                "which no live server serves"
            )
    return problems


def _doctor(args: argparse.Namespace) -> int:
    problems = doctor(args.redis, args.namespace, grace=args.grace, tls_ca_file=args.tls_ca_file)
    for p in problems:
        print(f"problem: {p}")
    if not problems:
        print("ok: every queue with work, and every scheduled queue, has a live server")
    return 1 if problems else 0


def _demo(args: argparse.Namespace) -> int:
    from ferroq.demo import run_demo

    return run_demo(tasks=args.tasks, redis_url=args.redis)


def _metrics(args: argparse.Namespace) -> int:
    from prometheus_client import start_http_server
    from prometheus_client.core import CollectorRegistry

    from ferroq.metrics import QueueMetricsCollector

    insp = Inspector(args.redis, namespace=args.namespace, tls_ca_file=args.tls_ca_file)
    insp.ping()
    registry = CollectorRegistry()
    registry.register(QueueMetricsCollector(insp, memory=args.memory))
    server, thread = start_http_server(args.port, addr=args.addr, registry=registry)
    print(f"serving queue metrics on http://{args.addr}:{server.server_port}/metrics", flush=True)
    try:
        thread.join()
    except KeyboardInterrupt:
        server.shutdown()
    return 0
