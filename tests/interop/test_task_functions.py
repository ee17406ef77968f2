"""Task functions across languages: Go asynq calls a Python task, serves one, reads its result."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from asynqgo import GoAsynq, GoServer
from ferroq import App, Server
from util import wait_until


def test_a_go_client_calls_a_python_task_and_go_reads_its_result(
    go: GoAsynq, app: App, serve: Callable[..., Server]
) -> None:
    @app.task(name="math:add")
    def add(x: int, y: int = 10) -> dict[str, int]:
        return {"sum": x + y}

    serve()
    payload = json.dumps({"args": [2], "kwargs": {"y": 5}}).encode()
    info = go.enqueue("math:add", payload, retention="1h")
    # ferroq's handle reads what Go enqueued...
    assert add.handle(info["id"]).get(timeout=30) == {"sum": 7}

    # ...and Go's Inspector reads the result ferroq wrote, in asynq's result field.
    def completed() -> dict[str, Any] | None:
        ti: dict[str, Any] = go.inspect("task", "default", info["id"])
        return ti if ti["state"] == "completed" else None

    ti = wait_until(completed)
    assert json.loads(bytes.fromhex(ti["result_hex"])) == {"sum": 7}
    assert ti["retention"] == 3600


def test_a_go_handler_serves_a_python_call_and_python_reads_its_result(
    app: App, go_server: Callable[..., GoServer]
) -> None:
    """The asynqctl handler of ``result:*`` writes the payload back as the result."""

    @app.task(name="result:echo")
    def echo(word: str, *, times: int = 1) -> dict[str, Any]:
        raise AssertionError("served by Go, never here")

    go_server("default=1")
    h = echo.delay("hi", times=2)
    # The Go handler saw the documented wire format, and its result reads back as JSON.
    assert h.get(timeout=30) == {"args": ["hi"], "kwargs": {"times": 2}}
