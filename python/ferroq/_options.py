"""Connection arguments and the duration type of the public signatures.

Option values are converted and checked by the core (``TaskOptions``, ``ServerConfig``): nothing
here holds a rule about them.
"""

from __future__ import annotations

import os
from datetime import timedelta

Duration = float | int | timedelta
"""Seconds as a number, or a ``timedelta``."""

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_url(url: str | None) -> str:
    """The URL given, else ``$REDIS_URL``, else a local Redis on the default port."""
    return url or os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL


def read_ca(path: str | os.PathLike[str] | None) -> bytes | None:
    """The PEM bytes of a CA file for ``rediss://`` (``None`` trusts the system's roots)."""
    if path is None:
        return None
    with open(path, "rb") as f:
        return f.read()


def positive_seconds(name: str, value: Duration) -> float:
    """A setting of the Python side itself (not one the core takes) in seconds, above zero."""
    if isinstance(value, timedelta):
        out = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        out = float(value)
    else:
        raise TypeError(f"{name} must be seconds or a timedelta, not {value.__class__.__name__}")
    if not out > 0 or out == float("inf"):
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return out
