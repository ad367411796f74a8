"""img2img encodes its init image by the VAE posterior's mean when that posterior is as wide as the prior.

kekong-shapes' VAE was trained with a negligible KL term: its posterior std is ≈ 1, so a *sample*
is the mean plus unit noise that img2img at low strength never removes. SD's VAE is narrow
(std ≪ 1) and is sampled, as diffusers and A1111 do."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

from kekong.generation.pipeline import WIDE_POSTERIOR, _encode_image


def _base(std: float) -> SimpleNamespace:
    mean = torch.full((1, 4, 2, 2), 0.5)
    parameters = torch.cat([mean, torch.full_like(mean, 2 * np.log(std))], dim=1)  # mean, log-variance
    encode = lambda pixels: SimpleNamespace(latent_dist=DiagonalGaussianDistribution(parameters))  # noqa: E731
    config = SimpleNamespace(scaling_factor=1.0, shift_factor=None)
    return SimpleNamespace(vae=SimpleNamespace(encode=encode, config=config))


def _latents(std: float) -> torch.Tensor:
    image = np.zeros((16, 16, 3), np.uint8)
    return _encode_image(_base(std), image, [torch.Generator().manual_seed(0)])


def test_a_wide_posterior_is_read_by_its_mean():
    assert torch.equal(_latents(WIDE_POSTERIOR * 2), torch.full((1, 4, 2, 2), 0.5))


def test_a_narrow_posterior_is_sampled_with_the_image_generator():
    narrow = _latents(WIDE_POSTERIOR / 5)
    assert not torch.equal(narrow, torch.full((1, 4, 2, 2), 0.5))
    assert torch.equal(narrow, _latents(WIDE_POSTERIOR / 5))  # the same generator seed, the same sample
