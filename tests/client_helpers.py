"""Helpers of the client tests: what landed in Redis, read with redis-py and ``wire.py``."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any, cast

import redis

import wire

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


CLOSED_PORT_URL = "redis://127.0.0.1:1"


def qkey(q: str, suffix: str) -> str:
    """A per-queue key: ``asynq:{<q>}:<suffix>``."""
    return f"asynq:{{{q}}}:{suffix}"


def unique_key(q: str, task_type: str, payload: bytes | None) -> str:
    """asynq's lock key: md5 of the payload, or a trailing colon for a nil (absent) payload."""
    digest = "" if payload is None else hashlib.md5(payload).hexdigest()
    return qkey(q, f"unique:{task_type}:{digest}")


def task_key(task_id: str, q: str = "default") -> str:
    return qkey(q, f"t:{task_id}")


def task_hash(r: redis.Redis, task_id: str, q: str = "default") -> dict[str, bytes]:
    raw = cast(dict[bytes, bytes], r.hgetall(task_key(task_id, q)))
    return {k.decode(): v for k, v in raw.items()}


def raw_msg(r: redis.Redis, task_id: str, q: str = "default") -> bytes:
    raw = r.hget(task_key(task_id, q), "msg")
    assert isinstance(raw, bytes), f"no msg for {task_id} in {q}"
    return raw


def stored(r: redis.Redis, task_id: str, q: str = "default") -> dict[str, Any]:
    """The task's ``msg`` field, decoded by ``wire``."""
    return wire.task(raw_msg(r, task_id, q))


def keys(r: redis.Redis) -> set[str]:
    return {k.decode() for k in cast(list[bytes], r.keys("*"))}


def lrange(r: redis.Redis, key: str) -> list[str]:
    return [v.decode() for v in cast(list[bytes], r.lrange(key, 0, -1))]


def smembers(r: redis.Redis, key: str) -> set[str]:
    return {v.decode() for v in cast(set[bytes], r.smembers(key))}


def zrange(r: redis.Redis, key: str) -> list[tuple[str, float]]:
    rows = cast(list[tuple[bytes, float]], r.zrange(key, 0, -1, withscores=True))
    return [(m.decode(), s) for m, s in rows]


def snapshot(r: redis.Redis) -> dict[str, Any]:
    """Every key with its type and content, to prove that a refused call wrote nothing."""
    out: dict[str, Any] = {}
    for k in sorted(keys(r)):
        kind = cast(bytes, r.type(k)).decode()
        value: Any
        if kind == "string":
            value = r.get(k)
        elif kind == "list":
            value = r.lrange(k, 0, -1)
        elif kind == "set":
            value = sorted(cast(set[bytes], r.smembers(k)))
        elif kind == "zset":
            value = r.zrange(k, 0, -1, withscores=True)
        elif kind == "hash":
            value = r.hgetall(k)
        else:
            raise AssertionError(f"unexpected key type {kind} for {k}")
        out[k] = (kind, value)
    return out


def ttl(r: redis.Redis, key: str) -> int:
    return r.ttl(key)


NAIVE = datetime(2100, 1, 1)
