"""The one ``run()`` of the long-running components: start, wait for a signal, shut down."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

from ferroq.errors import BrokerConnectionError

log = logging.getLogger("ferroq")

#: Waits between start attempts while Redis is unreachable: doubling up to the last.
_RETRY_WAITS = (0.5, 1.0, 2.0, 4.0, 5.0)
#: While Redis stays unreachable, one log line per this many seconds.
_LOG_EVERY = 10.0
#: A SIGINT this soon after the first stop signal is that stop delivered twice (a terminal's
#: Ctrl-C reaches a worker and the supervisor or reloader that forwards it), not a second one.
REPEAT_WINDOW = 0.5


def run_until_signalled(
    start: Callable[[], None],
    shutdown: Callable[[], None],
    *,
    on_tstp: Callable[[], None] | None = None,
    on_hurry: Callable[[], None] | None = None,
    finished: Callable[[], bool] | None = None,
    wait_for_redis: bool = False,
) -> None:
    """Starts, blocks until SIGTERM or SIGINT (or until ``finished()``), then shuts down.

    Signal handlers are installed only from the main thread, and before ``start``: a signal
    during start-up must not be the default "terminate now". ``on_tstp`` handles SIGTSTP.
    ``on_hurry`` handles a second SIGINT (Celery's second Ctrl-C), at least ``REPEAT_WINDOW``
    seconds after the first stop signal; a repeated SIGTERM never hurries (systemd, a container
    runtime or a supervisor may send one to every process of a group, some twice).
    With ``wait_for_redis``, a ``start`` that finds Redis unreachable is retried with backoff
    (logged once per ``_LOG_EVERY`` seconds) until it succeeds or a signal arrives, as Celery's
    worker waits for its broker.
    """
    wake = threading.Event()
    # Put back once shut down: an embedding program that goes on after run() returns must get
    # its own handling of these signals back, not handlers that only wake a finished loop.
    previous: dict[int, Callable[[int, FrameType | None], object] | int] = {}
    if threading.current_thread() is threading.main_thread():
        for s in (signal.SIGTERM, signal.SIGINT, getattr(signal, "SIGTSTP", None)):
            if s is not None:
                h = signal.getsignal(s)
                # None: a handler not installed from Python, which cannot be put back.
                previous[s] = h if h is not None else signal.SIG_DFL
        first_at: list[float] = []

        def on_term(signum: int, frame: FrameType | None) -> None:
            name = signal.Signals(signum).name
            now = time.monotonic()
            if not first_at:
                first_at.append(now)
                log.info("received %s, shutting down", name)
                wake.set()
            elif (
                signum == signal.SIGINT
                and on_hurry is not None
                and now - first_at[0] >= REPEAT_WINDOW
            ):
                log.warning("received SIGINT again: not waiting for running tasks any longer")
                on_hurry()

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)
        if on_tstp is not None and hasattr(signal, "SIGTSTP"):
            stop = on_tstp

            def tstp(signum: int, frame: FrameType | None) -> None:
                log.info("received SIGTSTP, no longer fetching new tasks")
                stop()

            signal.signal(signal.SIGTSTP, tstp)
    try:
        if not _start(start, wake, wait_for_redis):
            return
        while not wake.wait(0.5) and not (finished is not None and finished()):
            pass
    finally:
        try:
            shutdown()
        finally:
            for s, h in previous.items():
                signal.signal(s, h)


def _start(start: Callable[[], None], wake: threading.Event, wait_for_redis: bool) -> bool:
    """Runs ``start``, retrying while Redis is unreachable; False when a signal came first."""
    attempt, logged_at = 0, float("-inf")
    while True:
        try:
            start()
            if attempt:
                log.info("Redis is reachable again after %d attempt(s); started", attempt + 1)
            return True
        except BrokerConnectionError as e:
            if not wait_for_redis:
                raise
            now = time.monotonic()
            if now - logged_at >= _LOG_EVERY:
                logged_at = now
                log.warning("cannot start: %s; retrying until Redis is reachable", e)
        wait = _RETRY_WAITS[min(attempt, len(_RETRY_WAITS) - 1)]
        attempt += 1
        if wake.wait(wait):
            return False
