"""A Go asynq client enqueues; ferroq serves: every option, as the handler and Redis see it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from asynqgo import GoAsynq, GoError
from ferroq import Client, ServeMux, Server, Task
from util import wait_until

MakeServer = Callable[..., Server]


def serve_and_capture(
    make_server: MakeServer, n: int = 1, queues: dict[str, int] | None = None
) -> list[Task]:
    seen: list[Task] = []
    lock = threading.Lock()

    def record(task: Task) -> None:
        with lock:
            seen.append(task)
        if task.type.startswith("result:"):
            task.write_result(task.payload)

    make_server(queues=queues or {"default": 1}).start(record)
    wait_until(lambda: len(seen) >= n, timeout=15)
    return seen


@pytest.mark.parametrize(
    ("opts", "expect"),
    [
        pytest.param({}, {"queue": "default", "max_retry": 25, "deadline_in": 1800}, id="defaults"),
        pytest.param({"queue": "critical"}, {"queue": "critical"}, id="queue"),
        pytest.param({"max_retry": 3}, {"max_retry": 3}, id="max_retry"),
        pytest.param({"timeout": "45s"}, {"deadline_in": 45}, id="timeout"),
        pytest.param({"deadline": "+600"}, {"deadline_in": 600}, id="deadline"),
        pytest.param({"task_id": "go-fixed-id"}, {"id": "go-fixed-id"}, id="task_id"),
        pytest.param(
            {"header": {"trace": "abc", "k": "v"}},
            {"headers": {"trace": "abc", "k": "v"}},
            id="headers",
        ),
    ],
)
def test_go_enqueues_ferroq_processes(
    go: GoAsynq,
    r: redis.Redis,
    make_server: MakeServer,
    opts: dict[str, Any],
    expect: dict[str, Any],
) -> None:
    if opts.get("deadline") == "+600":
        opts = {**opts, "deadline": int(time.time()) + 600}
    info = go.enqueue("ok:go", b"\x00payload\xff", **opts)
    (t,) = serve_and_capture(make_server, queues={info["queue"]: 1})
    assert (t.id, t.type, t.payload) == (info["id"], "ok:go", b"\x00payload\xff")
    assert t.queue == expect.get("queue", "default")
    assert t.max_retry == expect.get("max_retry", 25)
    assert t.headers == expect.get("headers", {})
    if "id" in expect:
        assert t.id == expect["id"]
    assert t.deadline is not None
    assert t.deadline.timestamp() == pytest.approx(
        time.time() + expect.get("deadline_in", 1800), abs=5
    )
    q = t.queue
    wait_until(lambda: r.get(f"asynq:{{{q}}}:processed") == b"1")
    assert not r.exists(f"asynq:{{{q}}}:t:{t.id}")


def test_go_scheduled_task_is_forwarded_by_ferroq(
    go: GoAsynq, r: redis.Redis, make_server: MakeServer
) -> None:
    info = go.enqueue("ok:later", b"x", process_in="1s")
    assert info["state"] == "scheduled"
    (t,) = serve_and_capture(make_server)
    assert t.id == info["id"]


def test_a_go_scheduled_task_never_runs_before_its_second(
    go: GoAsynq, r: redis.Redis, make_server: MakeServer
) -> None:
    """Go writes ``processAt`` floored to the second; ferroq forwards a task only once that
    second has come, never before its score (a guard: the score is all Go leaves of the time)."""
    ran: dict[str, float] = {}
    srv = make_server(delayed_task_check_interval=0.05)
    srv.start(lambda t: ran.__setitem__(t.id or "", time.time()))
    scores: dict[str, float] = {}
    for _ in range(4):
        info = go.enqueue("ok:later", b"x", process_in="1500ms")
        score = r.zscore("asynq:{default}:scheduled", info["id"])
        assert score is not None
        scores[info["id"]] = score
        time.sleep(0.27)  # spread over the second
    wait_until(lambda: len(ran) == 4, timeout=15)
    early = {i: scores[i] - ran[i] for i in ran if ran[i] < scores[i]}
    assert not early, f"ran before Go's process-at by {early} s"


def test_go_retention_task_is_kept_with_ferroqs_result(
    go: GoAsynq, make_server: MakeServer
) -> None:
    info = go.enqueue("result:x", b"the answer", retention="1h")
    serve_and_capture(make_server)
    done = wait_until(lambda: _completed(go, info["id"]))
    assert done["result_hex"] == b"the answer".hex()
    assert done["completed_at"] == pytest.approx(time.time(), abs=5)
    assert done["retention"] == 3600


def _completed(go: GoAsynq, task_id: str) -> dict[str, Any] | None:
    ti: dict[str, Any] = go.inspect("task", "default", task_id)
    return ti if ti["state"] == "completed" else None


def test_go_unique_lock_is_released_by_ferroqs_success(
    go: GoAsynq, make_server: MakeServer
) -> None:
    first = go.enqueue("ok:unique", b"same", unique="1h")
    with pytest.raises(GoError, match="task already exists"):
        go.enqueue("ok:unique", b"same", unique="1h")
    serve_and_capture(make_server)
    wait_until(lambda: _gone(go, first["id"]))
    second = go.enqueue("ok:unique", b"same", unique="1h")
    assert second["id"] != first["id"]


def _gone(go: GoAsynq, task_id: str) -> bool:
    try:
        go.inspect("task", "default", task_id)
    except GoError:
        return True
    return False


def test_go_group_task_waits_in_its_group(go: GoAsynq, r: redis.Redis, client: Client) -> None:
    go_info = go.enqueue("ok:grouped", b"1", group="batch")
    fq_info = client.enqueue(Task("ok:grouped", b"2"), group="batch")
    listed = go.inspect("list", "default", "aggregating", "batch")
    assert {t["id"] for t in listed} == {go_info["id"], fq_info.id}
    assert all(t["group"] == "batch" and t["state"] == "aggregating" for t in listed)
    assert r.smembers("asynq:{default}:groups") == {b"batch"}


def test_go_failure_story_matches_ferroq(
    go: GoAsynq, r: redis.Redis, make_server: MakeServer
) -> None:
    """A Go-enqueued task that fails in ferroq is retried, then archived, readable by Go."""
    info = go.enqueue("fail:x", b"", max_retry=1)
    mux = ServeMux()

    def boom(task: Task) -> None:
        raise RuntimeError("ferroq failure")

    mux.handle("fail:", boom)
    make_server(retry_delay=lambda n, e, t: 0).start(mux)
    archived = wait_until(lambda: _in_state(go, info["id"], "archived"), timeout=20)
    assert archived["retried"] == 1
    assert archived["last_err"] == "RuntimeError: ferroq failure"
    assert archived["last_failed_at"] == pytest.approx(time.time(), abs=5)
    qi = go.inspect("queue", "default")
    assert (qi["processed_total"], qi["failed_total"], qi["archived"]) == (2, 2, 1)


def _in_state(go: GoAsynq, task_id: str, state: str) -> dict[str, Any] | None:
    ti: dict[str, Any] = go.inspect("task", "default", task_id)
    return ti if ti["state"] == state else None
