"""The gallery's items: where a picked item's file is, and the caption under each image."""

from __future__ import annotations

from typing import Any


def gallery_path(gallery: list, index: int) -> str:
    """The file of gallery item `index` (the last one when the index is past the end)."""
    item = gallery[min(index, len(gallery) - 1)][0]
    if isinstance(item, dict):
        item = item.get("path") or item.get("image", {}).get("path")
    return str(item)


def caption(item: dict[str, Any]) -> str:
    """A gallery caption: the seed, then each unit's fidelity score (issue 25), e.g.
    `seed 5 · unit 1 edge_f1@2px 0.91`; a unit that cannot be scored says so in a word."""
    parts = [f"seed {item['seed']}"]
    for score in item.get("fidelity") or []:
        where = f"unit {score.get('unit', 0) + 1}"
        if score.get("value") is None:
            parts.append(f"{where} not scored")
        else:
            lower = "" if score.get("higher_is_better", True) else " (lower is better)"
            parts.append(f"{where} {score['metric']} {score['value']:.2f}{lower}")
    return " · ".join(parts)
