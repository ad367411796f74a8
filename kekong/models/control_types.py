"""sd-webui-controlnet's control types, and which of them kekong runs on each base-model family.

A control type is supported where a ControlNet reads the map (any ControlNet 1.1 / SDXL
ControlNet the user has), and T2I-Adapters in diffusers' format run beside them. The other
adapter kinds — IP-Adapter, reference-only, Revision, InstantID, SparseCtrl, Control-LoRA,
ControlNet Union, original-format T2I-Adapter files — are refused by name with what is missing,
whether asked for by module name or by handing over their weights as a `model=`: none is
silently ignored or misread as a ControlNet.
"""

from __future__ import annotations

from dataclasses import dataclass

from kekong.errors import KekongError, ParameterError


@dataclass(frozen=True)
class ControlType:
    name: str  # as sd-webui-controlnet's /controlnet/control_types names it
    modules: tuple[str, ...]  # kekong detectors that make its maps (`none` for a ready map)
    refused: str | None = None  # why kekong does not run it (None: it runs through a ControlNet)


_IP_ADAPTER = "an IP-Adapter is not a ControlNet: give it to a unit with an ip-adapter_clip_* module " \
    "(e.g. module=ip-adapter_clip_sd15,model=ip-adapter_sd15)"
_T2I_ORIGINAL = "kekong runs T2I-Adapters in diffusers' format (a folder with config.json); convert an original " \
    ".pth with diffusers' scripts/convert_original_t2i_adapter.py"

CONTROL_TYPES = (
    ControlType("Canny", ("canny", "invert")),
    ControlType("Depth", ("depth_midas", "depth_anything", "depth_anything_v2", "depth_dpt")),
    ControlType("NormalMap", ("normal_bae", "normal_midas", "normal_from_depth")),
    ControlType("OpenPose", ("openpose", "openpose_face", "openpose_faceonly", "openpose_full", "openpose_hand")),
    ControlType("MLSD", ("mlsd", "mlsd_lsd", "invert")),
    ControlType("Lineart", ("lineart_standard", "lineart_realistic", "lineart_coarse", "lineart_anime", "invert")),
    ControlType("SoftEdge", ("softedge_dog", "softedge_hed", "softedge_hedsafe", "softedge_pidinet",
                             "softedge_pidisafe")),
    ControlType("Scribble/Sketch", ("scribble", "scribble_sketch", "scribble_xdog", "scribble_hed",
                                    "scribble_pidinet", "threshold", "invert")),
    ControlType("Segmentation", ("seg_person",)),
    ControlType("Shuffle", ("shuffle",)),
    ControlType("Tile/Blur", ("tile_resample", "tile_colorfix", "tile_colorfix+sharp", "blur_gaussian")),
    ControlType("Inpaint", ("inpaint_only", "inpaint_global_harmonious")),
    ControlType("Recolor", ("recolor_luminance", "recolor_intensity")),
    ControlType("InstructP2P", ("none",)),
    ControlType("Reference", ("reference_only",)),
    ControlType("T2I-Adapter", ("t2ia_color_grid", "t2ia_sketch_pidi")),
    ControlType("IP-Adapter", ("ip-adapter_clip_sd15", "ip-adapter_clip_h", "ip-adapter_clip_sdxl",
                               "ip-adapter_clip_g", "ip-adapter_clip_sdxl_plus_vith", "ip-adapter-auto")),
    ControlType("Revision", ("revision_clipvision", "revision_ignore_prompt"),
                refused="Revision feeds CLIP-vision image embeddings to SDXL; kekong has no CLIP-vision path"),
    ControlType("Instant_ID", ("instant_id_face_embedding", "instant_id_face_keypoints"),
                refused="InstantID needs a face-embedding model and an IP-Adapter; not in kekong"),
    ControlType("SparseCtrl", ("none",), refused="SparseCtrl is for AnimateDiff video models, which kekong does "
                                                "not run"),
)

FAMILIES = ("sd15", "sdxl")

# modules of supported types that kekong still cannot make
UNSUPPORTED_MODULES = {
    "t2ia_style_clipvision": "the style T2I-Adapter takes CLIP-vision image embeddings; kekong has no CLIP-vision "
                             "path",
    "reference_adain": "reference_adain (AdaIN on the UNet's group norms) is not in kekong; use reference_only",
    "reference_adain+attn": "reference_adain+attn is not in kekong; use reference_only",
    "ip-adapter_face_id": "IP-Adapter Face ID needs insightface face embeddings, which kekong does not compute",
    "ip-adapter_face_id_plus": "IP-Adapter Face ID Plus needs insightface face embeddings, which kekong does not "
                               "compute",
}


def listing() -> list[dict]:
    """Every control type with its modules and, per family, whether kekong runs it (and why not)."""
    def how(control_type: ControlType) -> str:
        if control_type.refused is not None:
            return f"refused: {control_type.refused}"
        special = {"T2I-Adapter": "T2I-Adapter (diffusers format)",
                   "IP-Adapter": "IP-Adapter (image prompt, decoupled cross-attention)",
                   "Reference": "reference-only (attention to the picture, no model)"}
        return special.get(control_type.name, "ControlNet")

    return [{"name": t.name, "modules": list(t.modules), "support": {family: how(t) for family in FAMILIES}}
            for t in CONTROL_TYPES]


def refuse_unsupported_module(name: str) -> None:
    """Raise for a module name that belongs to a control type kekong does not run."""
    if name in UNSUPPORTED_MODULES:
        raise ParameterError(f"module {name!r} is not supported: {UNSUPPORTED_MODULES[name]}")
    for control_type in CONTROL_TYPES:
        if control_type.refused and name in control_type.modules and name != "none":
            raise ParameterError(f"module {name!r} ({control_type.name}) is not supported: {control_type.refused}")


def identify_weights(keys: set[str], class_name: str | None = None) -> str | None:
    """The adapter kind a weights file or folder holds when it is not a plain ControlNet."""
    named = {"MultiAdapter": "T2I-Adapter", "ControlNetUnionModel": "ControlNet Union",
             "ControlNetXSAdapter": "ControlNet-XS"}
    if class_name in named:
        return named[class_name]
    if any(k.startswith(("image_proj.", "ip_adapter.")) for k in keys):
        return "IP-Adapter"
    if any("lora_controlnet" in k for k in keys) or any(k.endswith((".up", ".down")) and "control" in k for k in keys):
        return "Control-LoRA"
    if any(k.startswith(("task_embedding", "transformer_layes.", "controlnet_cond_embedding_union")) or
           "control_add_embedding" in k for k in keys):
        return "ControlNet Union"
    if any(k.startswith(("adapter.body.", "body.0.block1.", "body.0.resnets.", "body.0.in_conv.", "conv_in.weight"))
           for k in keys) and not any("input_hint_block" in k or "controlnet_cond_embedding" in k for k in keys):
        return "T2I-Adapter"
    return None


_MISSING = {
    "T2I-Adapter": _T2I_ORIGINAL,
    "IP-Adapter": _IP_ADAPTER,
    "Control-LoRA": "a Control-LoRA is built from the base model's UNet: give it to a generation unit (model=…), "
                    "where kekong builds it for the base",
    "ControlNet Union": "a ControlNet Union file needs its config.json beside it: give the diffusers folder "
                        "(config.json + diffusion_pytorch_model.safetensors), which kekong runs",
    "ControlNet-XS": "ControlNet-XS couples into the UNet block by block; not in kekong",
}


def refuse_adapter_weights(name: str, keys: set[str], class_name: str | None = None) -> None:
    """Raise, naming the kind, when `name` holds adapter weights rather than a ControlNet."""
    kind = identify_weights(keys, class_name)
    if kind is not None:
        raise KekongError(f"{name} holds {kind} weights, not a ControlNet: {_MISSING[kind]}")
