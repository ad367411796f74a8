"""sd-webui-controlnet's `/controlnet/*` routes."""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.concurrency import run_in_threadpool

from kekong.detect.extension_names import MODULE_ALIASES
from kekong.errors import ParameterError

router = APIRouter(prefix="/controlnet", tags=["ControlNet"])
API_VERSION = 2  # what sd-webui-controlnet reports; clients check it is there


@router.get("/version")
def version() -> dict[str, Any]:
    return {"version": API_VERSION}


@router.get("/model_list")
def model_list(update: bool = True) -> dict[str, Any]:
    from kekong.models.catalog import controlnet_models

    return {"model_list": controlnet_models()}


@router.get("/module_list")
def module_list(alias_names: bool = False) -> dict[str, Any]:
    """The extension's preprocessors in its order, by name (or label with alias_names), with its sliders and
    `model_free` (needs no ControlNet model) — whether kekong runs each is `kekong detect --list`'s job."""
    from kekong.detect.extension_names import sorted_preprocessors

    listed = sorted_preprocessors()
    return {"module_list": [p.display if alias_names else p.name for p in listed],
            "module_detail": {p.display if alias_names else p.name: {
                "model_free": p.model_free, "sliders": [s.api_json() for s in p.sliders]} for p in listed}}


@router.get("/control_types")
def control_types() -> dict[str, Any]:
    """The extension's answer ({type: {module_list, model_list, default_option, default_model}}, `All` first),
    plus which base-model families kekong runs each type on (`kekong_support`)."""
    from kekong.detect.control_types import listing
    from kekong.detect.extension_names import (
        control_type_models,
        control_type_modules,
        control_type_names,
        default_module,
    )
    from kekong.models.catalog import controlnet_models

    models = controlnet_models()
    support = {row["name"]: row["support"] for row in listing()}
    answer = {}
    for name in control_type_names():
        model_list, default_model = control_type_models(name, models)
        answer[name] = {"module_list": control_type_modules(name), "model_list": model_list,
                        "default_option": default_module(name), "default_model": default_model}
        if name in support:
            answer[name]["kekong_support"] = support[name]
    return {"control_types": answer}


@router.post("/detect")
async def detect(request: Request, payload: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    """Run a detector on each image: {"images": [...], "info": "Success"} (+ "poses" for OpenPose)."""
    from kekong.detect import MAX_RES, MIN_RES
    from kekong.detect.registry import get
    from kekong.server.inputs import image_array
    from kekong.sizes import check_detector_work

    svc = request.app.state.services
    module = str(payload.get("controlnet_module") or "none")
    module = MODULE_ALIASES.get(module.lower(), module)
    images = payload.get("controlnet_input_images") or []
    if not isinstance(images, list) or not images:
        raise ParameterError("controlnet_input_images: expected a list of base64 images")
    detector = get(module)
    res = payload.get("controlnet_processor_res", 512)
    res = 512 if res in (None, -1) else int(res)
    params: dict[str, Any] = {}
    for key, param in zip(("controlnet_threshold_a", "controlnet_threshold_b"), detector.sliders, strict=False):
        value = payload.get(key, -1)
        if value not in (None, -1):
            params[param.name] = param.coerce(module, value)
    masks = payload.get("controlnet_masks") or []
    outputs, poses = [], []
    for index, raw in enumerate(images):
        image = image_array(raw, f"controlnet_input_images[{index}]", svc.config.urls)
        if detector.uses_resolution and MIN_RES <= res <= MAX_RES:  # refused before any pixel is scaled
            check_detector_work(image.shape[:2], res, f"controlnet_processor_res (controlnet_input_images[{index}])")
        mask = None
        if detector.takes_mask:
            if index >= len(masks):
                raise ParameterError(f"controlnet_masks[{index}]: {module} needs a mask for each image")
            mask = image_array(masks[index], f"controlnet_masks[{index}]", svc.config.urls)[:, :, 0]
        detected, data = await run_in_threadpool(svc.detect, module, image, res, params, mask)
        outputs.append(_png_b64(detected))
        if data is not None:
            poses.append(data)
    answer: dict[str, Any] = {"images": outputs, "info": "Success"}
    if poses:
        answer["poses"] = poses
    return answer


@router.post("/render_openpose_json")
def render_openpose_json(payload: Annotated[Any, Body()]) -> dict[str, Any]:
    """OpenPose JSON (a list of poses, or {"pose_json": [...]}) → control maps."""
    from kekong.detect.openpose import render_json

    poses = payload.get("pose_json") if isinstance(payload, dict) else payload
    if not isinstance(poses, list) or not poses:
        raise ParameterError("body: expected a list of OpenPose JSON objects (or {\"pose_json\": [...]})")
    images = []
    for index, pose in enumerate(poses):
        try:
            images.append(_png_b64(render_json(pose)))
        except ParameterError as error:  # a canvas out of bounds: named as it is, not as malformed JSON
            raise ParameterError(f"pose_json[{index}].{error}") from None
        except (KeyError, TypeError, ValueError) as error:
            raise ParameterError(f"pose_json[{index}]: not OpenPose JSON ({error})") from None
    return {"images": images, "info": "Success"}


def _png_b64(image: Any) -> str:
    from kekong.io import encode_image

    return base64.b64encode(encode_image(image, "PNG", compress_level=1)).decode()
