"""Conversion of the Python option types (timedelta, aware datetime) to what the core takes."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime, timedelta

from ferroq.errors import InvalidArgumentError

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


def seconds(name: str, value: Duration | None) -> float | None:
    """A duration option in seconds (``None`` stays ``None``)."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        out = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        out = float(value)
    else:
        raise TypeError(f"{name} must be seconds or a timedelta, not {value.__class__.__name__}")
    if out < 0:
        raise InvalidArgumentError(f"{name} must not be negative")
    return out


def timestamp(name: str, value: datetime | None) -> float | None:
    """An instant option as Unix seconds; naive datetimes are refused (which zone would it be?)."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, not {value.__class__.__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidArgumentError(f"{name} must be an aware datetime (give it a tzinfo)")
    return value.timestamp()


def merged_headers(base: Mapping[str, str], extra: Mapping[str, str] | None) -> dict[str, str]:
    """Task headers with enqueue-time headers laid over them."""
    out = dict(base)
    if extra:
        for k, v in extra.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError("headers must map str to str")
            out[k] = v
    return out
