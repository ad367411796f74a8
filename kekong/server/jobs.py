"""kekong's own job API: submit (202 + id), poll, fetch images, cancel, retry. Nothing is lost:
a job is in SQLite before its id is returned."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse

from kekong.generation.defaults import with_model_defaults
from kekong.request import GenerationRequest
from kekong.server.inputs import image_field
from kekong.server.services import Services
from kekong.server.status import JobStatus
from kekong.server.store import Job

router = APIRouter(prefix="/v1", tags=["jobs"])


def services(request: Request) -> Services:
    return request.app.state.services


@router.post("/jobs", status_code=202)
def submit(request: Request, body: GenerationRequest,
           idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
           metadata: bool = True, watermark: bool = True, c2pa: bool = True) -> JSONResponse:
    """Queue a generation. Images are base64 or data: URIs (the API reads no paths). The same
    `Idempotency-Key` returns the job it first created, so a retried POST makes no second job."""
    svc = services(request)
    fields = with_checked_images(with_model_defaults(body), svc)  # the job holds the values it runs with
    answer = {"layers": {"metadata": metadata, "watermark": watermark, "c2pa": c2pa}}
    kind = "repose" if body.repose is not None else "generate"  # a re-pose: warp, then inpaint (request.repose)
    job, created = svc.submit(fields, kind, answer, idempotency_key, owner=getattr(request.state, "owner", None))
    return JSONResponse(describe(job, svc), status_code=202 if created else 200,
                        headers={"Location": f"/v1/jobs/{job.id}"})


def with_checked_images(body: GenerationRequest, svc: Services) -> dict[str, Any]:
    fields = body.model_dump(mode="json")
    for key in ("init_image", "mask"):
        if fields[key] is not None:
            fields[key] = image_field(fields[key], key, svc.config.urls)
    for index, unit in enumerate(fields["controls"]):
        for key in ("image", "mask"):
            if unit[key] is not None:
                unit[key] = image_field(unit[key], f"controls[{index}].{key}", svc.config.urls)
    if fields["repose"] is not None:
        fields["repose"]["image"] = image_field(fields["repose"]["image"], "repose.image", svc.config.urls)
    return fields


MAX_LIST = 500


@router.get("/jobs")
def list_jobs(request: Request,
              limit: Annotated[int, Query(ge=1, le=MAX_LIST, description="jobs per page, newest first")] = 50,
              offset: Annotated[int, Query(ge=0, le=2**62, description="newest jobs to skip")] = 0,
              ) -> list[dict[str, Any]]:
    svc = services(request)
    return [describe(job, svc) for job in svc.store.list(limit, offset)]


@router.get("/jobs/{job_id}")
def get_job(request: Request, job_id: str) -> dict[str, Any]:
    svc = services(request)
    return describe(_job(svc, job_id), svc)


@router.get("/jobs/{job_id}/images/{index}", response_class=FileResponse)
def get_image(request: Request, job_id: str, index: int) -> FileResponse:
    return _file(request, job_id, index, "images")


@router.get("/jobs/{job_id}/maps/{index}", response_class=FileResponse)
def get_map(request: Request, job_id: str, index: int) -> FileResponse:
    return _file(request, job_id, index, "maps")


@router.delete("/jobs/{job_id}", response_model=None)
def cancel_or_delete(request: Request, job_id: str) -> dict[str, Any] | Response:
    """A queued or running job is cancelled (200, the job); a finished one is deleted with its
    images, maps and the input images no other job uses (204)."""
    svc = services(request)
    job = _job(svc, job_id)
    running = svc.worker.running_job(job_id)
    if running is not None and running.cancel:
        raise HTTPException(409, f"job {job_id} is still running (asked to stop); it can be deleted once it has "
                                 "stopped")
    if not job.status.finished:
        if svc.worker.cancel(job_id):
            return describe(_job(svc, job_id), svc)
        job = _job(svc, job_id)  # it finished meanwhile: delete it below
    if not svc.store.delete(job_id):
        raise HTTPException(409, f"job {job_id} is {_job(svc, job_id).status}; a job is deleted only once it "
                                 "has finished (DELETE cancels it first)")
    return Response(status_code=204)


@router.post("/jobs/{job_id}/retry", status_code=202)
def retry(request: Request, job_id: str) -> dict[str, Any]:
    svc = services(request)
    job = _job(svc, job_id)
    if not svc.store.retry(job_id):
        raise HTTPException(409, f"job {job_id} is {job.status}; only interrupted jobs are retried")
    svc.worker.notify()
    return describe(_job(svc, job_id), svc)


def _job(svc: Services, job_id: str) -> Job:
    job = svc.store.get(job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id!r}")
    return job


def _file(request: Request, job_id: str, index: int, kind: str) -> FileResponse:
    svc = services(request)
    job = _job(svc, job_id)
    if job.status != JobStatus.DONE:
        raise HTTPException(409, f"job {job_id} is {job.status}; images come when it is done")
    items = job.result[kind]
    if not 0 <= index < len(items):
        raise HTTPException(404, f"job {job_id} has {len(items)} {kind} (0-{len(items) - 1})")
    return FileResponse(svc.file(job, items[index]["file"]), media_type="image/png")


def describe(job: Job, svc: Services) -> dict[str, Any]:
    running = svc.worker.running_job(job.id)  # several run at once under serve --ray
    step = running.step if running is not None else job.step
    answer: dict[str, Any] = {
        "id": job.id, "kind": job.kind, "status": job.status, "error": job.error, "retryable": job.retryable,
        "progress": {"step": step, "total": job.total, "fraction": step / job.total if job.total else 0.0},
        "created": job.created, "started": job.started, "finished": job.finished,
        "links": {"self": f"/v1/jobs/{job.id}"},
    }
    if job.status == JobStatus.DONE and job.result:
        answer["images"] = [{"url": f"/v1/jobs/{job.id}/images/{i}", "seed": item["seed"],
                             "infotext": item["infotext"], "fidelity": item.get("fidelity")}
                            for i, item in enumerate(job.result["images"])]
        answer["maps"] = [{"url": f"/v1/jobs/{job.id}/maps/{i}", "unit": item["unit"], "module": item["module"]}
                          for i, item in enumerate(job.result["maps"])]
        answer["warnings"] = job.result.get("warnings", [])  # e.g. a ready map of the wrong polarity
        if job.result.get("stopped"):  # /sdapi/v1/skip or /interrupt: an image is as far as it got
            answer["stopped"] = job.result["stopped"]
    return answer
