"""Anime face segmentation (seg_anime_face / anime_face_segment): the U-Net has UNet.pth's torchvision-named keys
and shapes, the picture goes in at a 512 px short side in [0, 1], and each pixel is painted in its most likely
class's colour from the extension's palette, at the processor resolution."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from kekong.detect import run
from kekong.detect.learned import anime_face
from kekong.detect.learned.anime_face import PALETTE, AnimeFaceUNet, network_input, paint
from kekong.errors import KekongError, MissingWeightsError, ParameterError

PICTURE = np.random.default_rng(8).integers(0, 256, (64, 96, 3), dtype=np.uint8)


@pytest.fixture(autouse=True)
def small_input(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("KEKONG_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(anime_face, "INPUT_SHORT_SIDE", 64)  # the network at 512 px takes seconds here


def _save(tmp_path, net: AnimeFaceUNet) -> None:
    folder = tmp_path / "models" / "annotators"
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), folder / "UNet.pth")


def _network(seed: int = 0) -> AnimeFaceUNet:
    torch.manual_seed(seed)
    return AnimeFaceUNet().eval()


def test_the_network_has_unet_pths_keys_and_shapes():
    net = AnimeFaceUNet()
    # torchvision's MobileNetV2 has 3,504,872 parameters; features 17-18 and the classifier (2,167,080) are not
    # used, and the decoder adds 216,463
    assert sum(p.numel() for p in net.parameters()) == 3_504_872 - 473_920 - 412_160 - 1_281_000 + 216_463
    shapes = {key: tuple(value.shape) for key, value in net.state_dict().items()}
    assert shapes["en_block0.0.0.weight"] == (32, 3, 3, 3) and shapes["en_block0.0.1.running_mean"] == (32,)
    assert shapes["en_block0.1.conv.0.0.weight"] == (32, 1, 3, 3)  # expansion 1: depth-wise first
    assert shapes["en_block0.1.conv.1.weight"] == (16, 32, 1, 1) and shapes["en_block0.1.conv.2.weight"] == (16,)
    assert shapes["en_block1.0.conv.0.0.weight"] == (96, 16, 1, 1)
    assert shapes["en_block1.0.conv.1.0.weight"] == (96, 1, 3, 3)
    assert shapes["en_block1.0.conv.2.weight"] == (24, 96, 1, 1)
    assert shapes["en_block3.6.conv.2.weight"] == (96, 576, 1, 1) and shapes["en_block4.2.conv.3.running_var"] == (160,)
    assert shapes["de_block4.1.weight"] == (96, 160, 3, 3) and shapes["de_block0.1.weight"] == (7, 32, 3, 3)
    assert not any(".2.weight" in k and k.startswith("de_block") for k in shapes)  # instance norms hold nothing
    with torch.inference_mode():
        probabilities = net.eval()(torch.rand(1, 3, 64, 96))
    assert probabilities.shape == (1, 7, 64, 96) and torch.allclose(probabilities.sum(1), torch.ones(1, 64, 96))


def test_the_input_is_torchvisions_resize_to_512_and_to_tensor(monkeypatch):
    monkeypatch.setattr(anime_face, "INPUT_SHORT_SIDE", 512)
    wide, tall = PICTURE, np.ascontiguousarray(PICTURE[:60, :45])
    assert network_input(wide).shape == (1, 3, 512, 768)
    assert network_input(tall).shape == (1, 3, int(512 * 60 / 45), 512)  # the long side truncated: 682
    expected = np.asarray(Image.fromarray(wide).resize((768, 512), Image.BICUBIC)).astype(np.float32) / 255
    assert np.array_equal(network_input(wide)[0].permute(1, 2, 0).numpy(), expected)
    already = np.random.default_rng(1).integers(0, 256, (512, 600, 3), dtype=np.uint8)
    assert np.array_equal(network_input(already)[0].permute(1, 2, 0).numpy(), already / np.float32(255))


def test_each_pixel_is_painted_in_its_most_likely_classs_colour():
    probabilities = np.zeros((7, 2, 3), np.float32)
    for index, winner in enumerate([0, 1, 2, 3, 4]):
        probabilities[winner, index // 3, index % 3] = 0.9
    probabilities[[2, 6], 1, 2] = 0.5  # a tie: the first class wins, as argmax
    painted = paint(probabilities)
    assert painted.dtype == np.uint8
    assert [tuple(c) for c in painted.reshape(-1, 3)] == [(255, 255, 0), (0, 0, 255), (255, 0, 0), (255, 255, 255),
                                                          (0, 255, 0), (255, 0, 0)]  # the tie: eye
    assert tuple(PALETTE[6]) == (255, 0, 255) and tuple(PALETTE[5]) == (0, 255, 255)  # clothes, skin


@pytest.mark.parametrize("winner", [0, 1, 6])
def test_a_network_sure_of_one_class_paints_the_map_in_its_colour(tmp_path, winner):
    net = _network()
    with torch.no_grad():
        net.de_block0[1].weight.zero_()
        net.de_block0[1].bias.copy_(torch.eye(7)[winner] * 10)
    _save(tmp_path, net)
    seg = run("anime_face_segment", PICTURE, res=64).image
    assert seg.shape == (64, 96, 3) and (seg == PALETTE[winner]).all()


def test_a_random_network_paints_only_palette_colours_at_the_processor_resolution(tmp_path):
    _save(tmp_path, _network(3))
    seg = run("seg_anime_face", PICTURE, res=96).image
    assert seg.shape == (96, 144, 3)
    assert {tuple(c) for c in np.unique(seg.reshape(-1, 3), axis=0)} <= {tuple(c) for c in PALETTE}


def test_a_file_that_does_not_fit_is_refused_naming_it(tmp_path):
    state = _network().state_dict()
    state["de_block0.1.weight"] = torch.zeros(6, 32, 3, 3)
    folder = tmp_path / "models" / "annotators"
    folder.mkdir(parents=True)
    torch.save(state, folder / "UNet.pth")
    with pytest.raises(KekongError, match=r"UNet\.pth: does not fit .*de_block0\.1\.weight \(6, 32, 3, 3\)"):
        run("seg_anime_face", PICTURE, res=64)


def test_without_weights_the_error_names_the_file_the_repo_and_the_stand_in():
    with pytest.raises(MissingWeightsError, match=r"Annotators/UNet\.pth.*qinglong_controlnet-lllite.*seg_person"):
        run("anime_face_segment", PICTURE, res=64)


def test_a_thin_image_is_refused_before_the_512_px_resize(monkeypatch):
    monkeypatch.setattr(anime_face, "INPUT_SHORT_SIDE", 512)
    assert network_input(np.zeros((64, 1024, 3), np.uint8)).shape == (1, 3, 512, 8192)
    with pytest.raises(ParameterError, match=r"1100x64 image is 8800 px long .* at most 16:1"):
        network_input(np.zeros((64, 1100, 3), np.uint8))
