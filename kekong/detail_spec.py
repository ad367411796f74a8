"""The detailer's settings (face / hand fix after generation), under ADetailer's argument names.

A leaf: the request holds a list of these (`detail`), the A1111 route reads
`alwayson_scripts.ADetailer.args` into them, the infotext writes and reads them with ADetailer's
keys ("ADetailer model", "ADetailer confidence 2nd" …). ADetailer arguments kekong does not
implement are accepted at their defaults (clients send whole dicts) and refused by name otherwise.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kekong.errors import ParameterError

# kekong's model names → what finds the regions. ADetailer's own mediapipe face names are kept; its
# hand models are YOLO weights, so hands go through mediapipe's hand landmarker under kekong's name.
MODELS = {"mediapipe_face_short": "face", "mediapipe_face_full": "face", "mediapipe_hands": "hand"}
ALIASES = {"face": "mediapipe_face_short", "hand": "mediapipe_hands", "hands": "mediapipe_hands"}
# ADetailer arguments kekong does not implement, with the default a client may send them at
UNSUPPORTED: dict[str, Any] = {
    "ad_model_classes": "", "ad_use_checkpoint": False, "ad_checkpoint": None, "ad_use_vae": False, "ad_vae": None,
    "ad_use_sampler": False, "ad_sampler": "DPM++ 2M Karras", "ad_scheduler": "Use same scheduler",
    "ad_use_noise_multiplier": False, "ad_noise_multiplier": 1.0, "ad_use_clip_skip": False, "ad_clip_skip": 1,
    "ad_restore_face": False,
}
# ADetailer's module for a ControlNet model named without one (its controlnet_ext get_cn_module)
MODULE_OF_MODEL = {"inpaint": "inpaint_global_harmonious", "lineart": "lineart_realistic",
                   "openpose": "openpose_full", "tile": "tile_resample", "depth": "depth_midas"}
IGNORED = ("is_api",)  # ADetailer's own bookkeeping


class DetailSpec(BaseModel):
    """One detailer pass: find regions with `ad_model`, repaint each (only masked) and paste it back."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ad_model: str = Field("mediapipe_face_short", description="what to fix: face (mediapipe_face_short), "
                          "mediapipe_face_full, or hand (mediapipe_hands)")
    ad_prompt: str = Field("", max_length=20_000, description="its own prompt ([SEP] between detections; "
                           "empty = the image's; [PROMPT] = the image's prompt)")
    ad_negative_prompt: str = Field("", max_length=20_000)
    ad_confidence: float = Field(0.3, ge=0, le=1, description="detection confidence threshold")
    ad_mask_filter_method: Literal["Area", "Confidence"] = "Area"
    ad_mask_k: int = Field(0, ge=0, le=32, description="max detections (largest or most confident; 0 = all)")
    ad_mask_min_ratio: float = Field(0.0, ge=0, le=1, description="smallest region, as a fraction of the image")
    ad_mask_max_ratio: float = Field(1.0, ge=0, le=1)
    ad_dilate_erode: int = Field(4, ge=-128, le=128, description="grow (>0) or shrink (<0) each mask, px")
    ad_x_offset: int = Field(0, ge=-512, le=512, description="move each mask right, px")
    ad_y_offset: int = Field(0, ge=-512, le=512, description="move each mask up, px")
    ad_mask_merge_invert: Literal["None", "Merge", "Merge and Invert"] = "None"
    ad_mask_blur: int = Field(4, ge=0, le=64, description="mask feather, px")
    ad_denoising_strength: float = Field(0.4, ge=0, le=1)
    ad_inpaint_only_masked: bool = True
    ad_inpaint_only_masked_padding: int = Field(32, ge=0, le=256)
    ad_use_inpaint_width_height: bool = False
    ad_inpaint_width: int = Field(512, ge=64, le=2048)
    ad_inpaint_height: int = Field(512, ge=64, le=2048)
    ad_use_steps: bool = False
    ad_steps: int = Field(28, ge=1, le=150)
    ad_use_cfg_scale: bool = False
    ad_cfg_scale: float = Field(7.0, ge=1, le=30)
    # a control unit on each crop (its detector runs on the crop: openpose_hand / openpose_face keep the fingers
    # and the face's landmarks where they were)
    ad_controlnet_model: str = Field("None", description="ControlNet of the unit on each crop (None: the base "
                                     "model's own for the module)")
    ad_controlnet_module: str = Field("None", description="detector of a unit derived from each crop, e.g. "
                                      "openpose_hand or openpose_face (None: no unit, or the model's module)")
    ad_controlnet_weight: float = Field(1.0, ge=0, le=2)
    ad_controlnet_guidance_start: float = Field(0.0, ge=0, le=1)
    ad_controlnet_guidance_end: float = Field(1.0, ge=0, le=1)

    @model_validator(mode="before")
    @classmethod
    def _named(cls, value: Any) -> Any:
        return {"ad_model": value} if isinstance(value, str) else value  # "face" alone: its defaults

    @field_validator("ad_model", mode="before")
    @classmethod
    def _model(cls, value: Any) -> str:
        name = ALIASES.get(str(value).strip().lower(), str(value).strip())
        if name not in MODELS:
            raise ValueError(f"detailer model {value!r} is not in kekong (YOLO models need ultralytics weights); "
                             f"use face, hand or one of {', '.join(MODELS)}")
        return name

    @field_validator("ad_inpaint_width", "ad_inpaint_height")
    @classmethod
    def _multiple_of_8(cls, value: int) -> int:
        if value % 8:
            raise ValueError(f"{value} is not a multiple of 8")
        return value

    @field_validator("ad_controlnet_module", mode="before")
    @classmethod
    def _module(cls, value: Any) -> str:
        name = str(value).strip()
        if name.lower() in ("none", ""):
            return "None"
        from kekong.detect import load_all
        from kekong.detect.registry import get

        load_all()
        return get(name).name  # an unknown detector is refused with close-match suggestions

    @model_validator(mode="after")
    def _window(self) -> DetailSpec:
        if self.ad_controlnet_guidance_start > self.ad_controlnet_guidance_end:
            raise ValueError(f"ad_controlnet_guidance_start {self.ad_controlnet_guidance_start} is after "
                             f"ad_controlnet_guidance_end {self.ad_controlnet_guidance_end}")
        if self.ad_controlnet_model != "None" and self.unit_module is None:
            raise ValueError(f"ad_controlnet_model {self.ad_controlnet_model!r}: name its ad_controlnet_module "
                             f"(ADetailer guesses it only for {', '.join(MODULE_OF_MODEL)} models)")
        return self

    @property
    def unit_module(self) -> str | None:
        """The detector of the unit on each crop (ADetailer's guess from the model's name when not named)."""
        if self.ad_controlnet_module != "None":
            return self.ad_controlnet_module
        if self.ad_controlnet_model == "None":
            return None
        return next((module for word, module in MODULE_OF_MODEL.items() if word in self.ad_controlnet_model), None)

    @property
    def finds(self) -> str:
        """'face' or 'hand'."""
        return MODELS[self.ad_model]


def detail_spec(raw: dict[str, Any] | str, where: str = "detail") -> DetailSpec:
    """A DetailSpec from ADetailer's argument dict (or a model name); unsupported arguments off their
    default are refused by name."""
    if isinstance(raw, str):
        raw = {"ad_model": raw}
    if not isinstance(raw, dict):
        raise ParameterError(f"{where}: expected an object of ADetailer arguments, got {type(raw).__name__}")
    fields = {}
    for key, value in raw.items():
        if key in IGNORED:
            continue
        if key in UNSUPPORTED:
            if value != UNSUPPORTED[key]:
                raise ParameterError(f"{where}: ADetailer's {key} is not supported by kekong (leave it at "
                                     f"{UNSUPPORTED[key]!r})")
            continue
        fields[key] = value
    try:
        return DetailSpec(**fields)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in error.errors())
        raise ParameterError(f"{where}: {problems}") from None


def from_adetailer_args(args: Any, where: str = "alwayson_scripts.ADetailer.args") -> list[DetailSpec]:
    """ADetailer's script args — [enabled, skip img2img, {tab 1}, {tab 2} …], the booleans optional —
    as detailer passes; tabs whose ad_model is "None" or ad_tab_enable false are left out."""
    if not isinstance(args, list):
        raise ParameterError(f"{where}: expected a list ([true, false, {{\"ad_model\": …}}, …])")
    flags = [a for a in args[:2] if isinstance(a, bool)]
    if flags and not flags[0]:
        return []
    if len(flags) > 1 and flags[1]:
        raise ParameterError(f"{where}[1]: ADetailer's skip img2img is not supported by kekong (send false)")
    specs = []
    for index, raw in enumerate(args[len(flags):], start=len(flags)):
        if not isinstance(raw, dict):
            raise ParameterError(f"{where}[{index}]: expected an object of ADetailer arguments")
        if str(raw.get("ad_model", "None")) == "None" or raw.get("ad_tab_enable", True) is False:
            continue
        specs.append(detail_spec({k: v for k, v in raw.items() if k != "ad_tab_enable"}, f"{where}[{index}]"))
    return specs


def from_cli(text: str) -> DetailSpec:
    """`face`, `hand` or `face,key=value,…` (keys in ADetailer's names, `ad_` optional)."""
    name, *pairs = text.split(",")
    raw: dict[str, Any] = {"ad_model": name.strip()}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ParameterError(f"--detail {text!r}: {pair!r} is not key=value")
        key = key.strip() if key.strip().startswith("ad_") else "ad_" + key.strip()
        raw[key] = value.strip()
    return detail_spec(raw, f"--detail {text!r}")


# -- infotext (ADetailer's keys) -------------------------------------------------------------------
KEYS = (  # (field, ADetailer's infotext key), in ADetailer's order
    ("ad_model", "ADetailer model"), ("ad_prompt", "ADetailer prompt"),
    ("ad_negative_prompt", "ADetailer negative prompt"), ("ad_confidence", "ADetailer confidence"),
    ("ad_mask_filter_method", "ADetailer method to decide top k masks"), ("ad_mask_k", "ADetailer mask only top k"),
    ("ad_mask_min_ratio", "ADetailer mask min ratio"), ("ad_mask_max_ratio", "ADetailer mask max ratio"),
    ("ad_x_offset", "ADetailer x offset"), ("ad_y_offset", "ADetailer y offset"),
    ("ad_dilate_erode", "ADetailer dilate erode"), ("ad_mask_merge_invert", "ADetailer mask merge invert"),
    ("ad_mask_blur", "ADetailer mask blur"), ("ad_denoising_strength", "ADetailer denoising strength"),
    ("ad_inpaint_only_masked", "ADetailer inpaint only masked"),
    ("ad_inpaint_only_masked_padding", "ADetailer inpaint padding"),
    ("ad_use_inpaint_width_height", "ADetailer use inpaint width height"),
    ("ad_inpaint_width", "ADetailer inpaint width"), ("ad_inpaint_height", "ADetailer inpaint height"),
    ("ad_use_steps", "ADetailer use separate steps"), ("ad_steps", "ADetailer steps"),
    ("ad_use_cfg_scale", "ADetailer use separate CFG scale"), ("ad_cfg_scale", "ADetailer CFG scale"),
    ("ad_controlnet_model", "ADetailer ControlNet model"), ("ad_controlnet_module", "ADetailer ControlNet module"),
    ("ad_controlnet_weight", "ADetailer ControlNet weight"),
    ("ad_controlnet_guidance_start", "ADetailer ControlNet guidance start"),
    ("ad_controlnet_guidance_end", "ADetailer ControlNet guidance end"),
)
_UNIT_FIELDS = {"ad_controlnet_model", "ad_controlnet_module", "ad_controlnet_weight", "ad_controlnet_guidance_start",
                "ad_controlnet_guidance_end"}  # written only with a unit (ADetailer: only with a model)
# written only when on / off their default, as ADetailer's extra_params leaves them out
_ONLY_WITH = {"ad_mask_filter_method": "ad_mask_k", "ad_inpaint_only_masked_padding": "ad_inpaint_only_masked",
              "ad_inpaint_width": "ad_use_inpaint_width_height", "ad_inpaint_height": "ad_use_inpaint_width_height",
              "ad_steps": "ad_use_steps", "ad_cfg_scale": "ad_use_cfg_scale"}
_UNLESS = {"ad_prompt": "", "ad_negative_prompt": "", "ad_mask_k": 0, "ad_mask_min_ratio": 0.0,
           "ad_mask_max_ratio": 1.0, "ad_x_offset": 0, "ad_y_offset": 0, "ad_mask_merge_invert": "None",
           "ad_use_inpaint_width_height": False, "ad_use_steps": False, "ad_use_cfg_scale": False}


def ordinal_suffix(n: int) -> str:
    """ADetailer's key suffix for its n-th (0-based) tab: '', ' 2nd', ' 3rd', ' 4th' …"""
    if n == 0:
        return ""
    k = n + 1
    ending = "th" if 11 <= k % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f" {k}{ending}"


def infotext_params(specs: list[DetailSpec]) -> dict[str, Any]:
    """ADetailer's infotext keys for each pass (the first bare, then ' 2nd', ' 3rd' …)."""
    params: dict[str, Any] = {}
    for n, spec in enumerate(specs):
        values = spec.model_dump()
        for field, key in KEYS:
            gate = _ONLY_WITH.get(field)
            if gate is not None and not values[gate]:
                continue
            if field in _UNLESS and values[field] == _UNLESS[field]:
                continue
            if field in _UNIT_FIELDS and spec.unit_module is None:
                continue
            params[key + ordinal_suffix(n)] = values[field]
    return params


def from_infotext(params: dict[str, str]) -> tuple[list[dict[str, Any]], list[str]]:
    """(detail field entries, ADetailer keys kekong has no field for) from an infotext's ADetailer keys."""
    by_key = {key: field for field, key in KEYS}
    specs: dict[int, dict[str, Any]] = {}
    unknown = []
    for key, value in params.items():
        if not key.startswith("ADetailer "):
            continue
        base, n = key, 0
        for k in range(1, 16):
            if key.endswith(ordinal_suffix(k)):
                base, n = key[: -len(ordinal_suffix(k))], k
                break
        if base in by_key:
            specs.setdefault(n, {})[by_key[base]] = value
        elif base != "ADetailer version":
            unknown.append(key)
    return [specs[n] for n in sorted(specs)], unknown
