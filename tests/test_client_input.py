"""Bad input to the client: a typed error at the call, and nothing written."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import pytest
import redis

from client_helpers import (
    CLOSED_PORT_URL,
    NAIVE,
    keys,
    lrange,
    qkey,
    snapshot,
    stored,
)
from ferroq import (
    BrokerConnectionError,
    Client,
    InvalidArgumentError,
    Task,
    TaskOptions,
)


@pytest.mark.parametrize(
    ("make", "error"),
    [
        pytest.param(lambda: Task(""), InvalidArgumentError, id="empty-type"),
        pytest.param(lambda: Task("  "), InvalidArgumentError, id="blank-type"),
        pytest.param(lambda: Task("t", cast(Any, "str payload")), TypeError, id="str-payload"),
        pytest.param(lambda: Task("t", cast(Any, 123)), TypeError, id="int-payload"),
        pytest.param(lambda: Task(cast(Any, 5)), TypeError, id="int-type"),
        pytest.param(lambda: Task("t", headers=cast(Any, {"a": 1})), TypeError, id="int-header"),
        pytest.param(lambda: Task("t", headers={"a": "\ud800"}), TypeError, id="surrogate-header"),
    ],
)
def test_bad_task_is_refused(
    r: redis.Redis, make: Callable[[], Task], error: type[Exception]
) -> None:
    with pytest.raises(error):
        make()
    assert keys(r) == set()


@pytest.mark.parametrize("payload", [bytearray(b"\x00ab\xff"), memoryview(b"\x00ab\xff")])
def test_bytes_like_payload_is_accepted(client: Client, r: redis.Redis, payload: object) -> None:
    task = Task("t", cast(Any, payload))
    assert type(task.payload) is bytes
    info = client.enqueue(task)
    assert stored(r, info.id)["payload"] == b"\x00ab\xff"
    assert info.payload == b"\x00ab\xff"


@pytest.mark.parametrize(
    ("call", "error"),
    [
        pytest.param(
            lambda c: c.enqueue(Task("t"), queue=""), InvalidArgumentError, id="queue-empty"
        ),
        pytest.param(
            lambda c: c.enqueue(Task("t"), queue=" \t"), InvalidArgumentError, id="queue-blank"
        ),
        pytest.param(
            lambda c: c.enqueue(Task("t"), deadline=NAIVE),
            InvalidArgumentError,
            id="deadline-naive",
        ),
        pytest.param(
            lambda c: c.enqueue(Task("t"), process_at=NAIVE), InvalidArgumentError, id="at-naive"
        ),
        pytest.param(
            lambda c: c.enqueue(Task("t"), timeout=-1), InvalidArgumentError, id="timeout-neg"
        ),
        pytest.param(
            lambda c: c.enqueue(Task("t"), retention=-1.0), InvalidArgumentError, id="retention-neg"
        ),
        pytest.param(
            lambda c: c.enqueue(Task("t"), process_in=-5), InvalidArgumentError, id="in-neg"
        ),
        pytest.param(
            lambda c: c.enqueue(Task("t"), unique=float("inf")),
            InvalidArgumentError,
            id="unique-inf",
        ),
        # Found by fault injection: each was accepted, or answered with OverflowError.
        pytest.param(
            lambda c: c.enqueue(Task("t"), max_retry=-1), InvalidArgumentError, id="retry-neg"
        ),
        pytest.param(
            lambda c: c.enqueue(Task("t"), max_retry=2**40), InvalidArgumentError, id="retry-huge"
        ),
        pytest.param(
            lambda c: c.enqueue(Task("t"), timeout=1e18), InvalidArgumentError, id="timeout-huge"
        ),
        pytest.param(
            lambda c: c.enqueue(Task("t"), retention=1e12), InvalidArgumentError, id="keep-huge"
        ),
        pytest.param(
            lambda c: c.enqueue(Task("t"), queue="a\x00b"), InvalidArgumentError, id="queue-nul"
        ),
        pytest.param(
            lambda c: c.enqueue(Task("t"), queue="a\tb"), InvalidArgumentError, id="queue-tab"
        ),
        pytest.param(
            lambda c: c.enqueue(Task("t"), group="g\x1b"), InvalidArgumentError, id="group-esc"
        ),
        pytest.param(lambda c: c.enqueue(cast(Any, "t")), TypeError, id="str-task"),
        pytest.param(lambda c: c.enqueue(cast(Any, None)), TypeError, id="none-task"),
        pytest.param(
            lambda c: c.enqueue(Task("t"), max_retry=cast(Any, True)), TypeError, id="retry-bool"
        ),
        pytest.param(
            lambda c: c.enqueue(Task("t"), max_retry=cast(Any, 1.5)), TypeError, id="retry-float"
        ),
        pytest.param(
            lambda c: c.enqueue(Task("t"), timeout=cast(Any, "5")), TypeError, id="timeout-str"
        ),
        pytest.param(
            lambda c: c.enqueue(Task("t"), deadline=cast(Any, 1e9)), TypeError, id="deadline-float"
        ),
        pytest.param(
            lambda c: c.enqueue(Task("t"), headers=cast(Any, {"a": 1})), TypeError, id="headers-int"
        ),
        pytest.param(
            lambda c: c.enqueue_many([Task("t"), cast(Any, b"x")]), TypeError, id="many-not-task"
        ),
    ],
)
def test_bad_enqueue_is_refused_and_writes_nothing(
    client: Client, r: redis.Redis, call: Callable[[Client], object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        call(client)
    assert keys(r) == set()
    # the client still works afterwards
    info = client.enqueue(Task("t"))
    assert lrange(r, qkey("default", "pending")) == [info.id]


def test_enqueue_many_with_invalid_options_writes_nothing(client: Client, r: redis.Redis) -> None:
    # options are shared and checked before anything is sent: one plain InvalidArgumentError
    with pytest.raises(InvalidArgumentError, match="queue"):
        client.enqueue_many([Task("a"), Task("b")], queue=" ")
    assert keys(r) == set()


def test_bad_enqueue_leaves_existing_data_unchanged(client: Client, r: redis.Redis) -> None:
    client.enqueue(Task("t", b"p"), unique=60, queue="q")
    before = snapshot(r)
    calls: list[Callable[[], object]] = [
        lambda: client.enqueue(Task("t"), queue=""),
        lambda: client.enqueue(Task("t"), queue="q", unique=0.5),
        lambda: client.enqueue(Task("t"), queue="q", task_id=" "),
        lambda: client.enqueue(Task("t"), queue="q", deadline=NAIVE),
    ]
    for call in calls:
        with pytest.raises(InvalidArgumentError):
            call()
    assert snapshot(r) == before


def test_unreachable_redis_raises_connection_error_on_enqueue() -> None:
    with Client(CLOSED_PORT_URL) as c, pytest.raises(BrokerConnectionError):
        c.enqueue(Task("t"))


def test_unreachable_redis_raises_connection_error_on_ping() -> None:
    c = Client(CLOSED_PORT_URL)
    with pytest.raises(BrokerConnectionError):
        c.ping()
    c.close()


@pytest.mark.parametrize(
    "url",
    [
        "not a url",
        "http://127.0.0.1:6379",
        "redis://",
        "redis://127.0.0.1:notaport",
        "redis://127.0.0.1:99999999",
        "redis://127.0.0.1:6379/abc",
        "unix://",
    ],
)
def test_malformed_url_is_refused_at_construction(url: str) -> None:
    with pytest.raises(InvalidArgumentError):
        Client(url)


def test_context_manager_and_ping(redis_url: str, r: redis.Redis) -> None:
    with Client(redis_url) as c:
        assert isinstance(c, Client)
        c.ping()
        first = c.enqueue(Task("t", b"1"))
    # closed clients reconnect when used again
    c.ping()
    second = c.enqueue(Task("t", b"2"))
    c.close()
    assert lrange(r, qkey("default", "pending")) == [second.id, first.id]


def test_client_can_be_reused_after_close(client: Client, r: redis.Redis) -> None:
    client.enqueue(Task("t"))
    client.close()
    client.close()
    client.enqueue(Task("t"))
    assert r.llen(qkey("default", "pending")) == 2


def test_redis_url_from_environment(
    redis_url: str, r: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    with Client() as c:
        c.ping()
        info = c.enqueue(Task("t"))
    assert lrange(r, qkey("default", "pending")) == [info.id]


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"max_retry": -1}, "max_retry must be between 0"),
        ({"max_retry": 2**40}, "max_retry must be between 0"),
        ({"timeout": 1e18}, "timeout must be at most 100 years"),
        ({"queue": "a\x00b"}, "control character"),
    ],
)
def test_bad_options_name_their_reason(kw: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidArgumentError, match=reason):
        TaskOptions(**kw)
