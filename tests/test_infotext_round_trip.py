"""kekong request → infotext → request is the identity on every field the infotext carries (issue 21
item 2): each variant changes fields from a base request; the infotext kekong writes for it is read
back by the one infotext parser, and every field it gives must equal the request's — and every
field the variant set (but images, which no infotext carries) must come back."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from kekong.provenance.infotext import format_infotext
from kekong.provenance.infotext_request import infotext_fields
from kekong.provenance.stamp import infotext_params
from kekong.request import build_request

BASE = {"prompt": "a red star, (shiny:1.2)", "negative_prompt": "blurry", "steps": 7, "cfg_scale": 5.5, "seed": 11,
        "width": 64, "height": 96, "sampler": "Euler", "scheduler": "Karras"}
VARIANTS = [
    {},
    {"sampler": "DPM++ 2M SDE", "scheduler": "Exponential", "steps": 30, "cfg_scale": 7.0},
    {"sampler": "DPM adaptive", "scheduler": "Automatic"},
    {"subseed": 9, "subseed_strength": 0.3},
    {"seed_resize_from_w": 48, "seed_resize_from_h": 32},
    {"clip_skip": 2},
    {"rng": "CPU"}, {"rng": "NV"},
    {"enable_hr": True, "hr_scale": 1.5, "denoising_strength": 0.4, "hr_second_pass_steps": 3,
     "hr_upscaler": "Latent (bicubic)", "hr_sampler_name": "Euler a", "hr_scheduler": "Karras",
     "hr_prompt": "a big star", "hr_negative_prompt": "dull"},
    {"enable_hr": True, "hr_resize_x": 96, "hr_resize_y": 128, "denoising_strength": 0.6},
    {"init_image": "in.png", "denoising_strength": 0.35},
    {"init_image": "in.png", "mask": "mask.png", "mask_blur": 6, "inpaint_only_masked": True,
     "only_masked_padding": 24, "denoising_strength": 0.8},
]
IMAGES = {"init_image", "mask"}
MODES = {(): "txt2img", ("init_image",): "img2img", ("init_image", "mask"): "inpaint"}


def written(request) -> str:
    generated = SimpleNamespace(
        request=request, seed=request.seed, base=SimpleNamespace(hash="0123456789", name="kekong-shapes"), vae=None,
        subseed=request.subseed if request.subseed_strength else None, batch_position=0, units=[])
    return format_infotext(request.prompt, request.negative_prompt, infotext_params(generated))


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "+".join(v) or "base")
def test_every_field_the_infotext_carries_comes_back(variant):
    request = build_request(**{**BASE, **variant})
    parsed = infotext_fields(written(request))
    fields = {k: v for k, v in parsed.fields.items() if k not in ("controls", "model", "vae", "refiner", "detail")}
    assert fields == {name: _plain(getattr(request, name)) for name in fields}
    assert set(variant) - IMAGES <= set(fields) | {"enable_hr"} and fields.get("enable_hr", False) == request.enable_hr
    assert parsed.mode == MODES[tuple(sorted(IMAGES & set(variant)))]
    assert not parsed.unused


def _plain(value):
    return value.value if hasattr(value, "value") else value


def test_the_schedule_type_is_written_as_a1111_writes_it():
    """A1111 names the schedule it used, but leaves "Automatic" where the sampler has none of its own."""
    def schedule(sampler: str, scheduler: str = "Automatic") -> str:
        return infotext_fields(written(build_request(**{**BASE, "sampler": sampler, "scheduler": scheduler}))) \
            .fields["scheduler"]

    assert (schedule("Euler a"), schedule("DPM fast"), schedule("DDIM")) == ("Automatic",) * 3
    assert (schedule("DPM++ 2M"), schedule("DPM++ 2M SDE"), schedule("Euler a", "Uniform")) == \
        ("Karras", "Exponential", "Uniform")
