"""The arq + FastAPI app of arq_fastapi_original.py on ferroq: same endpoints, same results.

Worker: ``ferroq worker arq_fastapi_ferroq:tasks``.
"""

import asyncio
import os

from fastapi import FastAPI, HTTPException

from ferroq import App, ResultTimeoutError, TaskNotFoundError

tasks = App(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), result_ttl=3600)


@tasks.task(max_retry=0)
async def thumbnail(url: str, size: int = 128) -> dict:
    await asyncio.sleep(0.01)
    return {"url": url, "size": size}


@tasks.task(max_retry=0)
async def explode(why: str) -> None:
    raise RuntimeError(why)


api = FastAPI()


@api.post("/thumbnails")
async def create(url: str, size: int = 128) -> dict:
    job = await thumbnail.adelay(url, size)
    return {"id": job.id}


@api.get("/thumbnails/{job_id}")
async def status(job_id: str, wait: float = 0) -> dict:
    job = thumbnail.handle(job_id)
    try:
        info = await job.ainfo()
    except TaskNotFoundError:
        raise HTTPException(404, "no such job") from None
    try:
        return {"done": True, "result": await job.wait(timeout=wait or 0.01)}
    except ResultTimeoutError:
        return {"done": False, "status": info.state.value}


@api.post("/thumbnails/now")
async def create_and_wait(url: str, size: int = 128) -> dict:
    job = await thumbnail.adelay(url, size)
    return await job.wait(timeout=10)


@api.post("/explode")
async def fail(why: str) -> dict:
    job = await explode.adelay(why)
    try:
        await job.wait(timeout=10)
    except RuntimeError as e:
        return {"error": str(e)}
    return {"error": None}
