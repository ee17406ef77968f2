"""The typing of task calls: mypy accepts the good calls of tests/typing/usage.py and rejects
exactly the lines marked ``# error: <code>``, each with that code."""

from __future__ import annotations

import re
from pathlib import Path

from mypy import api

USAGE = Path(__file__).parent / "typing" / "usage.py"
MARK = re.compile(r"#\s*error:\s*([a-z-]+)")
REPORTED = re.compile(r"^[^:]+:(\d+): error: .*\[([a-z-]+)\]$")


def test_task_calls_are_typed_from_the_function_signature() -> None:
    expected = {
        i: m.group(1)
        for i, line in enumerate(USAGE.read_text().splitlines(), 1)
        if (m := MARK.search(line))
    }
    assert len(expected) >= 10
    out, err, _ = api.run(["--strict", "--no-incremental", "--show-error-codes", str(USAGE)])
    got: dict[int, set[str]] = {}
    for line in out.splitlines():
        m = REPORTED.match(line)
        if m:
            got.setdefault(int(m.group(1)), set()).add(m.group(2))
    assert not err, err
    missing = {i: c for i, c in expected.items() if c not in got.get(i, set())}
    unexpected = {i: c for i, c in got.items() if i not in expected}
    assert not missing, f"calls mypy should reject but accepted: {missing}\n{out}"
    assert not unexpected, f"calls mypy rejected that should pass: {unexpected}\n{out}"
