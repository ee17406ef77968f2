"""Helpers of the server tests: what landed in Redis, read with redis-py and ``wire.py``."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import redis

import wire
from ferroq import ServeMux, Server, Task

ROOT = Path(__file__).resolve().parent.parent


MakeServer = Callable[..., Server]


def today() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())


def msg(r: redis.Redis, task_id: str, q: str = "default") -> dict[str, Any]:
    raw = r.hget(f"asynq:{{{q}}}:t:{task_id}", "msg")
    assert isinstance(raw, bytes), f"no msg for {task_id}"
    return wire.task(raw)


def state(r: redis.Redis, task_id: str, q: str = "default") -> str | None:
    v = r.hget(f"asynq:{{{q}}}:t:{task_id}", "state")
    return v.decode() if isinstance(v, bytes) else None


def counter(r: redis.Redis, key: str) -> int:
    v = r.get(key)
    return int(v) if v is not None else 0


def mux_of(handlers: dict[str, Any]) -> ServeMux:
    m = ServeMux()
    for pattern, h in handlers.items():
        m.handle(pattern, h)
    return m


def empty_active(r: redis.Redis, q: str = "default") -> bool:
    return r.llen(f"asynq:{{{q}}}:active") == 0 and r.zcard(f"asynq:{{{q}}}:lease") == 0


def _listening(r: redis.Redis, queue: str = "default") -> bool:
    channel = f"asynq:{{{queue}}}:wake"
    return bool(cast(list[tuple[bytes, int]], r.pubsub_numsub(channel))[0][1])


def started(r: redis.Redis, task_id: str) -> bool:
    """Whether the task's handler (tests/apps.py "nap" or "block") reported its start."""
    return r.hget(f"asynq:{{default}}:t:{task_id}", "progress") == b'"started"'


def worker(redis_url: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "ferroq", "worker", "tests.apps:mux", "--redis", redis_url,
         "--task-check-interval", "0.05", *args],
        cwd=ROOT,
    )  # fmt: skip


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


class Holder:
    """A sync handler that says when it started and holds its task until released."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, task: Task) -> None:
        self.started.set()
        self.release.wait(10)
