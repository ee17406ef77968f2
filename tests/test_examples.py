"""Every example in examples/ runs: the ported Celery, RQ and arq apps, FastAPI, Django,
OpenTelemetry and Sentry, each against a real Redis with a real worker."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import ferroq
from ferroq import App, Server
from util import FAST, wait_until

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PORTED = EXAMPLES / "ported"


@pytest.fixture
def load(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Imports an example module afresh with ``REDIS_URL`` pointing at the test's Redis."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    loaded: list[str] = []
    servers: list[Server] = []

    def load_(folder: Path, name: str) -> ModuleType:
        monkeypatch.syspath_prepend(str(folder))
        sys.modules.pop(name, None)
        loaded.append(name)
        return importlib.import_module(name)

    def serve(app: App, **kw: Any) -> Server:
        s = app.server(**{**FAST, **kw})
        s.start(app.mux)
        servers.append(s)
        return s

    load_.serve = serve  # type: ignore[attr-defined]
    yield load_
    for s in servers:
        s.shutdown()
    for name in loaded:
        mod = sys.modules.pop(name, None)
        app = getattr(mod, "app", None) or getattr(mod, "tasks", None)
        if isinstance(app, App):
            app.close()


@pytest.mark.parametrize(
    ("original", "port"),
    [("celery_original.py", "celery_ferroq.py"), ("rq_original.py", "rq_ferroq.py"),
     ("arq_fastapi_original.py", "arq_fastapi_ferroq.py")],
)  # fmt: skip
def test_a_ported_app_is_no_longer_than_its_original(original: str, port: str) -> None:
    def lines(name: str) -> int:
        return len((PORTED / name).read_text().splitlines())

    assert lines(port) <= lines(original) + 3, (lines(port), lines(original))


def test_the_ported_celery_app(load: Any) -> None:
    mod = load(PORTED, "celery_ferroq")
    load.serve(mod.app)
    out = mod.run("sales", "ada@example.com")
    assert out["report"] == {"source": "sales", "rows": 10, "total": 45}
    assert out["sent"] == "sent 45 to ada@example.com"
    assert out["failure"] == "no parser for sales"
    assert out["progress"] == sorted(out["progress"]) and out["progress"][-1] <= 10
    assert len(mod.beat.entry_ids) == 1, "the nightly cleanup is a beat entry"


def test_the_ported_rq_app(load: Any, tmp_path: Path) -> None:
    mod = load(PORTED, "rq_ferroq")
    load.serve(mod.app)
    out = mod.run(str(tmp_path))
    assert out == {
        "words": 4,
        "resized": {"name": "cat.png", "size": [100, 50]},
        "at": 2,
        "failed_first": True,
        "requeued": "hello",
    }


def test_the_ported_arq_fastapi_app(load: Any) -> None:
    from fastapi.testclient import TestClient

    mod = load(PORTED, "arq_fastapi_ferroq")
    load.serve(mod.tasks)
    with TestClient(mod.api) as http:
        job = http.post("/thumbnails", params={"url": "u", "size": 64}).json()["id"]
        done = http.get(f"/thumbnails/{job}", params={"wait": 10}).json()
        assert done == {"done": True, "result": {"url": "u", "size": 64}}
        assert http.post("/thumbnails/now", params={"url": "v"}).json() == {
            "url": "v", "size": 128,
        }  # fmt: skip
        assert http.post("/explode", params={"why": "boom"}).json() == {"error": "boom"}
        assert http.get("/thumbnails/nope").status_code == 404


def test_the_django_project_enqueues_from_a_view_and_its_worker_uses_the_settings(
    redis_url: str,
) -> None:
    project = EXAMPLES / "django_project"
    env = {**os.environ, "REDIS_URL": redis_url, "PYTHONPATH": str(project)}
    ferroq_cli = Path(sys.executable).with_name("ferroq")
    worker = subprocess.Popen(
        [str(ferroq_cli), "worker", "proj.tasks:app", "--task-check-interval", "0.05"],
        cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        script = (
            "import os, json\n"
            "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'proj.settings')\n"
            "import django; django.setup()\n"
            "from django.test import Client\n"
            "c = Client()\n"
            "r = c.post('/signup/', {'email': 'ada@example.com'})\n"
            "assert r.status_code == 202, r.status_code\n"
            "print(json.dumps(c.get('/status/' + r.json()['id'] + '/').json()))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", script], cwd=project, env=env, capture_output=True,
            text=True, timeout=60,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip().endswith(
            '{"done": true, "result": "welcome mail from hello@example.com to ada@example.com"}'
        ), out.stdout
    finally:
        worker.terminate()
        log, _ = worker.communicate(timeout=30)
    assert worker.returncode == 0, log
    assert "'django': 1" in log, "the worker served the queue the project's settings name"


def test_opentelemetry_context_travels_from_the_producer_to_the_task(load: Any) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    otel = load(EXAMPLES, "opentelemetry_tracing")
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    app = App(os.environ["REDIS_URL"])

    @app.task
    def work(x: int) -> int:
        return x

    @app.task
    async def awork(x: int) -> int:
        return x

    otel.instrument(app, tracer)
    load.serve(app)
    with tracer.start_as_current_span("request") as request:
        handles = [work.delay(1), awork.delay(2)]
    assert [h.get(timeout=10) for h in handles] == [1, 2]
    spans = wait_until(lambda: s if len(s := exporter.get_finished_spans()) == 3 else None)
    consumers = [s for s in spans if s.name != "request"]
    assert {s.name for s in consumers} == {work.name, awork.name}
    for s in consumers:
        assert s.context.trace_id == request.get_span_context().trace_id
        assert s.parent is not None and s.parent.span_id == request.get_span_context().span_id
        assert s.attributes is not None and s.attributes["messaging.system"] == "ferroq"
    app.close()


def test_sentry_receives_every_failed_run(load: Any) -> None:
    import sentry_sdk
    from sentry_sdk.envelope import Envelope
    from sentry_sdk.transport import Transport

    events: list[dict[str, Any]] = []

    class Capture(Transport):
        def capture_envelope(self, envelope: Envelope) -> None:
            for item in envelope.items:
                if item.type == "event" and item.payload.json is not None:
                    events.append(item.payload.json)

    sentry = load(EXAMPLES, "sentry_reporting")
    sentry_sdk.init(dsn="http://key@127.0.0.1:9/1", transport=Capture, default_integrations=False)
    try:
        app = App(os.environ["REDIS_URL"])

        @app.task(max_retry=0)
        def fails(x: int) -> None:
            raise LookupError(f"no {x}")

        load.serve(app, error_handler=sentry.report_to_sentry)
        h = fails.delay(7)
        with pytest.raises(LookupError):
            h.get(timeout=10)
        wait_until(lambda: events)
        e = events[0]
        assert e["tags"] == {"ferroq.task_type": fails.name, "ferroq.queue": "default"}
        assert e["contexts"]["ferroq"]["task_id"] == h.id
        assert e["exception"]["values"][-1]["type"] == "LookupError"
        assert h.info().state == ferroq.TaskState("archived"), "reporting changed nothing"
        app.close()
    finally:
        sentry_sdk.init(dsn=None)
