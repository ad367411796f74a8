"""The one request model shared by the CLI, the Python API, the HTTP API and the UI.

Bounds live here, once. Validation happens when a request is built — before any image is
read or any model is loaded — and every error names the field and the bound it broke.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from kekong.choices import (
    DEFAULT_RES,
    MAX_RES,
    MAX_SEED,
    MAX_SIDE,
    MAX_UNITS,
    MIN_RES,
    MIN_SIDE,
    SAMPLER_NAMES,
    SCHEDULE_TYPES,
    UNION_TYPES,
    ControlMode,
    FastPart,
    HrOption,
    InpaintFill,
    PredictionType,
    ResizeMode,
    RngSource,
    check_schedule,
    parse_union_type,
    split_sampler_name,
)
from kekong.detail_spec import DetailSpec
from kekong.errors import ParameterError
from kekong.repose_spec import ReposeSpec

MAX_STEPS = 150  # sampling steps, either pass (a server's --max-steps can only lower it)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LoraSpec(_Strict):
    path: str = Field(min_length=1, description="LoRA file (.safetensors) or name in the models folder")
    weight: float = Field(1.0, ge=-5, le=5)


class ControlUnit(_Strict):
    """One ControlNet unit; units are independent and any number (up to MAX_UNITS) may run."""

    module: str = Field("none", description="detector name, or `none` when the image is a control map")
    image: str | None = Field(None, description="path or data: URI; default: the init image")
    params: dict[str, float | int | bool | str] = Field(default_factory=dict)
    model: str | None = Field(None, description="ControlNet; default: the base model's for the module")
    weight: float = Field(1.0, ge=0, le=2, description="control weight")
    start: float = Field(0.0, ge=0, le=1, description="guidance start (fraction of the schedule)")
    end: float = Field(1.0, ge=0, le=1, description="guidance end (fraction of the schedule)")
    mode: ControlMode = Field(ControlMode.BALANCED, description="control mode")
    resize_mode: ResizeMode = Field(ResizeMode.CROP_AND_RESIZE, description="how the map fits the size")
    res: int = Field(DEFAULT_RES, ge=MIN_RES, le=MAX_RES, description="processor resolution (short side)")
    pixel_perfect: bool = False
    mask: str | None = Field(None, description="region mask: the unit acts only where it is white")
    hr_option: HrOption = Field(HrOption.BOTH, description="hires fix: the passes this unit acts in")
    union_type: str | None = Field(None, description="ControlNet Union: what the map is; default: from the module",
                                   json_schema_extra={"choices": UNION_TYPES})
    enabled: bool = True

    @field_validator("module")
    @classmethod
    def _known_module(cls, value: str, info: ValidationInfo) -> str:
        value = value.strip()
        if value.lower() in ("none", ""):
            return "none"
        from kekong.choices import is_ip_module

        if is_ip_module(value) or not _detectors_checked(info):
            return value  # no detector: the unit's image is encoded by CLIP vision (or: checked by the server)
        from kekong.detect import load_all
        from kekong.detect.registry import get

        load_all()
        return get(value).name  # raises with close-match suggestions

    @field_validator("mode", mode="before")
    @classmethod
    def _mode(cls, value: Any) -> ControlMode:
        return ControlMode.parse(value)

    @field_validator("resize_mode", mode="before")
    @classmethod
    def _resize(cls, value: Any) -> ResizeMode:
        return ResizeMode.parse(value)

    @field_validator("hr_option", mode="before")
    @classmethod
    def _hr_option(cls, value: Any) -> HrOption:
        return HrOption.parse(value)

    @field_validator("union_type", mode="before")
    @classmethod
    def _union_type(cls, value: Any) -> str | None:
        return parse_union_type(value)

    @model_validator(mode="after")
    def _window_and_params(self, info: ValidationInfo) -> ControlUnit:
        if self.start > self.end:
            raise ValueError(f"guidance start {self.start} is after guidance end {self.end}")
        from kekong.choices import is_ip_module

        if is_ip_module(self.module):
            if self.params:
                raise ValueError(f"module {self.module} takes no detector parameters")
            _ip_unit_rules(self)
        elif self.module != "none" and _detectors_checked(info):
            from kekong.detect.registry import get

            self.__dict__["params"] = get(self.module).validate(dict(self.params))
        elif self.params and self.module == "none":
            raise ValueError("module `none` takes no detector parameters")
        if self.module == "reference_only" and self.model is not None:
            raise ValueError(f"reference_only uses no model (model={self.model!r})")
        return self


class GenerationRequest(_Strict):
    """txt2img, img2img (init_image) and inpaint (init_image + mask), with 0..N control units."""

    prompt: str = Field("", max_length=20_000)
    negative_prompt: str = Field("", max_length=20_000)
    model: str | None = Field(None, description="base model; default: the shipped kekong-shapes")
    vae: str | None = Field(None, description="VAE file, folder or name; None (or Automatic) = the model's own")
    refiner: str | None = Field(None, description="a second model that finishes the sampling (the SDXL refiner)")
    refiner_switch_at: float = Field(0.8, ge=0, le=1, description="fraction of the steps after which the "
                                     "refiner takes over")
    prediction_type: PredictionType | None = Field(None, description="override what the model predicts "
                                                   "(v_prediction: SD 2.x 768-v); default: the model's config")
    seed: int = Field(-1, ge=-1, le=MAX_SEED, description="-1 = random; the used seed is recorded")
    subseed: int = Field(-1, ge=-1, le=MAX_SEED, description="variation seed (-1 = random), used when "
                         "subseed_strength > 0")
    subseed_strength: float = Field(0.0, ge=0, le=1, description="0 = the seed's noise, 1 = the variation seed's")
    seed_resize_from_w: int = Field(0, ge=-1, le=MAX_SIDE, description="make the noise as for this width "
                                    "(0 or -1 = off), centred: keeps a composition across sizes")
    seed_resize_from_h: int = Field(0, ge=-1, le=MAX_SIDE)
    rng: RngSource = Field(RngSource.CPU, description="noise source (GPU is A1111's default)")
    eta_noise_seed_delta: int = Field(0, ge=0, le=MAX_SEED, description="A1111's ENSD (eta noise seed delta): the "
                                      "samplers' noise after the starting noise comes from seed + this; 0 = off")
    steps: int = Field(20, ge=1, le=MAX_STEPS, description="sampling steps")
    cfg_scale: float = Field(7.0, ge=1, le=30, description="CFG scale; default: the model's recommendation "
                             "(kekong-shapes: 2), else A1111's 7")
    sampler: str = Field("DPM++ 2M", description="A1111 sampler name", json_schema_extra={"choices": SAMPLER_NAMES})
    scheduler: str = Field("Automatic", description="A1111's schedule type",
                           json_schema_extra={"choices": SCHEDULE_TYPES})
    width: int | None = Field(None, ge=MIN_SIDE, le=MAX_SIDE, description="default: the model's native size")
    height: int | None = Field(None, ge=MIN_SIDE, le=MAX_SIDE)
    batch_size: int = Field(1, ge=1, le=8, description="images denoised together")
    batch_count: int = Field(1, ge=1, le=100, description="batches, one after another")
    clip_skip: int = Field(1, ge=1, le=12, description="stop the text encoder this many layers from its end")
    loras: list[LoraSpec] = Field(default_factory=list, max_length=16)
    init_image: str | None = None
    denoising_strength: float = Field(0.75, ge=0, le=1, description="img2img and the hires pass: how much "
                                      "is repainted")
    resize_mode: ResizeMode = Field(ResizeMode.JUST_RESIZE, description="img2img: how the init image (and mask) "
                                    "fit the size (A1111's 0/1/2)")
    mask: str | None = Field(None, description="inpaint mask: white = repaint")
    mask_invert: bool = False
    mask_blur: int = Field(4, ge=0, le=64, description="inpaint mask blur (px)")
    inpaint_only_masked: bool = False
    only_masked_padding: int = Field(32, ge=0, le=256, description="only-masked padding (px)")
    inpainting_fill: InpaintFill = Field(InpaintFill.ORIGINAL, description="what the masked area starts from")
    controls: list[ControlUnit] = Field(default_factory=list, max_length=MAX_UNITS)
    # hires fix (txt2img): a second, img2img pass at a larger size; denoising_strength applies to it
    enable_hr: bool = False
    hr_scale: float = Field(2.0, ge=1, le=4, description="hires: upscale factor")
    hr_resize_x: int = Field(0, ge=0, le=MAX_SIDE, description="second-pass width (0 = from hr_scale)")
    hr_resize_y: int = Field(0, ge=0, le=MAX_SIDE)
    hr_upscaler: str = Field("Latent", description="Latent (…), Lanczos, Nearest or None")
    hr_second_pass_steps: int = Field(0, ge=0, le=MAX_STEPS, description="0 = the same as steps")
    hr_sampler_name: str = Field("", description="empty = the first pass's")
    hr_scheduler: str = Field("", description="empty = the first pass's")
    hr_prompt: str = Field("", max_length=20_000, description="empty = the first pass's")
    hr_negative_prompt: str = Field("", max_length=20_000)
    # the detailer (A1111's ADetailer, its argument names): faces / hands found and repainted after generation
    detail: list[DetailSpec] = Field(default_factory=list, max_length=4)
    fast: bool = Field(False, description="fast mode: several times quicker for a little fidelity (DeepCache-style "
                       "reuse of the UNet's deep features, ControlNets on fewer steps); off = the exact result")
    fast_parts: list[FastPart] = Field(default_factory=lambda: list(FastPart), min_length=1, description="fast mode: "
                                       "the accelerations it applies", json_schema_extra={
                                           "choices": [part.value for part in FastPart]})
    fast_interval: int = Field(4, ge=2, le=10, description="fast mode: a full step every N steps; the steps "
                               "between reuse what it computed")
    # re-pose: a photo warped to an edited pose, the areas it uncovered inpainted (the warp makes init image and mask)
    repose: ReposeSpec | None = None

    @field_validator("width", "height")
    @classmethod
    def _multiple_of_8(cls, value: int | None) -> int | None:
        if value is not None and value % 8:
            raise ValueError(f"{value} is not a multiple of 8 (try {value - value % 8})")
        return value

    @field_validator("vae", "refiner", mode="before")
    @classmethod
    def _vae(cls, value: Any) -> str | None:
        return None if value is None or str(value).strip().lower() in ("", "automatic", "none") else str(value)

    @field_validator("inpainting_fill", mode="before")
    @classmethod
    def _fill(cls, value: Any) -> InpaintFill:
        return InpaintFill.parse(value)

    @field_validator("resize_mode", mode="before")
    @classmethod
    def _init_resize(cls, value: Any) -> ResizeMode:
        if str(value).strip() == "3":
            raise ValueError("resize mode 3 (Just resize, latent upscale) is not in kekong; use 0, 1 or 2")
        return ResizeMode.parse(value)

    @model_validator(mode="after")
    def _consistent(self) -> GenerationRequest:
        sampler, schedule = split_sampler_name(self.sampler, self.scheduler)
        if sampler not in SAMPLER_NAMES:
            raise ValueError(f"unknown sampler {self.sampler!r}; known: {', '.join(SAMPLER_NAMES)}")
        if schedule not in SCHEDULE_TYPES:
            raise ValueError(f"unknown schedule type {self.scheduler!r}; known: {', '.join(SCHEDULE_TYPES)}")
        check_schedule(sampler, schedule)
        self.__dict__["sampler"], self.__dict__["scheduler"] = sampler, schedule
        if self.mask is not None and self.init_image is None:
            raise ValueError("a mask needs an init image (inpainting repaints part of an image)")
        if self.repose is not None:
            _repose_rules(self)
        _request_rules(self)
        if self.init_image is None and self.repose is None:
            for index, unit in enumerate(self.controls):
                if unit.enabled and unit.image is None:
                    raise ValueError(f"control unit {index} has no image (and there is no init image)")
        return self

    @property
    def mode(self) -> str:
        if self.repose is not None:
            return "inpaint"  # the warped photo, its uncovered areas repainted
        if self.init_image is None:
            return "txt2img"
        return "inpaint" if self.mask is not None else "img2img"

    @property
    def active_units(self) -> list[ControlUnit]:
        return [unit for unit in self.controls if unit.enabled]


def build_request(**fields: Any) -> GenerationRequest:
    """A GenerationRequest, with pydantic's errors turned into one ParameterError that names them."""
    try:
        return GenerationRequest(**fields)
    except ValidationError as error:
        raise ParameterError(describe_validation_error(error)) from None


def build_request_for_server(**fields: Any) -> GenerationRequest:
    """As `build_request`, every rule but the detector ones: a unit's module name and its detector
    parameters are left to the rules of the `kekong serve` the request goes to (the same code), so
    `kekong generate` through a server imports no detector (torch). A request the server refuses is
    built again with `build_request` before it runs here."""
    try:
        return GenerationRequest.model_validate(fields, context={DETECTORS_CHECKED: False})
    except ValidationError as error:
        raise ParameterError(describe_validation_error(error)) from None


DETECTORS_CHECKED = "detectors_checked"


def _detectors_checked(info: ValidationInfo) -> bool:
    return bool((info.context or {}).get(DETECTORS_CHECKED, True))


def describe_validation_error(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "request"
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    return "invalid request: " + "; ".join(parts)


def _request_rules(request: GenerationRequest) -> None:
    """Rules that need only the request (no file, no model): refused here, before any work starts."""
    from kekong.sizes import check_hires, check_side

    run_steps = []  # (steps, what) of each pass that starts from an image: denoising_strength applies
    if request.init_image is not None or request.repose is not None:
        run_steps.append((request.steps, "steps"))
    if request.enable_hr:
        if request.init_image is not None or request.repose is not None:
            raise ValueError("hires fix is for txt2img; img2img already starts from an image")
        if request.hr_sampler_name:
            sampler, schedule = split_sampler_name(request.hr_sampler_name, request.hr_scheduler or "Automatic")
            if sampler not in SAMPLER_NAMES:
                raise ValueError(f"unknown hires sampler {request.hr_sampler_name!r}")
            if schedule not in SCHEDULE_TYPES:
                raise ValueError(f"unknown hires schedule type {request.hr_scheduler!r}")
            check_schedule(sampler, schedule)
        if request.hr_resize_x and request.hr_resize_y:
            check_side("hr_resize_x", request.hr_resize_x)
            check_side("hr_resize_y", request.hr_resize_y)
        elif request.width is not None and request.height is not None:  # else: once the model's size is known
            check_hires(request.width, request.height, request.hr_scale, request.hr_resize_x, request.hr_resize_y)
        run_steps.append((request.hr_second_pass_steps or request.steps, "hires steps"))
    for steps, what in run_steps:
        if int(steps * request.denoising_strength) < 1:
            raise ValueError(f"denoising strength {request.denoising_strength} with {steps} {what} leaves no step "
                             "to run; raise one of them")
    if sum(unit.module == "reference_only" for unit in request.active_units) > 1:
        raise ValueError("one reference_only unit per request (its picture is what the UNet attends to)")
    for index, unit in enumerate(request.controls):
        on_init = unit.image in (None, request.init_image)
        if unit.enabled and _takes_mask(unit.module) and (request.mask is None or not on_init):
            raise ValueError(f"control unit {index}: an {unit.module} unit works on the init image with the "
                             "request's inpaint mask (send init_image and mask, and no unit image)")


def _repose_rules(request: GenerationRequest) -> None:
    """A re-pose makes its own init image and mask (the warped photo, its uncovered areas); its pose unit
    reads the edited skeleton."""
    spec = request.repose
    if request.init_image is not None or request.mask is not None:
        raise ValueError("repose makes the init image and mask itself (the warped photo and the areas the warp "
                         "uncovered): send the photo as repose.image, and no init_image or mask")
    if spec.pose_unit is not None:
        if spec.pose_unit >= len(request.controls):
            raise ValueError(f"repose.pose_unit {spec.pose_unit}: there are {len(request.controls)} control units")
        unit = request.controls[spec.pose_unit]
        if unit.image is not None or unit.module != "none":
            raise ValueError(f"repose.pose_unit {spec.pose_unit}: the pose unit reads the edited skeleton as a "
                             "ready map (module none, no image of its own)")


def _takes_mask(module: str) -> bool:
    """Inpaint detectors (inpaint_only, inpaint_global_harmonious) read the request's inpaint mask."""
    import sys

    registry = sys.modules.get("kekong.detect.registry")  # loaded by the unit's module check; absent only when
    # the detector rules are left to a server (build_request_for_server): nothing here then imports detectors
    return registry is not None and module in registry.DETECTORS and registry.DETECTORS[module].takes_mask


def _ip_unit_rules(unit: ControlUnit) -> None:
    """What an IP-Adapter unit cannot do: it acts through the prompt's cross-attention, everywhere, in both passes."""
    if unit.model is None:
        raise ValueError("an IP-Adapter unit needs model= (e.g. ip-adapter_sd15)")
    if unit.mode != ControlMode.BALANCED or unit.mask is not None or unit.hr_option != HrOption.BOTH:
        raise ValueError("IP-Adapter units take the Balanced control mode, no region mask and hr_option Both "
                         "(they act through the prompt's cross-attention)")
