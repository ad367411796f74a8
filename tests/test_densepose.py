"""DensePose (densepose, densepose_parula) on a tiny TorchScript module with the released file's contract:
(3, H, W) uint8 RGB in; boxes, coarse and fine segmentation, U, V out. Its outputs are chosen, so the
painted map is known: labels where the coarse map says person, OpenCV's viridis / parula of label × 255/24,
viridis' purple floor. The module calls torchvision::nms and torchvision::roi_align, as detectron2's export
does, which kekong provides without torchvision."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from kekong.detect import run
from kekong.detect.learned import torchvision_ops
from kekong.errors import KekongError, MissingWeightsError

torchvision_ops.register()
FILE = "densepose_r50_fpn_dl.torchscript"


class TinyDensePose(torch.nn.Module):
    """Two candidate boxes (NMS keeps the first), a person in the left half of the box, part 2 above and
    part 24 below its middle."""

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                                    torch.Tensor]:
        assert image.dtype == torch.uint8 and image.shape[0] == 3
        candidates = torch.tensor([[16.0, 8.0, 48.0, 56.0], [17.0, 9.0, 48.0, 56.0]])
        keep = torch.ops.torchvision.nms(candidates, torch.tensor([0.9, 0.8]), 0.5)
        boxes = candidates[keep]
        rois = torch.cat([torch.zeros(boxes.shape[0], 1), boxes], dim=1)
        pooled = torch.ops.torchvision.roi_align(image.float()[None], rois, 1.0, 8, 8, 2, True)
        coarse = torch.zeros(1, 2, 8, 8)
        coarse[0, 1, :, :4] = 5.0
        fine = torch.zeros(1, 25, 8, 8)
        fine[0, 2, :4] = 5.0
        fine[0, 24, 4:] = 5.0
        fine = fine + 0.0 * pooled.mean()
        return boxes, coarse, fine, torch.zeros(1, 25, 8, 8), torch.zeros(1, 25, 8, 8)


class FourOutputs(torch.nn.Module):
    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        return torch.zeros(1, 4), torch.zeros(1, 2, 8, 8), torch.zeros(1, 25, 8, 8), torch.zeros(1, 25, 8, 8)


@pytest.fixture
def model_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("KEKONG_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    folder = tmp_path / "models" / "annotators"
    folder.mkdir(parents=True)
    return folder


def _colour(label: int, colour_map: int) -> tuple[int, ...]:
    value = np.array([[int(label * 255 / 24)]], np.uint8)
    return tuple(int(c) for c in cv2.applyColorMap(value, colour_map)[0, 0, ::-1])


def test_the_map_paints_the_part_labels_in_the_extensions_colours(model_folder):
    torch.jit.script(TinyDensePose()).save(str(model_folder / FILE))
    image = np.full((64, 64, 3), 120, np.uint8)
    viridis = run("densepose", image, res=64).image
    parula = run("densepose_parula", image, res=64).image
    assert viridis.shape == parula.shape == (64, 64, 3) and viridis.dtype == np.uint8
    # box (16, 8) 32×48: person in its left half, part 2 in the top half, 24 below
    assert tuple(viridis[12, 20]) == _colour(2, cv2.COLORMAP_VIRIDIS)
    assert tuple(viridis[50, 20]) == _colour(24, cv2.COLORMAP_VIRIDIS)
    assert tuple(parula[12, 20]) == _colour(2, cv2.COLORMAP_PARULA)
    assert tuple(parula[50, 20]) == _colour(24, cv2.COLORMAP_PARULA)
    for y, x in ((12, 44), (2, 2), (60, 60)):  # the box's background half, outside the box
        assert tuple(viridis[y, x]) == (68, 1, 84) and tuple(parula[y, x]) == (0, 0, 0)
    labelled = np.any(parula != 0, axis=2)
    assert labelled[8:56, 16:48].mean() > 0.4 and not labelled[:, :16].any() and not labelled[:, 48:].any()


def test_missing_unreadable_and_unfitting_files_are_named(model_folder, tmp_path):
    image = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(MissingWeightsError, match=r"densepose_r50_fpn_dl\.torchscript.*LayerNorm/DensePose"):
        run("densepose", image, res=64)
    (tmp_path / "junk.torchscript").write_bytes(b"not a model")
    with pytest.raises(KekongError, match=r"junk\.torchscript: not a TorchScript DensePose model"):
        run("densepose", image, res=64, weights=str(tmp_path / "junk.torchscript"))
    torch.jit.script(FourOutputs()).save(str(tmp_path / "four.torchscript"))
    with pytest.raises(KekongError, match=r"four\.torchscript: the model returned tuple, not the 5 tensors"):
        run("densepose_parula", image, res=64, weights=str(tmp_path / "four.torchscript"))


def test_nms_and_roi_align_follow_torchvisions_kernels():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [20.0, 20.0, 30.0, 30.0], [0, 0, 10, 9.0]])
    scores = torch.tensor([0.5, 0.9, 0.7, 0.6])
    # IoU(1, 0) = 81/119 = 0.68 > 0.5: dropped; IoU(1, 3) = 72/118 = 0.61 > 0.5: dropped
    assert torch.ops.torchvision.nms(boxes, scores, 0.5).tolist() == [1, 2]
    # at 0.7 both survive box 1, but box 3 (kept, 0.6) drops box 0: IoU 90/100
    assert torch.ops.torchvision.nms(boxes, scores, 0.7).tolist() == [1, 2, 3]
    ramp = torch.arange(16.0).expand(8, 16)[None, None].contiguous()  # value = x
    aligned = torch.ops.torchvision.roi_align(ramp, torch.tensor([[0.0, 2.0, 0.0, 10.0, 8.0]]), 1.0, 2, 4, 2, True)
    assert torch.allclose(aligned[0, 0, 0], torch.tensor([2.5, 4.5, 6.5, 8.5]))  # half-pixel shift, 2 samples a bin
    legacy = torch.ops.torchvision.roi_align(ramp, torch.tensor([[0.0, 2.0, 0.0, 10.0, 8.0]]), 1.0, 2, 4, 0, False)
    assert torch.allclose(legacy[0, 0, 0], torch.tensor([3.0, 5.0, 7.0, 9.0]))  # adaptive grid: 2 samples a bin
    far = torch.ops.torchvision.roi_align(ramp, torch.tensor([[0.0, 40.0, 40.0, 50.0, 50.0]]), 1.0, 2, 2, 2, True)
    assert far.abs().max() == 0  # more than a pixel outside: zero
