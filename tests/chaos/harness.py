"""The chaos suite's machinery: a Redis process to kill, worker processes to kill, a producer.

Everything here runs real processes on 127.0.0.1 and keeps its evidence outside Redis (record
files, see ``checker``), so a fault in Redis cannot hide what it did.
"""

from __future__ import annotations

import functools
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import redis

from chaos.checker import ACKED_FILE, Execution
from ferroq import Client, Task
from ferroq._embedded import free_port
from ferroq.errors import FerroqError, TaskIdConflictError

__all__ = [
    "RECOVERY",
    "Child",
    "Fleet",
    "Producer",
    "RedisProcess",
    "Rig",
    "acknowledge",
    "first_after",
    "log_summary",
    "poll_until",
    "recovery_flags",
    "report",
    "wait_for",
    "wait_serving",
]

HERE = Path(__file__).resolve().parent

#: The short recovery settings the churn and orphan scenarios run workers with: a lease of 5 s
#: renewed every second, recovered 2 s after it ends, the recoverer running every second.
RECOVERY: dict[str, str] = {
    "--lease-duration": "5",
    "--lease-grace": "2",
    "--recoverer-interval": "1",
    "--heartbeat-interval": "1",
    # The setting: no retry delay, so a recovered task runs at once.
    "--retry-delay": "0",
}


def wait_for(
    pred: Callable[[], object], timeout: float, what: str, interval: float = 0.05
) -> float:
    """Polls ``pred`` until it is truthy and returns how long that took.

    Raises:
        AssertionError: ``pred`` stayed falsy for ``timeout`` seconds (``what`` says what).
    """
    start = time.monotonic()
    while not pred():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(interval)
    return time.monotonic() - start


def poll_until(pred: Callable[[], object], timeout: float, interval: float = 0.1) -> bool:
    """Polls ``pred`` for up to ``timeout`` seconds; whether it became truthy.

    For a test that reports its numbers before it asserts.
    """
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def wait_serving(server: RedisProcess, *children: Child, timeout: float = 30.0) -> None:
    """Waits until each worker in ``children`` published its heartbeat: it is serving.

    A server's heartbeat key, ``asynq:servers:{<host>:<pid>:<id>}``, names its pid.
    """
    r = server.client()
    try:
        for c in children:

            def up(c: Child = c) -> bool:
                assert c.alive(), f"{c.log.name} exited: {c.log_tail()}"
                return any(f":{c.pid}:".encode() in m for m in r.zrange("asynq:servers", 0, -1))

            wait_for(up, timeout, f"{c.log.name} (pid {c.pid}) serving")
    finally:
        r.close()


def first_after(executions: Sequence[Execution], t: float) -> float | None:
    """The end time of the first execution that ended after ``t``, if any."""
    return min((e.at for e in executions if e.at > t), default=None)


def report(scenario: str, **numbers: object) -> None:
    """Prints a scenario's measured numbers and appends them to ``$FERROQ_CHAOS_REPORT``.

    The print shows with ``pytest -s``; the file (JSON lines, one per call) is what
    ``docs/reliability.md`` is written from.
    """
    print(f"\n[chaos] {scenario}: " + " ".join(f"{k}={v}" for k, v in numbers.items()))
    path = os.environ.get("FERROQ_CHAOS_REPORT")
    if path:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        line: dict[str, object] = {"scenario": scenario, "at": stamp, **numbers}
        with open(path, "a") as f:
            f.write(json.dumps(line, default=str) + "\n")


# ---- Redis -----------------------------------------------------------------------------------


class RedisProcess:
    """A ``redis-server`` on a fixed loopback port and directory, to kill, stall and restart.

    Args:
        directory: Its data directory (AOF files live there across restarts).
        aof: ``--appendonly yes --appendfsync always``: every acknowledged write survives a
            SIGKILL. Without it nothing is persisted.
    """

    def __init__(self, directory: Path, *, aof: bool) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server is not on PATH")
        self.binary = binary
        self.directory = directory
        self.aof = aof
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        """The running server's pid."""
        assert self._proc is not None, "redis-server is not running"
        return self._proc.pid

    def start(self, timeout: float = 15.0) -> float:
        """Starts the server (again, on the same port and data) and waits until it serves.

        Returns:
            ``time.time()`` when it first answered PING: the end of an outage.
        """
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.aof else []
        cmd = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
            str(self.directory), "--save", "", "--appendonly", "no", *persistence,
            "--daemonize", "no", "--protected-mode", "yes",
        ]  # fmt: skip
        if self._log is None:
            self._log = open(self.directory / "redis.log", "ab")  # noqa: SIM115 - closed in close()
        self._proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT)
        r = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    raise RuntimeError(f"redis-server exited: {self.log_tail()}")
                try:
                    # A server still loading its AOF answers -LOADING: not serving yet.
                    if r.ping():
                        return time.time()
                except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                    pass
                time.sleep(0.02)
        finally:
            r.close()
        raise TimeoutError(f"redis-server did not serve on port {self.port}: {self.log_tail()}")

    def kill(self) -> float:
        """SIGKILLs the server (no shutdown, no final fsync); returns when it happened."""
        assert self._proc is not None
        at = time.time()
        self._proc.kill()
        self._proc.wait()
        self._proc = None
        return at

    def pause(self) -> float:
        """SIGSTOPs the server: connections stay open, nothing answers."""
        os.kill(self.pid, signal.SIGSTOP)
        return time.time()

    def resume(self) -> float:
        """SIGCONTs a paused server."""
        os.kill(self.pid, signal.SIGCONT)
        return time.time()

    def client(self) -> redis.Redis:
        """A redis-py connection: the independent observer of what is in Redis."""
        return redis.Redis(port=self.port, socket_timeout=5)

    def log_tail(self, n: int = 15) -> str:
        """The last lines the server logged."""
        try:
            lines = (self.directory / "redis.log").read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def close(self) -> None:
        """Kills the server if it runs (SIGCONT first: a stopped process dies only when woken)."""
        if self._proc is not None and self._proc.poll() is None:
            os.kill(self._proc.pid, signal.SIGCONT)
            self._proc.kill()
            self._proc.wait()
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None


# ---- ferroq processes ------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _worker_help() -> str:
    out = subprocess.run(
        [sys.executable, "-m", "ferroq", "worker", "--help"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return out.stdout


def recovery_flags() -> list[str]:
    """``RECOVERY`` as ``ferroq worker`` arguments.

    Raises:
        AssertionError: This build's ``ferroq worker`` lacks one of the flags (named).
    """
    help_text = _worker_help()
    missing = [flag for flag in RECOVERY if flag not in help_text]
    assert not missing, f"`ferroq worker` has no {', '.join(missing)} in this build"
    return [arg for pair in RECOVERY.items() for arg in pair]


@dataclass
class Child:
    """A ferroq process the test started."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    killed_at: float | None = None

    @property
    def pid(self) -> int:
        """The process id."""
        return self.proc.pid

    def alive(self) -> bool:
        """Whether it still runs."""
        return self.proc.poll() is None

    def log_tail(self, n: int = 15) -> str:
        """The last lines it logged."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


@dataclass
class Fleet:
    """Starts ``ferroq worker`` and ``ferroq scheduler`` processes; kills them all at the end.

    Args:
        records: The records directory the app writes to (``FERROQ_CHAOS_DIR``).
        logs: Where each process's stdout and stderr go, one file each.
    """

    records: Path
    logs: Path
    children: list[Child] = field(default_factory=list)
    #: Seed of ``rng``, which picks the victims and the pauses: ``$CHAOS_SEED`` replays a run.
    seed: int = field(default_factory=lambda: int(os.environ.get("CHAOS_SEED") or time.time_ns()))
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    @property
    def killed(self) -> set[int]:
        """Pids of the processes this fleet SIGKILLed."""
        return {c.pid for c in self.children if c.killed_at is not None}

    def _env(self, redis_url: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            FERROQ_CHAOS_DIR=str(self.records),
            REDIS_URL=redis_url,
            # The app module, and nothing else of the test tree, is importable in the children
            # (ahead of any PYTHONPATH the suite itself was given).
            PYTHONPATH=os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH")) if p),
            PYTHONUNBUFFERED="1",
        )
        return env

    def spawn(self, name: str, args: Sequence[str], redis_url: str) -> Child:
        """Starts ``python -m ferroq <args>`` (the ``ferroq`` command of this interpreter)."""
        n = sum(1 for c in self.children if c.name == name)
        log = self.logs / f"{name}-{n}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "ferroq", *args],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=self._env(redis_url), cwd=self.records,
            )  # fmt: skip
        child = Child(name, proc, log)
        self.children.append(child)
        return child

    def worker(
        self,
        redis_url: str,
        queues: Sequence[str] = ("default",),
        *,
        concurrency: int = 4,
        extra: Sequence[str] = (),
    ) -> Child:
        """Starts ``ferroq worker chaos_app:mux --redis URL -c N -q ...``."""
        args = ["worker", "chaos_app:mux", "--redis", redis_url, "-c", str(concurrency)]
        for q in queues:
            args += ["-q", q]
        return self.spawn("worker", [*args, *extra], redis_url)

    def scheduler(self, redis_url: str) -> Child:
        """Starts a ``ferroq scheduler chaos_app:scheduler`` replica."""
        return self.spawn("scheduler", ["scheduler", "chaos_app:scheduler"], redis_url)

    def kill(self, child: Child) -> float:
        """SIGKILLs ``child`` and reaps it; returns when it was killed."""
        child.killed_at = time.time()
        child.proc.kill()
        child.proc.wait()
        return child.killed_at

    def pick(self, name: str) -> Child:
        """A random live process of that name."""
        live = [c for c in self.children if c.name == name and c.alive()]
        assert live, f"no live {name}"
        return self.rng.choice(live)

    def exited(self) -> list[Child]:
        """Processes that ended by themselves (not killed by the test)."""
        return [c for c in self.children if c.killed_at is None and not c.alive()]

    def close(self) -> None:
        """SIGKILLs every process still running; nothing outlives the test."""
        for c in self.children:
            if c.alive():
                c.proc.kill()
        for c in self.children:
            c.proc.wait()


_LEVEL = re.compile(r" (WARNING|ERROR|CRITICAL) ")
_STAMP = re.compile(r"^\S+ \S+ ")


def log_summary(children: Sequence[Child], limit: int = 4) -> dict[str, object]:
    """What the processes logged at WARNING and above: counts, and the commonest messages.

    Messages are shortened (no timestamp, task IDs masked) so that the same event counts once.
    """
    levels: Counter[str] = Counter()
    messages: Counter[str] = Counter()
    tracebacks = 0
    for c in children:
        try:
            lines = c.log.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            tracebacks += line.startswith("Traceback")
            m = _LEVEL.search(line)
            if m:
                levels[m.group(1)] += 1
                text = _STAMP.sub("", line)
                text = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "<id>", text)
                messages[text[:220]] += 1
    return {
        "levels": dict(levels),
        "tracebacks": tracebacks,
        "top": [f"{n}x {m}" for m, n in messages.most_common(limit)],
    }


# ---- producers -------------------------------------------------------------------------------


def acknowledge(records: Path, task_ids: Sequence[str]) -> None:
    """Appends IDs whose enqueue returned to ``acked.txt`` (for tests that enqueue themselves)."""
    with open(records / ACKED_FILE, "a") as f:
        f.writelines(f"{i}\n" for i in task_ids)


class Producer(threading.Thread):
    """Enqueues ``chaos:work`` tasks at a steady rate and records each acknowledged ID.

    An ID is acknowledged (appended to ``acked.txt``, one ``os.write`` on an O_APPEND fd)
    only after its enqueue returned. An enqueue that raised is retried with the same task ID
    until it returns, so a write that landed before the error is not enqueued twice: a
    ``TaskIdConflictError`` on a retry means the earlier attempt landed, and counts as the ack.

    Args:
        redis_url: Where to enqueue.
        records: The records directory.
        count: How many tasks (it stops earlier on ``stop()``).
        rate: Tasks per second.
        payload: The handler's sleep in milliseconds, as bytes.
        queue: The queue.
    """

    def __init__(
        self,
        redis_url: str,
        records: Path,
        *,
        count: int,
        rate: float,
        payload: bytes = b"2",
        queue: str = "default",
    ) -> None:
        super().__init__(name="chaos-producer", daemon=True)
        self.redis_url = redis_url
        self.count = count
        self.rate = rate
        self.payload = payload
        self.queue = queue
        self.acked: list[tuple[str, float]] = []
        self.failures = 0
        self.longest_stall = 0.0
        self._path = records / ACKED_FILE
        self._stop_event = threading.Event()
        self.error: BaseException | None = None

    def stop(self) -> None:
        """Stops after the enqueue in progress (an unacknowledged one is abandoned)."""
        self._stop_event.set()

    def run(self) -> None:
        """The producer loop (``start()`` runs it in the thread)."""
        fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            with Client(self.redis_url) as client:
                begin = time.monotonic()
                for i in range(self.count):
                    delay = begin + i / self.rate - time.monotonic()
                    if self._stop_event.wait(max(0.0, delay)):
                        return
                    task_id = str(uuid.uuid4())
                    t0 = time.monotonic()
                    if not self._enqueue(client, task_id):
                        return
                    self.longest_stall = max(self.longest_stall, time.monotonic() - t0)
                    os.write(fd, f"{task_id}\n".encode())
                    self.acked.append((task_id, time.time()))
        except BaseException as e:  # surfaced by the test through .error
            self.error = e
        finally:
            os.close(fd)

    def _enqueue(self, client: Client, task_id: str) -> bool:
        task = Task("chaos:work", self.payload)
        while True:
            try:
                client.enqueue(task, queue=self.queue, task_id=task_id)
                return True
            except TaskIdConflictError:
                return True  # an earlier attempt, whose reply was lost, landed
            except FerroqError:
                self.failures += 1
                if self._stop_event.wait(0.05):
                    return False

    @property
    def acked_ids(self) -> list[str]:
        """The acknowledged IDs."""
        return [i for i, _ in self.acked]

    def first_ack_after(self, t: float) -> float | None:
        """When the first enqueue acknowledged after ``t`` returned."""
        return next((at for _, at in self.acked if at > t), None)


# ---- one test's world ------------------------------------------------------------------------


@dataclass
class Rig:
    """One test's world: its records directory, its Redis processes and its fleet."""

    root: Path
    records: Path
    fleet: Fleet
    servers: list[RedisProcess]

    def redis(self, *, aof: bool = False) -> RedisProcess:
        """Starts a Redis (``aof``: ``--appendonly yes --appendfsync always``) for this test."""
        data = self.root / f"redis-{len(self.servers)}"
        data.mkdir()
        server = RedisProcess(data, aof=aof)
        self.servers.append(server)
        server.start()
        return server

    def diagnostics(self) -> str:
        """The tails of every log, for a failed test."""
        parts = [f"--- {c.log.name} (pid {c.pid}) ---\n{c.log_tail()}" for c in self.fleet.children]
        parts += [f"--- redis {s.port} ---\n{s.log_tail()}" for s in self.servers]
        return "\n".join(parts)
