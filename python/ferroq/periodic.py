"""Keeping a scheduler's entries in line with a provider, as asynq's ``PeriodicTaskManager``.

The provider is anything that can list entries: a database table, a config file...
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ferroq import _options
from ferroq._options import Duration
from ferroq._signals import run_until_signalled
from ferroq.scheduler import OPTION_NAMES, Scheduler, entry_id
from ferroq.task import Task

__all__ = ["PeriodicTaskConfig", "PeriodicTaskManager"]

log = logging.getLogger("ferroq.scheduler")


@dataclass(frozen=True)
class PeriodicTaskConfig:
    """One periodic entry as a ``PeriodicTaskManager`` provider returns it.

    Attributes:
        spec: Cron spec.
        task: The task.
        options: Enqueue options, as ``Scheduler.register`` takes them.
    """

    spec: str
    task: Task
    options: Mapping[str, Any] = field(default_factory=dict)


class PeriodicTaskManager:
    """Keeps a scheduler's entries in line with a provider (a database, a config file...).

    Every ``sync_interval`` the provider is called; entries it no longer returns are removed and
    new ones registered (unchanged ones keep their timing).

    Args:
        provider: Returns the wanted entries.
        sync_interval: How often to re-sync (asynq's default: 3 minutes).
        scheduler: The scheduler to manage (default: a new one from ``scheduler_options``).
        **scheduler_options: Passed to ``Scheduler`` when none is given.
    """

    def __init__(
        self,
        provider: Callable[[], Sequence[PeriodicTaskConfig]],
        *,
        sync_interval: Duration = 180.0,
        scheduler: Scheduler | None = None,
        **scheduler_options: Any,
    ) -> None:
        self.provider = provider
        self.scheduler = scheduler or Scheduler(**scheduler_options)
        self._interval = _options.positive_seconds("sync_interval", sync_interval)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._managed: dict[str, str] = {}

    def sync(self) -> None:
        """Re-reads the provider and updates the entries now."""
        configs = self.provider()
        wanted: dict[str, PeriodicTaskConfig] = {}
        for c in configs:
            opts = {k: c.options.get(k) for k in OPTION_NAMES}
            wanted[entry_id(c.spec, c.task, opts)] = c
        for eid in list(self._managed):
            if eid not in wanted:
                self.scheduler.unregister(eid)
                del self._managed[eid]
        for eid, c in wanted.items():
            if eid not in self._managed:
                self._managed[eid] = self.scheduler.register(c.spec, c.task, **dict(c.options))

    def start(self) -> None:
        """Syncs once, starts the scheduler, then re-syncs in the background."""
        self.sync()
        self.scheduler.start()

        def loop() -> None:
            while not self._stop.wait(self._interval):
                try:
                    self.sync()
                except Exception:
                    log.exception("periodic task provider failed; keeping the current entries")

        self._thread = threading.Thread(target=loop, name="ferroq-periodic-sync", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        """Stops syncing and shuts the scheduler down."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.scheduler.shutdown()

    def run(self) -> None:
        """Starts, then blocks until SIGTERM or SIGINT and shuts down."""
        run_until_signalled(self.start, self.shutdown)
