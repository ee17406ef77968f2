"""``ferroq worker --processes N``: children as separate asynq servers, signals forwarded, dead
children restarted, a crash loop ended with a non-zero exit; on a real Redis."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from ferroq import Client, Inspector, Task
from server_helpers import started
from util import wait_until

ROOT = Path(__file__).resolve().parent.parent


class Supervised(subprocess.Popen[bytes]):
    """A ``ferroq worker --processes`` process whose log goes to a file (a pipe nobody reads
    would fill and block it)."""

    log_file: Path

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")


def supervisor(redis_url: str, app: str, *args: str, session: bool = False) -> Supervised:
    """``session``: in a process group of its own, as a terminal's foreground job is."""
    log = Path(tempfile.mkdtemp(prefix="ferroq-sup-")) / "supervisor.log"
    with log.open("wb") as out:
        p = Supervised(
            [sys.executable, "-m", "ferroq", "worker", app, "--redis", redis_url,
             "--task-check-interval", "0.05", "--heartbeat-interval", "0.5", "--shutdown-timeout",
             "2", *args],
            cwd=ROOT, stderr=out, start_new_session=session,
        )  # fmt: skip
    p.log_file = log
    return p


@pytest.fixture(autouse=True)
def no_orphans(redis_url: str) -> Iterator[None]:
    """Kills any worker a failed test left heartbeating."""
    yield
    with Inspector(redis_url) as insp:
        for pid in live(insp):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def live(insp: Inspector) -> dict[int, str]:
    """PID → status of the servers heartbeating now."""
    return {s.pid: s.status for s in insp.servers()}


def test_processes_are_servers_of_their_own_that_stop_with_the_supervisor(redis_url: str) -> None:
    sup = supervisor(redis_url, "tests.apps:mux", "--processes", "2")
    try:
        with Inspector(redis_url) as insp, Client(redis_url) as client:
            wait_until(lambda: len(live(insp)) == 2, 30)
            servers = live(insp)
            assert sup.pid not in servers
            ids = [client.enqueue(Task("ok:sync"), retention=60).id for _ in range(40)]
            wait_until(lambda: insp.get_queue_info("default").completed == len(ids), 30)
            # SIGTSTP reaches every child: both stop fetching.
            sup.send_signal(signal.SIGTSTP)
            wait_until(lambda: set(live(insp).values()) == {"stopped"}, 10)
            sup.send_signal(signal.SIGTERM)
            assert sup.wait(30) == 0
            wait_until(lambda: not live(insp), 10)
    finally:
        if sup.poll() is None:
            sup.kill()
    log = sup.log()
    assert "worker 0 started" in log and "worker 1 started" in log and "all workers stopped" in log


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_one_stop_to_the_process_group_counts_once(
    redis_url: str, r: redis.Redis, sig: signal.Signals
) -> None:
    """A terminal's Ctrl-C, or systemd's SIGTERM to the whole group, reaches the supervisor
    and every child, which also gets it forwarded: the running tasks still finish (a child that
    counted it twice would requeue them)."""
    sup = supervisor(
        redis_url, "tests.apps:mux", "--processes", "2", "--shutdown-timeout", "20", session=True
    )
    try:
        with Inspector(redis_url) as insp, Client(redis_url) as client:
            wait_until(lambda: len(live(insp)) == 2, 30)
            ids = [client.enqueue(Task("nap"), retention=60).id for _ in range(2)]
            wait_until(lambda: all(started(r, i) for i in ids), 30)
            os.killpg(sup.pid, sig)
            assert sup.wait(30) == 0
            assert insp.get_queue_info("default").completed == 2
    finally:
        if sup.poll() is None:
            sup.kill()
    assert "again" not in sup.log()


def test_a_second_signal_requeues_the_running_tasks_at_once(redis_url: str, r: redis.Redis) -> None:
    sup = supervisor(redis_url, "tests.apps:mux", "--processes", "2", "--shutdown-timeout", "60")
    try:
        with Inspector(redis_url) as insp, Client(redis_url) as client:
            wait_until(lambda: len(live(insp)) == 2, 30)
            ids = [client.enqueue(Task("block")).id for _ in range(2)]
            wait_until(lambda: all(started(r, i) for i in ids), 30)
            sup.send_signal(signal.SIGINT)
            time.sleep(1.0)  # the graceful stop is under way: the handlers still run
            assert sup.poll() is None
            sup.send_signal(signal.SIGINT)
            assert sup.wait(20) == 0
            assert insp.get_queue_info("default").pending == 2
    finally:
        if sup.poll() is None:
            sup.kill()
    log = sup.log()
    assert "received SIGINT again: passing it on" in log
    # Each child that still ran a task (one may hold both) says so.
    assert "not waiting for running tasks any longer" in log, log


def test_a_dead_child_is_restarted(redis_url: str) -> None:
    sup = supervisor(redis_url, "tests.apps:mux", "--processes", "2")
    try:
        with Inspector(redis_url) as insp:
            wait_until(lambda: len(live(insp)) == 2, 30)
            first = set(live(insp))
            victim = min(first)
            subprocess.run(["kill", "-9", str(victim)], check=True)
            # The killed server's record outlives it until its heartbeat expires: look past it.
            wait_until(lambda: len(set(live(insp)) - {victim}) == 2, 30)
            now = set(live(insp))
            assert len((now - {victim}) & first) == 1
        sup.send_signal(signal.SIGINT)
        assert sup.wait(30) == 0
    finally:
        if sup.poll() is None:
            sup.kill()
    assert "restarting in" in sup.log()


def test_children_stop_when_the_supervisor_is_killed(redis_url: str) -> None:
    sup = supervisor(redis_url, "tests.apps:mux", "--processes", "2")
    with Inspector(redis_url) as insp:
        wait_until(lambda: len(live(insp)) == 2, 30)
        sup.kill()  # SIGKILL: nothing is forwarded
        sup.wait()
        # Each child sees its parent gone and shuts down gracefully (its record cleared).
        wait_until(lambda: not live(insp), 30)


def test_children_dying_at_start_end_the_supervisor_with_an_error(redis_url: str) -> None:
    started = time.monotonic()
    sup = supervisor(redis_url, "tests.crash_at_start:mux", "--processes", "2")
    try:
        assert sup.wait(60) == 1
    finally:
        if sup.poll() is None:
            sup.kill()
    log = sup.log()
    assert "giving up" in log and "exited with code 3" in log
    # The backoff doubled between restarts (0.5 + 1 + 2 + 4 s before the fifth death).
    assert time.monotonic() - started >= 7


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tests.nosuchmodule:mux", "--processes", "2"], "nosuchmodule"),
        (["tests.apps:mux", "--processes", "0"], "expected 1 to 256 processes"),
        (["tests.apps:mux", "--processes", "2", "--reload"], "--reload runs one worker"),
    ],
)
def test_bad_supervisor_arguments_exit_2_at_once(
    redis_url: str, args: list[str], message: str
) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ferroq", "worker", *args, "--redis", redis_url],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode == 2
    assert message in out.stderr
