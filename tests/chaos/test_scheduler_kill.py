"""Scenario 6: scheduler replicas SIGKILLed at random; each firing must be enqueued once.

Three ``ferroq scheduler chaos_app:scheduler`` replicas share one entry firing every second
(``* * * * * *``) into queue ``ticks``, which one worker runs. For about 20 s the test
SIGKILLs a random replica every 1-2.5 s and starts a replacement, and once kills all three for
2 s. The worker records the firing each task stands for (its ``ferroq-periodic-at`` header).

Every second of the run must have been enqueued exactly once, except that a second may be
missed while no replica was up (a replica counts as up from its ready marker, written once its
``start()`` returned, until its kill).
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import pytest

from chaos.checker import read_executions
from chaos.harness import Child, Rig, log_summary, report, wait_for, wait_serving

#: As ``chaos_app.TICK_QUEUE`` (not imported: importing the app builds its Scheduler).
TICK_QUEUE = "ticks"
REPLICAS, CHURN = 3, 20.0
#: A replica must be up this long before a second and after it to be expected to fire it.
BEFORE, AFTER = 0.2, 0.5


def ready_at(records: Path, c: Child) -> float | None:
    """When replica ``c`` finished starting, from its marker; ``None`` if it never did."""
    try:
        return float((records / f"sched-ready-{c.pid}").read_text())
    except (FileNotFoundError, ValueError):
        return None


@pytest.mark.timeout(90)
def test_scheduler_replicas_under_sigkill_fire_each_second_once(rig: Rig) -> None:
    server = rig.redis()
    fleet = rig.fleet
    worker = fleet.worker(server.url, [TICK_QUEUE])
    wait_serving(server, worker)
    replicas = [fleet.scheduler(server.url) for _ in range(REPLICAS)]
    wait_for(lambda: all(ready_at(rig.records, c) for c in replicas), 30, "replicas ready")

    begin = time.time()
    blackout_at = begin + CHURN / 2
    blackout_done = False
    while time.time() < begin + CHURN:
        time.sleep(fleet.rng.uniform(1.0, 2.5))
        if not blackout_done and time.time() >= blackout_at:
            # Every replica down at once: the only time a second may be missed.
            live = [c for c in fleet.children if c.name == "scheduler" and c.alive()]
            for c in live:
                fleet.kill(c)
            time.sleep(2.0)
            for _ in live:
                fleet.scheduler(server.url)
            blackout_done = True
        else:
            fleet.kill(fleet.pick("scheduler"))
            fleet.scheduler(server.url)
    end = time.time()
    # Let the last replicas fire up to ``end``, then stop them and let the worker drain.
    for c in fleet.children:
        if c.name == "scheduler" and c.alive():
            fleet.kill(c)
    r = server.client()
    wait_for(
        lambda: (
            r.llen(f"asynq:{{{TICK_QUEUE}}}:pending") + r.llen(f"asynq:{{{TICK_QUEUE}}}:active")
            == 0
        ),
        15,
        "the worker ran every tick",
    )
    r.close()

    ticks: dict[int, set[str]] = defaultdict(set)
    runs: dict[str, int] = defaultdict(int)
    for e in read_executions(rig.records):
        if e.tag:
            ticks[int(datetime.fromisoformat(e.tag).timestamp())].add(e.task_id)
            runs[e.task_id] += 1
    up = [
        (ready_at(rig.records, c), c.killed_at or end)
        for c in fleet.children
        if c.name == "scheduler"
    ]

    def covered(s: int) -> bool:
        return any(a is not None and a <= s - BEFORE and b >= s + AFTER for a, b in up)

    window = range(math.ceil(begin), math.floor(end))
    fired = [s for s in window if ticks.get(s)]
    duplicates = {s: len(ticks[s]) for s in window if len(ticks.get(s, ())) > 1}
    missed = [s for s in window if not ticks.get(s)]
    unexcused = [s for s in missed if covered(s)]
    rerun = {i: n for i, n in runs.items() if n > 1}
    kills = sum(1 for c in fleet.children if c.name == "scheduler" and (c.killed_at or end) < end)
    report(
        "scheduler-sigkill",
        seed=fleet.seed,
        seconds=len(window),
        firings=len(fired),
        duplicates=len(duplicates),
        misses=len(missed),
        misses_while_all_down=len(missed) - len(unexcused),
        unexcused_misses=len(unexcused),
        task_reruns=len(rerun),
        replica_kills=kills,
        logged=log_summary(fleet.children),
    )
    assert worker.alive(), f"the worker exited: {worker.log_tail()}"
    assert not duplicates, f"seconds enqueued more than once (second: tasks): {duplicates}"
    assert not unexcused, (
        f"seconds missed while a replica was up: {[s - math.ceil(begin) for s in unexcused]} "
        f"(offsets from the start); replica up-intervals: {up}"
    )
    assert not rerun, f"tick tasks run twice by a live worker: {rerun}"
    assert len(fired) >= len(window) - 4, "almost nothing fired: the harness is broken"
