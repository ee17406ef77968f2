"""Scenario 4: a task in ``asynq:{q}:active`` that no lease entry covers must not stay there.

Two ways to get one, both with a worker running the short recovery settings:

* the lease entry of a task that is running vanishes (``ZREM asynq:{default}:lease <id>``,
  as a failover that lost a write, or an operator, would do): the task must still end, by
  completing (its server takes the lease again) or by being retried and completing;
* an id pushed straight into ``active`` with its task hash but no lease entry (a server died
  between its steps, or an older layout): the recoverer must take it out of ``active`` and the
  task must run.
"""

from __future__ import annotations

import time
import uuid

import pytest
import redis

from chaos.checker import check, read_executions
from chaos.harness import (
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

#: How long the held task runs, and the bound on it leaving ``active``: the lease the recoverer
#: gives an orphan (10 s at least, so a live Go server could renew it first), its grace (2 s)
#: and a recoverer pass (1 s), plus slack for a loaded machine.
HOLD, LEAVE_ACTIVE = 3.0, 25.0
#: Bound on the task having run, when it left ``active`` for a retry (the workers' retry delay
#: is 0), with slack.
RUN = 40.0


def in_active(r: redis.Redis, queue: str, task_id: str) -> bool:
    """Whether ``task_id`` is in ``queue``'s active list."""
    return task_id.encode() in r.lrange(f"asynq:{{{queue}}}:active", 0, -1)


def ran(rig: Rig, task_id: str) -> bool:
    """Whether ``task_id`` has an execution record."""
    return any(e.task_id == task_id for e in read_executions(rig.records))


def state(r: redis.Redis, queue: str, task_id: str) -> str | None:
    """The task hash's ``state`` (``None`` once the hash is gone, as after a success)."""
    s = r.hget(f"asynq:{{{queue}}}:t:{task_id}", "state")
    return s.decode() if isinstance(s, bytes) else s


def follow(rig: Rig, r: redis.Redis, queue: str, task_id: str, since: float) -> dict[str, object]:
    """Waits for ``task_id`` to leave ``active`` and then to run; returns what was seen.

    Never raises on a timeout: the test asserts on the returned numbers, after reporting them.
    """
    out: dict[str, object] = {"left_active_s": None, "ran_s": None, "state_after": None}
    deadline = since + LEAVE_ACTIVE
    while in_active(r, queue, task_id) and time.time() < deadline:
        time.sleep(0.1)
    if in_active(r, queue, task_id):
        out["state_after"] = state(r, queue, task_id)
        out["lease_entry"] = r.zscore(f"asynq:{{{queue}}}:lease", task_id)
        return out
    out["left_active_s"] = round(time.time() - since, 2)
    out["state_after"] = state(r, queue, task_id)
    deadline = since + RUN
    while not ran(rig, task_id) and time.time() < deadline:
        time.sleep(0.1)
    runs = [e for e in read_executions(rig.records) if e.task_id == task_id]
    if runs:
        out["ran_s"] = round(runs[0].at - since, 2)
        # A success without retention deletes the task hash; one left behind (state "active"
        # in no list) is a leak that no Inspector lists and nothing cleans up.
        poll_until(lambda: state(r, queue, task_id) is None, 5)
        out["hash_after_run"] = state(r, queue, task_id)
    return out


@pytest.mark.timeout(120)
def test_running_task_whose_lease_entry_vanished_ends(rig: Rig) -> None:
    flags = recovery_flags()
    server = rig.redis()
    w = rig.fleet.worker(server.url, extra=flags)
    wait_serving(server, w)
    task_id = str(uuid.uuid4())
    with Client(server.url) as client:
        client.enqueue(Task("chaos:hold", str(HOLD).encode()), task_id=task_id)
    acknowledge(rig.records, [task_id])
    wait_for((rig.records / f"hold-{task_id}").exists, 10, "the held task started")

    r = server.client()
    removed = r.zrem("asynq:{default}:lease", task_id)
    removed_at = time.time()
    seen = follow(rig, r, "default", task_id, removed_at)
    r.close()
    verdict = check([task_id], read_executions(rig.records))
    report(
        "orphan-lease-removed",
        removed=removed,
        **seen,
        verdict=verdict.summary(),
        logged=log_summary([w]),
    )
    assert removed == 1, "the lease entry was not there to remove: the harness is broken"
    assert w.alive(), f"the worker exited: {w.log_tail()}"
    assert seen["left_active_s"] is not None, (
        f"the task is still in asynq:{{default}}:active {LEAVE_ACTIVE:g} s after its lease entry "
        f"was removed (state {seen['state_after']!r}, lease entry {seen.get('lease_entry')}): "
        "stuck forever, as nothing recovers an active task without a lease entry"
    )
    assert seen["ran_s"] is not None, f"the task left active but never completed: {seen}"
    assert seen["hash_after_run"] is None, (
        f"the task completed, but its hash stays with state {seen['hash_after_run']!r} "
        "in no list: the success was not written"
    )
    # The worker lived: the task must have completed once, not once per recovery.
    assert not verdict.duplicated, verdict.summary()


@pytest.mark.timeout(120)
def test_active_id_without_lease_entry_is_recovered(rig: Rig) -> None:
    flags = recovery_flags()
    server = rig.redis()
    w = rig.fleet.worker(server.url, ["orphans"], extra=flags)
    wait_serving(server, w)
    task_id = str(uuid.uuid4())
    with Client(server.url) as client:
        # Scheduled an hour ahead, so the worker leaves it alone until it is moved below.
        client.enqueue(Task("chaos:work", b"0"), queue="orphans", task_id=task_id, process_in=3600)
    acknowledge(rig.records, [task_id])

    # As if a server died between its steps: the id is in active, the hash says active, and no
    # lease entry was ever written.
    r = server.client()
    with r.pipeline(transaction=True) as p:
        p.zrem("asynq:{orphans}:scheduled", task_id)
        p.lpush("asynq:{orphans}:active", task_id)
        p.hset(f"asynq:{{orphans}}:t:{task_id}", "state", "active")
        moved = p.execute()
    planted_at = time.time()
    seen = follow(rig, r, "orphans", task_id, planted_at)
    r.close()
    verdict = check([task_id], read_executions(rig.records))
    report(
        "orphan-active-without-lease",
        **seen,
        verdict=verdict.summary(),
        logged=log_summary([w]),
    )
    assert moved[0] == 1, "the task was not scheduled: the harness is broken"
    assert w.alive(), f"the worker exited: {w.log_tail()}"
    assert seen["left_active_s"] is not None, (
        f"the planted id is still in asynq:{{orphans}}:active {LEAVE_ACTIVE:g} s later "
        f"(state {seen['state_after']!r}): nothing recovers an active id without a lease entry"
    )
    assert seen["ran_s"] is not None, f"the task left active but never ran: {seen}"
    assert seen["hash_after_run"] is None, f"the task ran, but its hash stays: {seen}"
    assert not verdict.lost and not verdict.duplicated, verdict.summary()
