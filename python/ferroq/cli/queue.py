"""``ferroq queue``: list, inspect, history, pause, resume and remove queues."""

from __future__ import annotations

import argparse

from ferroq.cli._common import (
    ago,
    connection_flags,
    fields,
    inspector,
    output_flags,
    positive_int,
    print_json,
    table,
)


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Adds ``queue`` and its subcommands."""
    p = sub.add_parser(
        "queue", parents=[common], help="list, inspect, pause, resume and remove queues"
    )
    qs = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, help: str, aliases: list[str] | None = None) -> argparse.ArgumentParser:
        a = qs.add_parser(name, parents=[common], help=help, aliases=aliases or [])
        connection_flags(a)
        return a

    ls = action("ls", "list queues", ["list"])
    output_flags(ls)
    ls.set_defaults(func=_ls)

    insp = action("inspect", "show a queue's sizes, counters, latency and memory")
    insp.add_argument("queues", nargs="+", metavar="QUEUE")
    insp.add_argument("--no-memory", action="store_true", help="skip the sampled memory estimate")
    output_flags(insp)
    insp.set_defaults(func=_inspect)

    hist = action("history", "processed and failed tasks per day")
    hist.add_argument("queues", nargs="+", metavar="QUEUE")
    hist.add_argument(
        "--days", "-x", type=positive_int, default=10, help="days to show (default 10)"
    )
    output_flags(hist)
    hist.set_defaults(func=_history)

    pause = action("pause", "stop servers from taking a queue's tasks")
    pause.add_argument("queues", nargs="+", metavar="QUEUE")
    pause.set_defaults(func=_pause)

    resume = action("resume", "resume paused queues", ["unpause"])
    resume.add_argument("queues", nargs="+", metavar="QUEUE")
    resume.set_defaults(func=_resume)

    rm = action("rm", "delete queues and every key they have", ["remove", "delete"])
    rm.add_argument("queues", nargs="+", metavar="QUEUE")
    rm.add_argument("--force", "-f", action="store_true", help="also delete the tasks they hold")
    rm.set_defaults(func=_rm)


def _ls(args: argparse.Namespace) -> int:
    with inspector(args) as insp:
        names = insp.queues()
    if args.json:
        print_json(names)
    else:
        for q in names:
            print(q)
    return 0


def _inspect(args: argparse.Namespace) -> int:
    with inspector(args) as insp:
        infos = [insp.get_queue_info(q, memory=not args.no_memory) for q in args.queues]
    if args.json:
        print_json(infos)
        return 0
    for i, q in enumerate(infos):
        if i:
            print()
        mem = "-" if q.memory_usage is None else f"{q.memory_usage / 1024:,.1f} KiB (sampled)"
        fields(
            [
                ("Queue", q.queue),
                ("Paused", "yes" if q.paused else "no"),
                ("Size", str(q.size)),
                ("Latency", ago(q.latency)),
                ("Memory", mem),
                ("Groups", str(q.groups)),
            ]
        )
        table(
            None,
            ["active", "pending", "aggregating", "scheduled", "retry", "archived", "completed"],
            [[q.active, q.pending, q.aggregating, q.scheduled, q.retry, q.archived, q.completed]],
        )
        table(
            None,
            ["processed today", "failed today", "error rate", "processed total", "failed total"],
            [
                [
                    q.processed,
                    q.failed,
                    _rate(q.processed, q.failed),
                    q.processed_total,
                    q.failed_total,
                ]
            ],
        )
    return 0


def _rate(processed: int, failed: int) -> str:
    return f"{failed / processed:.2%}" if processed else "-"


def _history(args: argparse.Namespace) -> int:
    with inspector(args) as insp:
        stats = {q: insp.history(q, args.days) for q in args.queues}
    if args.json:
        print_json(stats)
        return 0
    for q, rows in stats.items():
        table(
            f"Queue {q}",
            ["date (UTC)", "processed", "failed", "error rate"],
            [
                [d.date.isoformat(), d.processed, d.failed, _rate(d.processed, d.failed)]
                for d in rows
            ],
        )
    return 0


def _pause(args: argparse.Namespace) -> int:
    with inspector(args) as insp:
        for q in args.queues:
            insp.pause_queue(q)
            print(f"paused queue {q}")
    return 0


def _resume(args: argparse.Namespace) -> int:
    with inspector(args) as insp:
        for q in args.queues:
            insp.unpause_queue(q)
            print(f"resumed queue {q}")
    return 0


def _rm(args: argparse.Namespace) -> int:
    with inspector(args) as insp:
        for q in args.queues:
            insp.delete_queue(q, force=args.force)
            print(f"deleted queue {q}")
    return 0
