"""The ``ferroq`` command: run workers and schedulers, and operate queues.

Running: ``worker``, ``scheduler``, ``demo``, ``metrics`` (a Prometheus exporter), ``doctor``.
Operating, as asynq's CLI: ``stats``, ``queue``, ``task``, ``group``, ``server``, ``cron``.
Every command that talks to Redis takes ``--redis URL`` (default ``$REDIS_URL``); the admin
commands print tables, or JSON with ``--json``. A bad argument exits with 2, a Redis that cannot
be reached (or refuses the call) with 1, each with one line on stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from ferroq.cli import cron, group, queue, run, server, stats, task
from ferroq.cli.run import doctor, load_object
from ferroq.errors import FerroqError

__all__ = ["doctor", "load_object", "main"]


class _Parser(argparse.ArgumentParser):
    """argparse, with one line for a bad argument instead of the whole usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = _Parser(
        prog="ferroq", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    # Also accepted after the subcommand; SUPPRESS keeps a value given before it.
    common = _Parser(add_help=False)
    common.add_argument(
        "--log-level", default=argparse.SUPPRESS, help="logging level (default INFO)"
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run.register(sub, common)
    stats.register(sub, common)
    queue.register(sub, common)
    task.register(sub, common)
    group.register(sub, common)
    server.register(sub, common)
    cron.register(sub, common)
    comp = sub.add_parser("completion", parents=[common], help="print a shell completion script")
    comp.add_argument("shell", choices=["bash", "zsh", "tcsh"], help="the shell")
    comp.set_defaults(func=lambda args: _completion(p, args.shell))
    return p


def _completion(parser: argparse.ArgumentParser, shell: str) -> int:
    """Prints the completion script (``eval "$(ferroq completion bash)"``).

    It is generated from the parser itself by shtab, so it never lags behind the commands.
    """
    import shtab

    print(shtab.complete(parser, shell=shell))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ferroq`` command."""
    parser = _parser()
    args = parser.parse_args(argv)
    # The words given, for a command that starts itself again (``worker --reload``).
    args.argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    name = " ".join(x for x in (args.command, getattr(args, "action", None)) if x)
    try:
        code: int = args.func(args)
        return code
    except FerroqError as e:
        print(f"ferroq {name}: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        # A TLS CA file that cannot be read, a metrics port in use.
        print(f"ferroq {name}: {e}", file=sys.stderr)
        return 1
