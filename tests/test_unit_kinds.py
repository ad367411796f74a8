"""Control units as kinds (generation/units/): each kind of unit is its own class behind one
interface; a request mixing kinds gives what stock diffusers gives for the same models, whatever
order its units come in; a kind registered by a test contributes without the loop knowing it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

import kekong
from kekong.choices import UNION_TYPES
from kekong.generation.units.base import Contribution, Unit
from kekong.io import save_image
from kekong.models.load import load_base, load_controlnet
from tests.test_ip_adapter import tiny_ip_adapter
from tests.test_t2i_adapter import tiny_adapter
from tests.tiny_models import build_tiny_base, build_tiny_control_lora, build_tiny_controlnet, build_tiny_union


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    root = tmp_path_factory.mktemp("kinds")
    base = build_tiny_base(root / "base")
    build_tiny_base(root / "xl", sdxl=True)
    build_tiny_controlnet(root / "cn", seed=1)
    build_tiny_controlnet(root / "cn2", seed=2)
    build_tiny_union(root / "union")
    build_tiny_control_lora(root / "control-lora-canny-rank4.safetensors")
    tiny_adapter([32, 64], root / "adapter")
    folder = root / "models"
    (folder / "ControlNet").mkdir(parents=True)
    save_file(tiny_ip_adapter(load_base(str(base)).unet), str(folder / "ControlNet" / "ip-adapter_tiny.safetensors"))
    torch.manual_seed(8)
    CLIPVisionModelWithProjection(CLIPVisionConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                                                   num_attention_heads=4, image_size=32, patch_size=8,
                                                   projection_dim=16)).save_pretrained(folder / "clip_vision" / "vit")
    square = np.zeros((64, 64, 3), np.uint8)
    square[16:48, 16:48] = 255
    save_image(square, root / "square.png")
    left = np.zeros((64, 64, 3), np.uint8)
    left[:, :32] = (255, 40, 0)
    save_image(left, root / "left.png")
    save_image((np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8), root / "photo.png")
    return root


@pytest.fixture
def env(models, monkeypatch):
    monkeypatch.setenv("KEKONG_MODELS_DIR", str(models / "models"))  # the IP-Adapter and its image encoder
    return models


def units(env) -> dict[str, dict]:
    """One unit of each kind that runs on the tiny SD 1.5 base."""
    return {"controlnet": {"module": "none", "image": str(env / "square.png"), "model": str(env / "cn")},
            "t2i": {"module": "none", "image": str(env / "left.png"), "model": str(env / "adapter")},
            "ip": {"module": "ip-adapter_clip_sd15", "image": str(env / "photo.png"), "model": "ip-adapter_tiny"},
            "reference": {"module": "reference_only", "image": str(env / "photo.png")}}


def generate(env, controls, **fields) -> np.ndarray:
    settings = dict(prompt="a red star", model=str(env / "base"), width=64, height=64, steps=4, seed=7,
                    sampler="UniPC", cfg_scale=7.5)
    return kekong.generate(**{**settings, **fields, "controls": controls})[0].image


def test_each_kind_is_its_own_class(env):
    from kekong.generation.control import load_units
    from kekong.generation.units import ControlNetUnit, IPAdapterUnit, ReferenceUnit, T2IAdapterUnit, UnionUnit
    from kekong.request import ControlUnit

    sd15 = units(env)
    loaded = load_units(load_base(str(env / "base")), [ControlUnit(**sd15[name]) for name in sd15])
    assert [type(u) for u in loaded] == [ControlNetUnit, T2IAdapterUnit, IPAdapterUnit, ReferenceUnit]
    xl = load_units(load_base(str(env / "xl")), [
        ControlUnit(module="none", image="x.png", model=str(env / "union"), union_type="Canny"),
        ControlUnit(module="none", image="x.png", model=str(env / "control-lora-canny-rank4.safetensors"))])
    assert [type(u) for u in xl] == [UnionUnit, ControlNetUnit]  # a Control-LoRA differs only in how it loads
    assert xl[0].union_index == UNION_TYPES.index("Canny") and isinstance(xl[0], ControlNetUnit)


def test_two_controlnets_and_an_ip_adapter_match_stock_diffusers(env):
    from diffusers import StableDiffusionControlNetPipeline
    from diffusers.models.controlnets import MultiControlNetModel

    from kekong.generation.samplers import make_scheduler
    from kekong.models import ip_adapter

    sd15 = units(env)
    second = {**sd15["controlnet"], "model": str(env / "cn2"), "image": str(env / "left.png")}
    ours = generate(env, [sd15["controlnet"], sd15["ip"], second])
    base = load_base(str(env / "base"))
    nets = MultiControlNetModel([load_controlnet(str(env / name))[0] for name in ("cn", "cn2")])
    stock = StableDiffusionControlNetPipeline(
        vae=base.vae, text_encoder=base.text_encoders[0], tokenizer=base.tokenizers[0], unet=base.unet,
        controlnet=nets, scheduler=make_scheduler("UniPC", "Automatic", base.scheduler_config),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    stock.set_progress_bar_config(disable=True)
    adapter = ip_adapter.load(env / "models" / "ControlNet" / "ip-adapter_tiny.safetensors")
    encoder = ip_adapter.load_image_encoder(ip_adapter.find_image_encoder(adapter))
    cond, uncond = ip_adapter.image_embeds(encoder, np.array(Image.open(env / "photo.png")), adapter.plus)
    maps = [torch.from_numpy(np.array(Image.open(env / name))).float().permute(2, 0, 1)[None] / 255
            for name in ("square.png", "left.png")]
    with ip_adapter.applied(base.unet, [adapter]):  # gives the cached UNet back as it was
        output = stock("a red star", image=maps, num_inference_steps=4, guidance_scale=7.5, height=64, width=64,
                       generator=torch.Generator().manual_seed(7), ip_adapter_image_embeds=[torch.cat([uncond, cond])],
                       output_type="np").images[0]
    assert np.array_equal(ours, (output * 255).round().astype(np.uint8))
    assert not np.array_equal(ours, generate(env, [sd15["controlnet"], second]))


def test_a_t2i_adapter_matches_stock_diffusers(env):
    from diffusers import StableDiffusionAdapterPipeline

    from kekong.generation.pipeline import generate as run
    from kekong.generation.samplers import make_scheduler
    from kekong.request import build_request

    steps = []
    run(build_request(prompt="a red star", model=str(env / "base"), width=64, height=64, steps=4, seed=7,
                      sampler="UniPC", cfg_scale=7.5, controls=[units(env)["t2i"]]), lambda info: steps.append(info))
    base = load_base(str(env / "base"))
    stock = StableDiffusionAdapterPipeline(
        vae=base.vae, text_encoder=base.text_encoders[0], tokenizer=base.tokenizers[0], unet=base.unet,
        adapter=load_controlnet(str(env / "adapter"))[0],
        scheduler=make_scheduler("UniPC", "Automatic", base.scheduler_config),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    stock.set_progress_bar_config(disable=True)
    latents = stock("a red star", image=Image.open(env / "left.png"), num_inference_steps=4, guidance_scale=7.5,
                    height=64, width=64, generator=torch.Generator().manual_seed(7), output_type="latent").images
    plain = []
    run(build_request(prompt="a red star", model=str(env / "base"), width=64, height=64, steps=4, seed=7,
                      sampler="UniPC", cfg_scale=7.5), lambda info: plain.append(info))
    # not bit for bit (the stock pipeline prepares the adapter's input its own way), far closer than the effect
    assert torch.allclose(steps[-1].latents, latents, atol=1e-3)
    assert (plain[-1].latents - latents).abs().max() > 0.1


def test_kinds_combine_whatever_order_the_units_come_in_and_each_acts(env):
    sd15 = units(env)
    forward = generate(env, [sd15[name] for name in ("controlnet", "t2i", "ip", "reference")])
    # the reference pass reads the IP-Adapter's inputs even when the reference unit comes first
    backward = generate(env, [sd15[name] for name in ("reference", "ip", "t2i", "controlnet")])
    assert np.array_equal(forward, backward)
    for left_out in sd15:
        rest = [sd15[name] for name in sd15 if name != left_out]
        assert not np.array_equal(forward, generate(env, rest)), left_out


@dataclass(eq=False)
class EchoUnit(Unit):
    """A kind only this test knows: it runs a ControlNet itself and hands the residuals to the UNet."""

    kind = "echo"
    asked: ClassVar[list[int]] = []  # the steps it was asked at

    @classmethod
    def claims(cls, unit, loaded) -> bool:
        return (unit.model or "").startswith("echo:")

    @classmethod
    def prepare(cls, base, unit, index, loaded) -> Unit:
        return cls(unit, index, load_controlnet(unit.model.removeprefix("echo:"))[0], "echo", "echo", "")

    @classmethod
    def contribute(cls, units, step) -> Contribution | None:
        cls.asked.append(step.index)
        active = [u for u in units if u.active(step.index, step.total)]
        if not active:
            return None
        cond = active[0].cond.expand(step.latent_in.shape[0], -1, -1, -1)
        down, mid = active[0].controlnet(step.latent_in, step.t, encoder_hidden_states=step.embeds,
                                         controlnet_cond=cond, conditioning_scale=1.0, guess_mode=False,
                                         return_dict=False)
        return Contribution(down=list(down), mid=mid)


def test_a_kind_registered_by_a_test_contributes_without_the_loop_knowing_it(env, monkeypatch):
    from kekong.generation.pipeline import generate as run
    from kekong.generation.units import registry
    from kekong.request import build_request

    monkeypatch.setattr(registry, "KINDS", [EchoUnit, *registry.KINDS])
    monkeypatch.setattr(EchoUnit, "asked", [])
    controlnet = units(env)["controlnet"]
    for end in (1.0, 0.5):
        echo = run(build_request(prompt="a red star", model=str(env / "base"), width=64, height=64, steps=4, seed=7,
                                 sampler="UniPC", cfg_scale=7.5, controls=[{**controlnet, "model": f"echo:{env / 'cn'}",
                                                                            "end": end}]))[0]
        assert isinstance(echo.units[0], EchoUnit)
        assert np.array_equal(echo.image, generate(env, [{**controlnet, "end": end}]))  # the same residuals
    assert EchoUnit.asked == [0, 1, 2, 3] * 2
    assert not np.array_equal(echo.image, generate(env, []))


def test_the_recipe_names_each_kinds_model_file(env):
    from kekong.models.hashes import model_sha256
    from kekong.provenance.recipe import models as recipe_models

    sd15 = units(env)
    generated = kekong.generate(prompt="x", model=str(env / "base"), width=64, height=64, steps=1,
                                controls=[sd15[name] for name in ("controlnet", "t2i", "ip", "reference")])[0]
    recorded = recipe_models(generated)
    assert [u["model"] for u in recorded["controlnets"]] == ["cn", "adapter", "ip-adapter_tiny", "None"]
    assert recorded["controlnets"][2]["sha256"] == model_sha256(env / "models" / "ControlNet" /
                                                                "ip-adapter_tiny.safetensors")
    assert recorded["controlnets"][3]["sha256"] is None  # reference-only: no file
    assert [c["index"] for c in recorded["clip_vision"]] == [2]  # only the IP-Adapter reads an image encoder
