"""The X/Y/Z grid: A1111's axis syntax, every cell planned and checked before any runs, shared
seeds, and the written grid (cells stamped, labelled sheet, JSON/CSV with scores, plot)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from PIL import Image

import kekong
from kekong.errors import ParameterError
from kekong.fidelity import score_generated
from kekong.generation.grid import expand, parse_axis, plan, run
from kekong.io import save_image
from kekong.provenance.grid_record import write_grid
from tests.server_helpers import star_outline


@pytest.mark.parametrize(("text", "kind", "values"), [
    ("1-5", int, [1, 2, 3, 4, 5]),
    ("1-10 (+2)", int, [1, 3, 5, 7, 9]),
    ("10-1 (-3)", int, [10, 7, 4]),  # A1111 adds 1 to the end whatever the step's sign
    ("1-10 [4]", int, [1, 4, 7, 10]),
    ("3, 8-9", int, [3, 8, 9]),
    ("0.5-1.5 [5]", float, [0.5, 0.75, 1.0, 1.25, 1.5]),
    ("0.5-1.5 (+0.25)", float, [0.5, 0.75, 1.0, 1.25, 1.5]),
    ("-0.5, 2", float, [-0.5, 2.0]),
    ('red, "dark, blue", green', str, ["red", "dark, blue", "green"]),
])
def test_axis_values_as_a1111_writes_them(text, kind, values):
    assert expand(text, kind) == values


@pytest.mark.parametrize(("text", "message"), [
    ("Flavour:1,2", "expected AXIS:VALUES with AXIS one of"),
    ("Steps:ten", "'ten' is not a number or a range"),
    ("Steps:1-100000", "over 500 values"),
    ("Prompt S/R:red", "give 2+"),
])
def test_bad_axes_are_named(text, message):
    with pytest.raises(ParameterError, match=message):
        parse_axis(text)


def test_cells_are_planned_and_checked_before_any_runs():
    base = {"prompt": "a red star", "negative_prompt": "red blur", "seed": -1,
            "controls": [{"module": "none", "image": "map.png"}]}
    cells = plan(base, [parse_axis("Prompt S/R:red,blue"), parse_axis("[ControlNet] Weight:0,0.5"),
                        parse_axis("CFG Scale:2,7")])
    assert len(cells) == 8 and cells[1].position == (1, 0, 0) and cells[2].position == (0, 1, 0)
    assert cells[1].request.prompt == "a blue star" and cells[1].request.negative_prompt == "blue blur"
    assert [c.request.controls[0].weight for c in cells[:4]] == [0, 0, 0.5, 0.5]
    assert len({c.request.seed for c in cells}) == 1 and cells[0].request.seed != -1  # one seed, drawn once
    assert {c.request.seed for c in plan(base, [parse_axis("Seed:1-3")])} == {1, 2, 3}
    with pytest.raises(ParameterError, match=r"grid cell Steps=151: .*steps"):  # before the first cell runs
        plan(base, [parse_axis("Steps:20,151")])
    with pytest.raises(ParameterError, match="'green' is not in the prompt"):
        plan(base, [parse_axis("Prompt S/R:green,blue")])
    with pytest.raises(ParameterError, match="has 1 control unit"):
        plan(base, [parse_axis("[ControlNet 1] Weight:0,1")])


def test_a_written_grid(tmp_path):
    outline = save_image(star_outline(), tmp_path / "star.png")
    base = {"prompt": "a red star on a light blue background", "width": 64, "height": 64, "steps": 6, "seed": 3,
            "controls": [{"module": "none", "image": str(outline)}]}
    axes = [parse_axis("[ControlNet] Weight:0,1"), parse_axis("Prompt S/R:red,green")]
    cells = plan(base, axes)

    def generate_one(request):
        results = kekong.generate(request)
        for generated in results:
            generated.fidelity = score_generated(generated)
        return results

    results = run(cells, generate_one)
    summary = write_grid(cells, results, axes, tmp_path / "grid")
    sheet = Image.open(tmp_path / "grid" / "grid.png")
    assert sheet.width > 2 * 64 and sheet.height > 2 * 64  # cells at 64 px plus the label margins
    names = json.loads(sheet.text["kekong-grid"])["cells"]
    assert [c["file"] for c in names] == ["cell-0-0-0.png", "cell-1-0-0.png", "cell-0-1-0.png", "cell-1-1-0.png"]
    assert "Seed: 3" in sheet.text["parameters"]
    cell = np.asarray(Image.open(tmp_path / "grid" / "cell-1-0-0.png").convert("RGB"))
    pixels = np.asarray(sheet.convert("RGB"))
    match = cv2.matchTemplate(pixels, cell, cv2.TM_SQDIFF)
    y, x = np.unravel_index(match.argmin(), match.shape)
    assert np.array_equal(pixels[y:y + 64, x:x + 64], cell)  # on the sheet pixel for pixel, not rescaled
    assert "kekong-recipe" in Image.open(tmp_path / "grid" / "cell-0-0-0.png").text  # each cell stamped
    weights = {c["[ControlNet] Weight"]: c["fidelity"][0]["value"] for c in summary["cells"] if c["position"][1] == 0}
    assert weights[1.0] > weights[0.0]  # following the outline shows in the score
    assert (tmp_path / "grid" / "fidelity.png").is_file() and summary["plot"] == "fidelity.png"
    csv_text = (tmp_path / "grid" / "grid.csv").read_text()
    assert csv_text.splitlines()[0].startswith("file,sha256,seed,[ControlNet] Weight,Prompt S/R")


def test_grid_and_score_from_the_command_line(tmp_path):
    from tests.test_cli import kekong as cli

    outline = save_image(star_outline(), tmp_path / "star.png")
    done = cli("grid", "a red star on a light blue background", "-c", f"none:{outline}", "--x",
               "[ControlNet] Weight:0,1", "--steps", "6", "--seed", "2", "--out-dir", str(tmp_path / "g"))
    assert done.returncode == 0, done.stderr
    assert "2 = 2 cells" in done.stdout and (tmp_path / "g" / "grid.png").is_file()
    # A field the grid leaves unset takes the model's recommendation, as one image does (shipped: CFG 2, not 7).
    assert "CFG scale: 2," in Image.open(tmp_path / "g" / "cell-1-0-0.png").text["parameters"]
    followed = cli("score", str(tmp_path / "g" / "cell-1-0-0.png"), "-c", f"none:{outline}", "--score-as", "canny",
                   "--json")
    ignored = cli("score", str(tmp_path / "g" / "cell-0-0-0.png"), "-c", f"none:{outline}", "--score-as", "canny",
                  "--json")
    assert json.loads(followed.stdout)[0]["value"] > json.loads(ignored.stdout)[0]["value"] + 0.3
    refused = cli("grid", "a red star", "--x", "Steps:1,500")
    assert refused.returncode != 0 and "grid cell Steps=500" in refused.stderr


def test_nothing_axes_written_back_and_seeds_fixed_as_a1111():
    from kekong.generation.grid import axis_text, fix_seeds

    base = {"prompt": "a red star", "seed": -1}
    nothing = parse_axis("Nothing")
    assert nothing.values == ("",)
    cells = plan(base, [nothing, parse_axis("Steps:2,3")])  # A1111's X=Nothing, Y=Steps: one column
    assert [c.position for c in cells] == [(0, 0, 0), (0, 1, 0)] and [c.request.steps for c in cells] == [2, 3]
    for text in ('Prompt S/R:red,"dark, blue"', "CFG Scale:0.5,1.25", "[ControlNet 1] Weight:0,1", "Nothing"):
        axis = parse_axis(text)
        assert parse_axis(axis_text(axis)) == axis
    fields, [seeds] = fix_seeds(base, [parse_axis("Seed:-1,7,-1")])
    assert fields["seed"] != -1 and seeds.values[1] == 7 and -1 not in seeds.values
    kept = plan(base, [parse_axis("Seed:-1,7")], fixed_seeds=False)  # "Keep -1 for seeds"
    assert [c.request.seed for c in kept] == [-1, 7]
