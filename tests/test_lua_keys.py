"""Every Lua script names the keys it touches in KEYS, watched on a real Redis with MONITOR.

``every_script.exercise_every_script`` runs each of the core's scripts; MONITOR shows each
``EVALSHA`` with its KEYS and ARGV, then the commands the script ran. ``COMMAND GETKEYS`` says
which arguments of each inner command are keys, and each must be one of the call's KEYS. A Redis
Cluster only refuses a key outside the call's slot (``test_cluster.py``); Redis asks that a script
be given every key it touches, and proxies hold scripts to that (hibiken/asynq #1086; Aliyun's
reads the script text for it, which ``test_lua_text`` checks), so this test fails on a key that a
call touched without naming it, and on a call that names no key.

The one exception is a key whose name the script learns while it runs: the hash of a task whose id
a dequeue has just popped from pending. Naming it before the call takes a second round trip and a
guard against every other server (the janitor, the recoverer, the forwarder, the archive trim and
the queue deletion do that: they read the IDs first, and their scripts name the hashes). It must
still be built from a prefix the call passes in ARGV and carry the ``{queue}`` hash tag of keys the
call names, so it stays in their slot; the scripts allowed to do this are listed in
``DISCOVERED`` with what they read, and docs/scaling.md names them. With the servers in
declared-keys mode (``declare_keys=True``) there is no exception: the dequeue is
``dequeue_declared.lua``, which names every hash.
"""

from __future__ import annotations

import hashlib
import re
import socket
import threading
import uuid
from dataclasses import dataclass, field

import redis

from every_script import LUA, exercise_every_script

# Scripts that touch task hashes (or, for the forwarder, group sets) named by ids they read.
DISCOVERED = {
    "dequeue": "ids popped from pending",
}

LINE = re.compile(rb"^\S+ \[\d+ ([^\]]+)\] (.*)$")
ARG = re.compile(rb'"((?:[^"\\]|\\.)*)"')
ESCAPES = {
    b"n": b"\n",
    b"r": b"\r",
    b"t": b"\t",
    b"a": b"\a",
    b"b": b"\b",
    b'"': b'"',
    b"\\": b"\\",
}


def unescape(quoted: bytes) -> bytes:
    """Undoes the escaping MONITOR applies to each argument (sdscatrepr)."""
    out = bytearray()
    i = 0
    while i < len(quoted):
        c = quoted[i : i + 1]
        if c == b"\\":
            nxt = quoted[i + 1 : i + 2]
            if nxt == b"x":
                out += bytes([int(quoted[i + 2 : i + 4], 16)])
                i += 4
                continue
            out += ESCAPES.get(nxt, nxt)
            i += 2
            continue
        out += c
        i += 1
    return bytes(out)


def tag(key: bytes) -> bytes:
    """The part of a key Redis Cluster hashes: the first non-empty ``{...}``, else the key."""
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


@dataclass
class Call:
    """One script call seen by MONITOR, with the commands it ran."""

    sha: str
    keys: list[bytes]
    argv: list[bytes]
    inner: list[list[bytes]] = field(default_factory=list)


class Monitor:
    """Collects every script call on one Redis, from a thread reading MONITOR on its own socket."""

    def __init__(self, r: redis.Redis) -> None:
        self.calls: list[Call] = []
        self._r = r
        self._stop = threading.Event()
        self._marker = f"monitor-end-{uuid.uuid4()}".encode()
        self._seen_marker = threading.Event()
        self._error: BaseException | None = None
        kw = r.connection_pool.connection_kwargs
        self._sock = socket.create_connection((kw.get("host", "127.0.0.1"), kw["port"]))
        self._sock.sendall(b"MONITOR\r\n")
        self._buffer = b""
        assert self._line() == b"+OK"
        self._sock.settimeout(0.5)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _line(self) -> bytes:
        # Every argument is escaped on a MONITOR line: a CRLF ends a line and nothing else.
        while b"\r\n" not in self._buffer:
            chunk = self._sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("MONITOR connection closed")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\r\n", 1)
        return line

    def _read(self) -> None:
        try:
            self._read_lines()
        except BaseException as e:  # re-raised by stop(): a dead reader must fail the test
            self._error = e

    def _read_lines(self) -> None:
        current: Call | None = None
        while not self._stop.is_set():
            try:
                line = self._line()
            except TimeoutError:
                continue
            m = LINE.match(line[1:])
            if m is None:
                continue
            args = [unescape(a) for a in ARG.findall(m.group(2))]
            if not args:
                continue
            if m.group(1) == b"lua":
                if current is not None:
                    current.inner.append(args)
                continue
            current = None
            name = args[0].upper()
            if name == b"ECHO" and args[1:] == [self._marker]:
                self._seen_marker.set()
                return
            if name in (b"EVALSHA", b"EVAL") and len(args) >= 3:
                n = int(args[2])
                sha = args[1].decode() if name == b"EVALSHA" else hashlib.sha1(args[1]).hexdigest()
                current = Call(sha, args[3 : 3 + n], args[3 + n :])
                self.calls.append(current)

    def stop(self) -> None:
        """Stops once every command sent before this call has been read: MONITOR shows an
        ECHO of a marker after all of them."""
        self._r.echo(self._marker)
        self._seen_marker.wait(30)
        self._stop.set()
        self._thread.join(5)
        self._sock.close()
        if self._error is not None:
            raise self._error
        assert self._seen_marker.is_set(), "MONITOR never showed the end marker"


def keys_of(r: redis.Redis, command: list[bytes]) -> list[bytes]:
    """The arguments of ``command`` that are keys, as Redis itself says."""
    try:
        return [k if isinstance(k, bytes) else k.encode() for k in r.command_getkeys(*command)]
    except redis.ResponseError:  # a command without keys (PUBLISH, TIME...)
        return []


def undeclared_and_learned(
    redis_url: str, r: redis.Redis, *, declare_keys: bool
) -> tuple[dict[str, set[bytes]], dict[str, int]]:
    """Runs the every-script workload under MONITOR: the keys each script touched without
    naming them, and how many it learned (built from a prefix, as ``DISCOVERED`` allows)."""
    monitor = Monitor(r)
    try:
        exercise_every_script(redis_url, r, declare_keys=declare_keys)
    finally:
        monitor.stop()
    names = {hashlib.sha1(p.read_bytes()).hexdigest(): p.stem for p in LUA.glob("*.lua")}
    seen = {names[c.sha] for c in monitor.calls if c.sha in names}
    # Each mode has its own dequeue script; the other one is never run.
    unused = {"dequeue"} if declare_keys else {"dequeue_declared"}
    assert seen == set(names.values()) - unused, (
        f"scripts the workload never ran: {set(names.values()) - unused - seen}; "
        f"ran though unused: {seen & unused}"
    )
    # A proxy routes a script call by its keys: one with none cannot be routed (Aliyun refuses
    # it: "eval/evalsha number of keys can't be negative or zero").
    keyless = {names.get(c.sha, c.sha) for c in monitor.calls if not c.keys}
    assert not keyless, f"script calls naming no key: {keyless}"
    if not declare_keys:
        assert set(DISCOVERED) <= seen
    undeclared: dict[str, set[bytes]] = {}
    discovered: dict[str, int] = {}
    cache: dict[tuple[bytes, ...], list[bytes]] = {}
    for call in monitor.calls:
        name = names.get(call.sha, call.sha)
        declared = set(call.keys)
        tags = {tag(k) for k in call.keys}
        prefixes = [a for a in call.argv if a.endswith(b":") and b"{" in a]
        for command in call.inner:
            key = tuple(command)
            if key not in cache:
                cache[key] = keys_of(r, command)
            for k in cache[key]:
                if k in declared:
                    continue
                learned = (
                    name in DISCOVERED
                    and any(k.startswith(p) and len(k) > len(p) for p in prefixes)
                    and tag(k) in tags
                )
                if learned:
                    discovered[name] = discovered.get(name, 0) + 1
                else:
                    undeclared.setdefault(name, set()).add(k)
    # The check is only as good as the inner commands it saw.
    assert sum(len(c.inner) for c in monitor.calls) > 1000
    return undeclared, discovered


def test_every_script_names_the_keys_it_touches(redis_url: str, r: redis.Redis) -> None:
    undeclared, discovered = undeclared_and_learned(redis_url, r, declare_keys=False)
    assert not undeclared, f"keys a script touched without naming them in KEYS: {undeclared}"
    assert "dequeue" in discovered, discovered


def test_in_declared_keys_mode_no_script_touches_a_key_it_did_not_name(
    redis_url: str, r: redis.Redis
) -> None:
    """What a proxy that refuses undeclared keys needs (hibiken/asynq #1086): not one."""
    undeclared, discovered = undeclared_and_learned(redis_url, r, declare_keys=True)
    assert not undeclared, f"keys a script touched without naming them in KEYS: {undeclared}"
    assert not discovered, f"keys built while running: {discovered}"
