"""The real Go asynq, driven through ``asynqctl`` (a Go program in ``interop/asynqctl/``).

The binary is built with the Go toolchain on first use and cached by a hash of its sources, so
later runs start at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

SOURCE = Path(__file__).resolve().parent / "interop" / "asynqctl"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ferroq" / "interop"


def build() -> Path:
    """Builds asynqctl (or reuses the cached build of the same sources).

    Raises:
        FileNotFoundError: There is no ``go`` command.
        subprocess.CalledProcessError: The build failed.
    """
    go = shutil.which("go")
    if go is None:
        raise FileNotFoundError("the Go toolchain (go) is needed for the interop suite")
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "main.go"):
        digest.update((SOURCE / name).read_bytes())
    binary = cache_dir() / f"asynqctl-{digest.hexdigest()[:16]}"
    if not binary.exists():
        binary.parent.mkdir(parents=True, exist_ok=True)
        tmp = binary.with_suffix(".tmp")
        env = {**os.environ, "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}
        subprocess.run([go, "build", "-o", str(tmp), "."], cwd=SOURCE, env=env, check=True)
        tmp.replace(binary)
    return binary


class GoError(Exception):
    """asynqctl reported an error (the Go side's error text is the message)."""


class GoServer:
    """A running Go asynq process (server or scheduler); ``handled`` collects one dict per task
    its handler saw, ``started`` is its first report."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.handled: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        first = self.events.get(timeout=30)
        if first.get("event") != "started":
            raise GoError(f"go server did not start: {first}")
        self.started = first

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            event = json.loads(line)
            if event.get("event") == "handled":
                self.handled.append(event)
            self.events.put(event)

    def stop(self) -> None:
        """Graceful shutdown (SIGTERM), as asynq's Shutdown."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)

    def kill(self) -> None:
        """SIGKILL: the process dies mid-task."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


class GoAsynq:
    """asynqctl bound to one Redis URL."""

    def __init__(self, binary: Path, redis_url: str) -> None:
        self.binary = binary
        self.url = redis_url

    def _run(self, *args: str) -> Any:
        p = subprocess.run(
            [str(self.binary), *args], capture_output=True, text=True, timeout=60, check=False
        )
        lines = p.stdout.strip().splitlines()
        data = json.loads(lines[-1]) if lines else {"error": p.stderr}
        if p.returncode != 0 or (isinstance(data, dict) and "error" in data):
            raise GoError(data.get("error") if isinstance(data, dict) else p.stderr)
        return data

    def enqueue(self, task_type: str, payload: bytes | None = None, **opts: Any) -> dict[str, Any]:
        """``client.Enqueue(asynq.NewTask(...), opts...)``; options by their asynq names.

        Durations are Go strings (``"30s"``), instants Unix seconds, ``header`` a dict.
        """
        args = ["enqueue", "-redis", self.url, "-type", task_type]
        if payload is not None:
            args += ["-payload-hex", payload.hex()] if payload else ["-empty-payload"]
        for k, v in opts.items():
            if k == "header":
                for hk, hv in v.items():
                    args += ["-header", f"{hk}={hv}"]
            else:
                args += [f"-{k.replace('_', '-')}", str(v)]
        result: dict[str, Any] = self._run(*args)
        return result

    def inspect(self, *args: str) -> Any:
        """One Inspector call, e.g. ``inspect("list", "default", "retry")``."""
        return self._run("inspect", "-redis", self.url, *args)

    def schedule(self, spec: str, task_type: str, queue: str = "default") -> GoServer:
        """Starts a Go ``asynq.Scheduler`` with one entry (its ID is ``started["entry_id"]``)."""
        args = [str(self.binary), "schedule", "-redis", self.url, "-spec", spec, "-type", task_type,
                "-queue", queue]  # fmt: skip
        return GoServer(subprocess.Popen(args, stdout=subprocess.PIPE, text=True))

    def serve(self, queues: str = "default=1", **opts: str) -> GoServer:
        """Starts a Go server; task types pick the handler's behaviour (see main.go)."""
        args = [str(self.binary), "serve", "-redis", self.url, "-queues", queues]
        for k, v in opts.items():
            args += [f"-{k.replace('_', '-')}", v]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        return GoServer(proc)
