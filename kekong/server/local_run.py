"""The worker's half of a `kekong generate` sent to this server (server/local.py): generate, score,
describe — and leave the stamping to the CLI, which writes the files on its own machine and user
(its watermark register, its C2PA key, its file names), so the output equals a local run's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any


def run_local(request: Any, out_dir: Path, on_step: Callable[[Any], Any], answer: dict[str, Any]) -> dict[str, Any]:
    """Each image as a plain PNG in `out_dir` with its infotext, recipe (no local paths: the CLI adds
    its own), fidelity and C2PA ingredients named by request field; the control maps when asked."""
    from kekong.detect.polarity import collected_warnings
    from kekong.generation.pipeline import generate
    from kekong.io import save_image
    from kekong.provenance.recipe import input_fields
    from kekong.provenance.stamp import described

    with collected_warnings() as warnings:
        results = generate(request, on_step=on_step)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = []
    for generated in results:
        if answer.get("score", True) and generated.units:
            from kekong.fidelity import score_generated

            generated.fidelity = score_generated(generated)
        description = described(generated)
        fields = {reference: field for field, reference in reversed(input_fields(generated.request))}
        path = save_image(generated.image, out_dir / f"{generated.index}.png")
        images.append({"file": path.name, "seed": generated.seed, "infotext": description.infotext,
                       "recipe": description.recipe, "edited": description.edited, "fidelity": generated.fidelity,
                       "ingredients": [[fields.get(reference), title, relationship]
                                       for reference, title, relationship in description.ingredients]})
    maps = []
    if results and answer.get("maps"):
        for unit in results[0].units:
            if unit.detected is not None and unit.detected.dtype.name == "uint8":
                path = save_image(unit.detected, out_dir / f"map-{unit.index}.png")
                maps.append({"file": path.name, "unit": unit.index, "module": unit.unit.module})
    return {"images": images, "maps": maps, "warnings": warnings}
