"""OneFormer semantic segmentation (`oneformer_ade20k` / `oneformer_coco`, labels seg_ofade20k / seg_ofcoco), as
the extension runs `250_16_swin_l_oneformer_ade20k_160k.pth` and `150_16_swin_l_oneformer_coco_100ep.pth`
(lllyasviel/Annotators) through its vendored OneFormer + detectron2: a Swin-L backbone, the MSDeformAttn pixel
decoder, the task-conditioned transformer decoder (250 queries for ADE20K, 150 for COCO) and the task token —
"The task is semantic" in CLIP's BPE ids through `task_mlp` — then semantic inference (the softmax over classes
without "no object" times each query's sigmoid mask, summed over queries) and the arg-max class painted in the
dataset's colours.

Module and parameter names follow the checkpoints' (`backbone.…`, `sem_seg_head.pixel_decoder.…`,
`sem_seg_head.predictor.…`, `task_mlp.…`). The text encoder (`text_encoder`, `text_projector`, `prompt_ctx`)
serves the contrastive loss in training only: the extension does not build it (IS_TRAIN false) and its
tensors are skipped; everything else loads strictly.

Pre-processing is DefaultPredictor's: shortest edge to 640 (ADE20K; COCO 800), longest at most 2560 (COCO 1333),
PIL bilinear, RGB minus ImageNet mean over std, zero-padded to multiples of 32. The map is painted as the
extension paints it, by the demo Visualizer's draw_sem_seg through matplotlib (learned/visualizer.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from kekong.detect.learned import WEIGHTS_PARAM
from kekong.detect.learned.coco_palette import COCO_PANOPTIC_PALETTE
from kekong.detect.learned.oneformer_heads import PixelDecoder, TransformerDecoder
from kekong.detect.learned.sam_model import MLP
from kekong.detect.learned.strict import load_strictly
from kekong.detect.learned.swin import SwinTransformer
from kekong.detect.learned.uniformer import ADE20K_PALETTE
from kekong.detect.learned.visualizer import draw_sem_seg
from kekong.detect.registry import detector
from kekong.errors import KekongError
from kekong.models.weights import find_annotator, load_state_dict

# "The task is semantic" in CLIP's BPE (OneFormer's SimpleTokenizer): <|startoftext|> the task is seman tic
# <|endoftext|>, zero-padded to TASK_SEQ_LEN 77
SEMANTIC_TASK = (49406, 518, 10549, 533, 29119, 1550, 49407)
TASK_LENGTH = 77
TRAINING_ONLY = ("text_encoder.", "text_projector.", "prompt_ctx.", "criterion.")
MEAN = torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1)
STD = torch.tensor([58.395, 57.12, 57.375]).view(3, 1, 1)


@dataclass(frozen=True)
class Dataset:
    file: str
    classes: int
    queries: int
    short_edge: int
    long_edge: int
    palette: np.ndarray


DATASETS = {
    "ade20k": Dataset("250_16_swin_l_oneformer_ade20k_160k.pth", 150, 250, 640, 2560, ADE20K_PALETTE),
    "coco": Dataset("150_16_swin_l_oneformer_coco_100ep.pth", 133, 150, 800, 1333, COCO_PANOPTIC_PALETTE),
}


class SemSegHead(nn.Module):
    def __init__(self, pixel_decoder: PixelDecoder, predictor: TransformerDecoder) -> None:
        super().__init__()
        self.pixel_decoder, self.predictor = pixel_decoder, predictor


class OneFormer(nn.Module):
    """The inference part of OneFormer: `backbone`, `sem_seg_head` and `task_mlp`. Defaults: the Swin-L files'."""

    def __init__(self, classes: int = 150, queries: int = 250, swin_dim: int = 192,
                 depths: tuple[int, ...] = (2, 2, 18, 2), heads: tuple[int, ...] = (6, 12, 24, 48), window: int = 12,
                 dim: int = 256, encoder_layers: int = 6, decoder_layers: int = 9, ffn: int = 2048) -> None:
        super().__init__()
        self.backbone = SwinTransformer(swin_dim, depths, heads, window)
        pixel_decoder = PixelDecoder(tuple(self.backbone.widths), dim, dim, encoder_layers)
        predictor = TransformerDecoder(classes, queries, dim, 8, ffn, decoder_layers, 2, dim)
        self.sem_seg_head = SemSegHead(pixel_decoder, predictor)
        self.task_mlp = MLP(TASK_LENGTH, dim, dim, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Class logits (1, Q, classes + 1) and mask logits (1, Q, H/4, W/4) for the semantic task."""
        tokens = torch.zeros(1, TASK_LENGTH)
        tokens[0, :len(SEMANTIC_TASK)] = torch.tensor(SEMANTIC_TASK, dtype=torch.float32)
        mask_features, multi_scale = self.sem_seg_head.pixel_decoder(self.backbone(x))
        return self.sem_seg_head.predictor(multi_scale, mask_features, self.task_mlp(tokens))


def shape_of(state: dict[str, torch.Tensor]) -> dict[str, object]:
    """The OneFormer arguments a state_dict's tensors describe, so the network built fits the file
    (either Swin-L checkpoint, or the tests' small one of the same architecture)."""
    layers = "backbone.layers"
    depths = tuple(len({k.split(".")[4] for k in state if k.startswith(f"{layers}.{i}.blocks.")}) for i in range(4))
    tables = [state[f"{layers}.{i}.blocks.0.attn.relative_position_bias_table"] for i in range(4)]
    predictor = "sem_seg_head.predictor"
    return {"classes": int(state[f"{predictor}.class_embed.weight"].shape[0]) - 1,
            "queries": int(state[f"{predictor}.query_embed.weight"].shape[0]),
            "swin_dim": int(state["backbone.patch_embed.proj.weight"].shape[0]), "depths": depths,
            "heads": tuple(int(t.shape[1]) for t in tables), "window": (int(tables[0].shape[0] ** 0.5) + 1) // 2,
            "dim": int(state[f"{predictor}.query_embed.weight"].shape[1]),
            "encoder_layers": len({k.split(".")[5] for k in state
                                   if k.startswith("sem_seg_head.pixel_decoder.transformer.encoder.layers.")}),
            "decoder_layers": len({k.split(".")[3] for k in state
                                   if k.startswith(f"{predictor}.transformer_ffn_layers.")}),
            "ffn": int(state[f"{predictor}.transformer_ffn_layers.0.linear1.weight"].shape[0])}


@lru_cache(maxsize=2)
def load_oneformer(path: str) -> OneFormer:
    state = load_state_dict(path)
    if isinstance(state.get("model"), dict):  # detectron2 checkpoints wrap the weights in `model`
        state = state["model"]
    state = {k: v for k, v in state.items() if not k.startswith(TRAINING_ONLY)}
    try:
        network = OneFormer(**shape_of(state))  # type: ignore[arg-type]
    except KeyError as exc:
        raise KekongError(f"{path}: does not fit the OneFormer network (no tensor {exc})") from None
    return load_strictly(network, state, path, "OneFormer").eval()  # type: ignore[return-value]


def predictor_size(h: int, w: int, short: int, long: int) -> tuple[int, int]:
    """detectron2's ResizeShortestEdge output (height, width)."""
    scale = short / min(h, w)
    nh, nw = (short, scale * w) if h < w else (scale * h, short)
    if max(nh, nw) > long:
        nh, nw = nh * long / max(nh, nw), nw * long / max(nh, nw)
    return int(nh + 0.5), int(nw + 0.5)


def segment(network: OneFormer, image: np.ndarray, dataset: Dataset) -> np.ndarray:
    """The semantic class of every pixel (int64 HxW) by OneFormer's semantic inference."""
    h, w = image.shape[:2]
    nh, nw = predictor_size(h, w, dataset.short_edge, dataset.long_edge)
    resized = np.asarray(Image.fromarray(image).resize((nw, nh), Image.BILINEAR))
    x = (torch.from_numpy(resized.astype(np.float32)).permute(2, 0, 1) - MEAN) / STD
    x = F.pad(x, (0, -nw % 32, 0, -nh % 32))[None]
    with torch.inference_mode():
        logits, masks = network(x)
        masks = F.interpolate(masks, size=x.shape[-2:], mode="bilinear", align_corners=False)
        masks = F.interpolate(masks[:, :, :nh, :nw], size=(h, w), mode="bilinear", align_corners=False)[0]
        scores = torch.einsum("qc,qhw->chw", logits[0].softmax(-1)[:, :-1], masks.sigmoid())
    return scores.argmax(0).numpy()


def _run(image: np.ndarray, name: str, weights: str, detector_name: str) -> np.ndarray:
    dataset = DATASETS[name]
    path = find_annotator(dataset.file, detector_name, explicit=weights or None, stand_in="seg_person")
    return draw_sem_seg(segment(load_oneformer(str(path)), image, dataset), dataset.palette)


@detector("seg_ofade20k", "ADE20K semantic segmentation by OneFormer (Swin-L; learned, "
          "250_16_swin_l_oneformer_ade20k_160k.pth), 150 classes in ADE20K's palette.",
          params=(WEIGHTS_PARAM,), feeds=("control_v11p_sd15_seg",),
          needs_weights=DATASETS["ade20k"].file)
def seg_ofade20k(image: np.ndarray, weights: str = "") -> np.ndarray:
    return _run(image, "ade20k", weights, "seg_ofade20k")


@detector("seg_ofcoco", "COCO panoptic semantic segmentation by OneFormer (Swin-L; learned, "
          "150_16_swin_l_oneformer_coco_100ep.pth), 133 classes in COCO's colours.",
          params=(WEIGHTS_PARAM,), feeds=("control_v11p_sd15_seg",),
          needs_weights=DATASETS["coco"].file)
def seg_ofcoco(image: np.ndarray, weights: str = "") -> np.ndarray:
    return _run(image, "coco", weights, "seg_ofcoco")
