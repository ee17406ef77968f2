"""Fixtures of the chaos suite: a Redis and a fleet of ferroq processes per test, all killed after.

The suite needs ``redis-server`` on PATH (Redis 7); without it the suite skips locally and
fails under CI (``CI`` set), as the main suite does.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from chaos.harness import Fleet, Rig


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    # Keeps each phase's report on the item, so a fixture can tell that its test failed.
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep


@pytest.fixture
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    """A records directory, a fleet and Redis servers; every process is killed at teardown."""
    if shutil.which("redis-server") is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is required in CI for the chaos suite")
        pytest.skip("redis-server is not on PATH")
    records, logs = tmp_path / "records", tmp_path / "logs"
    records.mkdir()
    logs.mkdir()
    r = Rig(tmp_path, records, Fleet(records, logs), [])
    try:
        yield r
    finally:
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            print(r.diagnostics())
        r.fleet.close()
        for s in r.servers:
            s.close()
