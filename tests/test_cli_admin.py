"""The admin commands of ``ferroq`` (stats, queue, task, group, server, cron, metrics,
completion) on a real Redis: tables, ``--json``, what they change, and their errors."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from client_helpers import qkey
from ferroq import Client, Scheduler, ServeMux, Server, SkipRetry, Task
from ferroq.cli import main
from util import wait_until

ROOT = Path(__file__).resolve().parent.parent
MakeServer = Callable[..., Server]


def cli(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> tuple[int, str, str]:
    """Runs ``ferroq ARGS --redis URL`` in-process; returns (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = main([*args, "--redis", url])
    out, err = capsys.readouterr()
    return code, out, err


def cli_json(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> Any:
    code, out, err = cli(capsys, url, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def seed(client: Client) -> dict[str, str]:
    """Two queues with tasks in several states; returns a few of their IDs."""
    ids = {}
    for i in range(3):
        ids[f"p{i}"] = client.enqueue(Task("email:send", b'{"to": %d}' % i), queue="critical").id
    ids["s"] = client.enqueue(Task("report", b"weekly"), process_in=3600).id
    ids["g"] = client.enqueue(Task("agg", b"x"), queue="batch", group="nightly").id
    return ids


def test_stats_shows_every_queue_and_redis(
    capsys: pytest.CaptureFixture[str], redis_url: str, client: Client
) -> None:
    seed(client)
    code, out, _ = cli(capsys, redis_url, "stats")
    assert code == 0
    assert "Tasks by state" in out and "Queues" in out and "Redis" in out
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    # queue, state, size, latency, pending, active, scheduled ...
    assert lines["critical"][:3] == ["critical", "run", "3"] and lines["critical"][4] == "3"
    assert lines["default"][6] == "1"
    data = cli_json(capsys, redis_url, "stats")
    assert data["states"] == {
        "active": 0, "pending": 3, "aggregating": 1, "scheduled": 1, "retry": 0, "archived": 0,
        "completed": 0,
    }  # fmt: skip
    assert [q["queue"] for q in data["queues"]] == ["batch", "critical", "default"]
    assert data["redis"]["version"].split()[0] in ("redis", "valkey")


def test_queue_commands(
    capsys: pytest.CaptureFixture[str], redis_url: str, client: Client, r: redis.Redis
) -> None:
    seed(client)
    code, out, _ = cli(capsys, redis_url, "queue", "ls")
    assert (code, out.split()) == (0, ["batch", "critical", "default"])
    assert cli_json(capsys, redis_url, "queue", "ls") == ["batch", "critical", "default"]

    (info,) = cli_json(capsys, redis_url, "queue", "inspect", "critical")
    assert (info["queue"], info["pending"], info["size"], info["paused"]) == (
        "critical",
        3,
        3,
        False,
    )
    assert info["memory_usage"] > 0
    (info,) = cli_json(capsys, redis_url, "queue", "inspect", "critical", "--no-memory")
    assert info["memory_usage"] is None
    code, out, _ = cli(capsys, redis_url, "queue", "inspect", "critical", "batch")
    assert code == 0 and "Queue:   critical" in out and "Queue:   batch" in out

    day = time.strftime("%Y-%m-%d", time.gmtime())
    r.set(qkey("critical", f"processed:{day}"), 7)
    r.set(qkey("critical", f"failed:{day}"), 2)
    hist = cli_json(capsys, redis_url, "queue", "history", "critical", "-x", "3")
    first = hist["critical"][0]
    assert (first["date"], first["processed"], first["failed"]) == (day, 7, 2)
    assert len(hist["critical"]) == 3
    code, out, _ = cli(capsys, redis_url, "queue", "history", "critical")
    assert code == 0 and "28.57%" in out

    code, out, _ = cli(capsys, redis_url, "queue", "pause", "critical")
    assert code == 0 and "paused queue critical" in out
    assert r.exists(qkey("critical", "paused"))
    code, _, err = cli(capsys, redis_url, "queue", "pause", "critical")
    assert code == 1 and "already paused" in err
    assert cli(capsys, redis_url, "queue", "resume", "critical")[0] == 0
    assert not r.exists(qkey("critical", "paused"))
    code, _, err = cli(capsys, redis_url, "queue", "unpause", "critical")
    assert code == 1 and "not paused" in err

    code, _, err = cli(capsys, redis_url, "queue", "rm", "critical")
    assert code == 1 and "not empty" in err and "3 pending" in err
    assert r.llen(qkey("critical", "pending")) == 3
    assert cli(capsys, redis_url, "queue", "rm", "critical", "--force")[0] == 0
    assert not r.keys("asynq:{critical}:*") and not r.sismember("asynq:queues", "critical")
    code, _, err = cli(capsys, redis_url, "queue", "inspect", "critical")
    assert code == 1 and err.strip() == 'ferroq queue inspect: queue "critical" does not exist'


def test_task_ls_and_inspect(
    capsys: pytest.CaptureFixture[str], redis_url: str, client: Client
) -> None:
    ids = seed(client)
    rows = cli_json(capsys, redis_url, "task", "ls", "-q", "critical", "-s", "pending")
    assert [t["id"] for t in rows] == [ids["p0"], ids["p1"], ids["p2"]]
    assert rows[0]["payload"] == '{"to": 0}' and rows[0]["state"] == "pending"
    page = cli_json(
        capsys, redis_url, "task", "ls", "-q", "critical", "-s", "pending", "--page", "2",
        "--size", "2",
    )  # fmt: skip
    assert [t["id"] for t in page] == [ids["p2"]]
    code, out, _ = cli(capsys, redis_url, "task", "ls", "-q", "default", "-s", "scheduled")
    # Scores are whole seconds rounded up: about an hour from now either way.
    assert code == 0 and ids["s"] in out and ("in 59m" in out or "in 1h00m" in out)
    agg = cli_json(
        capsys, redis_url, "task", "ls", "-q", "batch", "-s", "aggregating", "-g", "nightly"
    )
    assert [t["id"] for t in agg] == [ids["g"]]
    code, _, err = cli(capsys, redis_url, "task", "ls", "-q", "batch", "-s", "aggregating")
    assert code == 1 and "give the group" in err
    code, out, _ = cli(capsys, redis_url, "task", "ls", "-q", "critical", "-s", "retry")
    assert code == 0 and "none" in out

    t = cli_json(capsys, redis_url, "task", "inspect", "-q", "default", "-i", ids["s"])
    assert (t["id"], t["type"], t["payload"], t["state"]) == (
        ids["s"],
        "report",
        "weekly",
        "scheduled",
    )
    code, out, _ = cli(capsys, redis_url, "task", "inspect", "-q", "default", "-i", ids["s"])
    assert code == 0 and "State:" in out and "scheduled" in out and "Retried:     0 of 25" in out
    code, _, err = cli(capsys, redis_url, "task", "inspect", "-q", "default", "-i", "nope")
    assert code == 1 and 'task "nope" not found in queue "default"' in err


def test_task_actions(
    capsys: pytest.CaptureFixture[str], redis_url: str, client: Client, r: redis.Redis
) -> None:
    ids = seed(client)
    assert cli(capsys, redis_url, "task", "archive", "-q", "critical", "-i", ids["p0"])[0] == 0
    assert r.zscore(qkey("critical", "archived"), ids["p0"]) is not None
    code, _, err = cli(capsys, redis_url, "task", "archive", "-q", "critical", "-i", ids["p0"])
    assert code == 1 and "already archived" in err
    assert cli(capsys, redis_url, "task", "run", "-q", "critical", "-i", ids["p0"])[0] == 0
    assert r.hget(f"asynq:{{critical}}:t:{ids['p0']}", "state") == b"pending"
    code, _, err = cli(capsys, redis_url, "task", "run", "-q", "critical", "-i", ids["p0"])
    assert code == 1 and "already pending" in err
    assert cli(capsys, redis_url, "task", "delete", "-q", "critical", "-i", ids["p1"])[0] == 0
    assert not r.exists(f"asynq:{{critical}}:t:{ids['p1']}")
    code, _, err = cli(capsys, redis_url, "task", "rm", "-q", "critical", "-i", ids["p1"])
    assert code == 1 and "not found" in err

    code, out, _ = cli(capsys, redis_url, "task", "archiveall", "-q", "critical", "-s", "pending")
    assert code == 0 and "archived 2 pending tasks of critical" in out
    code, out, _ = cli(capsys, redis_url, "task", "runall", "-q", "critical", "-s", "archived")
    assert code == 0 and "2 archived tasks of critical are pending" in out
    code, out, _ = cli(capsys, redis_url, "task", "deleteall", "-q", "critical", "-s", "pending")
    assert code == 0 and "deleted 2 pending tasks" in out
    assert r.llen(qkey("critical", "pending")) == 0
    code, out, _ = cli(
        capsys, redis_url, "task", "runall", "-q", "batch", "-s", "aggregating", "-g", "nightly"
    )
    assert code == 0 and "1 aggregating tasks of batch are pending" in out
    # States the bulk commands do not take are refused by the parser (exit 2), changing nothing.
    with pytest.raises(SystemExit) as e:
        main(["task", "runall", "-q", "default", "-s", "pending", "--redis", redis_url])
    assert e.value.code == 2
    assert "invalid state 'pending'" in capsys.readouterr().err


def test_task_enqueue_takes_asynqs_flags(
    capsys: pytest.CaptureFixture[str], redis_url: str
) -> None:
    info = cli_json(
        capsys, redis_url, "task", "enqueue", "-t", "email:send", "-l", "hi", "--queue",
        "critical", "--retry", "3", "--id", "t-1", "--timeout", "1m30s", "--process_in", "1h",
        "--retention", "24h",
    )  # fmt: skip
    assert (info["id"], info["queue"], info["type"], info["payload"]) == (
        "t-1", "critical", "email:send", "hi",
    )  # fmt: skip
    assert (info["max_retry"], info["timeout"], info["retention"], info["state"]) == (
        3, 90.0, 86400.0, "scheduled",
    )  # fmt: skip
    code, _, err = cli(
        capsys, redis_url, "task", "enqueue", "-t", "x", "--id", "t-1", "--queue", "critical"
    )
    assert code == 1 and "conflicts" in err
    with pytest.raises(SystemExit) as e:
        main(["task", "enqueue", "-t", "x", "--timeout", "soon", "--redis", redis_url])
    assert e.value.code == 2
    assert "expected seconds or a duration" in capsys.readouterr().err


def test_task_cancel_reaches_the_running_server(
    capsys: pytest.CaptureFixture[str], redis_url: str, client: Client, make_server: MakeServer,
    r: redis.Redis,
) -> None:  # fmt: skip
    started = threading.Event()

    async def wait(task: Task) -> None:
        import asyncio

        started.set()
        await asyncio.sleep(30)

    info = client.enqueue(Task("wait"), max_retry=0)
    make_server().start(wait)
    assert started.wait(10)
    code, out, _ = cli(capsys, redis_url, "task", "cancel", info.id)
    assert code == 0 and f"cancel request for {info.id} sent to 1 server(s)" in out
    wait_until(lambda: r.zscore(qkey("default", "archived"), info.id) is not None)
    t = cli_json(capsys, redis_url, "task", "inspect", "-q", "default", "-i", info.id)
    assert t["last_error"] == "context canceled"


def test_server_group_and_cron(
    capsys: pytest.CaptureFixture[str], redis_url: str, client: Client, make_server: MakeServer
) -> None:
    client.enqueue(Task("agg", b"1"), queue="batch", group="g1")
    client.enqueue(Task("agg", b"2"), queue="batch", group="g1")
    groups = cli_json(capsys, redis_url, "group", "ls", "-q", "batch")
    assert groups == [{"group": "g1", "size": 2}]
    code, out, _ = cli(capsys, redis_url, "group", "ls", "-q", "batch")
    assert code == 0 and "g1" in out

    release = threading.Event()
    running = threading.Event()

    def hold(task: Task) -> None:
        running.set()
        release.wait(20)

    held = client.enqueue(Task("hold", b"h"))
    srv = make_server(concurrency=3, queues={"default": 2, "batch": 1})
    srv.start(hold)
    try:
        assert running.wait(10)
        # The heartbeat that lists the running task may come a beat after the first one.
        (s,) = wait_until(
            lambda: [x for x in cli_json(capsys, redis_url, "server", "ls") if x["active_workers"]]
        )
        assert (s["id"], s["concurrency"], s["queues"]) == (
            srv.server_id,
            3,
            {"default": 2, "batch": 1},
        )
        assert [w["task_id"] for w in s["active_workers"]] == [held.id]
        code, out, _ = cli(capsys, redis_url, "server", "ls")
        assert code == 0 and "1/3" in out and "Running tasks" in out and held.id in out
    finally:
        release.set()

    sched = Scheduler(redis_url, heartbeat_interval=1)
    entry = sched.register("@every 1s", Task("tick"), queue="default")
    sched.start()
    try:
        (e,) = wait_until(lambda: cli_json(capsys, redis_url, "cron", "ls") or None)
        assert (e["id"], e["spec"], e["task_type"], e["queue"]) == (
            entry,
            "@every 1s",
            "tick",
            "default",
        )
        events = wait_until(lambda: cli_json(capsys, redis_url, "cron", "history", entry)[entry])
        assert all(ev["task_id"] and ev["enqueued_at"] for ev in events)
        code, out, _ = cli(capsys, redis_url, "cron", "ls")
        assert code == 0 and "@every 1s" in out
    finally:
        sched.shutdown()


def test_every_admin_command_reports_an_unreachable_redis_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = "redis://127.0.0.1:1"
    for args in (
        ["stats"], ["queue", "ls"], ["queue", "inspect", "q"],
        ["task", "ls", "-q", "q", "-s", "pending"],
        ["task", "inspect", "-q", "q", "-i", "x"], ["group", "ls", "-q", "q"], ["server", "ls"],
        ["cron", "ls"], ["task", "cancel", "x"], ["task", "run", "-q", "q", "-i", "x"],
        ["queue", "pause", "q"], ["queue", "rm", "q", "-f"], ["task", "deleteall", "-q", "q", "-s",
        "pending"], ["task", "enqueue", "-t", "x"],
    ):  # fmt: skip
        code, out, err = cli(capsys, url, *args)
        assert code == 1, args
        assert len(err.strip().splitlines()) == 1 and "127.0.0.1:1" in err, (args, err)
        assert "Traceback" not in err and out == ""


def test_redis_url_comes_from_the_environment(
    redis_url: str,
    client: Client,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    seed(client)
    monkeypatch.setenv("REDIS_URL", redis_url)
    assert main(["queue", "ls", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == ["batch", "critical", "default"]


@pytest.mark.parametrize("shell", ["bash", "zsh", "tcsh"])
def test_completion_scripts_know_the_commands(
    shell: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["completion", shell]) == 0
    script = capsys.readouterr().out
    # tcsh's completion knows commands only; bash and zsh know the flags too.
    for word in ("worker", "archiveall", "history") + (("--json",) if shell != "tcsh" else ()):
        assert word in script


def test_bash_completion_completes_a_subcommand() -> None:
    script = subprocess.run(
        [sys.executable, "-m", "ferroq", "completion", "bash"], capture_output=True, text=True,
        check=True, cwd=ROOT,
    ).stdout  # fmt: skip
    probe = (
        script + '\nCOMP_WORDS=(ferroq task arc); COMP_CWORD=2; COMP_LINE="ferroq task arc"; '
        'COMP_POINT=${#COMP_LINE}; _shtab_ferroq; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True).stdout
    assert "archive" in out.split() and "archiveall" in out.split()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return str(resp.read().decode())


def test_metrics_exporter_serves_asynqs_names(redis_url: str, client: Client) -> None:
    seed(client)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ferroq", "metrics", "--port", str(port), "--addr", "127.0.0.1",
         "--redis", redis_url, "--memory"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        text = wait_until(lambda: _try_scrape(port), timeout=20)
        assert 'asynq_queue_size{queue="critical"} 3.0' in text
        assert 'asynq_tasks_enqueued_total{queue="default",state="scheduled"} 1.0' in text
        assert 'asynq_tasks_processed_total{queue="critical"} 0.0' in text
        assert 'asynq_queue_paused_total{queue="batch"} 0.0' in text
        assert 'asynq_queue_memory_usage_approx_bytes{queue="critical"}' in text
        assert "asynq_queue_latency_seconds" in text and "ferroq_exporter_up 1.0" in text
    finally:
        proc.terminate()
        proc.wait(10)


def _try_scrape(port: int) -> str | None:
    try:
        return scrape(port)
    except OSError:
        return None


def test_metrics_exporter_refuses_an_unreachable_redis() -> None:
    p = subprocess.run(
        [sys.executable, "-m", "ferroq", "metrics", "--port", "0", "--redis", "redis://127.0.0.1:1"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert p.returncode == 1 and "127.0.0.1:1" in p.stderr and "Traceback" not in p.stderr


def test_worker_serves_its_own_metrics(redis_url: str, client: Client, r: redis.Redis) -> None:
    port = free_port()
    for i in range(5):
        client.enqueue(Task("ok:sync", str(i).encode()))
    # No handler for it, no retries: archived.
    client.enqueue(Task("unknown"), max_retry=0)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ferroq", "worker", "tests.apps:mux", "--redis", redis_url,
         "--metrics-port", str(port), "--metrics-addr", "127.0.0.1", "--task-check-interval",
         "0.05"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:

        def done() -> str | None:
            text = _try_scrape(port)
            ok = 'outcome="succeeded",queue="default",server='
            return text if text and ok in text and "ok:sync" in text and "unknown" in text else None

        text = wait_until(done, timeout=30)
        samples = {
            line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("ferroq_")
        }
        ok = [
            v
            for k, v in samples.items()
            if k.startswith("ferroq_tasks_total{") and 'type="ok:sync"' in k and "succeeded" in k
        ]
        bad = [
            v
            for k, v in samples.items()
            if k.startswith("ferroq_tasks_total{") and 'type="unknown"' in k and "archived" in k
        ]
        assert (ok, bad) == ([5.0], [1.0])
        counts = [
            v
            for k, v in samples.items()
            if k.startswith("ferroq_task_duration_seconds_count{") and "ok:sync" in k
        ]
        assert counts == [5.0]
        assert "ferroq_tasks_in_flight{" in text and "ferroq_lease_renewals_total" in text
    finally:
        proc.terminate()
        proc.wait(15)


def test_in_process_worker_metrics(client: Client, make_server: MakeServer) -> None:
    mux = ServeMux()
    mux.handle("ok", lambda t: None)

    def skip(task: Task) -> None:
        raise SkipRetry("no")

    mux.handle("skip", skip)
    for _ in range(4):
        client.enqueue(Task("ok"))
    client.enqueue(Task("skip"), queue="low")
    srv = make_server(queues={"default": 1, "low": 1})
    srv.start(mux)

    def rows() -> dict[tuple[str, str], Any] | None:
        m = srv.metrics()
        got = {(t.queue, t.task_type): t for t in m.tasks}
        ok = got.get(("default", "ok"))
        return got if ok and ok.outcomes["succeeded"] == 4 and ("low", "skip") in got else None

    got = wait_until(rows)
    ok, sk = got[("default", "ok")], got[("low", "skip")]
    assert ok.outcomes == {
        "succeeded": 4, "retried": 0, "archived": 0, "revoked": 0, "requeued": 0, "dropped": 0,
    }  # fmt: skip
    assert ok.duration_count == 4
    assert ok.duration_buckets[-1] == 4 and ok.duration_buckets == sorted(ok.duration_buckets)
    assert (sk.outcomes["archived"], sk.outcomes["succeeded"]) == (1, 0)
    from ferroq.metrics import WorkerMetricsCollector

    families = {f.name: f for f in WorkerMetricsCollector(srv).collect()}
    assert set(families) >= {
        "ferroq_task_duration_seconds",
        "ferroq_tasks",
        "ferroq_tasks_in_flight",
    }
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for s in families["ferroq_tasks"].samples
    }
    key = ("ferroq_tasks_total", tuple(sorted(
        {"server": srv.server_id, "queue": "default", "type": "ok", "outcome": "succeeded"}.items()
    )))  # fmt: skip
    assert samples[key] == 4


def test_the_grafana_dashboard_queries_only_exported_metrics(
    client: Client, make_server: MakeServer, redis_url: str
) -> None:
    """Every metric the dashboard's queries name is one the collectors export."""
    from prometheus_client import CollectorRegistry, generate_latest

    from ferroq import Inspector
    from ferroq.metrics import QueueMetricsCollector, WorkerMetricsCollector

    client.enqueue(Task("ok"))
    srv = make_server()
    srv.start(lambda t: None)
    wait_until(lambda: srv.metrics().tasks)
    reg = CollectorRegistry()
    exported: set[str] = set()
    with Inspector(redis_url) as insp:
        reg.register(QueueMetricsCollector(insp, memory=True))
        reg.register(WorkerMetricsCollector(srv))
        assert "asynq_queue_size" in generate_latest(reg).decode()
        # Every family, with or without samples yet (no task was recovered here).
        for family in reg.collect():
            suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
            exported |= {family.name + s for s in suffixes.get(family.type, [""])}
    dash = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    named = set()
    for panel in dash["panels"]:
        for target in panel["targets"]:
            named |= set(re.findall(r"\b((?:asynq|ferroq)_[a-z_]+)", target["expr"]))
    assert named, "the dashboard names no metric"
    assert named <= exported, named - exported
    # asynqmon's charts query these exact names.
    assert {
        "asynq_queue_size", "asynq_queue_latency_seconds", "asynq_queue_memory_usage_approx_bytes",
        "asynq_tasks_processed_total", "asynq_tasks_failed_total", "asynq_tasks_enqueued_total",
    } <= exported  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["task", "ls", "-q", "q", "-s", "bogus"], "invalid state 'bogus'"),
        (["task", "ls", "-s", "pending"], "required: --queue"),
        (["queue"], "required: ACTION"),
        (["queue", "history", "q", "-x", "0"], "expected 1 or more"),
        (["task", "enqueue", "-t", "x", "--process-at", "tomorrow"], "RFC 3339"),
        (["metrics", "--port", "70000"], "port from 0 to 65535"),
        (["completion", "fish"], "invalid choice: 'fish'"),
        (["nosuchcommand"], "invalid choice"),
    ],
)
def test_a_bad_argument_is_one_line_and_exit_2(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert len(err.strip().splitlines()) == 1 and says in err, err


def test_scheduler_command_takes_redis(redis_url: str, r: redis.Redis) -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ferroq", "scheduler", "tests.apps:scheduler", "--redis", redis_url],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_until(lambda: r.zcard("asynq:schedulers") > 0, timeout=20)
        wait_until(lambda: r.llen(qkey("ticks", "pending")) > 0, timeout=20)
    finally:
        proc.terminate()
        proc.wait(15)
