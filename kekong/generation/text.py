"""Prompt text → the conditioning a UNet cross-attends to, per sampling step.

CLIP encoders (SD 1.5, SDXL) read A1111's syntax with A1111's maths: attention weights scale
each token's embedding and the chunk is rescaled to keep its original mean; prompts of any
length become 75-token chunks (BOS + 75 + EOS, padded), broken early at a comma within 20
tokens of the end, and at BREAK; prompt editing and alternation give a conditioning per step.
Clip skip takes an earlier layer (with the final layer norm for SD 1.5, as A1111).
Other encoders (the shipped MiniLM one) read plain text in one window; syntax that cannot apply
to them, and prompts that do not fit, are refused rather than silently cut.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kekong.errors import ParameterError
from kekong.prompt import embeddings
from kekong.prompt.syntax import parse_attention, schedule, split_and, uses_syntax

CHUNK = 75
COMMA_BACKTRACK = 20  # A1111's default "comma padding backtrack"


@dataclass
class Conditioning:
    embeds: torch.Tensor  # (B, tokens, width)
    pooled: torch.Tensor | None = None  # SDXL's pooled text embedding (B, 1280)


Schedule = list[tuple[int, Conditioning]]  # (last step, conditioning), steps 1-based


def is_sdxl(base) -> bool:
    """SDXL-style conditioning (penultimate layer, pooled embedding, micro-conditioning): the SDXL
    base (two text encoders) and the SDXL refiner (OpenCLIP-bigG alone)."""
    return base.unet.config.get("addition_embed_type") == "text_time"


def pick(schedule_: Schedule, step: int) -> Conditioning:
    for last, conditioning in schedule_:
        if step <= last:
            return conditioning
    return schedule_[-1][1]


def encode(base, prompts: list[str], clip_skip: int = 1) -> Conditioning:
    """Encode prompts as written (no scheduling): used for training and single-step needs."""
    return _encode_texts(base, prompts, clip_skip, count=None)


def encode_schedules(base, prompts: list[str], negatives: list[str], steps: int, clip_skip: int = 1,
                     base_steps: int | None = None) -> tuple[list[tuple[float, Schedule]], Schedule]:
    """Per-step conditioning for a batch: (weight, schedule) per AND part of the prompt, and the
    negative prompt's schedule — all the same token length, so they batch together. `base_steps`:
    the first pass's steps, when this is the hires pass (prompt edits count on from it)."""
    if not base.uses_clip:
        for text in prompts + negatives:
            if uses_syntax(text):
                raise ParameterError(f"{base.name} has a {type(base.text_encoders[0]).__name__} text encoder: "
                                     "prompt weights, BREAK and prompt editing need a CLIP encoder; "
                                     f"write the prompt as plain text ({text[:60]!r})")
        if clip_skip != 1:
            raise ParameterError(f"clip skip applies to CLIP text encoders; {base.name} uses "
                                 f"{type(base.text_encoders[0]).__name__}")
        return [(1.0, [(steps, encode(base, prompts))])], [(steps, encode(base, negatives))]
    prompts, negatives = embeddings.apply(base, prompts), embeddings.apply(base, negatives)
    split = [split_and(text) for text in prompts]
    if len({len(parts) for parts in split}) != 1:
        raise ParameterError("every image of a batch needs the same number of AND parts")
    if any(split[0][i][1] != parts[i][1] for parts in split for i in range(len(parts))):
        raise ParameterError("AND part weights must be the same for every image of a batch")
    part_plans = [[schedule(parts[i][0], steps, base_steps) for parts in split] for i in range(len(split[0]))]
    negative_plans = [schedule(text, steps, base_steps) for text in negatives]
    every_text = [t for plans in part_plans for plan in plans for _, t in plan]
    every_text += [t for plan in negative_plans for _, t in plan]
    count = max(len(_chunks(base.tokenizers[0], t)) for t in every_text)

    def build(plans_: list[list[tuple[int, str]]]) -> Schedule:
        boundaries = sorted({last for plan in plans_ for last, _ in plan})
        out: Schedule = []
        previous: list[str] = []
        for last in boundaries:
            texts = [_text_at(plan, last) for plan in plans_]
            if out and texts == previous:
                out[-1] = (last, out[-1][1])
                continue
            out.append((last, _encode_texts(base, texts, clip_skip, count)))
            previous = texts
        return out

    parts = [(split[0][i][1], build(plans)) for i, plans in enumerate(part_plans)]
    uncond = build(negative_plans)
    if is_sdxl(base) and all(not n for n in negatives):
        # SDXL base models are trained with zeros for an empty prompt (force_zeros_for_empty_prompt)
        uncond = [(last, Conditioning(torch.zeros_like(c.embeds), torch.zeros_like(c.pooled))) for last, c in uncond]
    return parts, uncond


def _text_at(plan: list[tuple[int, str]], step: int) -> str:
    for last, text in plan:
        if step <= last:
            return text
    return plan[-1][1]


def _encode_texts(base, texts: list[str], clip_skip: int, count: int | None) -> Conditioning:
    if not base.uses_clip:
        return _encode_plain(base.text_encoders[0], base.tokenizers[0], texts)
    sdxl = is_sdxl(base)
    count = count or max(len(_chunks(base.tokenizers[0], t)) for t in texts)
    hidden, pooled = [], None
    for encoder, tokenizer in zip(base.text_encoders, base.tokenizers, strict=True):
        ids, weights = _batch(tokenizer, texts, count)
        states, pooled_out = _encode_clip(encoder, ids, weights, clip_skip, sdxl)
        hidden.append(states)
        pooled = pooled_out if pooled_out is not None else pooled
    return Conditioning(torch.cat(hidden, dim=-1), pooled if sdxl else None)


def _chunks(tokenizer, text: str) -> list[tuple[list[int], list[float]]]:
    """A1111's tokenize_line: weighted tokens in 75-token chunks, BOS/EOS added, padded."""
    comma = tokenizer.convert_tokens_to_ids(",</w>")
    runs = parse_attention(text)
    fragments = [r[0] for r in runs if r != ("BREAK", -1.0)]
    ids_per_run = iter(tokenizer(fragments, add_special_tokens=False, truncation=False).input_ids if fragments
                       else [])
    chunks: list[tuple[list[int], list[float]]] = []
    tokens: list[int] = []
    weights: list[float] = []
    last_comma = -1

    def close() -> None:
        nonlocal tokens, weights, last_comma
        pad = CHUNK - len(tokens)
        row = [tokenizer.bos_token_id, *tokens, tokenizer.eos_token_id] + [tokenizer.pad_token_id] * pad
        chunks.append((row, [1.0, *weights, 1.0] + [1.0] * pad))
        tokens, weights, last_comma = [], [], -1

    for text, weight in runs:
        if (text, weight) == ("BREAK", -1.0):
            close()
            continue
        for token in next(ids_per_run):
            if token == comma:
                last_comma = len(tokens)
            elif len(tokens) == CHUNK and last_comma != -1 and len(tokens) - last_comma <= COMMA_BACKTRACK:
                keep = last_comma + 1
                moved, moved_weights = tokens[keep:], weights[keep:]
                tokens, weights = tokens[:keep], weights[:keep]
                close()
                tokens, weights = moved, moved_weights
            if len(tokens) == CHUNK:
                close()
            tokens.append(token)
            weights.append(weight)
    if tokens or not chunks:
        close()
    return chunks


def _batch(tokenizer, texts: list[str], count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, count, 77) ids and weights; shorter prompts get empty chunks (BOS, EOS, padding)."""
    empty = _chunks(tokenizer, "")[0]
    rows = []
    for text in texts:
        chunks = _chunks(tokenizer, text)
        rows.append(chunks + [empty] * (count - len(chunks)))
    ids = torch.tensor([[c[0] for c in row] for row in rows], dtype=torch.long)
    weights = torch.tensor([[c[1] for c in row] for row in rows], dtype=torch.float32)
    return ids, weights


@torch.no_grad()
def _encode_clip(encoder, ids: torch.Tensor, weights: torch.Tensor, clip_skip: int,
                 sdxl: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    batch, count, length = ids.shape
    output = encoder(ids.reshape(batch * count, length), output_hidden_states=True)
    if sdxl:  # SDXL reads the penultimate layer; clip skip counts on from there
        hidden = output.hidden_states[-(clip_skip + 1)]
    elif clip_skip == 1:
        hidden = output.last_hidden_state
    else:
        norm = encoder.final_layer_norm if hasattr(encoder, "final_layer_norm") else encoder.text_model.final_layer_norm
        hidden = norm(output.hidden_states[-clip_skip])
    flat = weights.reshape(batch * count, length, 1)
    if not torch.all(flat == 1):  # A1111's emphasis: weight, then restore each chunk's mean
        original = hidden.mean(dim=(1, 2), keepdim=True)
        hidden = hidden * flat
        hidden = hidden * (original / hidden.mean(dim=(1, 2), keepdim=True))
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
