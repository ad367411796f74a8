"""Writing a run's frames as the output MP4 with provenance: kekong's watermark in every frame (one
id for the video, registered to its recipe), the recipe in the MP4's metadata and in a signed C2PA
manifest whose parent ingredient is the source."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from kekong.errors import KekongError
from kekong.io import load_image, write_atomic
from kekong.provenance.stamp import Layers
from kekong.video.encode import encode_mp4
from kekong.video.run import Plan

VIDEO_KEY = "video"  # the recipe's section for the video run
PARENT_MIME = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".gif": "image/gif"}


def video_recipe(plan: Plan) -> dict[str, Any]:
    """Frame 0's recipe (request, models, inputs, environment) and how the frames were tied in time."""
    from kekong.provenance.recipe import publishable

    stored = plan.folder / "recipe.json"
    try:
        recipe = publishable(json.loads(stored.read_text()))
    except (OSError, ValueError):
        raise KekongError(f"{stored}: missing or unreadable (frame 0 writes it); remove {plan.folder.name}/ and "
                          "run again") from None
    source = plan.source
    recipe[VIDEO_KEY] = {
        "source": {"name": source.path.name, "kind": source.kind, "frames": source.frames,
                   "size": [source.width, source.height], "rate": str(source.rate),
                   **({"sha256": _sha256(source.path)} if source.path.is_file() else {})},
        "frames": len(plan.numbers), "first_frame": plan.numbers[0], "last_frame": plan.numbers[-1],
        "rate": str(plan.rate), "size": list(plan.size), "seed": plan.seed,
        "seeds": "the seed for every frame" if plan.settings.same_noise else "seed + frame position",
        "settings": plan.settings.recorded(),
    }
    return recipe


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_video(plan: Plan, out: Path, layers: Layers | None = None) -> dict[str, Any]:
    """Encode the folder's frames into `out` (H.264, the source's rate / every, its audio); returns
    what was recorded (the provenance layers, the watermark id)."""
    from kekong.provenance import marks, watermark

    missing = [p.name for p in (plan.frame_path(i) for i in range(len(plan.numbers))) if not p.is_file()]
    if missing:
        raise KekongError(f"{plan.folder.name}/ lacks {len(missing)} frames (first {missing[0]}): run again to "
                          "finish them")
    layers = layers or Layers()
    recipe = video_recipe(plan)
    record: dict[str, Any] = {"metadata": layers.metadata, "c2pa": layers.c2pa, "watermark": "off"}
    width, height = plan.size
    mark_id = None
    if layers.watermark:
        if min(width, height) < watermark.MIN_SIDE:
            record["watermark"] = f"not embedded: {width}x{height} is below {watermark.MIN_SIDE} px"
        else:
            mark_id = marks.register(None, str(out.resolve()), recipe if layers.metadata else None, c2pa=layers.c2pa)
            record["watermark"] = marks.format_id(mark_id)
    recipe["provenance"] = record

    def frames() -> Iterator[np.ndarray]:
        for position in range(len(plan.numbers)):
            image = load_image(plan.frame_path(position))
            yield watermark.embed(image, mark_id) if mark_id is not None else image

    source = plan.source
    audio = source.path if source.has_audio else None
    start = plan.numbers[0] / float(source.rate)
    data = encode_mp4(frames(), plan.rate, audio, (start, start + len(plan.numbers) * plan.settings.every /
                                                   float(source.rate)),
                      metadata={"comment": json.dumps(recipe)} if layers.metadata else None)
    if layers.c2pa:
        data = sign_video(data, plan, out.name, record, recipe if layers.metadata else None)
    write_atomic(out, data)
    return record


def sign_video(data: bytes, plan: Plan, title: str, record: dict[str, Any], recipe: dict[str, Any] | None) -> bytes:
    """The MP4 with a signed C2PA manifest: opened from the source (its parent ingredient), edited
    with trained algorithmic media."""
    from kekong.provenance.credentials import Ingredient, sign_image

    source = plan.source
    mime = PARENT_MIME.get(source.path.suffix.lower()) if source.kind != "frames" else None
    if mime is not None:
        parent = Ingredient("source video", "parentOf", source.path.read_bytes(), mime)
    else:  # a folder, or a container C2PA does not read (WebM, MKV …): the first source frame stands for it
        parent = Ingredient("source (first frame)", "parentOf", plan.source_path(0).read_bytes(), "image/png")
    assertion = {"layers": {"metadata": record["metadata"], "watermark": record["watermark"] != "off",
                            "c2pa": True, "c2pa_thumbnails": False},
                 "watermark": record["watermark"], "recipe": recipe}
    return sign_image(data, "video/mp4", title=title, edited=True, ingredients=[parent], assertion=assertion)
