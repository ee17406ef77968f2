"""Peer comparison: ferroq against Celery, RQ, arq, Dramatiq, Huey, SAQ, taskiq and Go asynq.

Run: ``python bench/peers/run.py --tasks 10000 --runs 3 [--only celery,rq] [--scenarios
simple,mixed]`` or ``--smoke``.

For each scenario (``simple``, ``mixed``, ``weighted``: asynq's three end-to-end benchmarks,
defined in ``_common.py``) and each peer, on a private ``redis-server`` (loopback, no
persistence, FLUSHALL before every run), each run:

1. *enqueue*: the peer's producer enqueues ``--tasks`` no-op tasks, one library call per task;
2. *process*: the peer's worker (one process unless the config column says otherwise) is
   started on that backlog and runs until every task has finished.

ferroq is measured the same way (``peer_ferroq.py``, in the interpreter ferroq is installed in),
and every table gives each peer's rate as a ratio to ferroq's.

Both numbers are taken inside the peer's own processes (``_common.py``, ``asynq/main.go``), not
here: the orchestrator would also count interpreter start-up and imports, and polling Redis
from outside cannot tell a prefetched message from a finished one. The process number runs from
the worker's start call to the last task's completion, so worker start-up is included, as in
asynq's own BenchmarkEndToEndSimple and ``bench/throughput.py``; the "first task" column shows
how much of it that is. Each table cell is the median of ``--runs`` runs.

Each Python peer runs in its own venv under ``~/.cache/ferroq-bench/venvs/<peer>`` (reused while
its pinned requirements are unchanged); the Go peer is built once into ``~/.cache/ferroq-bench``.
This script needs only the standard library. At the end it runs ``bench/throughput.py`` (ferroq)
against the same Redis for the measures only ferroq is put through (pipelined enqueue, the
async handler, round trip, idle CPU), so one command produces the whole comparison.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from _common import DEFAULT_SCENARIOS, RESULT_PREFIX, SCENARIOS  # the peers' end

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CACHE = Path(os.environ.get("FERROQ_BENCH_CACHE", Path.home() / ".cache" / "ferroq-bench"))
HIREDIS = "hiredis==3.5.0"  # C reply parser, picked up by redis-py when present: the fast path
# One tuple for both rows of a peer: they share a venv, which is rebuilt when its pins change.
DRAMATIQ = ("dramatiq[redis]==2.2.1", "redis==8.1.0", HIREDIS)
CELERY = ("celery[redis]==5.7.0", "kombu==5.7.0", "redis==8.1.0", HIREDIS)
SMOKE_PEERS = ("ferroq", "huey", "rq", "asynq")  # small installs, quick runs


@dataclass(frozen=True)
class Peer:
    """One row of the table: which venv, which module, and the tuned arguments for each role."""

    name: str
    venv: str  # venv directory name; variants of one peer share it ("" for the Go peer)
    requirements: tuple[str, ...]
    module: str  # peer_*.py, or "asynq" for the Go program; ferroq runs in --ferroq-python
    produce_args: tuple[str, ...] = ()
    work_args: tuple[str, ...] = ()
    note: str = ""  # why this config, shown under the table
    # Fewer tasks than --tasks for a peer so slow that the full count would take minutes per run
    # (its start-up is milliseconds, so the rate does not depend on the count).
    max_tasks: int | None = None


# The tuned configs: each was the fastest one-process setting in a sweep on the 2-core machine
# (the notes say what else was tried). Variants outside the one-process rule are extra rows.
PEERS: tuple[Peer, ...] = (
    Peer(
        "celery",
        "celery",
        CELERY,
        "peer_celery.py",
        work_args=("--pool", "solo", "--concurrency", "1", "--prefetch", "4"),
        note="solo pool; threads (2-8), prefork (1-2 children), prefetch 1-100: no faster",
    ),
    Peer(
        "celery-prefork2",
        "celery",
        CELERY,
        "peer_celery.py",
        work_args=("--pool", "prefork", "--concurrency", "2", "--prefetch", "4"),
        note="outside the one-process rule: prefork pool with 2 children (1+2 processes)",
    ),
    Peer(
        "rq",
        "rq",
        ("rq==3.0.0", "redis==8.1.0", HIREDIS),
        "peer_rq.py",
        produce_args=("--result-ttl", "0"),
        work_args=("--worker", "simple"),
        note="SimpleWorker in burst mode; the default Worker spawns a process per job;"
        " 3,000 tasks per run (at ~250 tasks/s, 10,000 would take 40 s per run and scenario;"
        " its first task runs after ~10 ms, so the count does not change the rate)",
        max_tasks=3_000,
    ),
    Peer(
        "arq",
        "arq",
        ("arq==0.28.0", "redis==5.3.1", HIREDIS),  # arq 0.28 requires redis<6
        "peer_arq.py",
        work_args=("--max-jobs", "10", "--poll-delay", "0.01"),
        note="poll_delay 0.01 s: the default 0.5 s idles between batches; max_jobs 10-1000 alike",
    ),
    Peer(
        "dramatiq",
        "dramatiq",
        DRAMATIQ,
        "peer_dramatiq.py",
        work_args=("--threads", "2", "--prefetch", "100"),
        note="dramatiq_queue_prefetch=100: the default (2 x threads) refetches too often;"
        " 1-16 threads tried",
    ),
    Peer(
        "dramatiq-2proc",
        "dramatiq",
        DRAMATIQ,
        "peer_dramatiq.py",
        work_args=("--processes", "2", "--threads", "2", "--prefetch", "100"),
        note="outside the one-process rule: the setting the performance issue quotes",
    ),
    Peer(
        "huey",
        "huey",
        ("huey==3.5.4", "redis==8.1.0", HIREDIS),
        "peer_huey.py",
        work_args=("--workers", "2", "--worker-type", "thread"),
        note="2-3 threads beat 1 (one waits on Redis while the other runs); 4 no better",
    ),
    Peer(
        "saq",
        "saq",
        # saq 0.26.4 imports typing_extensions without declaring it.
        ("saq==0.26.4", "typing_extensions==4.16.0", "redis==8.1.0", HIREDIS),
        "peer_saq.py",
        work_args=("--concurrency", "20"),
        note="concurrency 10-100 tried",
    ),
    Peer(
        "taskiq",
        "taskiq",
        ("taskiq==0.13.0", "taskiq-redis==1.2.4", "redis==8.1.0", HIREDIS),
        "peer_taskiq.py",
        produce_args=("--broker", "stream"),
        work_args=("--broker", "stream", "--max-async-tasks", "100"),
        note="RedisStreamBroker (acks); ListQueueBroker (no acks) was no faster",
    ),
    Peer(
        "asynq",
        "",
        (),
        "asynq",
        note="mirrors asynq's benchmark_test.go (defaults, Concurrency 10)",
    ),
    Peer(
        "asynq-c64",
        "",
        (),
        "asynq",
        work_args=("-concurrency", "64"),
        note="at ferroq's concurrency (64)",
    ),
    Peer(
        "ferroq",
        "",
        (),
        "peer_ferroq.py",
        note="defaults (5 s delayed-task check, but announced scheduled tasks and retries are"
        " forwarded when due); concurrency 64",
    ),
    Peer(
        "ferroq-async",
        "",
        (),
        "peer_ferroq.py",
        work_args=("--handler", "async"),
        note="the same with an async def handler",
    ),
    Peer(
        "ferroq-2proc",
        "",
        (),
        "peer_ferroq.py",
        work_args=("--processes", "2"),
        note="outside the one-process rule: `ferroq worker --processes 2` (two spawned"
        " interpreters, each concurrency 64; their start-up is timed)",
    ),
    Peer(
        "ferroq-c10",
        "",
        (),
        "peer_ferroq.py",
        work_args=("--concurrency", "10"),
        note="at asynq's benchmark concurrency (10)",
    ),
)
FERROQ = "ferroq"  # the row every ratio is taken against


@dataclass
class Row:
    """Collected numbers for one peer (or the reason it has none)."""

    peer: Peer
    scenario: str = "simple"
    version: str = ""
    config: str = ""
    enqueue: list[float] = field(default_factory=list)
    process: list[float] = field(default_factory=list)
    first_ms: list[float] = field(default_factory=list)
    # Tasks per second after the first one finished: the rate without the worker's start-up
    # (which a spawned multi-process worker pays once per process).
    steady: list[float] = field(default_factory=list)
    failed: str = ""
    unsupported: str = ""  # the peer has no such feature (why)


class Failure(Exception):
    """A peer could not be set up or measured; the message goes into the table."""


# --- Redis ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ping_rtt_us(port: int, n: int = 5000) -> float:
    """Mean loopback round trip of PING on one connection, in microseconds.

    The floor under every one-call-per-task number in the report: no client can enqueue one
    task at a time faster than one round trip each. It drifts on a shared VM, so it is measured
    with the run, not assumed.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t0 = time.perf_counter()
        for _ in range(n):
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            reply = b""
            while not reply.endswith(b"\r\n"):
                reply += s.recv(64)
        return (time.perf_counter() - t0) / n * 1e6


def redis_command(port: int, *args: str) -> bytes:
    """One command, one reply line: enough for PING and FLUSHALL without a client library."""
    payload = f"*{len(args)}\r\n" + "".join(f"${len(a)}\r\n{a}\r\n" for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(payload.encode())
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
    if reply.startswith(b"-"):
        raise RuntimeError(f"redis {args[0]}: {reply.decode().strip()}")
    return reply.strip()


@contextlib.contextmanager
def redis_server() -> Iterator[int]:
    """A private redis-server on a free loopback port, without persistence."""
    port = free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if redis_command(port, "PING") == b"+PONG":
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


# --- Setup ---------------------------------------------------------------------------------


def ensure_venv(peer: Peer, python: str) -> Path:
    """Create or refresh the peer's venv; skipped while its requirements are unchanged."""
    venv = CACHE / "venvs" / peer.venv
    marker = venv / ".ferroq-bench-requirements"
    wanted = "\n".join(peer.requirements) + "\n"
    py = venv / "bin" / "python"
    if py.exists() and marker.exists() and marker.read_text() == wanted:
        return py
    log(f"setup: {peer.venv} venv ({' '.join(peer.requirements)})")
    try:
        if not py.exists():
            subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=300)
        cmd = [str(py), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
        subprocess.run([*cmd, *peer.requirements], check=True, timeout=900)
    except (subprocess.SubprocessError, OSError) as e:
        raise Failure(f"venv setup failed: {e}") from e
    marker.write_text(wanted)
    return py


def ensure_asynq() -> Path:
    """Build the Go peer once per source version (GOFLAGS=-mod=mod resolves go.sum as needed)."""
    src = HERE / "asynq"
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "main.go"):
        if (src / name).exists():
            digest.update((src / name).read_bytes())
    binary = CACHE / f"asynq-bench-{digest.hexdigest()[:12]}"
    if binary.exists():
        return binary
    if shutil.which("go") is None:
        raise Failure("go toolchain not found")
    log("setup: building the asynq peer")
    CACHE.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GOFLAGS": "-mod=mod"}
    try:
        subprocess.run(
            ["go", "build", "-o", str(binary), "."],
            cwd=src,
            env=env,
            check=True,
            timeout=600,
            capture_output=True,
            text=True,
        )
    except subprocess.CalledProcessError as e:
        raise Failure(f"go build failed: {last_line(e.stderr)}") from e
    except subprocess.SubprocessError as e:
        raise Failure(f"go build failed: {e}") from e
    return binary


# --- Running -------------------------------------------------------------------------------


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def last_line(text: str | None) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1][:200] if lines else "no output"


def run_role(role: str, cmd: Sequence[str], timeout: float) -> dict[str, object]:
    """Run one role in its own process group; return its result line, or raise Failure.

    The group is killed afterwards in every case: workers exit without a graceful shutdown, and
    forked pool children must not keep consuming during the next run.
    """
    proc = subprocess.Popen(
        cmd,
        cwd=HERE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise Failure(f"{role}: timeout after {timeout:.0f} s") from None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    for line in out.splitlines():
        if line.startswith(RESULT_PREFIX):
            result: dict[str, object] = json.loads(line[len(RESULT_PREFIX) :])
            return result
    raise Failure(f"{role}: exit {proc.returncode}: {last_line(err)}")


def number(result: dict[str, object], key: str) -> float:
    value = result.get(key)
    if not isinstance(value, int | float):
        raise Failure(f"result has no {key}")
    return float(value)


def commands(
    peer: Peer, port: int, tasks: int, scenario: str, python: str, ferroq_python: str
) -> tuple[list[str], list[str]]:
    """Set the peer up (venv or Go build) and return its producer and worker command lines."""
    tasks = min(tasks, peer.max_tasks or tasks)
    if peer.module == "asynq":
        base = [str(ensure_asynq()), "-addr", f"127.0.0.1:{port}", "-tasks", str(tasks)]
        base += ["-scenario", scenario]
        produce = [*base, "-role", "produce", *peer.produce_args]
        work = [*base, "-role", "work", *peer.work_args]
    else:
        py = ferroq_python if peer.module == "peer_ferroq.py" else str(ensure_venv(peer, python))
        base = [py, peer.module]
        opts = ["--url", f"redis://127.0.0.1:{port}/0", "--tasks", str(tasks)]
        opts += ["--scenario", scenario]
        produce = [*base, "produce", *opts, *peer.produce_args]
        work = [*base, "work", *opts, *peer.work_args]
    return produce, work


def measure_once(row: Row, produce: list[str], work: list[str], port: int, timeout: float) -> None:
    """One run: flush, enqueue the backlog, process it; a failure marks the row."""
    name = f"{row.peer.name}/{row.scenario}"
    try:
        redis_command(port, "FLUSHALL")
        p = run_role("enqueue", produce, timeout)
        if p.get("role") == "unsupported":
            row.unsupported = str(p.get("reason", "not supported"))
            log(f"{name:24s} n/a: {row.unsupported}")
            return
        w = run_role("process", work, timeout)
        row.enqueue.append(number(p, "rate"))
        row.process.append(number(w, "rate"))
        row.first_ms.append(number(w, "first_ms"))
        n = number(w, "tasks")
        row.steady.append(n / max(n / row.process[-1] - row.first_ms[-1] / 1000, 1e-9))
    except Failure as e:
        row.failed = str(e)
        log(f"{name:24s} failed: {e}")
        return
    row.version = str(w.get("version", ""))
    row.config = f"{w.get('config', '')}; enqueue: {p.get('config', '')}"
    log(
        f"{name:24s} run {len(row.process)}: enqueue {row.enqueue[-1]:>8,.0f}/s"
        f"  process {row.process[-1]:>8,.0f}/s"
    )


def measure_all(
    peers: Sequence[Peer],
    scenarios: Sequence[str],
    port: int,
    args: argparse.Namespace,
) -> list[Row]:
    """Set every peer up, then run round-robin: run 1 of each peer, then run 2, and so on.

    On a shared VM the machine's speed drifts over minutes; interleaving spreads that drift
    over all peers instead of handicapping whichever peer happens to run during a slow spell.
    """
    rows = [Row(peer, scenario) for scenario in scenarios for peer in peers]
    cmds: dict[tuple[str, str], tuple[list[str], list[str]]] = {}
    for row in rows:
        try:
            cmds[row.peer.name, row.scenario] = commands(
                row.peer, port, args.tasks, row.scenario, args.python, args.ferroq_python
            )
        except Failure as e:
            row.failed = str(e)
            log(f"{row.peer.name:15s} failed: {e}")
    for _ in range(args.runs):
        for row in rows:
            if not row.failed and not row.unsupported:
                measure_once(row, *cmds[row.peer.name, row.scenario], port, args.timeout)
    return rows


def ferroq_extras(port: int, tasks: int, python: str, timeout: float) -> tuple[bool, str]:
    """Run bench/throughput.py on the same Redis: the measures only ferroq is put through.

    Returns whether it succeeded, and its output or why it failed.
    """
    redis_command(port, "FLUSHALL")
    env = {**os.environ, "REDIS_URL": f"redis://127.0.0.1:{port}/0"}
    cmd = [python, str(REPO / "bench" / "throughput.py"), "--tasks", str(tasks)]
    log(f"ferroq: {' '.join(cmd[1:])}")
    try:
        done = subprocess.run(
            cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return False, f"bench/throughput.py: timeout after {timeout:.0f} s\n"
    if done.returncode != 0:
        return False, f"bench/throughput.py: exit {done.returncode}: {last_line(done.stderr)}\n"
    return True, done.stdout


# --- Report --------------------------------------------------------------------------------


def fmt_rate(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f}" if values else ""


def ratio(row: Row, reference: Row | None) -> str:
    """How many times the reference (ferroq) processes faster than this row: "12.3x"."""
    if reference is None or row is reference or not row.process or not reference.process:
        return ""
    return f"{statistics.median(reference.process) / statistics.median(row.process):,.1f}x"


def table(rows: list[Row]) -> str:
    """One scenario's rows as a markdown table, with each peer's ratio against ferroq."""
    reference = next((r for r in rows if r.peer.name == FERROQ and r.process), None)
    head = (
        "| peer | version | config | enqueue tasks/s | process tasks/s | ferroq is |"
        " process min-max | first task ms | after the first, tasks/s |\n"
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n"
    )
    lines = []
    for r in rows:
        if r.unsupported:
            lines.append(f"| {r.peer.name} | {r.version} | n/a: {r.unsupported} | | | | | | |")
            continue
        if r.failed:
            lines.append(f"| {r.peer.name} | {r.version} | failed: {r.failed} | | | | | | |")
            continue
        spread = f"{min(r.process):,.0f}-{max(r.process):,.0f}" if len(r.process) > 1 else ""
        first = f"{statistics.median(r.first_ms):,.0f}" if r.first_ms else ""
        lines.append(
            f"| {r.peer.name} | {r.version} | {r.config} | {fmt_rate(r.enqueue)} |"
            f" {fmt_rate(r.process)} | {ratio(r, reference)} | {spread} | {first} |"
            f" {fmt_rate(r.steady)} |"
        )
    return head + "\n".join(lines) + "\n"


SCENARIO_TITLES = {
    "simple": "simple: every task ready on one queue (asynq's BenchmarkEndToEndSimple)",
    "mixed": "mixed: half ready, half scheduled in 1 s, 1 % fail once and retry after 1 s"
    " (asynq's BenchmarkEndToEnd)",
    "weighted": "weighted: a third each on queues high/default/low, weights 6/3/1"
    " (asynq's BenchmarkEndToEndMultipleQueues)",
    "cpu": "cpu: as simple, each task first runs ~0.5 ms of pure-Python work"
    " (`_common.burn`, CPU-bound: one process is bound by its GIL)",
}


def machine() -> str:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = " (" + line.split(":", 1)[1].strip() + ")"
                break
    redis = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
    redis_v = re.search(r"v=(\S+)", redis)
    go = shutil.which("go")
    go_v = subprocess.run([go, "version"], capture_output=True, text=True).stdout if go else ""
    return (
        f"{platform.machine()}, {os.cpu_count()} CPUs{model}, Linux {platform.release()}; "
        f"Python {platform.python_version()}; redis-server {redis_v[1] if redis_v else '?'}"
        f" (private, loopback, no persistence); {' '.join(go_v.split()[2:3]) or 'no go'}"
    )


def report(
    rows: list[Row],
    args: argparse.Namespace,
    command: str,
    ferroq_out: str,
    load: float,
    rtt: tuple[float, float],
) -> str:
    """The markdown report: conditions, one table per scenario, config notes, ferroq extras."""
    peers = {r.peer.name: r.peer for r in rows}  # one note per peer, not per scenario
    notes = "\n".join(f"- {name}: {peer.note}" for name, peer in peers.items() if peer.note)
    out = [
        f"# Peer comparison — {time.strftime('%Y-%m-%d %H:%M')}",
        "",
        f"- Command: `{command}`",
        f"- Machine: {machine()}; 1-minute load average before the run: {load:.2f}",
        f"- Loopback PING round trip (one connection, blocking raw socket): {rtt[0]:.0f} µs"
        f" before the run, {rtt[1]:.0f} µs after, so {1e6 / max(rtt):,.0f}-{1e6 / min(rtt):,.0f}"
        " calls/s for a client that sleeps while it waits; ferroq's core polls the socket"
        " instead (README, Connections) and Go's runtime spins before it parks, so both can"
        " enqueue faster than that.",
        f"- {args.tasks:,} no-op tasks per run (fewer where a peer's note says so), median of"
        f" {args.runs} run(s) per peer and scenario, runs interleaved; one worker process unless"
        " the config says otherwise; no task results stored.",
        "- enqueue: one library call per task from one process (asyncio peers: one awaited call"
        " at a time). process: worker start call → last task finished, on the pre-enqueued"
        " backlog; timed inside the peer's processes. first task: worker start → first task"
        " finished (start-up cost included in the process rate). ferroq is: ferroq's process"
        " rate divided by the peer's. after the first: the tasks over the time from the first"
        " task's end to the last's (the rate once started).",
        "",
    ]
    for scenario in dict.fromkeys(r.scenario for r in rows):
        out += [
            f"## {SCENARIO_TITLES[scenario]}",
            "",
            table([r for r in rows if r.scenario == scenario]),
        ]
    out += ["Config notes:", "", notes]
    if ferroq_out:
        out += [
            "",
            "ferroq alone, `bench/throughput.py` on the same Redis:",
            "",
            "```",
            ferroq_out.rstrip(),
            "```",
        ]
    return "\n".join(out) + "\n"


RESULTS = REPO / "bench" / "RESULTS.md"
BEGIN, END = "<!-- peers:begin (written by bench/peers/run.py) -->", "<!-- peers:end -->"


def write_section(path: Path, text: str) -> None:
    """Replace the report's section of ``path`` (between BEGIN and END), or append one."""
    body = path.read_text() if path.exists() else ""
    # Every heading of the report goes one level down: it is a section of RESULTS.md.
    lines = [f"#{ln}" if ln.startswith("#") else ln for ln in text.rstrip().splitlines()]
    section = "\n".join([BEGIN, *lines, END])
    if BEGIN in body and END in body:
        head, rest = body.split(BEGIN, 1)
        body = head + section + rest.split(END, 1)[1]
    else:
        body = body.rstrip() + "\n\n" + section + "\n"
    path.write_text(body)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tasks", type=int, default=10_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--only", default="", help="comma-separated peer names (default: all)")
    p.add_argument(
        "--smoke",
        action="store_true",
        help=f"500 tasks, 1 run, {', '.join(SMOKE_PEERS)} only; exit 1 if anything failed",
    )
    p.add_argument(
        "--scenarios",
        default=",".join(DEFAULT_SCENARIOS),
        help=f"comma-separated, from {', '.join(SCENARIOS)} (default: "
        f"{', '.join(DEFAULT_SCENARIOS)})",
    )
    p.add_argument("--timeout", type=float, default=300, help="seconds per producer/worker run")
    p.add_argument("--skip-ferroq", action="store_true", help="do not run bench/throughput.py")
    p.add_argument("--python", default=sys.executable, help="interpreter for the peer venvs")
    default_ferroq = REPO / ".venv" / "bin" / "python"
    p.add_argument(
        "--ferroq-python",
        default=str(default_ferroq) if default_ferroq.exists() else sys.executable,
        help="interpreter with ferroq installed (default: the repo's .venv)",
    )
    p.add_argument(
        "--output",
        type=Path,
        help="write the report to this file instead of its section of bench/RESULTS.md",
    )
    args = p.parse_args()
    command = "python bench/peers/run.py " + shlex.join(sys.argv[1:])
    if args.smoke:
        args.tasks, args.runs = 500, 1
        args.only = args.only or ",".join(SMOKE_PEERS)
    # A smoke run must not overwrite the committed full-size results.
    output: Path | None = args.output or (CACHE / "smoke-run.md" if args.smoke else None)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    known = {peer.name for peer in PEERS}
    if unknown := [n for n in names if n not in known]:
        p.error(f"unknown peer(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    scenarios = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    if bad := [n for n in scenarios if n not in SCENARIOS]:
        p.error(f"unknown scenario(s) {', '.join(bad)}; known: {', '.join(SCENARIOS)}")
    peers = [peer for peer in PEERS if not names or peer.name in names]
    run_extras = not args.skip_ferroq and any(peer.name == FERROQ for peer in peers)

    load = os.getloadavg()[0]
    if load > 0.5:
        log(f"warning: load average {load:.2f} before the run; other work skews the numbers")
    started = time.monotonic()
    ferroq_out = ""
    extras_ok = True
    with redis_server() as port:
        rtt_before = ping_rtt_us(port)
        rows = measure_all(peers, scenarios, port, args)
        if run_extras:
            extras_ok, ferroq_out = ferroq_extras(
                port, args.tasks, args.ferroq_python, 4 * args.timeout
            )
        rtt = (rtt_before, ping_rtt_us(port))
    text = report(rows, args, command, ferroq_out, load, rtt)
    print(text)
    if output is None:
        output = RESULTS
        write_section(RESULTS, text)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
    log(f"wrote {output} in {time.monotonic() - started:.0f} s")
    failed = [f"{r.peer.name}/{r.scenario}" for r in rows if r.failed]
    if not extras_ok:
        failed.append("bench/throughput.py")
    if args.smoke and failed:
        log(f"smoke run failed: {', '.join(failed)}")
        sys.exit(1)


if __name__ == "__main__":
    main()
