"""Prometheus metrics: asynq's queue metrics, and worker metrics asynq lacks.

``QueueMetricsCollector`` exports what asynq's ``x/metrics`` exports, with the same names and
labels, so dashboards built for asynqmon work unchanged; one scrape reads every queue in a
constant number of round trips (memory is sampled only when asked: it is the costly part)::

    from prometheus_client import REGISTRY, start_http_server
    from ferroq.metrics import QueueMetricsCollector

    REGISTRY.register(QueueMetricsCollector(Inspector(url)))
    start_http_server(9876)

``WorkerMetricsCollector`` exports one server's own numbers, counted by the Rust core where the
events happen: handler durations (a histogram by queue and task type), outcomes (succeeded,
retried, archived, revoked, requeued at shutdown, dropped when the task was no longer this
server's), tasks in flight, leases renewed and lost, tasks recovered
from dead servers. ``ferroq worker --metrics-port N`` serves it; ``ferroq metrics --port N`` runs
a standalone exporter of the queue metrics.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from ferroq._native import duration_buckets, outcome_names
from ferroq.errors import FerroqError
from ferroq.inspector import Inspector
from ferroq.server import Server

__all__ = ["QueueMetricsCollector", "WorkerMetricsCollector"]

log = logging.getLogger("ferroq.metrics")

_STATES = ("active", "pending", "scheduled", "retry", "archived", "completed")


class QueueMetricsCollector(Collector):
    """asynq's queue metrics, read by an ``Inspector`` at every scrape.

    Args:
        inspector: Where to read the queues.
        memory: Sample ``MEMORY USAGE`` for ``asynq_queue_memory_usage_approx_bytes`` (asynq
            always does; with many queues it is most of a scrape's cost). Without it the
            metric is not exported.

    A scrape that cannot reach Redis exports ``ferroq_exporter_up 0`` and nothing else, rather
    than failing the whole ``/metrics`` page.
    """

    def __init__(self, inspector: Inspector, *, memory: bool = False) -> None:
        self._inspector = inspector
        self._memory = memory

    def collect(self) -> Iterator[Metric]:
        """The metric families of one scrape."""
        up = GaugeMetricFamily("ferroq_exporter_up", "Whether the last read of Redis succeeded.")
        try:
            infos = self._inspector.get_queue_infos(memory=self._memory)
        except FerroqError as e:
            log.warning("metrics scrape could not read the queues: %s", e)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        enqueued = GaugeMetricFamily(
            "asynq_tasks_enqueued_total",
            "Number of tasks enqueued; broken down by queue and state.",
            labels=["queue", "state"],
        )
        size = GaugeMetricFamily("asynq_queue_size", "Number of tasks in a queue", labels=["queue"])
        latency = GaugeMetricFamily(
            "asynq_queue_latency_seconds",
            "Number of seconds the oldest pending task is waiting in pending state to be "
            "processed.",
            labels=["queue"],
        )
        memory = GaugeMetricFamily(
            "asynq_queue_memory_usage_approx_bytes",
            "Number of memory used by a given queue (approximated number by sampling).",
            labels=["queue"],
        )
        processed = CounterMetricFamily(
            "asynq_tasks_processed",
            "Number of processed tasks (both succeeded and failed); broken down by queue",
            labels=["queue"],
        )
        failed = CounterMetricFamily(
            "asynq_tasks_failed",
            "Number of processed tasks that failed; broken down by queue",
            labels=["queue"],
        )
        paused = GaugeMetricFamily(
            "asynq_queue_paused_total",
            "Number of queues paused",
            labels=["queue"],
        )
        for q in infos:
            for state in _STATES:
                enqueued.add_metric([q.queue, state], getattr(q, state))
            size.add_metric([q.queue], q.size)
            latency.add_metric([q.queue], q.latency.total_seconds())
            if q.memory_usage is not None:
                memory.add_metric([q.queue], q.memory_usage)
            processed.add_metric([q.queue], q.processed_total)
            failed.add_metric([q.queue], q.failed_total)
            paused.add_metric([q.queue], 1 if q.paused else 0)
        yield from (enqueued, size, latency, processed, failed, paused)
        if self._memory:
            yield memory


class WorkerMetricsCollector(Collector):
    """One server's worker metrics (``ferroq_*``), read from its core at every scrape.

    Args:
        server: The server to export.
    """

    def __init__(self, server: Server) -> None:
        self._server = server
        self._bounds = [f"{b:g}" for b in duration_buckets()] + ["+Inf"]

    def collect(self) -> Iterator[Metric]:
        """The metric families of one scrape."""
        m = self._server.metrics()
        server = self._server.server_id
        duration = HistogramMetricFamily(
            "ferroq_task_duration_seconds",
            "How long handlers ran, by queue and task type.",
            labels=["server", "queue", "type"],
        )
        outcomes = CounterMetricFamily(
            "ferroq_tasks",
            "Runs that ended, by queue, task type and outcome ("
            + ", ".join(outcome_names())
            + ").",
            labels=["server", "queue", "type", "outcome"],
        )
        for t in m.tasks:
            labels = [server, t.queue, t.task_type]
            duration.add_metric(
                labels,
                list(zip(self._bounds, map(float, t.duration_buckets), strict=True)),
                t.duration_sum,
            )
            for outcome, n in t.outcomes.items():
                outcomes.add_metric([*labels, outcome], n)
        in_flight = GaugeMetricFamily(
            "ferroq_tasks_in_flight", "Tasks running now, by queue.", labels=["server", "queue"]
        )
        for q in self._server.config.queues:
            in_flight.add_metric([server, q], m.in_flight.get(q, 0))
        recovered = CounterMetricFamily(
            "ferroq_tasks_recovered",
            "Tasks of dead servers this server recovered, by queue.",
            labels=["server", "queue"],
        )
        for q, n in sorted(m.recovered.items()):
            recovered.add_metric([server, q], n)
        renewals = CounterMetricFamily(
            "ferroq_lease_renewals", "Leases this server renewed.", labels=["server"]
        )
        renewals.add_metric([server], m.lease_renewals)
        lost = CounterMetricFamily(
            "ferroq_leases_lost",
            "Leases found taken by another server or a tool while their task ran here.",
            labels=["server"],
        )
        lost.add_metric([server], m.leases_lost)
        yield from (duration, outcomes, in_flight, recovered, renewals, lost)
