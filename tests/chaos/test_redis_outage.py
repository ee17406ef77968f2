"""Scenarios 2 and 3: Redis goes away under a producer and two workers, then comes back.

* SIGKILL with ``--appendonly yes --appendfsync always``, restarted on the same port and data:
  no acknowledged enqueue may be lost, and nobody may exit.
* SIGSTOP for 9 s (connections stay open, nothing answers), then SIGCONT: nobody may exit, and
  processing must resume.

Resume times are measured from the moment Redis serves again: to the producer's first
acknowledged enqueue, and to each worker's first finished task.
"""

from __future__ import annotations

import time

import pytest

from chaos.checker import Verdict, check, in_window, read_executions
from chaos.harness import (
    Child,
    Producer,
    RedisProcess,
    Rig,
    first_after,
    log_summary,
    poll_until,
    report,
    wait_serving,
)

#: The load: 300 tasks a second for 10 s, the outage starting at 4 s. Tasks of 30 ms on two
#: workers of 4 slots run at most 267 a second, so a backlog is waiting in Redis at the outage:
#: that backlog is what the AOF must keep.
RATE, SECONDS, OUTAGE_AT, TASK_MS = 300, 10, 4.0, b"30"
#: Fewer tasks waiting than this at the kill and the scenario would prove nothing.
MIN_BACKLOG = 50
#: Bound on the drain after the producer finished, and on a worker's resume after an outage.
DRAIN, RESUME = 30.0, 15.0


def start_load(rig: Rig, server: RedisProcess) -> tuple[list[Child], Producer]:
    """Two workers (``-c 4``, default settings) and a producer, running."""
    workers = [rig.fleet.worker(server.url) for _ in range(2)]
    wait_serving(server, *workers)
    producer = Producer(server.url, rig.records, count=RATE * SECONDS, rate=RATE, payload=TASK_MS)
    producer.start()
    return workers, producer


def finish_load(rig: Rig, producer: Producer) -> None:
    """Waits for the producer to end, then (up to ``DRAIN``) for every acknowledged task to run."""
    producer.join(SECONDS + DRAIN)
    assert not producer.is_alive(), "the producer did not finish: an enqueue hangs"
    assert producer.error is None, f"the producer failed: {producer.error!r}"

    def drained() -> bool:
        done = {e.task_id for e in read_executions(rig.records)}
        return done.issuperset(producer.acked_ids)

    poll_until(drained, DRAIN, interval=0.2)  # the verdict says what did not run


def backlog(server: RedisProcess) -> int:
    """Tasks pending or active in ``default`` right now."""
    r = server.client()
    try:
        return int(r.llen("asynq:{default}:pending")) + int(r.llen("asynq:{default}:active"))
    finally:
        r.close()


def resume_times(rig: Rig, workers: list[Child], back_at: float) -> dict[int, float | None]:
    """Per worker pid: seconds from ``back_at`` to its first task finished after it."""
    execs = read_executions(rig.records)
    out: dict[int, float | None] = {}
    for w in workers:
        t = first_after([e for e in execs if e.pid == w.pid], back_at)
        out[w.pid] = None if t is None else round(t - back_at, 3)
    return out


def assert_survived(rig: Rig, verdict: Verdict, resumed: dict[int, float | None]) -> None:
    """Nobody exited, nothing lost, no unexplained duplicate, every worker resumed in time."""
    exited = rig.fleet.exited()
    assert not exited, "exited: " + "; ".join(f"{c.log.name}: {c.log_tail()}" for c in exited)
    assert not verdict.lost, f"{verdict.summary()}; lost e.g. {verdict.lost[:5]}"
    assert not verdict.unexplained, f"{verdict.summary()}; e.g. {verdict.unexplained[:5]}"
    late = {pid: t for pid, t in resumed.items() if t is None or t > RESUME}
    assert not late, f"workers that did not resume within {RESUME:g} s: {late}"


@pytest.mark.timeout(90)
def test_redis_sigkill_with_aof_loses_no_acknowledged_task(rig: Rig) -> None:
    server = rig.redis(aof=True)
    workers, producer = start_load(rig, server)
    time.sleep(OUTAGE_AT)
    waiting = backlog(server)
    killed_at = server.kill()
    time.sleep(1.0)  # a second of outage, plus however long the restart and AOF load take
    back_at = server.start()
    finish_load(rig, producer)

    # A task in flight at the kill may run again (its outcome may not have been written); it
    # finished around the outage, so the window is the outage and a few seconds either side.
    verdict = check(
        producer.acked_ids, read_executions(rig.records), in_window(killed_at - 1, back_at + 5)
    )
    resumed = resume_times(rig, workers, back_at)
    first_ack = producer.first_ack_after(back_at)
    report(
        "redis-sigkill-aof",
        backlog_at_kill=waiting,
        outage_s=round(back_at - killed_at, 3),
        producer_resume_s=None if first_ack is None else round(first_ack - back_at, 3),
        worker_resume_s=resumed,
        enqueue_failures=producer.failures,
        verdict=verdict.summary(),
        logged=log_summary(workers),
    )
    print(verdict.summary())
    assert waiting >= MIN_BACKLOG, f"only {waiting} tasks waiting at the outage: no test"
    assert_survived(rig, verdict, resumed)


@pytest.mark.timeout(90)
def test_redis_stalled_by_sigstop_everyone_resumes(rig: Rig) -> None:
    server = rig.redis()
    workers, producer = start_load(rig, server)
    time.sleep(OUTAGE_AT)
    waiting = backlog(server)
    stopped_at = server.pause()
    time.sleep(9.0)
    back_at = server.resume()
    finish_load(rig, producer)

    # Nothing was killed and nothing lost its lease (30 s): no duplicate is allowed.
    verdict = check(producer.acked_ids, read_executions(rig.records))
    resumed = resume_times(rig, workers, back_at)
    first_ack = producer.first_ack_after(back_at)
    report(
        "redis-sigstop",
        backlog_at_stop=waiting,
        stalled_s=round(back_at - stopped_at, 3),
        producer_resume_s=None if first_ack is None else round(first_ack - back_at, 3),
        producer_longest_enqueue_s=round(producer.longest_stall, 3),
        worker_resume_s=resumed,
        enqueue_failures=producer.failures,
        verdict=verdict.summary(),
        logged=log_summary(workers),
    )
    print(verdict.summary())
    assert waiting >= MIN_BACKLOG, f"only {waiting} tasks waiting at the outage: no test"
    assert_survived(rig, verdict, resumed)
