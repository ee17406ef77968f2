"""Real multi-node Redis setups on loopback: a 3-master / 3-replica Redis Cluster and a master
with a replica watched by three sentinels. Both use ``redis-server`` from PATH (``redis-cli
--cluster create`` joins the cluster; ``redis-server --sentinel`` runs the sentinels), each node
with its own temporary directory, so tests can kill a master and watch the failover.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redis
import redis.cluster

from ferroq._embedded import EmbeddedRedis, free_port

# A master unreachable this long is failed over; small so a test's pause is short.
NODE_TIMEOUT_MS = 1000


def wait_until(cond: Callable[[], bool], timeout: float, what: str, step: float = 0.05) -> None:
    """Polls ``cond`` until it holds; ``TimeoutError`` naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except (redis.RedisError, OSError):
            pass
        time.sleep(step)
    raise TimeoutError(f"timed out waiting for {what}")


_TAKEN: set[int] = set()


def cluster_port() -> int:
    """A free port ``p`` whose cluster bus port ``p + 10000`` is free too, both below Linux's
    ephemeral range (32768 and up), where client sockets would take them; never one given out
    before in this process."""
    import random
    import socket

    for _ in range(500):
        port = random.randint(20000, 22767)
        if port in _TAKEN:
            continue
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        _TAKEN.add(port)
        return port
    raise RuntimeError("no free port pair for a cluster node")


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise FileNotFoundError(f"{name} is not on PATH")
    return path


class Cluster:
    """Six ``redis-server --cluster-enabled yes`` nodes joined as 3 masters with a replica each."""

    def __init__(self, masters: int = 3, replicas: int = 1) -> None:
        self.size = masters * (1 + replicas)
        self.replicas = replicas
        self.nodes = [
            EmbeddedRedis(
                _binary("redis-server"),
                port=cluster_port(),
                args=[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    str(NODE_TIMEOUT_MS),
                    # A replica of a killed master takes over at once, whatever its lag.
                    "--cluster-replica-validity-factor",
                    "0",
                    "--cluster-require-full-coverage",
                    "no",
                ],
            )
            for _ in range(self.size)
        ]

    @property
    def url(self) -> str:
        """``redis+cluster://`` naming every node."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def start(self) -> Cluster:
        """Starts the nodes and joins them; returns when every slot is served (stops them all
        if that fails)."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> Cluster:
        for n in self.nodes:
            n.start()
        cmd = [
            _binary("redis-cli"), "--cluster", "create",
            *(f"127.0.0.1:{n.port}" for n in self.nodes),
            "--cluster-replicas", str(self.replicas), "--cluster-yes",
        ]  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {out.stdout}{out.stderr}")
        wait_until(self.healthy, 30, "the cluster to serve every slot")
        return self

    def healthy(self) -> bool:
        """Every live node says the cluster is ok and every replica is in sync."""
        for n in self.live():
            with redis.Redis(port=n.port, socket_timeout=1) as r:
                info = r.execute_command("CLUSTER", "INFO").decode()
                if "cluster_state:ok" not in info:
                    return False
                repl = r.info("replication")
                if repl.get("role") == "slave" and repl.get("master_link_status") != "up":
                    return False
        return True

    def live(self) -> list[EmbeddedRedis]:
        """The nodes still running."""
        return [n for n in self.nodes if n._proc is not None and n._proc.poll() is None]

    def client(self) -> redis.cluster.RedisCluster:
        """redis-py's cluster client, the independent observer."""
        return self.observer(f"redis+cluster://127.0.0.1:{self.live()[0].port}")

    @staticmethod
    def observer(url: str) -> redis.cluster.RedisCluster:
        """redis-py's cluster client for a ``redis+cluster://`` URL."""
        first = url.split("://", 1)[1].split(",")[0]
        host, port = first.rsplit(":", 1)
        return redis.cluster.RedisCluster(host=host, port=int(port), socket_timeout=5)

    def master_of(self, key: str) -> EmbeddedRedis:
        """The node serving ``key``'s slot now."""
        with self.client() as rc:
            node = rc.get_node_from_key(key)
            port = int(node.port)
        return next(n for n in self.nodes if n.port == port)

    def kill(self, node: EmbeddedRedis) -> None:
        """SIGKILLs a node (no chance to hand anything over)."""
        if node._proc is not None:
            node._proc.kill()
            node._proc.wait()
            node._proc = None

    def promoted(self, port: int) -> bool:
        """Whether a live node took over the slots of the killed master on ``port``."""
        with redis.Redis(port=self.live()[0].port, socket_timeout=1) as r:
            nodes = r.execute_command("CLUSTER", "NODES").decode()
        for line in nodes.splitlines():
            parts = line.split()
            if f":{port}@" in parts[1]:
                return "fail" in parts[2] and self.healthy()
        return False

    def flushall(self) -> None:
        """Deletes every key on every master."""
        for n in self.live():
            with redis.Redis(port=n.port, socket_timeout=5) as r:
                if r.info("replication").get("role") == "master":
                    r.flushall()

    def stop(self) -> None:
        """Stops every node and removes its directory."""
        for n in self.nodes:
            n.stop()


class SentinelGroup:
    """A master, a replica and three sentinels watching them as service ``mymaster``."""

    service = "mymaster"

    def __init__(self) -> None:
        server = _binary("redis-server")
        self.master = EmbeddedRedis(server)
        self.replica = EmbeddedRedis(server)
        self.sentinel_ports = [free_port() for _ in range(3)]
        self._sentinels: list[subprocess.Popen[bytes]] = []
        self._dirs: list[Path] = []

    @property
    def url(self) -> str:
        """``redis+sentinel://`` naming the three sentinels and the service."""
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{self.service}"

    def start(self) -> SentinelGroup:
        """Starts the master, the replica and the sentinels; returns when all agree (stops
        them all if that fails)."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> SentinelGroup:
        self.master.start()
        self.replica.args = ["--replicaof", "127.0.0.1", str(self.master.port)]
        self.replica.start()
        import tempfile

        for port in self.sentinel_ports:
            d = Path(tempfile.mkdtemp(prefix="ferroq-sentinel-"))
            self._dirs.append(d)
            conf = d / "sentinel.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {d}\n"
                f"sentinel monitor {self.service} 127.0.0.1 {self.master.port} 2\n"
                f"sentinel down-after-milliseconds {self.service} {NODE_TIMEOUT_MS}\n"
                f"sentinel failover-timeout {self.service} 5000\n"
                f"sentinel parallel-syncs {self.service} 1\n"
            )
            log = open(d / "sentinel.log", "wb")  # noqa: SIM115 - lives with the process
            self._sentinels.append(
                subprocess.Popen(
                    [_binary("redis-server"), str(conf), "--sentinel"],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        wait_until(self._agreed, 30, "the sentinels to see the master and its replica")
        wait_until(self._replica_synced, 30, "the replica to sync")
        return self

    def _agreed(self) -> bool:
        for port in self.sentinel_ports:
            with redis.Redis(port=port, socket_timeout=1) as s:
                info = s.sentinel_master(self.service)
                if int(info["num-slaves"]) < 1 or int(info["num-other-sentinels"]) < 2:
                    return False
        return True

    def _replica_synced(self) -> bool:
        with redis.Redis(port=self.replica.port, socket_timeout=1) as r:
            return bool(r.info("replication").get("master_link_status") == "up")

    def master_port(self) -> int:
        """The port the sentinels name as the master now."""
        for port in self.sentinel_ports:
            try:
                with redis.Redis(port=port, socket_timeout=1) as s:
                    _, p = s.sentinel_get_master_addr_by_name(self.service)
                    return int(p)
            except (redis.RedisError, OSError):
                continue
        raise RuntimeError("no sentinel answers")

    def kill_master(self) -> int:
        """SIGKILLs the current master; returns its port."""
        port = self.master_port()
        node = self.master if self.master.port == port else self.replica
        if node._proc is not None:
            node._proc.kill()
            node._proc.wait()
            node._proc = None
        return port

    def stop(self) -> None:
        """Stops the sentinels and both servers."""
        for p in self._sentinels:
            p.kill()
            p.wait()
        for d in self._dirs:
            shutil.rmtree(d, ignore_errors=True)
        self.master.stop()
        self.replica.stop()
