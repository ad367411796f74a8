"""The name tables and enums a request is made of, and the bounds leaf modules share.

A leaf: it imports nothing from kekong but the errors, so the request model, generation, the
detectors and the server all read their choices from here without importing each other.
Every other bound is declared once on the request's fields (kekong/request.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from kekong.errors import ParameterError

MAX_SEED = 2**32 - 1
MIN_SIDE, MAX_SIDE = 64, 2048  # a generation side, either pass
MAX_UNITS = 8  # control units in one request
MIN_RES, MAX_RES, DEFAULT_RES = 64, 2048, 512  # processor resolution (a detector's short side)


# --- samplers and schedule types: A1111 1.10's lists (sd_samplers_kdiffusion, sd_samplers_timesteps,
# sd_samplers_lcm, sd_schedulers), in A1111's order ---

@dataclass(frozen=True)
class SamplerSpec:
    """How kekong runs one of A1111's samplers: a k-diffusion `algorithm` (kekong's port,
    generation/k_samplers.py; every k-diffusion schedule type) or a diffusers `scheduler_class`
    with `options` (class by name: no diffusers import here)."""

    algorithm: str = ""
    scheduler_class: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    default_schedule: str = "Uniform"  # what A1111's "Automatic" picks for this sampler
    discard_penultimate: bool = False  # A1111 samples one more level and drops the next-to-last σ
    schedules: tuple[str, ...] | None = None  # the schedule types it takes; None: every k-diffusion one
    why_not: str = ""  # why it takes no other schedule type (the refusal names it)
    unavailable: str = ""  # why kekong does not run it yet (named, so it is refused with a reason)
    second_order: bool = False  # A1111 counts its prompt-edit steps in model evaluations: twice the steps
    uses_ensd: bool = False  # A1111 writes `ENSD` for it (its ancestral noise, eta 1, follows the delta)
    a1111_timesteps: bool = False  # A1111's DDIM timesteps and loop (generation/ddim_a1111.py): steps − 1 evaluations

    @property
    def step_multiplier(self) -> int:
        """A1111's total_steps / steps: the steps its prompt edits are scheduled over, per step."""
        return 2 if self.second_order else 1


_AUTOMATIC_ONLY = "chooses its own noise levels between the model's σ_min and σ_max"
_OWN_TIMESTEPS = "steps over A1111's DDIM timesteps, 1000 // steps apart"
SAMPLERS: dict[str, SamplerSpec] = {
    "DPM++ 2M": SamplerSpec("dpmpp_2m", default_schedule="Karras"),
    "DPM++ SDE": SamplerSpec("dpmpp_sde", default_schedule="Karras", second_order=True),
    "DPM++ 2M SDE": SamplerSpec("dpmpp_2m_sde", default_schedule="Exponential"),
    "DPM++ 2M SDE Heun": SamplerSpec("dpmpp_2m_sde_heun", default_schedule="Exponential"),
    "DPM++ 2S a": SamplerSpec("dpmpp_2s_ancestral", default_schedule="Karras", second_order=True, uses_ensd=True),
    "DPM++ 3M SDE": SamplerSpec("dpmpp_3m_sde", default_schedule="Exponential", discard_penultimate=True),
    "Euler a": SamplerSpec("euler_ancestral", uses_ensd=True),
    "Euler": SamplerSpec("euler"),
    "LMS": SamplerSpec("lms"),
    "Heun": SamplerSpec("heun", second_order=True),
    "DPM2": SamplerSpec("dpm_2", default_schedule="Karras", discard_penultimate=True, second_order=True),
    "DPM2 a": SamplerSpec("dpm_2_ancestral", default_schedule="Karras", discard_penultimate=True, second_order=True,
                          uses_ensd=True),
    "DPM fast": SamplerSpec("dpm_fast", schedules=("Automatic",), why_not=_AUTOMATIC_ONLY, uses_ensd=True),
    "DPM adaptive": SamplerSpec("dpm_adaptive", schedules=("Automatic",), why_not=_AUTOMATIC_ONLY, uses_ensd=True),
    "Restart": SamplerSpec("restart", default_schedule="Karras", second_order=True),
    "DDIM": SamplerSpec(scheduler_class="A1111DDIMScheduler", schedules=("Automatic", "Uniform"),
                        why_not=_OWN_TIMESTEPS, a1111_timesteps=True),
    "DDIM CFG++": SamplerSpec(scheduler_class="DDIMCFGPlusPlusScheduler", schedules=("Automatic", "Uniform"),
                              why_not=_OWN_TIMESTEPS, a1111_timesteps=True),
    "PLMS": SamplerSpec(scheduler_class="PNDMScheduler", options={"skip_prk_steps": True}),
    "UniPC": SamplerSpec(scheduler_class="UniPCMultistepScheduler"),
    "LCM": SamplerSpec(scheduler_class="LCMScheduler", schedules=("Automatic", "Uniform"),
                       why_not="keeps LCMScheduler's own timesteps (which ignore the spacing SGM Uniform sets)"),
}
SAMPLER_NAMES = tuple(SAMPLERS)

SCHEDULE_TYPES = ("Automatic", "Uniform", "Karras", "Exponential", "Polyexponential", "SGM Uniform", "KL Optimal",
                  "Align Your Steps", "Simple", "Normal", "DDIM", "Beta")
# The schedule types the diffusers-run samplers (DDIM, PLMS, UniPC, LCM) take, as the scheduler
# option that gives each (None: the scheduler's own spacing).
DIFFUSERS_SCHEDULES: dict[str, tuple[str, Any] | None] = {
    "Automatic": None,
    "Uniform": None,
    "Karras": ("use_karras_sigmas", True),
    "Exponential": ("use_exponential_sigmas", True),
    "Beta": ("use_beta_sigmas", True),
    "SGM Uniform": ("timestep_spacing", "trailing"),
}


def check_schedule(sampler: str, schedule: str) -> None:
    """Refuse, by name, a sampler kekong does not run or a schedule type it would not honour
    (both names already known)."""
    spec = SAMPLERS[sampler]
    if spec.unavailable:
        raise ParameterError(f"sampler {sampler!r} is not in kekong yet: {spec.unavailable}")
    if spec.schedules is not None and schedule not in spec.schedules:
        raise ParameterError(f"sampler {sampler!r} takes no {schedule} schedule type: it {spec.why_not}; "
                             f"use {' or '.join(spec.schedules)}")
    if not spec.algorithm and schedule not in DIFFUSERS_SCHEDULES:
        raise ParameterError(f"sampler {sampler!r} does not support the {schedule} schedule type (it takes "
                             f"{', '.join(s for s in DIFFUSERS_SCHEDULES if s != 'Automatic')})")


def split_sampler_name(sampler: str, schedule: str = "Automatic") -> tuple[str, str]:
    """("DPM++ 2M Karras", "Automatic") → ("DPM++ 2M", "Karras"); unknown names pass through."""
    sampler = sampler.strip()
    lowered = {name.lower(): name for name in SAMPLER_NAMES}
    if sampler.lower() in lowered:
        return lowered[sampler.lower()], _schedule_name(schedule)
    for suffix in SCHEDULE_TYPES:
        if sampler.lower().endswith(" " + suffix.lower()):
            base = sampler[: -len(suffix) - 1].strip().lower()
            if base in lowered and _schedule_name(schedule) == "Automatic":
                return lowered[base], suffix
    return sampler, _schedule_name(schedule)


def _schedule_name(schedule: str) -> str:
    """A schedule type by its label (`SGM Uniform`) or A1111's API name (`sgm_uniform`, also `SGMUniform`)."""
    key = _squashed(schedule)
    for name in SCHEDULE_TYPES:
        if key == _squashed(name):
            return name
    return schedule


def _squashed(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


# --- ControlNet Union's control types ---

# The model's control-type slots (ProMax has 8; the first release 6, without Tile and Inpaint).
UNION_TYPES = ("OpenPose", "Depth", "Soft Edge", "Canny", "Normal Map", "Segment", "Tile", "Inpaint")
_UNION_ALIASES = {
    "openpose": "OpenPose", "depth": "Depth", "soft edge": "Soft Edge", "softedge": "Soft Edge",
    "scribble": "Soft Edge", "hed": "Soft Edge", "canny": "Canny", "lineart": "Canny", "mlsd": "Canny",
    "canny/lineart/mlsd": "Canny", "normal": "Normal Map", "normal map": "Normal Map",
    "segment": "Segment", "segmentation": "Segment", "tile": "Tile", "inpaint": "Inpaint", "repaint": "Inpaint"}


def parse_union_type(value: str | None) -> str | None:
    """A union type by name (any case; sd-webui-controlnet's names and short ones); None = from the module."""
    if value is None or str(value).strip().lower() in ("", "unknown", "auto"):
        return None
    key = str(value).strip().lower()
    for name in UNION_TYPES:
        if key == name.lower():
            return name
    if key in _UNION_ALIASES:
        return _UNION_ALIASES[key]
    raise ParameterError(f"unknown union control type {value!r}; expected one of: {', '.join(UNION_TYPES)}")


# --- enums ---

def _parse_choice(cls: type[Enum], value: Any, what: str) -> Any:
    """An enum member from itself, its value (any case, `_` for spaces) or its index, as API clients send."""
    if isinstance(value, cls):
        return value
    members = list(cls)
    key = str(value).strip().lower().replace("_", " ")
    if key.isdigit() and int(key) < len(members):
        return members[int(key)]
    for member in members:
        if key == str(member.value).lower():
            return member
    raise ParameterError(f"unknown {what} {value!r}; expected one of: " + ", ".join(str(m.value) for m in members)
                         + f" (or 0-{len(members) - 1})")


class RngSource(str, Enum):
    """A1111's random-number source for the starting noise (see generation/noise.py)."""

    CPU = "CPU"
    GPU = "GPU"  # A1111's default: torch.randn on CUDA, recomputed exactly on the CPU here
    NV = "NV"


class ControlMode(str, Enum):
    """sd-webui-controlnet's control modes (the API sends names or 0/1/2)."""

    BALANCED = "Balanced"
    PROMPT = "My prompt is more important"  # soft injection: deeper layers weaker
    CONTROL = "ControlNet is more important"  # soft injection, conditional half of CFG only

    @classmethod
    def parse(cls, value: str | int | ControlMode) -> ControlMode:
        """Display name, API integer, or a short name; `guess` is the original guess mode,
        which is exactly "ControlNet is more important" (same scales, no control on uncond)."""
        if isinstance(value, cls):
            return value
        key = str(value).strip().lower()
        aliases = {"0": cls.BALANCED, "balanced": cls.BALANCED,
                   "1": cls.PROMPT, "prompt": cls.PROMPT,
                   "2": cls.CONTROL, "control": cls.CONTROL, "controlnet": cls.CONTROL,
                   "guess": cls.CONTROL}
        for mode in cls:
            if key == mode.value.lower():
                return mode
        if key in aliases:
            return aliases[key]
        raise ParameterError(f"unknown control mode {value!r}; expected one of: "
                             + ", ".join(m.value for m in cls) + " (or 0/1/2, guess)")


class ResizeMode(str, Enum):
    """How a control map is fitted to the generation size (sd-webui-controlnet's names)."""

    JUST_RESIZE = "Just Resize"  # stretch to the target, aspect ratio not kept
    CROP_AND_RESIZE = "Crop and Resize"  # cover the target, centre crop the overflow
    RESIZE_AND_FILL = "Resize and Fill"  # fit inside the target, pad with the border colour

    @classmethod
    def parse(cls, value: str | int | ResizeMode) -> ResizeMode:
        """Accept the display name, a short name (`crop`, `fill`, `just`) or the API integer."""
        if isinstance(value, cls):
            return value
        aliases = {
            "0": cls.JUST_RESIZE, "just": cls.JUST_RESIZE, "just_resize": cls.JUST_RESIZE,
            "1": cls.CROP_AND_RESIZE, "crop": cls.CROP_AND_RESIZE, "inner_fit": cls.CROP_AND_RESIZE,
            "crop_and_resize": cls.CROP_AND_RESIZE, "scale to fit (inner fit)": cls.CROP_AND_RESIZE,
            "inner fit (scale to fit)": cls.CROP_AND_RESIZE,  # sd-webui-controlnet's older label, still accepted
            "2": cls.RESIZE_AND_FILL, "fill": cls.RESIZE_AND_FILL, "outer_fit": cls.RESIZE_AND_FILL,
            "resize_and_fill": cls.RESIZE_AND_FILL, "envelope (outer fit)": cls.RESIZE_AND_FILL,
            "outer fit (shrink to fit)": cls.RESIZE_AND_FILL,
        }
        key = str(value).strip().lower()
        for mode in cls:
            if key == mode.value.lower():
                return mode
        if key in aliases:
            return aliases[key]
        names = ", ".join(m.value for m in cls)
        raise ParameterError(f"unknown resize mode {value!r}; expected one of: {names}")


class InpaintFill(str, Enum):
    """What the masked area starts from (A1111's "Masked content")."""

    FILL = "fill"  # the surrounding colours, blurred in
    ORIGINAL = "original"
    LATENT_NOISE = "latent noise"
    LATENT_NOTHING = "latent nothing"

    @classmethod
    def parse(cls, value: str | int | InpaintFill) -> InpaintFill:
        return _parse_choice(cls, value, "inpainting fill")


class PredictionType(str, Enum):
    EPSILON = "epsilon"
    V_PREDICTION = "v_prediction"


class FastPart(str, Enum):
    """The accelerations fast mode may apply (kekong/generation/fast.py), each switchable."""

    DEEP_CACHE = "deep_cache"  # between full steps only the UNet's shallow branch runs, on kept deep features
    CONTROL_REUSE = "control_reuse"  # ControlNets run on full steps only; the steps between reuse their residuals


class HrOption(str, Enum):
    """Which hires-fix passes a control unit acts in (sd-webui-controlnet's `hr_option`)."""

    BOTH = "Both"
    LOW_RES_ONLY = "Low res only"
    HIGH_RES_ONLY = "High res only"

    @classmethod
    def parse(cls, value: str | int | HrOption) -> HrOption:
        return _parse_choice(cls, value, "hr_option")


# IP-Adapter's preprocessor names (sd-webui-controlnet's); a leaf here so request rules and recipes
# can ask without importing the IP-Adapter code (and torch) — kekong/models/ip_adapter.py uses them.
IP_ADAPTER_MODULES = ("ip-adapter_clip_sd15", "ip-adapter_clip_h", "ip-adapter_clip_sdxl", "ip-adapter_clip_g",
                      "ip-adapter_clip_sdxl_plus_vith", "ip-adapter-auto")


def is_ip_module(module: str) -> bool:
    return module in IP_ADAPTER_MODULES
