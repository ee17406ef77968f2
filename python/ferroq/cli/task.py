"""``ferroq task``: list, inspect, run, archive, delete, cancel and enqueue tasks."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from ferroq._native import DEFAULT_MAX_RETRY, DEFAULT_QUEUE, NativeInspector, TaskInfo, TaskState
from ferroq.cli._common import (
    ALL_STATES,
    ago,
    connection_flags,
    duration,
    fields,
    inspector,
    instant,
    output_flags,
    positive_int,
    print_json,
    short,
    state_arg,
    table,
    until,
)

S = TaskState
# Which states each bulk command takes is the core's rule.
_BULK = NativeInspector.bulk_states()
RUN_ALL, ARCHIVE_ALL, DELETE_ALL = _BULK["run"], _BULK["archive"], _BULK["delete"]


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Adds ``task`` and its subcommands."""
    p = sub.add_parser("task", parents=[common], help="list, inspect and act on tasks")
    ts = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, help: str, aliases: list[str] | None = None) -> argparse.ArgumentParser:
        a = ts.add_parser(name, parents=[common], help=help, aliases=aliases or [])
        connection_flags(a)
        return a

    def queue_and_state(a: argparse.ArgumentParser, states: Sequence[TaskState]) -> None:
        a.add_argument("--queue", "-q", required=True, help="queue name")
        a.add_argument(
            "--state", "-s", required=True, type=state_arg(states),
            help=f"task state: {', '.join(s.value for s in states)}",
        )  # fmt: skip
        a.add_argument("--group", "-g", default=None, help="group name (aggregating tasks)")

    ls = action("ls", "list a queue's tasks in one state", ["list"])
    queue_and_state(ls, ALL_STATES)
    ls.add_argument("--page", type=positive_int, default=1, help="page number (default 1)")
    ls.add_argument(
        "--size",
        type=positive_int,
        default=None,
        help=f"page size (default {NativeInspector.default_page_size})",
    )
    output_flags(ls)
    ls.set_defaults(func=_ls)

    for name, help, func, aliases in (
        ("inspect", "show one task", _inspect, []),
        ("run", "move a task to pending, to run now", _run, []),
        ("archive", "archive a task", _archive, []),
        ("delete", "delete a task", _delete, ["rm", "remove"]),
    ):
        a = action(name, help, aliases)
        a.add_argument("--queue", "-q", required=True, help="queue name")
        a.add_argument("--id", "-i", required=True, help="task ID")
        if name == "inspect":
            output_flags(a)
        a.set_defaults(func=func)

    cancel = action("cancel", "ask the servers running tasks to cancel them")
    cancel.add_argument("ids", nargs="+", metavar="TASK_ID")
    cancel.set_defaults(func=_cancel)

    for name, states, verb, func in (
        ("runall", RUN_ALL, "run", _run_all),
        ("archiveall", ARCHIVE_ALL, "archive", _archive_all),
        ("deleteall", DELETE_ALL, "delete", _delete_all),
    ):
        a = action(name, f"{verb} every task of a queue in one state")
        queue_and_state(a, states)
        a.set_defaults(func=func)

    enq = action("enqueue", "enqueue a task")
    enq.add_argument("--type", "--type_name", "-t", dest="type", required=True, help="task type")
    enq.add_argument("--payload", "-l", default="", help="payload, as text (default empty)")
    enq.add_argument("--queue", default=None, help=f"queue (default {DEFAULT_QUEUE})")
    enq.add_argument(
        "--retry", type=int, default=None, help=f"max retries (default {DEFAULT_MAX_RETRY})"
    )
    enq.add_argument("--id", dest="task_id", default=None, help="task ID (default a UUID)")
    enq.add_argument(
        "--timeout", type=duration, default=None, help="per-run time limit (30s, 5m...)"
    )
    enq.add_argument("--deadline", type=instant, default=None, help="absolute deadline (RFC 3339)")
    enq.add_argument("--unique", type=duration, default=None, help="uniqueness TTL (1h...)")
    enq.add_argument(
        "--process-at", "--process_at", type=instant, default=None, help="run at (RFC 3339)"
    )
    enq.add_argument(
        "--process-in", "--process_in", type=duration, default=None, help="run after (10m...)"
    )
    enq.add_argument("--retention", type=duration, default=None, help="keep after success (24h...)")
    enq.add_argument("--group", default=None, help="aggregation group")
    output_flags(enq)
    enq.set_defaults(func=_enqueue)


def _ls(args: argparse.Namespace) -> int:
    with inspector(args) as insp:
        tasks = insp.list_tasks(
            args.queue, args.state, page=args.page, page_size=args.size, group=args.group
        )
    if args.json:
        print_json(tasks)
        return 0
    state: TaskState = args.state
    headers, row = _columns(state)
    title = f"{state.value.capitalize()} tasks of {args.queue}" + (
        f" (group {args.group})" if args.group else ""
    )
    table(title + f", page {args.page}", headers, [row(t) for t in tasks])
    return 0


def _columns(state: TaskState) -> tuple[list[str], Callable[[TaskInfo], list[object]]]:
    base = ["id", "type", "payload"]

    def common(t: TaskInfo) -> list[object]:
        return [t.id, t.type, short(t.payload, 30)]

    if state == S.ACTIVE:
        return [*base, "orphaned"], lambda t: [*common(t), "yes" if t.is_orphaned else "no"]
    if state == S.PENDING:
        return [*base, "max retry", "retried", "last error"], lambda t: [
            *common(t), t.max_retry, t.retried, short(t.last_error, 40),
        ]  # fmt: skip
    if state == S.SCHEDULED:
        return [*base, "process", "max retry", "retried"], lambda t: [
            *common(t), until(t.next_process_at), t.max_retry, t.retried,
        ]  # fmt: skip
    if state == S.RETRY:
        return [*base, "next retry", "retried", "max retry", "last error"], lambda t: [
            *common(t), until(t.next_process_at), t.retried, t.max_retry, short(t.last_error, 40),
        ]  # fmt: skip
    if state == S.ARCHIVED:
        return [*base, "retried", "last failed", "last error"], lambda t: [
            *common(t), t.retried, until(t.last_failed_at), short(t.last_error, 40),
        ]  # fmt: skip
    if state == S.COMPLETED:
        return [*base, "completed", "result"], lambda t: [
            *common(t), until(t.completed_at), short(t.result, 30),
        ]  # fmt: skip
    return [*base, "group"], lambda t: [*common(t), t.group or "-"]


def _inspect(args: argparse.Namespace) -> int:
    with inspector(args) as insp:
        t = insp.get_task_info(args.queue, args.id)
    if args.json:
        print_json(t)
        return 0
    show_task(t)
    return 0


def show_task(t: TaskInfo) -> None:
    """Prints every field of a task."""
    fields(
        [
            ("ID", t.id),
            ("Queue", t.queue),
            ("Type", t.type),
            ("State", t.state.value + (" (orphaned)" if t.is_orphaned else "")),
            ("Payload", short(t.payload, 200)),
            ("Headers", ", ".join(f"{k}={v}" for k, v in t.headers.items()) or "-"),
            ("Retried", f"{t.retried} of {t.max_retry}"),
            ("Last error", t.last_error or "-"),
            (
                "Last failed",
                f"{t.last_failed_at} ({until(t.last_failed_at)})" if t.last_failed_at else "-",
            ),
            (
                "Next run",
                f"{t.next_process_at} ({until(t.next_process_at)})" if t.next_process_at else "-",
            ),
            ("Timeout", ago(t.timeout) if t.timeout else "-"),
            ("Deadline", t.deadline),
            ("Group", t.group or "-"),
            ("Retention", ago(t.retention) if t.retention else "-"),
            ("Completed", t.completed_at),
            ("Result", short(t.result, 200) if t.result is not None else "-"),
            ("Progress", short(t.progress, 200) if t.progress is not None else "-"),
        ]
    )


def _run(args: argparse.Namespace) -> int:
    with inspector(args) as insp:
        insp.run_task(args.queue, args.id)
    print(f"task {args.id} is pending: it runs next")
    return 0


def _archive(args: argparse.Namespace) -> int:
    with inspector(args) as insp:
        insp.archive_task(args.queue, args.id)
    print(f"archived task {args.id}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    with inspector(args) as insp:
        insp.delete_task(args.queue, args.id)
    print(f"deleted task {args.id}")
    return 0


def _cancel(args: argparse.Namespace) -> int:
    with inspector(args) as insp:
        for task_id in args.ids:
            heard = insp.cancel_processing(task_id)
            print(f"cancel request for {task_id} sent to {heard} server(s)")
    return 0


def _run_all(args: argparse.Namespace) -> int:
    with inspector(args) as insp:
        n = insp.run_all(args.queue, args.state, group=args.group)
    print(f"{n} {args.state.value} tasks of {args.queue} are pending")
    return 0


def _archive_all(args: argparse.Namespace) -> int:
    with inspector(args) as insp:
        n = insp.archive_all(args.queue, args.state, group=args.group)
    print(f"archived {n} {args.state.value} tasks of {args.queue}")
    return 0


def _delete_all(args: argparse.Namespace) -> int:
    with inspector(args) as insp:
        n = insp.delete_all(args.queue, args.state, group=args.group)
    print(f"deleted {n} {args.state.value} tasks of {args.queue}")
    return 0


def _enqueue(args: argparse.Namespace) -> int:
    from ferroq.client import Client
    from ferroq.task import Task

    opts = {
        "queue": args.queue,
        "max_retry": args.retry,
        "task_id": args.task_id,
        "timeout": args.timeout,
        "deadline": args.deadline,
        "unique": args.unique,
        "process_at": args.process_at,
        "process_in": args.process_in,
        "retention": args.retention,
        "group": args.group,
    }
    given = {k: v for k, v in opts.items() if v is not None}
    with Client(args.redis, namespace=args.namespace, tls_ca_file=args.tls_ca_file) as client:
        info = client.enqueue(Task(args.type, args.payload.encode()), **given)
    if args.json:
        print_json(info)
    else:
        print(f"enqueued task {info.id} ({info.type}) in queue {info.queue}: {info.state.value}")
    return 0
