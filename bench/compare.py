"""Before/after table: two builds of ferroq measured side by side, in one run, on one Redis.

Build each side into its own virtualenv, or let ``--before-rev`` build a commit of this
repository beside the working tree (a clone under ``~/.cache/ferroq-bench/builds/<commit>``,
reused), then run::

    python bench/compare.py --before-rev 04cf7a5 --after .venv/bin/python [--rounds 5]
    python bench/compare.py --before /path/to/venv/bin/python --after .venv/bin/python

(``make bench-compare REV=<commit>`` runs the first form against ``make dev``'s build.)

It starts one private Redis (``ferroq._embedded.EmbeddedRedis`` from the interpreter running
this script, else ``redis-server`` from PATH), then for every round and scenario runs
``<python> bench/throughput.py --only SCENARIO --json --tasks N`` under the two interpreters
alternately (before then after, after then before in the next round, to cancel drift), and
prints the machine, the commit of each side and a Markdown table of medians and ranges. Around
each run it also reads Redis's own CPU time (``INFO cpu``), reported per task for the sync run
(its enqueue_many phase included): a script change shows there even when the machine's noise
hides it in the throughput. The table also goes to ``--out`` when given. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
THROUGHPUT = BENCH / "throughput.py"
SCENARIOS = ["enqueue", "enqueue_many", "sync", "async", "round_trip", "idle_cpu"]
# (row label, scenario, JSON key, unit, format) in table order.
ROWS = [
    ("enqueue, one call per task", "enqueue", "value", "tasks/s", "{:,.0f}"),
    ("enqueue_many (1000 per call)", "enqueue_many", "value", "tasks/s", "{:,.0f}"),
    ("process, no-op sync handler (concurrency 64)", "sync", "value", "tasks/s", "{:,.0f}"),
    ("process, no-op async handler (concurrency 64)", "async", "value", "tasks/s", "{:,.0f}"),
    ("Redis CPU per task, sync run (enqueue_many + process)", "sync", "redis_us", "µs", "{:.2f}"),
    ("round trip, idle server, p50", "round_trip", "p50", "ms", "{:.3f}"),
    ("round trip, idle server, p99", "round_trip", "p99", "ms", "{:.3f}"),
    ("idle server CPU", "idle_cpu", "value", "% of a core", "{:.2f}"),
]
RUN_TIMEOUT = 600.0
DASH, TIMES = "\N{EN DASH}", "\N{MULTIPLICATION SIGN}"


@dataclass
class Side:
    """One interpreter and the numbers measured under it."""

    label: str
    python: str
    samples: dict[tuple[str, str], list[float]] = field(default_factory=dict)


def child_env(url: str) -> dict[str, str]:
    """This environment with ``REDIS_URL`` set and nothing that could mix the two installs."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["REDIS_URL"] = url
    return env


def run(
    cmd: list[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> str:
    """``cmd``'s stdout without trailing whitespace; raises with its stderr when it fails."""
    proc = subprocess.run(
        cmd, capture_output=True, text=True, check=False, cwd=cwd, env=env, timeout=timeout
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} exited {proc.returncode}:\n{proc.stderr.strip()}")
    return proc.stdout.rstrip()


def redis_cpu(url: str) -> float:
    """Seconds of CPU the Redis at ``url`` (``redis://host:port/...``) has used, user + system."""
    host, _, port = url.split("//", 1)[1].split("/", 1)[0].rpartition(":")
    with socket.create_connection((host, int(port)), timeout=5) as c:
        c.sendall(b"INFO cpu\r\n")
        data = b""
        while len(data) < bulk_length(data):
            chunk = c.recv(65536)
            if not chunk:
                raise RuntimeError(f"{url} closed the connection during INFO")
            data += chunk
    fields = dict(line.split(":", 1) for line in data.decode().splitlines() if ":" in line)
    return float(fields["used_cpu_user"]) + float(fields["used_cpu_sys"])


def bulk_length(data: bytes) -> int:
    """The whole length of the RESP bulk string ``data`` begins, once its header has arrived."""
    head, sep, _ = data.partition(b"\r\n")
    if not sep:
        return len(data) + 1  # read on
    if not head.startswith(b"$"):
        raise RuntimeError(f"INFO answered {head!r}")
    return len(head) + 2 + int(head[1:]) + 2


def ping(port: int) -> bool:
    """Whether a Redis on loopback ``port`` answers PING."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as c:
            c.sendall(b"PING\r\n")
            return c.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def private_redis() -> Iterator[tuple[str, str]]:
    """(url, server binary) of a Redis that lives for the duration, without persistence."""
    try:
        from ferroq._embedded import EmbeddedRedis
    except ImportError:
        pass
    else:
        with EmbeddedRedis() as embedded:
            yield embedded.url, embedded.binary
        return
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("compare.py: cannot import ferroq._embedded and no redis-server on PATH")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="ferroq-compare-") as d:
        cmd = [binary, "--port", str(port), "--bind", "127.0.0.1"]
        cmd += ["--save", "", "--appendonly", "no", "--dir", d]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while True:
                if ping(port):
                    break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{binary} did not start on port {port}")
                time.sleep(0.02)
            yield f"redis://127.0.0.1:{port}/0", binary
        finally:
            proc.terminate()
            proc.wait(10)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware"):
                return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def describe(side: Side) -> str:
    """``before: <python> (Python 3.11.7), ferroq 0.1.0 from <repo>, commit 04cf7a5 [+ ...]``."""
    probe = (
        "import ferroq, platform; "
        "print(platform.python_version(), ferroq.__version__, ferroq.__file__)"
    )
    # Same sys.path as the benchmark run: the script's directory first.
    out = run([side.python, "-c", probe], cwd=BENCH, env=child_env(""))
    version, ferroq_version, ferroq_file = out.splitlines()[-1].split(" ", 2)
    head = f"{side.label}: {side.python} (Python {version}), ferroq {ferroq_version}"
    src = Path(ferroq_file).resolve().parent
    try:
        repo = run(["git", "-C", str(src), "rev-parse", "--show-toplevel"])
        commit = run(["git", "-C", repo, "rev-parse", "--short", "HEAD"])
        changed = run(["git", "-C", repo, "status", "--porcelain"]).splitlines()
    except (RuntimeError, OSError):
        return f"{head} from {src}, not in git"
    where = f"{commit}"
    if changed:
        dirs = sorted({line[3:].strip('"').split("/")[0] for line in changed})
        where += f" + working tree (uncommitted changes in {', '.join(dirs)})"
    note = ""
    native = [*src.glob("_native*.so"), *src.glob("_native*.pyd")]
    rust = [p for p in Path(repo, "rust").rglob("*") if p.is_file()]
    if native and rust and max(p.stat().st_mtime for p in rust) > native[0].stat().st_mtime:
        note = " — WARNING: rust/ is newer than the built extension, rebuild it (make dev)"
    return f"{head} from {repo}, commit {where}{note}"


def measure(side: Side, scenario: str, url: str, tasks: int) -> dict[str, object]:
    """One ``throughput.py --only scenario --json`` run under ``side``'s interpreter."""
    cmd = [side.python, str(THROUGHPUT), "--only", scenario, "--json", "--tasks", str(tasks)]
    cpu = redis_cpu(url)
    out = run(cmd, env=child_env(url), timeout=RUN_TIMEOUT)
    result: dict[str, object] = json.loads(out.splitlines()[-1])
    if result.get("scenario") != scenario:
        raise RuntimeError(f"{shlex.join(cmd)} printed {out!r}")
    if result.get("unit") == "tasks/s":
        # Redis's own CPU over the whole run (its enqueue phase included) per task: what a change
        # to a script costs or saves, without the noise of the throughput a busy machine allows.
        result["redis_us"] = (redis_cpu(url) - cpu) * 1e6 / tasks
    return result


def cell(values: list[float], fmt: str) -> str:
    """``median (min-max)``, with an en dash."""
    if not values:
        return "n/a"
    med = fmt.format(statistics.median(values))
    return f"{med} ({fmt.format(min(values))}{DASH}{fmt.format(max(values))})"


def table(before: Side, after: Side) -> list[str]:
    """The Markdown table, one row per ``ROWS`` entry."""
    lines = [
        f"| scenario | before (median, min{DASH}max) | after (median, min{DASH}max) "
        "| after/before |",
        "| --- | --- | --- | --- |",
    ]
    for label, scenario, key, unit, fmt in ROWS:
        b = before.samples.get((scenario, key), [])
        a = after.samples.get((scenario, key), [])
        ratio = (
            f"{statistics.median(a) / statistics.median(b):.3f}{TIMES}"
            if a and b and statistics.median(b)
            else "n/a"
        )
        better = "higher" if unit == "tasks/s" else "lower"  # µs, ms, % of a core
        lines.append(
            f"| {label}, {unit} ({better} is better) | {cell(b, fmt)} | {cell(a, fmt)} | {ratio} |"
        )
    return lines


REPO = BENCH.parent
CACHE = Path(os.environ.get("FERROQ_BENCH_CACHE", Path.home() / ".cache" / "ferroq-bench"))
BUILDS = CACHE / "builds"


def build_rev(rev: str) -> str:
    """The python of a release build of commit ``rev`` of this repository (built once)."""
    sha = run(["git", "-C", str(REPO), "rev-parse", "--verify", f"{rev}^{{commit}}"]).strip()
    home = BUILDS / sha
    python = home / ".venv" / "bin" / "python"
    if python.exists() and subprocess.run([str(python), "-c", "import ferroq"]).returncode == 0:
        return str(python)
    shutil.rmtree(home, ignore_errors=True)
    home.parent.mkdir(parents=True, exist_ok=True)
    print(f"building {rev} ({sha[:7]}) in {home}", file=sys.stderr, flush=True)
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(home)], check=True)
    subprocess.run(["git", "-C", str(home), "checkout", "--quiet", sha], check=True)
    subprocess.run([sys.executable, "-m", "venv", str(home / ".venv")], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "maturin>=1.7,<2"], check=True)
    maturin = home / ".venv" / "bin" / "maturin"
    env = {**os.environ, "VIRTUAL_ENV": str(home / ".venv")}
    # In the clone, with the clone's own target dir: nothing of this tree's build is reused.
    subprocess.run([str(maturin), "develop", "--release", "--quiet"], cwd=home, env=env, check=True)
    subprocess.run([*pip, "redis[hiredis]>=5"], check=True)  # throughput.py's flush
    return str(python)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--before", help="python of the baseline build")
    which.add_argument("--before-rev", help="a commit of this repository to build and measure")
    p.add_argument("--after", required=True, help="python of the new build")
    p.add_argument("--tasks", type=int, default=10_000, help="tasks per throughput run")
    p.add_argument("--rounds", type=int, default=5, help="runs per scenario and side")
    p.add_argument("--out", type=Path, help="also write the report to this file")
    args = p.parse_args()
    # Absolute, not resolved: a venv's python is a symlink, and its venv is where it is called.
    before_python = os.path.abspath(args.before or build_rev(args.before_rev))
    before, after = Side("before", before_python), Side("after", os.path.abspath(args.after))
    command = shlex.join([sys.executable, *sys.argv])
    sides = [describe(before), describe(after)]

    t_start = time.monotonic()
    with private_redis() as (url, server):
        server_version = run([server, "--version"])
        for r in range(args.rounds):
            order = [before, after] if r % 2 == 0 else [after, before]
            for scenario in SCENARIOS:
                for side in order:
                    t0 = time.monotonic()
                    result = measure(side, scenario, url, args.tasks)
                    for key in ("value", "p50", "p99", "redis_us"):
                        v = result.get(key)
                        if isinstance(v, (int, float)):
                            side.samples.setdefault((scenario, key), []).append(float(v))
                    shown = {k: v for k, v in result.items() if k != "scenario"}
                    print(
                        f"round {r + 1}/{args.rounds} {scenario:12s} {side.label:6s} "
                        f"{shown} ({time.monotonic() - t0:.1f} s)",
                        file=sys.stderr,
                        flush=True,
                    )
    elapsed = time.monotonic() - t_start

    report = [
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {cpu_model()}, "
        f"Python {platform.python_version()} (compare.py), Redis: {server_version}",
        *sides,
        f"command: {command}",
        f"tasks per throughput run: {args.tasks}, rounds: {args.rounds} (sides alternating), "
        f"{elapsed / 60:.1f} min",
        "",
        *table(before, after),
    ]
    text = "\n".join(report) + "\n"
    sys.stdout.write(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
