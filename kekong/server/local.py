"""The local route `kekong generate` uses to run on an already running `kekong serve` (its models
loaded): loopback clients only, with the token from this server's runtime file (server/runtime.py).

- `GET /v1/local/hello?nonce=N`: the server proves it holds the token (HMAC of the nonce) before
  the CLI sends it anything, so a process that took the port of a dead server learns nothing.
- `POST /v1/local/generate` (token in `X-Kekong-Local-Token`): `{"request": fields, "score": bool,
  "maps": bool}` — the request's images as contents (the server reads no paths), its models by
  name, checked like any job (this server's limits, its models folder). The answer streams
  newline-delimited JSON: `{"job", "total"}`, then `{"step"}` as sampling goes, then `{"done": …}`
  (plain PNGs base64 with their infotext, recipe, fidelity) or `{"error": …}`. The job is queued
  behind the others and deleted once answered; a client that goes away cancels it.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import os
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from kekong import __version__
from kekong.server.runtime import proof
from kekong.server.security import local_token_ok
from kekong.server.services import Services
from kekong.server.status import JobStatus

router = APIRouter(prefix="/v1/local", tags=["local"], include_in_schema=False)
PROGRESS_S = 0.2
HEARTBEAT_S = 5.0  # a line at least this often while a job waits, so the client's read does not time out


def _loopback_services(request: Request) -> Services:
    svc: Services = request.app.state.services
    if svc.config.local_token is None:
        raise HTTPException(404, "this server has no local route (it was not started by `kekong serve`)")
    host = request.client.host if request.client else ""
    try:
        loopback = ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise HTTPException(403, f"the local route answers clients on this machine only (loopback), not {host}")
    return svc


@router.get("/hello")
def hello(request: Request, nonce: Annotated[str, Query(min_length=16, max_length=128)]) -> dict[str, Any]:
    svc = _loopback_services(request)
    return {"proof": proof(svc.config.local_token or "", nonce), "pid": os.getpid(), "port": svc.config.port,
            "version": __version__}


@router.post("/generate")
async def generate(request: Request, body: Annotated[dict[str, Any], Body()]) -> StreamingResponse:
    svc = _loopback_services(request)
    headers = {k.lower(): v for k, v in request.headers.items()}
    if not local_token_ok(svc.config, headers):
        raise HTTPException(403, "missing or wrong local token (X-Kekong-Local-Token)")
    job_id, total = await asyncio.to_thread(_submit, svc, body)
    return StreamingResponse(_stream(svc, job_id, total), media_type="application/x-ndjson")


def _submit(svc: Services, body: dict[str, Any]) -> tuple[str, int]:
    """Validate as /v1/jobs does (request model, images, model names, this server's limits) and queue."""
    from kekong.errors import ParameterError
    from kekong.generation.defaults import with_model_defaults
    from kekong.request import build_request
    from kekong.server.jobs import with_checked_images

    fields = body.get("request")
    if not isinstance(fields, dict):
        raise ParameterError("request: expected the request's fields as an object")
    checked = with_checked_images(with_model_defaults(build_request(**fields)), svc)
    answer = {"local": True, "score": bool(body.get("score", True)), "maps": bool(body.get("maps", False))}
    job, _ = svc.submit(checked, "repose" if fields.get("repose") else "generate", answer, owner="local-cli")
    return job.id, job.total


async def _stream(svc: Services, job_id: str, total: int) -> AsyncIterator[bytes]:
    finished = svc.worker.finished_event(job_id)
    answered = False
    try:
        yield _line({"job": job_id, "total": total})
        step, said = -1, 0.0
        while not finished.is_set():
            await asyncio.sleep(PROGRESS_S)
            said += PROGRESS_S
            job = svc.store.get(job_id)
            if job is not None and (job.step != step or said >= HEARTBEAT_S):
                step, said = job.step, 0.0
                yield _line({"step": step, "total": job.total})
        answered = True
        yield _line(await asyncio.to_thread(_answer, svc, job_id))
    finally:
        if not answered:  # the client went away: stop the job, keep nothing
            svc.worker.cancel(job_id)


def _answer(svc: Services, job_id: str) -> dict[str, Any]:
    job = svc.store.get(job_id)
    if job is None:
        return {"error": f"job {job_id} is gone", "status": "failed"}
    try:
        if job.status != JobStatus.DONE or not job.result:
            return {"error": job.error or f"job {job.status}", "status": str(job.status)}
        result = dict(job.result)
        for kind in ("images", "maps"):
            result[kind] = [{**item, "png": base64.b64encode(svc.file(job, item["file"]).read_bytes()).decode()}
                            for item in result.get(kind, [])]
        return {"done": result}
    finally:
        svc.store.delete(job_id)  # the CLI writes the files; the server keeps no copy


def _line(value: dict[str, Any]) -> bytes:
    return json.dumps(value).encode() + b"\n"
