"""Model-backed detectors: real loading paths on tiny models built here, clear errors without."""

import pickle

import numpy as np
import pytest
import torch

from kekong.detect import run
from kekong.detect.learned.networks import AnimeLineartUnet, ControlNetHED, LineartGenerator
from kekong.errors import KekongError, MissingWeightsError
from kekong.models.weights import load_state_dict


@pytest.fixture(autouse=True)
def empty_model_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("KEKONG_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))


@pytest.mark.parametrize("name, stand_in", [
    ("softedge_hed", "softedge_dog"), ("lineart_realistic", "lineart_standard"),
    ("lineart_anime", "lineart_standard"), ("scribble_hed", "softedge_dog")])
def test_missing_annotator_weights_name_the_file_and_the_stand_in(astronaut, name, stand_in):
    with pytest.raises(MissingWeightsError) as error:
        run(name, astronaut)
    message = str(error.value)
    assert "lllyasviel/Annotators" in message and "annotators" in message and stand_in in message


def test_missing_depth_model_names_what_to_download(astronaut):
    with pytest.raises(MissingWeightsError, match="Intel/dpt-hybrid-midas"):
        run("depth_midas", astronaut)
    with pytest.raises(MissingWeightsError, match="neither an existing folder"):
        run("depth_midas", astronaut, model="./nowhere/model.bin")


@pytest.mark.parametrize("network, filename, name", [
    (ControlNetHED, "ControlNetHED.pth", "softedge_hed"),
    (LineartGenerator, "sk_model.pth", "lineart_realistic"),
    (AnimeLineartUnet, "netG.pth", "lineart_anime"),
])
def test_learned_detectors_load_checkpoints_from_the_models_folder(
        tmp_path, astronaut, network, filename, name):
    torch.manual_seed(0)
    folder = tmp_path / "models" / "annotators"
    folder.mkdir(parents=True)
    state = network().state_dict()
    if filename == "netG.pth":  # released as a DataParallel checkpoint
        state = {f"module.{k}": v for k, v in state.items()}
    torch.save(state, folder / filename)
    result = run(name, astronaut, res=128).image
    assert result.shape == (128, 128, 3) and result.dtype == np.uint8
    assert result.std() > 0  # the random network's output depends on the picture


def test_hed_detector_on_known_weights_outputs_edges(tmp_path, camera):
    """A hand-set HED (side 1 = a Laplacian edge filter) proves the path from weights to map."""
    net = ControlNetHED()
    for parameter in net.parameters():
        torch.nn.init.zeros_(parameter)
    laplacian = torch.tensor([[0, -1, 0], [-1, 4, -1], [0, -1, 0]], dtype=torch.float32)
    with torch.no_grad():
        net.block1.convs[0].weight[0, :] = laplacian / 3  # channel 0 ← |edges| via ReLU
        net.block1.convs[1].weight[0, 0, 1, 1] = 1.0
        net.block1.projection.weight[0, 0] = 5.0
        for block in (net.block2, net.block3, net.block4, net.block5):
            block.projection.bias.fill_(-3.0)  # the other side outputs say "no edge"
    path = tmp_path / "hed.pth"
    torch.save(net.state_dict(), path)
    edges = run("softedge_hed", camera, weights=str(path)).image[..., 0]
    flat, edge = edges[20:40, 20:40].mean(), np.percentile(edges, 99)
    assert edge > flat + 40


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"weight": Exploit()}))
    with pytest.raises(KekongError, match="refused") as caught:
        load_state_dict(path)
    assert not marker.exists()
    assert "Python pickle but not one of plain tensors" in str(caught.value)
    assert "weights_only" not in str(caught.value)


def test_wrong_checkpoint_for_the_network_is_a_clear_error(tmp_path, astronaut):
    path = tmp_path / "other.pth"
    torch.save({"something.weight": torch.zeros(3)}, path)
    with pytest.raises(KekongError, match="does not fit"):
        run("lineart_realistic", astronaut, weights=str(path), res=64)


def test_depth_through_a_tiny_transformers_folder(tmp_path, astronaut):
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    torch.manual_seed(0)
    config = DPTConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                       intermediate_size=37, image_size=64, patch_size=16,
                       neck_hidden_sizes=[8, 8, 8, 8], fusion_hidden_size=16,
                       backbone_out_indices=[0, 1, 2, 3])
    DPTForDepthEstimation(config).save_pretrained(tmp_path / "dpt")
    DPTImageProcessor(size={"height": 64, "width": 64}).save_pretrained(tmp_path / "dpt")
    depth = run("depth_dpt", astronaut, res=128, model=str(tmp_path / "dpt")).image
    assert depth.shape == (128, 128, 3) and depth.dtype == np.uint8
    normals = run("normal_from_depth", astronaut, res=128, model=str(tmp_path / "dpt")).image
    assert normals.shape == (128, 128, 3)


@pytest.mark.parametrize("content", [bytes(range(256)) * 20, b"hello, this is not a checkpoint\n", b""])
def test_a_garbage_checkpoint_says_what_it_is_not(tmp_path, content):
    path = tmp_path / "garbage.ckpt"
    path.write_bytes(content)
    with pytest.raises(KekongError) as caught:
        load_state_dict(path)
    message = str(caught.value)
    assert "not a PyTorch checkpoint" in message and "loads only tensors" in message
    assert "weights_only" not in message and "could run code" not in message  # no safety-off advice


def test_a_refused_pickle_names_what_it_calls_and_never_advises_switching_the_safety_off(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "extra": Exploit()}, path)
    with pytest.raises(KekongError, match="refused") as caught:
        load_state_dict(path)
    message = str(caught.value)
    assert "`print`" in message and "loads only tensors" in message
    assert "weights_only" not in message and "trust" not in message


def test_a_truncated_checkpoint_is_named_as_such(tmp_path):
    path = tmp_path / "cut.pth"
    torch.save({"w": torch.zeros(4096)}, path)
    path.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(KekongError, match="corrupt or truncated"):
        load_state_dict(path)
