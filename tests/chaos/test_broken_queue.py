"""Scenario 5: one queue's keys have the wrong type; the other queues of the same worker go on.

A worker serves ``healthy`` and ``broken``; ``SET asynq:{broken}:pending x`` makes every
command on that list fail with WRONGTYPE. The healthy queue's tasks must still all run, about
as fast as with nothing broken, whether the worker orders queues by weight or strictly (with
the broken queue first, the worst case).
"""

from __future__ import annotations

import time

import pytest

from chaos.checker import check, read_acked, read_executions
from chaos.harness import Rig, acknowledge, log_summary, report, wait_serving
from ferroq import Client, Task

#: Tasks per batch, and the bound on a batch's run with a broken neighbour ("well under 10 s":
#: a healthy run of 300 no-op tasks takes a fraction of a second here).
BATCH = 300
BOUND = 10.0


def run_batch(rig: Rig, url: str) -> tuple[float | None, int]:
    """Enqueues ``BATCH`` no-op tasks on ``healthy`` and waits up to ``BOUND`` for them to run.

    Returns:
        The seconds from the enqueue to the last execution (``None`` if they did not all run
        within the bound), and how many ran.
    """
    with Client(url) as client:
        t0 = time.time()
        infos = client.enqueue_many(
            [Task("chaos:work", b"0") for _ in range(BATCH)], queue="healthy"
        )
    ids = {i.id for i in infos}
    acknowledge(rig.records, sorted(ids))
    deadline = time.monotonic() + BOUND
    while True:
        ran = [e for e in read_executions(rig.records) if e.task_id in ids]
        done = {e.task_id for e in ran}
        if len(done) == len(ids):
            return max(e.at for e in ran) - t0, len(done)
        if time.monotonic() > deadline:
            return None, len(done)
        time.sleep(0.05)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("strict", [False, True], ids=["weighted", "strict"])
def test_broken_queue_is_isolated(rig: Rig, strict: bool) -> None:
    server = rig.redis()
    # Strict: the broken queue has the higher priority, so it is tried first in every round.
    queues = ["healthy=1", "broken=2"] if strict else ["healthy=1", "broken=1"]
    w = rig.fleet.worker(server.url, queues, extra=["--strict-priority"] if strict else [])
    wait_serving(server, w)

    baseline, _ = run_batch(rig, server.url)
    r = server.client()
    r.set("asynq:{broken}:pending", "x")
    broken, ran = run_batch(rig, server.url)
    r.close()

    verdict = check(read_acked(rig.records), read_executions(rig.records))
    mode = "strict" if strict else "weighted"
    report(
        f"broken-queue-{mode}",
        healthy_s=None if baseline is None else round(baseline, 2),
        with_broken_s=None if broken is None else round(broken, 2),
        ran=f"{ran}/{BATCH}",
        verdict=verdict.summary(),
        worker_alive=w.alive(),
        logged=log_summary([w]),
    )
    assert baseline is not None, "the healthy baseline did not finish: the harness is broken"
    assert w.alive(), f"the worker exited: {w.log_tail()}"
    assert broken is not None, (
        f"with {{broken}}:pending of the wrong type only {ran}/{BATCH} healthy tasks ran "
        f"in {BOUND:g} s ({mode} priority): one broken queue starves the others"
    )
    assert not verdict.lost and not verdict.duplicated, verdict.summary()
