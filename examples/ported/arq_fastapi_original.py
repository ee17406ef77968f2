"""The arq + FastAPI original: async endpoints enqueue jobs and await their results.

Kept for comparison with arq_fastapi_ferroq.py (not run: ferroq does not depend on arq).
Worker: ``arq arq_fastapi_original.WorkerSettings``.
"""

import asyncio
import os

from arq import create_pool
from arq.connections import RedisSettings
from arq.jobs import Job, JobStatus
from fastapi import FastAPI, HTTPException

REDIS = RedisSettings.from_dsn(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))


async def thumbnail(ctx: dict, url: str, size: int = 128) -> dict:
    await asyncio.sleep(0.01)
    return {"url": url, "size": size}


async def explode(ctx: dict, why: str) -> None:
    raise RuntimeError(why)


class WorkerSettings:
    functions = [thumbnail, explode]
    redis_settings = REDIS
    keep_result = 3600
    max_tries = 1


api = FastAPI()


@api.on_event("startup")
async def startup() -> None:
    api.state.redis = await create_pool(REDIS)


@api.post("/thumbnails")
async def create(url: str, size: int = 128) -> dict:
    job = await api.state.redis.enqueue_job("thumbnail", url, size)
    return {"id": job.job_id}


@api.get("/thumbnails/{job_id}")
async def status(job_id: str, wait: float = 0) -> dict:
    job = Job(job_id, api.state.redis)
    if await job.status() == JobStatus.not_found:
        raise HTTPException(404, "no such job")
    try:
        return {"done": True, "result": await job.result(timeout=wait or 0.01)}
    except asyncio.TimeoutError:
        return {"done": False, "status": (await job.status()).value}


@api.post("/thumbnails/now")
async def create_and_wait(url: str, size: int = 128) -> dict:
    job = await api.state.redis.enqueue_job("thumbnail", url, size)
    return await job.result(timeout=10)


@api.post("/explode")
async def fail(why: str) -> dict:
    job = await api.state.redis.enqueue_job("explode", why)
    try:
        await job.result(timeout=10)
    except RuntimeError as e:
        return {"error": str(e)}
    return {"error": None}
