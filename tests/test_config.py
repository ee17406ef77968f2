"""ServerConfig: the server's settings, their defaults written and checked once, in the core."""

from __future__ import annotations

import sys
from typing import Any, cast

import pytest

from ferroq import InvalidArgumentError, Server, ServerConfig
from ferroq.cli import _parser


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        pytest.param({"queues": {"a": 0}}, InvalidArgumentError, id="priority-zero"),
        pytest.param({"queues": {"a": 3, "b": -1}}, InvalidArgumentError, id="priority-negative"),
        pytest.param({"queues": {}}, InvalidArgumentError, id="no-queue"),
        pytest.param({"queues": {" ": 1}}, InvalidArgumentError, id="blank-queue"),
        pytest.param({"queues": {"a": cast(Any, "1")}}, TypeError, id="priority-str"),
        pytest.param({"concurrency": cast(Any, "4")}, TypeError, id="concurrency-str"),
        pytest.param({"concurrency": cast(Any, 4.0)}, TypeError, id="concurrency-float"),
        pytest.param({"concurrency": cast(Any, True)}, TypeError, id="concurrency-bool"),
        pytest.param({"concurrency": 10**9}, InvalidArgumentError, id="concurrency-huge"),
        pytest.param({"queues": {"a": 2**31 - 1, "b": 1}}, InvalidArgumentError, id="weights-huge"),
        pytest.param({"queues": cast(Any, ["a"])}, TypeError, id="queues-list"),
        pytest.param({"queues": cast(Any, {1: 1})}, TypeError, id="queue-name-int"),
        pytest.param({"queues": {"a": 2**40}}, InvalidArgumentError, id="priority-overflow"),
        pytest.param({"cancel_grace": sys.maxsize}, InvalidArgumentError, id="grace-overflow"),
        pytest.param({"shutdown_timeout": 1e12}, InvalidArgumentError, id="timeout-overflow"),
        pytest.param({"janitor_batch_size": 0}, InvalidArgumentError, id="batch-zero"),
        pytest.param({"heartbeat_interval": 11}, InvalidArgumentError, id="heartbeat-over-lease"),
        pytest.param({"task_check_interval": 0}, InvalidArgumentError, id="interval-zero"),
        pytest.param({"syncer_interval": -1}, InvalidArgumentError, id="interval-negative"),
        pytest.param({"shutdown_timeout": cast(Any, "8")}, TypeError, id="timeout-str"),
    ],
)
def test_bad_settings_are_refused_by_config_and_server(
    kwargs: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        ServerConfig(**kwargs)
    with pytest.raises(error):
        Server("redis://127.0.0.1:1", **kwargs)


def test_a_type_error_names_the_setting() -> None:
    with pytest.raises(TypeError, match="concurrency"):
        ServerConfig(concurrency=cast(Any, "4"))
    with pytest.raises(TypeError, match="queues"):
        ServerConfig(queues=cast(Any, {1: 1}))


@pytest.mark.parametrize("given", [0, -2])
def test_a_concurrency_under_one_is_asynqs_number_of_cpus(given: int) -> None:
    assert ServerConfig(concurrency=given).concurrency == ServerConfig().concurrency


def test_defaults_are_asynqs() -> None:
    d = ServerConfig()
    assert d.queues == {"default": 1}
    assert d.concurrency >= 1
    assert (d.task_check_interval, d.delayed_task_check_interval) == (1.0, 5.0)
    assert (d.heartbeat_interval, d.recoverer_interval, d.syncer_interval) == (5.0, 60.0, 5.0)
    assert (d.janitor_interval, d.janitor_batch_size) == (8.0, 100)
    assert (d.shutdown_timeout, d.cancel_grace) == (8.0, 1.0)
    assert d.strict_priority is False


def test_the_server_runs_with_the_config_it_was_given() -> None:
    s = Server("redis://127.0.0.1:1", concurrency=3, queues={"b": 1, "a": 2}, cancel_grace=0.5)
    assert s.concurrency == 3
    assert s.config.queues == {"b": 1, "a": 2}, "the mapping's order is kept"
    assert s.config.cancel_grace == 0.5
    assert s.config.shutdown_timeout == ServerConfig().shutdown_timeout
    cfg = ServerConfig(concurrency=5)
    assert Server("redis://127.0.0.1:1", config=cfg).concurrency == 5


def test_docstring_and_cli_state_the_cores_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    d = ServerConfig()
    doc = Server.__doc__ or ""
    assert f"default {d.shutdown_timeout:g} s" in doc
    assert f"default: {d.concurrency}, the number of CPUs" in doc
    assert "{" not in doc.replace("{'default': 1}", ""), "every placeholder is filled"
    with pytest.raises(SystemExit):
        _parser().parse_args(["worker", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert f"(default {d.shutdown_timeout:g})" in help_text
    assert f"(default {d.task_check_interval:g})" in help_text
    worker = _parser().parse_args(["worker", "app:mux"])
    assert worker.shutdown_timeout is None, "the CLI leaves the default to the core"
