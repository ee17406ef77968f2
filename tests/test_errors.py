"""One error tree in ``ferroq.errors``: names, kinds kept through pipelines, connection errors
that name the server, and the package's dependencies matching what it imports."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
import redis
import tomllib

import ferroq
import ferroq.errors as errors
from ferroq import (
    BatchEnqueueError,
    BrokerConnectionError,
    BrokerError,
    Client,
    DeadlineExceeded,
    FerroqError,
    Task,
    TaskCancelled,
)
from ferroq._embedded import EmbeddedRedis

ROOT = Path(__file__).resolve().parent.parent


def test_every_exception_lives_in_ferroq_errors() -> None:
    classes = [getattr(errors, name) for name in errors.__all__]
    assert classes, "the tree is not empty"
    for cls in classes:
        assert issubclass(cls, FerroqError), cls
        assert cls.__module__ == "ferroq.errors", cls
        assert getattr(ferroq, cls.__name__) is cls, "re-exported from the package"


def test_deadline_and_cancel_errors_are_in_the_tree() -> None:
    assert str(DeadlineExceeded()) == "context deadline exceeded"
    assert isinstance(DeadlineExceeded(), TimeoutError), "still a TimeoutError for callers"
    assert str(TaskCancelled()) == "context canceled"


def test_errors_and_task_do_not_import_each_other() -> None:
    def imports(module: str) -> set[str]:
        tree = ast.parse((ROOT / "python" / "ferroq" / f"{module}.py").read_text())
        return {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}

    assert "ferroq.task" not in imports("errors")


def test_a_dropped_connection_is_a_connection_error_naming_the_server() -> None:
    server = EmbeddedRedis().start()
    port = server.port
    with Client(server.url) as c:
        c.enqueue(Task("warm"))  # a pooled connection now exists
        server.stop()
        for call in (
            lambda: c.enqueue(Task("t")),
            lambda: c.enqueue_many([Task("a"), Task("b")]),
        ):
            with pytest.raises(BrokerConnectionError, match=f"127.0.0.1:{port}"):
                call()


def test_a_script_error_reaches_each_task_of_a_batch_as_a_broker_error(
    client: Client, r: redis.Redis
) -> None:
    r.set("asynq:{broken}:pending", "not a list")
    with pytest.raises(BatchEnqueueError) as caught:
        client.enqueue_many([Task("a"), Task("b")], queue="broken")
    assert len(caught.value.errors) == 2
    for e in caught.value.errors:
        assert type(e) is BrokerError, e
        assert "WRONGTYPE" in str(e)


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node but those under ``if TYPE_CHECKING:`` (never imported at run time)."""
    out: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            todo.extend(node.orelse)
            continue
        out.append(node)
        todo.extend(ast.iter_child_nodes(node))
    return out


def _third_party_imports() -> set[str]:
    stdlib = set(sys.stdlib_module_names)
    found: set[str] = set()
    for path in (ROOT / "python" / "ferroq").rglob("*.py"):
        for node in _runtime_nodes(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            found |= {n.split(".")[0] for n in names}
    # As distributions are named: `import prometheus_client` is `prometheus-client`.
    return {n.replace("_", "-").lower() for n in found - stdlib - {"ferroq", "__future__"}}


def _names(requirements: list[str]) -> set[str]:
    return {d.split("[")[0].split(">")[0].split("=")[0].strip().lower() for d in requirements}


def test_runtime_dependencies_are_exactly_what_runtime_code_imports() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    # The embedded server of the demo is optional: `ferroq[embedded]`, imported only when used;
    # so is `ferroq[reload]` (watchfiles, for `ferroq worker --reload`).
    optional = _names(extras["embedded"]) | _names(extras["reload"])
    # The pytest plugin (ferroq.testing) imports pytest only when pytest is there to load it.
    optional |= {"pytest"}
    assert _third_party_imports() - optional == _names(project["dependencies"])
    assert {"croniter", "redis"} <= _names(extras["test"]), "the tests' own tools"
