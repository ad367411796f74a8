"""Choosing a VAE apart from the base model, as A1111's "SD VAE" setting: a single file (diffusers
or original LDM keys) or a diffusers folder; recorded in the infotext; refused clearly when it
does not fit or does not exist."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from kekong.errors import KekongError, MissingWeightsError
from kekong.generation.pipeline import generate
from kekong.provenance.stamp import infotext_params
from kekong.request import build_request
from tests.ldm_layout import vae_to_ldm
from tests.tiny_models import build_tiny_base, tiny_vae


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("vae")
    build_tiny_base(root / "base")
    brighter = tiny_vae()
    with torch.no_grad():
        brighter.decoder.conv_out.bias += 0.5  # a VAE that decodes visibly brighter
    save_file({k: v.contiguous() for k, v in brighter.state_dict().items()}, root / "bright.safetensors")
    save_file({k: v.contiguous() for k, v in vae_to_ldm(brighter).items()}, root / "bright-ldm.safetensors")
    brighter.save_pretrained(root / "bright-folder")
    return root


def run(models, vae=None):
    [image] = generate(build_request(prompt="x", model=str(models / "base"), width=64, height=64, steps=2, seed=1,
                                     vae=vae))
    return image


def test_a_chosen_vae_decodes_and_is_recorded(models):
    plain, bright = run(models), run(models, str(models / "bright.safetensors"))
    assert bright.image.astype(int).mean() > plain.image.astype(int).mean() + 20
    params = infotext_params(bright)
    assert params["VAE"] == "bright.safetensors" and len(params["VAE hash"]) == 10
    assert "VAE" not in {k for k, v in infotext_params(plain).items() if v is not None}


def test_ldm_file_diffusers_file_and_folder_are_the_same_vae(models):
    images = [run(models, str(models / name)).image
              for name in ("bright.safetensors", "bright-ldm.safetensors", "bright-folder")]
    assert np.array_equal(images[0], images[1]) and np.array_equal(images[0], images[2])


def test_automatic_means_the_models_own(models):
    assert build_request(prompt="x", vae="Automatic").vae is None
    assert np.array_equal(run(models, "Automatic").image, run(models).image)


def test_the_base_keeps_its_own_vae_afterwards(models):
    run(models, str(models / "bright.safetensors"))
    assert np.array_equal(run(models).image, run(models).image)
    assert run(models).image.astype(int).mean() < run(models, str(models / "bright.safetensors")).image.mean()


def test_a_vae_that_does_not_fit_or_is_missing_is_refused(models, tmp_path):
    save_file({"decoder.conv_out.weight": torch.zeros(3, 7, 3, 3)}, tmp_path / "odd.safetensors")
    with pytest.raises(KekongError, match="VAE odd"):
        run(models, str(tmp_path / "odd.safetensors"))
    with pytest.raises(MissingWeightsError):
        run(models, str(tmp_path / "nowhere.safetensors"))
