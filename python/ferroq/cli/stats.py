"""``ferroq stats``: every queue at a glance, and the Redis behind them."""

from __future__ import annotations

import argparse
from typing import Any

from ferroq.cli._common import (
    ago,
    connection_flags,
    inspector,
    output_flags,
    plain,
    print_json,
    table,
)


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Adds ``stats``."""
    p = sub.add_parser("stats", parents=[common], help="tasks by state, per queue, and Redis")
    connection_flags(p)
    output_flags(p)
    p.set_defaults(func=_stats)


def _stats(args: argparse.Namespace) -> int:
    with inspector(args) as insp:
        infos = insp.get_queue_infos()
        redis = insp.redis_info()
    states = ["active", "pending", "aggregating", "scheduled", "retry", "archived", "completed"]
    totals = {s: sum(getattr(q, s) for q in infos) for s in states}
    today = {
        "processed": sum(q.processed for q in infos),
        "failed": sum(q.failed for q in infos),
    }
    if args.json:
        out: dict[str, Any] = {
            "states": totals,
            "today": today,
            "queues": plain(infos),
            "redis": redis,
        }
        print_json(out)
        return 0
    table("Tasks by state", states, [[totals[s] for s in states]])
    print()
    table(
        "Queues",
        ["queue", "state", "size", "latency", "pending", "active", "scheduled", "retry", "archived",
         "completed", "processed today", "failed today"],
        [
            [q.queue, "paused" if q.paused else "run", q.size, ago(q.latency), q.pending, q.active,
             q.scheduled, q.retry, q.archived, q.completed, q.processed, q.failed]
            for q in infos
        ],
    )  # fmt: skip
    print()
    rate = f"{today['failed'] / today['processed']:.2%}" if today["processed"] else "-"
    table(
        "Today (UTC)",
        ["processed", "failed", "error rate"],
        [[today["processed"], today["failed"], rate]],
    )
    print()
    table("Redis", list(redis), [list(redis.values())])
    return 0
