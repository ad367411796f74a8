"""Half-precision storage with fp32 compute (KEKONG_WEIGHTS): half the memory for the weights,
nearly the same image."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import kekong
from kekong.errors import ParameterError
from kekong.models import precision
from kekong.models.load import load_base
from tests.tiny_models import build_tiny_base, build_tiny_controlnet


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("precision")
    return str(build_tiny_base(root / "base")), str(build_tiny_controlnet(root / "cn"))


def generate(folders, control):
    base, controlnet = folders
    return kekong.generate(prompt="a lighthouse", model=base, seed=3, steps=6, sampler="Euler", width=64, height=64,
                           controls=[{"module": "none", "image": control, "model": controlnet}])[0]


@pytest.fixture(scope="module")
def control(tmp_path_factory):
    from kekong.io import save_image

    canvas = np.zeros((64, 64, 3), np.uint8)
    canvas[16:48, 30:34] = 255
    return str(save_image(canvas, tmp_path_factory.mktemp("map") / "map.png"))


def test_fp16_storage_halves_the_weights_and_keeps_the_image(folders, control, monkeypatch):
    full = generate(folders, control)
    monkeypatch.setenv("KEKONG_WEIGHTS", "fp16")
    half = generate(folders, control)
    unet = load_base(folders[0]).unet
    assert precision.stored_as(unet) == torch.float16
    assert unet.conv_in.weight.dtype == torch.float16  # stored half …
    assert unet.conv_norm_out.weight.dtype == torch.float32  # … norms stay fp32
    stored = sum(p.numel() * p.element_size() for p in unet.parameters())
    assert stored < 0.6 * precision.model_fp32_bytes(unet)
    difference = np.abs(full.image.astype(int) - half.image.astype(int))
    assert difference.mean() < 2 and difference.max() < 40  # fp16-rounded weights, fp32 arithmetic


def test_auto_keeps_only_big_components_in_half_precision(monkeypatch):
    monkeypatch.setattr(precision, "total_memory", lambda: 24 * 2**30)
    assert precision.storage_dtype(10 * 2**30) == torch.float16  # the SDXL UNet (10.3 GB in fp32)
    assert precision.storage_dtype(5 * 2**30) == torch.float16  # an SDXL ControlNet
    assert precision.storage_dtype(int(3.4 * 2**30)) is None  # SD 1.5's UNet: plain fp32 is faster
    monkeypatch.setenv("KEKONG_WEIGHTS", "fp32")
    assert precision.storage_dtype(10 * 2**30) is None


def test_an_unknown_setting_is_refused(monkeypatch):
    monkeypatch.setenv("KEKONG_WEIGHTS", "int4")
    with pytest.raises(ParameterError, match="KEKONG_WEIGHTS"):
        precision.storage_dtype(1)


def test_sizes_come_from_the_file_headers(folders):
    from pathlib import Path

    unet = load_base(folders[0]).unet
    assert precision.safetensors_fp32_bytes(Path(folders[0]) / "unet") == precision.model_fp32_bytes(unet)


@pytest.mark.parametrize("scratch", [False, True])
@pytest.mark.parametrize(("dtype", "bound"), [(torch.float16, 2e-3), (torch.bfloat16, 2e-2)])
def test_half_storage_computes_in_fp32_from_the_rounded_weights(dtype, bound, scratch, monkeypatch):
    """The widen-once path is exactly fp32 arithmetic on the stored (rounded) weights, leaves the
    stored weights as they were, and stays within a measured bound of the fp32 model — also when
    every weight is widened into the one scratch buffer (there only weights of a million elements are)."""
    import copy

    from tests.tiny_models import tiny_unet

    if scratch:
        monkeypatch.setattr(precision, "SCRATCH_MIN", 0)
    unet = tiny_unet().eval()
    rounded = copy.deepcopy(unet)
    for module in rounded.modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
            module.weight.data = module.weight.data.to(dtype).float()
    stored = precision.keep_in(copy.deepcopy(unet), dtype)
    x, e = torch.randn(2, 4, 16, 16), torch.randn(2, 7, 32)
    with torch.no_grad():
        full = unet(x, 400, encoder_hidden_states=e).sample
        expected = rounded(x, 400, encoder_hidden_states=e).sample
        got = stored(x, 400, encoder_hidden_states=e).sample
    assert torch.equal(got, expected)  # fp32 arithmetic, nothing else differs
    assert stored.conv_in.weight.dtype == dtype and stored.conv_in.bias.dtype == torch.float32  # state unchanged
    assert ((got - full).norm() / full.norm()).item() < bound  # the rounding of the weights is all it costs


def test_the_scratch_buffer_serves_each_mode_and_thread_and_stays_out_of_autograd(monkeypatch):
    import copy
    import threading

    from tests.tiny_models import tiny_unet

    monkeypatch.setattr(precision, "SCRATCH_MIN", 0)
    unet = tiny_unet().eval()
    stored = precision.keep_in(copy.deepcopy(unet), torch.float16)
    x, e = torch.randn(2, 4, 16, 16), torch.randn(2, 7, 32)
    with torch.no_grad():
        expected = stored(x, 400, encoder_hidden_states=e).sample
    with torch.inference_mode():  # its own buffer: an inference tensor cannot be written outside it
        assert torch.equal(stored(x, 400, encoder_hidden_states=e).sample, expected)
    with torch.no_grad():
        assert torch.equal(stored(x, 400, encoder_hidden_states=e).sample, expected)
    results = [None, None]

    def run(index: int) -> None:
        with torch.no_grad():
            for _ in range(3):
                results[index] = stored(x, 400, encoder_hidden_states=e).sample

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(torch.equal(r, expected) for r in results)  # each thread widens into its own buffer
    # with autograd on (a ControlNet trained through a half-stored UNet) each weight is a tensor of its own,
    # since backward keeps it: gradients flow and equal the fp32-rounded model's
    rounded = copy.deepcopy(unet)
    for module in rounded.modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
            module.weight.data = module.weight.data.half().float()
    grads = []
    for model in (stored, rounded):
        inputs = x.clone().requires_grad_(True)
        model(inputs, 400, encoder_hidden_states=e).sample.square().sum().backward()
        grads.append(inputs.grad)
    assert torch.allclose(grads[0], grads[1], rtol=1e-5, atol=1e-6)


def test_half_storage_reports_fp32_compute_and_survives_diffusers_casting_to_it():
    """diffusers reads `model.dtype` (its IP-Adapter loading ends with `self.to(dtype=self.dtype)`; callers
    cast inputs to it): an fp16-stored model says float32, where it said float16 and the UNet was cast
    whole to fp16 (dtype errors); `restore_storage` narrows what such a cast widened."""
    from tests.tiny_models import tiny_unet

    unet = precision.keep_in(tiny_unet().eval(), torch.float16)
    assert unet.dtype == torch.float32 and unet.conv_in.weight.dtype == torch.float16
    unet.to(dtype=unet.dtype)  # what diffusers' _load_ip_adapter_weights does
    assert unet.conv_in.weight.dtype == torch.float32
    precision.restore_storage(unet)
    assert unet.conv_in.weight.dtype == torch.float16 and unet.conv_in.bias.dtype == torch.float32
    x, e = torch.randn(1, 4, 16, 16), torch.randn(1, 7, 32)
    with torch.no_grad():
        assert unet(x.to(unet.dtype), 400, encoder_hidden_states=e).sample.dtype == torch.float32


needs_bf16 = pytest.mark.skipif(not precision.cpu_has_bf16(), reason="this CPU has no bf16 instructions")


@needs_bf16
def test_bf16_compute_runs_the_denoisers_in_bf16_and_stays_near_the_fp32_image(folders, control, monkeypatch):
    from kekong.models.load import load_controlnet

    full = generate(folders, control)
    monkeypatch.setenv("KEKONG_COMPUTE", "bf16")
    fast = generate(folders, control)
    unet, vae = load_base(folders[0]).unet, load_base(folders[0]).vae
    controlnet = load_controlnet(folders[1])[0]
    assert precision.compute_of(unet) == precision.compute_of(controlnet) == torch.bfloat16
    assert unet.conv_in.weight.dtype == torch.bfloat16 and vae.decoder.conv_in.weight.dtype == torch.float32
    difference = np.abs(full.image.astype(int) - fast.image.astype(int))
    assert 0 < difference.mean() < 3  # not the exact image, but near it (measured bound at SD 1.5 size: BENCHMARKS)
    from kekong.provenance.recipe import build_recipe

    assert build_recipe(fast)["environment"]["compute"] == "bf16"  # a replay elsewhere is told why it differs


def test_bf16_compute_is_refused_on_a_cpu_without_bf16_and_unknown_values_are_named(monkeypatch):
    monkeypatch.setenv("KEKONG_COMPUTE", "bf16")
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    with pytest.raises(ParameterError, match="avx512_bf16 or amx_bf16"):
        precision.compute_setting()
    monkeypatch.setenv("KEKONG_COMPUTE", "fp8")
    with pytest.raises(ParameterError, match="KEKONG_COMPUTE='fp8'; expected fp32 or bf16"):
        precision.compute_setting()
    monkeypatch.delenv("KEKONG_COMPUTE")
    assert precision.compute_setting() == "fp32"  # the default: the same image on every machine
