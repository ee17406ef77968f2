"""Where the time goes: py-spy over one ferroq workload, plus Redis's own per-command cost.

Run: ``python bench/profile.py {sync,async,enqueue} [--tasks N]`` (``make profile``). Starts a
private Redis unless ``REDIS_URL`` is set (it is flushed), runs the workload in a child process
under ``py-spy record --gil --nonblocking`` (only samples where a thread holds the GIL: with one
process, GIL time is what limits throughput; a thread waiting on Redis in Rust holds no GIL and
is not sampled), and prints:

- the functions that hold the GIL, by self time and by inclusive time (share of GIL samples);
- the GIL's busy share of the run (samples x interval / wall time);
- Redis's ``commandstats`` for the run: microseconds of Redis CPU per call.

The child is this file with ``--child``; py-spy must be on PATH or next to the interpreter.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

HERE = Path(__file__).resolve().parent
RATE = 250  # samples per second: py-spy keeps up on two cores at this rate


def child(kind: str, url: str, n: int) -> None:
    """The profiled workload (the same functions as bench/throughput.py)."""
    sys.path.insert(0, str(HERE))
    from throughput import enqueue_one_by_one, process

    if kind == "enqueue":
        rate = enqueue_one_by_one(url, n)
    else:
        rate = process(url, n, asynchronous=kind == "async")
    print(f"{kind}: {rate:,.0f} tasks/s over {n:,} tasks", flush=True)


def frame(name: str) -> str:
    """``func (file.py:12)`` → ``func (file.py)``: lines would split one function's time."""
    return re.sub(r":\d+\)$", ")", name)


def summarise(raw: Path, wall: float, top: int) -> str:
    """Self and inclusive GIL time per function from py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        parts = stack.split(";")
        frames = [frame(f) for f in parts if f and not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    if not total:
        return "py-spy recorded no samples\n"
    busy = 100 * total / RATE / wall
    out = [f"GIL held in {total:,} samples at {RATE}/s over {wall:.1f} s: ~{busy:.0f} % of the run"]
    out += ["", "self (share of GIL samples):"]
    out += [f"  {100 * v / total:5.1f} %  {k}" for k, v in own.most_common(top)]
    out += ["", "inclusive:"]
    out += [f"  {100 * v / total:5.1f} %  {k}" for k, v in incl.most_common(top)]
    return "\n".join(out) + "\n"


def commandstats(r: redis.Redis) -> str:
    """Redis CPU per call for every command the run used, busiest first."""
    stats = r.info("commandstats")
    rows = sorted(stats.items(), key=lambda kv: -float(kv[1]["usec"]))
    lines = ["Redis commandstats for the run (CPU inside Redis; script commands counted twice:"]
    lines.append("once inside their EVALSHA and once on their own line):")
    for name, s in rows:
        lines.append(
            f"  {name.removeprefix('cmdstat_'):12s} {int(s['calls']):>9,} calls"
            f"  {float(s['usec_per_call']):7.2f} us/call  {int(s['usec']) / 1e6:6.2f} s total"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("kind", choices=["sync", "async", "enqueue"])
    p.add_argument("--tasks", type=int, default=100_000)
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.kind, args.url, args.tasks)
        return
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        sys.exit("py-spy not found: pip install py-spy")
    sys.path.insert(0, str(HERE))
    from throughput import local_redis

    with local_redis() as url:
        r = redis.Redis.from_url(url)
        r.flushall()
        r.config_resetstat()
        with tempfile.TemporaryDirectory() as tmp:
            raw = Path(tmp) / "stacks.txt"
            cmd = [spy, "record", "--gil", "--nonblocking", "--rate", str(RATE)]
            cmd += ["--format", "raw", "-o", str(raw), "--"]
            cmd += [sys.executable, __file__, args.kind, "--child", "--url", url]
            cmd += ["--tasks", str(args.tasks)]
            t0 = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            wall = time.perf_counter() - t0
            if done.returncode != 0 or not raw.exists():
                sys.exit(f"py-spy failed ({done.returncode}): {done.stderr.strip()[-500:]}")
            print(f"$ python bench/profile.py {args.kind} --tasks {args.tasks}")
            print(done.stdout.strip())
            print(summarise(raw, wall, args.top))
        print(commandstats(r))


if __name__ == "__main__":
    main()
