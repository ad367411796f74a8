"""Which expansion tags contradict the input or each other (`kekong prompt expand`).

Three kinds of rule, each a small table:

- facets: mutually exclusive values (time of day, season, weather, moon phase, hair length, shot,
  angle, posture, how many people, gender, age, eyewear, instrument played, photo or artwork). A tag may not
  take a value the input excludes, nor a second value of a facet an earlier tag took ("day" +
  "night", two shot types).
- heads: a tag's last noun ("short black hair" → hair, "castle at noon" → castle). One tag per head,
  and its modifiers may not contradict the input's for the same noun ("red background" when the input
  says "light blue background"; "long hair" when it says "short hair"). When the input names colours,
  a tag may use only those colours.
- invention: a tag naming an object, animal or being the input does not name is left out, clothing
  and hair only when the input has a person, and a place only when the input names none or the tag
  is that place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from kekong.prompt import vocabulary as v

# facet → value → phrases (whole words; a trailing * matches any word ending)
FACETS: dict[str, dict[str, tuple[str, ...]]] = {
    "time": {
        "dawn": ("dawn", "sunrise", "daybreak", "rising sun"),
        "morning": ("morning",),
        "day": ("noon", "midday", "daytime", "afternoon", "sunny", "harsh sunlight", "sunlight", "day", "sun"),
        "evening": ("evening", "sunset", "dusk", "setting sun", "twilight", "golden hour", "blue hour", "sunset glow",
                    "orange sky", "pink sky", "golden sky"),
        "night": ("night", "midnight", "moonlight", "moonlit", "starry", "moon", "moons", "night sky",
                  "tonight", "nighttime", "meteor shower", "northern lights", "aurora", "milky way", "fireflies"),
    },
    "season": {s: (s,) for s in v.SEASONS} | {"autumn": ("autumn", "fall", "autumn leaves", "falling leaves"),
                                              "winter": ("winter", "snow", "snowy", "snowing", "snowfall",
                                                         "blizzard", "snowflakes", "frozen")},
    "mood": {
        "happy": ("smile", "smiling", "grin", "laughing", "happy", "joyful", "cheerful", "gentle smile"),
        "sad": ("crying", "tears", "sad", "heartbroken", "gloomy", "teary eyes", "wiping tears", "melancholic"),
        "angry": ("angry", "furious", "glaring", "frown"),
        "scared": ("scared", "shocked", "worried", "nervous"),
    },
    "weather": {
        "rain": ("rain", "rainy", "raining", "drizzle", "raindrops", "storm", "stormy", "thunderstorm",
                 "monsoon", "downpour", "puddles", "umbrella"),
        "snow": ("snow", "snowy", "snowing", "snowfall", "blizzard", "snowflakes", "frozen", "icy"),
        "dry": ("sunny", "clear sky", "blue sky", "desert", "sandstorm", "oasis", "harsh sunlight", "drought"),
        "overcast": ("cloudy", "overcast", "overcast light", "grey sky", "gray sky"),
    },
    "moon": {
        "full": ("full moon",),
        "crescent": ("crescent moon", "half moon", "new moon"),
    },
    "eyewear": {"glasses": ("glasses", "eyeglasses", "spectacles"), "sunglasses": ("sunglasses",),
                "goggles": ("goggles",)},
    "instrument": {name: (name,) for name in ("guitar", "piano", "violin", "cello", "drums", "flute", "harp",
                                              "saxophone", "trumpet", "ukulele", "accordion")},
    "hair length": {
        "short": ("short hair", "short * hair", "bob cut", "pixie cut", "undercut", "crew cut", "buzz cut"),
        "medium": ("medium hair", "shoulder-length hair"),
        "long": ("long hair", "long * hair", "very long hair"),
        "bald": ("bald",),
    },
    "shot": {
        "close-up": ("close-up", "extreme close-up", "headshot", "closeup", "face"),
        "upper body": ("upper body", "medium shot", "bust"),
        "cowboy shot": ("cowboy shot",),
        "full body": ("full body", "wide shot", "long shot", "full-length", "establishing shot"),
    },
    "posture": {
        "standing": ("standing", "standing *"),
        "sitting": ("sitting", "sitting *", "seiza", "indian style", "squatting", "crouching"),
        "lying": ("lying", "lying *", "sleeping", "on stomach"),
        "kneeling": ("kneeling", "on one knee"),
        "airborne": ("floating", "flying", "mid-air", "falling", "jumping"),
        "walking": ("walking", "walking *", "walking away"),
        "dancing": ("dancing", "dancing *", "twirling"),
        "running": ("running", "running *"),
        "swimming": ("swimming", "diving", "surfing"),
    },
    "inside": {
        "indoors": ("indoors", "interior", "room", *v.ROOMS, "hallway", "corridor", "attic", "basement"),
        "outdoors": ("outdoors", "outside", "street", "field", "forest", "beach", "sky", "park", "mountains",
                     "lake", "desert", "ocean", "garden", "rooftop", "snow", "rain", "water", "sea", "underwater",
                     "in front of"),
    },
    "genre": {
        "landscape": ("landscape", "seascape", "cityscape", "scenery", "panorama"),
        "still life": ("still life",),
        "portrait": ("portrait", "headshot"),
    },
    "angle": {
        "above": ("from above", "bird's eye view", "aerial view", "high angle", "top-down"),
        "below": ("from below", "worm's eye view", "low angle"),
        "level": ("eye level",),
    },
    "count": {
        "one": ("solo", "1girl", "1boy", "alone", "single"),
        "many": ("2girls", "2boys", "multiple girls", "multiple boys", "couple", "crowd", "family", "group",
                 "two", "three", "people", "girls", "boys", "women", "men", "friends", "twins"),
    },
    "gender": {
        "female": ("girl", "girls", "woman", "women", "1girl", "2girls", "multiple girls", "she", "her", "lady",
                   "princess", "queen", "witch", "sorceress", "nun", "geisha", "valkyrie", "maid", "ballerina",
                   "mermaid", "actress", "mother", "daughter", "sister", "bride", "female"),
        "male": ("boy", "boys", "man", "men", "1boy", "2boys", "multiple boys", "he", "his", "gentleman",
                 "prince", "king", "wizard", "sorcerer", "monk", "priest", "samurai", "viking", "father", "son",
                 "brother", "groom", "male", "beard"),
    },
    "age": {
        "child": ("child", "children", "baby", "kid", "kids", "toddler", "little girl", "little boy"),
        "young": ("young", "teenager", "teen", "youth"),
        "old": ("old", "elderly", "aged", "grandmother", "grandfather", "grandma", "grandpa"),
    },
    "medium": {
        "photo": ("photo", "photograph", "photography", "photorealistic", "dslr", "polaroid", "35mm film",
                  "film photography", "analog photo", "instant photo", "realistic", "hyperrealistic"),
        "artwork": ("painting", "drawing", "watercolor", "gouache", "pencil", "charcoal", "ink", "sketch",
                    "anime", "manga", "cartoon", "comic", "illustration", "render", "cgi", "pastel", "acrylic",
                    "oil painting", "lineart", "line art", "doodle", "chibi", "pixel art", "cel shading", "carving",
                    "sculpture", "statue", "stained glass", "mosaic", "collage", "embroidery", "papercut",
                    "paper art", "origami", "woodcut", "linocut", "etching", "mural", "fresco", "claymation",
                    "blueprint", "technical drawing", "matte painting", "tattoo design", "graffiti", "lithograph",
                    "screen print", "spray paint", "airbrush", "botanical illustration", "scientific illustration",
                    "children's book illustration", "digital art", "digital painting", "crayon", "marker", "chalk",
                    "chinese painting", "ink wash painting"),
    },
}

COLOUR_WORDS = frozenset({*v.COLOURS, *v.HAIR_COLOURS, *v.EYE_COLOURS, *v.ANIMAL_COLOURS, "gray", "golden",
                          "blond", "cyan", "magenta", "violet", "crimson", "scarlet", "azure", "turquoise"}
                         - {"multicoloured", "heterochromia", "platinum blonde"})
SAME_COLOUR = {"gray": "grey", "golden": "gold", "blond": "blonde", "violet": "purple", "crimson": "red",
               "scarlet": "red", "azure": "blue", "turquoise": "teal", "cyan": "teal", "navy": "blue"}
SHADES = frozenset({"light", "dark", "pale", "deep", "bright", "pastel"})
LENGTHS = frozenset({"short", "long", "medium", "very"})
GARMENT_SLOTS = {  # garment word → the part of the body it dresses
    "top": ("shirt", "t-shirt", "blouse", "sweater", "hoodie", "vest", "top", "turtleneck", "cardigan"),
    "outer": ("jacket", "coat", "cloak", "cape", "robe", "raincoat", "poncho", "bathrobe"),
    "bottom": ("skirt", "pants", "jeans", "shorts", "leggings", "miniskirt", "sweatpants"),
    "whole": ("dress", "suit", "kimono", "uniform", "spacesuit", "armor", "gown", "sundress", "swimsuit", "bikini",
              "overalls", "tracksuit", "pajamas", "yukata", "hanfu", "qipao", "sari", "toga", "tuxedo", "outfit",
              "dirndl"),
    "head": ("hat", "cap", "beret", "helmet", "crown", "tiara", "hood", "bandana"),
    "feet": ("boots", "shoes", "sneakers", "socks"),
}
SLOT_OF = {word: slot for slot, words in GARMENT_SLOTS.items() for word in words}
EXCLUDES = {"whole": {"top", "bottom", "whole"}, "top": {"whole"}, "bottom": {"whole"}}
GENERIC_ART = frozenset({"illustration", "painting", "drawing"})  # say nothing about the medium alone
HEAD_ALIASES = {"lighting": "light", "glow": "light", "lights": "light", "theme": "palette",
                "scheme": "palette", "hairstyle": "hair", "kitten": "cat", "puppy": "dog", "moons": "moon"}
PERSON_WORDS = frozenset({"person", "people", "girl", "girls", "boy", "boys", "woman", "women", "man", "men",
                          "lady", "child", "children", "kid", "baby", "she", "he", "her", "his", "portrait",
                          "face", "character", "friends", "couple", "family", "crowd", "bride", "groom", "mother",
                          "father", "teenager", "selfie", "1girl", "1boy"})
ANIMALS = frozenset(v.SUBJECTS[v.SUBJECTS.index("cat"):v.SUBJECTS.index("car")] + v.PETS)
BEINGS = frozenset(w for tag in v.SUBJECTS[v.SUBJECTS.index("old woman"):v.SUBJECTS.index("robot")]
                   + v.MORE_BEINGS for w in tag.split())
PERSON_CAMERA = frozenset({"portrait", "headshot", "upper body", "cowboy shot", "full body", "selfie",
                           "over the shoulder", "fashion photography", "character sheet", "reference sheet",
                           "turnaround", "candid", "pov"})
NOT_OBJECTS = frozenset({"solo", "crowd", "couple", "family", "1girl", "1boy", "2girls", "2boys",
                         "multiple girls", "multiple boys"})
BUILDINGS = v.SUBJECTS[v.SUBJECTS.index("castle"):v.SUBJECTS.index("tree")] + v.ARCHITECTURE[1]
HAIR_HEADS = (frozenset(tag.split()[-1] for tag in (*v.HAIRSTYLES, *v.MAIN_HAIRSTYLES))
              - {"bangs", "ahoge", "bald", "eye"})
BACKGROUND_PLACES = frozenset({"simple background", "white background", "black background", "gradient background",
                               "abstract background", "blurry background", "bokeh background", "indoors",
                               "outdoors", "window", "balcony", "staircase", "corridor", "sky", "clouds"})


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9'][a-z0-9'-]*", text.lower())


@lru_cache(maxsize=512)
def _pattern(phrase: str) -> re.Pattern:
    parts = [r"[a-z0-9'-]+" if p == "*" else re.escape(p) for p in phrase.split()]
    return re.compile(r"(?<![\w-])" + r"\s+".join(parts) + r"(?![\w-])")


def facet_values(text: str) -> dict[str, set[str]]:
    """{facet: values} that the text names."""
    return {facet: set(values) for facet, values in _facet_values(text.lower())}


@lru_cache(maxsize=8192)
def _facet_values(low: str) -> tuple[tuple[str, frozenset[str]], ...]:
    found: dict[str, set[str]] = {}
    for facet, values in FACETS.items():
        for value, phrases in values.items():
            if any(_pattern(p).search(low) for p in phrases):
                found.setdefault(facet, set()).add(value)
    return tuple((facet, frozenset(values)) for facet, values in found.items())


def _colour(word: str) -> str | None:
    if word in COLOUR_WORDS or word in SAME_COLOUR:
        return SAME_COLOUR.get(word, word)
    return None


def head_of(tag: str) -> str:
    """The noun a tag is about: its last word, before any 'at/in/on/of…' phrase."""
    words = re.split(r"\s+(?:at|in|on|of|with|under|by|over|through)\s+", tag.lower())[0].split()
    if not words:
        return ""
    return _noun(words[-1])


def _noun(word: str) -> str:
    if word in HAIR_HEADS:
        return "hair"
    if word.endswith("background"):
        return "background"
    return HEAD_ALIASES.get(word, word)


def modifiers(text: str) -> dict[str, set[str]]:
    """{head noun: its modifier words} for each 'modifier… noun' run in the text."""
    found: dict[str, set[str]] = {}
    words = _words(text)
    for i, word in enumerate(words):
        noun = _noun(word)
        run: set[str] = set()
        j = i - 1
        while j >= 0 and (_colour(words[j]) or words[j] in SHADES or words[j] in LENGTHS):
            run.add(words[j])
            j -= 1
        if run:
            found.setdefault(noun, set()).update(run)
    return found


def _disagree(mine: set[str], theirs: set[str]) -> bool:
    """Two modifier sets name different colours, or different lengths."""
    for pick in (_colour, lambda w: w if w in LENGTHS - {"very"} else None):
        a = {pick(w) for w in mine} - {None}
        b = {pick(w) for w in theirs} - {None}
        if a and b and not a & b:
            return True
    return False


@lru_cache(maxsize=1)
def _kinds() -> dict[str, str]:
    """Vocabulary head nouns → 'object' (a thing, animal or being) or 'place'."""
    kinds: dict[str, str] = {}
    for tag in (*v.SUBJECTS, *v.MORE_BEINGS, *v.MORE_FOOD, *v.FLOWERS, *v.PETS, *v.VEHICLES, *v.HELD,
                "moon", "moons", "star", "sun"):
        if tag not in NOT_OBJECTS:
            kinds[head_of(tag)] = "object"
    for tag in (*v.PLACES, *v.TIME_PLACES, *v.SEASON_PLACES, *v.ROOMS, *BUILDINGS):
        if tag not in BACKGROUND_PLACES:
            kinds[head_of(tag)] = "place"
    kinds["background"] = "place"
    return kinds


def is_thing(noun: str) -> bool:
    """An object, animal or being of the vocabulary."""
    return _kinds().get(noun) == "object"


def _slots(words: list[str]) -> set[str]:
    return {SLOT_OF[w] for w in words if w in SLOT_OF}


@lru_cache(maxsize=8192)
def _art(text: str) -> frozenset[str]:
    """The artwork phrases (media) a text names."""
    low = text.lower()
    found = frozenset(p for p in FACETS["medium"]["artwork"] if _pattern(p).search(low))
    return found - GENERIC_ART or found


def is_being(noun: str) -> bool:
    """A person or animal word: not a thing a synonym may stand in for."""
    return noun in BEINGS or noun in ANIMALS or noun in PERSON_WORDS


@dataclass
class Context:
    """What the input says, and what the tags taken so far have claimed."""

    text: str
    facets: dict[str, set[str]] = field(default_factory=dict)
    mods: dict[str, set[str]] = field(default_factory=dict)
    colours: set[str] = field(default_factory=set)
    scene_colours: set[str] = field(default_factory=set)  # colours of the background, sky or no noun
    nouns: set[str] = field(default_factory=set)
    person: bool = False
    animal: bool = False
    place: bool = False
    slots: set[str] = field(default_factory=set)
    art: frozenset[str] = frozenset()
    taken_facets: dict[str, set[str]] = field(default_factory=dict)
    taken_heads: set[str] = field(default_factory=set)
    taken_slots: set[str] = field(default_factory=set)
    taken_art: set[str] = field(default_factory=set)
    took_place: bool = False

    @classmethod
    def of(cls, text: str) -> Context:
        words = _words(text)
        nouns = {_noun(w) for w in words} | {w.rstrip("s") for w in words}
        kinds = _kinds()
        facets = facet_values(text)
        person = bool(set(words) & (PERSON_WORDS | BEINGS)) or "gender" in facets
        if person and "count" not in facets and re.search(r"\b(a|an|one)\b", text.lower()):
            facets["count"] = {"one"}  # "a girl …": one person
        mods = modifiers(text)
        colours = {c for w in words if (c := _colour(w))}
        bound = {c for noun, m in mods.items() if noun not in ("background", "sky", "palette", "light")
                 for w in m if (c := _colour(w))}
        return cls(text, facets=facets, mods=mods, colours=colours, scene_colours=colours - bound, nouns=nouns,
                   person=person, animal=bool(nouns & ANIMALS),
                   place=any(kinds.get(n) == "place" for n in nouns), slots=_slots(words), art=_art(text))

    def allow(self, nouns: set[str]) -> None:
        """Count these nouns as named (synonyms of the input's: 'noodles' for 'ramen')."""
        self.nouns |= nouns

    def reason(self, tag: str, category: str) -> str | None:
        """Why `tag` may not join the expansion, or None."""
        for facet, vals in facet_values(tag).items():
            said = self.facets.get(facet)
            if said and vals - said:
                return f"{facet} {', '.join(sorted(vals - said))} contradicts the input's {', '.join(sorted(said))}"
            took = self.taken_facets.get(facet)
            if took and vals - took:
                return f"a second {facet}: {', '.join(sorted(vals - took))} after {', '.join(sorted(took))}"
        words = _words(tag)
        head = head_of(tag)
        kind = _kinds().get(head)
        if head in self.taken_heads:
            return f"a second tag about {head}"
        return (self._colour_reason(words, head) or self._invention_reason(tag, words, head, kind, category)
                or self._kind_reason(tag, words, head, kind, category))

    def _colour_reason(self, words: list[str], head: str) -> str | None:
        mine = {w for w in words[:-1] if _colour(w) or w in SHADES or w in LENGTHS}
        if head in self.mods and _disagree(mine, self.mods[head]):
            return f"the input's {' '.join(sorted(self.mods[head]))} {head}"
        tag_colours = {c for w in words if (c := _colour(w))}
        if not tag_colours or not self.colours or head in self.nouns:
            return None
        if head in ("palette", "light") and tag_colours <= self.scene_colours:
            return None
        return f"colours {', '.join(sorted(tag_colours))} on {head}, which the input does not colour so"

    def _invention_reason(self, tag: str, words: list[str], head: str, kind: str | None,
                          category: str) -> str | None:
        slots = _slots(words)
        if category == "clothing" or head == "hair" or head == "eyes" or slots:
            if not self.person:
                return "clothing or hair, but the input has no person"
            clash = {s for s in slots for t in self.slots | self.taken_slots if s in EXCLUDES.get(t, {t})}
            if clash and not set(words) & {w for w in _words(self.text) if w in SLOT_OF}:
                return f"a second {', '.join(sorted(clash))} garment"
        elif kind and head not in self.nouns and (category in ("subject", "weather")
                                                  or (category == "pose" and not self.person)):
            return f"{head} is not in the input"
        if not self.person and category == "subject" and (tag in NOT_OBJECTS or set(words) & PERSON_WORDS
                                                          or (is_being(head) and head not in ANIMALS)):
            return "a person, but the input has none"
        if category == "expression" and not (self.person or self.animal):
            return "an expression, but the input has no person or animal"
        if category == "pose" and not self.person and not (self.animal and "posture" in facet_values(tag)):
            return "a pose, but the input has no person"
        if not self.person and any(_pattern(p).search(tag.lower()) for p in PERSON_CAMERA):
            return "a person's shot, but the input has no person"
        if (self.person or self.animal) and "still life" in tag:
            return "a still life, but the input has a person or animal"
        return None

    def _kind_reason(self, tag: str, words: list[str], head: str, kind: str | None, category: str) -> str | None:
        if category == "setting" and kind in ("place", "object"):
            if self.took_place:
                return "a second place"
            if self.place and head not in self.nouns:
                return f"{head} is not the input's place"
        art = _art(tag)
        known = self.art | self.taken_art
        if art and known and not art & known and not art <= GENERIC_ART and not known <= GENERIC_ART:
            return f"medium {', '.join(sorted(art))} after {', '.join(sorted(known))}"
        return None

    def take(self, tag: str, category: str) -> None:
        for facet, vals in facet_values(tag).items():
            self.taken_facets.setdefault(facet, set()).update(vals)
        head = head_of(tag)
        if len(_words(tag)) > 1 or _kinds().get(head):
            self.taken_heads.add(head)
        self.took_place |= _kinds().get(head) in ("place", "object") and category == "setting"
        self.taken_slots |= _slots(_words(tag))
        self.taken_art |= _art(tag)
