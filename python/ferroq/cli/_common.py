"""What every ``ferroq`` subcommand shares: connection flags, argument types, and output.

Tables for people are drawn by rich (aligned columns that fit the terminal, plain text when the
output is not one); ``--json`` is for scripts.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import sys
import types
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, timedelta, timezone
from typing import Any

from ferroq._native import DEFAULT_NAMESPACE, TaskState
from ferroq.inspector import Inspector

#: A subcommand's implementation: parsed arguments in, exit code out.
Command = Callable[[argparse.Namespace], int]

_GO_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration(text: str) -> float:
    """Seconds from ``90``, ``1.5`` or a Go duration (``30s``, ``1h30m``, ``250ms``).

    asynq's CLI takes Go durations; plain seconds are accepted too.
    """
    t = text.strip()
    try:
        v = float(t)
    except ValueError:
        pos, v = 0, 0.0
        for m in _GO_DURATION.finditer(t):
            if m.start() != pos:
                break
            v += float(m.group(1)) * _UNIT[m.group(2)]
            pos = m.end()
        if pos != len(t) or not t:
            raise argparse.ArgumentTypeError(
                f"expected seconds or a duration such as 30s or 1h30m, got {text!r}"
            ) from None
    if not 0 <= v < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a non-negative duration, got {text!r}")
    return v


def instant(text: str) -> datetime:
    """An aware datetime from RFC 3339 (``2026-12-01T10:00:00Z``); naive ones read as UTC."""
    try:
        d = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an RFC 3339 time such as 2026-12-01T10:00:00Z, got {text!r}"
        ) from None
    return d if d.tzinfo else d.replace(tzinfo=timezone.utc)


def positive_int(text: str) -> int:
    """An integer of at least 1."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected 1 or more, got {v}")
    return v


def connection_flags(p: argparse.ArgumentParser) -> None:
    """Adds ``--redis``, ``--namespace``, ``--tls-ca-file`` (all commands that talk to Redis)."""
    p.add_argument("--redis", "-u", default=None, help="Redis URL (default $REDIS_URL)")
    p.add_argument("--namespace", default=None, help=f"key prefix (default {DEFAULT_NAMESPACE})")
    p.add_argument("--tls-ca-file", default=None, help="PEM CA to trust for rediss:// URLs")


def output_flags(p: argparse.ArgumentParser) -> None:
    """``--json``: print machine-readable JSON instead of a table."""
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def inspector(args: argparse.Namespace) -> Inspector:
    """The Inspector the connection flags name."""
    return Inspector(args.redis, namespace=args.namespace, tls_ca_file=args.tls_ca_file)


def state_arg(allowed: Iterable[TaskState]) -> Callable[[str], TaskState]:
    """An argparse type for a task state among ``allowed``."""
    names = [s.value for s in allowed]

    def parse(text: str) -> TaskState:
        if text not in names:
            raise argparse.ArgumentTypeError(
                f"invalid state {text!r}: expected one of {', '.join(names)}"
            )
        return TaskState(text)

    return parse


ALL_STATES = (
    TaskState.ACTIVE,
    TaskState.PENDING,
    TaskState.AGGREGATING,
    TaskState.SCHEDULED,
    TaskState.RETRY,
    TaskState.ARCHIVED,
    TaskState.COMPLETED,
)


def plain(value: Any) -> Any:
    """A JSON-ready copy of ``value``.

    Times are RFC 3339, durations seconds, bytes UTF-8 text (``{"base64": ...}`` when they are
    not text), ferroq's result objects JSON objects of their properties.
    """
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(value).decode()}
    if isinstance(value, TaskState):
        return value.value
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    cls = type(value)
    fields = [
        n
        for n in dir(cls)
        if not n.startswith("_")
        and isinstance(getattr(cls, n), (types.GetSetDescriptorType, types.MemberDescriptorType))
    ]
    return {n: plain(getattr(value, n)) for n in fields}


def print_json(value: Any) -> None:
    """Prints ``value`` as indented JSON."""
    json.dump(plain(value), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


def short(value: object, width: int = 40) -> str:
    """A cell: text cut to ``width`` characters; bytes as text when they are, else hex."""
    if value is None:
        return "-"
    if isinstance(value, bytes):
        try:
            text = value.decode()
        except UnicodeDecodeError:
            text = "0x" + value.hex()
    elif isinstance(value, datetime):
        text = value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    elif isinstance(value, timedelta):
        text = ago(value)
    else:
        text = str(value)
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def ago(d: timedelta) -> str:
    """A short human duration: ``850ms``, ``12.3s``, ``4m05s``, ``2h10m``, ``3d4h``."""
    s = d.total_seconds()
    if s < 1:
        return f"{s * 1000:.0f}ms"
    if s < 60:
        return f"{s:.1f}s"
    if s < 3600:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    if s < 86400:
        return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"
    return f"{int(s // 86400)}d{int(s % 86400 // 3600)}h"


def until(when: datetime | None) -> str:
    """How far ``when`` is from now: ``in 4m05s`` or ``3.0s ago``."""
    if when is None:
        return "-"
    delta = when - datetime.now(timezone.utc)
    if delta.total_seconds() >= 0:
        return f"in {ago(delta)}"
    return f"{ago(-delta)} ago"


def table(title: str | None, headers: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Prints a table (rich: aligned columns, no colour when not on a terminal)."""
    from rich.box import SIMPLE_HEAD
    from rich.console import Console
    from rich.table import Table

    t = Table(
        title=title,
        box=SIMPLE_HEAD,
        title_justify="left",
        title_style="bold",
        pad_edge=False,
        show_edge=False,
    )
    for h in headers:
        t.add_column(h, no_wrap=True)
    n = 0
    for row in rows:
        t.add_row(*(c if isinstance(c, str) else short(c) for c in row))
        n += 1
    # Piped output is not cut to 80 columns: a script or a log gets whole IDs.
    console = Console(soft_wrap=False, width=None if sys.stdout.isatty() else 400)
    if n == 0:
        console.print(f"{title + ': ' if title else ''}none", highlight=False)
        return
    with console.capture() as captured:
        console.print(t)
    # Cells are padded to their column's width: trailing blanks are noise in logs and diffs.
    sys.stdout.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))


def fields(pairs: Sequence[tuple[str, object]]) -> None:
    """Prints ``name: value`` lines, aligned."""
    width = max(len(k) for k, _ in pairs)
    for k, v in pairs:
        text = v if isinstance(v, str) else short(v, 200)
        print(f"{k + ':':<{width + 1}} {text}")
