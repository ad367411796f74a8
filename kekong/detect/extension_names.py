"""Every preprocessor sd-webui-controlnet defines, with what kekong does for each of its identifiers.

Data only (no heavy imports): 72 preprocessors, written from the extension's declarations
(scripts/preprocessor/*.py and legacy/preprocessor_compiled.py, July 2024). A preprocessor is
named by its `name` (the API's `module_list`) or its `label` (the UI's, `alias_names=true`); the
extension looks an identifier up as a label first, then as a name — so are they here.

Each one either runs on a kekong detector (`runs`) or is refused with a reason (`refused`): a
network kekong has no loader for names the extension's weight file (kekong's missing-weights
error says where it looks), a library kekong does not install is named, and image encoders
that make no control map (IP-Adapter, Revision, CLIP vision) say where they work instead.
`/controlnet/module_list` and `/controlnet/control_types` are computed from this table the way
the extension computes them (see `sorted_preprocessors`, `control_type`).
"""

from __future__ import annotations

from dataclasses import dataclass

WEIGHTS = "needs weights kekong has no loader for"
LIBRARY = "needs a library kekong does not install"
ENCODER = "an image encoder, not a control map"
NOT_IN_KEKONG = "a generation mode kekong does not run"


@dataclass(frozen=True)
class Slider:
    """One of the extension's sliders, as `module_detail` lists it (`api_json`)."""

    label: str
    value: float
    minimum: float = 0.0
    maximum: float = 1.0
    step: float = 0.01

    def api_json(self) -> dict[str, float | str]:
        return {"name": self.label, "value": self.value, "min": self.minimum, "max": self.maximum, "step": self.step}


@dataclass(frozen=True)
class Refusal:
    kind: str  # WEIGHTS, LIBRARY, ENCODER or NOT_IN_KEKONG
    reason: str
    files: tuple[tuple[str, str], ...] = ()  # (Hugging Face repo, path in it) of the weights the extension loads
    stand_in: str | None = None  # a kekong detector that runs offline instead


@dataclass(frozen=True)
class Preprocessor:
    name: str
    how: str | Refusal  # the kekong detector that makes this map, or why kekong refuses it
    label: str = ""  # the UI's name; empty: same as name
    tags: tuple[str, ...] = ()  # the control types it is listed under
    priority: int = 0  # sorting_priority: higher is listed first
    model_free: bool = False  # do_not_need_model: no ControlNet model (reference, revision)
    sliders: tuple[Slider, ...] = ()  # the visible ones: resolution, slider 1, 2, 3

    @property
    def display(self) -> str:
        return self.label or self.name

    @property
    def runs(self) -> str | None:
        return self.how if isinstance(self.how, str) else None

    @property
    def refused(self) -> Refusal | None:
        return self.how if isinstance(self.how, Refusal) else None


RES = Slider("Resolution", 512, 64, 2048, 8)  # every legacy preprocessor shows it, used or not
S = Slider
P = Preprocessor
_FIDELITY = S("Style Fidelity (only for Balanced mode)", 0.5, 0.0, 1.0, 0.01)
_REVISION = "Revision feeds CLIP-vision image embeddings to SDXL; kekong has no CLIP-vision path for it"
_INSIGHTFACE = "insightface face embeddings (the antelopev2 / buffalo_l ONNX models), and kekong does not install " \
               "insightface"
_IP = "it encodes the unit's image with CLIP vision for an IP-Adapter: give it to a generation unit with an " \
      "IP-Adapter model (module=…,model=ip-adapter_sd15); it makes no control map"


PREPROCESSORS: tuple[Preprocessor, ...] = (
    P("softedge_teed", "softedge_teed", tags=("SoftEdge",), sliders=(RES, S("Safe Steps", 2, 0, 10, 1))),
    P("softedge_anyline", "softedge_anyline", tags=("SoftEdge",),
      sliders=(S("Resolution", 1280, 64, 2048, 8), S("Safe Steps", 2, 0, 10, 1))),
    P("facexlib", Refusal(LIBRARY, "it aligns and parses faces with facexlib (RetinaFace + BiSeNet), which kekong "
                                   "does not install")),
    P("ip-adapter_pulid", Refusal(LIBRARY, "PuLID needs insightface (antelopev2), facexlib and EVA02-CLIP, which "
                                           "kekong does not install"), tags=("IP-Adapter",)),
    P("inpaint", "inpaint_global_harmonious", label="inpaint_global_harmonious", tags=("Inpaint",)),
    P("inpaint_only", "inpaint_only", tags=("Inpaint",), priority=100),
    P("inpaint_only+lama", "inpaint_only+lama", tags=("Inpaint",)),
    P("ip-adapter-auto", Refusal(ENCODER, _IP), tags=("IP-Adapter",), priority=1000, sliders=(RES,)),
    P("normal_dsine", "normal_dsine",
      tags=("NormalMap",), sliders=(RES, S("Fov", 60, 0, 360, 0.1), S("Iterations", 5, 1, 20, 1))),
    P("none", "none", tags=("InstructP2P",), priority=10, sliders=(RES,)),
    P("canny", "canny", tags=("Canny",), priority=100,
      sliders=(RES, S("Low Threshold", 100, 1, 255, 1), S("High Threshold", 200, 1, 255, 1))),
    P("invert", "invert", label="invert (from white bg & black line)", tags=("Canny", "Lineart", "Scribble", "MLSD"),
      priority=20),
    P("blur_gaussian", "blur_gaussian", tags=("Tile",), sliders=(RES, S("Sigma", 9.0, 0.01, 64.0, 0.01))),
    P("scribble_xdog", "scribble_xdog", tags=("Scribble", "SparseCtrl"),
      sliders=(RES, S("XDoG Threshold", 32, 1, 64, 0.01))),
    P("shuffle", "shuffle", tags=("Shuffle",)),
    P("animal_openpose", "animal_openpose", tags=("OpenPose",), sliders=(RES,)),
    P("densepose", "densepose", label="densepose (pruple bg & purple torso)", tags=("OpenPose",), sliders=(RES,)),
    P("densepose_parula", "densepose_parula", label="densepose_parula (black bg & blue torso)", tags=("OpenPose",),
      sliders=(RES,)),
    P("depth_anything", "depth_anything", tags=("Depth",), sliders=(RES,)),
    P("depth_anything_v2", "depth_anything_v2", tags=("Depth",), sliders=(RES,)),
    P("depth_hand_refiner", Refusal(LIBRARY, "it runs MeshGraphormer from the hand_refiner package "
                                             "(hr16/ControlNet-HandRefiner-pruned), which kekong does not install"),
      tags=("Depth",), sliders=(RES,)),
    P("depth_leres", "depth_leres", tags=("Depth",),
      sliders=(RES, S("Remove Near %", 0, 0, 100, 0.1), S("Remove Background %", 0, 0, 100, 0.1))),
    P("depth_leres++", "depth_leres++", tags=("Depth",),
      sliders=(RES, S("Remove Near %", 0, 0, 100, 0.1), S("Remove Background %", 0, 0, 100, 0.1))),
    P("depth", "depth_midas", label="depth_midas", tags=("Depth",), priority=100, sliders=(RES,)),
    P("depth_zoe", "depth_zoe", tags=("Depth",),
      sliders=(RES,)),
    P("dw_openpose_full", "dw_openpose_full", tags=("OpenPose",), sliders=(RES,)),
    P("instant_id_face_embedding", Refusal(LIBRARY, "InstantID needs " + _INSIGHTFACE), tags=("Instant-ID",),
      sliders=(RES,)),
    P("instant_id_face_keypoints", Refusal(LIBRARY, "InstantID needs " + _INSIGHTFACE), tags=("Instant-ID",),
      sliders=(RES,)),
    P("ip-adapter_clip_sd15", Refusal(ENCODER, _IP), label="ip-adapter_clip_h", tags=("IP-Adapter",), priority=100,
      sliders=(RES,)),
    P("ip-adapter_clip_sdxl", Refusal(ENCODER, _IP), label="ip-adapter_clip_g", tags=("IP-Adapter",), sliders=(RES,)),
    P("ip-adapter_clip_sdxl_plus_vith", Refusal(ENCODER, _IP), tags=("IP-Adapter",), sliders=(RES,)),
    P("ip-adapter_face_id", Refusal(LIBRARY, "IP-Adapter Face ID needs " + _INSIGHTFACE), tags=("IP-Adapter",),
      sliders=(RES,)),
    P("ip-adapter_face_id_plus", Refusal(LIBRARY, "IP-Adapter Face ID Plus needs " + _INSIGHTFACE),
      tags=("IP-Adapter",), sliders=(RES,)),
    P("lineart_anime", "lineart_anime", tags=("Lineart",), sliders=(RES,)),
    P("lineart_anime_denoise", "lineart_anime_denoise", tags=("Lineart",), sliders=(RES,)),
    P("lineart_coarse", "lineart_coarse", tags=("Lineart",), sliders=(RES,)),
    P("lineart", "lineart_realistic", label="lineart_realistic", tags=("Lineart",), sliders=(RES,)),
    P("lineart_standard", "lineart_standard", label="lineart_standard (from white bg & black line)",
      tags=("Lineart",), priority=100, sliders=(RES,)),
    P("mediapipe_face", "mediapipe_face",
      sliders=(RES, S("Max Faces", 1, 1, 10, 1), S("Min Face Confidence", 0.5, 0.01, 1.0, 0.01))),
    P("mlsd", "mlsd", tags=("MLSD",), priority=100, sliders=(
        RES, S("MLSD Value Threshold", 0.1, 0.01, 2.0, 0.01), S("MLSD Distance Threshold", 0.1, 0.01, 20.0, 0.01))),
    P("normal_bae", "normal_bae", tags=("NormalMap",), priority=100, sliders=(RES,)),
    P("normal_map", "normal_midas", label="normal_midas", tags=("NormalMap",),
      sliders=(RES, S("Normal Background Threshold", 0.4, 0.0, 1.0, 0.01))),
    P("openpose", "openpose", tags=("OpenPose",), sliders=(RES,)),
    P("openpose_face", "openpose_face", tags=("OpenPose",), sliders=(RES,)),
    P("openpose_faceonly", "openpose_faceonly", tags=("OpenPose",), sliders=(RES,)),
    P("openpose_full", "openpose_full", tags=("OpenPose",), priority=100, sliders=(RES,)),
    P("openpose_hand", "openpose_hand", tags=("OpenPose",), sliders=(RES,)),
    P("recolor_intensity", "recolor_intensity", tags=("Recolor",),
      sliders=(RES, S("Gamma Correction", 1.0, 0.1, 2.0, 0.001))),
    P("recolor_luminance", "recolor_luminance", tags=("Recolor",), priority=100,
      sliders=(RES, S("Gamma Correction", 1.0, 0.1, 2.0, 0.001))),
    P("reference_adain", Refusal(NOT_IN_KEKONG, "reference_adain (AdaIN on the UNet's group norms) is not in kekong; "
                                                "use reference_only"),
      tags=("Reference",), model_free=True, sliders=(RES, _FIDELITY)),
    P("reference_adain+attn", Refusal(NOT_IN_KEKONG, "reference_adain+attn is not in kekong; use reference_only"),
      tags=("Reference",), model_free=True, sliders=(RES, _FIDELITY)),
    P("reference_only", "reference_only", tags=("Reference",), priority=100, model_free=True, sliders=(RES, _FIDELITY)),
    P("revision_clipvision", Refusal(ENCODER, _REVISION), tags=("Revision",), priority=100, model_free=True,
      sliders=(RES, S("Noise Augmentation", 0.0, 0.0, 1.0, 0.01))),
    P("revision_ignore_prompt", Refusal(ENCODER, _REVISION), tags=("Revision",), model_free=True,
      sliders=(RES, S("Noise Augmentation", 0.0, 0.0, 1.0, 0.01))),
    P("scribble_hed", "scribble_hed", tags=("Scribble", "SparseCtrl"), sliders=(RES,)),
    P("pidinet_scribble", "scribble_pidinet", label="scribble_pidinet", tags=("Scribble", "SparseCtrl"), priority=100,
      sliders=(RES,)),
    P("anime_face_segment", "seg_anime_face", label="seg_anime_face", tags=("Segmentation",), sliders=(RES,)),
    P("oneformer_ade20k", "seg_ofade20k", label="seg_ofade20k", tags=("Segmentation",), priority=100,
      sliders=(RES,)),
    P("oneformer_coco", "seg_ofcoco", label="seg_ofcoco", tags=("Segmentation",), sliders=(RES,)),
    P("segmentation", "seg_ufade20k", label="seg_ufade20k", tags=("Segmentation",), sliders=(RES,)),
    P("hed", "softedge_hed", label="softedge_hed", tags=("SoftEdge",), sliders=(RES,)),
    P("hed_safe", "softedge_hedsafe", label="softedge_hedsafe", tags=("SoftEdge",), sliders=(RES,)),
    P("pidinet", "softedge_pidinet", label="softedge_pidinet", tags=("SoftEdge",), priority=100, sliders=(RES,)),
    P("pidinet_safe", "softedge_pidisafe", label="softedge_pidisafe", tags=("SoftEdge",), sliders=(RES,)),
    P("color", "t2ia_color_grid", label="t2ia_color_grid", tags=("T2I-Adapter",), sliders=(RES,)),
    P("pidinet_sketch", "t2ia_sketch_pidi", label="t2ia_sketch_pidi", tags=("T2I-Adapter",), sliders=(RES,)),
    P("clip_vision", Refusal(ENCODER, "the style T2I-Adapter takes CLIP-vision image embeddings; kekong has no "
                                      "CLIP-vision path for it"),
      label="t2ia_style_clipvision", tags=("T2I-Adapter",), sliders=(RES,)),
    P("threshold", "threshold", sliders=(RES, S("Binarization Threshold", 127, 0, 255, 0.01))),
    P("tile_colorfix", "tile_colorfix", tags=("Tile",), sliders=(RES, S("Variation", 8.0, 3.0, 32.0, 1.0))),
    P("tile_colorfix+sharp", "tile_colorfix+sharp", tags=("Tile",),
      sliders=(RES, S("Variation", 8.0, 3.0, 32.0, 1.0), S("Sharpness", 1.0, 0.0, 2.0, 0.01))),
    P("tile_resample", "tile_resample", tags=("Tile",), priority=100,
      sliders=(RES, S("Down Sampling Rate", 1.0, 1.0, 8.0, 0.01))),
    P("mobile_sam", "mobile_sam", tags=("Segmentation",), sliders=(RES,)),
)

_BY_NAME = {p.name: p for p in PREPROCESSORS}
_BY_LABEL = {p.display: p for p in PREPROCESSORS}
IDENTIFIERS: tuple[str, ...] = tuple(dict.fromkeys([*_BY_NAME, *_BY_LABEL]))  # 94: 72 names + 22 distinct labels


def lookup(identifier: str) -> Preprocessor | None:
    """The extension's preprocessor for a name or label (label first, as the extension looks them up)."""
    return _BY_LABEL.get(identifier) or _BY_NAME.get(identifier)


# identifier (lower case: API clients send them in any case) → kekong detector, where the two names differ
MODULE_ALIASES: dict[str, str] = {
    identifier.lower(): runs for identifier in IDENTIFIERS
    if (runs := lookup(identifier).runs) is not None and runs != identifier  # type: ignore[union-attr]
} | {"fake_scribble": "scribble_hed"}  # the extension's ControlNet 1.0 name, still sent by old clients


def default_resolution(identifier: str, fallback: int = 512) -> int:
    """The extension's default processor resolution for a preprocessor: its Resolution slider's value
    (1280 for softedge_anyline), else `fallback`."""
    preprocessor = lookup(identifier)
    slider = next((s for s in preprocessor.sliders if s.label == "Resolution"), None) if preprocessor else None
    return int(slider.value) if slider is not None else fallback


def sorted_preprocessors() -> list[Preprocessor]:
    """`none` first, then by priority and label, highest first — the extension's list order."""
    rest = [p for p in PREPROCESSORS if p.display != "none"]
    return [_BY_LABEL["none"], *sorted(rest, key=lambda p: str(p.priority).zfill(8) + p.display, reverse=True)]


def control_type_names() -> list[str]:
    """`All`, then every tag a preprocessor has, sorted."""
    return ["All", *sorted({tag for p in PREPROCESSORS for tag in p.tags})]


def control_type_modules(tag: str) -> list[str]:
    """The labels listed under a control type: every preprocessor for `All`, else the tagged ones and `none`."""
    if tag == "All":
        return [p.display for p in sorted_preprocessors()]
    return [p.display for p in sorted_preprocessors() if tag in p.tags or p.display == "none"]


def default_module(tag: str) -> str:
    """The extension's default option: `none` for All, else the first listed after `none` (or `none` alone)."""
    if tag == "All":
        return "none"
    modules = control_type_modules(tag)
    return modules[0] if len(modules) == 1 else modules[1]


# The model-name filters the extension adds to a control type's own name (Preprocessor.tag_to_filters)
_FILTERS = {"instructp2p": ("ip2p",), "segmentation": ("seg",), "normalmap": ("normal",),
            "t2i-adapter": ("t2i_adapter", "t2iadapter", "t2ia"), "ip-adapter": ("ip_adapter", "ipadapter"),
            "openpose": ("openpose", "densepose"), "instant-id": ("instant_id", "instantid"), "scribble": ("sketch",),
            "tile": ("blur",)}
_UNION_TAGS = ("openpose", "depth", "softedge", "scribble", "canny", "lineart", "mlsd", "normalmap", "segmentation",
               "inpaint", "tile")


def control_type_models(tag: str, models: list[str]) -> tuple[list[str], str]:
    """The models listed under a control type and its default, as the extension filters its model list by name
    (`models` without "None"; the base-model family is not known to the API, so none is filtered by it)."""
    every = ["None", *[m for m in models if m != "None"]]
    if tag == "All":
        return every, "None"
    pattern = tag.lower()
    filters = {pattern, *_FILTERS.get(pattern, ()), *(("union",) if pattern in _UNION_TAGS else ())}
    listed = [m for m in every if m.lower() == "none" or any(f in m.lower() for f in filters)]
    if len(listed) == 1:
        return listed, "None"
    default = next((m for m in listed if "11" in m.split("[")[0]), listed[1])
    return listed, default
