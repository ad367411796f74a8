"""LoRA files applied for one generation and removed after (the cached model is given back exactly).

Loading goes through diffusers' LoRA loader (peft), which reads the diffusers, kohya/A1111 and
other common key layouts; files are read with kekong's safe loader first. The LoRA layers wrap the
cached UNet's and text encoders' modules in place, so this runs inside `patch.patched`, which
holds the model's lock; taking them out puts the original modules (and weights) back untouched.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kekong.errors import KekongError

_PEFT_MARKS = ("peft_config", "_hf_peft_config_loaded")  # what loading leaves on a model besides its layers


@contextmanager
def applied_loras(base, loras: list) -> Iterator[None]:
    if not loras:
        yield
        return
    from kekong.models.refs import resolve
    from kekong.models.weights import load_state_dict

    refs = [resolve(spec.path, "lora") for spec in loras]  # a missing file is refused before any change
    pipe = _pipeline(base)
    models = [base.unet, *base.text_encoders]
    marks = [{k: v for k, v in vars(m).items() if k in _PEFT_MARKS} for m in models]
    try:
        names = []
        for index, ref in enumerate(refs):
            name = f"kekong_lora_{index}"
            try:
                pipe.load_lora_weights(load_state_dict(ref.path), adapter_name=name)
            except (ValueError, KeyError, RuntimeError) as exc:
                raise KekongError(f"LoRA {ref.name} does not fit {base.name}: {exc}") from None
            names.append(name)
        pipe.set_adapters(names, adapter_weights=[spec.weight for spec in loras])
        yield
    finally:  # also after a file that failed half-way through loading
        pipe.unload_lora_weights()
        for model, before in zip(models, marks, strict=True):
            _restore_marks(model, before)


def _restore_marks(model: Any, before: dict[str, Any]) -> None:
    for key in _PEFT_MARKS:
        if key in before:
            setattr(model, key, before[key])
        elif key in vars(model):
            delattr(model, key)


def _pipeline(base):
    """A diffusers pipeline object over the loaded parts (only its LoRA loader is used)."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    common = {"vae": base.vae, "unet": base.unet, "scheduler": _dummy_scheduler(base)}
    if len(base.text_encoders) == 2:
        return StableDiffusionXLPipeline(text_encoder=base.text_encoders[0], text_encoder_2=base.text_encoders[1],
                                         tokenizer=base.tokenizers[0], tokenizer_2=base.tokenizers[1], **common)
    return StableDiffusionPipeline(text_encoder=base.text_encoders[0], tokenizer=base.tokenizers[0],
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False,
                                   **common)


def _dummy_scheduler(base):
    from diffusers import DDIMScheduler

    return DDIMScheduler.from_config({k: v for k, v in base.scheduler_config.items() if not k.startswith("_")})
