"""The lossless JSON recipe: every parameter, the hashes of every model and input image, and the
software and machine facts that decide bit-identity. `kekong replay` regenerates from it."""

from __future__ import annotations

import platform
from typing import Any

RECIPE_VERSION = 1


def environment() -> dict[str, Any]:
    """What decides whether a replay is bit-identical: versions, thread count, CPU."""
    import diffusers
    import torch
    import transformers

    from kekong import __version__

    return {"kekong": __version__, "torch": torch.__version__, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__, "threads": torch.get_num_threads(),
            "cpu": cpu_name(), "machine": platform.machine(), "python": platform.python_version()}


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def build_recipe(generated) -> dict[str, Any]:
    from kekong.io import source_sha256
    from kekong.models.hashes import model_sha256

    request = generated.request
    units = []
    for unit in generated.units:
        image = unit.unit.image or request.init_image
        units.append({"index": unit.index, "model": unit.model_name, "label": unit.model_label,
                      "image_sha256": source_sha256(image) if image else None,
                      "mask_sha256": source_sha256(unit.unit.mask) if unit.unit.mask else None})
    return {
        "kekong_recipe": RECIPE_VERSION,
        "request": request.model_dump(mode="json"),
        "image": {"index": generated.index, "seed": generated.seed, "batch_seed": generated.batch_seed,
                  "subseed": generated.subseed,
                  "batch_position": generated.batch_position, "prompt_used": generated.prompt_used,
                  "negative_prompt_used": generated.negative_used},
        "models": {"base": {"name": generated.base.name, "sha256": model_sha256(generated.base.ref.path)},
                   "vae": {"name": generated.vae.name, "sha256": model_sha256(generated.vae.path)}
                   if generated.vae else None,
                   "controlnets": units},
        "inputs": {"init_image_sha256": source_sha256(request.init_image) if request.init_image else None,
                   "mask_sha256": source_sha256(request.mask) if request.mask else None},
        "environment": environment(),
    }
