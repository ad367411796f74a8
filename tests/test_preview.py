"""Live previews: TAESD where its weights are on this machine (A1111's files or diffusers'
folder), the cheap linear map otherwise, or the full VAE."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from kekong.errors import KekongError
from kekong.generation.preview import render
from kekong.models import taesd
from kekong.models.load import load_base
from tests.tiny_models import build_tiny_base


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return load_base(str(build_tiny_base(tmp_path_factory.mktemp("preview") / "sd15")))


@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("KEKONG_MODELS_DIR", str(tmp_path))
    taesd.load.cache_clear()
    return tmp_path


def random_taesd():
    from diffusers import AutoencoderTiny

    torch.manual_seed(0)
    return AutoencoderTiny().eval()


def a1111_keys(model) -> dict:
    """The decoder as A1111's taesd_decoder file holds it: the original Sequential, Clamp at 0."""
    return {f"{int(k.split('.')[1]) + 1}.{k.split('.', 2)[2]}": v.contiguous()
            for k, v in model.decoder.state_dict().items()}


def test_without_weights_the_preview_is_the_cheap_map(base, models_dir):
    latents = torch.randn(1, 4, 8, 8)
    assert taesd.find(base.family) is None
    assert render(latents, base, "TAESD").shape == (8, 8, 3)


def test_a1111s_taesd_decoder_file_decodes_at_full_size(base, models_dir):
    model = random_taesd()
    (models_dir / "VAE-approx").mkdir()
    save_file(a1111_keys(model), str(models_dir / "VAE-approx" / "taesd_decoder.safetensors"))
    latents = torch.randn(1, 4, 8, 8)
    preview = render(latents, base, "TAESD")
    assert preview.shape == (64, 64, 3)
    with torch.no_grad():
        expected = (model.decode(latents).sample[0] / 2 + 0.5).clamp(0, 1).permute(1, 2, 0)
    assert np.abs(preview.astype(int) - (expected * 255).round().numpy().astype(int)).max() <= 1


def test_a_diffusers_taesd_folder_works_too(base, models_dir):
    random_taesd().save_pretrained(models_dir / "VAE-approx" / "taesd")
    assert render(torch.randn(2, 4, 8, 8), base, "TAESD").shape == (64, 64, 3)


def test_a_file_that_is_not_taesd_is_refused_by_name(base, models_dir):
    (models_dir / "VAE-approx").mkdir()
    save_file({"1.weight": torch.zeros(3, 3)}, str(models_dir / "VAE-approx" / "taesd_decoder.safetensors"))
    with pytest.raises(KekongError, match="not a TAESD decoder"):
        render(torch.randn(1, 4, 8, 8), base, "TAESD")


def test_full_uses_the_models_vae(base):
    assert render(torch.randn(1, 4, 8, 8), base, "Full").shape == (64, 64, 3)


def _vae_decode(base, latents):
    with torch.no_grad():
        pixels = base.vae.decode(latents[:1] / base.vae.config.scaling_factor, return_dict=False)[0]
    return ((pixels[0] / 2 + 0.5).clamp(0, 1).permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()


def test_full_is_the_vae_decode_of_the_step_and_not_the_cheap_map(base):
    """"Full" decodes the latents it is given with the model's VAE, exactly; the cheap map is another picture."""
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(5))
    full = render(latents, base, "Full")
    assert np.array_equal(full, _vae_decode(base, latents))
    cheap = render(latents, base, "Approx cheap")
    assert cheap.shape == (8, 8, 3)
    upscaled = np.kron(cheap, np.ones((8, 8, 1), np.uint8))
    assert np.abs(full.astype(int) - upscaled.astype(int)).mean() > 10
