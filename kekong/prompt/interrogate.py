"""The CLIP-interrogator method for `kekong prompt describe --mode fast|best|negative`: a caption
from a BLIP-family model, then kekong's tag vocabulary ranked by CLIP similarity to the image.

- fast: the caption and the 8 best-ranked tags;
- best: from the caption, add the tag that raises the image–text similarity most, while any does
  (up to 16), as clip-interrogator chains its "flavours";
- negative: the tags least like the image (for a negative prompt).

Models load from a local folder or a hub id already in the Hugging Face cache; when absent the
error names what to download. Nothing is downloaded.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from kekong.errors import ParameterError
from kekong.models.weights import find_pretrained
from kekong.prompt.describe import Description
from kekong.prompt.vocabulary import NEGATIVE_QUALITY, vocabulary

DEFAULT_CAPTION = "Salesforce/blip-image-captioning-base"
DEFAULT_CLIP = "openai/clip-vit-large-patch14"
MODES = ("fast", "best", "negative")


@lru_cache(maxsize=2)
def _caption_model(folder: str):
    from transformers import BlipForConditionalGeneration, BlipProcessor

    from kekong.models.load import quiet_loading

    quiet_loading()
    return BlipProcessor.from_pretrained(folder), BlipForConditionalGeneration.from_pretrained(folder).eval()


@lru_cache(maxsize=2)
def _clip_model(folder: str):
    from transformers import CLIPModel, CLIPProcessor

    from kekong.models.load import quiet_loading

    quiet_loading()
    return CLIPProcessor.from_pretrained(folder), CLIPModel.from_pretrained(folder).eval()


def _features(output) -> torch.Tensor:
    tensor = output if isinstance(output, torch.Tensor) else output.pooler_output
    return torch.nn.functional.normalize(tensor, dim=-1)


@torch.no_grad()
def caption(image: np.ndarray, folder: str, max_tokens: int = 30) -> str:
    from PIL import Image

    processor, model = _caption_model(folder)
    inputs = processor(images=Image.fromarray(image), return_tensors="pt")
    ids = model.generate(**inputs, max_new_tokens=max_tokens)
    return processor.decode(ids[0], skip_special_tokens=True).strip()


@lru_cache(maxsize=2)
def _tag_features(folder: str) -> torch.Tensor:
    processor, model = _clip_model(folder)
    tags = [t for t, _ in vocabulary()]
    chunks = []
    with torch.no_grad():
        for start in range(0, len(tags), 256):
            tokens = processor.tokenizer(tags[start:start + 256], padding=True, truncation=True, return_tensors="pt")
            chunks.append(_features(model.get_text_features(**tokens)))
    return torch.cat(chunks)


@torch.no_grad()
def _image_features(image: np.ndarray, folder: str) -> torch.Tensor:
    from PIL import Image

    processor, model = _clip_model(folder)
    pixels = processor.image_processor(images=Image.fromarray(image), return_tensors="pt").pixel_values
    return _features(model.get_image_features(pixel_values=pixels))[0]


@torch.no_grad()
def _text_similarity(texts: list[str], image_features: torch.Tensor, folder: str) -> torch.Tensor:
    processor, model = _clip_model(folder)
    tokens = processor.tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    return _features(model.get_text_features(**tokens)) @ image_features


def interrogate(image: np.ndarray, mode: str = "fast", caption_model: str | None = None,
                clip_model: str | None = None) -> Description:
    """Caption + CLIP-ranked tags (see the module doc for the modes)."""
    if mode not in MODES:
        raise ParameterError(f"unknown describe mode {mode!r}; expected one of: structure, {', '.join(MODES)}")
    clip_folder = find_pretrained(clip_model or DEFAULT_CLIP, "prompt describe (CLIP)",
                                  stand_in="--mode structure", option="--clip-model ")
    image_features = _image_features(image, clip_folder)
    scores = (_tag_features(clip_folder) @ image_features).numpy()
    tags = vocabulary()
    usable = np.array([t not in NEGATIVE_QUALITY for t, _ in tags])
    order = [int(i) for i in np.argsort(-scores, kind="stable") if usable[i]]
    if mode == "negative":
        chosen = [tags[i][0] for i in order[::-1][:8]]
        return Description(chosen, {"mode": mode})
    caption_folder = find_pretrained(caption_model or DEFAULT_CAPTION, "prompt describe (caption)",
                                     stand_in="--mode structure", option="--caption-model ")
    text = caption(image, caption_folder)
    if mode == "fast":
        chosen = [tags[i][0] for i in order[:8]]
    else:
        chosen, best = [], float(_text_similarity([text], image_features, clip_folder)[0])
        candidates = [tags[i][0] for i in order[:64]]
        while candidates and len(chosen) < 16:
            trials = [", ".join([text, *chosen, tag]) for tag in candidates]
            similarity = _text_similarity(trials, image_features, clip_folder)
            top = int(similarity.argmax())
            if float(similarity[top]) <= best:
                break
            best = float(similarity[top])
            chosen.append(candidates.pop(top))
    return Description([text, *chosen] if text else chosen, {"mode": mode, "caption": text})
