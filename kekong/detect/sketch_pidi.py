"""sd-webui-controlnet's t2ia_sketch_pidi: the sketch T2I-Adapter's own PiDiNet pass — the fused
PiDiNet edge map binarised at 0.5 (white edges on black), from table5_pidinet.pth."""

from __future__ import annotations

import numpy as np
import torch

from kekong.detect.learned import WEIGHTS_PARAM, _network, _to_tensor
from kekong.detect.registry import detector


@detector("t2ia_sketch_pidi", "Sketch for the T2I sketch adapter: PiDiNet edges binarised at 0.5 (learned; "
          "table5_pidinet.pth).", params=(WEIGHTS_PARAM,), feeds=("t2iadapter_sketch_sd14v1",),
          needs_weights="table5_pidinet.pth")
def t2ia_sketch_pidi(image: np.ndarray, weights: str = "") -> np.ndarray:
    net = _network("table5_pidinet.pth", "t2ia_sketch_pidi", weights, "scribble_xdog")
    with torch.inference_mode():  # BGR in [0, 1], as the annotator feeds PiDiNet
        edge = net(_to_tensor(np.ascontiguousarray(image[:, :, ::-1]), 1 / 255))[-1][0, 0].numpy()
    return np.where(edge > 0.5, 255, 0).astype(np.uint8)
