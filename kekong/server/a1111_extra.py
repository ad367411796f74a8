"""The rest of A1111 1.10's `/sdapi/v1/*` routes that clients (webuiapi, front-ends that drive A1111)
call at start-up: LoRA/embedding/style/script lists, refreshes, flags, memory — and the Extras
upscale. Shapes are A1111's; nothing names a local path (files by name only)."""

from __future__ import annotations

import base64
import os
import resource
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from kekong import __version__
from kekong.errors import ParameterError
from kekong.server.a1111_request import styles_file
from kekong.server.services import Services

router = APIRouter(prefix="/sdapi/v1", tags=["A1111"])


def services(request: Request) -> Services:
    return request.app.state.services


@router.get("/loras")
def loras() -> list[dict[str, Any]]:
    """LoRAs in the models folder: name, alias, file name (never the folder), training metadata."""
    from kekong.models.refs import list_local

    return [{"name": path.stem, "alias": path.stem, "path": path.name, "metadata": _metadata(path)}
            for path in list_local("lora")]


@router.post("/refresh-loras")
def refresh_loras() -> None:
    return None  # kekong lists the folder at every call: nothing is cached


@router.post("/refresh-checkpoints")
def refresh_checkpoints() -> None:
    return None  # as above: /sd-models reads the models folder each time


@router.get("/embeddings")
def embeddings() -> dict[str, Any]:
    """Textual-inversion embeddings; one that cannot be read is listed under `skipped`."""
    from kekong.errors import KekongError
    from kekong.prompt.embeddings import available, vectors

    loaded, skipped = {}, {}
    for name, path in available().items():
        try:
            tensors = vectors(path)
        except (KekongError, OSError, RuntimeError, ValueError):
            skipped[name] = {"step": None, "sd_checkpoint": None, "sd_checkpoint_name": None, "shape": None,
                             "vectors": None}
            continue
        first = tensors["clip_l"]
        loaded[name] = {"step": None, "sd_checkpoint": None, "sd_checkpoint_name": None,
                        "shape": int(first.shape[-1]), "vectors": int(first.shape[0])}
    return {"loaded": loaded, "skipped": skipped}


@router.get("/hypernetworks")
def hypernetworks() -> list[dict[str, Any]]:
    return []  # kekong does not run hypernetworks


@router.get("/face-restorers")
def face_restorers() -> list[dict[str, Any]]:
    return []  # nor GFPGAN/CodeFormer


@router.get("/prompt-styles")
def prompt_styles() -> list[dict[str, Any]]:
    """The styles of `styles.csv` in the data folder; a request's `styles` merges them in."""
    from kekong.prompt.styles import read_styles

    return [{"name": s.name, "prompt": s.prompt, "negative_prompt": s.negative_prompt}
            for s in read_styles(styles_file()).values()]


_ALWAYS_ON = ["controlnet"]  # the always-on scripts kekong runs (sd-webui-controlnet's units)


@router.get("/scripts")
def scripts() -> dict[str, list[str]]:
    """A1111's script names (lower-cased titles): the X/Y/Z plot (script_name) and the always-on ones."""
    from kekong.server.a1111_xyz import SCRIPT_TITLE

    return {"txt2img": [SCRIPT_TITLE, *_ALWAYS_ON], "img2img": [SCRIPT_TITLE, *_ALWAYS_ON]}


@router.get("/script-info")
def script_info() -> list[dict[str, Any]]:
    """Each script with its arguments; the X/Y/Z plot's are its script_args, with A1111 1.10's axis types."""
    from kekong.server.a1111_xyz import SCRIPT_TITLE, script_info_args

    answer = []
    for img2img in (False, True):
        answer.append({"name": SCRIPT_TITLE, "is_alwayson": False, "is_img2img": img2img,
                       "args": script_info_args("img2img" if img2img else "txt2img")})
        answer += [{"name": name, "is_alwayson": True, "is_img2img": img2img, "args": []} for name in _ALWAYS_ON]
    return answer


@router.get("/cmd-flags")
def cmd_flags(request: Request) -> dict[str, Any]:
    """kekong's server settings under A1111's flag names (no key, no path)."""
    config = services(request).config
    return {"api": True, "listen": not config.loopback, "port": config.port, "nowebui": not config.ui,
            "api_auth": None, "api_log": False, "cors_allow_origins": ",".join(config.allowed_origins) or None,
            "use_cpu": [] if _cuda() else ["all"], "no_half": True, "lowvram": False, "medvram": False,
            "skip_version_check": True, "kekong_version": __version__}


@router.get("/memory")
def memory() -> dict[str, Any]:
    """Process memory as A1111 reports it (RSS and the machine's total), and CUDA's when present."""
    used = _rss_bytes()
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    answer: dict[str, Any] = {"ram": {"free": float(total - used), "used": float(used), "total": float(total)}}
    if not _cuda():
        answer["cuda"] = {"error": "unavailable"}
        return answer
    import torch

    free, gpu_total = torch.cuda.mem_get_info()
    stats = torch.cuda.memory_stats()
    answer["cuda"] = {
        "system": {"free": free, "used": gpu_total - free, "total": gpu_total},
        "active": {"current": stats.get("active_bytes.all.current", 0), "peak": stats.get("active_bytes.all.peak", 0)},
        "allocated": {"current": stats.get("allocated_bytes.all.current", 0),
                      "peak": stats.get("allocated_bytes.all.peak", 0)},
        "reserved": {"current": stats.get("reserved_bytes.all.current", 0),
                     "peak": stats.get("reserved_bytes.all.peak", 0)},
        "inactive": {"current": stats.get("inactive_split_bytes.all.current", 0),
                     "peak": stats.get("inactive_split_bytes.all.peak", 0)},
        "events": {"retries": stats.get("num_alloc_retries", 0), "oom": stats.get("num_ooms", 0)}}
    return answer


class _Extras(BaseModel):
    """A1111's ExtrasBaseRequest (the fields kekong honours; face restoration is refused)."""

    model_config = ConfigDict(extra="ignore")
    resize_mode: int = Field(0, ge=0, le=1, description="0: scale by upscaling_resize, 1: to upscaling_resize_w×h")
    show_extras_results: bool = True
    gfpgan_visibility: float = Field(0, ge=0, le=1)
    codeformer_visibility: float = Field(0, ge=0, le=1)
    codeformer_weight: float = Field(0, ge=0, le=1)
    upscaling_resize: float = Field(2, gt=0, le=8)
    upscaling_resize_w: int = Field(512, ge=1)
    upscaling_resize_h: int = Field(512, ge=1)
    upscaling_crop: bool = True
    upscaler_1: str = "None"
    upscaler_2: str = "None"
    extras_upscaler_2_visibility: float = Field(0, ge=0, le=1)
    upscale_first: bool = False


class ExtrasSingleImage(_Extras):
    image: str = Field(description="base64 image")


class ImageItem(BaseModel):
    data: str
    name: str = ""


class ExtrasBatchImages(_Extras):
    imageList: list[ImageItem] = Field(max_length=100)  # A1111 spells it so


@router.post("/extra-single-image")
def extra_single_image(request: Request, body: ExtrasSingleImage) -> dict[str, Any]:
    image, info = _upscale(body, body.image, "image", services(request))
    return {"html_info": info, "image": image}


@router.post("/extra-batch-images")
def extra_batch_images(request: Request, body: ExtrasBatchImages) -> dict[str, Any]:
    results = [_upscale(body, item.data, f"imageList[{index}].data", services(request))
               for index, item in enumerate(body.imageList)]
    return {"html_info": results[0][1] if results else "", "images": [image for image, _ in results]}


def _upscale(body: _Extras, data: str, field: str, svc: Services) -> tuple[str, str]:
    """One image upscaled, as base64 PNG with A1111's `postprocessing` text; (image, html_info)."""
    from kekong.generation.extras import check_upscaler, output_size, upscale_image
    from kekong.io import encode_image, image_source, load_image
    from kekong.server.inputs import image_field

    if body.gfpgan_visibility > 0 or body.codeformer_visibility > 0:
        raise ParameterError("gfpgan_visibility/codeformer_visibility: face restoration is not in kekong")
    check_upscaler(body.upscaler_1)
    if body.extras_upscaler_2_visibility > 0:
        check_upscaler(body.upscaler_2, "upscaler_2")
    image = load_image(image_source(image_field(data, field, svc.config.urls)))
    target = (body.upscaling_resize_w, body.upscaling_resize_h) if body.resize_mode == 1 else None
    size = output_size(*image.shape[:2], scale=body.upscaling_resize, target=target, crop=body.upscaling_crop)
    result = upscale_image(image, size, body.upscaler_1, body.upscaling_crop, body.upscaler_2,
                           body.extras_upscaler_2_visibility)
    info = (f"Postprocess upscale {'to' if target else 'by'}: "
            f"{f'{size[1]}x{size[0]}' if target else f'{body.upscaling_resize:g}'}, "
            f"Postprocess upscaler: {body.upscaler_1}")
    if body.extras_upscaler_2_visibility > 0:
        info += f", Postprocess upscaler 2: {body.upscaler_2}"
    png = encode_image(result, "PNG", {"postprocessing": info})
    return base64.b64encode(png).decode(), info


def _metadata(path: Path) -> dict[str, Any]:
    """A safetensors file's `__metadata__` (kohya's ss_* training notes), as A1111 lists it."""
    if path.suffix.lower() != ".safetensors":
        return {}
    try:
        from safetensors import safe_open

        with safe_open(str(path), "np") as handle:
            return dict(handle.metadata() or {})
    except Exception:  # a broken file is listed without metadata; loading it names the problem
        return {}


def _rss_bytes() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _cuda() -> bool:
    import sys

    torch = sys.modules.get("torch")  # only when already loaded: a memory query must not import torch
    return bool(torch is not None and torch.cuda.is_available())
