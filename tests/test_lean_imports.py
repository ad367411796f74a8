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

    return subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, check=False, env={**os.environ, **(env or {})}
    )


def test_model_packages_defer_their_siblings_and_keep_every_name() -> None:
    done = run()
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"


def test_eager_imports_switch_turns_it_off() -> None:
    done = run({"KEKONG_EAGER_IMPORTS": "1"})
    assert "a sibling model class was imported" in done.stderr


THREADS = """
import threading
import kekong
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
names = [("unets", n) for n in ("UNet1DModel", "UNet2DModel", "UNet3DConditionModel", "I2VGenXLUNet")]
names += [("autoencoders", n) for n in ("AutoencoderKL", "AutoencoderTiny", "ConsistencyDecoderVAE", "VQModel")]
barrier, errors = threading.Barrier(len(names)), []
def load(package, name):
    barrier.wait()
    try:
        exec(f"from diffusers.models.{package} import {name}", {})
    except Exception as error:
        errors.append(repr(error))
threads = [threading.Thread(target=load, args=pair) for pair in names]
[thread.start() for thread in threads]
[thread.join() for thread in threads]
assert not errors, errors
star = {}
exec("from diffusers.models.controlnets import *", star)
assert "ControlNetModel" in star and "SD3ControlNetModel" in star, sorted(star)
print("ok")
"""


def test_threads_asking_a_deferred_package_at_once_all_get_its_names_and_star_imports_work() -> None:
    # A second thread asking while the package's __init__ ran found the hook gone and a half-run
    # package (6 of these 8 imports failed); `from package import *` gave only loaded submodules.
    done = subprocess.run([sys.executable, "-c", THREADS], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"
