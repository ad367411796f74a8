"""`kekong prompt expand` never contradicts its input nor itself (issue 23 item 5): a table of
inputs with the tags each must never get, checked against the rules and against real expansions;
tags that agree with the input are still offered; text that is not English is refused."""

from __future__ import annotations

import pytest

from kekong.errors import ParameterError
from kekong.prompt.conflicts import Context
from kekong.prompt.expand import expand
from kekong.prompt.language import foreign_language
from kekong.prompt.vocabulary import vocabulary

CATEGORY = dict(vocabulary())

FORBIDDEN = [  # input, tags it must never be expanded with
    ("a girl walking in the rain at night", {"desert at night", "river at dusk", "sunny", "rainy morning",
                                             "rainy evening", "2girls", "1boy", "starry sky at dusk", "clear sky"}),
    ("a red star on a light blue background", {"red background", "gold background", "red cape", "blue scarf",
                                               "blue tulip", "purple and red color scheme", "red moon"}),
    ("a knight fighting a dragon in a castle", {"fairy tale forest", "throne room", "princess", "kitten"}),
    ("portrait of a woman with short hair", {"long hair", "long white hair", "very long hair", "1boy", "bald"}),
    ("a cat sleeping by the window in the morning", {"rooftop at night", "cat ears", "standing", "night",
                                                     "sitting in window", "golden hour"}),
    ("an old man fishing on a lake at sunset", {"young man", "baby", "noon", "forest at night", "1girl"}),
    ("a sports car on a city street at night, photo", {"sunlight", "oil painting", "anime", "noon"}),
    ("a bowl of ramen on a wooden table, food photography", {"castle", "knight", "watercolor", "portrait",
                                                             "standing"}),
    ("two boys playing football in a park in summer", {"solo", "1girl", "winter park", "snow", "indoors"}),
    ("a watercolor painting of a lighthouse in winter", {"oil painting", "photo", "summer beach", "matte painting",
                                                         "3d render", "spring garden"}),
    ("a girl with long blonde hair in a flower field", {"short hair", "black hair", "short blonde hair", "1boy",
                                                        "city street", "bob cut"}),
    ("a boy with short black hair reading a book in a library", {"long hair", "blonde hair", "outdoors", "1girl",
                                                                 "black background", "black dress"}),
    ("close-up of a woman's face, freckles, soft light", {"full body", "cowboy shot", "wide shot", "1boy"}),
    ("full body shot of a samurai standing in the snow", {"close-up", "upper body", "summer beach", "rain",
                                                          "sitting", "kneeling"}),
    ("a white dog running on the beach on a sunny day", {"black dog", "night", "rain", "walking",
                                                         "white background", "forest"}),
    ("a black cat sitting on a rooftop under the full moon", {"white cat", "orange cat", "sunny", "noon",
                                                              "spotted cat", "standing", "black background"}),
    ("an astronaut in an orange spacesuit floating in outer space", {"red suit", "standing", "sitting on floor",
                                                                     "swimming", "sailor uniform", "tracksuit"}),
    ("a little girl holding a red balloon in autumn", {"old woman", "elderly", "spring garden", "winter village",
                                                       "1boy", "red dress", "red twintails"}),
    ("a pencil sketch of an old woman smiling", {"photo", "young woman", "oil painting", "crying", "still life"}),
    ("a photo of a mountain lake at dawn", {"night", "anime", "watercolor", "sunset", "northern lights",
                                            "portrait"}),
    ("a yellow taxi in a rainy street, from above", {"sunny", "from below", "yellow background", "red sports car",
                                                     "worm's eye view"}),
    ("a wizard with a long white beard casting a spell in a dark forest", {"1girl", "city street", "witch",
                                                                           "white hair", "desert"}),
    ("a green dragon flying over snowy mountains", {"black dragon", "dragonfly", "summer beach", "beach", "sitting"}),
    ("a young man in a blue suit standing in an office", {"red suit", "old man", "1girl", "outdoors", "sitting",
                                                          "blue dress", "blue hair", "white t-shirt"}),
    ("a pink cherry tree in spring, anime style", {"autumn forest", "winter village", "photo", "1girl", "smile",
                                                   "light blush"}),
    ("a red car parked in front of a white house", {"blue car", "black sports car", "indoors", "1girl",
                                                    "red background"}),
    ("an elderly couple sitting on a bench in a park", {"solo", "young woman", "child", "standing", "indoors"}),
    ("a girl in a yellow raincoat holding an umbrella", {"sunny", "red coat", "yellow hoodie", "1boy",
                                                         "clear sky"}),
    ("a bowl of fruit on a table, oil painting", {"watercolor", "photo", "anime", "1girl", "watercolor painting"}),
    ("a robot walking in a desert at noon", {"night", "rain", "snow", "forest", "running"}),
    ("a mermaid swimming underwater with fish", {"1boy", "desert", "standing", "sitting"}),
    ("a lighthouse on a cliff during a storm at night", {"sunny", "noon", "clear sky", "1girl", "castle"}),
    ("a couple dancing at a ball", {"walking", "running", "sitting", "walking in the rain"}),
    ("a boy playing the violin in a park", {"playing piano", "playing guitar", "holding guitar"}),
    ("an icy lake in a frozen valley", {"rain", "heavy rain", "rainy forest", "puddles", "sunny"}),
    ("a wolf howling at the full moon", {"crescent moon", "sunny", "noon"}),
    ("a harbor on a cloudy afternoon", {"sunny", "clear sky", "blue sky", "harsh sunlight", "night"}),
    ("a librarian with glasses", {"sunglasses", "goggles"}),
    ("cowboys riding under the hot sun", {"night", "moonlight", "desert at night", "starry night", "sunset"}),
]

WELCOME = [  # input, a tag the rules must still allow
    ("a knight fighting a dragon in a castle", "medieval castle"),
    ("a knight fighting a dragon in a castle", "holding sword"),
    ("a girl walking in the rain at night", "rainy night"),
    ("a girl walking in the rain at night", "city at night"),
    ("portrait of a woman with short hair", "short black hair"),
    ("a red star on a light blue background", "simple background"),
    ("a black cat sitting on a rooftop under the full moon", "rooftop at midnight"),
    ("a pencil sketch of an old woman smiling", "pencil portrait"),
    ("a sports car on a city street at night, photo", "street photography"),
    ("a ship sailing into the setting sun", "sunset"),
    ("a beach under the sun", "noon"),
]


def test_the_table_has_at_least_30_inputs():
    assert len(FORBIDDEN) >= 30 and all(tag in CATEGORY for _, tags in FORBIDDEN for tag in tags)


@pytest.mark.parametrize(("text", "forbidden"), FORBIDDEN, ids=[t for t, _ in FORBIDDEN])
def test_no_contradicting_tag_is_ever_offered(text, forbidden):
    context = Context.of(text)
    allowed = {tag for tag in forbidden if context.reason(tag, CATEGORY[tag]) is None}
    assert not allowed
    assert not {row["tag"] for row in expand(text).tags} & forbidden


@pytest.mark.parametrize(("text", "tag"), WELCOME)
def test_tags_that_agree_with_the_input_stay_allowed(text, tag):
    assert Context.of(text).reason(tag, CATEGORY[tag]) is None


def test_tags_do_not_contradict_each_other():
    context = Context.of("a portrait")
    context.take("night", "setting")
    context.take("short black hair", "subject")
    context.take("upper body", "camera")
    assert "time" in context.reason("noon", "setting")
    assert context.reason("long white hair", "subject") is not None  # a second hair, and long after short
    assert "shot" in context.reason("full body", "camera")
    assert context.reason("at midnight", "setting") is None  # midnight is night too


def test_synonyms_of_a_named_thing_are_kept():
    tags = {row["tag"] for row in expand("a bowl of ramen on a wooden table, food photography").tags}
    assert "noodles" in tags and not tags & {"castle", "knight", "watercolor"}


@pytest.mark.parametrize(("text", "found"), [
    ("一个女孩在雨夜里走路", "Chinese/Japanese script"),
    ("雨の夜に歩く女の子", "Chinese/Japanese script"),
    ("девушка идёт под дождём ночью", "Cyrillic script"),
    ("une fille qui marche sous la pluie la nuit", "French"),
    ("una niña caminando bajo la lluvia en la noche", "Spanish"),
    ("ein Mädchen geht im Regen in der Nacht", "German"),
])
def test_non_english_text_is_refused_by_name(text, found):
    assert foreign_language(text) == found
    with pytest.raises(ParameterError, match=f"English only.*{found}"):
        expand(text)


@pytest.mark.parametrize("text", ["a girl walking in the rain at night", "café au lait on a table, photo",
                                  "a samurai in a kimono", "naïve art of a château", "a cat"])
def test_english_text_with_loan_words_is_not_refused(text):
    assert foreign_language(text) is None
