"""Cron schedules, evaluated by ferroq's Rust cron engine.

``CronSchedule("*/5 * * * *", tz="Europe/Paris")`` accepts croniter's syntax (five fields, or six
with seconds last; names, ranges, steps, ``L``, ``W``, ``#``), asynq's descriptors (``@daily``,
``@every 1h30m``) and a ``CRON_TZ=Zone `` prefix. Times are aware ``datetime`` objects. See
``docs/cron.md`` for the syntax and the daylight-saving rule.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

from ferroq._native import CronSpecError, NativeCron

__all__ = ["CronSchedule", "CronSpecError"]


def _zone_args(tz: str | tzinfo | None) -> tuple[str | None, int | None]:
    if tz is None:
        return None, None
    if isinstance(tz, str):
        return tz, None
    if isinstance(tz, ZoneInfo):
        return tz.key, None
    if tz is timezone.utc:
        return "UTC", None
    if isinstance(tz, timezone):
        offset = tz.utcoffset(None)
        return None, int(offset.total_seconds())
    key = getattr(tz, "zone", None) or getattr(tz, "key", None)  # pytz and others name their zone
    if isinstance(key, str):
        return key, None
    raise CronSpecError(f"unsupported tzinfo {tz!r}: use an IANA name, ZoneInfo or timezone")


def _split(dt: datetime) -> tuple[int, int]:
    if not isinstance(dt, datetime):
        raise TypeError(f"expected a datetime, not {dt.__class__.__name__}")
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError("cron times must be aware datetimes (give them a tzinfo)")
    utc = dt.astimezone(timezone.utc)
    return calendar.timegm(utc.timetuple()), utc.microsecond * 1000


class CronSchedule:
    """A cron spec in a time zone.

    Args:
        spec: The spec, e.g. ``"0 9 * * mon-fri"``, ``"@every 30s"`` or
            ``"CRON_TZ=Asia/Tokyo 0 9 * * *"``.
        tz: Zone of the wall clock the spec is read on (IANA name, ``ZoneInfo`` or ``timezone``);
            UTC by default. A ``CRON_TZ=``/``TZ=`` prefix in the spec wins.

    Raises:
        CronSpecError: The spec (or zone) is invalid; the message names the field and column.
    """

    __slots__ = ("_native", "_tz", "spec")

    def __init__(self, spec: str, tz: str | tzinfo | None = None) -> None:
        if not isinstance(spec, str):
            raise TypeError(f"spec must be a str, not {spec.__class__.__name__}")
        name, offset = _zone_args(tz)
        self._native = NativeCron(spec, name, offset)
        self.spec = spec
        zone = self._native.zone
        self._tz: tzinfo
        if zone == "UTC":
            self._tz = timezone.utc
        elif zone[:1] in "+-":
            self._tz = timezone(timedelta(seconds=self._native.offset_at(0)))
        else:
            self._tz = ZoneInfo(zone)

    @property
    def tz(self) -> tzinfo:
        """The zone firing times are returned in."""
        return self._tz

    @property
    def every(self) -> timedelta | None:
        """The interval of an ``@every`` spec, else ``None``."""
        secs = self._native.every
        return None if secs is None else timedelta(seconds=secs)

    def _out(self, secs: int | None) -> datetime:
        if secs is None:
            raise ValueError(f"{self.spec!r} does not fire in the next 30 years")
        return datetime.fromtimestamp(secs, self._tz)

    def next_after(self, dt: datetime) -> datetime:
        """The first firing strictly after ``dt``, in the schedule's zone."""
        return self._out(self._native.next_after(*_split(dt)))

    def prev_before(self, dt: datetime) -> datetime:
        """The last firing strictly before ``dt``, in the schedule's zone."""
        return self._out(self._native.prev_before(*_split(dt)))

    def matches(self, dt: datetime) -> bool:
        """Whether the schedule fires at ``dt`` exactly."""
        return self._native.matches(*_split(dt))

    def iter(self, start: datetime) -> Iterator[datetime]:
        """Firings after ``start``, one after another, forever."""
        t = start
        while True:
            t = self.next_after(t)
            yield t

    def __repr__(self) -> str:
        return f"CronSchedule({self.spec!r}, tz={self._native.zone!r})"
