"""Micro-benchmarks of the hot functions (opt-in: ``make bench``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from ferroq import Client, ServeMux, Task
from ferroq._embedded import EmbeddedRedis
from ferroq._native import (
    NativeQueueSelector,
    decode_task_message,
    encode_task_message,
    queue_keys,
    task_key,
    unique_key,
)


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with EmbeddedRedis() as server:
        yield server.url


MESSAGE: dict[str, Any] = {
    "type": "email:welcome",
    "payload": b'{"user_id": 123456, "template": "welcome"}',
    "headers": {"trace": "4bf92f3577b34da6"},
    "id": "0b4e5a4c-9f0e-4b8a-9a41-6d0f3c2b1a00",
    "queue": "default",
    "retry": 25,
    "timeout": 1800,
}


def test_encode_task_message(benchmark: BenchmarkFixture) -> None:
    benchmark(encode_task_message, MESSAGE)


def test_decode_task_message(benchmark: BenchmarkFixture) -> None:
    data = encode_task_message(MESSAGE)
    benchmark(decode_task_message, data)


# Key building and queue selection run inside the core on every dequeue and enqueue; these call
# the same Rust functions through PyO3, so each figure includes one Python→Rust call (~50 ns).


def test_task_key(benchmark: BenchmarkFixture) -> None:
    benchmark(task_key, "default", "0b4e5a4c-9f0e-4b8a-9a41-6d0f3c2b1a00")


def test_unique_key(benchmark: BenchmarkFixture) -> None:
    benchmark(unique_key, "default", "email:welcome", MESSAGE["payload"])


def test_queue_keys_all_thirteen(benchmark: BenchmarkFixture) -> None:
    benchmark(queue_keys, "default")


def test_queue_selection_weighted_3(benchmark: BenchmarkFixture) -> None:
    selector = NativeQueueSelector({"high": 6, "default": 3, "low": 1})
    benchmark(selector.order)


def test_queue_selection_weighted_100(benchmark: BenchmarkFixture) -> None:
    selector = NativeQueueSelector({f"q{i}": 1 + i % 10 for i in range(100)})
    benchmark(selector.order)


def test_queue_selection_strict_3(benchmark: BenchmarkFixture) -> None:
    selector = NativeQueueSelector({"high": 6, "default": 3, "low": 1}, strict_priority=True)
    benchmark(selector.order)


def test_task_construction(benchmark: BenchmarkFixture) -> None:
    benchmark(Task, "email:welcome", b"{}", headers={"trace": "x"})


def test_servemux_resolve(benchmark: BenchmarkFixture) -> None:
    mux = ServeMux()
    for i in range(50):
        mux.handle(f"type{i}:", lambda t: None)
    benchmark(mux.resolve, "type42:sub")


def test_enqueue_round_trip(benchmark: BenchmarkFixture, redis_url: str) -> None:
    with Client(redis_url) as client:
        task = Task("bench", b"x")
        benchmark(client.enqueue, task)


def test_cron_next_after_ferroq(benchmark: BenchmarkFixture) -> None:
    from datetime import datetime, timezone

    from ferroq.cron import CronSchedule

    s = CronSchedule("*/7 9-17 * * mon-fri", tz="Europe/Paris")
    t = datetime(2026, 3, 28, 17, 55, tzinfo=timezone.utc)
    benchmark(s.next_after, t)


def test_cron_next_after_croniter(benchmark: BenchmarkFixture) -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from croniter import croniter

    tz = ZoneInfo("Europe/Paris")
    t = datetime(2026, 3, 28, 18, 55, tzinfo=tz)

    def next_after() -> datetime:
        result: datetime = croniter("*/7 9-17 * * mon-fri", t).get_next(datetime)
        return result

    benchmark(next_after)


def test_lease_handoff_ack_round_100_tasks(benchmark: BenchmarkFixture, redis_url: str) -> None:
    """One full round: the core leases 100 tasks (one script call), hands them to Python, and
    Python's 100 outcomes go back and are written (one pipeline) before the slots free up."""
    from ferroq._native import Lease, NativeServer, Outcome, ServerConfig

    rounds = 200
    with Client(redis_url) as c:
        for _ in range(rounds):
            c.enqueue_many([Task("noop") for _ in range(100)], queue="handoff")
    config = ServerConfig(concurrency=100, queues={"handoff": 1}, task_check_interval=0.01)
    native = NativeServer(redis_url, config)
    done = Outcome.done()
    native.start()
    try:

        def wrap(lease: Lease) -> Task:
            return Task._leased(native, lease)

        def one_round() -> None:
            tasks = native.next_batch(100, 5.0, wrap)
            while len(tasks) < 100:
                tasks += native.next_batch(100 - len(tasks), 5.0, wrap)
            for task in tasks:
                native.finish(task._token, done)

        # pedantic: each round consumes 100 of the tasks enqueued above, so the count is fixed.
        benchmark.pedantic(one_round, rounds=rounds, iterations=1)  # type: ignore[no-untyped-call]
    finally:
        native.shutdown()
