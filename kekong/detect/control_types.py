"""sd-webui-controlnet's control types as kekong runs them: each type's kekong detectors and, per
base-model family, how kekong runs the type (or why not).

Derived from the extension's table (detect/extension_names.py), so a preprocessor that gains a
loader is listed under its types at once: a type lists the kekong detectors its preprocessors run
on, then kekong's own detectors that no extension preprocessor reaches (`KEKONG_ONLY`). A type
runs through any ControlNet the user has for it; T2I-Adapters (diffusers format), IP-Adapters and
reference-only run their own way; the types in `REFUSED` need models kekong has no path for.
"""

from __future__ import annotations

from kekong.detect.extension_names import PREPROCESSORS, control_type_names

FAMILIES = ("sd15", "sdxl")

# kekong's detectors that no extension preprocessor runs on, under the type whose ControlNets read their maps
KEKONG_ONLY: dict[str, tuple[str, ...]] = {
    "Depth": ("depth_dpt",),
    "NormalMap": ("normal_from_depth",),
    "MLSD": ("mlsd_lsd",),
    "SoftEdge": ("softedge_dog",),
    "Scribble": ("scribble", "scribble_sketch", "threshold"),
    "Segmentation": ("seg_person",),
}
REFUSED = {
    "Revision": "Revision feeds CLIP-vision image embeddings to SDXL; kekong has no CLIP-vision path",
    "Instant-ID": "InstantID needs a face-embedding model and an IP-Adapter; not in kekong",
    "SparseCtrl": "SparseCtrl is for AnimateDiff video models, which kekong does not run",
}
_OWN_WAY = {"T2I-Adapter": "T2I-Adapter (diffusers format)",
            "IP-Adapter": "IP-Adapter (image prompt, decoupled cross-attention)",
            "Reference": "reference-only (attention to the picture, no model)"}


def modules(control_type: str) -> list[str]:
    """The kekong detectors of a type (for a refused type: the extension's preprocessor names)."""
    tagged = [p for p in PREPROCESSORS if control_type in p.tags]
    names = [p.name for p in tagged] if control_type in REFUSED else \
        [p.runs for p in tagged if p.runs is not None]
    return list(dict.fromkeys([*names, *KEKONG_ONLY.get(control_type, ())]))


def support(control_type: str) -> str:
    if control_type in REFUSED:
        return f"refused: {REFUSED[control_type]}"
    return _OWN_WAY.get(control_type, "ControlNet")


def listing() -> list[dict]:
    """Every control type the extension names (but `All`) with its modules and, per family, whether kekong runs it."""
    return [{"name": name, "modules": modules(name), "support": dict.fromkeys(FAMILIES, support(name))}
            for name in control_type_names() if name != "All"]
