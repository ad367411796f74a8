"""Is a text English? `kekong prompt expand` embeds with all-MiniLM-L6-v2, which was trained on
English only: Chinese, Japanese, Russian… come out as near-random vectors and give unrelated tags.
So text in another script, or Latin-script text whose words are another language's common words,
is refused with a message rather than expanded."""

from __future__ import annotations

import re
import unicodedata

from kekong.errors import ParameterError

# frequent short words of the Latin-script languages most often typed instead of English, none an
# English word
FOREIGN_WORDS = {
    "French": {"une", "le", "la", "les", "des", "est", "dans", "avec", "sous", "qui", "sur", "et", "du", "au",
               "aux", "fille", "garçon", "nuit", "pluie", "marche", "chat", "rouge", "bleu", "ciel", "femme"},
    "Spanish": {"una", "el", "los", "las", "con", "bajo", "en", "que", "por", "del", "y", "niña", "niño", "lluvia",
                "noche", "caminando", "gato", "mujer", "rojo", "azul", "cielo"},
    "German": {"ein", "eine", "der", "die", "das", "und", "mit", "im", "unter", "bei", "nacht", "regen", "mädchen",
               "junge", "frau", "katze", "rot", "blau", "himmel", "geht"},
    "Italian": {"uno", "il", "della", "con", "sotto", "nella", "che", "ragazza", "pioggia", "notte", "gatto",
                "rosso", "cielo", "donna"},
    "Portuguese": {"um", "uma", "os", "com", "sob", "na", "no", "em", "menina", "chuva", "noite", "gato",
                   "vermelho", "mulher"},
}
SCRIPT_NAMES = {"CJK": "Chinese/Japanese", "HIRAGANA": "Japanese", "KATAKANA": "Japanese", "HANGUL": "Korean",
                "CYRILLIC": "Cyrillic", "ARABIC": "Arabic", "HEBREW": "Hebrew", "GREEK": "Greek",
                "DEVANAGARI": "Devanagari", "THAI": "Thai"}


def foreign_language(text: str) -> str | None:
    """The script or language that makes `text` not English, or None."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return None
    scripts: dict[str, int] = {}
    for c in letters:
        if ord(c) < 0x250:  # Basic Latin, Latin-1, Latin Extended-A/B
            continue
        name = unicodedata.name(c, "").split(" ")[0]
        script = SCRIPT_NAMES.get(name, "non-Latin")
        scripts[script] = scripts.get(script, 0) + 1
    if scripts and sum(scripts.values()) >= 0.3 * len(letters):
        return max(scripts, key=scripts.__getitem__) + " script"
    words = re.findall(r"[^\W\d_]+", text.lower())
    if len(words) < 3:
        return None
    best = max(FOREIGN_WORDS, key=lambda lang: sum(w in FOREIGN_WORDS[lang] for w in words))
    hits = sum(w in FOREIGN_WORDS[best] for w in words)
    return best if hits >= max(2, 0.4 * len(words)) else None


def english_only(text: str) -> None:
    """Refuse text the English embedding model cannot read."""
    found = foreign_language(text)
    if found:
        shown = text if len(text) <= 40 else text[:37] + "…"
        raise ParameterError(f"prompt expand reads English only, and {shown!r} looks like {found}: "
                             "write the text in English (its tag vocabulary and model are English)")
