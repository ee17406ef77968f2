"""The one ``run()`` of the long-running components: start, wait for a signal, shut down."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

log = logging.getLogger("ferroq")


def run_until_signalled(
    start: Callable[[], None],
    shutdown: Callable[[], None],
    *,
    on_tstp: Callable[[], None] | None = None,
    finished: Callable[[], bool] | None = None,
) -> None:
    """Starts, blocks until SIGTERM or SIGINT (or until ``finished()``), then shuts down.

    Signal handlers are installed only from the main thread, and before ``start``: a signal
    during start-up must not be the default "terminate now". ``on_tstp`` handles SIGTSTP.
    """
    wake = threading.Event()
    if threading.current_thread() is threading.main_thread():

        def on_term(signum: int, frame: FrameType | None) -> None:
            log.info("received %s, shutting down", signal.Signals(signum).name)
            wake.set()

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)
        if on_tstp is not None and hasattr(signal, "SIGTSTP"):
            stop = on_tstp

            def tstp(signum: int, frame: FrameType | None) -> None:
                log.info("received SIGTSTP, no longer fetching new tasks")
                stop()

            signal.signal(signal.SIGTSTP, tstp)
    start()
    try:
        while not wake.wait(0.5) and not (finished is not None and finished()):
            pass
    finally:
        shutdown()
