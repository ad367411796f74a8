"""A1111's `/sdapi/v1/*` routes, with the same request and response shapes, so existing clients
work unchanged. Generation goes through the job queue: `/progress` and `/interrupt` refer to
the running job, and a client that goes away does not stop its job."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from kekong.errors import ParameterError
from kekong.server.a1111_models import Img2ImgRequest, Txt2ImgRequest
from kekong.server.a1111_request import Translated
from kekong.server.services import Services
from kekong.server.status import JobStatus

router = APIRouter(prefix="/sdapi/v1", tags=["A1111"])


def services(request: Request) -> Services:
    return request.app.state.services


@router.post("/txt2img")
async def txt2img(request: Request, body: Txt2ImgRequest) -> Any:
    return await _generate(request, body)


@router.post("/img2img")
async def img2img(request: Request, body: Img2ImgRequest) -> Any:
    return await _generate(request, body)


async def _generate(request: Request, body: Txt2ImgRequest | Img2ImgRequest) -> Any:
    """The body's own translation (`to_request`) queued; answered with every field under A1111's
    name, defaults filled in as A1111 does, as `parameters`."""
    svc = services(request)
    translated = body.to_request(svc.options, svc.config.urls, svc.config.strict)
    route, payload = body.route, body.payload()
    answer = {"send_maps": translated.send_maps, "unit_maps": translated.unit_maps}
    job, _ = svc.submit(translated.fields, route, answer, grid=translated.grid,
                        owner=getattr(request.state, "owner", None))
    job = await svc.wait(job.id)
    if job.status != JobStatus.DONE:
        internal = (job.error or "").startswith("internal")
        status = 409 if job.status == JobStatus.CANCELLED else 500 if internal else 422
        return JSONResponse({"error": str(job.status), "detail": job.error or "", "job": job.id}, status_code=status)
    return _response(svc, job, payload, translated)


def _response(svc: Services, job: Any, payload: dict[str, Any], translated: Translated) -> dict[str, Any]:
    result = job.result
    items = result["images"]
    if result.get("grid"):  # A1111's X/Y/Z plot: the grid, then what its flags add (grid_job)
        items = [items[i] for i in result["grid"]["answer"]]
    images = [svc.image_b64(job, item["file"]) for item in items] if translated.send_images else []
    if translated.send_images:
        images += [svc.image_b64(job, item["file"]) for item in result["maps"]]
        if translated.include_init_images and translated.fields.get("init_image"):
            images.append(translated.fields["init_image"].partition(",")[2])
    parameters = {k: v for k, v in payload.items()}
    for key in ("init_images", "mask"):
        if key in parameters:
            parameters[key] = None
    return {"images": images, "parameters": parameters, "info": json.dumps(_info(job, translated))}


def _info(job: Any, translated: Translated) -> dict[str, Any]:
    """A1111's Processed.js() fields."""
    result, request = job.result, job.result["request"]
    items = [i for i in result["images"] if not i.get("sheet")]  # the images made (an X/Y/Z plot's cells)
    sheet = next((i for i in result["images"] if i.get("sheet")), None)
    first = items[0] if items else {}
    model = result.get("model") or {}
    return {
        "prompt": request["prompt"], "all_prompts": [i["prompt"] for i in items],
        "negative_prompt": request["negative_prompt"], "all_negative_prompts": [i["negative_prompt"] for i in items],
        "seed": first.get("seed", request["seed"]), "all_seeds": [i["seed"] for i in items],
        "subseed": first.get("subseed") if first.get("subseed") is not None else request["subseed"],
        "all_subseeds": [i["subseed"] if i["subseed"] is not None else request["subseed"] for i in items],
        "subseed_strength": request["subseed_strength"], "width": first.get("width", request["width"]),
        "height": first.get("height", request["height"]), "sampler_name": request["sampler"],
        "cfg_scale": request["cfg_scale"], "steps": request["steps"], "batch_size": request["batch_size"],
        "restore_faces": False, "face_restoration_model": None, "sd_model_name": model.get("name"),
        "sd_model_hash": model.get("hash"), "sd_vae_name": result.get("vae"), "sd_vae_hash": None,
        "seed_resize_from_w": request["seed_resize_from_w"], "seed_resize_from_h": request["seed_resize_from_h"],
        "denoising_strength": request["denoising_strength"], "extra_generation_params": {},
        "index_of_first_image": 0 if sheet is None else 1, "styles": [],
        "infotexts": [i["infotext"] for i in ([sheet] if sheet else []) + items],  # A1111: the grid's first
        "job_timestamp": time.strftime("%Y%m%d%H%M%S", time.gmtime(job.created)),
        "clip_skip": request["clip_skip"], "is_using_inpainting_conditioning": False, "version": "kekong",
        "kekong": {"job": job.id, "warnings": translated.warnings, "stopped": result.get("stopped", []),
                   "fidelity": [i.get("fidelity") for i in items],  # per image: per unit, kekong.fidelity
                   **({"grid": result["grid"]} if result.get("grid") else {})},
    }


@router.get("/sd-models")
def sd_models() -> list[dict[str, Any]]:
    from kekong.models.catalog import base_models

    return base_models()


@router.get("/samplers")
def samplers() -> list[dict[str, Any]]:
    from kekong.generation.samplers import SAMPLER_NAMES

    return [{"name": name, "aliases": [], "options": {}} for name in SAMPLER_NAMES]


@router.get("/schedulers")
def schedulers() -> list[dict[str, Any]]:
    from kekong.generation.samplers import SCHEDULE_TYPES

    return [{"name": name.lower().replace(" ", "_"), "label": name} for name in SCHEDULE_TYPES]


@router.get("/upscalers")
def upscalers() -> list[dict[str, Any]]:
    """Hires-fix upscalers: the image ones, then the ESRGAN-family files in the models folder."""
    from kekong.generation.hires import IMAGE_UPSCALERS
    from kekong.models import esrgan

    rows = [{"name": name, "model_name": None, "model_path": None, "model_url": None, "scale": None}
            for name in IMAGE_UPSCALERS]
    for name in esrgan.available():
        rows.append({"name": name, "model_name": "ESRGAN", "model_path": None, "model_url": None, "scale": 4})
    return rows


@router.get("/latent-upscale-modes")
def latent_upscale_modes() -> list[dict[str, Any]]:
    from kekong.generation.hires import LATENT_UPSCALERS

    return [{"name": name} for name in LATENT_UPSCALERS]


@router.get("/sd-vae")
def sd_vae() -> list[dict[str, Any]]:
    from kekong.models.refs import list_local

    return [{"model_name": p.stem if p.is_file() else p.name, "filename": p.name} for p in list_local("vae")]


@router.get("/options")
def get_options(request: Request) -> dict[str, Any]:
    return dict(services(request).options)


@router.post("/options")
def set_options(request: Request, values: Annotated[dict[str, Any], Body()]) -> Any:
    services(request).set_options(values)
    return None


@router.get("/progress")
def progress(request: Request, skip_current_image: bool = False) -> dict[str, Any]:
    import base64

    svc = services(request)
    running = svc.worker.running
    queued = svc.store.count(JobStatus.QUEUED)
    if running is None:
        return {"progress": 0.0, "eta_relative": 0.0, "current_image": None, "textinfo": None,
                "state": {"skipped": False, "interrupted": False, "job": "", "job_count": queued,
                          "job_timestamp": "0", "job_no": 0, "sampling_step": 0, "sampling_steps": 0}}
    fraction = running.step / running.total if running.total else 0.0
    elapsed = time.time() - running.started
    eta = elapsed / fraction - elapsed if fraction > 0 else 0.0
    preview = None if skip_current_image else svc.preview_png()
    return {"progress": fraction, "eta_relative": eta,
            "current_image": base64.b64encode(preview).decode() if preview else None, "textinfo": None,
            "state": {"skipped": running.stop is not None and running.stop.value == "skip",
                      "interrupted": running.cancel or (running.stop is not None and running.stop.value == "interrupt"),
                      "job": running.job_id,
                      "job_count": queued + len(svc.worker.runs), "job_timestamp": "0", "job_no": 0,
                      "sampling_step": running.step, "sampling_steps": running.total}}


@router.post("/interrupt")
def interrupt(request: Request) -> dict[str, Any]:
    """As A1111: the running generation stops at its next step and its request answers 200 with
    the images made so far (the batch under way decoded where it stopped); `interrupted`: the
    job's id, or null when nothing runs."""
    return {"interrupted": services(request).worker.interrupt()}


@router.post("/skip")
def skip(request: Request) -> dict[str, Any]:
    """As A1111: the batch under way ends at its next step, kept as it is, and the next batch of the
    request (n_iter) runs; `skipped`: the job's id, or null when nothing runs."""
    return {"skipped": services(request).worker.skip()}


class ImageRequest(BaseModel):
    """A1111's PNGInfoRequest / InterrogateRequest; kekong needs the image (A1111 fails without one)."""

    image: str = Field(description="the image: base64 or a data: URI")
    model: str = Field("clip", description="/interrogate only: clip, or structure (offline)")


@router.post("/png-info")
def png_info(payload: ImageRequest) -> dict[str, Any]:
    """A1111's answer: the infotext, the image's other metadata and A1111's parameters dict."""
    from kekong.server.png_info import png_info_answer

    return png_info_answer(payload.image)


@router.post("/interrogate")
def interrogate(payload: ImageRequest) -> dict[str, Any]:
    """A1111's `clip` model → kekong's CLIP interrogator (needs its weights); `structure` runs
    offline (pose, colours, kind of picture)."""
    from kekong.io import image_source, load_image
    from kekong.server.inputs import image_field

    image = load_image(image_source(image_field(payload.image, "image")))
    model = (payload.model or "clip").lower()
    if model == "structure":
        from kekong.prompt.describe import describe_structure

        return {"caption": describe_structure(image).prompt}
    if model not in ("clip", "deepdanbooru"):
        raise ParameterError(f"model: {model!r}; expected clip or structure")
    if model == "deepdanbooru":
        raise ParameterError("model: deepdanbooru is not in kekong; use clip or structure")
    from kekong.prompt.interrogate import interrogate as run

    return {"caption": run(image).prompt}
