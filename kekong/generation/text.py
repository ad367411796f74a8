"""Prompt text → the conditioning a UNet cross-attends to.

CLIP encoders (SD 1.5, SDXL) read prompts of any length as A1111 does: 75-token chunks, each
wrapped in BOS/EOS and padded to 77, encoded separately and concatenated; the prompt and the
negative prompt are padded to the same number of chunks. Clip skip takes an earlier layer
(with the final layer norm for SD 1.5, as A1111). Other encoders (the shipped MiniLM one) take
one padded window; a prompt that does not fit is refused rather than cut silently.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kekong.errors import ParameterError

CHUNK = 75


@dataclass
class Conditioning:
    embeds: torch.Tensor  # (B, tokens, width)
    pooled: torch.Tensor | None = None  # SDXL's pooled text embedding (B, 1280)


def encode(base, prompts: list[str], clip_skip: int = 1) -> Conditioning:
    """Encode a batch of prompts with the base model's text encoder(s)."""
    if not base.uses_clip:
        if clip_skip != 1:
            raise ParameterError(f"clip skip applies to CLIP text encoders; {base.name} uses "
                                 f"{type(base.text_encoders[0]).__name__}")
        return _encode_plain(base.text_encoders[0], base.tokenizers[0], prompts)
    chunks = _chunk_all(base.tokenizers[0], prompts)
    if len(base.text_encoders) == 1:
        return Conditioning(_encode_clip(base.text_encoders[0], chunks, clip_skip, sdxl=False)[0])
    first, _ = _encode_clip(base.text_encoders[0], chunks, clip_skip, sdxl=True)
    chunks_2 = _chunk_all(base.tokenizers[1], prompts, pad_chunks=chunks.shape[1])
    second, pooled = _encode_clip(base.text_encoders[1], chunks_2, clip_skip, sdxl=True)
    return Conditioning(torch.cat([first, second], dim=-1), pooled)


def encode_pair(base, prompts: list[str], negatives: list[str],
                clip_skip: int = 1) -> tuple[Conditioning, Conditioning]:
    """Prompt and negative prompt conditioning with equal token lengths (so CFG can batch them)."""
    if not base.uses_clip:
        return encode(base, prompts, clip_skip), encode(base, negatives, clip_skip)
    count = max(_chunk_count(base.tokenizers[0], t) for t in prompts + negatives)
    cond = _encode_padded(base, prompts, clip_skip, count)
    uncond = _encode_padded(base, negatives, clip_skip, count)
    if len(base.text_encoders) == 2 and all(not n for n in negatives):
        # SDXL base models are trained with zeros for an empty prompt (force_zeros_for_empty_prompt)
        uncond = Conditioning(torch.zeros_like(uncond.embeds), torch.zeros_like(uncond.pooled))
    return cond, uncond


def _encode_padded(base, prompts: list[str], clip_skip: int, count: int) -> Conditioning:
    chunks = _chunk_all(base.tokenizers[0], prompts, pad_chunks=count)
    if len(base.text_encoders) == 1:
        return Conditioning(_encode_clip(base.text_encoders[0], chunks, clip_skip, sdxl=False)[0])
    first, _ = _encode_clip(base.text_encoders[0], chunks, clip_skip, sdxl=True)
    second, pooled = _encode_clip(base.text_encoders[1], _chunk_all(base.tokenizers[1], prompts, count),
                                  clip_skip, sdxl=True)
    return Conditioning(torch.cat([first, second], dim=-1), pooled)


def _chunk_count(tokenizer, text: str) -> int:
    ids = tokenizer(text, add_special_tokens=False, truncation=False).input_ids
    return max(1, -(-len(ids) // CHUNK))


def _chunk_all(tokenizer, prompts: list[str], pad_chunks: int = 0) -> torch.Tensor:
    """(B, chunks, 77) token ids."""
    rows = []
    count = max([pad_chunks] + [_chunk_count(tokenizer, t) for t in prompts])
    for text in prompts:
        ids = tokenizer(text, add_special_tokens=False, truncation=False).input_ids
        chunks = []
        for c in range(count):
            part = ids[c * CHUNK:(c + 1) * CHUNK]
            row = [tokenizer.bos_token_id, *part, tokenizer.eos_token_id]
            row += [tokenizer.pad_token_id] * (CHUNK + 2 - len(row))
            chunks.append(row)
        rows.append(chunks)
    return torch.tensor(rows, dtype=torch.long)


@torch.no_grad()
def _encode_clip(encoder, chunks: torch.Tensor, clip_skip: int, sdxl: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    batch, count, length = chunks.shape
    output = encoder(chunks.reshape(batch * count, length), output_hidden_states=True)
    if sdxl:  # SDXL reads the penultimate layer; clip skip counts on from there
        hidden = output.hidden_states[-(clip_skip + 1)]
    elif clip_skip == 1:
        hidden = output.last_hidden_state
    else:
        hidden = encoder.final_layer_norm(output.hidden_states[-clip_skip]) if hasattr(encoder, "final_layer_norm") \
            else encoder.text_model.final_layer_norm(output.hidden_states[-clip_skip])
    hidden = hidden.reshape(batch, count * length, -1)
    pooled = getattr(output, "text_embeds", None)
    if pooled is not None:
        pooled = pooled.reshape(batch, count, -1)[:, 0]  # the first chunk's pooled embedding
    return hidden, pooled


@torch.no_grad()
def _encode_plain(encoder, tokenizer, prompts: list[str]) -> Conditioning:
    length = min(getattr(tokenizer, "model_max_length", 77), 77)
    for text in prompts:
        count = len(tokenizer(text, truncation=False).input_ids)
        if count > length:
            raise ParameterError(f"the prompt is {count} tokens; this model's text encoder reads at most {length}")
    tokens = tokenizer(prompts, padding="max_length", max_length=length, truncation=True, return_tensors="pt")
    return Conditioning(encoder(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask).last_hidden_state)
