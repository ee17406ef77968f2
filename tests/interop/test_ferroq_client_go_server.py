"""ferroq enqueues; a Go asynq server processes: every option, as Go's handler and Inspector
see it."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis

from asynqgo import GoAsynq, GoError, GoServer
from ferroq import Client, DuplicateTaskError, Task
from util import wait_until

StartGo = Callable[..., GoServer]


def handled(server: GoServer, n: int = 1) -> list[dict[str, Any]]:
    wait_until(lambda: len(server.handled) >= n, timeout=20)
    return server.handled


@pytest.mark.parametrize(
    ("opts", "expect"),
    [
        pytest.param({}, {}, id="defaults"),
        pytest.param({"queue": "critical"}, {"queue": "critical"}, id="queue"),
        pytest.param({"max_retry": 2}, {"max_retry": 2}, id="max_retry"),
        pytest.param({"timeout": 45}, {"deadline_in": 45}, id="timeout"),
        pytest.param({"timeout": timedelta(minutes=2)}, {"deadline_in": 120}, id="timeout-td"),
        pytest.param({"deadline": 600}, {"deadline_in": 600}, id="deadline"),
        pytest.param({"task_id": "fq-fixed"}, {"id": "fq-fixed"}, id="task_id"),
        pytest.param({"headers": {"trace": "xyz"}}, {"headers": {"trace": "xyz"}}, id="headers"),
        pytest.param({"process_in": 1}, {}, id="process_in"),
        pytest.param({"unique": 3600}, {}, id="unique"),
    ],
)
def test_ferroq_enqueues_go_processes(
    client: Client,
    go_server: StartGo,
    r: redis.Redis,
    opts: dict[str, Any],
    expect: dict[str, Any],
) -> None:
    if "deadline" in opts:
        opts = {
            **opts,
            "deadline": datetime.now(timezone.utc) + timedelta(seconds=opts["deadline"]),
        }
    info = client.enqueue(Task("ok:fq", b"\x01\x02", headers={"base": "1"}), **opts)
    q = info.queue
    (seen,) = handled(go_server(f"{q}=1"))
    assert seen["id"] == expect.get("id", info.id)
    assert (seen["type"], seen["payload_hex"], seen["queue"]) == ("ok:fq", "0102", q)
    assert seen["headers"] == {"base": "1", **expect.get("headers", {})}
    assert seen["max_retry"] == expect.get("max_retry", 25)
    assert seen["retry_count"] == 0
    assert seen["deadline"] == pytest.approx(time.time() + expect.get("deadline_in", 1800), abs=5)
    wait_until(lambda: r.get(f"asynq:{{{q}}}:processed") == b"1")
    assert not r.exists(f"asynq:{{{q}}}:t:{seen['id']}")
    if "unique" in opts:
        assert r.keys(f"asynq:{{{q}}}:unique:*") == [], "Go's success released ferroq's lock"


def test_go_keeps_ferroqs_task_and_result_for_its_retention(
    client: Client, go: GoAsynq, go_server: StartGo
) -> None:
    info = client.enqueue(Task("result:fq", b"42"), retention=3600)
    handled(go_server())
    ti = wait_until(lambda: _state(go, info.id, "completed"))
    assert ti["result_hex"] == b"42".hex()
    assert ti["retention"] == 3600


def _state(go: GoAsynq, task_id: str, state: str, q: str = "default") -> dict[str, Any] | None:
    ti: dict[str, Any] = go.inspect("task", q, task_id)
    return ti if ti["state"] == state else None


@pytest.mark.parametrize(
    ("payload", "go_payload"),
    [
        pytest.param(None, None, id="nil"),
        pytest.param(b"", b"", id="empty"),
        pytest.param(b"same", b"same", id="bytes"),
    ],
)
def test_unique_locks_are_shared_with_go(
    client: Client, go: GoAsynq, payload: bytes | None, go_payload: bytes | None
) -> None:
    client.enqueue(Task("report", payload), unique=3600)
    with pytest.raises(GoError, match="task already exists"):
        go.enqueue("report", go_payload, unique="1h")
    go.enqueue("report", go_payload, unique="1h", queue="other")
    with pytest.raises(DuplicateTaskError):
        client.enqueue(Task("report", payload), unique=60, queue="other")


def test_nil_and_empty_payloads_are_different_tasks_on_both_sides(
    client: Client, go: GoAsynq
) -> None:
    go.enqueue("report", None, unique="1h")
    client.enqueue(Task("report", b""), unique=3600)  # not a duplicate: md5("") vs no checksum
    with pytest.raises(DuplicateTaskError):
        client.enqueue(Task("report"), unique=3600)
    with pytest.raises(GoError, match="task already exists"):
        go.enqueue("report", b"", unique="1h")


def test_task_id_conflicts_are_shared_with_go(client: Client, go: GoAsynq) -> None:
    client.enqueue(Task("t"), task_id="shared-id")
    with pytest.raises(GoError, match="task ID conflicts"):
        go.enqueue("t", None, task_id="shared-id")


def test_ferroq_group_and_schedule_are_read_by_go(client: Client, go: GoAsynq) -> None:
    at = datetime.now(timezone.utc) + timedelta(hours=1)
    scheduled = client.enqueue(Task("t", b"s"), process_at=at)
    (ti,) = go.inspect("list", "default", "scheduled")
    assert ti["id"] == scheduled.id
    # ferroq rounds its scores up (a task never runs early); Go reads the second written.
    assert ti["next_process_at"] == math.ceil(at.timestamp())
    assert scheduled.next_process_at == datetime.fromtimestamp(ti["next_process_at"], timezone.utc)
    grouped = client.enqueue(Task("t", b"g"), group="g1")
    (gi,) = go.inspect("list", "default", "aggregating", "g1")
    assert (gi["id"], gi["group"]) == (grouped.id, "g1")
