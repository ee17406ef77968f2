"""Every key a script hands to Redis is written ``KEYS[...]`` in its text.

A cluster proxy that checks scripts before it runs them reads their text, not what they touch.
Aliyun's (its ``script_check_enable``, on by default; hibiken/asynq #1086) refuses a script in
which the key argument of a ``redis.call``/``redis.pcall`` is anything but the KEYS array itself:
a Lua variable holding ``KEYS[1]``, or ``KEYS[1]`` inside an expression, fails the whole script
with "all the keys that the script uses should be passed using the KEYS array, and KEYS should
not be in expression". ``test_lua_keys`` checks what each script touches; this test checks how
it is written, by the rule as Aliyun documents it (help.aliyun.com, "Lua script limits of
cluster instances"): each argument Redis counts as a key (its ``COMMAND INFO`` key positions)
is the KEYS array itself, ``KEYS[...]``. What the documentation does not say, this test decides
strictly where that costs nothing (the command must be a literal string, so that its key
positions are known; ``redis`` is only used as ``redis.call(...)``, ``redis.pcall(...)`` or a
member that runs no command; KEYS is never written) and leniently where the scripts need it:
the index may be any expression, a computed one (``KEYS[3 + i]``) or one read from a table or a
helper's argument (``KEYS[h]``, ``KEYS[k[1]]``). The proxy's own checker is not public and none
runs here; whether it reads those indexes as the KEYS array is untested.

The one script that cannot follow it is ``dequeue.lua``, the dequeue off a cluster by default:
it builds the hash name of each task it pops, as asynq's does. Servers in declared-keys mode
(the default on a cluster, ``declare_keys=True`` elsewhere) run ``dequeue_declared.lua``
instead, which names every hash.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

LUA = Path(__file__).resolve().parent.parent / "rust" / "rdb" / "lua"

# Scripts whose text breaks the rule, with the one variable that holds the key names they build
# (every other key they pass is written KEYS[...]) and why; each is checked to still break it.
BUILDS_KEYS = {
    "dequeue": ("key", "asynq's dequeue builds each popped task's hash name from its prefix"),
}

# Key positions (first, last, step) over a command's arguments, as COMMAND INFO gives them
# (last -1: through the end; first 0: no key). test_key_positions_are_redis_own checks each on
# a real Redis, so a command is added here by looking it up, not by guessing.
KEY_POSITIONS: dict[str, tuple[int, int, int]] = {
    "DEL": (1, -1, 1),
    "EXISTS": (1, -1, 1),
    "EXPIRE": (1, 1, 1),
    "EXPIREAT": (1, 1, 1),
    "GET": (1, 1, 1),
    "HDEL": (1, 1, 1),
    "HEXISTS": (1, 1, 1),
    "HGET": (1, 1, 1),
    "HMGET": (1, 1, 1),
    "HSET": (1, 1, 1),
    "INCR": (1, 1, 1),
    "INCRBY": (1, 1, 1),
    "LINDEX": (1, 1, 1),
    "LLEN": (1, 1, 1),
    "LPOP": (1, 1, 1),
    "LPOS": (1, 1, 1),
    "LPUSH": (1, 1, 1),
    "LRANGE": (1, 1, 1),
    "LREM": (1, 1, 1),
    "LTRIM": (1, 1, 1),
    "PUBLISH": (0, 0, 0),
    "RPOP": (1, 1, 1),
    "RPOPLPUSH": (1, 2, 1),
    "RPUSH": (1, 1, 1),
    "SADD": (1, 1, 1),
    "SCARD": (1, 1, 1),
    "SET": (1, 1, 1),
    "SETEX": (1, 1, 1),
    "SMEMBERS": (1, 1, 1),
    "SREM": (1, 1, 1),
    "TYPE": (1, 1, 1),
    "ZADD": (1, 1, 1),
    "ZCARD": (1, 1, 1),
    "ZRANGE": (1, 1, 1),
    "ZREM": (1, 1, 1),
    "ZSCORE": (1, 1, 1),
}

TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<comment>--\[(?P<ceq>=*)\[.*?\](?P=ceq)\]|--[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|\[(?P<seq>=*)\[.*?\](?P=seq)\])
  | (?P<number>0[xX][0-9a-fA-F]+|\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+)
  | (?P<name>[A-Za-z_]\w*)
  | (?P<op>\.\.\.|\.\.|==|~=|<=|>=|[-+*/%^\#<>=(){}\[\];:,.])
    """,
    re.VERBOSE | re.DOTALL,
)
OPEN = {"(": ")", "{": "}", "[": "]"}


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    line: int


def tokens(source: str) -> list[Token]:
    """The Lua tokens of ``source``, without spaces and comments."""
    out: list[Token] = []
    pos = 0
    line = 1
    while pos < len(source):
        m = TOKEN.match(source, pos)
        if m is None:
            raise ValueError(f"line {line}: cannot read {source[pos : pos + 20]!r}")
        kind = m.lastgroup
        # lastgroup is the innermost named group for the long forms; name the outer one.
        for outer in ("comment", "string"):
            if m.group(outer) is not None:
                kind = outer
        assert kind is not None
        if kind not in ("space", "comment"):
            out.append(Token(kind, m.group(0), line))
        line += m.group(0).count("\n")
        pos = m.end()
    return out


def call_args(toks: list[Token], start: int) -> tuple[list[list[Token]], int]:
    """The arguments of the call whose ``(`` is at ``start``, split at its own commas, and the
    index after its ``)``."""
    args: list[list[Token]] = [[]]
    stack: list[str] = []
    i = start + 1
    while i < len(toks):
        t = toks[i]
        if t.kind == "op" and t.text in OPEN:
            stack.append(OPEN[t.text])
        elif t.kind == "op" and t.text in (")", "}", "]"):
            if not stack:
                if t.text != ")":
                    raise ValueError(f"line {t.line}: unbalanced {t.text}")
                return ([] if args == [[]] else args), i + 1
            if stack.pop() != t.text:
                raise ValueError(f"line {t.line}: unbalanced {t.text}")
        elif t.kind == "op" and t.text == "," and not stack:
            args.append([])
            i += 1
            continue
        args[-1].append(t)
        i += 1
    raise ValueError("a call is never closed")


def is_keys_index(arg: list[Token]) -> bool:
    """``KEYS[<expression>]`` and nothing around it."""
    if len(arg) < 4 or arg[0].text != "KEYS" or arg[1].text != "[" or arg[-1].text != "]":
        return False
    depth = 0
    for i, t in enumerate(arg[1:], start=1):
        if t.kind == "op" and t.text in OPEN:
            depth += 1
        elif t.kind == "op" and t.text in (")", "}", "]"):
            depth -= 1
            if depth == 0 and i != len(arg) - 1:
                return False  # KEYS[1] followed by more: KEYS[1] .. x, KEYS[1][2]...
    return True


def is_spread(arg: list[Token]) -> bool:
    """Whether ``arg`` may stand for any number of arguments (``unpack(t)``, ``...``)."""
    return bool(arg) and (arg[-1].text == "..." or arg[0].text == "unpack")


def key_positions(command: str, nargs: int) -> list[int]:
    first, last, step = KEY_POSITIONS[command]
    if first == 0:
        return []
    end = nargs if last < 0 else min(last, nargs)
    return list(range(first, end + 1, step))


# What a script may use of the ``redis`` table (``server`` on Valkey) besides call and pcall:
# none of them runs a command.
OTHER_MEMBERS = {
    "error_reply", "status_reply", "log", "sha1hex", "setresp", "replicate_commands", "set_repl",
    "breakpoint", "debug", "LOG_DEBUG", "LOG_VERBOSE", "LOG_NOTICE", "LOG_WARNING", "REPL_ALL",
    "REPL_AOF", "REPL_REPLICA", "REPL_SLAVE", "REPL_NONE", "REDIS_VERSION", "REDIS_VERSION_NUM",
}  # fmt: skip


def assigns_keys(toks: list[Token], i: int) -> bool:
    """Whether the ``KEYS`` at ``i`` is declared or written (``local KEYS``, ``KEYS = ...``,
    ``KEYS[1] = ...``): any of these would let a key reach a call behind ``KEYS[...]``."""
    if i > 0 and toks[i - 1].text == "local":
        return True
    j = i + 1
    if j < len(toks) and toks[j].text == "[":
        depth = 0
        while j < len(toks):
            if toks[j].text in OPEN:
                depth += 1
            elif toks[j].text in (")", "}", "]"):
                depth -= 1
                if depth == 0:
                    break
            j += 1
        j += 1
    return j < len(toks) and toks[j].kind == "op" and toks[j].text == "="


def violations(source: str) -> list[str]:
    """Where ``source`` breaks the rule, one line each; [] when it keeps it."""
    out: list[str] = []
    toks = tokens(source)
    for i, t in enumerate(toks):
        where = f"line {t.line}"
        if t.kind == "name" and t.text == "KEYS" and assigns_keys(toks, i):
            out.append(f"{where}: KEYS is declared or written")
            continue
        if t.kind != "name" or t.text not in ("redis", "server"):
            continue
        if i > 0 and toks[i - 1].text in (".", ":"):
            continue  # a field of another table
        if i + 2 >= len(toks) or toks[i + 1].text != "." or toks[i + 2].kind != "name":
            # redis["call"], local r = redis, rawget(redis, ...): calls the check cannot see.
            out.append(f"{where}: {t.text} is used other than as {t.text}.<name>")
            continue
        member = toks[i + 2].text
        if member in OTHER_MEMBERS:
            continue
        if member not in ("call", "pcall"):
            out.append(f"{where}: {t.text}.{member} is not known to run no command")
            continue
        if i + 3 >= len(toks) or toks[i + 3].text != "(":
            # An alias (local call = redis.call) would hide every call made through it.
            out.append(f"{where}: {t.text}.{member} is not called in place")
            continue
        args, _ = call_args(toks, i + 3)
        if not args or len(args[0]) != 1 or args[0][0].kind != "string":
            out.append(f"{where}: the command is not a literal string")
            continue
        command = args[0][0].text[1:-1].upper()
        if command not in KEY_POSITIONS:
            out.append(f"{where}: {command} has no key positions in KEY_POSITIONS")
            continue
        spread = [n for n, a in enumerate(args[1:], start=1) if is_spread(a)]
        # A spread that can reach a key position hides the key it fills; one after a command's
        # last key (LPUSH's values, ZADD's members) fills no key position.
        last_key = KEY_POSITIONS[command][1]
        if spread and (spread != [len(args) - 1] or last_key < 0 or spread[0] <= last_key):
            out.append(f"{where}: {command}'s arguments are spread, its keys cannot be read")
            continue
        for p in key_positions(command, len(args) - 1):
            if not is_keys_index(args[p]):
                text = " ".join(x.text for x in args[p])
                out.append(f"{where}: {command}'s key {text!r} is not written KEYS[...]")
    return out


def scripts() -> dict[str, str]:
    found = {p.stem: p.read_text() for p in sorted(LUA.glob("*.lua"))}
    assert len(found) >= 30, sorted(found)
    return found


@pytest.mark.parametrize("name", sorted(p.stem for p in LUA.glob("*.lua")))
def test_every_key_is_written_as_keys(name: str) -> None:
    found = violations(scripts()[name])
    if name in BUILDS_KEYS:
        built = f"key {BUILDS_KEYS[name][0]!r} is not written KEYS[...]"
        assert found, f"{name}.lua keeps the rule now: take it out of BUILDS_KEYS"
        others = [v for v in found if not v.endswith(built)]
        assert not others, f"{name}.lua: " + "; ".join(others)
    else:
        assert not found, f"{name}.lua: " + "; ".join(found)


def test_the_checker_refuses_what_the_rule_forbids_or_cannot_see() -> None:
    """Each form Aliyun's documentation refuses, or that would hide a key from the check."""
    refused = {
        "a variable": 'local k = KEYS[1]\nreturn redis.call("GET", k)',
        "an expression": 'return redis.call("GET", KEYS[1] .. ":x")',
        "a built name": 'return redis.pcall("HGET", ARGV[1] .. ARGV[2], "msg")',
        "the second key": 'return redis.call("RPOPLPUSH", KEYS[1], dst)',
        "any of DEL's keys": 'return redis.call("DEL", KEYS[1], KEYS[2], other)',
        "an indexed result": 'return redis.call("GET", KEYS[1][1])',
        "a command variable": 'local c = "GET"\nreturn redis.call(c, KEYS[1])',
        "an alias": 'local call = redis.call\nreturn call("GET", KEYS[1])',
        "spread arguments": 'return redis.call("DEL", unpack(KEYS))',
        "spread keys and values": 'return redis.call("LPUSH", unpack(t))',
        "a spread before the last": 'return redis.call("ZADD", KEYS[1], unpack(t), "x")',
        "a spread as the second key": 'return redis.call("RPOPLPUSH", KEYS[1], ...)',
        "an unknown command": 'return redis.call("OBJECT", "ENCODING", KEYS[1])',
        "a key inside a helper": 'local function f(k) return redis.call("TYPE", k) end',
        "an indexed call": 'return redis["call"]("GET", KEYS[1])',
        "the table aliased": 'local r = redis\nreturn r.call("GET", KEYS[1])',
        "the table passed on": 'return rawget(redis, "call")("GET", KEYS[1])',
        "an unknown member": 'return redis.acl_check_cmd("GET", KEYS[1])',
        "Valkey's alias": 'return server.call("GET", k)',
        "a key written into KEYS": 'KEYS[1] = ARGV[1] .. "x"\nreturn redis.call("GET", KEYS[1])',
        "KEYS replaced": 'KEYS = {ARGV[1]}\nreturn redis.call("GET", KEYS[1])',
        "KEYS shadowed": 'local KEYS = {ARGV[1]}\nreturn redis.call("GET", KEYS[1])',
    }
    for what, source in refused.items():
        assert violations(source), f"not refused: {what}"


def test_the_checker_lets_through_what_the_rule_allows() -> None:
    kept = """
    -- redis.call("GET", x) in a comment is not a call
    --[[ nor redis.call("GET", y) in a long one ]]
    local s = "redis.call('GET', z)"
    for i = 1, #KEYS do
      redis.call("DEL", KEYS[i])
    end
    local n = redis.call("RPOPLPUSH", KEYS[1], KEYS[2 + 4 * (i - 1)])
    redis.pcall("HSET", KEYS[ARGV[1] + 0], "state", "active", "note", KEYS[1] .. "x")
    redis.call("PUBLISH", ARGV[1] .. "done", "")
    if KEYS[1] == ARGV[1] then return redis.error_reply("ERR " .. KEYS[1]) end
    local t = {}
    t.redis = server.call("TYPE", KEYS[2])
    redis.call("LPUSH", KEYS[3], unpack(ids))
    redis.call("ZREM", KEYS[4], "a", unpack(ids, 2))
    return redis.call('ZADD', KEYS[#KEYS], 1, tostring(n))
    """
    assert violations(kept) == []


def test_key_positions_are_redis_own(r: redis.Redis) -> None:
    """Each command's key positions in KEY_POSITIONS are the ones Redis gives."""
    table = r.command()
    for command, want in KEY_POSITIONS.items():
        entry = table[command.lower()]
        flags = {f if isinstance(f, str) else f.decode() for f in entry["flags"]}
        got = (entry["first_key_pos"], entry["last_key_pos"], entry["step_count"])
        assert "movablekeys" not in flags, f"{command}: keys that move cannot be checked here"
        assert got == want, f"{command}: Redis says {got}, KEY_POSITIONS {want}"


def test_the_two_dequeues_check_queues_alike() -> None:
    """dequeue_declared.lua is dequeue.lua written for declared keys: the two are separate
    scripts only because the text rule cannot hold in one that builds key names. Their check of
    a queue's key types is the same text, so a fix to one cannot miss the other."""

    def checks(name: str) -> str:
        source = scripts()[name]
        start = source.index("local function broken_key(")
        return source[start : source.index("\nend\n", start)]

    assert checks("dequeue") == checks("dequeue_declared")
