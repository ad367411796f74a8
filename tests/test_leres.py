"""LeReS depth (`depth_leres`) and its boost (`depth_leres++`): the networks have the annotator
checkpoints' layout (`res101.pth`: `depth_model` of `module.`-prefixed keys; `latest_net_G.pth`:
pix2pix's unet_1024), tiny ones of the same layout load and run through `detect.run` and the API,
and the pre-/post-processing is the annotator's (BGR 0–255 input, 16→8-bit map, thresholds,
inversion, the boost's resolution search, patch selection and merge)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from kekong.detect import run
from kekong.detect.learned import leres, leres_boost
from kekong.detect.learned.leres_net import FULL, LeresConfig, RelDepthModel
from kekong.detect.learned.pix2pix import UnetGenerator
from kekong.errors import KekongError, MissingWeightsError

TINY = LeresConfig(layers=(1, 1, 1, 1), planes=8, groups=2, width_per_group=16)


@pytest.fixture(autouse=True)
def tiny_models(tmp_path, monkeypatch):
    monkeypatch.setenv("KEKONG_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(leres, "CONFIG", TINY)
    monkeypatch.setattr(leres, "MERGE_NGF", 2)
    return tmp_path / "models" / "annotators"


@pytest.fixture(scope="module")
def networks() -> tuple[RelDepthModel, UnetGenerator]:
    torch.manual_seed(0)
    depth = RelDepthModel(TINY)
    for module in depth.modules():  # BatchNorm statistics that are not the identity
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
    return depth.eval(), UnetGenerator(ngf=2).eval()


def _save(folder, networks) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    depth, merge = networks
    torch.save(
        {"depth_model": {f"module.{k}": v for k, v in depth.state_dict().items()}, "epoch": 7}, folder / "res101.pth"
    )
    torch.save(merge.state_dict(), folder / "latest_net_G.pth")


def test_the_full_size_networks_have_the_checkpoints_keys_and_shapes():
    with torch.device("meta"):
        depth, merge = RelDepthModel(FULL), UnetGenerator()
    shapes = {k: tuple(v.shape) for k, v in depth.state_dict().items()}
    assert sum(p.numel() for p in depth.parameters()) == 115_360_833 and len(shapes) == 712
    assert shapes["depth_model.encoder_modules.encoder.conv1.weight"] == (64, 3, 7, 7)
    assert shapes["depth_model.encoder_modules.encoder.layer1.0.conv2.weight"] == (256, 8, 3, 3)  # 32 groups
    assert shapes["depth_model.encoder_modules.encoder.layer3.22.conv3.weight"] == (1024, 1024, 1, 1)  # width 1024
    assert shapes["depth_model.encoder_modules.encoder.layer4.0.downsample.0.weight"] == (2048, 1024, 1, 1)
    assert shapes["depth_model.decoder_modules.conv.conv1.weight"] == (512, 2048, 3, 3)
    assert shapes["depth_model.decoder_modules.conv1.weight"] == (256, 512, 3, 3)
    assert shapes["depth_model.decoder_modules.ffm0.ftb1.conv_branch.2.running_var"] == (256,)
    assert shapes["depth_model.decoder_modules.outconv.adapt_conv.3.weight"] == (1, 128, 3, 3)
    merge_shapes = {k: tuple(v.shape) for k, v in merge.state_dict().items()}
    assert sum(p.numel() for p in merge.parameters()) == 79_564_801 and len(merge_shapes) == 21  # 318 MB
    assert merge_shapes["model.model.0.weight"] == (64, 2, 4, 4)
    assert merge_shapes["model.model.3.weight"] == (128, 1, 4, 4) and merge_shapes["model.model.3.bias"] == (1,)
    innermost = "model.model.1" + ".model.3" * 8
    assert merge_shapes[f"{innermost}.model.1.weight"] == (512, 512, 4, 4)
    assert merge_shapes[f"{innermost}.model.3.weight"] == (512, 512, 4, 4)  # no skip into the innermost up
    assert "model.model.1.model.1.bias" not in merge_shapes  # norm='none': convolutions without bias


def test_leres_runs_on_the_annotator_checkpoint_with_the_annotators_input_and_encoding(
    tiny_models, networks, astronaut
):
    _save(tiny_models, networks)
    seen = []
    network = leres.leres_network("", "depth_leres")
    handle = network.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
    try:
        depth = run("depth_leres", astronaut, res=128).image
    finally:
        handle.remove()
    assert depth.shape == (128, 128, 3) and depth.dtype == np.uint8 and (depth == depth[:, :, :1]).all()
    small = cv2.resize(astronaut, (128, 128), interpolation=cv2.INTER_AREA)
    blue = (small[..., 2].astype(np.float32) - 0.485) / 0.229  # BGR: channel 0 is blue, 0–255 not 0–1
    assert torch.allclose(seen[0][0, 0], torch.from_numpy(blue), atol=1e-3)
    with torch.inference_mode():
        raw = networks[0](seen[0])[0, 0].numpy()
    assert np.array_equal(depth[:, :, 0], leres.encode(raw, 0, 0))  # larger = farther → dark
    assert depth.min() == 0 and depth.max() == 255


def test_encoding_thresholds_as_the_extension_applies_them():
    depth = np.tile(np.linspace(0, 1, 256, dtype=np.float32), (4, 1))  # near (0) … far (1)
    plain = leres.encode(depth, 0, 0)
    assert plain[0, 0] == 255 and plain[0, -1] == 0 and (np.diff(plain[0].astype(int)) <= 0).all()
    near = leres.encode(depth, 50, 0)  # the nearest half (≤ 127.5 before inversion) → 0 → white
    assert (near[0, :128] == 255).all() and np.array_equal(near[0, 128:], plain[0, 128:])
    background = leres.encode(depth, 0, 50)  # after inversion, ≤ 127.5 → black: the far half
    assert (background[0, 128:] == 0).all() and np.array_equal(background[0, :128], plain[0, :128])
    assert (leres.encode(np.ones((4, 4), np.float32), 0, 0) == 255).all()  # no range: all far → inverted


def test_sliders_change_the_map_and_leres_plus_plus_runs(tiny_models, networks, astronaut):
    _save(tiny_models, networks)
    plain = run("depth_leres", astronaut, res=128).image
    near = run("depth_leres", astronaut, res=128, remove_near=40.0).image
    assert not np.array_equal(plain, near) and (near >= plain).all()
    boosted = run("depth_leres++", astronaut, res=128, remove_background=30.0).image
    assert boosted.shape == (128, 128, 3) and not np.array_equal(boosted, plain)
    assert (boosted[:, :, 0] <= 0.3 * 255).sum() == (boosted[:, :, 0] == 0).sum()  # the far part is black


def test_a_checkpoint_with_a_renamed_key_is_refused_naming_the_file_and_key(tiny_models, networks, astronaut):
    _save(tiny_models, networks)
    state = {f"module.{k}": v for k, v in networks[0].state_dict().items()}
    key = "module.depth_model.decoder_modules.conv1.weight"
    state[key + "x"] = state.pop(key)
    torch.save({"depth_model": state}, tiny_models / "res101.pth")
    with pytest.raises(KekongError, match=r"res101\.pth: does not fit .*missing: .*decoder_modules\.conv1\.weight"):
        run("depth_leres", astronaut, res=64)


def test_without_weights_the_errors_name_the_files(tiny_models, networks, astronaut):
    with pytest.raises(MissingWeightsError, match=r"res101\.pth.*lllyasviel/Annotators.*depth_midas"):
        run("depth_leres", astronaut, res=64)
    _save(tiny_models, networks)
    (tiny_models / "latest_net_G.pth").unlink()
    with pytest.raises(MissingWeightsError, match=r"depth_leres\+\+ needs the weights file latest_net_G\.pth"):
        run("depth_leres++", astronaut, res=64)


def test_the_resolution_search_grows_with_the_edges():
    flat = np.zeros((512, 512, 3), np.uint8)
    cv2.circle(flat, (300, 200), 40, (255, 200, 100), -1)
    assert leres_boost.processing_resolution(flat) == (448, pytest.approx(0.0816, abs=1e-3))
    busy = np.random.default_rng(0).integers(0, 255, (512, 512, 3), dtype=np.uint8)
    assert leres_boost.processing_resolution(busy)[0] == 1344  # edges everywhere: up to 3× the image (1536)
    assert leres_boost.processing_resolution(flat[:100, :100]) == (448, 0.0)  # too small to search


def test_patches_are_the_dense_regions_grown_until_the_density_falls():
    image = np.zeros((1200, 1200, 3), np.uint8)
    image[100:500, 100:500] = np.random.default_rng(1).integers(0, 255, (400, 400, 3), dtype=np.uint8)
    patches = leres_boost.select_patches(image, 896, factor=1.0)
    assert patches == [[0, 0, 896, 896]]  # the grid's one patch over the texture; the others are flat
    mask = leres_boost.gaussian_mask(300)
    assert mask.max() == 1 and mask.min() == 0 and mask[150, 150] == 1 and mask[0, 0] == 0


def test_boost_merges_two_estimates_and_refines_patches_with_the_merge_net():
    image = np.zeros((160, 160, 3), np.uint8)
    image[:, :70] = np.random.default_rng(0).integers(0, 255, (160, 70, 3), dtype=np.uint8)
    sizes = []

    def estimate(img, size):  # a "depth" that is the red channel, at the asked resolution
        sizes.append(size)
        return cv2.resize(cv2.resize(img[:, :, 0], (size, size)).astype(np.float32), (img.shape[1], img.shape[0]))

    whole = leres_boost.boost(image, estimate, lambda low, high: (low + high) / 2, max_res=160)
    assert sizes == [448, 448] and whole.shape == (160, 160)  # R_x 448 > 160: no local boost
    sizes.clear()
    refined = leres_boost.boost(image, estimate, lambda low, high: (low + high) / 2, max_res=4000)
    assert sizes == [448, 448, 448, 896, 448, 896]  # two patches, each double-estimated at 448 and 896
    assert refined.shape == (160, 160) and np.isfinite(refined).all() and not np.allclose(refined, whole)
    assert np.corrcoef(refined.ravel(), image[:, :, 0].ravel())[0, 1] > 0.5


def test_the_api_runs_the_extensions_name(tiny_models, networks, tmp_path):
    from kekong.server.app import create_app
    from kekong.server.config import ServerConfig
    from tests.server_helpers import b64_png, decode

    _save(tiny_models, networks)
    picture = np.random.default_rng(2).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    with TestClient(create_app(ServerConfig(data_dir=tmp_path / "server", ui=False))) as client:
        answer = client.post(
            "/controlnet/detect",
            json={
                "controlnet_module": "depth_leres",
                "controlnet_input_images": [b64_png(picture)],
                "controlnet_processor_res": 64,
                "controlnet_threshold_a": 20.0,
            },
        )
    assert answer.status_code == 200, answer.text
    image = np.asarray(decode(answer.json()["images"][0]).convert("RGB"))
    assert np.array_equal(image, run("depth_leres", picture, res=64, remove_near=20.0).image)
