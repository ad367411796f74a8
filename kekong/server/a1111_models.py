"""A1111's request bodies, carrying their own translation to kekong's GenerationRequest.

Each field is declared once, here, and says what it sets:
- `sets(name, A1111 default, alias=)`: the field *is* request field `name` (its attribute is named
  after it; `alias` is A1111's name where it differs, e.g. `n_iter` → batch_count), with the bounds
  and help the request declares and A1111's own default; `to_request()` copies it.
- `feeds(target, default)`: an A1111 field that sets request field `target` through a conversion
  in `to_request()` (sampler_name → sampler, init_images → init_image …).
- plain fields: A1111's own settings that kekong accepts at their defaults (a1111_request refuses
  other values by name) or that never change the image.

The OpenAPI spec shows A1111's names, with `x-kekong-field` naming the request field each sets.
Unknown fields are kept (`extra`) and named in the answer's warnings (refused on a --strict server).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.fields import FieldInfo

from kekong.declaration import spec
from kekong.server.inputs import NO_URLS, UrlPolicy

if TYPE_CHECKING:
    from kekong.server.a1111_request import Translated

_FIELD, _CONVERTED = "x-kekong-field", "x-kekong-converted"


def sets(name: str, default: Any, alias: str | None = None) -> Any:
    """A field that is request field `name` (the attribute must be named `name`): A1111's default,
    the request's declared bounds and help; `alias`: A1111's name for it when that differs."""
    field = spec(name)
    return Field(default, ge=field.ge, le=field.le, description=field.help or None, alias=alias,
                 json_schema_extra={_FIELD: name})


def feeds(target: str, default: Any, description: str | None = None, bounded: bool = False) -> Any:
    """An A1111 field that sets request field `target` through a conversion in to_request();
    `bounded`: it takes the target's declared bounds too."""
    field = spec(target)
    bounds = {"ge": field.ge, "le": field.le} if bounded else {}
    return Field(default, description=description or (field.help if bounded else None) or None,
                 json_schema_extra={_FIELD: target, _CONVERTED: True}, **bounds)


def target_of(info: FieldInfo) -> tuple[str | None, bool]:
    """(the request field a model field sets, whether through a conversion); (None, False) for A1111's own."""
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    target = extra.get(_FIELD)
    return (str(target) if target else None), bool(extra.get(_CONVERTED))


class _A1111(BaseModel):
    model_config = ConfigDict(extra="allow")

    route: ClassVar[str]
    # extras that clients send and that never change the image: kept out of the "unknown" warning
    QUIET_EXTRAS: ClassVar[frozenset[str]] = frozenset({"seed_enable_extras"})  # the extension's UI checkbox

    prompt: str = sets("prompt", "")
    negative_prompt: str = sets("negative_prompt", "")
    styles: list[str] | None = None
    seed: int = sets("seed", -1)
    subseed: int = sets("subseed", -1)
    subseed_strength: float = sets("subseed_strength", 0.0)
    seed_resize_from_h: int = sets("seed_resize_from_h", -1)
    seed_resize_from_w: int = sets("seed_resize_from_w", -1)
    sampler_name: str | None = feeds("sampler", None, "the sampler (else sampler_index)")
    scheduler: str | None = sets("scheduler", None)
    batch_size: int = sets("batch_size", 1)
    batch_count: int = sets("batch_count", 1, alias="n_iter")
    steps: int = sets("steps", 50)
    cfg_scale: float = sets("cfg_scale", 7.0)
    width: int = sets("width", 512)
    height: int = sets("height", 512)
    restore_faces: bool | None = None
    tiling: bool | None = None
    do_not_save_samples: bool = False
    do_not_save_grid: bool = False
    eta: float | None = None
    denoising_strength: float | None = sets("denoising_strength", None)
    s_min_uncond: float | None = None
    s_churn: float | None = None
    s_tmax: float | None = None
    s_tmin: float | None = None
    s_noise: float | None = None
    override_settings: dict[str, Any] | None = None
    override_settings_restore_afterwards: bool = True
    refiner_checkpoint: str | None = feeds("refiner", None, "the refiner model's name")
    refiner_switch_at: float | None = feeds("refiner_switch_at", None, bounded=True)
    disable_extra_networks: bool = False
    firstpass_image: str | None = None
    comments: dict[str, Any] | None = None
    force_task_id: str | None = None
    sampler_index: str = feeds("sampler", "Euler", "the sampler when sampler_name is not sent (A1111's old name)")
    script_name: str | None = None
    script_args: list[Any] = Field(default_factory=list)
    send_images: bool = True
    save_images: bool = False
    alwayson_scripts: dict[str, Any] = Field(default_factory=dict, description='ControlNet units go in '
                                             '{"controlnet": {"args": [unit, …]}}')
    infotext: str | None = None
    # kekong's own (not A1111's): fast mode, also as override_settings kekong_fast / kekong_fast_parts /
    # kekong_fast_interval for clients that send only A1111's fields (a1111_request.OPTION_FIELDS)
    fast: bool = sets("fast", False)
    fast_parts: list[str] | None = sets("fast_parts", None)
    fast_interval: int | None = sets("fast_interval", None)

    def request_fields(self) -> dict[str, Any]:
        """The request fields this body sets directly (its `sets` fields that are not None)."""
        fields = {}
        for name, info in type(self).model_fields.items():
            target, converted = target_of(info)
            if target is not None and not converted and getattr(self, name) is not None:
                fields[target] = getattr(self, name)
        return fields

    def sent(self) -> set[str]:
        """The request fields the client set (directly, or through a field that feeds them);
        sampler_index does not count (an infotext's sampler wins over it, as in A1111)."""
        out = set()
        for name in self.model_fields_set:
            info = type(self).model_fields.get(name)
            target = target_of(info)[0] if info is not None and name != "sampler_index" else None
            out.add(target or name)
        return out

    @classmethod
    def body_targets(cls) -> set[str]:
        """The request fields this route's body fields set."""
        return {target for info in cls.model_fields.values() if (target := target_of(info)[0]) is not None}

    def unknown(self) -> list[str]:
        """The fields sent that A1111's model does not have (less QUIET_EXTRAS)."""
        return sorted(set(self.model_extra or {}) - self.QUIET_EXTRAS)

    def payload(self) -> dict[str, Any]:
        """Every field under A1111's name, defaults filled in (echoed as `parameters`), extras included."""
        return self.model_dump(by_alias=True)

    def to_request(self, options: dict[str, Any], urls: UrlPolicy = NO_URLS, strict: bool = False) -> Translated:
        """This body as GenerationRequest fields (plus how to answer); `options`: the server's
        /sdapi/v1/options values; `strict`: unknown fields are refused, not warned about."""
        from kekong.server.a1111_request import translate

        return translate(self, options, urls, strict)


class Txt2ImgRequest(_A1111):
    route: ClassVar[str] = "txt2img"

    enable_hr: bool = sets("enable_hr", False)
    firstphase_width: int = 0
    firstphase_height: int = 0
    hr_scale: float = sets("hr_scale", 2.0)
    hr_upscaler: str | None = sets("hr_upscaler", None)
    hr_second_pass_steps: int = sets("hr_second_pass_steps", 0)
    hr_resize_x: int = sets("hr_resize_x", 0)
    hr_resize_y: int = sets("hr_resize_y", 0)
    hr_checkpoint_name: str | None = None
    hr_sampler_name: str | None = sets("hr_sampler_name", None)
    hr_scheduler: str | None = sets("hr_scheduler", None)
    hr_prompt: str = sets("hr_prompt", "")
    hr_negative_prompt: str = sets("hr_negative_prompt", "")


class Img2ImgRequest(_A1111):
    route: ClassVar[str] = "img2img"

    init_images: list[str] | None = feeds("init_image", None, "base64 images (one)")
    resize_mode: int = sets("resize_mode", 0)
    image_cfg_scale: float | None = None
    mask: str | None = feeds("mask", None, "base64 inpaint mask, white = repaint")
    mask_blur_x: int = feeds("mask_blur", 4, bounded=True)
    mask_blur_y: int = feeds("mask_blur", 4, bounded=True)
    mask_blur: int | None = feeds("mask_blur", None, bounded=True)
    mask_round: bool = True
    inpainting_fill: int = sets("inpainting_fill", 0)
    inpaint_full_res: bool = feeds("inpaint_only_masked", True, "inpaint only the masked area")
    only_masked_padding: int = sets("only_masked_padding", 0, alias="inpaint_full_res_padding")
    inpainting_mask_invert: int = feeds("mask_invert", 0, "1: repaint where the mask is black")
    initial_noise_multiplier: float | None = None
    latent_mask: str | None = None
    include_init_images: bool = False
