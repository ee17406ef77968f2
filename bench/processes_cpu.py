"""Where the CPU goes when ``ferroq worker --processes N`` runs no-op tasks, beside N = 1.

Run: ``python bench/processes_cpu.py [--tasks 200000] [--rounds 5] [--config 1 --config 2
--config 2:FERROQ_SPIN_US=0]`` (``make bench-processes-cpu`` writes the table to
``bench/processes-cpu.md``; progress goes to stderr). ``--config 1@/other/venv/bin/python``
runs that configuration's worker under another build of ferroq, for a before/after table of
the processing path measured in one run (``compare.py --before-rev`` builds one).

Starts one private Redis (no persistence) and, for every round and configuration in turn
(interleaved, to spread the machine's drift over all of them): flushes it, enqueues ``--tasks``
no-op tasks on ``default`` with ``Client.enqueue_many``, and starts ``ferroq worker
ferroq_workload:mux --processes N --concurrency C`` (the same worker as the peer table's
``ferroq-2proc`` row, ``bench/peers/ferroq_workload.py``). asynq's processed counter is polled
every 2 ms. Between 10 % and 90 % of the tasks done (start-up and the last stragglers left out)
it measures:

- the rate, tasks/s;
- the workers' CPU per task (the supervisor and its children, all threads, from ``/proc``);
- Redis's CPU per task (``INFO cpu``, user + system);
- the whole machine's busy CPUs (``/proc/stat``: everything that is not idle or iowait), which
  says whether a second process had a core to use.

A configuration is ``N[@PYTHON][:VAR=value[,VAR=value]]``: N processes, the interpreter the
worker runs under (this one by default) and environment for the worker. The table gives
medians and ranges, and each rate's ratio to the first configuration's.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from compare import cpu_model, private_redis, redis_cpu
from ferroq import Client, Task

PEERS = Path(__file__).resolve().parent / "peers"
PROCESSED = "asynq:{default}:processed"
TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Config:
    """One worker configuration and what was measured with it."""

    processes: int
    env: dict[str, str]
    python: str = ""  # the worker's interpreter as the command line gave it ("": this one)
    rate: list[float] = field(default_factory=list)
    worker_us: list[float] = field(default_factory=list)
    redis_us: list[float] = field(default_factory=list)
    busy: list[float] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> Config:
        head, _, env = text.partition(":")
        n, _, python = head.partition("@")
        pairs = [kv.split("=", 1) for kv in env.split(",") if kv]
        if not n.isdigit() or int(n) < 1 or any(len(kv) != 2 for kv in pairs) or "@" in python:
            raise argparse.ArgumentTypeError(f"{text!r}: want N[@PYTHON][:VAR=value[,VAR=value]]")
        if python and not os.access(python, os.X_OK):
            raise argparse.ArgumentTypeError(f"{text!r}: {python} is not an executable")
        return cls(int(n), dict((k, v) for k, v in pairs), python)

    @property
    def interpreter(self) -> str:
        """The Python the worker runs under."""
        return self.python or sys.executable

    @property
    def label(self) -> str:
        env = ", ".join(f"{k}={v}" for k, v in self.env.items())
        python = f" under `{self.python}`" if self.python else ""
        return f"{self.processes} process{'es' if self.processes > 1 else ''}{python}" + (
            f", {env}" if env else ""
        )


def tree(root: int) -> list[int]:
    """``root`` and its descendants, from each process's parent in ``/proc``."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += [p for p, pp in parents.items() if pp == pid]
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of ``pids`` (all their threads), in seconds."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICK


def machine_busy() -> float:
    """Busy CPU seconds of the whole machine since boot: all but idle and iowait, up to steal
    (guest time is already counted in user)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / TICK


def one_run(url: str, config: Config, n: int, concurrency: int) -> None:
    """Measures ``config`` once on a fresh backlog of ``n`` tasks."""
    r = redis.Redis.from_url(url)
    r.flushdb()
    with Client(url) as client:
        for i in range(0, n, 1000):
            client.enqueue_many([Task("noop", b'{"data": 0}') for _ in range(min(1000, n - i))])
    env = {**os.environ, "PYTHONPATH": str(PEERS), "FERROQ_BENCH_SCENARIO": "simple", **config.env}
    cmd = [config.interpreter, "-m", "ferroq", "worker", "ferroq_workload:mux", "--redis", url]
    cmd += ["--processes", str(config.processes), "--concurrency", str(concurrency)]
    sup = subprocess.Popen([*cmd, "--log-level", "warning"], env=env)
    try:
        marks = []
        for goal in (n // 10, n - n // 10):
            deadline = time.monotonic() + 300
            while int(r.get(PROCESSED) or 0) < goal:
                if sup.poll() is not None:
                    raise RuntimeError(f"the worker exited {sup.returncode} before {goal} tasks")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{goal} tasks not done in 300 s")
                time.sleep(0.002)
            done = int(r.get(PROCESSED) or 0)
            workers = cpu_seconds(tree(sup.pid))
            marks.append((time.perf_counter(), done, workers, redis_cpu(url), machine_busy()))
    finally:
        sup.send_signal(signal.SIGTERM)
        sup.wait(60)
        r.close()
    (t0, d0, w0, r0, b0), (t1, d1, w1, r1, b1) = marks
    tasks = d1 - d0
    config.rate.append(tasks / (t1 - t0))
    config.worker_us.append((w1 - w0) * 1e6 / tasks)
    config.redis_us.append((r1 - r0) * 1e6 / tasks)
    config.busy.append((b1 - b0) / (t1 - t0))


def cell(values: list[float], fmt: str) -> str:
    med = fmt.format(statistics.median(values))
    return f"{med} ({fmt.format(min(values))}\N{EN DASH}{fmt.format(max(values))})"


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--tasks", type=int, default=200_000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--concurrency", type=int, default=64, help="each worker process's")
    p.add_argument(
        "--config", type=Config.parse, action="append", help="N[@PYTHON][:VAR=value,...]"
    )
    a = p.parse_args()
    configs: list[Config] = a.config or [Config.parse("1"), Config.parse("2")]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with private_redis() as (url, server):
        version = subprocess.run([server, "--version"], capture_output=True, text=True).stdout
        for rnd in range(a.rounds):
            for config in configs:
                one_run(url, config, a.tasks, a.concurrency)
                print(
                    f"round {rnd + 1}/{a.rounds} {config.label}: {config.rate[-1]:,.0f} tasks/s",
                    file=sys.stderr,
                    flush=True,
                )
    base = statistics.median(configs[0].rate)
    print(f"# Where the CPU goes with `--processes` — {started}\n")
    print(f"- Command: `python {' '.join(sys.argv)}`")
    print(
        f"- Machine: {platform.machine()}, {os.cpu_count()} CPUs ({cpu_model()}); Python "
        f"{platform.python_version()}; {version.split(' sha=')[0].strip()} (private, loopback)"
    )
    print(
        f"- {a.tasks:,} no-op tasks per run on one queue, concurrency {a.concurrency} per "
        f"process, {a.rounds} interleaved rounds; measured from 10 % to 90 % of the tasks done.\n"
    )
    print(
        "| workers | tasks/s | vs first | workers' CPU, µs/task | Redis CPU, µs/task "
        "| machine busy, CPUs |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for c in configs:
        ratio = statistics.median(c.rate) / base
        cells = [cell(c.rate, "{:,.0f}"), f"{ratio:.2f}x", cell(c.worker_us, "{:.1f}")]
        cells += [cell(c.redis_us, "{:.1f}"), cell(c.busy, "{:.2f}")]
        print(f"| {c.label} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
