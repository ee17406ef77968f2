"""Argument codecs for task functions, side by side: what ``ferroq.codec`` chose and why.

Each codec encodes and decodes the payload envelope ``{"args": [...], "kwargs": {...}}`` of a
small call and of a ten-item call; the figure is the median of ``--rounds`` runs of ``--calls``
calls. Run with ``.venv/bin/python bench/codec.py`` (or ``make bench-codec``).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import msgspec
import orjson

SMALL: dict[str, Any] = {"args": ["ada@example.com", 42], "kwargs": {"subject": "hi"}}
TEN: dict[str, Any] = {
    "args": [
        [
            {"id": i, "name": f"item-{i}", "price": 9.99 + i, "tags": ["a", "b"], "ok": True}
            for i in range(10)
        ]
    ],
    "kwargs": {"currency": "EUR", "note": None},
}

TIMES = "\u00d7"  # the multiplication sign of the ratios

_mj_enc, _mj_dec = msgspec.json.Encoder(), msgspec.json.Decoder()
_mp_enc, _mp_dec = msgspec.msgpack.Encoder(), msgspec.msgpack.Decoder()

CODECS: dict[str, tuple[Callable[[Any], bytes], Callable[[bytes], Any]]] = {
    "json (stdlib)": (lambda v: json.dumps(v).encode(), json.loads),
    "orjson": (orjson.dumps, orjson.loads),
    "msgspec.json (ferroq's json)": (_mj_enc.encode, _mj_dec.decode),
    "msgspec.msgpack (ferroq's msgpack)": (_mp_enc.encode, _mp_dec.decode),
}


def per_call(fn: Callable[[Any], Any], arg: Any, calls: int, rounds: int) -> float:
    """Median µs per call of ``fn(arg)``."""
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(calls):
            fn(arg)
        times.append((time.perf_counter() - t) / calls * 1e6)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--calls", type=int, default=100_000)
    p.add_argument("--rounds", type=int, default=7)
    a = p.parse_args()
    py = f"{platform.python_implementation()} {platform.python_version()}"
    libs = f"msgspec {msgspec.__version__}, orjson {orjson.__version__}"
    print(f"# {py}, {platform.machine()}, {libs}")
    print(f"# median of {a.rounds} x {a.calls} calls; µs per call (ratio to stdlib json)")
    print("| codec | small: bytes | encode | decode | ten items: bytes | encode | decode |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    base: dict[tuple[str, str], float] = {}
    for name, (enc, dec) in CODECS.items():
        cells = []
        for label, value in (("small", SMALL), ("ten", TEN)):
            data = enc(value)
            assert dec(data) == value, name
            e = per_call(enc, value, a.calls, a.rounds)
            d = per_call(dec, data, a.calls, a.rounds)
            base.setdefault((label, "e"), e)
            base.setdefault((label, "d"), d)
            cells += [
                str(len(data)),
                f"{e:.2f} ({base[label, 'e'] / e:.1f}{TIMES})",
                f"{d:.2f} ({base[label, 'd'] / d:.1f}{TIMES})",
            ]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
