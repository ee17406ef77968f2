"""Reads what ran (the workers' records) and what was acknowledged (the producer's) and compares.

The records are written outside Redis (see ``chaos_app.record`` for the line format, and
``harness.Producer`` for ``acked.txt``), so the verdict holds whatever Redis kept or lost:

* **lost**: acknowledged by an enqueue that returned, never run to its end;
* **duplicated**: run to its end more than once; each duplicate is either *explained* by the
  scenario's rule (it was in flight when something was killed) or not.

Run as ``python -m chaos.checker DIR`` (from ``tests/``) to print the verdict of a directory.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "ACKED_FILE",
    "Excuse",
    "Execution",
    "Verdict",
    "check",
    "in_killed_process",
    "in_window",
    "read_acked",
    "read_executions",
]

#: The producer's file of acknowledged task IDs, one a line, in the records directory.
ACKED_FILE = "acked.txt"


@dataclass(frozen=True)
class Execution:
    """One line of a worker's record file: a handler that ran to its end."""

    task_id: str
    pid: int
    attempt: int
    at: float
    tag: str = ""


Excuse = Callable[[list[Execution]], bool]
"""Whether the executions of one task (two or more, oldest first) are an allowed duplicate."""


def read_executions(directory: Path, kind: str = "exec") -> list[Execution]:
    """Every execution recorded in ``directory`` (``exec-<pid>.log`` files), oldest first.

    With ``kind="begin"``, the starts of executions instead (``begin-<pid>.log``).
    A last line without its newline (a process killed in the middle of ``os.write``, which a
    single small write makes next to impossible) is ignored rather than misread.
    """
    out: list[Execution] = []
    for path in sorted(directory.glob(f"{kind}-*.log")):
        text = path.read_text()
        for line in text.splitlines(keepends=True):
            if not line.endswith("\n"):
                continue
            parts = line.split()
            tag = parts[4] if len(parts) > 4 else ""
            out.append(Execution(parts[0], int(parts[1]), int(parts[2]), float(parts[3]), tag))
    out.sort(key=lambda e: e.at)
    return out


def read_acked(directory: Path) -> list[str]:
    """The task IDs the producer acknowledged, in order (complete lines only)."""
    try:
        text = (directory / ACKED_FILE).read_text()
    except FileNotFoundError:
        return []
    return [line.strip() for line in text.splitlines(keepends=True) if line.endswith("\n")]


@dataclass
class Verdict:
    """The comparison of acknowledged and executed tasks."""

    acked: int
    executed: int
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    unexplained: list[str] = field(default_factory=list)
    unacked: int = 0
    """Tasks that ran but were never acknowledged (an enqueue that raised but had landed)."""

    def summary(self) -> str:
        """``lost=N duplicated=M`` and the details that qualify them."""
        return (
            f"lost={len(self.lost)} duplicated={len(self.duplicated)} "
            f"(unexplained={len(self.unexplained)}, acked={self.acked}, "
            f"executed={self.executed}, ran-unacked={self.unacked})"
        )


def check(
    acked: Collection[str], executions: list[Execution], excuse: Excuse | None = None
) -> Verdict:
    """Compares acknowledged IDs with the executions.

    Args:
        acked: IDs whose enqueue returned.
        executions: What ran, oldest first (``read_executions``).
        excuse: The scenario's rule for an allowed duplicate; without one, none is allowed.

    Returns:
        The verdict; ``lost`` and ``unexplained`` are what a test asserts empty.
    """
    runs: dict[str, list[Execution]] = defaultdict(list)
    for e in executions:
        runs[e.task_id].append(e)
    acked_set = set(acked)
    v = Verdict(acked=len(acked_set), executed=len(runs))
    v.lost = sorted(acked_set - runs.keys())
    v.unacked = len(runs.keys() - acked_set)
    for task_id, rs in runs.items():
        if len(rs) > 1:
            v.duplicated.append(task_id)
            if excuse is None or not excuse(rs):
                v.unexplained.append(task_id)
    return v


def in_killed_process(killed: Collection[int]) -> Excuse:
    """A duplicate is explained when every execution but one ran in a process that was killed.

    A process killed after its handler returned but before the outcome reached Redis runs the
    task once more elsewhere: that is at-least-once delivery, not a bug. Two executions in
    processes that lived are.
    """

    def excuse(rs: list[Execution]) -> bool:
        return sum(1 for r in rs if r.pid not in killed) <= 1

    return excuse


def in_window(start: float, end: float) -> Excuse:
    """A duplicate is explained when every execution but the last ended in ``[start, end]``.

    For an outage of Redis: a task in flight when it went down may run again, nothing else.
    """

    def excuse(rs: list[Execution]) -> bool:
        return all(start <= r.at <= end for r in rs[:-1])

    return excuse


def main(argv: list[str]) -> int:
    """Prints the verdict for a records directory; exit status 1 when something was lost."""
    if len(argv) != 1:
        print("usage: python -m chaos.checker RECORDS_DIR", file=sys.stderr)
        return 2
    directory = Path(argv[0])
    v = check(read_acked(directory), read_executions(directory))
    print(v.summary())
    return 1 if v.lost else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
