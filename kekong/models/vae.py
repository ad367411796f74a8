"""A VAE chosen apart from the base model (A1111's "SD VAE" setting): a single file as A1111 users
keep them (`models/VAE/*.safetensors`, original LDM keys or diffusers keys, with or without the
`first_stage_model.` prefix) or a diffusers AutoencoderKL folder. "Automatic" (None) keeps the
base model's own. A request sees its VAE through a view of the base model (`patch.with_vae`):
the cached model keeps its own VAE."""

from __future__ import annotations

from typing import Any

from kekong.errors import KekongError
from kekong.models.refs import ModelRef, resolve

_LDM_PREFIX = "first_stage_model."


def load_vae(reference: str, base) -> tuple[Any, ModelRef]:
    """(AutoencoderKL, its reference) for `reference`, shaped like `base`'s VAE."""
    from kekong.models.load import CACHE, quiet_loading

    ref = resolve(reference, "vae")
    quiet_loading()
    vae = CACHE.get(f"vae:{ref.path.resolve()}:{base.ref.path}", lambda: _load(ref, base))
    return vae, ref


def _load(ref: ModelRef, base) -> Any:
    from diffusers import AutoencoderKL
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    from kekong.models.single_file import _strict
    from kekong.models.weights import load_state_dict

    if not ref.is_file:
        try:
            return AutoencoderKL.from_pretrained(ref.path, local_files_only=True).eval()
        except (OSError, ValueError) as exc:
            raise KekongError(f"VAE {ref.name}: cannot load from {ref.path}: {exc}") from None
    state = load_state_dict(ref.path)
    if any(key.startswith(_LDM_PREFIX) for key in state):
        state = {key[len(_LDM_PREFIX):]: value for key, value in state.items() if key.startswith(_LDM_PREFIX)}
    config = dict(base.vae.config)
    if "encoder.down.0.block.0.conv1.weight" in state:  # the original LDM layout
        state = convert_ldm_vae_checkpoint(state, config)
    vae = _strict(AutoencoderKL.from_config(config), state, f"VAE {ref.name}")
    return vae.eval()
