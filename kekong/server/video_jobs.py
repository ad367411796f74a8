"""`POST /v1/jobs/video`: a video-to-video job. The source is uploaded (base64) or named by a path
inside the server's video folder (DATA/server/videos; no other path is read). Everything is
checked before the job is queued — the source (a video at all, frames, size, constant rate), the
trimming, the request for frame 0 — and the job then runs in the one worker like any other:
per-frame progress (`GET /v1/jobs/{id}/frames`), cancel (`DELETE /v1/jobs/{id}`), retry of an
interrupted job (it resumes from the frames it had finished), the MP4 at `GET /v1/jobs/{id}/video`."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from kekong.errors import KekongError, ParameterError
from kekong.server.jobs import _job, describe, services
from kekong.server.services import check_models
from kekong.server.status import JobStatus
from kekong.server.video_run import OUTPUT, frames_progress
from kekong.video.spec import VideoSettings

router = APIRouter(prefix="/v1", tags=["jobs"])
MAX_UPLOAD = 512 * 1024 * 1024  # bytes of an uploaded source (the server's body limit may be lower)
SUFFIXES = {b"GIF8": ".gif", b"\x1aE\xdf\xa3": ".webm"}  # by magic; ISO media (MP4/MOV) by its ftyp box


class VideoJob(BaseModel):
    """A video job: the generation request (a unit without an image reads each source frame), the
    video settings, and the source — `source` (base64 or a data: URI) or `path` (in the video folder)."""

    model_config = ConfigDict(extra="forbid")

    request: dict[str, Any] = Field(description="GenerationRequest fields; units without an image read the frame")
    video: VideoSettings = Field(default_factory=VideoSettings)
    source: str | None = Field(None, description="the source video, base64 or a data: URI")
    path: str | None = Field(None, description="a file in the server's video folder (DATA/server/videos)")


def video_folder(svc: Any) -> Path:
    return Path(svc.store.root) / "videos"


def source_path(body: VideoJob, svc: Any) -> tuple[Path, bool]:
    """Where the job's source is: the upload stored by its sha256, or the named file, which must
    lie inside the video folder (no `..`, no absolute path, no link out of it); and whether this
    request stored it (an upload already there may be another queued job's source)."""
    folder = video_folder(svc)
    if (body.source is None) == (body.path is None):
        raise ParameterError("send the source video as `source` (base64) or name it with `path`, not both")
    if body.path is not None:
        try:
            target = (folder / body.path).resolve()
        except (OSError, ValueError):  # a NUL byte, a loop of links
            raise ParameterError(f"path: {body.path!r} is not a file name") from None
        if Path(body.path).is_absolute() or not target.is_relative_to(folder.resolve()):
            raise ParameterError(f"path: {body.path!r} is outside the server's video folder (give a name inside it)")
        if not target.is_file():
            raise ParameterError(f"path: no file {body.path!r} in the server's video folder")
        return target, False
    payload = body.source.partition(",")[2] if body.source.startswith("data:") else body.source
    try:
        data = base64.b64decode(payload, validate=True)
    except ValueError:
        raise ParameterError("source: not base64") from None
    if not data or len(data) > MAX_UPLOAD:
        raise ParameterError(f"source: {len(data)} bytes (1 to {MAX_UPLOAD} accepted)")
    suffix = ".mp4" if data[4:8] == b"ftyp" else SUFFIXES.get(data[:4], ".video")
    target = svc.store.uploads / f"{hashlib.sha256(data).hexdigest()}{suffix}"  # the store deletes it with its jobs
    if target.is_file():
        return target, False
    from kekong.io import write_atomic

    return write_atomic(target, data), True


@router.post("/jobs/video", status_code=202)
def submit_video(request: Request, body: VideoJob,
                 idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
                 metadata: bool = True, watermark: bool = True, c2pa: bool = True) -> JSONResponse:
    """Queue a video-to-video job (checked first: source, trimming, frame 0's request, server limits)."""
    import tempfile

    from kekong.generation.defaults import with_model_defaults
    from kekong.generation.pipeline import steps_per_batch
    from kekong.request import build_request
    from kekong.video.run import FRAME, plan

    svc = services(request)
    units = body.request.get("controls") or []
    if not isinstance(units, list) or not all(isinstance(unit, dict) for unit in units):
        raise ParameterError("request.controls: a list of control units (objects)")
    fields = {**body.request, "controls": [{**unit, "image": unit.get("image") or FRAME} for unit in units]}
    build_request(**fields)  # the request's own rules first (names every bad field), before the source is read
    source, stored = source_path(body, svc)
    try:
        with tempfile.TemporaryDirectory() as scratch:  # the plan's checks only; the job's folder comes later
            planned = plan(source, Path(scratch) / "check.mp4", body.video, fields)
    except KekongError as error:
        if stored:
            source.unlink(missing_ok=True)  # a refused upload is not kept (one another job uploaded stays)
        raise ParameterError(str(error).replace(source.name, "source" if body.source is not None else body.path)) \
            from None
    first = with_model_defaults(planned.first)
    svc.config.limits.check(first)
    check_models(first)
    stored = build_request(**{**planned.fields, "seed": first.seed})  # a drawn seed is the job's from now on
    later = steps_per_batch(first.model_copy(update={"init_image": "x", "denoising_strength":
                                                     body.video.flow_strength})) if body.video.flow_strength \
        else steps_per_batch(first)
    total = steps_per_batch(first) + later * (len(planned.numbers) - 1)
    answer = {"layers": {"metadata": metadata, "watermark": watermark, "c2pa": c2pa},
              "video": {"source": str(source), "settings": body.video.model_dump(mode="json"),
                        "frames": len(planned.numbers)}}
    payload = {"request": with_model_defaults(stored).model_dump(mode="json"), "answer": answer}
    job, created = svc.store.submit("video", payload, total, idempotency_key, max_active=svc.config.max_queue,
                                    owner=getattr(request.state, "owner", None))
    if created:
        svc.worker.notify()
    return JSONResponse(video_answer(job, svc), status_code=202 if created else 200,
                        headers={"Location": f"/v1/jobs/{job.id}"})


def video_answer(job: Any, svc: Any) -> dict[str, Any]:
    """The job as /v1/jobs describes it, with its frames' progress and the video's link (never the
    source's path on the server)."""
    answer = describe(job, svc)
    answer["frames"] = frames_progress(svc.store.output_dir(job.id)) or \
        {"done": 0, "total": job.payload.get("answer", {}).get("video", {}).get("frames"), "seconds_left": None}
    answer["links"]["frames"] = f"/v1/jobs/{job.id}/frames"
    if job.status == JobStatus.DONE and (job.result or {}).get("video"):
        answer["video"] = {**job.result["video"], "url": f"/v1/jobs/{job.id}/video"}
        answer["video"].pop("file", None)
    return answer


@router.get("/jobs/{job_id}/frames")
def get_frames(request: Request, job_id: str) -> dict[str, Any]:
    """A video job's per-frame progress: frames done, frames in all, the estimate of seconds left."""
    svc = services(request)
    job = _job(svc, job_id)
    if job.kind != "video":
        raise HTTPException(404, f"job {job_id} is a {job.kind} job, not a video job")
    return video_answer(job, svc)


@router.get("/jobs/{job_id}/video", response_class=FileResponse)
def get_video(request: Request, job_id: str) -> FileResponse:
    svc = services(request)
    job = _job(svc, job_id)
    if job.kind != "video":
        raise HTTPException(404, f"job {job_id} is a {job.kind} job, not a video job")
    if job.status != JobStatus.DONE:
        raise HTTPException(409, f"job {job_id} is {job.status}; the video comes when it is done")
    return FileResponse(svc.store.output_dir(job.id) / OUTPUT, media_type="video/mp4")
