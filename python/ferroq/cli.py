"""The ``ferroq`` command.

``worker`` runs a server for a ServeMux found by import path; ``demo`` shows a client, a periodic
producer and a server cooperating.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import cast

from ferroq import _options
from ferroq._native import DEFAULT_NAMESPACE, NativeClient, ServerConfig
from ferroq.errors import FerroqError
from ferroq.servemux import Handler
from ferroq.server import Server

__all__ = ["doctor", "load_object", "main"]


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


def _seconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0 <= v < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a non-negative number of seconds, got {text}")
    return v


def _parser() -> argparse.ArgumentParser:
    # Defaults are the core's (ServerConfig): the options below default to "not given".
    defaults = ServerConfig()
    queues = ", ".join(f"{q}={prio}" for q, prio in defaults.queues.items())
    p = argparse.ArgumentParser(prog="ferroq", description=__doc__)
    p.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    # Also accepted after the subcommand; SUPPRESS keeps a value given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--log-level", default=argparse.SUPPRESS, help="logging level (default INFO)"
    )
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], help=help)

    w = command("worker", help="run a server for a ServeMux (or handler) by import path")
    w.add_argument("app", help="module:attribute of a ServeMux or handler, e.g. myapp.tasks:mux")
    w.add_argument("--redis", default=None, help="Redis URL (default $REDIS_URL)")
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
    ):
        w.add_argument(
            flag, type=float, default=None,
            help=f"{what}, seconds (default {getattr(defaults, name):g})",
        )  # fmt: skip
    w.add_argument(
        "--retry-delay", type=_seconds, default=None,
        help="seconds before every retry, recovered tasks included (default asynq's "
        "n**4 + 15 + rand(30)*(n+1), n = retries so far)",
    )  # fmt: skip
    w.add_argument("--namespace", default=None, help=f"key prefix (default {DEFAULT_NAMESPACE})")
    w.add_argument("--tls-ca-file", default=None, help="PEM CA to trust for rediss:// URLs")

    s = command("scheduler", help="run a Scheduler (or PeriodicTaskManager) by import path")
    s.add_argument("app", help="module:attribute of a Scheduler, e.g. myapp.periodic:scheduler")

    doc = command("doctor", help="check that every queue with work has a live server")
    doc.add_argument("--redis", default=None, help="Redis URL (default $REDIS_URL)")
    doc.add_argument("--namespace", default=None, help=f"key prefix (default {DEFAULT_NAMESPACE})")
    doc.add_argument(
        "--grace", type=float, default=defaults.heartbeat_interval,
        help="seconds to wait before confirming a missing server: one heartbeat round "
        f"(default {defaults.heartbeat_interval:g})",
    )  # fmt: skip

    d = command("demo", help="a client, a periodic producer and a server working together")
    d.add_argument("--tasks", type=int, default=2000, help="size of the burst (default 2000)")
    d.add_argument("--redis", default=None, help="Redis URL (default $REDIS_URL, else embedded)")
    return p


def _worker(args: argparse.Namespace) -> int:
    try:
        handler = load_object(args.app)
    except ValueError as e:
        print(f"ferroq worker: {e}", file=sys.stderr)
        return 2
    if not callable(handler):
        print(f"ferroq worker: {args.app} is not a ServeMux or handler", file=sys.stderr)
        return 2
    queues = dict(args.queue) if args.queue else None
    fixed: float | None = args.retry_delay
    server = Server(
        args.redis,
        retry_delay=None if fixed is None else (lambda retried, error, task: fixed),
        concurrency=args.concurrency,
        queues=queues,
        strict_priority=args.strict_priority or None,
        shutdown_timeout=args.shutdown_timeout,
        task_check_interval=args.task_check_interval,
        heartbeat_interval=args.heartbeat_interval,
        lease_duration=args.lease_duration,
        lease_grace=args.lease_grace,
        recoverer_interval=args.recoverer_interval,
        namespace=args.namespace,
        tls_ca_file=args.tls_ca_file,
    )
    logging.getLogger("ferroq").info(
        "worker %s serving %s with concurrency %d", server.server_id, server.config.queues,
        server.concurrency,
    )  # fmt: skip
    server.run(cast(Handler, handler))
    return 0


def _scheduler(args: argparse.Namespace) -> int:
    from ferroq.periodic import PeriodicTaskManager
    from ferroq.scheduler import Scheduler

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


def doctor(redis_url: str | None, namespace: str | None = None, grace: float = 0.0) -> list[str]:
    """Problems of a deployment: queues with work, or fed by a scheduler, that no server serves.

    Args:
        redis_url: Redis URL (default ``$REDIS_URL``).
        namespace: Key prefix (default asynq's).
        grace: When a problem is found, look again this many seconds later and report only what
            persists: a server whose heartbeat expired during a Redis outage publishes it again
            within one heartbeat round, and is not missing.

    Returns:
        The problems, or an empty list when all is well.
    """
    native = NativeClient(_options.redis_url(redis_url), namespace)
    problems = _problems(native)
    if problems and grace > 0:
        time.sleep(grace)
        # Compared by what is unserved, not by the text: the counts in it move as tasks arrive.
        again = _problems(native)
        return [again[k] for k in problems if k in again]
    return list(problems.values())


def _problems(native: NativeClient) -> dict[tuple[str, str], str]:
    """The problems found, keyed by ("queue", name) or ("entry", entry ID)."""
    served = set(native.served_queues())
    problems: dict[tuple[str, str], str] = {}
    for c in native.queue_counts():
        if c.queue not in served and c.pending + c.scheduled + c.retry > 0:
            problems[("queue", c.queue)] = (
                f"queue {c.queue!r} has {c.pending} pending, {c.scheduled} scheduled and "
                f"{c.retry} retry tasks but no live server serves it"
            )
    for e in native.scheduler_entries():
        if e.queue not in served:
            problems[("entry", e.id)] = (
                f"scheduler entry {e.id} ({e.spec!r}, {e.task_type}) feeds queue {e.queue!r}, "
                "which no live server serves"
            )
    return problems


def _doctor(args: argparse.Namespace) -> int:
    problems = doctor(args.redis, args.namespace, grace=args.grace)
    for p in problems:
        print(f"problem: {p}")
    if not problems:
        print("ok: every queue with work, and every scheduled queue, has a live server")
    return 1 if problems else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ferroq`` command."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "worker":
            return _worker(args)
        if args.command == "scheduler":
            return _scheduler(args)
        if args.command == "doctor":
            return _doctor(args)
        from ferroq.demo import run_demo

        return run_demo(tasks=args.tasks, redis_url=args.redis)
    except FerroqError as e:
        print(f"ferroq {args.command}: {e}", file=sys.stderr)
        return 1
