"""Mutation testing of the Lua scripts (``rust/rdb/lua/*.lua``) against their direct tests.

The scripts are embedded in the Rust core at compile time, so a mutant would need a rebuild to
reach the end-to-end suite. Three test files, though, read the ``.lua`` files from disk and run them
on a real Redis with redis-py (``LUA = .../rust/rdb/lua`` in ``tests/test_lua_scripts.py``). This
harness copies ``tests/*.py``, ``pyproject.toml`` (the pytest settings) and ``rust/rdb/lua/`` into
a temporary tree, so that path resolves to the copy, then rewrites one script there at a time and
runs those tests against it.

The real scripts are never written: a crash or a Ctrl-C leaves nothing behind in the repository.

Operators, each applied at one site at a time, never inside a comment:

- ``delete``: a write statement (``redis.call("DEL"|"ZREM"|"HSET"|..., ...)``) removed;
- ``push-swap``: ``RPUSH`` <-> ``LPUSH``;
- ``eq-zero``: ``== 0`` <-> ``~= 0``;
- ``drop-not``: ``not x`` -> ``x`` in an ``if``/``elseif`` condition;
- ``boundary``: ``<`` <-> ``<=``, ``>`` <-> ``>=``;
- ``lrem-count``: an LREM count of ``-1`` -> ``0``;
- ``argv-shift``: ``ARGV[n]`` -> ``ARGV[n+1]`` where it is a score, an expiry or a number an
  ``if`` compares with.

Usage::

    .venv/bin/python tools/mutants/lua.py                  # every mutant: a table, a summary
    .venv/bin/python tools/mutants/lua.py --list           # the mutants, not run
    .venv/bin/python tools/mutants/lua.py --scripts done,done_batch
    .venv/bin/python tools/mutants/lua.py --strict         # exit 1 when a mutant survives

Exit status: 0 when the run completed (survivors are reported, not fatal), 1 with ``--strict``
and a survivor, 2 on a harness error: the unmutated baseline fails, a run neither passes nor fails
a test (twice), or a script name is unknown.
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LUA_DIR = Path("rust/rdb/lua")
TEST_FILES = (
    "tests/test_lua_scripts.py",
    "tests/test_lua_leases.py",
    "tests/test_lua_inspector.py",
)

WRITES = frozenset(
    {
        # Every command that changes what a task is or where it sits.
        "DEL", "LREM", "ZREM", "ZADD", "HSET", "INCR", "EXPIREAT", "PUBLISH", "RPUSH", "LPUSH",
        "SET",
        # Writes too, each the only one of its kind somewhere: dequeue's rollback LPOP and its
        # HDEL of pending_since, add_to_group's SADD, the heartbeat's SETEX and EXPIRE.
        "LPOP", "HDEL", "SADD", "SETEX", "EXPIRE",
    }
)  # fmt: skip
"""Commands whose statement the ``delete`` operator removes."""

SHIFTED_ARGUMENT = {"ZADD": -2, "EXPIREAT": -1}
"""Command → position of the argument ``argv-shift`` moves from ``ARGV[n]`` to ``ARGV[n+1]``:
ZADD's score and EXPIREAT's expiry, where a wrong but well-typed value is the mistake a test is
likeliest to miss."""

# `redis.call("CMD"` or `redis.pcall("CMD"` opening a statement, or anywhere in a line.
STATEMENT = re.compile(r'^\s*redis\.p?call\(\s*"([A-Z]+)"')
CALL = re.compile(r'redis\.p?call\(\s*"([A-Z]+)"')
PUSH = re.compile(r'"(RPUSH|LPUSH)"')
EQ_ZERO = re.compile(r"(==|~=)(\s*0\b)")
NOT = re.compile(r"\bnot\s+")
CONDITION = re.compile(r"^\s*(if|elseif)\b")
# `<=` and `>=` are tried first, so a two-character operator is never read as `<` or `>`.
RELATION = re.compile(r"<=|>=|<|>")
BOUNDARY = {"<": "<=", "<=": "<", ">": ">=", ">=": ">"}
LREM_MINUS_ONE = re.compile(r'"LREM",\s*[^,]+,\s*(-1)\b')
ARGV_INDEX = re.compile(r"ARGV\[(\d+)\]")
TONUMBER_ARGV = re.compile(r"tonumber\((ARGV\[(\d+)\])\)")


@dataclass(frozen=True)
class Mutant:
    """One change to one script.

    Attributes:
        script: The script's stem, e.g. ``done_batch``.
        line: 1-based line of the change (the first, for a statement over several lines).
        operator: Short operator name (``delete``, ``push-swap``, ...).
        description: What changed, in the source's own words.
        first: 0-based index of the first line replaced.
        replacement: The lines standing in for ``first`` onwards, as many as they replace, so
            every later line keeps its number and a Redis error's line number matches the table.
    """

    script: str
    line: int
    operator: str
    description: str
    first: int
    replacement: tuple[str, ...]

    def apply(self, source: str) -> str:
        """Returns ``source`` with this mutation applied."""
        lines = source.split("\n")
        end = self.first + len(self.replacement)
        return "\n".join([*lines[: self.first], *self.replacement, *lines[end:]])


class Result(enum.Enum):
    """How a mutant's test run ended."""

    KILLED = "killed"
    TIMEOUT = "killed (timeout)"
    SURVIVED = "SURVIVED"
    UNVIABLE = "unviable"
    ERROR = "ERROR"


# ---- finding the mutants ------------------------------------------------------------------


def code_part(line: str) -> str:
    """Returns ``line`` without its ``--`` comment, so that no operator fires inside one.

    Quoted strings are stepped over, so a ``--`` inside one is kept. Long brackets (``[[ ]]``)
    are not understood: no script uses them.
    """
    quote = ""
    escaped = False
    for i, c in enumerate(line):
        if quote:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif line.startswith("--", i):
            return line[:i]
    return line


def paren_depth(code: str) -> int:
    """Net count of ``(`` over ``)`` in ``code``, outside quoted strings."""
    depth = 0
    quote = ""
    escaped = False
    for c in code:
        if quote:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
    return depth


def short(text: str, width: int = 56) -> str:
    """``text`` stripped and cut to ``width`` characters, for the table."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


@dataclass(frozen=True)
class Site:
    """One non-comment line of a script, with its code part (the line less its comment)."""

    script: str
    index: int
    line: str
    code: str

    def replace(self, operator: str, start: int, end: int, new: str) -> Mutant:
        """A mutant that puts ``new`` in place of ``code[start:end]``, comment kept."""
        old = self.code[start:end]
        mutated = self.code[:start] + new + self.code[end:] + self.line[len(self.code) :]
        return Mutant(
            self.script, self.index + 1, operator,
            f"{old.strip()} -> {new.strip() or '(removed)'} in: {short(self.code)}",
            self.index, (mutated,),
        )  # fmt: skip


def deletions(site: Site, lines: Sequence[str]) -> Iterator[Mutant]:
    """Removes a write statement; one that runs over several lines is removed whole."""
    stmt = STATEMENT.match(site.code)
    if not stmt or stmt.group(1) not in WRITES:
        return
    last, depth = site.index, paren_depth(site.code)
    while depth > 0 and last + 1 < len(lines):
        last += 1
        depth += paren_depth(code_part(lines[last]))
    blank = ("",) * (last - site.index + 1)
    yield Mutant(
        site.script, site.index + 1, "delete", f"delete {short(site.code)}", site.index, blank
    )


def push_swaps(site: Site) -> Iterator[Mutant]:
    """RPUSH becomes LPUSH and the reverse: the task joins the wrong end of its list."""
    for m in PUSH.finditer(site.code):
        other = "LPUSH" if m.group(1) == "RPUSH" else "RPUSH"
        yield site.replace("push-swap", m.start(1), m.end(1), other)


def eq_zero_flips(site: Site) -> Iterator[Mutant]:
    """``== 0`` becomes ``~= 0`` and the reverse: a "found nothing" check turned around."""
    for m in EQ_ZERO.finditer(site.code):
        yield site.replace("eq-zero", m.start(1), m.end(1), "~=" if m.group(1) == "==" else "==")


def dropped_nots(site: Site) -> Iterator[Mutant]:
    """``not x`` becomes ``x`` in an ``if``/``elseif`` condition, one ``not`` at a time."""
    if CONDITION.match(site.code):
        for m in NOT.finditer(site.code):
            yield site.replace("drop-not", m.start(), m.end(), "")


def boundaries(site: Site) -> Iterator[Mutant]:
    """``<`` and ``<=`` (and ``>``, ``>=``) swapped: an off-by-one at a limit."""
    for m in RELATION.finditer(site.code):
        yield site.replace("boundary", m.start(), m.end(), BOUNDARY[m.group(0)])


def lrem_counts(site: Site) -> Iterator[Mutant]:
    """An LREM count of -1 (the last occurrence only) becomes 0 (every occurrence)."""
    for m in LREM_MINUS_ONE.finditer(site.code):
        yield site.replace("lrem-count", m.start(1), m.end(1), "0")


def call_args(code: str, open_paren: int) -> list[tuple[int, int]]:
    """Spans of the top-level arguments of the call whose ``(`` is at ``open_paren``.

    Stops at the line's end when the call runs on (no operator needs its later arguments).
    """
    spans: list[tuple[int, int]] = []
    depth, quote, start = 0, "", open_paren + 1
    for i in range(open_paren + 1, len(code)):
        c = code[i]
        if quote:
            quote = "" if c == quote and code[i - 1] != "\\" else quote
        elif c in "\"'":
            quote = c
        elif c in "({[":
            depth += 1
        elif c in ")}]" and depth:
            depth -= 1
        elif c == ")" or (c == "," and not depth):
            spans.append((start, i))
            start = i + 1
            if c == ")":
                return spans
    spans.append((start, len(code)))
    return spans


def argv_shifts(site: Site) -> Iterator[Mutant]:
    """``ARGV[n]`` becomes ``ARGV[n+1]`` where it is a number that is written or compared.

    The sites: a score (ZADD's next-to-last argument), an expiry (EXPIREAT's last), and a number
    an ``if`` compares with (``tonumber(ARGV[n])``: the int64 wrap limit, the retry's is-failure
    flag). Ids and key names are left alone: a wrong one is what any test that reads the task
    back notices first, a wrong number often is not.
    """
    spans: list[tuple[int, int]] = []
    for call in CALL.finditer(site.code):
        args = call_args(site.code, site.code.index("(", call.start()))
        position = SHIFTED_ARGUMENT.get(call.group(1))
        if position is not None and len(args) >= 3:
            spans.append(args[position])
    if CONDITION.match(site.code):
        spans += (m.span(1) for m in TONUMBER_ARGV.finditer(site.code))
    for start, end in sorted(set(spans)):
        arg = ARGV_INDEX.fullmatch(site.code[start:end].strip())
        if arg:
            at = start + site.code[start:end].index("ARGV")
            yield site.replace(
                "argv-shift", at, at + len(arg.group(0)), f"ARGV[{int(arg.group(1)) + 1}]"
            )


def mutants_of(script: str, source: str) -> list[Mutant]:
    """Every mutant of one script, in line order.

    Args:
        script: The script's stem, e.g. ``done``.
        source: Its text.

    Returns:
        The mutants; each changes one site and nothing else.
    """
    lines = source.split("\n")
    out: list[Mutant] = []
    for i, line in enumerate(lines):
        code = code_part(line)
        if not code.strip():
            continue  # blank, or a whole-line comment (the KEYS/ARGV contract)
        site = Site(script, i, line, code)
        out += deletions(site, lines)
        for operator in (push_swaps, eq_zero_flips, dropped_nots, boundaries, lrem_counts):
            out += operator(site)
        out += argv_shifts(site)
    return out


def all_mutants(lua_dir: Path, scripts: Sequence[str] | None) -> list[Mutant]:
    """The mutants of the scripts named (all of them when ``scripts`` is None), by script."""
    names = scripts if scripts is not None else sorted(p.stem for p in lua_dir.glob("*.lua"))
    return [m for name in names for m in mutants_of(name, (lua_dir / f"{name}.lua").read_text())]


# ---- running them -------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One test run.

    Attributes:
        result: How it ended.
        seconds: How long it took.
        detail: What it showed: the test that failed, or how many passed.
    """

    result: Result
    seconds: float
    detail: str = ""


class Workspace:
    """A temporary tree laid out like the repository, as far as the Lua tests look.

    ``tests/*.py`` (``conftest.py`` and the helper modules it imports among them) and
    ``pyproject.toml`` (pytest's settings: timeout, addopts) are copied as they are; so is
    ``rust/rdb/lua/``, which the tests find at ``tests/../rust/rdb/lua`` and which is the only
    part a mutant writes.
    """

    def __init__(self, repo: Path, root: Path) -> None:
        self.root = root
        self.lua = root / LUA_DIR
        (root / "tests").mkdir()
        for f in (repo / "tests").glob("*.py"):
            shutil.copy2(f, root / "tests" / f.name)
        shutil.copy2(repo / "pyproject.toml", root / "pyproject.toml")
        shutil.copytree(repo / LUA_DIR, self.lua)
        self.pristine = {p.stem: p.read_text() for p in self.lua.glob("*.lua")}

    def write(self, mutant: Mutant | None) -> None:
        """Makes the copy hold ``mutant`` (None: every script as in the repository)."""
        for name, text in self.pristine.items():
            wanted = mutant.apply(text) if mutant and mutant.script == name else text
            path = self.lua / f"{name}.lua"
            if path.read_text() != wanted:
                path.write_text(wanted)


def classify(junit: Path) -> tuple[Result, str]:
    """Reads a JUnit report of a run that exited 1: a test failed, or only a fixture did.

    A failed test is a kill, but a mutant that Redis cannot compile is counted apart
    (``unviable``): no test was needed to notice it. An error in a fixture (the Redis server did
    not start, say) says nothing about the mutant: that is the harness's failure.
    """
    try:
        root = ET.parse(junit).getroot()
    except (ET.ParseError, OSError) as e:
        return Result.ERROR, f"no JUnit report: {e}"
    for case in root.iter("testcase"):
        failure = case.find("failure")
        if failure is not None:
            text = failure.get("message", "") or (failure.text or "")
            name = f"{case.get('name')}: {short(text, 100)}"
            if "Error compiling script" in text:
                return Result.UNVIABLE, name
            return Result.KILLED, name
    for case in root.iter("testcase"):
        error = case.find("error")
        if error is not None:
            return Result.ERROR, f"{case.get('name')}: {short(error.get('message', ''), 100)}"
    return Result.ERROR, "pytest exited 1 with no failed test in its report"


def tests_run(junit: Path) -> int:
    """How many tests a JUnit report shows as run (not skipped); 0 if it cannot be read."""
    try:
        root = ET.parse(junit).getroot()
    except (ET.ParseError, OSError):
        return 0
    return sum(1 for case in root.iter("testcase") if case.find("skipped") is None)


def run_tests(ws: Workspace, python: str, keyword: str, timeout: float) -> Run:
    """Runs the Lua tests in ``ws`` once, stopping at the first failure."""
    junit = ws.root / "junit.xml"
    junit.unlink(missing_ok=True)
    cmd = [
        python, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", f"--junitxml={junit}",
        *TEST_FILES, "-k", keyword,
    ]  # fmt: skip
    start = time.monotonic()
    # A session of its own, so that a hung run is ended with the Redis server its conftest
    # started: a mutant that loops keeps that server busy in the script for good.
    proc = subprocess.Popen(
        cmd, cwd=ws.root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        end_group(proc)
        return Run(Result.TIMEOUT, time.monotonic() - start, f"over {timeout:.0f} s")
    except BaseException:
        end_group(proc)  # Ctrl-C: leave no server behind
        raise
    seconds = time.monotonic() - start
    if proc.returncode == 0:
        ran = tests_run(junit)
        if not ran:
            # Every test skipped (no redis-server on PATH, say): nothing was checked.
            return Run(Result.ERROR, seconds, "pytest passed but ran no test (all skipped?)")
        return Run(Result.SURVIVED, seconds, f"{ran} tests passed")
    if proc.returncode == 1:
        result, detail = classify(junit)
        return Run(result, seconds, detail)
    # 2: interrupted (a collection error), 3: internal error, 4: usage, 5: no test ran.
    tail = "\n".join(output.strip().splitlines()[-15:])
    return Run(Result.ERROR, seconds, f"pytest exited {proc.returncode}:\n{tail}")


def end_group(proc: subprocess.Popen[str]) -> None:
    """Kills the test run and everything it started, its Redis server among them.

    SIGKILL at once: pytest does not run its fixtures' teardown on a signal either way, and a
    server stuck in a looping script answers nothing before it.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


# ---- the report ---------------------------------------------------------------------------


def table_row(script: str, line: str, operator: str, result: str, mutation: str) -> str:
    """One line of the table, in fixed columns."""
    return f"{script:<28} {line:>4}  {operator:<10}  {result:<16}  {mutation}"


HEADER = table_row("script", "line", "operator", "result", "mutation")


def row(m: Mutant, result: Result | None) -> str:
    """The table line of one mutant (``result`` None: listed, not run)."""
    outcome = result.value if result else ""
    return table_row(f"{m.script}.lua", str(m.line), m.operator, outcome, m.description)


def loaded_by_tests(root: Path, scripts: Sequence[str]) -> set[str]:
    """The scripts a direct test file names (``"done"`` or ``"done.lua"``), i.e. loads."""
    text = "\n".join((root / f).read_text() for f in TEST_FILES)
    return {s for s in scripts if f'"{s}"' in text or f'"{s}.lua"' in text}


def summarize(runs: Sequence[tuple[Mutant, Run]], loaded: set[str], seconds: float) -> list[str]:
    """The closing lines: counts, runtime, and every survivor with its file:line.

    Survivors in a script no direct test loads are folded into one line per script: none of its
    mutants can be killed here (its only tests are end to end, through the compiled core).
    """
    counts = {r: sum(1 for _, run in runs if run.result is r) for r in Result}
    killed = counts[Result.KILLED] + counts[Result.TIMEOUT]
    viable = len(runs) - counts[Result.UNVIABLE] - counts[Result.ERROR]
    score = f"{100 * killed / viable:.0f}%" if viable else "n/a"
    lines = [
        f"Lua mutants: {len(runs)} run, {killed} killed, {counts[Result.SURVIVED]} survived, "
        f"{counts[Result.UNVIABLE]} unviable, {counts[Result.ERROR]} harness errors; "
        f"mutation score {score}; {seconds:.0f} s",
    ]
    survivors = [m for m, run in runs if run.result is Result.SURVIVED]
    tested = [m for m in survivors if m.script in loaded]
    if tested:
        lines.append("Survivors in scripts the direct tests load (each is a missing assertion):")
        lines += [f"  {LUA_DIR}/{m.script}.lua:{m.line}: {m.operator}: {m.description}"
                  for m in tested]  # fmt: skip
    untested: dict[str, list[Mutant]] = {}
    for m in survivors:
        if m.script not in loaded:
            untested.setdefault(m.script, []).append(m)
    if untested:
        lines.append("Scripts no direct test loads (every mutant survives; lines mutated):")
        lines += [f"  {LUA_DIR}/{name}.lua: {len(ms)} survived "
                  f"(lines {', '.join(str(m.line) for m in ms)})"
                  for name, ms in untested.items()]  # fmt: skip
    errors = [(m, run) for m, run in runs if run.result is Result.ERROR]
    if errors:
        lines.append("Harness errors (the mutant's result is unknown):")
        lines += [f"  {m.script}.lua:{m.line}: {run.detail}" for m, run in errors]
    return lines


# ---- the command line ---------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Reads the command line."""
    p = argparse.ArgumentParser(
        description="Mutate rust/rdb/lua/*.lua one change at a time and run the tests that "
        "read the scripts from disk (tests/test_lua_scripts.py, tests/test_lua_leases.py)."
    )
    p.add_argument("--scripts", help="comma-separated script names (stems), e.g. done,done_batch")
    p.add_argument("--list", action="store_true", help="list the mutants and exit")
    p.add_argument("--strict", action="store_true", help="exit 1 when a mutant survives")
    p.add_argument(
        "-v", "--verbose", action="store_true", help="show the test that killed each mutant"
    )
    p.add_argument("--repo", type=Path, default=REPO, help="repository root (default: %(default)s)")
    p.add_argument(
        "--python", default=sys.executable, help="interpreter with ferroq and the test extras"
    )
    p.add_argument(
        "-k", dest="keyword", default="not valkey", help="pytest -k (default: %(default)r)"
    )
    p.add_argument(
        "--timeout", type=float, default=60.0, help="seconds per test run (default: %(default)s)"
    )
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the harness; returns the exit status."""
    args = parse_args(argv)
    repo: Path = args.repo.resolve()
    lua_dir = repo / LUA_DIR
    scripts: list[str] | None = None
    if args.scripts:
        scripts = [s.strip().removesuffix(".lua") for s in args.scripts.split(",") if s.strip()]
        unknown = [s for s in scripts if not (lua_dir / f"{s}.lua").is_file()]
        if unknown:
            print(f"lua.py: no such script in {lua_dir}: {', '.join(unknown)}", file=sys.stderr)
            return 2
    mutants = all_mutants(lua_dir, scripts)
    if args.list:
        print(HEADER)
        for m in mutants:
            print(row(m, None))
        print(f"{len(mutants)} mutants")
        return 0

    start = time.monotonic()
    runs: list[tuple[Mutant, Run]] = []
    with tempfile.TemporaryDirectory(prefix="ferroq-lua-mutants-") as tmp:
        ws = Workspace(repo, Path(tmp))
        baseline = run_tests(ws, args.python, args.keyword, args.timeout)
        if baseline.result is not Result.SURVIVED:
            # A mutant is killed when a test fails: that means nothing unless they all pass
            # on the scripts as they are.
            print("lua.py: the Lua tests do not pass on the unmutated scripts, so no mutant "
                  f"can be judged:\n{baseline.detail}", file=sys.stderr)  # fmt: skip
            return 2
        print(f"baseline: unmutated, {baseline.detail} in {baseline.seconds:.1f} s; "
              f"{len(mutants)} mutants to run\n")  # fmt: skip
        print(HEADER, flush=True)
        for m in mutants:
            ws.write(m)
            run = run_tests(ws, args.python, args.keyword, args.timeout)
            if run.result is Result.ERROR:
                # Once more: a transient cause (the extension being rebuilt under the venv,
                # a port taken) is not the mutant's doing.
                run = run_tests(ws, args.python, args.keyword, args.timeout)
            runs.append((m, run))
            print(row(m, run.result), flush=True)
            if args.verbose and run.result is not Result.SURVIVED:
                print(f"{'':<36}{run.detail}", flush=True)
        ws.write(None)
    print()
    loaded = loaded_by_tests(repo, sorted({m.script for m in mutants}))
    print("\n".join(summarize(runs, loaded, time.monotonic() - start)))
    if any(run.result is Result.ERROR for _, run in runs):
        return 2
    if args.strict and any(run.result is Result.SURVIVED for _, run in runs):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
