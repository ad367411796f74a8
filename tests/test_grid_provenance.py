"""The X/Y/Z contact sheet is stamped like every kekong image: A1111's grid infotext, the
`kekong-grid` chunk naming its cells, a watermark registered to the grid and a C2PA manifest with
the cells as ingredients; `kekong verify` reads all of it back."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from kekong.io import save_image
from kekong.provenance.grid_record import GRID_KEY, stamp_sheet
from kekong.provenance.stamp import Layers
from kekong.provenance.verify import Outcome, verify


def _cells(tmp_path, count: int) -> list:
    rng = np.random.default_rng(0)
    return [save_image(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), tmp_path / f"cell-{i}-0-0.png")
            for i in range(count)]


def test_a_sheet_carries_its_cells_watermark_and_manifest(tmp_path, astronaut):
    cells = _cells(tmp_path, 3)
    summary = {"axes": [{"name": "Seed", "values": [1, 2, 3]}], "sheet": "grid.png",
               "cells": [{"file": c.name, "sha256": "x"} for c in cells]}
    record = stamp_sheet(astronaut.copy(), tmp_path / "grid.png", Layers(), "a star\nSteps: 3, Script: X/Y/Z plot",
                         summary, cells)
    assert len(record["watermark"]) == 10 and int(record["watermark"], 16) >= 0  # an id, not "off" or a reason
    sheet = Image.open(tmp_path / "grid.png")
    chunk = json.loads(sheet.text[GRID_KEY])
    assert [c["file"] for c in chunk["cells"]] == ["cell-0-0-0.png", "cell-1-0-0.png", "cell-2-0-0.png"]
    assert chunk["provenance"]["c2pa"] is True and "Script: X/Y/Z plot" in sheet.text["parameters"]
    verdict = verify(tmp_path / "grid.png")
    assert verdict.outcome == Outcome.FOUND
    assert verdict.c2pa["state"] == "valid" and verdict.c2pa["digital_source_type"].endswith(
        "compositeWithTrainedAlgorithmicMedia")
    hashes = verdict.c2pa["kekong"]["ingredients"]
    assert [(h["title"], h["relationship"]) for h in hashes] == [(f"grid cell {c.name}", "componentOf") for c in cells]
    assert verdict.watermark["found"] and verdict.watermark["id"] == record["watermark"]
    assert verdict.watermark["made_here"]["recipe"]["grid"]["cells"][0]["file"] == "cell-0-0-0.png"
    assert verdict.metadata["grid_cells"] == [c.name for c in cells]


def test_layers_turned_off_are_recorded_and_a_small_sheet_says_why_it_has_no_mark(tmp_path):
    cells = _cells(tmp_path, 2)
    small = np.full((120, 200, 3), 200, np.uint8)
    record = stamp_sheet(small, tmp_path / "grid.png", Layers(c2pa=False), "p\nSteps: 3", {"cells": []}, cells)
    assert record == {"metadata": True, "c2pa": False, "watermark": "not embedded: 200x120 is below 256 px"}
    assert verify(tmp_path / "grid.png").c2pa["state"] == "absent"
    stamp_sheet(small, tmp_path / "bare.png", Layers(metadata=False, watermark=False, c2pa=False), "p", {}, cells)
    assert GRID_KEY not in Image.open(tmp_path / "bare.png").text
