"""What a control model's weights are, read from their keys: a file handed over as a ControlNet
that holds an IP-Adapter, a T2I-Adapter in its original format, ControlNet-XS or another adapter
kind is named, never misread as a ControlNet. (Which control types kekong runs, per base-model
family: detect/control_types.py.)
"""

from __future__ import annotations

from kekong.errors import KekongError

_IP_ADAPTER = "an IP-Adapter is not a ControlNet: give it to a unit with an ip-adapter_clip_* module " \
    "(e.g. module=ip-adapter_clip_sd15,model=ip-adapter_sd15)"
_T2I_ORIGINAL = "kekong runs T2I-Adapters in diffusers' format (a folder with config.json); convert an original " \
    ".pth with diffusers' scripts/convert_original_t2i_adapter.py"


def identify_weights(keys: set[str], class_name: str | None = None) -> str | None:
    """The adapter kind a weights file or folder holds when it is not a plain ControlNet."""
    named = {"MultiAdapter": "T2I-Adapter", "ControlNetUnionModel": "ControlNet Union",
             "ControlNetXSAdapter": "ControlNet-XS"}
    if class_name in named:
        return named[class_name]
    if any(k.startswith(("image_proj.", "ip_adapter.")) for k in keys):
        return "IP-Adapter"
    if any("lora_controlnet" in k for k in keys) or any(k.endswith((".up", ".down")) and "control" in k for k in keys):
        return "Control-LoRA"
    if any(k.startswith(("task_embedding", "transformer_layes.", "controlnet_cond_embedding_union")) or
           "control_add_embedding" in k for k in keys):
        return "ControlNet Union"
    if any(k.startswith(("adapter.body.", "body.0.block1.", "body.0.resnets.", "body.0.in_conv.", "conv_in.weight"))
           for k in keys) and not any("input_hint_block" in k or "controlnet_cond_embedding" in k for k in keys):
        return "T2I-Adapter"
    return None


_MISSING = {
    "T2I-Adapter": _T2I_ORIGINAL,
    "IP-Adapter": _IP_ADAPTER,
    "Control-LoRA": "a Control-LoRA is built from the base model's UNet: give it to a generation unit (model=…), "
                    "where kekong builds it for the base",
    "ControlNet Union": "a ControlNet Union file needs its config.json beside it: give the diffusers folder "
                        "(config.json + diffusion_pytorch_model.safetensors), which kekong runs",
    "ControlNet-XS": "ControlNet-XS couples into the UNet block by block; not in kekong",
}


def refuse_adapter_weights(name: str, keys: set[str], class_name: str | None = None) -> None:
    """Raise, naming the kind, when `name` holds adapter weights rather than a ControlNet."""
    kind = identify_weights(keys, class_name)
    if kind is not None:
        raise KekongError(f"{name} holds {kind} weights, not a ControlNet: {_MISSING[kind]}")
