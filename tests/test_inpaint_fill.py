"""Each "masked content" mode (A1111's inpainting_fill) starts the masked area from what A1111 says:
original = the image, fill = the surrounding colours blurred in, latent noise = noise, latent
nothing = zeros; the unmasked area of the final composite is the same whatever the mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kekong.generation import inpaint, pipeline
from kekong.request import GenerationRequest, InpaintFill
from tests.tiny_models import build_tiny_base

ORIGINALS = (pipeline._encode_image, pipeline.denoise)  # the spies below call these, never each other


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return str(build_tiny_base(tmp_path_factory.mktemp("fill") / "sd15"))


@pytest.fixture(scope="module")
def image_and_mask(tmp_path_factory):
    from PIL import Image

    folder = tmp_path_factory.mktemp("fill-inputs")
    rng = np.random.default_rng(0)
    image = np.zeros((64, 64, 3), np.uint8)
    image[:, :32] = (200, 40, 40)
    image[:, 32:] = (40, 40, 200)
    image = np.clip(image + rng.integers(0, 30, image.shape), 0, 255).astype(np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 16:48] = 255
    Image.fromarray(image).save(folder / "image.png")
    Image.fromarray(mask).save(folder / "mask.png")
    return folder / "image.png", folder / "mask.png", image, mask


def run(model, paths, fill, monkeypatch):
    """The final image, the image the start latents were encoded from, and the start latents."""
    seen = {}
    encode, denoise = ORIGINALS

    def spy_encode(base, image, generators):
        seen.setdefault("image", image.copy())
        return encode(base, image, generators)

    def spy_denoise(*args, **kwargs):
        seen["start"] = args[8].init_latents.clone()  # InpaintBlend: the masked-content latents
        seen["mask"] = args[8].mask.clone()
        return denoise(*args, **kwargs)

    monkeypatch.setattr(pipeline, "_encode_image", spy_encode)
    monkeypatch.setattr(pipeline, "denoise", spy_denoise)
    request = GenerationRequest(prompt="x", model=model, width=64, height=64, steps=2, seed=1, init_image=str(paths[0]),
                                mask=str(paths[1]), inpainting_fill=fill, denoising_strength=0.75, sampler="Euler")
    result = pipeline.generate(request)[0].image
    return result, seen


def test_each_fill_mode_starts_from_what_a1111_says(model, image_and_mask, monkeypatch):
    image_path, mask_path, image, mask = image_and_mask
    out = {fill: run(model, (image_path, mask_path), fill, monkeypatch) for fill in InpaintFill}
    inside = mask > 0
    original, filled = out[InpaintFill.ORIGINAL][1]["image"], out[InpaintFill.FILL][1]["image"]
    assert np.array_equal(original, image)  # original: the image itself
    blurred_mask = inpaint.prepare(image, mask, (64, 64), invert=False, blur=4, only_masked=False, padding=32,
                                   fill=False).mask  # A1111 fills where the blurred mask reaches
    assert np.array_equal(filled[blurred_mask == 0], image[blurred_mask == 0])  # fill: only the masked area ...
    assert np.array_equal(filled, inpaint.fill_masked(image, blurred_mask))  # ... to the colours around it
    assert np.abs(filled[inside].astype(int) - image[inside].astype(int)).mean() > 5
    latent_mask = out[InpaintFill.ORIGINAL][1]["mask"].bool().expand_as(out[InpaintFill.ORIGINAL][1]["start"])
    start = {fill: seen["start"] for fill, (_, seen) in out.items()}
    assert torch.equal(start[InpaintFill.LATENT_NOTHING][latent_mask], torch.zeros(int(latent_mask.sum())))
    noise = start[InpaintFill.LATENT_NOISE][latent_mask]
    assert abs(float(noise.std()) - 1) < 0.25 and abs(float(noise.mean())) < 0.25  # standard normal noise
    assert (noise - start[InpaintFill.ORIGINAL][latent_mask]).abs().mean() > 0.1
    for fill in (InpaintFill.LATENT_NOISE, InpaintFill.LATENT_NOTHING):  # the latent modes keep the rest
        assert torch.equal(start[fill][~latent_mask], start[InpaintFill.ORIGINAL][~latent_mask])
    finals = {fill: result for fill, (result, _) in out.items()}
    untouched = blurred_mask == 0
    for fill in InpaintFill:
        assert np.array_equal(finals[fill][untouched], image[untouched])
    for a in InpaintFill:
        for b in InpaintFill:
            if a != b:
                assert not np.array_equal(finals[a][inside], finals[b][inside]), (a, b)
