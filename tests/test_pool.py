"""The worker pool that runs sync handlers."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest

from ferroq._pool import WorkerPool
from util import wait_until


def test_runs_every_call_on_at_most_max_threads() -> None:
    pool = WorkerPool(3, "t")
    seen: set[str] = set()
    done = threading.Semaphore(0)
    lock = threading.Lock()

    def work(i: int) -> None:
        with lock:
            seen.add(threading.current_thread().name)
        done.release()

    for i in range(500):
        pool.submit(work, i)
    for _ in range(500):
        assert done.acquire(timeout=10)
    assert 1 <= len(seen) <= 3
    pool.shutdown()


def test_starts_a_thread_when_every_thread_is_busy() -> None:
    pool = WorkerPool(4, "t")
    release = threading.Event()
    started = threading.Semaphore(0)

    def block() -> None:
        started.release()
        release.wait(10)

    for _ in range(4):
        pool.submit(block)
    for _ in range(4):  # four blocked calls at once: one thread each
        assert started.acquire(timeout=10)
    release.set()
    pool.shutdown()


def test_a_burst_of_short_calls_runs_on_few_threads() -> None:
    # The server hands the pool a batch at once: waking a thread per call would cost a context
    # switch and a GIL hand-over per task. A queue every thread waits on started 62 of 64 here.
    pool = WorkerPool(64, "burst")
    done = threading.Semaphore(0)
    for _ in range(2000):
        pool.submit(done.release)
    for _ in range(2000):
        assert done.acquire(timeout=10)
    started = [t for t in threading.enumerate() if t.name.startswith("burst-")]
    assert 1 <= len(started) <= 32, f"{len(started)} threads for 2000 short calls"
    pool.shutdown()
    wait_until(lambda: not any(t.name.startswith("burst-") for t in threading.enumerate()))


def test_calls_that_block_each_start_on_a_thread_of_their_own() -> None:
    # Woken one after the other: each thread that takes a call while others wait wakes the next.
    pool = WorkerPool(16, "chain")
    gates = [threading.Event(), threading.Event()]
    started = threading.Semaphore(0)

    def block(gate: threading.Event) -> None:
        started.release()
        gate.wait(10)

    for gate in gates:  # the second burst finds the 16 threads asleep and wakes them all
        for _ in range(16):
            pool.submit(block, gate)
        for _ in range(16):
            assert started.acquire(timeout=10)
        gate.set()
        wait_until(lambda: len(pool._sleepers) == 16)
    pool.shutdown()
    wait_until(lambda: not any(t.name.startswith("chain-") for t in threading.enumerate()))


def test_threads_are_daemons_and_survive_a_raising_call() -> None:
    pool = WorkerPool(1, "t")
    names: list[bool] = []

    def boom() -> None:
        raise ValueError("handler bug")

    pool.submit(boom)
    pool.submit(lambda: names.append(threading.current_thread().daemon))
    wait_until(lambda: names)
    assert names == [True]
    pool.shutdown()


def test_shutdown_drops_calls_not_started_and_refuses_new_ones() -> None:
    pool = WorkerPool(1, "drop")
    gate, running = threading.Event(), threading.Event()
    ran: list[int] = []

    def first() -> None:
        running.set()
        gate.wait(10)

    pool.submit(first)
    assert running.wait(10)
    for i in range(5):
        pool.submit(ran.append, i)
    pool.shutdown()
    with pytest.raises(RuntimeError):
        pool.submit(ran.append, 99)
    gate.set()
    wait_until(lambda: not any(t.name.startswith("drop-") for t in threading.enumerate()))
    assert ran == []


def test_a_hung_handler_does_not_keep_the_process_alive(redis_url: str) -> None:
    # The task is requeued at shutdown; the thread stuck in the handler must not block exit.
    script = textwrap.dedent(
        f"""
        import threading, time
        from ferroq import Client, Server, Task
        started = threading.Event()
        def hang(task):
            started.set()
            time.sleep(3600)
        srv = Server({redis_url!r}, shutdown_timeout=0.2)
        srv.start(hang)
        with Client({redis_url!r}) as c:
            c.enqueue(Task("hang"))
        assert started.wait(10)
        srv.shutdown()
        print("shut down", flush=True)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "shut down" in done.stdout


def test_a_thread_that_cannot_start_frees_its_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = WorkerPool(1, "nostart")
    real_start = threading.Thread.start

    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    with pytest.raises(RuntimeError):
        pool.submit(lambda: None)
    monkeypatch.setattr(threading.Thread, "start", real_start)
    ran = threading.Event()
    pool.submit(ran.set)
    assert ran.wait(10), "the slot of the thread that never started was given back"
    pool.shutdown()
