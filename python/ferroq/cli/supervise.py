"""``ferroq worker --processes N``: N worker processes under one supervisor.

One worker process runs Python handlers under one GIL; CPU-bound handlers need more processes.
The supervisor starts each worker as a fresh interpreter (``python -m ferroq worker ...``
through ``subprocess``: spawned, never forked from a process whose threads hold locks), so
each child is an ordinary worker with its own asynq server ID and heartbeat. It forwards
SIGTERM and SIGINT (graceful shutdown; a second SIGINT: running tasks are requeued at once) and
SIGTSTP (stop fetching new tasks) to every child, restarts a child that dies with a doubling
backoff (logged), and gives up, exiting 1, when children keep dying right after they start. A
child whose supervisor is gone (SIGKILLed: no signal could be forwarded) shuts down gracefully
on its own (:func:`exit_with_supervisor`).
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
# How long children get, beyond their own shutdown timeout, to exit once asked to stop.
STOP_MARGIN = 30.0

ENV_INDEX = "FERROQ_WORKER_INDEX"
# Set in each child: a child whose parent is no longer this PID (the supervisor was SIGKILLed,
# so no signal was forwarded) shuts down gracefully instead of running on as an orphan.
ENV_SUPERVISOR = "FERROQ_SUPERVISOR_PID"


@dataclass
class _Child:
    index: int
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    quick_deaths: int = 0
    backoff: float = BACKOFF_MIN
    restart_at: float | None = None
    # Whether this process was sent SIGTSTP, and the stop signal.
    paused: bool = False
    stopped: bool = False


class Supervisor:
    """Runs ``n`` copies of a worker command line and keeps them running.

    Args:
        n: How many worker processes.
        child_args: The ``ferroq`` command line each child runs (``worker ...``, without
            ``--processes``).
        child_extra: Per child index, arguments added to its command line (its metrics port).
        shutdown_timeout: The children's shutdown timeout: a child still running
            ``STOP_MARGIN`` seconds after it is asked to stop is killed.
    """

    def __init__(
        self,
        n: int,
        child_args: list[str],
        child_extra: dict[int, list[str]] | None = None,
        shutdown_timeout: float = 8.0,
    ) -> None:
        self.children = [_Child(i) for i in range(n)]
        self.stop_grace = shutdown_timeout + STOP_MARGIN
        self.child_args = child_args
        self.child_extra = child_extra or {}
        self._stopping = False
        self._gave_up = False
        self._paused = False
        # The first stop signal received (a stop after giving up is a SIGTERM).
        self._asked: signal.Signals | None = None

    def _spawn(self, c: _Child) -> None:
        env = {**os.environ, ENV_INDEX: str(c.index), ENV_SUPERVISOR: str(os.getpid())}
        # `--processes 1` last: it wins over any spelling of the flag left in the arguments, so
        # a child is a worker, never a supervisor of its own.
        extra = self.child_extra.get(c.index, [])
        cmd = [sys.executable, "-m", "ferroq", *self.child_args, *extra, "--processes", "1"]
        # Reset before the process exists: a stop handled meanwhile sends it its signal once.
        c.restart_at = None
        c.paused = False
        c.stopped = False
        c.proc = subprocess.Popen(cmd, env=env)
        c.started = time.monotonic()
        log.info("worker %d started (pid %d)", c.index, c.proc.pid)

    def _stop_children(self, signum: int, *, again: bool = False) -> None:
        """Sends ``signum`` to each live child not yet sent a stop, or, ``again``, to every one.

        A worker's second SIGINT requeues its running tasks at once.
        """
        for c in self.children:
            if c.proc is not None and c.proc.poll() is None and (again or not c.stopped):
                c.stopped = True
                # It may have exited since the poll.
                with contextlib.suppress(ProcessLookupError):
                    c.proc.send_signal(signum)

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        sig = signal.Signals(signum)
        if self._asked is None:
            log.info("received %s, stopping %d workers", sig.name, len(self.children))
            self._asked = sig
            self._stopping = True
            self._stop_children(sig)
        else:
            log.warning("received %s again: passing it on to the workers", sig.name)
            self._stop_children(sig, again=True)

    def _on_tstp(self, signum: int, frame: FrameType | None) -> None:
        # Sent by the main loop to each child once it handles SIGTSTP (before that, the
        # signal's default action would stop the process), children started later included.
        log.info("received SIGTSTP, workers stop fetching new tasks")
        self._paused = True

    def _pause_ready(self) -> None:
        for c in self.children:
            live = c.proc is not None and not c.paused and c.proc.poll() is None
            if (
                live
                and c.proc
                and _handles(c.proc.pid, signal.SIGTSTP, time.monotonic() - c.started)
            ):
                with contextlib.suppress(ProcessLookupError):
                    c.proc.send_signal(signal.SIGTSTP)
                c.paused = True

    def _reap(self, c: _Child, now: float) -> None:
        """Handles a child that exited on its own: schedules its restart, or gives up."""
        assert c.proc is not None
        rc = c.proc.returncode
        lived = now - c.started
        c.proc = None
        if lived >= HEALTHY_AFTER:
            # A death after a healthy run starts the backoff over and is no crash loop.
            c.quick_deaths, c.backoff = 0, BACKOFF_MIN
        else:
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
                if self._stopping:
                    break
                self._spawn(c)
            # A stop that came while children were being started reaches every one of them.
            if self._stopping:
                self._stop_children(self._asked or signal.SIGTERM)
            while not self._stopping and not self._gave_up:
                now = time.monotonic()
                for c in self.children:
                    if c.proc is not None and c.proc.poll() is not None:
                        self._reap(c, now)
                    elif (
                        c.proc is None
                        and c.restart_at is not None
                        and now >= c.restart_at
                        and not self._stopping
                    ):
                        self._spawn(c)
                if self._paused:
                    self._pause_ready()
                time.sleep(0.1)
            if self._gave_up:
                self._stopping = True
            # A child (re)started while the stop was being forwarded has not had it yet.
            self._stop_children(self._asked or signal.SIGTERM)
            return self._wait_all()
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    def _wait_all(self) -> int:
        deadline = time.monotonic() + self.stop_grace
        clean = not self._gave_up
        for c in self.children:
            if c.proc is None:
                continue
            try:
                rc = c.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker %d did not stop in %gs: killing it", c.index, self.stop_grace)
                c.proc.kill()
                rc = c.proc.wait()
            if rc not in (0, -signal.SIGTERM, -signal.SIGINT):
                log.error("worker %d exited with code %s at shutdown", c.index, rc)
                clean = False
        log.info("all workers stopped")
        return 0 if clean else 1


def _handles(pid: int, sig: int, age: float) -> bool:
    """Whether process ``pid`` has a handler for ``sig``.

    Read from its caught-signal mask on Linux (``SigCgt`` in ``/proc/<pid>/status``), else
    guessed from its age (a worker installs its handlers within a second of starting).
    """
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    except (OSError, ValueError, IndexError):
        pass
    return age >= 2.0


def exit_with_supervisor() -> None:
    """Shuts a supervised worker down (SIGTERM to itself) once its supervisor is gone.

    Polled each second by a daemon thread, comparing the parent PID with the supervisor's; a
    no-op in a worker started by anything else.
    """
    pid = os.environ.get(ENV_SUPERVISOR)
    if not pid or not pid.isdigit():
        return

    def watch(parent: int) -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        log.warning("the supervisor (pid %d) is gone: shutting down", parent)
        os.kill(os.getpid(), signal.SIGTERM)

    import threading

    threading.Thread(
        target=watch, args=(int(pid),), daemon=True, name="ferroq-supervisor-watch"
    ).start()
