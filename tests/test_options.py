"""TaskOptions: one options type, every rule checked once by the core, at the call."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any, cast

import pytest
import redis

from ferroq import (
    Client,
    InvalidArgumentError,
    Scheduler,
    Task,
    TaskOptions,
    TaskState,
)

AT = datetime(2100, 1, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("make", "error"),
    [
        pytest.param(lambda: TaskOptions(queue=" "), InvalidArgumentError, id="queue-blank"),
        pytest.param(lambda: TaskOptions(task_id=""), InvalidArgumentError, id="id-empty"),
        pytest.param(lambda: TaskOptions(group="\t"), InvalidArgumentError, id="group-blank"),
        pytest.param(lambda: TaskOptions(unique=0.5), InvalidArgumentError, id="unique-short"),
        pytest.param(lambda: TaskOptions(timeout=-1), InvalidArgumentError, id="timeout-neg"),
        pytest.param(
            lambda: TaskOptions(retention=timedelta(seconds=-1)),
            InvalidArgumentError,
            id="retention-neg-timedelta",
        ),
        pytest.param(lambda: TaskOptions(unique=float("nan")), InvalidArgumentError, id="nan"),
        pytest.param(
            lambda: TaskOptions(process_at=AT, process_in=5), InvalidArgumentError, id="both-when"
        ),
        pytest.param(
            lambda: TaskOptions(deadline=datetime(2100, 1, 1)), InvalidArgumentError, id="naive"
        ),
        pytest.param(lambda: TaskOptions(max_retry=cast(Any, True)), TypeError, id="retry-bool"),
        pytest.param(lambda: TaskOptions(max_retry=cast(Any, "3")), TypeError, id="retry-str"),
        pytest.param(lambda: TaskOptions(timeout=cast(Any, "5")), TypeError, id="timeout-str"),
        pytest.param(lambda: TaskOptions(timeout=cast(Any, True)), TypeError, id="timeout-bool"),
        pytest.param(lambda: TaskOptions(deadline=cast(Any, 1e9)), TypeError, id="deadline-num"),
        pytest.param(lambda: TaskOptions(queue=cast(Any, 5)), TypeError, id="queue-int"),
        pytest.param(lambda: TaskOptions(headers=cast(Any, {"a": 1})), TypeError, id="header-int"),
        pytest.param(lambda: cast(Any, TaskOptions)("q"), TypeError, id="positional"),
        pytest.param(lambda: TaskOptions(max_retry=2**40), InvalidArgumentError, id="retry-huge"),
    ],
)
def test_bad_options_are_refused_when_built(
    make: Callable[[], TaskOptions], error: type[Exception]
) -> None:
    with pytest.raises(error):
        make()


def test_a_type_error_names_the_option() -> None:
    with pytest.raises(TypeError, match="timeout"):
        TaskOptions(timeout=cast(Any, "5"))


def test_options_read_back_as_python_values() -> None:
    o = TaskOptions(
        queue="q", max_retry=3, timeout=1.5, deadline=AT, unique=timedelta(minutes=1),
        process_in=90, task_id="id-1", retention=60, group="g", headers={"k": "v"},
    )  # fmt: skip
    assert (o.queue, o.max_retry, o.task_id, o.group) == ("q", 3, "id-1", "g")
    assert o.timeout == timedelta(seconds=1.5)
    assert o.deadline == AT
    assert o.unique == timedelta(minutes=1)
    assert o.process_in == timedelta(seconds=90)
    assert o.process_at is None
    assert o.retention == timedelta(seconds=60)
    assert o.headers == {"k": "v"}
    assert TaskOptions().queue is None
    assert o == TaskOptions(
        queue="q", max_retry=3, timeout=1.5, deadline=AT, unique=60, process_in=90,
        task_id="id-1", retention=60, group="g", headers={"k": "v"},
    )  # fmt: skip


def test_merge_lays_the_override_over_and_checks_the_result() -> None:
    base = TaskOptions(queue="a", max_retry=2, process_in=5, headers={"k": "1", "j": "x"})
    merged = base.merge(TaskOptions(queue="b", process_at=AT, headers={"k": "2"}))
    assert (merged.queue, merged.max_retry) == ("b", 2)
    assert (merged.process_at, merged.process_in) == (AT, None)
    assert merged.headers == {"k": "2", "j": "x"}
    assert base.queue == "a", "options are immutable"
    with pytest.raises(AttributeError):
        cast(Any, base).queue = "c"


def test_go_option_strings_come_from_the_core() -> None:
    o = TaskOptions(max_retry=3, queue="q", timeout=90, unique=3600, deadline=AT, group="g")
    assert o.asynq_strings() == [
        "MaxRetry(3)",
        'Queue("q")',
        "Timeout(1m30s)",
        "Unique(1h0m0s)",
        "Deadline(Fri Jan  1 00:00:00 UTC 2100)",
        'Group("g")',
    ]


def test_enqueue_takes_an_options_object_and_keywords_over_it(
    client: Client, r: redis.Redis
) -> None:
    opts = TaskOptions(queue="critical", max_retry=7, process_in=3600)
    info = client.enqueue(Task("t"), options=opts, max_retry=2)
    assert (info.queue, info.max_retry, info.state) == ("critical", 2, TaskState.SCHEDULED)
    assert r.zscore("asynq:{critical}:scheduled", info.id) is not None
    many = client.enqueue_many([Task("a"), Task("b")], options=opts, queue="low")
    assert {i.queue for i in many} == {"low"}


def test_enqueue_info_describes_the_written_message(client: Client) -> None:
    info = client.enqueue(Task("t", b"p", headers={"h": "1"}), retention=60, timeout=5)
    assert (info.retried, info.last_error, info.last_failed_at) == (0, None, None)
    assert (info.completed_at, info.result, info.is_orphaned) == (None, None, False)
    assert info.retention == timedelta(seconds=60)
    assert info.timeout == timedelta(seconds=5)
    assert info.headers == {"h": "1"}
    assert info == info and hash(info) == hash(info)
    with pytest.raises(AttributeError):
        cast(Any, info).queue = "other"


def test_scheduler_register_refuses_bad_options_at_registration(redis_url: str) -> None:
    scheduler = Scheduler(redis_url)
    with pytest.raises(InvalidArgumentError, match="unique"):
        scheduler.register("@every 1s", Task("t"), unique=0.5)
    with pytest.raises(InvalidArgumentError):
        scheduler.register("@every 1s", Task("t"), queue=" ")
    with pytest.raises(TypeError):
        scheduler.register("@every 1s", Task("t"), timeout=cast(Any, "5"))
    assert scheduler.entry_ids == [], "nothing was registered"


def test_task_state_behaves_as_its_name() -> None:
    assert TaskState("pending") is TaskState.PENDING
    assert TaskState.PENDING == "pending" and TaskState.PENDING != "active"
    assert TaskState.PENDING != TaskState.ACTIVE
    by_state: dict[object, int] = {TaskState.RETRY: 1}
    assert by_state["retry"] == 1, "the same dict key as its name"
    assert (TaskState.ARCHIVED.value, str(TaskState.ARCHIVED)) == ("archived", "archived")
    assert repr(TaskState.COMPLETED) == "TaskState.COMPLETED"
    with pytest.raises(ValueError):
        TaskState("gone")
