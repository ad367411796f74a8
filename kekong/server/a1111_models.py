"""A1111's request bodies with A1111's own defaults, so the OpenAPI spec documents them and the
response's `parameters` echoes every field as A1111 does. Unknown fields are kept (`extra`) and
refused by name in `a1111_request.translate`, not silently dropped."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from kekong.declaration import spec

# A1111 field → the request field it sets (names that differ); the rest have the same name
A1111_FIELD_OF = {"n_iter": "batch_count", "inpaint_full_res_padding": "only_masked_padding"}


def declared(a1111_field: str, default: Any) -> Any:
    """A1111's own default, with the bounds and help the request declares for the field it sets."""
    field = spec(A1111_FIELD_OF.get(a1111_field, a1111_field))
    return Field(default, ge=field.ge, le=field.le, description=field.help or None)


class _A1111(BaseModel):
    model_config = ConfigDict(extra="allow")

    prompt: str = ""
    negative_prompt: str = ""
    styles: list[str] | None = None
    seed: int = declared("seed", -1)
    subseed: int = declared("subseed", -1)
    subseed_strength: float = declared("subseed_strength", 0.0)
    seed_resize_from_h: int = declared("seed_resize_from_h", -1)
    seed_resize_from_w: int = declared("seed_resize_from_w", -1)
    sampler_name: str | None = None
    scheduler: str | None = None
    batch_size: int = declared("batch_size", 1)
    n_iter: int = declared("n_iter", 1)
    steps: int = declared("steps", 50)
    cfg_scale: float = declared("cfg_scale", 7.0)
    width: int = declared("width", 512)
    height: int = declared("height", 512)
    restore_faces: bool | None = None
    tiling: bool | None = None
    do_not_save_samples: bool = False
    do_not_save_grid: bool = False
    eta: float | None = None
    denoising_strength: float | None = declared("denoising_strength", None)
    s_min_uncond: float | None = None
    s_churn: float | None = None
    s_tmax: float | None = None
    s_tmin: float | None = None
    s_noise: float | None = None
    override_settings: dict[str, Any] | None = None
    override_settings_restore_afterwards: bool = True
    refiner_checkpoint: str | None = None
    refiner_switch_at: float | None = declared("refiner_switch_at", None)
    disable_extra_networks: bool = False
    firstpass_image: str | None = None
    comments: dict[str, Any] | None = None
    force_task_id: str | None = None
    sampler_index: str = "Euler"
    script_name: str | None = None
    script_args: list[Any] = Field(default_factory=list)
    send_images: bool = True
    save_images: bool = False
    alwayson_scripts: dict[str, Any] = Field(default_factory=dict, description='ControlNet units go in '
                                             '{"controlnet": {"args": [unit, …]}}')
    infotext: str | None = None


class Txt2ImgRequest(_A1111):
    enable_hr: bool = False
    firstphase_width: int = 0
    firstphase_height: int = 0
    hr_scale: float = declared("hr_scale", 2.0)
    hr_upscaler: str | None = None
    hr_second_pass_steps: int = declared("hr_second_pass_steps", 0)
    hr_resize_x: int = declared("hr_resize_x", 0)
    hr_resize_y: int = declared("hr_resize_y", 0)
    hr_checkpoint_name: str | None = None
    hr_sampler_name: str | None = None
    hr_scheduler: str | None = None
    hr_prompt: str = ""
    hr_negative_prompt: str = ""


class Img2ImgRequest(_A1111):
    init_images: list[str] | None = Field(None, description="base64 images (one)")
    resize_mode: int = 0
    image_cfg_scale: float | None = None
    mask: str | None = Field(None, description="base64 inpaint mask, white = repaint")
    mask_blur_x: int = 4
    mask_blur_y: int = 4
    mask_blur: int | None = declared("mask_blur", None)
    mask_round: bool = True
    inpainting_fill: int = 0
    inpaint_full_res: bool = True
    inpaint_full_res_padding: int = declared("inpaint_full_res_padding", 0)
    inpainting_mask_invert: int = 0
    initial_noise_multiplier: float | None = None
    latent_mask: str | None = None
    include_init_images: bool = False
