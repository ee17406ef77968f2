"""``ferroq group``: the aggregation groups of a queue."""

from __future__ import annotations

import argparse

from ferroq.cli._common import connection_flags, inspector, output_flags, print_json, table


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Adds ``group ls``."""
    p = sub.add_parser("group", parents=[common], help="aggregation groups")
    gs = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = gs.add_parser("ls", parents=[common], help="list a queue's groups", aliases=["list"])
    connection_flags(ls)
    ls.add_argument("--queue", "-q", required=True, help="queue name")
    output_flags(ls)
    ls.set_defaults(func=_ls)


def _ls(args: argparse.Namespace) -> int:
    with inspector(args) as insp:
        groups = insp.groups(args.queue)
    if args.json:
        print_json(groups)
    else:
        table(f"Groups of {args.queue}", ["group", "size"], [[g.group, g.size] for g in groups])
    return 0
