"""Generation on tiny random models: determinism, batches, what each control-unit setting does
(and only that), exact savings against stock diffusers, model checks, output and replay."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from kekong.errors import KekongError, ParameterError
from kekong.generation import control as control_module
from kekong.generation.loop import Cancelled
from kekong.generation.pipeline import generate
from kekong.generation.units.controlnet import control_residuals
from kekong.io import save_image
from kekong.request import build_request
from tests.tiny_models import build_tiny_base, build_tiny_controlnet


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    build_tiny_base(root / "base")
    build_tiny_base(root / "xl", sdxl=True)
    build_tiny_controlnet(root / "cn", seed=1)
    build_tiny_controlnet(root / "cn2", seed=2)
    build_tiny_controlnet(root / "cnxl", sdxl=True)
    square = np.zeros((64, 64, 3), np.uint8)
    square[16:48, 16:48] = 255
    save_image(square, root / "square.png")
    left = np.zeros((64, 64, 3), np.uint8)
    left[:, :32] = 255
    save_image(left, root / "left.png")
    photo = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    save_image(photo, root / "photo.png")
    return root


def request(tiny, units=(), **fields):
    defaults = dict(prompt="a red star", model=str(tiny / "base"), width=64, height=64, steps=4, seed=7,
                    sampler="Euler a", cfg_scale=7.5)
    controls = [{"module": "none", "image": str(tiny / "square.png"), "model": str(tiny / "cn"), **u} for u in units]
    return build_request(**{**defaults, **fields, "controls": controls})


def image(tiny, units=(), **fields) -> np.ndarray:
    return generate(request(tiny, units, **fields))[0].image


def test_same_seed_same_image_and_seed_matters(tiny):
    first, again = image(tiny, [{}]), image(tiny, [{}])
    assert np.array_equal(first, again)
    assert not np.array_equal(first, image(tiny, [{}], seed=8))


def test_random_seed_is_recorded(tiny):
    result = generate(request(tiny, seed=-1))[0]
    assert 0 <= result.seed < 2**32 and result.request.seed == result.seed


def test_batch_item_matches_single_run_with_its_seed(tiny):
    batch = generate(request(tiny, [{}], batch_size=3))
    assert [g.seed for g in batch] == [7, 8, 9]
    single = image(tiny, [{}], seed=9)
    # batched kernels are not bit-identical to single ones; a few levels at most
    assert np.abs(batch[2].image.astype(int) - single.astype(int)).max() <= 2


def test_batch_count_continues_the_seeds(tiny):
    results = generate(request(tiny, batch_size=2, batch_count=2))
    assert [g.seed for g in results] == [7, 8, 9, 10]
    assert [g.batch_seed for g in results] == [7, 7, 9, 9]


def test_unit_weight_matters_and_weight_zero_is_no_unit(tiny):
    none = image(tiny)
    assert not np.array_equal(image(tiny, [{"weight": 1.0}]), none)
    assert not np.array_equal(image(tiny, [{"weight": 1.0}]), image(tiny, [{"weight": 0.5}]))
    assert np.array_equal(image(tiny, [{"weight": 0.0}]), none)
    assert np.array_equal(image(tiny, [{"enabled": False}]), none)


def test_window_skipping_is_bit_identical_to_stock_diffusers_multiplying_by_zero(tiny):
    from diffusers import StableDiffusionControlNetPipeline

    from kekong.generation.samplers import make_scheduler
    from kekong.models.load import load_base, load_controlnet

    base = load_base(str(tiny / "base"))
    controlnet, _ = load_controlnet(str(tiny / "cn"))
    ours = image(tiny, [{"end": 0.5}], sampler="UniPC")
    stock = StableDiffusionControlNetPipeline(
        vae=base.vae, text_encoder=base.text_encoders[0], tokenizer=base.tokenizers[0], unet=base.unet,
        controlnet=controlnet, scheduler=make_scheduler("UniPC", "Automatic", base.scheduler_config),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    stock.set_progress_bar_config(disable=True)
    control = torch.from_numpy(np.array(Image.open(tiny / "square.png"))).float()
    output = stock("a red star", image=control.permute(2, 0, 1)[None] / 255, num_inference_steps=4,
                   guidance_scale=7.5, generator=torch.Generator().manual_seed(7), control_guidance_end=0.5,
                   output_type="np", height=64, width=64).images[0]
    assert np.array_equal(ours, (output * 255).round().astype(np.uint8))
    assert not np.array_equal(ours, image(tiny, [{"end": 1.0}], sampler="UniPC"))


class CountingControlNet(torch.nn.Module):
    """Wraps a ControlNet to count calls and the batch sizes it sees."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.batches = inner, []

    @property
    def config(self):
        return self.inner.config

    def forward(self, x, *args, **kwargs):
        self.batches.append(x.shape[0])
        return self.inner(x, *args, **kwargs)


def prepared_units(tiny, specs, base=None):
    from kekong.models.load import load_base

    base = base or load_base(str(tiny / "base"))
    req = request(tiny, specs)
    units = control_module.load_units(base, req.active_units)
    control_module.detect_units(units, (64, 64), None)
    return base, units


def residuals_for(units, base, cfg=True):
    torch.manual_seed(0)
    latents = torch.randn(2 if cfg else 1, 4, 8, 8)
    embeds = torch.randn(latents.shape[0], 77, 32)
    return control_residuals(units, 0, 4, latents, torch.tensor(500), embeds, None, 1 if cfg else 0)


def test_units_sharing_model_and_image_share_one_evaluation(tiny):
    base, units = prepared_units(tiny, [{"weight": 0.5}, {"weight": 1.0}])
    counter = CountingControlNet(units[0].controlnet)
    for unit in units:
        unit.controlnet = counter
    _down, mid = residuals_for(units, base)
    assert len(counter.batches) == 1
    _, single = prepared_units(tiny, [{"weight": 1.5}])
    _down_1, mid_1 = residuals_for(single, base)
    assert torch.allclose(mid, mid_1, atol=1e-5)


def test_controlnet_is_more_important_evaluates_and_controls_the_conditional_half_only(tiny):
    base, units = prepared_units(tiny, [{"mode": "ControlNet is more important"}])
    counter = CountingControlNet(units[0].controlnet)
    units[0].controlnet = counter
    down, mid = residuals_for(units, base)
    assert counter.batches == [1]  # half of the CFG batch of 2
    assert torch.count_nonzero(mid[:1]) == 0 and torch.count_nonzero(mid[1:]) > 0
    # soft injection: deeper residuals weaker than in balanced mode
    _, balanced = prepared_units(tiny, [{}])
    down_b, _ = residuals_for(balanced, base)
    ratio = down[0][1:].abs().sum() / down_b[0][1:].abs().sum()
    assert ratio == pytest.approx(0.825 ** 12, rel=1e-3)


def test_modes_change_the_image(tiny):
    balanced = image(tiny, [{}])
    assert not np.array_equal(balanced, image(tiny, [{"mode": "prompt"}]))
    assert not np.array_equal(balanced, image(tiny, [{"mode": "controlnet"}]))


def test_region_mask_zeroes_a_units_residuals_outside_it(tiny):
    base, units = prepared_units(tiny, [{"mask": str(tiny / "left.png")}])
    down, mid = residuals_for(units, base)
    for residual in [*down, mid]:
        width = residual.shape[-1]
        assert torch.count_nonzero(residual[..., width // 2:]) == 0
        assert torch.count_nonzero(residual[..., : width // 2]) > 0
    assert not np.array_equal(image(tiny, [{"mask": str(tiny / "left.png")}]), image(tiny, [{}]))


def test_two_units_with_different_models_both_act(tiny):
    one = image(tiny, [{}])
    two = image(tiny, [{}, {"model": str(tiny / "cn2"), "image": str(tiny / "left.png")}])
    assert not np.array_equal(one, two)


def test_sdxl_controlnet_on_sd_base_is_refused_before_detection(tiny, monkeypatch):
    def must_not_run(*args, **kwargs):
        raise AssertionError("a detector ran before the model check")

    monkeypatch.setattr("kekong.detect.run", must_not_run)
    req = request(tiny, [{"module": "canny", "model": str(tiny / "cnxl")}])
    with pytest.raises(KekongError, match=r"ControlNet cnxl is for SDXL but the base model base is"):
        generate(req)


def test_sdxl_base_generates_with_its_controlnet(tiny):
    result = image(tiny, [{"model": str(tiny / "cnxl")}], model=str(tiny / "xl"), negative_prompt="blurry")
    assert result.shape == (64, 64, 3)


def test_detector_units_run_the_detector_at_the_generation_size(tiny):
    result = generate(request(tiny, [{"module": "canny", "image": str(tiny / "photo.png")}]))[0]
    detected = result.units[0].detected
    assert detected.shape == (64, 64, 3) and set(np.unique(detected)) <= {0, 255}


@pytest.mark.parametrize("sampler", ["Euler a", "Euler", "DPM++ 2M Karras", "DPM++ SDE", "DDIM", "UniPC",
                                     "LCM", "Heun", "DPM++ 2M SDE", "PLMS", "LMS"])
def test_every_sampler_runs(tiny, sampler):
    assert image(tiny, sampler=sampler, steps=3).std() > 0


def test_img2img_and_inpaint(tiny):
    photo = str(tiny / "photo.png")
    low = image(tiny, init_image=photo, denoising_strength=0.3)
    high = image(tiny, init_image=photo, denoising_strength=0.9)
    assert not np.array_equal(low, high)
    painted = image(tiny, init_image=photo, mask=str(tiny / "left.png"), mask_blur=0, denoising_strength=1.0)
    original = np.asarray(Image.open(photo))
    assert np.array_equal(painted[:, 40:], original[:, 40:])  # right of the mask: untouched
    assert not np.array_equal(painted[:, :24], original[:, :24])


@pytest.mark.parametrize("fill", ["fill", "original", "latent noise", "latent nothing"])
def test_inpaint_fill_modes_and_only_masked(tiny, fill):
    result = image(tiny, init_image=str(tiny / "photo.png"), mask=str(tiny / "square.png"), inpainting_fill=fill,
                   inpaint_only_masked=True, only_masked_padding=4)
    assert result.shape == (64, 64, 3)


def test_denoising_strength_that_leaves_no_step_is_refused(tiny):
    with pytest.raises(ParameterError, match="leaves no step"):
        image(tiny, init_image=str(tiny / "photo.png"), denoising_strength=0.1, steps=4)


def test_cancel_between_steps(tiny):
    seen = []

    def stop_after_two(info):
        seen.append(info.step)
        return info.step < 2

    with pytest.raises(Cancelled):
        generate(request(tiny), on_step=stop_after_two)
    assert seen == [1, 2]


def test_step_preview_is_a_small_rgb_image(tiny):
    previews = []
    generate(request(tiny), on_step=lambda info: previews.append(info.preview()))
    assert len(previews) == 4 and previews[0].shape == (8, 8, 3) and previews[0].dtype == np.uint8


def test_and_parts_and_prompt_editing_change_the_image(tiny):
    plain = image(tiny, prompt="a red star")
    assert not np.array_equal(plain, image(tiny, prompt="a red star AND a blue circle :0.5"))
    assert not np.array_equal(plain, image(tiny, prompt="a [red:blue:0.5] star"))
    assert np.array_equal(plain, image(tiny, prompt="a red star :1"))  # one part of weight 1 is the prompt


def test_long_prompts_are_chunked_not_cut(tiny):
    long = ", ".join(["red star"] * 60)  # ~120 tokens
    assert not np.array_equal(image(tiny, prompt=long), image(tiny, prompt=", ".join(["red star"] * 40)))


def test_lora_applies_with_its_weight_and_is_removed_after(tiny, tmp_path):
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import save_file

    from kekong.models.load import load_base

    before = image(tiny)
    unet = load_base(str(tiny / "base")).unet
    unet.add_adapter(LoraConfig(r=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"]), adapter_name="t")
    with torch.no_grad():
        for name, param in unet.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn_like(param) * 0.5)
    state = {f"unet.{k}": v.contiguous() for k, v in get_peft_model_state_dict(unet, adapter_name="t").items()}
    unet.delete_adapters("t")
    save_file(state, tmp_path / "style.safetensors")
    assert np.array_equal(image(tiny), before)
    strong = image(tiny, loras=[{"path": str(tmp_path / "style.safetensors"), "weight": 1.0}])
    weak = image(tiny, loras=[{"path": str(tmp_path / "style.safetensors"), "weight": 0.2}])
    assert not np.array_equal(strong, before) and not np.array_equal(strong, weak)
    assert np.array_equal(image(tiny), before)  # unloaded again


def test_default_controlnet_is_the_base_familys_model_for_the_map(tiny):
    from types import SimpleNamespace

    from kekong.generation.control import default_controlnet

    sd15 = SimpleNamespace(controlnets={}, family="sd15", name="v1-5")
    sdxl = SimpleNamespace(controlnets={}, family="sdxl", name="xl")
    assert default_controlnet(sd15, "canny") == "lllyasviel/control_v11p_sd15_canny"
    assert default_controlnet(sdxl, "canny") == "diffusers/controlnet-canny-sdxl-1.0"
    shipped = SimpleNamespace(controlnets={"none": "kekong-shapes-outline"}, family="custom", name="kekong-shapes")
    assert default_controlnet(shipped, "none") == "kekong-shapes-outline"
    with pytest.raises(ParameterError, match="needs model="):
        default_controlnet(sd15, "none")
    with pytest.raises(KekongError, match=r"lllyasviel/control_v11p_sd15_canny.*hf download"):
        generate(request(tiny, [{"module": "canny", "model": "lllyasviel/control_v11p_sd15_canny"}]))


def test_inpaint_only_unit_reads_the_request_mask(tiny):
    result = generate(request(tiny, [{"module": "inpaint_only", "image": None}], init_image=str(tiny / "photo.png"),
                              mask=str(tiny / "left.png")))[0]
    detected = result.units[0].detected
    assert np.all(detected[:, :28] == -1) and np.all(detected[:, 36:] >= 0)


@pytest.mark.parametrize("mode", ["Just Resize", "Crop and Resize", "Resize and Fill"])
def test_the_init_image_is_fitted_as_a1111s_resize_mode_says(mode):
    from kekong.generation.inpaint import fit_init

    wide = np.zeros((40, 120, 3), np.uint8)
    wide[:, :, 0] = np.linspace(0, 255, 120).astype(np.uint8)  # a red ramp, left to right
    fitted = fit_init(wide, (64, 64), mode)
    assert fitted.shape == (64, 64, 3)
    if mode == "Crop and Resize":  # the centre of the ramp fills the frame
        assert 60 < fitted[:, 0, 0].mean() < 100 and 160 < fitted[:, -1, 0].mean() < 200
    if mode == "Resize and Fill":  # fitted inside; the bands above and below repeat the edge rows
        assert np.array_equal(fitted[0], fitted[20]) and fitted[:, 0, 0].max() < 10
    if mode == "Just Resize":
        assert fitted[:, 0, 0].max() < 10 and fitted[:, -1, 0].min() > 245


def test_latent_upscale_resize_mode_is_refused():
    from kekong.errors import ParameterError
    from kekong.request import build_request

    with pytest.raises(ParameterError, match="resize mode 3"):
        build_request(prompt="x", init_image="x.png", resize_mode=3)
