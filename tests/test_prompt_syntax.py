"""A1111 prompt syntax: its own golden cases for parsing and scheduling, and the weighting maths."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from kekong.errors import ParameterError
from kekong.generation.text import _chunks, encode, encode_schedules, pick
from kekong.prompt.syntax import extract_loras, parse_attention, resolve_dynamic, schedule, split_and
from tests.tiny_models import build_tiny_base


@pytest.mark.parametrize(("prompt", "expected"), [  # A1111's parse_prompt_attention docstring
    ("normal text", [("normal text", 1.0)]),
    ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
    ("(unbalanced", [("unbalanced", 1.1)]),
    (r"\(literal\]", [("(literal]", 1.0)]),
    ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),
    ("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
     [("a ", 1.0), ("house", 1.5730000000000004), (" ", 1.1), ("on", 1.0), (" a ", 1.1), ("hill", 0.55),
      (", sun, ", 1.1), ("sky", 1.4641000000000006), (".", 1.1)]),
    ("[small] BREAK (big:1.2)", [("small", 1 / 1.1), ("", 1.0), ("BREAK", -1.0), ("", 1.0), ("big", 1.2)]),
])
def test_attention_parsing_golden_cases(prompt, expected):
    parsed = parse_attention(prompt)
    assert [text for text, _ in parsed] == [text for text, _ in expected]
    assert [weight for _, weight in parsed] == pytest.approx([weight for _, weight in expected])


def test_prompt_editing_schedule_golden_case():  # from A1111's prompt_parser docstring
    prompt = ("fantasy landscape with a [mountain:lake:0.25] and [an oak:a christmas tree:0.75]"
              "[ in foreground::0.6][ in background:0.25] [shoddy:masterful:0.5]")
    assert schedule(prompt, 100) == [
        (25, "fantasy landscape with a mountain and an oak in foreground shoddy"),
        (50, "fantasy landscape with a lake and an oak in foreground in background shoddy"),
        (60, "fantasy landscape with a lake and an oak in foreground in background masterful"),
        (75, "fantasy landscape with a lake and an oak in background masterful"),
        (100, "fantasy landscape with a lake and a christmas tree in background masterful")]


def test_hires_pass_edits_count_on_from_the_first_pass():  # A1111 >= 1.6, its docstring's cases
    assert schedule("a [b:.5] c", 10, base_steps=10) == [(10, "a b c")]  # a fraction < 1 is already past
    assert schedule("a [b:1.5] c", 10, base_steps=10) == [(5, "a  c"), (10, "a b c")]
    assert schedule("a [b:25] c", 10, base_steps=20) == [(5, "a  c"), (10, "a b c")]  # step 25 = hires step 5
    assert schedule("a [b:.5] c", 10) == [(5, "a  c"), (10, "a b c")]  # a first pass of its own


def test_alternation_step_numbers_and_nesting():
    assert schedule("a [dog|cat] running", 4) == [(1, "a dog running"), (2, "a cat running"),
                                                  (3, "a dog running"), (4, "a cat running")]
    assert schedule("a [[cat:dog:5]:tiger:8]", 10) == [(5, "a cat"), (8, "a dog"), (10, "a tiger")]
    assert schedule("plain (weighted:1.2) text", 20) == [(20, "plain (weighted:1.2) text")]


def test_lora_tags_and_dynamic_prompts(tmp_path):
    assert extract_loras("a cat <lora:style:0.6>, <lora:detail>") == ("a cat , ", [("style", 0.6), ("detail", 1.0)])
    (tmp_path / "colour.txt").write_text("red\n# a comment\nblue\n")
    picks = {resolve_dynamic("a __colour__ {cat|dog}", seed, tmp_path) for seed in range(40)}
    assert picks == {"a red cat", "a red dog", "a blue cat", "a blue dog"}
    assert resolve_dynamic("{a|b|c}", 5) == resolve_dynamic("{a|b|c}", 5)  # the seed decides
    with pytest.raises(ParameterError, match="wildcard __missing__ not found"):
        resolve_dynamic("__missing__", 1, tmp_path)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    from kekong.models.load import load_base

    return load_base(str(build_tiny_base(tmp_path_factory.mktemp("syntax") / "base")))


def test_long_prompts_break_at_commas_and_break_starts_a_chunk(base):
    tokenizer = base.tokenizers[0]
    words = ", ".join(["red star"] * 30)  # 89 tokens: one comma-broken chunk, then the rest
    chunks = _chunks(tokenizer, words)
    assert len(chunks) == 2 and all(len(ids) == 77 for ids, _ in chunks)
    comma = tokenizer.convert_tokens_to_ids(",</w>")
    first = [t for t in chunks[0][0][1:] if t not in (tokenizer.eos_token_id,)]
    assert first[-1] == comma  # the first chunk ends on a comma, not mid-phrase
    assert len(_chunks(tokenizer, "a cat BREAK a dog")) == 2


def test_weights_scale_tokens_and_keep_the_chunk_mean(base):
    plain = encode(base, ["a red star"]).embeds
    weighted = encode(base, ["a (red:1.5) star"]).embeds
    assert not torch.allclose(plain, weighted)
    # the means sit near zero, so compare them on the embeddings' own scale (float sums differ by CPU)
    assert float(weighted.mean()) == pytest.approx(float(plain.mean()), abs=1e-5 * float(plain.abs().mean()))
    assert torch.equal(encode(base, ["a (red:1.0) star"]).embeds, plain)


def test_prompt_editing_gives_a_conditioning_per_step(base):
    [(weight, cond)], uncond = encode_schedules(base, ["a [cat:dog:0.5]"], [""], steps=10)
    assert weight == 1.0 and [last for last, _ in cond] == [5, 10] and len(uncond) == 1
    assert torch.equal(pick(cond, 5).embeds, encode(base, ["a cat"]).embeds)
    assert torch.equal(pick(cond, 6).embeds, encode(base, ["a dog"]).embeds)
    assert pick(cond, 1).embeds.shape == pick(uncond, 1).embeds.shape


def test_and_composes_weighted_parts_of_equal_length(base):
    assert split_and("a cat :1.2 AND a dog") == [("a cat", 1.2), (" a dog", 1.0)]  # A1111 keeps the space
    parts, uncond = encode_schedules(base, ["a cat :1.2 AND " + ", ".join(["a dog"] * 40)], [""], steps=4)
    assert [w for w, _ in parts] == [1.2, 1.0]
    shapes = {pick(s, 1).embeds.shape for _, s in parts} | {pick(uncond, 1).embeds.shape}
    assert shapes == {(1, 154, 32)}  # the longest part sets the length for all


def test_syntax_is_refused_for_a_non_clip_text_encoder():
    from kekong.train.base import MAX_TOKENS, load_text_encoder

    encoder, tokenizer = load_text_encoder()
    minilm = SimpleNamespace(uses_clip=False, name="kekong-shapes", text_encoders=[encoder], tokenizers=[tokenizer])
    with pytest.raises(ParameterError, match="prompt weights, BREAK and prompt editing need a CLIP encoder"):
        encode_schedules(minilm, ["a (red:1.3) star"], [""], steps=10)
    [(_, cond)], _ = encode_schedules(minilm, ["a red star"], [""], steps=10)
    assert cond[0][1].embeds.shape == (1, MAX_TOKENS, 384)
    with pytest.raises(ParameterError, match="need a CLIP encoder"):
        encode_schedules(minilm, ["a star AND a circle"], [""], steps=10)


def test_textual_inversion_embedding_by_name(base, tmp_path, monkeypatch):
    from safetensors.torch import save_file

    monkeypatch.setenv("KEKONG_MODELS_DIR", str(tmp_path))
    (tmp_path / "embeddings").mkdir()
    vectors = torch.randn(2, 32)
    save_file({"emb_params": vectors}, tmp_path / "embeddings" / "myStyle.safetensors")
    before = encode(base, ["a cat"]).embeds
    [(_, cond)], _ = encode_schedules(base, ["a cat, myStyle"], [""], steps=4)
    assert not torch.equal(pick(cond, 1).embeds, before)
    token_ids = base.tokenizers[0]("<mystyle-0> <mystyle-1>", add_special_tokens=False).input_ids
    table = base.text_encoders[0].get_input_embeddings().weight
    assert torch.equal(table[token_ids], vectors)
    save_file({"emb_params": torch.randn(1, 768)}, tmp_path / "embeddings" / "wrong.safetensors")
    with pytest.raises(Exception, match="made for another model"):
        encode_schedules(base, ["wrong"], [""], steps=4)


@pytest.mark.parametrize("prompt", ["a (cat:1.2.3) sits", "(a:..)", "x (y:+.)"])
def test_a_malformed_weight_is_named_with_its_prompt(prompt):
    with pytest.raises(ParameterError, match=r"the weight '.*' at character \d+ is not a number") as caught:
        parse_attention(prompt)
    assert repr(prompt[:80]) in str(caught.value)
