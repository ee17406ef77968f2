"""The same task stories, served once by Go asynq and once by ferroq: Redis must end up the same.

Each story is enqueued by ferroq into queue ``go`` (served by a Go server) and queue ``fq``
(served by ferroq), with the same handler behaviour on both sides. Afterwards every task hash,
counter and lock is compared, with only the queue name, timestamps and error texts normalised.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, cast

import redis

import wire
from asynqgo import GoServer
from ferroq import Client, RevokeTask, ServeMux, Server, SkipRetry, Task
from util import wait_until

STORIES: list[tuple[str, bytes, dict[str, Any]]] = [
    ("ok:plain", b"1", {}),
    ("ok:unique", b"2", {"unique": 3600}),
    ("result:kept", b"3", {"retention": 3600}),
    ("fail:twice", b"4", {"max_retry": 1}),
    ("fail:unique", b"5", {"max_retry": 0, "unique": 3600}),
    ("skip:now", b"6", {"max_retry": 5}),
    ("revoke:unique", b"7", {"max_retry": 5, "unique": 3600}),
]


def ferroq_mux() -> ServeMux:
    """ferroq handlers with the behaviours of asynqctl's Go handler."""
    mux = ServeMux()
    mux.handle("ok:", lambda t: None)

    def result(task: Task) -> None:
        task.write_result(task.payload)

    def fail(task: Task) -> None:
        raise RuntimeError("handler failed")

    def skip(task: Task) -> None:
        raise SkipRetry("gives up")

    def revoke(task: Task) -> None:
        raise RevokeTask("revokes")

    mux.handle("result:", result)
    mux.handle("fail:", fail)
    mux.handle("skip:", skip)
    mux.handle("revoke:", revoke)
    return mux


def settled(r: redis.Redis, q: str) -> bool:
    """Every story has ended: nothing waiting or running, and the last steps were written.

    Read in one MULTI so a task moving between two containers cannot slip between the reads.
    """
    pipe = r.pipeline(transaction=True)
    for name in ("pending", "active"):
        pipe.llen(f"asynq:{{{q}}}:{name}")
    for name in ("retry", "scheduled", "archived", "completed"):
        pipe.zcard(f"asynq:{{{q}}}:{name}")
    pending, active, retry, scheduled, archived, completed = pipe.execute()
    return pending + active + retry + scheduled == 0 and (archived, completed) == (3, 1)


def snapshot(r: redis.Redis, q: str) -> dict[str, Any]:
    """Everything under ``asynq:{q}:``, with the queue name and clocks taken out."""
    out: dict[str, Any] = {}
    for raw in cast(list[bytes], r.keys(f"asynq:{{{q}}}:*")):
        key = raw.decode().replace(f"{{{q}}}", "{Q}")
        kind = cast(bytes, r.type(raw)).decode()
        if kind == "hash":
            hash_ = cast(dict[bytes, bytes], r.hgetall(raw))
            fields: dict[str, Any] = {k.decode(): v for k, v in hash_.items()}
            m = wire.task(fields.pop("msg"))
            m["queue"] = "Q"
            m["unique_key"] = m["unique_key"].replace(f"{{{q}}}", "{Q}")
            m["error_msg"] = bool(m["error_msg"])
            for t in ("last_failed_at", "completed_at"):
                m[t] = m[t] and round((m[t] - time.time()) / 60)
            fields.pop("pending_since", None)
            if "unique_key" in fields:
                fields["unique_key"] = fields["unique_key"].decode().replace(f"{{{q}}}", "{Q}")
            out[key] = {"msg": m, **fields}
        elif kind == "zset":
            out[key] = sorted(m.decode() for m in cast(list[bytes], r.zrange(raw, 0, -1)))
        elif kind == "string":
            value = cast(bytes, r.get(raw) or b"")
            out[key] = "lock" if ":unique:" in key else value.decode()
        else:
            out[key] = kind
    return out


def test_go_and_ferroq_leave_the_same_state(
    client: Client, r: redis.Redis, redis_url: str, go_server: Callable[..., GoServer]
) -> None:
    for q in ("go", "fq"):
        for task_type, payload, opts in STORIES:
            client.enqueue(Task(task_type, payload), queue=q, task_id=task_type, **opts)
    go_server("go=1", retry_delay="0s")
    srv = Server(
        redis_url, queues={"fq": 1}, retry_delay=lambda n, e, t: 0, task_check_interval=0.05,
        delayed_task_check_interval=1.0,
    )  # fmt: skip
    try:
        srv.start(ferroq_mux())
        wait_until(lambda: settled(r, "go") and settled(r, "fq"), timeout=30)
    finally:
        srv.shutdown()
    go_state, fq_state = snapshot(r, "go"), snapshot(r, "fq")
    # The one addition: ferroq keeps an archived task's exception (type, message, traceback)
    # in a field of its own, which asynq's readers ignore.
    for key in ("fail:twice", "fail:unique", "skip:now"):
        detail = json.loads(fq_state[f"asynq:{{Q}}:t:{key}"].pop("exception"))
        assert detail["type"].endswith(("RuntimeError", "SkipRetry")) and detail["traceback"]
    assert fq_state == go_state
    # The stories did what they say (so the comparison above is not vacuous).
    assert go_state["asynq:{Q}:processed"] == "8"  # 1 + 1 + 1 + 2 + 1 + 1 + 1
    assert go_state["asynq:{Q}:failed"] == "4"  # fail:twice 2, fail:unique 1, skip 1
    assert go_state["asynq:{Q}:archived"] == ["fail:twice", "fail:unique", "skip:now"]
    assert go_state["asynq:{Q}:completed"] == ["result:kept"]
    assert go_state["asynq:{Q}:t:result:kept"]["result"] == b"3"
    assert "asynq:{Q}:unique:fail:unique:" + "e4da3b7fbbce2345d7772b0674a318d5" in go_state
