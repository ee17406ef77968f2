"""An independent reader of asynq's protobuf messages for the tests.

It decodes the protobuf wire format by hand from the field numbers in asynq's ``asynq.proto``, so
what the tests see in Redis does not depend on ferroq's own decoder.
"""

from __future__ import annotations

from typing import Any

TASK_FIELDS = {
    1: ("type", "str"),
    2: ("payload", "bytes"),
    3: ("id", "str"),
    4: ("queue", "str"),
    5: ("retry", "int"),
    6: ("retried", "int"),
    7: ("error_msg", "str"),
    8: ("timeout", "int"),
    9: ("deadline", "int"),
    10: ("unique_key", "str"),
    11: ("last_failed_at", "int"),
    12: ("retention", "int"),
    13: ("completed_at", "int"),
    14: ("group_key", "str"),
    15: ("headers", "map"),
}
TIMESTAMP_FIELDS = {1: ("seconds", "int"), 2: ("nanos", "int")}
SERVER_FIELDS = {
    1: ("host", "str"),
    2: ("pid", "int"),
    3: ("server_id", "str"),
    4: ("concurrency", "int"),
    5: ("queues", "map_int"),
    6: ("strict_priority", "bool"),
    7: ("status", "str"),
    8: ("start_time", "ts"),
    9: ("active_worker_count", "int"),
}
WORKER_FIELDS = {
    1: ("host", "str"),
    2: ("pid", "int"),
    3: ("server_id", "str"),
    4: ("task_id", "str"),
    5: ("task_type", "str"),
    6: ("task_payload", "bytes"),
    7: ("queue", "str"),
    8: ("start_time", "ts"),
    9: ("deadline", "ts"),
}

SCHEDULER_ENTRY_FIELDS = {
    1: ("id", "str"),
    2: ("spec", "str"),
    3: ("task_type", "str"),
    4: ("task_payload", "bytes"),
    5: ("enqueue_options", "strs"),
    6: ("next_enqueue_time", "ts"),
    7: ("prev_enqueue_time", "ts"),
}
ENQUEUE_EVENT_FIELDS = {1: ("task_id", "str"), 2: ("enqueue_time", "ts")}


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def fields(buf: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, raw value) for each field in order."""
    out: list[tuple[int, int, Any]] = []
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(buf, i)
            out.append((num, wt, v))
        elif wt == 2:
            n, i = _varint(buf, i)
            out.append((num, wt, buf[i : i + n]))
            i += n
        elif wt == 1:
            out.append((num, wt, buf[i : i + 8]))
            i += 8
        elif wt == 5:
            out.append((num, wt, buf[i : i + 4]))
            i += 4
        else:
            raise ValueError(f"unsupported wire type {wt}")
    return out


def decode(buf: bytes, schema: dict[int, tuple[str, str]]) -> dict[str, Any]:
    """Decodes ``buf`` with ``schema``; absent fields get proto3 defaults."""
    defaults: dict[str, Any] = {"str": "", "bytes": b"", "int": 0, "bool": False, "ts": None}
    msg: dict[str, Any] = {}
    for name, kind in schema.values():
        msg[name] = {} if kind in ("map", "map_int") else [] if kind == "strs" else defaults[kind]
    for num, _wt, raw in fields(buf):
        if num not in schema:
            msg.setdefault("_unknown", []).append(num)
            continue
        name, kind = schema[num]
        if kind == "str":
            msg[name] = raw.decode()
        elif kind == "strs":
            msg[name].append(raw.decode())
        elif kind == "bytes":
            msg[name] = bytes(raw)
        elif kind == "int":
            msg[name] = _signed(raw)
        elif kind == "bool":
            msg[name] = bool(raw)
        elif kind in ("map", "map_int"):
            entry = {n: v for n, _w, v in fields(raw)}
            key = entry.get(1, b"").decode()
            val = entry.get(2, b"" if kind == "map" else 0)
            msg[name][key] = val.decode() if kind == "map" else _signed(val)
        elif kind == "ts":
            msg[name] = decode(raw, TIMESTAMP_FIELDS)
    return msg


def task(buf: bytes) -> dict[str, Any]:
    """Decodes a TaskMessage."""
    return decode(buf, TASK_FIELDS)


def server_info(buf: bytes) -> dict[str, Any]:
    """Decodes a ServerInfo."""
    return decode(buf, SERVER_FIELDS)


def worker_info(buf: bytes) -> dict[str, Any]:
    """Decodes a WorkerInfo."""
    return decode(buf, WORKER_FIELDS)


def _enc_varint(v: int) -> bytes:
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode_task(**kw: Any) -> bytes:
    """Encodes a TaskMessage the way any proto3 writer would (for messages ferroq did not write)."""
    names = {name: (num, kind) for num, (name, kind) in TASK_FIELDS.items()}
    out = bytearray()
    for name, value in kw.items():
        num, kind = names[name]
        if kind in ("str", "bytes"):
            data = value.encode() if isinstance(value, str) else value
            out += _enc_varint(num << 3 | 2) + _enc_varint(len(data)) + data
        elif kind == "int":
            out += _enc_varint(num << 3) + _enc_varint(value)
        elif kind == "map":
            for k, v in value.items():
                entry = (
                    b"\x0a"
                    + _enc_varint(len(k))
                    + k.encode()
                    + b"\x12"
                    + _enc_varint(len(v))
                    + v.encode()
                )
                out += _enc_varint(num << 3 | 2) + _enc_varint(len(entry)) + entry
    return bytes(out)


def scheduler_entry(buf: bytes) -> dict[str, Any]:
    """Decodes a SchedulerEntry."""
    return decode(buf, SCHEDULER_ENTRY_FIELDS)


def enqueue_event(buf: bytes) -> dict[str, Any]:
    """Decodes a SchedulerEnqueueEvent."""
    return decode(buf, ENQUEUE_EVENT_FIELDS)
