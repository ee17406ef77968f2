"""``ferroq worker --reload``: the worker restarts when its code changes, and stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import ferroq
from ferroq import Client, Task
from util import wait_until

APP = """
import os
from ferroq import App

app = App(os.environ["REDIS_URL"])


@app.task(name="version")
def version() -> int:
    return {version}
"""


def test_the_worker_restarts_on_a_code_change_and_stops_on_sigterm(
    tmp_path: Path, redis_url: str
) -> None:
    module = tmp_path / "reloadme.py"
    module.write_text(APP.format(version=1))
    ferroq_cli = Path(sys.executable).with_name("ferroq")
    proc = subprocess.Popen(
        [str(ferroq_cli), "worker", "reloadme:app", "--reload", "--reload-dir", str(tmp_path),
         "--task-check-interval", "0.05", "--shutdown-timeout", "1"],
        cwd=tmp_path, env={**os.environ, "REDIS_URL": redis_url}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        with Client(redis_url) as c:

            def run_version() -> bytes:
                return c.handle(c.enqueue(Task("version", b"{}"), retention=60)).get(timeout=30)

            assert run_version() == b"1"
            time.sleep(0.2)
            module.write_text(APP.format(version=2))
            wait_until(lambda: run_version() == b"2", timeout=60)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, out
    assert "restarting the worker: " in out and "reloadme.py changed" in out
    with ferroq.Inspector(redis_url) as insp:
        wait_until(lambda: not insp.servers(), timeout=30)  # no worker left behind
