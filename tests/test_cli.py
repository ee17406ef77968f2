"""The ``ferroq`` command: the demo end to end, and worker start-up errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ferroq.cli import load_object

ROOT = Path(__file__).resolve().parent.parent


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ferroq", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_demo_runs_on_an_embedded_redis() -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    p = run("demo", "--tasks", "300", env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "embedded" in p.stdout
    assert "done: 300 tasks" in p.stdout


def test_demo_uses_redis_url(redis_url: str) -> None:
    p = run("demo", "--tasks", "100", env={**os.environ, "REDIS_URL": redis_url})
    assert p.returncode == 0, p.stdout + p.stderr
    assert "embedded" not in p.stdout


@pytest.mark.parametrize(
    ("app", "message"),
    [
        ("no_such_module:mux", "cannot import 'no_such_module'"),
        ("tests.apps:missing", "has no attribute 'missing'"),
        ("tests.apps:ROOT_NOT_CALLABLE", "has no attribute"),
        ("nocolon", "expected module:attribute"),
    ],
)
def test_worker_reports_bad_import_paths(app: str, message: str) -> None:
    p = run("worker", app, "--redis", "redis://127.0.0.1:1", timeout=30)
    assert p.returncode == 2
    assert message in p.stderr


def test_worker_rejects_a_bad_queue_spec() -> None:
    p = run("worker", "tests.apps:mux", "--queue", "critical=high", timeout=30)
    assert p.returncode == 2
    assert "bad priority" in p.stderr


def test_doctor_reports_an_unreachable_redis_in_one_line() -> None:
    p = run("doctor", "--redis", "redis://127.0.0.1:1", timeout=60)
    assert p.returncode == 1
    assert "127.0.0.1:1" in p.stderr and "Traceback" not in p.stderr


def test_load_object_accepts_dotted_paths() -> None:
    assert callable(load_object("tests.apps.mux"))


@pytest.mark.parametrize("value", ["-1", "soon", "inf"])
def test_worker_refuses_a_bad_retry_delay(value: str) -> None:
    p = run("worker", "tests.apps:mux", "--redis", "redis://127.0.0.1:1", "--retry-delay", value)
    assert p.returncode == 2
    assert "--retry-delay" in p.stderr
