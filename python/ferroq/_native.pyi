"""Type stub of the Rust core (checked against the built module by stubtest)."""

from typing import Any, TypeAlias, final

__all__ = [
    "BrokerConnectionError",
    "BrokerError",
    "DuplicateTaskError",
    "FerroqError",
    "HandlerNotFoundError",
    "InvalidArgumentError",
    "MalformedMessageError",
    "NativeClient",
    "NativeServer",
    "RevokeTask",
    "ServerClosedError",
    "SkipRetry",
    "TaskIdConflictError",
    "TaskNotFoundError",
    "__version__",
    "decode_task_message",
    "encode_task_message",
]

__version__: str

class FerroqError(Exception): ...
class BrokerError(FerroqError): ...
class BrokerConnectionError(BrokerError): ...
class InvalidArgumentError(FerroqError): ...
class MalformedMessageError(FerroqError): ...
class DuplicateTaskError(FerroqError): ...
class TaskIdConflictError(FerroqError): ...
class TaskNotFoundError(FerroqError): ...
class ServerClosedError(FerroqError): ...
class HandlerNotFoundError(FerroqError): ...
class SkipRetry(FerroqError): ...
class RevokeTask(FerroqError): ...

# (type, payload, headers, queue, max_retry, timeout, deadline, unique, process_at, task_id,
#  retention, group)
_EnqueueRequest: TypeAlias = tuple[
    str,
    bytes | None,
    dict[str, str],
    str | None,
    int | None,
    float | None,
    float | None,
    float | None,
    float | None,
    str | None,
    float | None,
    str | None,
]
# (id, queue, type, payload, headers, state, max_retry, timeout, deadline, next_process_at,
#  retention, group)
_EnqueuedRow: TypeAlias = tuple[
    str, str, str, bytes, dict[str, str], str, int, int, int, int, int, str
]
# (token, id, type, payload, headers, queue, retried, max_retry, deadline)
_LeasedRow: TypeAlias = tuple[int, str, str, bytes, dict[str, str], str, int, int, int]
# (token, code, error, retry delay seconds, is_failure)
_OutcomeRow: TypeAlias = tuple[int, int, str, float | None, bool]

@final
class NativeClient:
    def __new__(
        cls, url: str, namespace: str = "asynq", max_idle: int = 8, tls_ca: bytes | None = None
    ) -> NativeClient: ...
    def enqueue(self, request: _EnqueueRequest) -> _EnqueuedRow: ...
    def enqueue_many(self, requests: list[_EnqueueRequest]) -> list[_EnqueuedRow | FerroqError]: ...
    def ping(self) -> None: ...
    def close(self) -> None: ...

@final
class NativeServer:
    def __new__(
        cls,
        url: str,
        *,
        namespace: str = "asynq",
        concurrency: int = 0,
        queues: dict[str, int] | None = None,
        strict_priority: bool = False,
        task_check_interval: float = 1.0,
        delayed_task_check_interval: float = 5.0,
        janitor_interval: float = 8.0,
        janitor_batch_size: int = 100,
        heartbeat_interval: float = 5.0,
        recoverer_interval: float = 60.0,
        syncer_interval: float = 5.0,
        tls_ca: bytes | None = None,
    ) -> NativeServer: ...
    @property
    def server_id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def queues(self) -> list[tuple[str, int]]: ...
    def start(self) -> None: ...
    def next_batch(self, max: int, timeout: float) -> list[_LeasedRow]: ...
    def finish(self, outcomes: list[_OutcomeRow]) -> None: ...
    def write_result(self, token: int, data: bytes) -> int: ...
    def cancellations(self, timeout: float) -> list[tuple[int, str]]: ...
    def inflight(self) -> list[int]: ...
    def stop_fetching(self) -> None: ...
    def shutdown(self) -> None: ...

def encode_task_message(fields: dict[str, Any]) -> bytes: ...
def decode_task_message(data: bytes) -> dict[str, Any]: ...
