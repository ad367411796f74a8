"""DSINE surface normals (`normal_dsine`): the network has `dsine.pt`'s layout (`model` of geffnet
EfficientNet-B5 + DSINE decoder/GRU/heads keys), a tiny one of the same layout loads and runs through
`detect.run` and the API, the sliders (Fov, Iterations) reach the network, the camera and padding
follow DSINE's utilities, and the geometric pieces (ray ReLU, axis-angle rotation, convex upsampling)
are checked on constructed inputs."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from kekong.detect import run
from kekong.detect.learned import dsine
from kekong.detect.learned.dsine_net import (
    DSINE,
    DSINE_B5,
    DsineConfig,
    axis_angle_to_matrix,
    convex_upsampling,
    ray_relu,
    rays,
)
from kekong.errors import KekongError, MissingWeightsError

TINY = DsineConfig(channel_multiplier=0.25, depth_multiplier=0.1)


@pytest.fixture(autouse=True)
def tiny_model(tmp_path, monkeypatch):
    monkeypatch.setenv("KEKONG_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(dsine, "CONFIG", TINY)
    return tmp_path / "models" / "annotators"


@pytest.fixture(scope="module")
def network() -> DSINE:
    torch.manual_seed(0)
    return DSINE(TINY).eval()


def _save(folder, network, rename: str | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    state = {f"module.{k}": v for k, v in network.state_dict().items()}
    if rename:
        state[f"module.{rename}x"] = state.pop(f"module.{rename}")
    torch.save({"model": state}, folder / "dsine.pt")


def test_the_full_size_network_has_the_checkpoints_keys_and_shapes():
    full = DSINE(DSINE_B5)
    shapes = {k: tuple(v.shape) for k, v in full.state_dict().items()}
    assert sum(p.numel() for p in full.parameters()) == 72_564_759 and len(shapes) == 918  # 290 MB in float32
    encoder = "encoder.original_model."
    assert shapes[encoder + "conv_stem.weight"] == (48, 3, 3, 3)
    assert shapes[encoder + "conv_head.weight"] == (2048, 512, 1, 1)
    assert shapes[encoder + "blocks.0.0.se.conv_reduce.weight"] == (12, 48, 1, 1)
    assert shapes[encoder + "blocks.6.0.conv_pwl.weight"] == (512, 1824, 1, 1)
    assert shapes["decoder.conv2.weight"] == (2048, 2050, 1, 1)  # 2048 + the (u, v) rays
    assert shapes["decoder.up1._net.0.weight"] == (1024, 2226, 3, 3)  # 2048 + block 4's 176 + 2
    assert shapes["decoder.up2._net.1.weight"] == (512,)  # GroupNorm
    assert shapes["decoder.normal_head.0.weight"] == (128, 514, 3, 3)
    assert shapes["gru.convz.weight"] == (64, 130, 5, 5) and shapes["xy_head.4.weight"] == (50, 64, 1, 1)
    assert shapes["up_prob_head.4.weight"] == (576, 64, 1, 1)  # 9 · 8 · 8 convex weights


def test_the_camera_and_padding_are_dsines():
    assert dsine.pad_input(70, 100) == (14, 14, 13, 13) and dsine.pad_input(64, 96) == (0, 0, 0, 0)
    k = dsine.intrinsics_from_fov(90.0, 100, 200)
    assert torch.allclose(k, torch.tensor([[100.0, 0, 99.5], [0, 100.0, 49.5], [0, 0, 1]]))
    assert dsine.intrinsics_from_fov(90.0, 300, 200)[0, 0] == pytest.approx(150.0)  # the longer side
    uv, ray = rays(torch.tensor([[[2.0, 0, 2.0], [0, 2.0, 1.0], [0, 0, 1]]]), 2, 4, 2, 4)
    assert torch.allclose(uv[0, 0, 0], torch.tensor([-0.75, -0.25, 0.25, 0.75]))  # (x + 0.5 − cu) / fu
    assert torch.allclose(uv[0, 1, :, 0], torch.tensor([-0.25, 0.25]))
    assert torch.allclose(ray.norm(dim=1), torch.ones(1, 2, 4))


def test_ray_relu_turns_a_normal_facing_away_towards_the_camera():
    ray = torch.tensor([0.0, 0.0, 1.0]).view(1, 3, 1, 1)
    away = torch.nn.functional.normalize(torch.tensor([1.0, 0.0, -1.0]).view(1, 3, 1, 1), dim=1)
    facing = torch.nn.functional.normalize(torch.tensor([0.3, 0.2, 1.0]).view(1, 3, 1, 1), dim=1)
    fixed = ray_relu(away, ray)
    assert torch.cosine_similarity(fixed, ray, dim=1).item() > 0 and fixed[0, 0].item() > 0.99
    assert torch.allclose(ray_relu(facing, ray), facing, atol=1e-6)


def test_axis_angle_rotation_and_convex_upsampling():
    quarter = axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2]))
    assert torch.allclose(quarter @ torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)
    assert torch.allclose(axis_angle_to_matrix(torch.zeros(3)), torch.eye(3))
    coarse = torch.arange(4.0).view(1, 1, 2, 2)
    centre = torch.full((1, 9, 4, 4, 2, 2), -30.0)
    centre[:, 4] = 30.0  # all weight on the centre of the 3×3 neighbourhood: nearest-neighbour upsampling
    up = convex_upsampling(coarse, centre.view(1, 9 * 16, 2, 2), 4)
    assert torch.allclose(up, coarse.repeat_interleave(4, 2).repeat_interleave(4, 3), atol=1e-4)
    flat = convex_upsampling(torch.ones(1, 3, 2, 2), torch.randn(1, 9 * 16, 2, 2), 4)
    assert torch.allclose(flat, torch.ones(1, 3, 8, 8))


def test_dsine_runs_on_the_checkpoint_with_the_extensions_camera_crop_and_colours(tiny_model, network, astronaut):
    _save(tiny_model, network)
    seen = []
    loaded = dsine._dsine(str(tiny_model / "dsine.pt"), (tiny_model / "dsine.pt").stat().st_mtime_ns, TINY)
    handle = loaded.register_forward_pre_hook(lambda module, args: seen.append((args[0].shape, args[1].clone())))
    picture = cv2.resize(astronaut, (100, 70), interpolation=cv2.INTER_AREA)
    try:
        result = run("normal_dsine", picture, res=70).image  # already at the processor resolution: 70×100
    finally:
        handle.remove()
    assert result.shape == (70, 100, 3) and result.dtype == np.uint8
    shape, intrins = seen[0]
    assert tuple(shape) == (1, 3, 128, 128)  # edge-padded to multiples of 64
    focal = 50 / math.tan(math.radians(30))
    assert torch.allclose(intrins[0], torch.tensor([[focal, 0, 49.5 + 14], [0, focal, 34.5 + 13], [0, 0, 1]]))
    expected = ((dsine.normals(network, picture, 60.0, 5) + 1) * 0.5).clip(0, 1) * 255
    assert np.array_equal(result, expected.clip(0, 255).astype(np.uint8))
    vectors = result.astype(np.float32) / 255 * 2 - 1
    assert np.allclose(np.linalg.norm(vectors, axis=2), 1.0, atol=0.03)


def test_fov_and_iterations_change_the_map(tiny_model, network, astronaut):
    _save(tiny_model, network)
    plain = run("normal_dsine", astronaut, res=64).image
    assert not np.array_equal(plain, run("normal_dsine", astronaut, res=64, fov=20.0).image)
    assert not np.array_equal(plain, run("normal_dsine", astronaut, res=64, iterations=1).image)


def test_a_checkpoint_with_a_renamed_key_is_refused_naming_it(tiny_model, network, astronaut):
    _save(tiny_model, network, rename="gru.convq.weight")
    with pytest.raises(KekongError, match=r"dsine\.pt: does not fit .*missing: gru\.convq\.weight"):
        run("normal_dsine", astronaut, res=64)


def test_without_weights_the_error_names_the_file(astronaut):
    with pytest.raises(
        MissingWeightsError,
        match=r"Annotators/dsine\.pt from the Hugging Face repo "
        r"bdsqlsz/qinglong_controlnet-lllite.*normal_midas",
    ):
        run("normal_dsine", astronaut, res=64)


def test_the_api_runs_the_extensions_name_with_its_sliders(tiny_model, network, tmp_path):
    from kekong.server.app import create_app
    from kekong.server.config import ServerConfig
    from tests.server_helpers import b64_png, decode

    _save(tiny_model, network)
    picture = np.random.default_rng(4).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    with TestClient(create_app(ServerConfig(data_dir=tmp_path / "server", ui=False))) as client:
        answer = client.post(
            "/controlnet/detect",
            json={
                "controlnet_module": "normal_dsine",
                "controlnet_input_images": [b64_png(picture)],
                "controlnet_processor_res": 64,
                "controlnet_threshold_a": 45.0,
                "controlnet_threshold_b": 2,
            },
        )
    assert answer.status_code == 200, answer.text
    image = np.asarray(decode(answer.json()["images"][0]).convert("RGB"))
    assert np.array_equal(image, run("normal_dsine", picture, res=64, fov=45.0, iterations=2).image)
