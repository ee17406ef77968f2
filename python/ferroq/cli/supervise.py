"""``ferroq worker --processes N``: N worker processes under one supervisor.

One worker process runs Python handlers under one GIL; CPU-bound handlers need more processes.
The supervisor starts each worker as a fresh interpreter (``python -m ferroq worker ...``
through ``subprocess``: spawned, never forked from a process whose threads hold locks), so
each child is an ordinary worker with its own asynq server ID and heartbeat. It forwards
SIGTERM, SIGINT (graceful shutdown) and SIGTSTP (stop fetching new tasks) to every child,
restarts a child that dies with a doubling backoff (logged), and gives up, exiting 1, when
children keep dying right after they start.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from types import FrameType

log = logging.getLogger("ferroq.supervisor")

# A child that ran this long was healthy: its next death starts the backoff over.
HEALTHY_AFTER = 10.0
# First restart delay, doubled after each quick death, capped.
BACKOFF_MIN = 0.5
BACKOFF_MAX = 30.0
# This many quick deaths in a row of one child, and the supervisor gives up.
CRASH_LOOP = 5
# How long children get to finish after the supervisor was asked to stop (beyond their own
# shutdown timeout, which they apply themselves).
STOP_GRACE = 60.0

ENV_INDEX = "FERROQ_WORKER_INDEX"


@dataclass
class _Child:
    index: int
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    quick_deaths: int = 0
    backoff: float = BACKOFF_MIN
    restart_at: float | None = None


class Supervisor:
    """Runs ``n`` copies of a worker command line and keeps them running.

    Args:
        n: How many worker processes.
        child_args: The ``ferroq`` command line each child runs (``worker ...``, without
            ``--processes``).
        child_extra: Per child index, arguments added to its command line (its metrics port).
    """

    def __init__(
        self,
        n: int,
        child_args: list[str],
        child_extra: dict[int, list[str]] | None = None,
    ) -> None:
        self.children = [_Child(i) for i in range(n)]
        self.child_args = child_args
        self.child_extra = child_extra or {}
        self._stopping = False
        self._gave_up = False

    def _spawn(self, c: _Child) -> None:
        env = {**os.environ, ENV_INDEX: str(c.index)}
        cmd = [sys.executable, "-m", "ferroq", *self.child_args, *self.child_extra.get(c.index, [])]
        c.proc = subprocess.Popen(cmd, env=env)
        c.started = time.monotonic()
        c.restart_at = None
        log.info("worker %d started (pid %d)", c.index, c.proc.pid)

    def _forward(self, signum: int) -> None:
        for c in self.children:
            if c.proc is not None and c.proc.poll() is None:
                # It may have exited since the poll.
                with contextlib.suppress(ProcessLookupError):
                    c.proc.send_signal(signum)

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        if not self._stopping:
            log.info(
                "received %s, stopping %d workers", signal.Signals(signum).name, len(self.children)
            )
        self._stopping = True
        self._forward(signum)

    def _on_tstp(self, signum: int, frame: FrameType | None) -> None:
        log.info("received SIGTSTP, workers stop fetching new tasks")
        self._forward(signum)

    def _reap(self, c: _Child, now: float) -> None:
        """Handles a child that exited on its own: schedules its restart, or gives up."""
        assert c.proc is not None
        rc = c.proc.returncode
        lived = now - c.started
        c.proc = None
        if lived >= HEALTHY_AFTER:
            c.quick_deaths, c.backoff = 0, BACKOFF_MIN
        c.quick_deaths += 1
        if c.quick_deaths >= CRASH_LOOP:
            log.error(
                "worker %d died %d times in a row within %gs of starting (last exit code %s): "
                "giving up",
                c.index, c.quick_deaths, HEALTHY_AFTER, rc,
            )  # fmt: skip
            self._gave_up = True
            return
        log.error(
            "worker %d exited with code %s after %.1fs; restarting in %.1fs",
            c.index, rc, lived, c.backoff,
        )  # fmt: skip
        c.restart_at = now + c.backoff
        c.backoff = min(c.backoff * 2, BACKOFF_MAX)

    def run(self) -> int:
        """Starts the children and supervises them until told to stop.

        Returns:
            0 after a requested stop in which every child exited cleanly, 1 when a child
            exited uncleanly at that stop or children kept dying at start.
        """
        previous = {s: signal.signal(s, self._on_stop) for s in (signal.SIGTERM, signal.SIGINT)}
        if hasattr(signal, "SIGTSTP"):
            previous[signal.SIGTSTP] = signal.signal(signal.SIGTSTP, self._on_tstp)
        try:
            for c in self.children:
                self._spawn(c)
            while not self._stopping and not self._gave_up:
                now = time.monotonic()
                for c in self.children:
                    if c.proc is not None and c.proc.poll() is not None:
                        self._reap(c, now)
                    elif c.proc is None and c.restart_at is not None and now >= c.restart_at:
                        self._spawn(c)
                time.sleep(0.1)
            if self._gave_up:
                self._stopping = True
                self._forward(signal.SIGTERM)
            return self._wait_all()
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    def _wait_all(self) -> int:
        deadline = time.monotonic() + STOP_GRACE
        clean = not self._gave_up
        for c in self.children:
            if c.proc is None:
                continue
            try:
                rc = c.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker %d did not stop in %gs: killing it", c.index, STOP_GRACE)
                c.proc.kill()
                rc = c.proc.wait()
            if rc not in (0, -signal.SIGTERM, -signal.SIGINT):
                log.error("worker %d exited with code %s at shutdown", c.index, rc)
                clean = False
        log.info("all workers stopped")
        return 0 if clean else 1
