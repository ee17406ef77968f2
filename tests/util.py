"""Small helpers shared by the tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

FAST: dict[str, float] = {
    "task_check_interval": 0.05,
    "delayed_task_check_interval": 0.2,
    "janitor_interval": 0.2,
    "heartbeat_interval": 0.5,
    "shutdown_timeout": 2.0,
}
"""Server intervals short enough for tests (asynq's defaults are seconds)."""


def wait_until(pred: Callable[[], T | None], timeout: float = 10.0, interval: float = 0.02) -> T:
    """Polls ``pred`` until it returns something truthy; fails the test after ``timeout``.

    The timeout bounds a hang, it is not a performance assertion: generous on purpose.
    """
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {pred}")
        time.sleep(interval)
