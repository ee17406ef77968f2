"""``ferroq server``: live servers and what they run."""

from __future__ import annotations

import argparse
from datetime import datetime, timezone

from ferroq.cli._common import ago, connection_flags, inspector, output_flags, print_json, table


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Adds ``server ls``."""
    p = sub.add_parser("server", parents=[common], help="live servers")
    ss = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = ss.add_parser("ls", parents=[common], help="list live servers", aliases=["list"])
    connection_flags(ls)
    output_flags(ls)
    ls.set_defaults(func=_ls)


def _ls(args: argparse.Namespace) -> int:
    with inspector(args) as insp:
        servers = insp.servers()
    if args.json:
        print_json(servers)
        return 0
    now = datetime.now(timezone.utc)
    table(
        "Servers",
        ["host", "pid", "id", "status", "busy", "queues", "started"],
        [
            [
                s.host,
                s.pid,
                s.id,
                s.status,
                f"{len(s.active_workers)}/{s.concurrency}",
                ", ".join(f"{q}={p}" for q, p in sorted(s.queues.items()))
                + (" (strict)" if s.strict_priority else ""),
                f"{ago(now - s.started)} ago" if s.started else "-",
            ]
            for s in servers
        ],
    )
    workers = [(s, w) for s in servers for w in s.active_workers]
    if workers:
        print()
        table(
            "Running tasks",
            ["server", "task id", "type", "queue", "started", "deadline"],
            [
                [
                    f"{s.host}:{s.pid}",
                    w.task_id,
                    w.task_type,
                    w.queue,
                    f"{ago(now - w.started)} ago" if w.started else "-",
                    w.deadline,
                ]
                for s, w in workers
            ],
        )
    return 0
