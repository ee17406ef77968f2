"""Task calls as mypy sees them: each line marked ``# error: <code>`` must be rejected.

Checked by ``tests/test_typing.py`` (mypy --strict on this file alone); the main mypy run
excludes it, since the rejected calls are the point.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from ferroq import App, TaskHandle

app = App()


@app.task
def add(x: int, y: int, *, scale: float = 1.0) -> int:
    return int((x + y) * scale)


@app.task(queue="io", max_retry=3)
async def fetch(url: str) -> bytes:
    return url.encode()


# ---- accepted -------------------------------------------------------------------------------

h: TaskHandle[int] = add.delay(1, 2)
h2: TaskHandle[int] = add.enqueue(1, y=2, scale=0.5)
h3: TaskHandle[bytes] = fetch.delay("https://example.com")
n: int = add(1, 2)
n2: int = h.get(timeout=5)
later = add.with_options(countdown=5, queue="low").delay(1, 2)
eta = add.with_options(eta=datetime.now(timezone.utc)).enqueue(3, 4)
untyped = add.apply_async((1, 2), {"scale": 2.0}, countdown=10, task_id="id-1")


async def waits() -> None:
    got: bytes = await h3
    again: int = await add.delay(1, 2).wait(timeout=3)
    body: bytes = await fetch("u")
    print(got, again, body)


asyncio.run(waits())

# ---- rejected -------------------------------------------------------------------------------

add.delay("1", 2)  # error: arg-type
add.delay(1)  # error: call-arg
add.delay(1, 2, colour="red")  # error: call-arg
add.enqueue(1, 2, scale="big")  # error: arg-type
fetch.delay(b"bytes")  # error: arg-type
add.with_options(countdown=5).delay(1, "2")  # error: arg-type
add.with_options(priority=1)  # error: call-arg
add.apply_async((1, 2), countdown="soon")  # error: arg-type
wrong: TaskHandle[str] = add.delay(1, 2)  # error: assignment
s: str = h.get()  # error: assignment
