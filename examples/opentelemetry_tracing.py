"""OpenTelemetry trace propagation through task headers: producer span → worker span.

The App's ``on_enqueue`` hook injects the current trace context into every call's headers; a
``ServeMux`` middleware extracts it on the worker and runs the task in a child span, so a trace
started in a web request continues through the task (W3C ``traceparent``, the OpenTelemetry
default propagator). Any OpenTelemetry exporter works; the test uses the in-memory one.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

from ferroq import App, Task
from ferroq.servemux import Handler


def instrument(app: App, tracer: trace.Tracer) -> None:
    """Propagates trace context from every call of ``app`` into the span of its run."""

    @app.on_enqueue
    def inject(headers: dict[str, str]) -> None:
        propagate.inject(headers)

    def middleware(handler: Handler) -> Handler:
        def span(task: Task) -> Any:
            ctx = propagate.extract(task.headers)
            return tracer.start_as_current_span(
                task.type, context=ctx, kind=SpanKind.CONSUMER,
                attributes={"messaging.system": "ferroq", "messaging.message.id": task.id or "",
                            "messaging.destination.name": task.queue or ""},
            )  # fmt: skip

        if inspect.iscoroutinefunction(handler):

            async def run_async(task: Task) -> None:
                with span(task):
                    out = handler(task)
                    if isinstance(out, Awaitable):
                        await out

            return run_async

        def run(task: Task) -> None:
            with span(task):
                handler(task)

        return run

    app.mux.use(middleware)
