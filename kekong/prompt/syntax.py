"""A1111's prompt syntax, with A1111's semantics (its golden cases are in the tests).

- Attention: `(word)` ×1.1, `[word]` ÷1.1, `(word:1.3)` sets 1.3 (times any outer brackets),
  `\\(` `\\)` `\\[` `\\]` are literal; unbalanced brackets close at the end.
- `BREAK` starts a new 75-token chunk.
- Prompt editing `[from:to:when]`, `[to:when]`, `[from::when]`: `when` with a decimal point is a
  fraction of the steps, without one a step number. Alternation `[a|b]` switches every step.
- `AND` composes prompts (`a cat :1.2 AND a dog`): each part guides with its weight.
- `<lora:name:weight>` tags are taken out of the prompt into the request's LoRAs.
- Dynamic prompts `{red|blue|green}` and `__wildcard__` files resolve from the seed.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from kekong.errors import ParameterError
from kekong.models.weights import models_dir

ROUND, SQUARE = 1.1, 1 / 1.1

_ATTENTION = re.compile(r"""
\\\(|\\\)|\\\[|\\]|\\\\|\\|   # escapes
\(|\[|                          # openers
:\s*([+-]?[.\d]+)\s*\)|         # (text:weight) closer
\)|]|                           # closers
[^\\()\[\]:]+|                  # plain text
:                               # a lone colon
""", re.X)
_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)


def _weight(weight: str, prompt: str, at: int) -> float:
    """An attention weight such as `1.2`; a malformed one (`1.2.3`) is named with where it is."""
    try:
        return float(weight)
    except ValueError:
        raise ParameterError(f"prompt {prompt[:80]!r}: the weight {weight!r} at character {at + 1} is not a number "
                             "(write e.g. (word:1.2))") from None


def parse_attention(text: str) -> list[tuple[str, float]]:
    """Text → (fragment, weight) runs; BREAK appears as ("BREAK", -1)."""
    runs: list[list] = []
    round_open: list[int] = []
    square_open: list[int] = []

    def scale_from(start: int, factor: float) -> None:
        for run in runs[start:]:
            run[1] *= factor

    for match in _ATTENTION.finditer(text):
        token, weight = match.group(0), match.group(1)
        if token.startswith("\\"):
            runs.append([token[1:], 1.0])
        elif token == "(":
            round_open.append(len(runs))
        elif token == "[":
            square_open.append(len(runs))
        elif weight is not None and round_open:
            scale_from(round_open.pop(), _weight(weight, text, match.start()))
        elif token == ")" and round_open:
            scale_from(round_open.pop(), ROUND)
        elif token == "]" and square_open:
            scale_from(square_open.pop(), SQUARE)
        else:
            for index, part in enumerate(_BREAK.split(token)):
                if index:
                    runs.append(["BREAK", -1.0])
                runs.append([part, 1.0])
    for start in round_open:
        scale_from(start, ROUND)
    for start in square_open:
        scale_from(start, SQUARE)
    if not runs:
        runs = [["", 1.0]]
    merged = [runs[0]]
    for run in runs[1:]:
        if run[1] == merged[-1][1]:
            merged[-1][0] += run[0]
        else:
            merged.append(run)
    return [(text, weight) for text, weight in merged]


_GRAMMAR = r"""
!start: (prompt | /[][():]/+)*
prompt: (emphasized | scheduled | alternate | plain | WHITESPACE)*
!emphasized: "(" prompt ")"
        | "(" prompt ":" prompt ")"
        | "[" prompt "]"
scheduled: "[" [prompt ":"] prompt ":" [WHITESPACE] NUMBER [WHITESPACE] "]"
alternate: "[" prompt ("|" [prompt])+ "]"
WHITESPACE: /\s+/
plain: /([^\\\[\]():|]|\\.)+/
%import common.SIGNED_NUMBER -> NUMBER
"""


@lru_cache(maxsize=1)
def _parser():
    import lark

    return lark.Lark(_GRAMMAR)


def schedule(prompt: str, steps: int, base_steps: int | None = None) -> list[tuple[int, str]]:
    """[(last step, prompt text)…]: the prompt to use up to and including each step (1-based).

    `base_steps` is given for the hires pass: as A1111 ≥ 1.6 schedules it, edits count on from the
    first pass — a step number is `base_steps` later (`[b:25]` after 20 base steps: step 5), a
    fraction 1.0 later (`[b:1.5]`: half-way through this pass; `[b:.5]` has already happened)."""
    import lark

    try:
        tree = _parser().parse(prompt)
    except lark.exceptions.LarkError:
        return [(steps, prompt)]  # not editing syntax after all: A1111 uses the text as is

    boundaries = {steps}
    step_offset, fraction_offset = (0, 0.0) if base_steps is None else (base_steps, 1.0)

    class Collect(lark.Visitor):
        def scheduled(self, node):
            text = str(node.children[-2])
            value = float(text)
            when = int((value - fraction_offset) * steps) if "." in text else int(value - step_offset)
            node.children[-2] = min(steps, when)
            if node.children[-2] >= 1:
                boundaries.add(node.children[-2])

        def alternate(self, node):
            boundaries.update(range(1, steps + 1))

    Collect().visit(tree)

    def at_step(step: int) -> str:
        def walk(node) -> str:
            if isinstance(node, lark.Token):
                return str(node)
            if node.data == "scheduled":
                before, after, when = node.children[0], node.children[1], node.children[-2]
                chosen = before if step <= when else after
                return walk(chosen) if chosen is not None else ""
            if node.data == "alternate":
                options = [walk(c) if c is not None else "" for c in node.children]
                return options[(step - 1) % len(options)]
            return "".join(walk(c) for c in node.children if c is not None)

        return walk(tree)

    return [(step, at_step(step)) for step in sorted(boundaries)]


_LORA = re.compile(r"<lora:([^:>]+)(?::([+-]?[\d.]+))?(?::[^>]*)?>")


def extract_loras(prompt: str) -> tuple[str, list[tuple[str, float]]]:
    """Remove `<lora:name:weight>` tags; return the prompt and (name, weight) pairs."""
    found = [(m.group(1).strip(), float(m.group(2)) if m.group(2) else 1.0) for m in _LORA.finditer(prompt)]
    return _LORA.sub("", prompt), found


_DYNAMIC = re.compile(r"\{([^{}]*)\}")
_WILDCARD = re.compile(r"__([\w./-]+?)__")


def resolve_dynamic(prompt: str, seed: int, wildcards: Path | None = None) -> str:
    """`{a|b|c}` and `__name__` (a line of wildcards/name.txt) chosen from the seed, innermost first."""
    import random

    rng = random.Random(seed)
    for _ in range(100):  # nested choices resolve inside out
        changed = False
        if _WILDCARD.search(prompt):
            prompt = _WILDCARD.sub(lambda m: rng.choice(_wildcard_lines(m.group(1), wildcards)), prompt)
            changed = True
        if _DYNAMIC.search(prompt):
            prompt = _DYNAMIC.sub(lambda m: rng.choice(m.group(1).split("|")), prompt)
            changed = True
        if not changed:
            return prompt
    raise ParameterError("dynamic prompt nests too deeply (a wildcard refers to itself?)")


def _wildcard_lines(name: str, folder: Path | None) -> list[str]:
    folder = (folder or models_dir() / "wildcards").resolve()
    path = (folder / f"{name}.txt").resolve()
    # By path components, not string prefix: wildcards_secret/ shares the prefix of wildcards/.
    if not path.is_relative_to(folder):
        raise ParameterError(f"wildcard {name!r} points outside the wildcards folder")
    if not path.is_file():
        raise ParameterError(f"wildcard __{name}__ not found: expected {path}")
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    if not lines:
        raise ParameterError(f"wildcard file {path} is empty")
    return lines


_AND = re.compile(r"\bAND\b")
_PART_WEIGHT = re.compile(r"^((?:\s|.)*?)(?:\s*:\s*([-+]?(?:\d+\.?|\d*\.\d+)))?\s*$")


def split_and(prompt: str) -> list[tuple[str, float]]:
    """Composable prompts: `a cat :1.2 AND a dog` → [("a cat", 1.2), ("a dog", 1.0)]."""
    parts = []
    for part in _AND.split(prompt):
        match = _PART_WEIGHT.search(part)
        text, weight = (match.group(1), float(match.group(2)) if match.group(2) else 1.0) if match else (part, 1.0)
        parts.append((text, weight))
    return parts


def uses_syntax(prompt: str) -> bool:
    """True when the prompt weights, breaks or schedules anything (CLIP-only features)."""
    runs = parse_attention(prompt)
    return (any(weight != 1.0 for _, weight in runs) or len(schedule(prompt, 10)) > 1
            or len(split_and(prompt)) > 1)
