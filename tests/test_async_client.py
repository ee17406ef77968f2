"""``AsyncClient``: the client's calls awaited on the core's I/O thread, never in the loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
import redis

import ferroq
from client_helpers import CLOSED_PORT_URL, qkey, stored
from ferroq import App, AsyncClient, Server, Task


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_enqueue_enqueue_many_task_info_and_ping(redis_url: str, r: redis.Redis) -> None:
    async def main() -> None:
        async with AsyncClient(redis_url) as c:
            await c.ping()
            info = await c.enqueue(Task("a:b", b"x"), queue="aq", max_retry=3)
            assert info.state == ferroq.TaskState("pending") and info.max_retry == 3
            assert stored(r, info.id, "aq")["payload"] == b"x"
            many = await c.enqueue_many([Task("a:c", str(i).encode()) for i in range(5)])
            assert len({i.id for i in many}) == 5
            back = await c.task_info("aq", info.id)
            assert back.id == info.id and back.type == "a:b"
            with pytest.raises(ferroq.TaskNotFoundError):
                await c.task_info("aq", "nope")

    run(main())
    assert r.llen(qkey("default", "pending")) == 5


def test_errors_arrive_typed_and_nothing_is_lost_when_many_coroutines_enqueue(
    redis_url: str, r: redis.Redis
) -> None:
    async def main() -> None:
        async with AsyncClient(redis_url) as c:
            await c.enqueue(Task("u", b"1"), unique=60)
            with pytest.raises(ferroq.DuplicateTaskError):
                await c.enqueue(Task("u", b"1"), unique=60)
            await c.enqueue(Task("t"), task_id="same")
            with pytest.raises(ferroq.TaskIdConflictError):
                await c.enqueue(Task("t"), task_id="same")
            with pytest.raises(ferroq.InvalidArgumentError):
                await c.enqueue(Task("t"), queue=" ")
            with pytest.raises(ferroq.BatchEnqueueError) as ei:
                await c.enqueue_many([Task("u", b"1"), Task("u", b"2")], unique=60)
            assert len(ei.value.errors) == 1

            async def burst(k: int) -> list[str]:
                return [(await c.enqueue(Task("n", b"%d" % k), queue="burst")).id
                        for _ in range(100)]  # fmt: skip

            ids = [i for ids in await asyncio.gather(*(burst(k) for k in range(50))) for i in ids]
            assert len(set(ids)) == 5000

    run(main())
    assert r.llen(qkey("burst", "pending")) == 5000


def test_the_loop_runs_while_redis_is_paused(redis_url: str, r: redis.Redis) -> None:
    """The issue's measurement: a plain client blocked the loop for the whole pause."""

    async def main() -> tuple[float, int]:
        async with AsyncClient(redis_url) as c:
            await c.ping()
            ticks = 0
            stop = asyncio.Event()

            async def ticker() -> None:
                nonlocal ticks
                while not stop.is_set():
                    await asyncio.sleep(0.01)
                    ticks += 1

            t = asyncio.create_task(ticker())
            await asyncio.sleep(0.05)
            ticks = 0
            r.client_pause(600, all=False)  # WRITE pause: our enqueue waits, the PING above not
            t0 = time.monotonic()
            await c.enqueue(Task("p", b"1"))
            waited = time.monotonic() - t0
            stop.set()
            await t
            return waited, ticks

    waited, ticks = asyncio.run(main())
    assert waited >= 0.4, "the pause held the enqueue"
    assert ticks >= 5, f"the loop ran only {ticks} ticks while the enqueue waited {waited:.2f}s"


def test_a_cancelled_call_leaves_the_client_working(redis_url: str) -> None:
    async def main() -> None:
        async with AsyncClient(redis_url) as c:
            pending = [asyncio.ensure_future(c.enqueue(Task("c", b"1"))) for _ in range(20)]
            for p in pending[::2]:
                p.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            assert (await c.enqueue(Task("c", b"2"))).type == "c"

    run(main())


def test_an_unreachable_redis_is_a_typed_error() -> None:
    async def main() -> None:
        c = AsyncClient(CLOSED_PORT_URL)
        with pytest.raises(ferroq.BrokerConnectionError):
            await c.enqueue(Task("x"))
        await c.close()

    run(main())


def test_task_functions_enqueued_from_asyncio(app: App, serve: Callable[..., Server]) -> None:
    @app.task
    async def double(x: int) -> int:
        return 2 * x

    @app.task
    def name(first: str, last: str = "") -> str:
        return f"{first} {last}".strip()

    serve()

    async def main() -> None:
        handles = [await double.adelay(i) for i in range(20)]
        assert await asyncio.gather(*handles) == [2 * i for i in range(20)]
        h = await name.aenqueue("Ada", last="Lovelace")
        assert await h == "Ada Lovelace"
        later = await name.with_options(countdown=0).adelay("Grace")
        assert await later.wait(timeout=10) == "Grace"
        raw = await name.aapply_async(("Alan",), queue="default")
        assert await raw == "Alan"

    run(main())


def test_a_plain_task_handle_returns_the_bytes_written(
    redis_url: str, make_server: Callable[..., Server]
) -> None:
    mux = ferroq.ServeMux()

    @mux.handle("echo")
    def echo(task: Task) -> None:
        task.write_result(task.payload[::-1])

    make_server().start(mux)
    with ferroq.Client(redis_url) as c:
        h = c.handle(c.enqueue(Task("echo", b"abc"), retention=60))
        assert h.get(timeout=10) == b"cba"

    async def main() -> bytes:
        async with AsyncClient(redis_url) as ac:
            info = await ac.enqueue(Task("echo", b"xyz"), retention=60)
            return await ac.handle(info)

    assert run(main()) == b"zyx"


def test_the_async_inspector_has_every_inspector_call_and_blocks_nothing(
    redis_url: str, r: redis.Redis
) -> None:
    import inspect as pyinspect

    sync_calls = {n for n, f in vars(ferroq.Inspector).items() if callable(f) and n[0] != "_"}
    async_calls = {n for n, f in vars(ferroq.AsyncInspector).items() if callable(f) and n[0] != "_"}
    assert sync_calls == async_calls
    for name in async_calls:
        assert pyinspect.iscoroutinefunction(getattr(ferroq.AsyncInspector, name)), name
        want = pyinspect.signature(getattr(ferroq.Inspector, name)).parameters
        assert pyinspect.signature(getattr(ferroq.AsyncInspector, name)).parameters == want, name

    with ferroq.Client(redis_url) as c:
        info = c.enqueue(Task("a:b", b"1"), queue="iq")

    async def main() -> int:
        async with ferroq.AsyncInspector(redis_url) as insp:
            assert await insp.queues() == ["iq"]
            assert (await insp.get_queue_info("iq")).pending == 1
            assert [t.id for t in await insp.list_pending_tasks("iq")] == [info.id]
            with pytest.raises(ferroq.TaskNotFoundError):
                await insp.delete_task("iq", "nope")
            with pytest.raises(ferroq.QueueNotFoundError):
                await insp.get_queue_info("nope")
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1

            t = asyncio.create_task(ticker())
            r.client_pause(500, all=False)
            await insp.archive_all_pending_tasks("iq")  # a write: it waits out the pause
            t.cancel()
            return ticks

    assert run(main()) >= 5, "the loop ran while the Inspector's write waited"  # type: ignore[operator]
    assert r.zcard(qkey("iq", "archived")) == 1


def test_an_async_inspector_is_usable_after_close(redis_url: str) -> None:
    async def main() -> list[str]:
        insp = ferroq.AsyncInspector(redis_url)
        await insp.ping()
        await insp.close()
        queues = await insp.queues()  # as an Inspector, it stays usable
        await insp.close()
        return queues

    assert run(main()) == []
