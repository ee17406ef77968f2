"""ferroq on a real Redis Cluster: 3 masters and 3 replicas on loopback (``tests/topology.py``).

The workload touches every Lua script the core has, over queues spread across the slots, and a
test checks that each script ran here: a cluster refuses a script that touches a key outside its
first key's slot, so this is the rule "one slot per call" enforced. Then the scheduler's
exactly-once firing, and a master SIGKILLed mid-run, with and without durable mode, counting what
was lost and how long processing paused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from asynqgo import GoAsynq
from every_script import LUA, QUEUES, exercise_every_script
from failover import run_through_failover
from ferroq import (
    Client,
    Inspector,
    Scheduler,
    Server,
    Task,
)
from ferroq._embedded import EmbeddedRedis
from ferroq.scheduler import FIRED_AT_HEADER
from server_helpers import worker
from topology import Cluster, wait_until
from util import FAST


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    missing = [b for b in ("redis-server", "redis-cli") if shutil.which(b) is None]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{missing} required in CI for the cluster tests")
        pytest.skip(f"{missing} not on PATH")
    c = Cluster().start()
    yield c
    c.stop()


@pytest.fixture
def url(cluster: Cluster) -> str:
    wait_until(cluster.healthy, 30, "a healthy cluster")
    cluster.flushall()
    return cluster.url


def test_queues_spread_over_every_master(cluster: Cluster) -> None:
    masters = {cluster.master_of(f"asynq:{{{q}}}:pending").port for q in QUEUES}
    assert len(masters) == 3


def test_the_cluster_refuses_a_script_that_leaves_its_slot(cluster: Cluster, url: str) -> None:
    # What makes the next test a check: a key outside KEYS[1]'s slot is an error here.
    with cluster.client() as rc:
        node = rc.get_node_from_key("{a}")
        with redis.Redis(port=int(node.port)) as r, pytest.raises(redis.ResponseError):
            r.eval("return redis.call('GET', '{b}x')", 1, "{a}k")


def flushed_masters(cluster: Cluster, *, data: bool = False) -> list[int]:
    """The masters' ports, each with its script cache emptied (and its keys, with ``data``), so
    that ``scripts_run`` sees only what runs from here on."""
    ports = []
    for n in cluster.live():
        with redis.Redis(port=n.port) as r:
            if r.info("replication")["role"] == "master":
                ports.append(n.port)
                if data:
                    r.flushall()
                r.script_flush()
    return ports


def scripts_run(ports: list[int]) -> set[str]:
    """The core's scripts found in the script cache of any of these nodes."""
    ran: set[str] = set()
    for p in LUA.glob("*.lua"):
        sha = hashlib.sha1(p.read_bytes()).hexdigest()
        for port in ports:
            with redis.Redis(port=port) as r:
                if r.script_exists(sha)[0]:
                    ran.add(p.stem)
    return ran


@pytest.mark.parametrize("declare_keys", [None, False], ids=["default", "off"])
def test_a_server_on_a_cluster_declares_its_keys_unless_told_not_to(
    cluster: Cluster, url: str, declare_keys: bool | None
) -> None:
    """On a cluster every script call names every key it touches by default: the servers run
    the declared-keys dequeue unless ``declare_keys=False``."""
    ports = flushed_masters(cluster)
    done: list[str] = []
    fast: dict[str, Any] = dict(FAST)
    server = Server(url, queues={"dk": 1}, concurrency=2, declare_keys=declare_keys, **fast)
    assert server.declares_keys is (declare_keys is None)
    server.start(lambda task: done.append(task.type))
    try:
        with Client(url) as client:
            client.enqueue(Task("t", b""), queue="dk")
        wait_until(lambda: done == ["t"], 20, "the task to run")
    finally:
        server.shutdown()
    ran = scripts_run(ports)
    want, other = (
        ("dequeue", "dequeue_declared")
        if declare_keys is False
        else ("dequeue_declared", "dequeue")
    )
    assert want in ran and other not in ran, ran


@pytest.mark.parametrize("flag", ["", "--no-declare-keys"], ids=["default", "off"])
def test_ferroq_worker_on_a_cluster_declares_its_keys_unless_told_not_to(
    cluster: Cluster, url: str, flag: str
) -> None:
    ports = flushed_masters(cluster)
    with Client(url) as client:
        client.enqueue(Task("ok:sync", b""), queue="dk")
    p = worker(url, "-q", "dk", *([flag] if flag else []))
    try:
        with cluster.client() as rc:
            wait_until(lambda: rc.get("asynq:{dk}:processed") == b"1", 30, "the task to run")
    finally:
        p.terminate()
        assert p.wait(30) == 0
    ran = scripts_run(ports)
    want, other = ("dequeue", "dequeue_declared") if flag else ("dequeue_declared", "dequeue")
    assert want in ran and other not in ran, ran


def test_every_script_runs_on_a_cluster(
    cluster: Cluster, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    names = {p.stem for p in LUA.glob("*.lua")}
    # Once in each mode, each with its own dequeue script, from an empty script cache.
    for declare_keys, unused in ((False, "dequeue_declared"), (True, "dequeue")):
        ports = flushed_masters(cluster, data=True)
        with cluster.client() as rc:
            exercise_every_script(url, rc, declare_keys=declare_keys)
        ran = scripts_run(ports)
        mode = f"declare_keys={declare_keys}"
        not_run = sorted(names - {unused} - ran)
        assert not not_run, f"scripts never run on the cluster ({mode}): {not_run}"
        assert unused not in ran, f"{unused} ran on the cluster ({mode})"
    # A script (or call) outside its slot fails where it runs: in a component, logged.
    slot_errors = re.compile(
        r"CROSSSLOT|same slot|non local|MOVED|ASK |could not write|\w failed: "
    )
    bad = [r.getMessage() for r in caplog.records if slot_errors.search(r.getMessage())]
    assert not bad, bad


def test_scheduler_replicas_fire_once_on_a_cluster(cluster: Cluster, url: str) -> None:
    replicas = [Scheduler(url, heartbeat_interval=0.5) for _ in range(3)]
    for s in replicas:
        s.register("* * * * * *", Task("tick", b""), queue="ticks")
    for s in replicas:
        s.start()
    time.sleep(4.2)
    for s in replicas:
        s.shutdown()
    with Inspector(url) as insp:
        tasks = insp.list_pending_tasks("ticks", page_size=1000)
    fired = [t.headers[FIRED_AT_HEADER] for t in tasks]
    assert len(fired) >= 3
    assert len(fired) == len(set(fired)), f"a firing was enqueued twice: {sorted(fired)}"


def test_a_queue_whose_node_is_down_does_not_stop_the_others(
    cluster: Cluster, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    # One queue per master; the victim is a master that does not hold asynq:queues, which every
    # enqueue adds to. Killing its replica first leaves its slots unserved: no takeover ends
    # the outage, so every round meets the dead node.
    by_master = {cluster.master_of(f"asynq:{{{q}}}:pending").port: q for q in QUEUES}
    keep = cluster.master_of("asynq:queues").port
    victim_port = next(port for port in by_master if port != keep)
    victim = next(n for n in cluster.nodes if n.port == victim_port)
    replica = next(
        n for n in cluster.live() if n.port != victim_port and replica_of(n) == victim_port
    )
    victim_q = by_master[victim_port]
    others = [q for port, q in by_master.items() if port != victim_port]
    seen: list[tuple[str, str]] = []
    fast: dict[str, Any] = dict(FAST)
    server = Server(url, queues=dict.fromkeys(by_master.values(), 1), concurrency=4, **fast)
    server.start(lambda task: seen.append((task.type, task.queue)))
    scheduler = Scheduler(url, heartbeat_interval=0.5)
    scheduler.register("* * * * * *", Task("tick", b""), queue=others[0])
    try:
        cluster.kill(replica)
        cluster.kill(victim)
        # Started with the node down: its scripts are loaded on the queue's node only.
        scheduler.start()
        with Client(url) as client:
            for q in others:
                for _ in range(20):
                    client.enqueue(Task("ok", b""), queue=q)
        wait_until(
            lambda: (
                sum(t == "ok" for t, _ in seen) == 20 * len(others) and ("tick", others[0]) in seen
            ),
            30,
            "the other queues' tasks and a scheduled tick to run",
        )
    finally:
        scheduler.shutdown()
        server.shutdown()
        victim.start()
        replica.start()
        wait_until(cluster.healthy, 60, "the cluster to heal")
    assert {q for _, q in seen} == set(others)
    messages = [r.getMessage() for r in caplog.records]
    assert any(f"queue {victim_q} is unreachable" in m for m in messages), messages
    assert not [m for m in messages if "dequeue failed" in m], "a dead node failed whole rounds"


def test_a_slot_moved_under_a_connection_is_followed(
    cluster: Cluster, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    # A client and a server whose slot map is stale get MOVED for a queue whose slot moved: the
    # command did not run, so it runs again on a fresh connection (the new slot map) instead of
    # failing, even for calls that are never retried otherwise (an enqueue, a dequeue).
    q = "moving"
    key = f"asynq:{{{q}}}:pending"
    source = cluster.master_of(key)
    masters = [n for n in cluster.live() if replica_of(n) is None]
    target = next(n for n in masters if n.port != source.port)
    seen: list[str] = []
    fast: dict[str, Any] = dict(FAST)
    server = Server(url, queues={q: 1}, concurrency=2, **fast)
    with Client(url) as client:
        client.ping()  # connected, with the slot map of now
        # Polling an empty queue writes nothing in its slot, which stays empty to move.
        server.start(lambda task: seen.append(task.payload.decode()))
        try:
            with Inspector(url) as insp:
                wait_until(lambda: bool(insp.servers()), 10, "the server's first heartbeat")
            time.sleep(0.5)  # a few dequeue rounds on the old slot map
            move_empty_slot(key, source, target, masters)
            assert cluster.master_of(key).port == target.port
            client.enqueue(Task("ok", b"after"), queue=q)
            wait_until(lambda: seen == ["after"], 20, "the task on the moved slot to run")
        finally:
            server.shutdown()
    moved = [r.getMessage() for r in caplog.records if "changed its topology" in r.getMessage()]
    assert not moved, moved


def move_empty_slot(
    key: str, source: EmbeddedRedis, target: EmbeddedRedis, masters: list[EmbeddedRedis]
) -> None:
    """Moves ``key``'s slot, which holds no keys, from ``source`` to ``target`` (the documented
    IMPORTING/MIGRATING/NODE sequence, with nothing to MIGRATE)."""
    with redis.Redis(port=source.port) as src, redis.Redis(port=target.port) as dst:
        slot = int(src.execute_command("CLUSTER", "KEYSLOT", key))
        assert int(src.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot)) == 0
        src_id = src.execute_command("CLUSTER", "MYID").decode()
        dst_id = dst.execute_command("CLUSTER", "MYID").decode()
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
        dst.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
        src.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
    for n in masters:
        if n.port not in (source.port, target.port):
            with redis.Redis(port=n.port) as r:
                r.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)


def replica_of(node: EmbeddedRedis) -> int | None:
    """The port of the master ``node`` replicates, or None for a master."""
    with redis.Redis(port=node.port, socket_timeout=1) as r:
        info = r.info("replication")
    return int(info["master_port"]) if info.get("role") == "slave" else None


@pytest.mark.parametrize("durable", [False, True], ids=["default", "durable"])
def test_a_master_killed_mid_run(cluster: Cluster, url: str, durable: bool) -> None:
    victim = cluster.master_of("asynq:{fo}:pending")

    def fail_over() -> float:
        cluster.kill(victim)
        wait_until(lambda: cluster.promoted(victim.port), 30, "a replica to take over")
        promoted = time.monotonic()
        # The killed node comes back as a replica of the new master (durable mode needs one).
        victim.start()
        wait_until(cluster.healthy, 30, "the old master to rejoin as a replica")
        return promoted

    report = run_through_failover(url, durable, fail_over, lambda: Cluster.observer(url))
    report.check(durable)


def test_go_asynq_clients_and_servers_share_the_cluster(
    cluster: Cluster, url: str, asynqctl: Path
) -> None:
    go = GoAsynq(asynqctl, url)
    queues = ["g0", "g1", "g2", "g3"]
    # Go's RedisClusterClientOpt enqueues; a ferroq server runs the tasks.
    go_ids = {go.enqueue("ok:go", b"%d" % i, queue=q)["id"] for i, q in enumerate(queues)}
    seen: list[str] = []
    fast: dict[str, Any] = dict(FAST)
    server = Server(url, queues=dict.fromkeys(queues, 1), concurrency=2, **fast)
    server.start(lambda task: seen.append(task.id))
    try:
        wait_until(lambda: set(seen) == go_ids, 20, "ferroq to run Go's tasks")
    finally:
        server.shutdown()
    # A ferroq client enqueues; a Go server runs the tasks.
    with Client(url) as client:
        ids = {client.enqueue(Task("ok:fq", b"x"), queue=q).id for q in queues}
    go_server = go.serve(",".join(f"{q}=1" for q in queues))
    try:
        wait_until(lambda: {t["id"] for t in go_server.handled} == ids, 20, "Go to run ours")
    finally:
        go_server.stop()
    with cluster.client() as rc:
        for q in queues:
            assert rc.get(f"asynq:{{{q}}}:processed") == b"2"


def test_the_cli_works_on_a_cluster(url: str) -> None:
    with Client(url) as client:
        for q in ("cli-a", "cli-b", "cli-c"):
            client.enqueue(Task("ok", b""), queue=q)

    def ferroq(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "ferroq", *args, "--redis", url]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)

    listed = ferroq("queue", "ls", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {"cli-a", "cli-b", "cli-c"} <= set(json.loads(listed.stdout))
    stats = ferroq("stats", "--json")
    assert stats.returncode == 0, stats.stderr
    paused = ferroq("queue", "pause", "cli-b")
    assert paused.returncode == 0, paused.stderr
    with Inspector(url) as insp:
        assert insp.get_queue_info("cli-b").paused
        assert insp.get_queue_info("cli-a").pending == 1
