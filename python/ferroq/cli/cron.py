"""``ferroq cron``: the entries of live schedulers and what they enqueued."""

from __future__ import annotations

import argparse

from ferroq._native import NativeInspector
from ferroq.cli._common import (
    connection_flags,
    inspector,
    output_flags,
    positive_int,
    print_json,
    short,
    table,
    until,
)


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Adds ``cron ls`` and ``cron history``."""
    p = sub.add_parser("cron", parents=[common], help="periodic entries of live schedulers")
    cs = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = cs.add_parser("ls", parents=[common], help="list scheduler entries", aliases=["list"])
    connection_flags(ls)
    output_flags(ls)
    ls.set_defaults(func=_ls)
    hist = cs.add_parser("history", parents=[common], help="tasks an entry enqueued, newest first")
    connection_flags(hist)
    hist.add_argument("entries", nargs="+", metavar="ENTRY_ID")
    hist.add_argument("--page", type=positive_int, default=1, help="page number (default 1)")
    hist.add_argument(
        "--size",
        type=positive_int,
        default=None,
        help=f"page size (default {NativeInspector.default_page_size})",
    )
    output_flags(hist)
    hist.set_defaults(func=_history)


def _ls(args: argparse.Namespace) -> int:
    with inspector(args) as insp:
        entries = insp.scheduler_entries()
    if args.json:
        print_json(entries)
        return 0
    table(
        "Scheduler entries",
        ["entry id", "spec", "type", "payload", "options", "next", "prev"],
        [
            [
                e.id,
                e.spec,
                e.task_type,
                short(e.task_payload, 24),
                short(", ".join(e.enqueue_options), 40),
                until(e.next_enqueue_at),
                until(e.prev_enqueue_at),
            ]
            for e in entries
        ],
    )
    return 0


def _history(args: argparse.Namespace) -> int:
    with inspector(args) as insp:
        events = {
            e: insp.list_scheduler_enqueue_events(e, page=args.page, page_size=args.size)
            for e in args.entries
        }
    if args.json:
        print_json(events)
        return 0
    for entry, rows in events.items():
        table(
            f"Entry {entry}",
            ["task id", "enqueued at"],
            [[ev.task_id, ev.enqueued_at] for ev in rows],
        )
    return 0
