"""How task functions' arguments and results become bytes, and back.

The wire format (docs/tasks.md) is plain enough for any language to read and write:

* the task's payload is one object ``{"args": [...], "kwargs": {...}}`` (either key may be left
  out), encoded with the codec named by the task's ``content-type`` header — JSON
  (``application/json``, the default) or msgpack (``application/msgpack``);
* a result is the return value encoded with the same codec, in asynq's ``result`` field;
* a failure leaves the exception as JSON ``{"type", "message", "traceback"}`` in the task
  hash's ``exception`` field (the message's error text stays asynq's ``Type: message``).

Encoding is msgspec's (bench/codec.py measures it against orjson and the standard library):
datetimes, UUIDs, dataclasses, enums, sets and msgspec Structs encode as JSON does them; a
value it cannot encode is a ``TypeError`` at the call. Nothing is ever pickled.
"""

from __future__ import annotations

from typing import Any, Final, Protocol

import msgspec

from ferroq.errors import InvalidArgumentError

__all__ = [
    "JSON",
    "MSGPACK",
    "RAW",
    "Codec",
    "JsonCodec",
    "MsgpackCodec",
    "RawCodec",
    "codec_for",
    "codec_named",
]

CONTENT_TYPE: Final = "content-type"
"""The header naming a task function's codec."""


class Codec(Protocol):
    """Turns values into bytes and back."""

    name: str
    """Short name: ``json`` or ``msgpack``."""
    content_type: str
    """The ``content-type`` header value that names it on a task."""

    def encode(self, value: Any) -> bytes:
        """``value`` as bytes; ``TypeError`` for a value the codec cannot encode."""
        ...

    def decode(self, data: bytes) -> Any:
        """The value ``data`` holds; ``msgspec.DecodeError`` for bytes that are not one."""
        ...


def _enc_hook(value: Any) -> Any:
    raise TypeError(
        f"cannot encode a {type(value).__name__} as a task argument or result "
        "(use JSON-like values, dataclasses, datetimes, UUIDs, enums or msgspec Structs)"
    )


class JsonCodec:
    """JSON, by msgspec: the default, and what a Go or any other client writes most easily."""

    name = "json"
    content_type = "application/json"

    def __init__(self) -> None:
        self._enc = msgspec.json.Encoder(enc_hook=_enc_hook)
        self._dec = msgspec.json.Decoder()

    def encode(self, value: Any) -> bytes:
        """``value`` as JSON."""
        return self._enc.encode(value)

    def decode(self, data: bytes) -> Any:
        """The JSON value of ``data``."""
        return self._dec.decode(data)


class MsgpackCodec:
    """msgpack, by msgspec: smaller payloads, bytes values kept as bytes."""

    name = "msgpack"
    content_type = "application/msgpack"

    def __init__(self) -> None:
        self._enc = msgspec.msgpack.Encoder(enc_hook=_enc_hook)
        self._dec = msgspec.msgpack.Decoder()

    def encode(self, value: Any) -> bytes:
        """``value`` as msgpack."""
        return self._enc.encode(value)

    def decode(self, data: bytes) -> Any:
        """The msgpack value of ``data``."""
        return self._dec.decode(data)


class RawCodec:
    """Bytes as they are: the results of plain handlers (``Task.write_result``)."""

    name = "raw"
    content_type = "application/octet-stream"

    def encode(self, value: Any) -> bytes:
        """``value`` itself; it must be bytes."""
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"expected bytes, not {type(value).__name__}")
        return bytes(value)

    def decode(self, data: bytes) -> Any:
        """``data`` itself."""
        return data


JSON: Final = JsonCodec()
RAW: Final = RawCodec()
MSGPACK: Final = MsgpackCodec()
_BY_NAME: Final[dict[str, Codec]] = {"json": JSON, "msgpack": MSGPACK}
_BY_TYPE: Final[dict[str, Codec]] = {c.content_type: c for c in _BY_NAME.values()}


def codec_named(name: str | Codec) -> Codec:
    """The codec called ``name`` (``json`` or ``msgpack``), or ``name`` itself if it is one.

    Raises:
        InvalidArgumentError: An unknown name.
    """
    if not isinstance(name, str):
        return name
    try:
        return _BY_NAME[name]
    except KeyError:
        raise InvalidArgumentError(
            f"unknown codec {name!r}: use {' or '.join(map(repr, _BY_NAME))}"
        ) from None


def codec_for(headers: dict[str, str], default: Codec) -> Codec:
    """The codec a task's ``content-type`` header names (``default`` when it names none).

    Raises:
        InvalidArgumentError: The header names a codec ferroq does not have.
    """
    ct = headers.get(CONTENT_TYPE)
    if ct is None:
        return default
    try:
        return _BY_TYPE[ct]
    except KeyError:
        raise InvalidArgumentError(f"unsupported content-type {ct!r}") from None
