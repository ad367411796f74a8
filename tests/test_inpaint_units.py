"""Inpaint control units — inpaint_only and the extension's inpaint_global_harmonious (`inpaint`) —
read the request's inpaint mask: both run in an inpaint request, and both are refused without one."""

from __future__ import annotations

import numpy as np
import pytest

import kekong
from kekong.errors import ParameterError
from kekong.io import save_image
from kekong.request import build_request
from tests.tiny_models import build_tiny_base, build_tiny_controlnet


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("inpaint-units")
    build_tiny_base(root / "base")
    build_tiny_controlnet(root / "cn")
    photo = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 16:48] = 255
    return {"base": str(root / "base"), "cn": str(root / "cn"), "photo": str(save_image(photo, root / "p.png")),
            "mask": str(save_image(mask, root / "m.png"))}


@pytest.mark.parametrize("module", ["inpaint_only", "inpaint", "inpaint_global_harmonious"])
def test_inpaint_units_read_the_requests_mask(files, module):
    [made] = kekong.generate(prompt="x", model=files["base"], width=64, height=64, steps=2, seed=1,
                             init_image=files["photo"], mask=files["mask"], denoising_strength=1.0,
                             controls=[{"module": module, "model": files["cn"]}])
    unit = made.units[0]
    assert unit.unit.module in ("inpaint_only", "inpaint_global_harmonious")
    assert made.image.shape == (64, 64, 3)
    with pytest.raises(ParameterError, match=f"an {unit.unit.module} unit works on the init image"):
        build_request(prompt="x", init_image=files["photo"], controls=[{"module": module}])
