"""Declared-keys mode (``Server(declare_keys=True)``, ``ferroq worker --declare-keys``) on a real
Redis: the dequeue leases only tasks whose hashes its call names, from the ids its last call
found at the tail of pending. Servers racing for the same tail must still run every task once,
a queue that fills one task at a time must still be served, and priorities hold.
``test_lua_keys.py`` checks that no script then touches a key its call did not name."""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter

import redis

from ferroq import Client, ServerConfig, Task
from server_helpers import MakeServer, empty_active, mux_of, worker
from test_lua_scripts import LUA
from util import wait_until


def test_servers_racing_for_one_tail_run_every_task_once(
    client: Client, r: redis.Redis, make_server: MakeServer
) -> None:
    ran: Counter[bytes] = Counter()
    lock = threading.Lock()

    def work(task: Task) -> None:
        with lock:
            ran[task.payload] += 1

    n = 1500
    client.enqueue_many([Task("w", b"%d" % i) for i in range(n)])
    client.enqueue_many([Task("w", b"low%d" % i) for i in range(50)], queue="low")
    for _ in range(3):
        make_server(concurrency=6, declare_keys=True, queues={"default": 3, "low": 1}).start(
            mux_of({"w": work})
        )
    wait_until(lambda: sum(ran.values()) >= n + 50, 60)
    wait_until(lambda: empty_active(r), 10)
    assert set(ran.values()) == {1}, [p for p, c in ran.items() if c > 1][:5]
    assert len(ran) == n + 50
    assert not r.exists("asynq:{default}:pending", "asynq:{low}:pending")


def test_a_queue_filled_one_task_at_a_time_is_served(
    client: Client, make_server: MakeServer
) -> None:
    """Each task arrives at an empty queue, so no call has named it before: it is learnt and
    leased by the calls that follow, woken by the enqueue's notice. The idle poll (30 to 90 s)
    is longer than the wait, so a task left for it fails the test."""
    done: list[bytes] = []
    make_server(declare_keys=True, task_check_interval=60).start(
        mux_of({"w": lambda t: done.append(t.payload)})
    )
    time.sleep(0.3)
    sent: list[str] = []
    for i in range(20):
        sent.append(client.enqueue(Task("w", b"%d" % i)).id)
        wait_until(lambda: len(done) == len(sent), 10)
    assert done == [b"%d" % i for i in range(20)]


def test_a_higher_queue_is_drained_first(client: Client, make_server: MakeServer) -> None:
    """Tasks arriving at the higher queue are unknown to the server while the lower one's tail
    is known: its first call there learns the tail and leases nothing, and the server calls it
    again rather than serve the lower queue."""
    seen: list[bytes] = []
    gate = threading.Event()

    def work(task: Task) -> None:
        seen.append(task.payload)
        gate.wait(10)

    client.enqueue_many([Task("w", b"low") for _ in range(5)], queue="low")
    make_server(
        concurrency=1, declare_keys=True, strict_priority=True, queues={"high": 2, "low": 1}
    ).start(mux_of({"w": work}))
    wait_until(lambda: seen == [b"low"], 10)  # its call read the rest of low's tail
    client.enqueue_many([Task("w", b"high") for _ in range(30)], queue="high")
    gate.set()
    wait_until(lambda: len(seen) == 35, 30)
    assert seen == [b"low"] + [b"high"] * 30 + [b"low"] * 4


def test_ferroq_worker_declare_keys_turns_it_on(r: redis.Redis, redis_url: str) -> None:
    """A ``--declare-keys`` worker dequeues with dequeue_declared.lua and a read-ahead (its
    ARGV[3])."""
    sha = hashlib.sha1((LUA / "dequeue_declared.lua").read_bytes()).hexdigest()
    reads: list[int] = []
    with r.monitor() as m:  # type: ignore[no-untyped-call]
        p = worker(redis_url, "--declare-keys")
        try:
            deadline = time.monotonic() + 30
            for event in m.listen():
                args = str(event["command"]).split(" ")
                if args[:2] == ["EVALSHA", sha]:
                    numkeys = int(args[2])
                    reads.append(int(args[3 + numkeys + 2]))
                if len(reads) >= 3 or time.monotonic() > deadline:
                    break
        finally:
            p.terminate()
            assert p.wait(30) == 0
    assert len(reads) >= 3 and min(reads) >= 64, reads


def test_the_setting_is_reported_and_left_to_the_url_by_default() -> None:
    """None: on for a cluster URL, off otherwise (test_cluster checks a cluster's servers)."""
    assert ServerConfig().declare_keys is None
    assert ServerConfig(declare_keys=True).declare_keys is True
    assert ServerConfig(declare_keys=False).declare_keys is False


def test_a_server_on_one_redis_dequeues_asynqs_way_by_default(
    r: redis.Redis, client: Client, make_server: MakeServer
) -> None:
    r.script_flush()
    done: list[bytes] = []
    server = make_server()
    assert not server.declares_keys and make_server(declare_keys=True).declares_keys
    server.start(mux_of({"t": lambda task: done.append(task.payload)}))
    client.enqueue(Task("t", b"x"))
    wait_until(lambda: done == [b"x"], 10)
    sha = {
        n: hashlib.sha1((LUA / f"{n}.lua").read_bytes()).hexdigest()
        for n in ("dequeue", "dequeue_declared")
    }
    assert r.script_exists(sha["dequeue"], sha["dequeue_declared"]) == [True, False]
