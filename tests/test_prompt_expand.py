"""`kekong prompt expand`: relevance (tags that must and must not rank in the top 10),
seeded determinism, the vocabulary, and the disk cache."""

from __future__ import annotations

import pytest

from kekong.errors import ParameterError
from kekong.prompt.expand import expand, rank
from kekong.prompt.vocabulary import vocabulary

RELEVANCE = [  # sentence, a tag that must be in the top 10, tags that must not
    ("a girl walking in the rain at night", "walking in the rain", {"sunny", "desert"}),
    ("a girl walking in the rain at night", "rainy night", {"beach"}),
    ("a knight fighting a dragon in a castle", "dragon", {"ramen", "office"}),
    ("a knight fighting a dragon in a castle", "knight", {"kitten"}),
    ("a cat sleeping by the window in the morning", "sleeping", {"dragon"}),
    ("a bowl of ramen on a wooden table, food photography", "noodles", {"castle", "knight"}),
    ("portrait of a smiling old woman with glasses", "glasses", {"dragon", "spaceship"}),
    ("portrait of a smiling old woman with glasses", "elderly", {"baby"}),
]


def test_vocabulary_has_at_least_3000_tags_in_every_category():
    tags = vocabulary()
    assert len(tags) >= 3000 and len({t for t, _ in tags}) == len(tags)
    assert {c for _, c in tags} == {"subject", "clothing", "pose", "expression", "setting", "lighting", "weather",
                                    "style", "medium", "camera", "quality"}


@pytest.mark.parametrize(("text", "wanted", "unwanted"), RELEVANCE)
def test_relevant_tags_rank_in_the_top_ten(text, wanted, unwanted):
    top = {tag for tag, _ in rank(text)}
    assert wanted in top
    assert not top & unwanted


def test_negative_themes_are_subtracted():
    plain = [t for t, _ in rank("a girl walking in the rain at night", top=20)]
    steered = [t for t, _ in rank("a girl walking in the rain at night", negative="night", top=20)]
    assert sum("night" in t for t in steered) < sum("night" in t for t in plain)


def test_expansion_is_deterministic_for_a_seed_and_weighted():
    first = expand("a girl walking in the rain at night", seed=3)
    assert first.prompt == expand("a girl walking in the rain at night", seed=3).prompt
    assert first.prompt.startswith("a girl walking in the rain at night, ")
    assert 5 <= len(first.tags) <= 12 and any(t["weight"] != 1.0 for t in first.tags)
    assert expand("a girl walking in the rain at night", seed=4).prompt != first.prompt
    only = expand("a girl walking in the rain at night", seed=3, tags_only=True)
    assert not only.prompt.startswith("a girl")


def test_bad_parameters_are_named():
    with pytest.raises(ParameterError, match="empty"):
        expand("  ")
    with pytest.raises(ParameterError, match="top_p"):
        expand("a cat", top_p=2)
