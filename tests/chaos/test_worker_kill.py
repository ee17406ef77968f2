"""Scenario 1: worker processes SIGKILLed at random under load, and restarted.

Three ``ferroq worker`` processes (``-c 4``, short recovery settings: lease 5 s, grace 2 s,
recoverer every second, heartbeat every second) serve a producer of 3000 short tasks while the
test SIGKILLs one at random every 1.5-3 s and starts a replacement. Every acknowledged task must
run; a task may run twice only when one of its runs was in a process that was killed.

The first kill is aimed: a ``chaos:hold`` probe blocks a slot of some worker, the test kills
that worker and measures how long the probe takes to run again elsewhere. The requirement:
within 15 s with these settings.
"""

from __future__ import annotations

import time
import uuid

import pytest

from chaos.checker import Execution, check, in_killed_process, read_executions
from chaos.harness import (
    Producer,
    Rig,
    acknowledge,
    log_summary,
    poll_until,
    recovery_flags,
    report,
    wait_for,
    wait_serving,
)
from ferroq import Client, Task

#: 250 tasks of 20 ms a second on 3 workers of 4 slots: a few tasks are in flight at each kill.
WORKERS, TASKS, RATE, TASK_MS = 3, 3000, 250, b"20"
#: The issue's requirement: a killed worker's task runs again within this, with RECOVERY.
PROBE_BOUND = 15.0
#: Bound on the drain after the last kill: lease + grace + recoverer (the workers' retry delay
#: is 0) + a generous slack for a loaded 2-core machine.
DRAIN = 40.0


def rerun_delays(rig: Rig, execs: list[Execution]) -> list[float | None]:
    """For each task a killed worker was running: seconds from the kill to its next run's end.

    In flight = begun in that process (``begin-<pid>.log``) and not finished there. ``None``
    for a task that never ran again (it is also ``lost``).
    """
    ended = {(e.task_id, e.pid) for e in execs}
    delays: list[float | None] = []
    for b in read_executions(rig.records, kind="begin"):
        killed_at = next(
            (c.killed_at for c in rig.fleet.children if c.pid == b.pid and c.killed_at), None
        )
        if killed_at is None or (b.task_id, b.pid) in ended:
            continue
        later = [e.at for e in execs if e.task_id == b.task_id and e.at > killed_at]
        delays.append(round(min(later) - killed_at, 2) if later else None)
    return delays


def summary(delays: list[float | None]) -> str:
    """``min/median/max`` of the delays, and how many never ran again."""
    done = sorted(d for d in delays if d is not None)
    if not done:
        return f"none ran again ({len(delays)} in flight)"
    never = len(delays) - len(done)
    return f"{done[0]}/{done[len(done) // 2]}/{done[-1]} s (min/median/max), never={never}"


@pytest.mark.timeout(150)
def test_worker_sigkill_churn_runs_every_task(rig: Rig) -> None:
    flags = recovery_flags()
    server = rig.redis()
    fleet = rig.fleet
    workers = [fleet.worker(server.url, extra=flags) for _ in range(WORKERS)]
    wait_serving(server, *workers)

    producer = Producer(server.url, rig.records, count=TASKS, rate=RATE, payload=TASK_MS)
    producer.start()

    # The aimed kill: the worker holding the probe.
    probe = str(uuid.uuid4())
    with Client(server.url) as client:
        client.enqueue(Task("chaos:hold", b"60"), task_id=probe)
    acknowledge(rig.records, [probe])
    marker = rig.records / f"hold-{probe}"
    wait_for(marker.exists, 15, "the probe started")
    holder_pid = int(marker.read_text().split()[0])
    holder = next(c for c in fleet.children if c.pid == holder_pid)
    probe_killed_at = fleet.kill(holder)
    fleet.worker(server.url, extra=flags)

    # Random kills while the producer runs; each replaced at once.
    kills = 1
    last_kill = probe_killed_at
    while True:
        producer.join(fleet.rng.uniform(1.5, 3.0))
        if not producer.is_alive():
            break
        last_kill = fleet.kill(fleet.pick("worker"))
        kills += 1
        fleet.worker(server.url, extra=flags)
    producer.join(30)
    assert producer.error is None, f"the producer failed: {producer.error!r}"
    acked = [*producer.acked_ids, probe]

    def drained() -> bool:
        return {e.task_id for e in read_executions(rig.records)}.issuperset(acked)

    poll_until(drained, DRAIN, interval=0.2)  # the verdict below says what did not run
    drained_after = time.time() - last_kill

    execs = read_executions(rig.records)
    verdict = check(acked, execs, in_killed_process(fleet.killed))
    recover = rerun_delays(rig, execs)
    probe_runs = [e for e in execs if e.task_id == probe]
    probe_rerun = probe_runs[0].at - probe_killed_at if probe_runs else None
    r = server.client()
    stuck = {k: r.llen(f"asynq:{{default}}:{k}") for k in ("pending", "active")}
    stuck["retry"] = r.zcard("asynq:{default}:retry")
    r.close()
    report(
        "worker-sigkill-churn",
        seed=fleet.seed,
        kills=kills,
        probe_rerun_s=None if probe_rerun is None else round(probe_rerun, 2),
        killed_in_flight=len(recover),
        killed_rerun_s=summary(recover),
        last_task_after_last_kill_s=round(
            max((e.at for e in execs), default=last_kill) - last_kill, 2
        ),
        recovered_runs=sum(1 for e in execs if e.attempt > 0),
        left_in_redis=stuck,
        verdict=verdict.summary(),
        logged=log_summary(fleet.children),
    )
    print(verdict.summary())
    exited = fleet.exited()
    assert not exited, "exited: " + "; ".join(f"{c.log.name}: {c.log_tail()}" for c in exited)
    assert not verdict.lost, (
        f"{verdict.summary()} after waiting {drained_after:.0f} s from the last kill; "
        f"in Redis: {stuck}; lost e.g. {verdict.lost[:5]}"
    )
    assert not verdict.unexplained, f"{verdict.summary()}; e.g. {verdict.unexplained[:5]}"
    assert probe_rerun is not None and probe_rerun <= PROBE_BOUND, (
        f"the killed worker's task ran again {probe_rerun} s after the kill "
        f"(required: within {PROBE_BOUND:g} s with {' '.join(flags)})"
    )
    slow = [d for d in recover if d is None or d > PROBE_BOUND]
    assert not slow, (
        f"{len(slow)} of {len(recover)} tasks in flight at a kill took over {PROBE_BOUND:g} s "
        f"to run again: {summary(recover)}"
    )
