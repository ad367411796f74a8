"""Start-up: diffusers' model packages load only the classes asked for, and every name stays reachable."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
import kekong
from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
loaded = set(sys.modules)
assert "diffusers.models.transformers.transformer_flux" not in loaded, "a sibling model class was imported"
assert "diffusers.models.unets.unet_2d_condition" in loaded
import diffusers.models.transformers as package
from diffusers.models.unets import UNet2DModel
assert package.FluxTransformer2DModel.__name__ == "FluxTransformer2DModel"
assert UNet2DModel.__name__ == "UNet2DModel"
from diffusers.hooks import apply_layerwise_casting
print("ok")
"""


def run(env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=False,
                          env={**os.environ, **(env or {})})


def test_model_packages_defer_their_siblings_and_keep_every_name() -> None:
    done = run()
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"


def test_eager_imports_switch_turns_it_off() -> None:
    done = run({"KEKONG_EAGER_IMPORTS": "1"})
    assert "a sibling model class was imported" in done.stderr
