"""LaMa (inpaint_only+lama): the FFC-ResNet generator has ControlNetLama.pth's keys and shapes, its Fourier
unit is a 1×1 conv over the orthonormal rFFT's real/imaginary channels, and the preprocessor fills the hole
at a 256 px short side and blends the fill in by the mask, as the extension's does."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kekong.detect import run
from kekong.detect.learned import NETWORKS, load_network
from kekong.detect.learned.lama import outpaint_canvas  # registers its network before the fixture swaps it
from kekong.detect.learned.lama_net import FourierUnit, LamaGenerator
from kekong.errors import KekongError, MissingWeightsError

PICTURE = np.random.default_rng(9).integers(0, 256, (96, 128, 3), dtype=np.uint8)
MASK = np.zeros((96, 128), np.uint8)
MASK[24:72, 32:96] = 255


@pytest.fixture(autouse=True)
def tiny_network(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("KEKONG_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setitem(NETWORKS, "ControlNetLama.pth", lambda: LamaGenerator(ngf=8, n_blocks=2))


def _save(tmp_path, state: dict):
    folder = tmp_path / "models" / "annotators"
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(state, folder / "ControlNetLama.pth")
    return folder / "ControlNetLama.pth"


def _tiny(seed: int = 0) -> LamaGenerator:
    torch.manual_seed(seed)
    return LamaGenerator(ngf=8, n_blocks=2).eval()


def test_the_full_size_generator_has_controlnet_lamas_keys_and_shapes():
    net = LamaGenerator()
    assert sum(p.numel() for p in net.parameters()) == 50_975_875  # big-lama's 51 M: ControlNetLama.pth's 204 MB
    shapes = {key: tuple(value.shape) for key, value in net.state_dict().items()}
    assert shapes["model.1.ffc.convl2l.weight"] == (64, 4, 7, 7) and shapes["model.1.bn_l.running_var"] == (64,)
    assert shapes["model.3.ffc.convl2l.weight"] == (256, 128, 3, 3)
    assert shapes["model.4.ffc.convl2l.weight"] == (128, 256, 3, 3)  # the last downsampling starts the global part
    assert shapes["model.4.ffc.convl2g.weight"] == (384, 256, 3, 3) and shapes["model.4.bn_g.weight"] == (384,)
    block = "model.22.conv2.ffc."  # the 18th residual block
    assert shapes[block + "convl2l.weight"] == (128, 128, 3, 3) and shapes[block + "convg2l.weight"] == (128, 384, 3, 3)
    assert shapes[block + "convg2g.conv1.0.weight"] == (192, 384, 1, 1)
    assert shapes[block + "convg2g.fu.conv_layer.weight"] == (384, 384, 1, 1)
    assert shapes[block + "convg2g.fu.bn.running_mean"] == (384,) and shapes[block + "convg2g.conv2.weight"] == (
        384, 192, 1, 1)
    assert shapes["model.24.weight"] == (512, 256, 3, 3) and shapes["model.31.weight"] == (64,)  # up: ConvT, BN
    assert shapes["model.34.weight"] == (3, 64, 7, 7) and shapes["model.34.bias"] == (3,)
    assert not any(k.startswith(("model.23.", "model.35.")) or ".lfu." in k or ".gate." in k for k in shapes)


def test_the_fourier_unit_convolves_the_real_and_imaginary_channels_of_the_orthonormal_rfft():
    torch.manual_seed(2)
    unit = FourierUnit(2, 2).eval()
    swap = torch.zeros(4, 4, 1, 1)
    for c in range(2):  # channels are (c, real), (c, imaginary), …: swap each channel's two parts
        swap[2 * c, 2 * c + 1] = swap[2 * c + 1, 2 * c] = 1
    with torch.no_grad():
        unit.conv_layer.weight.copy_(swap)
    x = torch.randn(1, 2, 8, 10)
    spectrum = torch.fft.rfftn(x, dim=(-2, -1), norm="ortho")
    scale = 1 / math.sqrt(1 + unit.bn.eps)  # batch norm at its initial statistics
    expected = torch.fft.irfftn(torch.complex(torch.relu(spectrum.imag * scale), torch.relu(spectrum.real * scale)),
                                s=(8, 10), dim=(-2, -1), norm="ortho")
    with torch.no_grad():
        assert torch.allclose(unit(x), expected, atol=1e-5)
    constant = torch.full((1, 2, 8, 10), 0.7)
    with torch.no_grad():
        unit.conv_layer.weight.copy_(torch.eye(4)[:, :, None, None])
        assert torch.allclose(unit(constant), constant * scale, atol=1e-5)  # only the DC term: the input back


def test_the_fill_is_the_networks_in_the_hole_and_the_picture_elsewhere(tmp_path):
    net = _tiny()
    with torch.no_grad():
        net.model[-2].weight.zero_()
        net.model[-2].bias.fill_(math.log(0.25 / 0.75))  # sigmoid → 0.25 everywhere: 63 in uint8
    path = _save(tmp_path, net.state_dict())
    seen = []
    load_network(str(path), "ControlNetLama.pth").register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    soft = MASK.copy()
    soft[24:72, 32:48] = 160  # a partial repaint (a hole for LaMa: > 0.5): blended by 160/255
    filled = run("inpaint_only+lama", PICTURE, mask=soft).image
    assert filled.shape == PICTURE.shape and filled.dtype == np.uint8
    assert np.array_equal(filled[soft == 0], PICTURE[soft == 0])
    assert (filled[30:66, 52:90] == 63).all()  # inside the hole, away from the resize's edge
    half = 63 * 160 / 255 + PICTURE[30:66, 36:44].astype(np.float32) * 95 / 255
    assert np.abs(filled[30:66, 36:44] - half).max() <= 1
    (feed,) = seen
    assert feed.shape == (1, 4, 256, 384)  # short side 256 (96 → 256, 128 → 341), padded to multiples of 64
    hole = feed[0, 3]
    assert set(hole.unique().tolist()) == {0.0, 1.0} and hole[66:190, 88:253].all()
    assert (feed[0, :3][:, hole > 0] == 0).all()  # the hole is zeroed in the colours LaMa sees


def test_a_file_that_does_not_fit_is_refused_naming_it(tmp_path):
    state = _tiny().state_dict()
    del state["model.5.conv1.ffc.convg2g.fu.conv_layer.weight"]
    _save(tmp_path, state)
    with pytest.raises(KekongError, match=r"ControlNetLama\.pth: does not fit .*missing: model\.5\.conv1\.ffc\."):
        run("inpaint_only+lama", PICTURE, mask=MASK)


def test_without_weights_the_error_names_the_file_and_the_stand_in():
    with pytest.raises(MissingWeightsError, match=r"ControlNetLama\.pth.*lllyasviel/Annotators.*inpaint_only"):
        run("inpaint_only+lama", PICTURE, mask=MASK)


def test_the_starting_noise_is_the_fill_noised_to_the_last_training_step():
    from types import SimpleNamespace

    from kekong.generation.fill_noise import fill_noise

    config = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}
    base = SimpleNamespace(scheduler_config=config)
    betas = np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000) ** 2
    last = float(np.prod(1 - betas))  # ᾱ_999 of SD's schedule: about 0.0047
    noise, start = torch.randn(2, 4, 8, 8), torch.randn(1, 4, 8, 8)
    units = [SimpleNamespace(fill=None), SimpleNamespace(fill=np.zeros((64, 64, 3), np.uint8))]
    leaned = fill_noise(base, units, noise, lambda image: start)
    assert torch.allclose(leaned, last ** 0.5 * start + (1 - last) ** 0.5 * noise, atol=1e-6)
    assert fill_noise(base, units[:1], noise, lambda image: start) is noise  # no lama unit: as it was
    assert fill_noise(base, units, noise, lambda image: torch.randn(1, 4, 16, 16)) is noise  # another size


@pytest.fixture()
def inpaint_files(tmp_path):
    from kekong.io import save_image
    from tests.tiny_models import build_tiny_base, build_tiny_controlnet

    build_tiny_base(tmp_path / "base")
    build_tiny_controlnet(tmp_path / "cn")
    photo = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 16:48] = 255
    net = _tiny(4)
    with torch.no_grad():  # LaMa paints the hole white
        net.model[-2].weight.zero_()
        net.model[-2].bias.fill_(20.0)
    _save(tmp_path, net.state_dict())
    return {"base": str(tmp_path / "base"), "cn": str(tmp_path / "cn"), "mask": mask,
            "photo": str(save_image(photo, tmp_path / "p.png")), "mask_file": str(save_image(mask, tmp_path / "m.png"))}


def test_a_lama_unit_feeds_the_inpaint_map_and_starts_from_the_fills_noise(inpaint_files, monkeypatch):
    import kekong
    from kekong.detect.inpaint import inpaint_only
    from kekong.errors import ParameterError
    from kekong.generation import pipeline
    from kekong.io import load_image
    from kekong.request import build_request

    calls = []

    def spy(base, units, noise, encode):
        calls.append((noise, pipeline_fill_noise(base, units, noise, encode)))
        return calls[-1][1]

    pipeline_fill_noise = pipeline.fill_noise
    monkeypatch.setattr(pipeline, "fill_noise", spy)
    [made] = kekong.generate(prompt="x", model=inpaint_files["base"], width=64, height=64, steps=2, seed=1,
                             init_image=inpaint_files["photo"], mask=inpaint_files["mask_file"], denoising_strength=1.0,
                             controls=[{"module": "inpaint_only+lama", "model": inpaint_files["cn"]}])
    unit = made.units[0]
    hole = inpaint_files["mask"] > 127
    assert unit.fill is not None and (unit.fill[hole] == 255).all()  # the LaMa fill, at the generation size
    expected = inpaint_only(load_image(inpaint_files["photo"]), inpaint_files["mask"])  # the picture, hole = −1
    assert np.allclose(unit.cond[0].permute(1, 2, 0).numpy(), expected)
    [(noise, leaned)] = calls
    assert leaned.shape == noise.shape and not torch.allclose(leaned, noise)  # the starting noise leans to the fill
    assert made.image.shape == (64, 64, 3)
    with pytest.raises(ParameterError, match="an inpaint_only\\+lama unit works on the init image"):
        build_request(prompt="x", init_image=inpaint_files["photo"], controls=[{"module": "inpaint_only+lama"}])


def test_in_resize_and_fill_the_unit_has_lama_fill_the_bands_too(tmp_path):
    from kekong.generation.units.base import Unit
    from kekong.io import save_image
    from kekong.request import ControlUnit

    net = _tiny()
    with torch.no_grad():  # LaMa paints every hole white
        net.model[-2].weight.zero_()
        net.model[-2].bias.fill_(20.0)
    _save(tmp_path, net.state_dict())
    tall = np.full((64, 32, 3), 40, np.uint8)
    nothing = np.zeros((64, 32), np.uint8)
    canvas, band = outpaint_canvas(tall, nothing, (64, 64))
    assert (canvas[:, 16:48] == 40).all() and (band[:, :16] == 255).all() and (band[:, 48:] == 255).all()
    assert not band[:, 16:48].any()  # the picture itself is not repainted
    unit = Unit(ControlUnit(module="inpaint_only+lama", resize_mode="Resize and Fill"), 0, None, "", "", "")
    unit.detect(tall, nothing, (64, 64), str(save_image(tall, tmp_path / "tall.png")))
    assert (unit.fill[:, :12] == 255).all() and (unit.fill[:, 20:44] == 40).all()  # LaMa filled the bands
    cond = unit.cond[0].permute(1, 2, 0).numpy()
    assert (cond[:, :16] == -1).all() and np.allclose(cond[:, 16:48], 40 / 255)  # bands masked for the ControlNet


def test_kekong_detect_writes_the_filled_picture(tmp_path):
    from typer.testing import CliRunner

    from kekong.cli import app
    from kekong.io import load_image, save_image

    net = _tiny()
    with torch.no_grad():
        net.model[-2].weight.zero_()
        net.model[-2].bias.fill_(-20.0)  # LaMa paints the hole black
    _save(tmp_path, net.state_dict())
    photo, mask = save_image(PICTURE, tmp_path / "p.png"), save_image(MASK, tmp_path / "m.png")
    done = CliRunner().invoke(app, ["detect", str(photo), "-k", "inpaint_only+lama", "--mask", str(mask), "-o",
                                    str(tmp_path / "filled.png")])
    assert done.exit_code == 0, done.output
    filled = load_image(tmp_path / "filled.png")
    assert filled.shape == PICTURE.shape and (filled[30:66, 38:90] == 0).all()
    assert np.array_equal(filled[MASK == 0], PICTURE[MASK == 0])
