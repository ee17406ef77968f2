"""Enqueueing from asyncio: ferroq's AsyncClient beside arq, SAQ and taskiq, in one run.

Run: ``python bench/peers/asyncio_run.py [--seconds 5] [--runs 3]`` (``make bench-asyncio``).
Each peer runs ``peer_aio.py`` in its own venv (the venvs of ``run.py``) against a private
``redis-server``, FLUSHALL before every run: 50 coroutines enqueue for ``--seconds``, one awaited
call per task, while a heartbeat coroutine measures the event loop's lag. The table gives each
peer's median over ``--runs`` runs and the ratios to arq (the issue's reference): ferroq's target
is at least 5x arq's rate with a lag p99 no worse than 1.5x arq's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from run import (
    PEERS,
    REPO,
    Failure,
    ensure_venv,
    log,
    machine,
    redis_command,
    redis_server,
    run_role,
)

ORDER = ("ferroq", "arq", "saq", "taskiq")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--coroutines", type=int, default=50)
    p.add_argument("--ferroq-python", default=str(REPO / ".venv" / "bin" / "python"))
    a = p.parse_args()
    pythons = {"ferroq": a.ferroq_python}
    by_venv = {peer.venv: peer for peer in PEERS}
    for name in ORDER[1:]:
        pythons[name] = str(ensure_venv(by_venv[name], sys.executable))
    results: dict[str, list[dict[str, object]]] = {name: [] for name in ORDER}
    with redis_server() as port:
        url = f"redis://127.0.0.1:{port}/0"
        for run in range(a.runs):
            for name in ORDER:  # interleaved: drift on this VM hits every peer alike
                redis_command(port, "FLUSHALL")
                cmd = [pythons[name], "peer_aio.py", name, "--url", url,
                       "--seconds", str(a.seconds), "--coroutines", str(a.coroutines)]  # fmt: skip
                try:
                    r = run_role(name, cmd, timeout=600)
                except Failure as e:
                    log(f"{name}: {e}")
                    continue
                results[name].append(r)
                log(f"run {run + 1} {name}: {float(r['rate']):,.0f}/s, "  # type: ignore[arg-type]
                    f"lag p99 {float(r['lag_p99_ms']):.2f} ms")  # type: ignore[arg-type]  # fmt: skip

    def med(name: str, key: str) -> float:
        vals = [float(r[key]) for r in results[name]]  # type: ignore[arg-type]
        return statistics.median(vals) if vals else float("nan")

    command = f"python bench/peers/asyncio_run.py --seconds {a.seconds:g} --runs {a.runs}"
    print(f"Machine: {machine()}. Command: `{command}`; {a.coroutines} coroutines, "
          f"medians of {a.runs} runs.\n")  # fmt: skip
    print("| peer | config | enqueue/s | vs arq | loop lag p50 | p99 | p99 vs arq | max |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    arq_rate, arq_p99 = med("arq", "rate"), med("arq", "lag_p99_ms")
    for name in ORDER:
        if not results[name]:
            print(f"| {name} | failed | | | | | | |")
            continue
        r0 = results[name][0]
        rate, p99 = med(name, "rate"), med(name, "lag_p99_ms")
        print(f"| {name} {r0['version']} | {r0['config']} | {rate:,.0f} | {rate / arq_rate:.1f}x | "
              f"{med(name, 'lag_p50_ms'):.2f} ms | {p99:.2f} ms | {p99 / arq_p99:.2f}x | "
              f"{med(name, 'lag_max_ms'):.1f} ms |")  # fmt: skip


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
