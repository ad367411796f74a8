"""Textual-inversion embeddings by name, as A1111 uses them: a file `embeddings/NAME.safetensors`
(or `.pt`/`.bin`) in the models folder; writing NAME in a prompt (positive or negative) puts its
learned vectors there. SD 1.x files hold one matrix (`emb_params`, or `string_to_param`); SDXL
files hold `clip_l` and `clip_g`.

Each embedding becomes added tokens of the tokenizer(s) with its vectors in the text encoder's
token table (once per loaded model), and NAME in the prompt is rewritten to those tokens.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from kekong.errors import KekongError
from kekong.models.hashes import WEIGHT_SUFFIXES
from kekong.models.weights import load_state_dict, models_dir


def embeddings_dir() -> Path:
    return models_dir() / "embeddings"


def available() -> dict[str, Path]:
    folder = embeddings_dir()
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in WEIGHT_SUFFIXES}


def vectors(path: Path) -> dict[str, torch.Tensor]:
    """{"clip_l": (n, 768)} for SD 1.x files, plus "clip_g" for SDXL ones."""
    state = load_state_dict(path)
    if "clip_l" in state:
        return {k: state[k] for k in ("clip_l", "clip_g") if k in state}
    if "emb_params" in state:
        return {"clip_l": state["emb_params"]}
    table = state.get("string_to_param")
    if isinstance(table, dict) and table:
        return {"clip_l": next(iter(table.values()))}
    raise KekongError(f"{path}: not a textual-inversion embedding (no emb_params, string_to_param or clip_l)")


def apply(base, texts: list[str]) -> list[str]:
    """Rewrite embedding names in `texts` to their tokens, registering embeddings as needed."""
    found = available()
    if not found:
        return texts
    used = {name for name in found for text in texts
            if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text, re.IGNORECASE)}
    for name in sorted(used):
        _register(base, name, found[name])
    for name in sorted(used, key=len, reverse=True):
        tokens = " ".join(base.embedding_tokens[name])
        texts = [re.sub(rf"(?<![\w-]){re.escape(name)}(?![\w-])", tokens, t, flags=re.IGNORECASE) for t in texts]
    return texts


def _register(base, name: str, path: Path) -> None:
    registered = base.__dict__.setdefault("embedding_tokens", {})
    if name in registered:
        return
    data = vectors(path)
    keys = ["clip_l", "clip_g"][: len(base.text_encoders)]
    count = None
    for key, encoder, tokenizer in zip(keys, base.text_encoders, base.tokenizers, strict=True):
        if key not in data:
            raise KekongError(f"embedding {name} has no {key} vectors; it is not made for {base.name}")
        table = encoder.get_input_embeddings()
        matrix = data[key].to(table.weight.dtype)
        if matrix.ndim != 2 or matrix.shape[1] != table.weight.shape[1]:
            raise KekongError(f"embedding {name} is {tuple(matrix.shape)} but {base.name}'s text encoder takes "
                              f"vectors of {table.weight.shape[1]}; it is made for another model")
        count = matrix.shape[0]
        tokens = [f"<{name.lower()}-{i}>" for i in range(count)]
        tokenizer.add_tokens(tokens)
        encoder.resize_token_embeddings(len(tokenizer))
        ids = tokenizer.convert_tokens_to_ids(tokens)
        with torch.no_grad():
            encoder.get_input_embeddings().weight[ids] = matrix
    registered[name] = [f"<{name.lower()}-{i}>" for i in range(count or 0)]
