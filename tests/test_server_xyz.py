"""A1111's X/Y/Z plot over the API: `script_name: "x/y/z plot"` with A1111 1.10's script_args
(axis type indices into A1111's list for the route, value strings or dropdown lists, its flags)
runs kekong's grid and answers as A1111 does — the grid first, then the cells when "Include Sub
Images" is on; an axis kekong does not run is refused by name before anything is queued. The
generations are the shipped model's at 64 px and 2 steps."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from kekong.server.a1111_xyz import axis_labels, from_script_args
from kekong.server.app import create_app
from kekong.server.config import ServerConfig
from tests.server_helpers import b64_png, decode, info, star_outline

BASE = {"prompt": "a red star on a light blue background", "width": 64, "height": 64, "steps": 2, "seed": 4,
        "script_name": "X/Y/Z plot"}
SEED, STEPS, CFG, NOTHING = 1, 4, 6, 0  # A1111 1.10's txt2img indices
CN_WEIGHT = 40  # sd-webui-controlnet's "[ControlNet] Weight", appended after A1111's 38 txt2img axes


def args(x_type, x_values, y_type=NOTHING, y_values="", lone=True, sub_grids=False, keep_seeds=False,
         x_dropdown=None):
    return [x_type, x_values, x_dropdown or [], y_type, y_values, [], NOTHING, "", [], True, lone, sub_grids,
            keep_seeds, 0, False, False]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    config = ServerConfig(data_dir=tmp_path_factory.mktemp("xyz") / "server", ui=False)
    with TestClient(create_app(config)) as client:
        yield client


def test_a1111_axis_lists_and_their_indices():
    txt2img, img2img = axis_labels("txt2img"), axis_labels("img2img")
    assert (txt2img[SEED], txt2img[STEPS], txt2img[CFG], txt2img[7], txt2img[9], txt2img[17]) == \
        ("Seed", "Steps", "CFG Scale", "Prompt S/R", "Sampler", "Schedule type")
    assert (img2img[5], img2img[6], img2img[9], img2img[22]) == ("CFG Scale", "Image CFG Scale", "Sampler", "Denoising")
    assert len(txt2img) == 38 + 11 and txt2img[CN_WEIGHT] == "[ControlNet] Weight"
    spec = from_script_args(args(SEED, "1-3", STEPS, "2, 3"), "txt2img")
    assert spec.axes == ["Seed:1,2,3", "Steps:2,3"] and spec.lone_images and spec.fixed_seeds
    sampler = from_script_args(args(9, "", x_dropdown=["Euler", "DDIM"]), "txt2img")  # a dropdown axis
    assert sampler.axes == ["Sampler:Euler,DDIM"]
    assert from_script_args(args(NOTHING, "", SEED, "5,6"), "txt2img").axes == ["Nothing", "Seed:5,6"]
    assert from_script_args(["Prompt S/R", "red,blue"], "txt2img").axes == ["Prompt S/R:red,blue"]  # a label


def test_a_seed_axis_gives_the_grid_then_one_cell_per_seed(client):
    answer = client.post("/sdapi/v1/txt2img", json={**BASE, "script_args": args(SEED, "11, 12, 13")})
    assert answer.status_code == 200, answer.text
    images, details = answer.json()["images"], info(answer)
    assert len(images) == 1 + 3
    grid, cells = decode(images[0]), [decode(i) for i in images[1:]]
    assert grid.width > 3 * 64 and all(c.size == (64, 64) for c in cells)
    assert details["all_seeds"] == [11, 12, 13] and details["index_of_first_image"] == 1
    assert "Script: X/Y/Z plot" in details["infotexts"][0] and 'X Values: "11,12,13"' in details["infotexts"][0]
    assert [f"Seed: {s}," in text for s, text in zip((11, 12, 13), details["infotexts"][1:], strict=True)] == [True] * 3
    assert not np.array_equal(np.asarray(cells[0]), np.asarray(cells[1]))  # the seeds differ, so do the images
    chunk = json.loads(grid.text["kekong-grid"])  # the sheet names its cells
    assert [c["seed"] for c in chunk["cells"]] == [11, 12, 13] and chunk["provenance"]["c2pa"] is True
    assert details["kekong"]["grid"]["axes"] == [{"name": "Seed", "values": [11, 12, 13]}]


def test_without_sub_images_only_the_grid_comes_back_and_cells_share_the_fixed_seed(client):
    answer = client.post("/sdapi/v1/txt2img", json={**BASE, "seed": -1, "script_args": args(CFG, "2, 7", lone=False)})
    assert answer.status_code == 200, answer.text
    details = info(answer)
    assert len(answer.json()["images"]) == 1  # A1111's default: the grid alone
    assert len(details["all_seeds"]) == 2 and len(set(details["all_seeds"])) == 1 and details["all_seeds"][0] != -1
    assert ["CFG scale: 2," in t for t in details["infotexts"][1:]] == [True, False]


def test_a_controlnet_weight_axis_changes_the_unit_and_scores_each_cell(client):
    unit = {"enabled": True, "module": "none", "image": b64_png(star_outline()), "weight": 1.0}
    body = {**BASE, "script_args": args(CN_WEIGHT, "0, 1"), "alwayson_scripts": {"controlnet": {"args": [unit]}}}
    answer = client.post("/sdapi/v1/txt2img", json=body)
    assert answer.status_code == 200, answer.text
    details = info(answer)
    assert len(answer.json()["images"]) == 3  # grid + 2 cells, no detected maps
    assert ["Weight: 0.0" in t.split("ControlNet 0:")[1] for t in details["infotexts"][1:]] == [True, False]
    scores = [cell[0]["value"] for cell in details["kekong"]["fidelity"]]
    assert len(scores) == 2 and scores[1] > scores[0]  # following the outline shows in the score


@pytest.mark.parametrize(("script_args", "message"), [
    (args(21, "0, 1"), "script_args[0]: X type 21 is 'Eta', an X/Y/Z axis kekong does not run"),
    (args(SEED, "1,2", 8, "a b"), "script_args[3]: Y type 8 is 'Prompt order', an X/Y/Z axis kekong does not run"),
    (args(99, "1"), "script_args[0]: X type 99 is not an axis: A1111 1.10's txt2img X/Y/Z plot has types 0–48"),
    (args(STEPS, "ten"), "script_args[1]: X values: axis Steps: 'ten' is not a number"),
    (args(SEED, ""), "script_args[1]: X values: axis Seed: no values"),
    (args(STEPS, "2, 151"), "grid cell Steps=151"),
    (args(7, "green,blue"), "'green' is not in the prompt"),
    ([SEED, "1", [], 0, "", [], 0, "", [], "yes"], "script_args[9] (draw_legend): expected true or false"),
])
def test_refused_script_args_are_named_before_anything_is_queued(client, script_args, message):
    before = len(client.get("/v1/jobs").json())
    answer = client.post("/sdapi/v1/txt2img", json={**BASE, "script_args": script_args})
    assert answer.status_code == 422 and message in answer.json()["detail"], answer.text
    assert len(client.get("/v1/jobs").json()) == before


def test_another_script_is_refused_by_name(client):
    answer = client.post("/sdapi/v1/txt2img", json={**BASE, "script_name": "prompt matrix", "script_args": []})
    assert answer.status_code == 422 and "'prompt matrix' is not a script kekong runs" in answer.json()["detail"]
    scripts = client.get("/sdapi/v1/scripts").json()
    assert "x/y/z plot" in scripts["txt2img"] and "x/y/z plot" in scripts["img2img"]
    info_args = next(s for s in client.get("/sdapi/v1/script-info").json() if s["name"] == "x/y/z plot")["args"]
    assert info_args[0]["label"] == "X type" and info_args[0]["choices"][SEED] == "Seed" and len(info_args) == 16


def test_the_ui_panel_queues_one_grid_job_and_shows_the_stamped_sheet(client):
    from types import SimpleNamespace

    from PIL import Image

    from kekong.ui import grid_panel

    ui = SimpleNamespace(services=client.app.state.services,
                         collect=lambda data: {"prompt": "a red star", "width": 64, "height": 64, "steps": 2})
    parts = {"x_type": "xt", "x_values": "xv", "y_type": "yt", "y_values": "yv"}
    before = len(client.get("/v1/jobs").json())
    *_, (sheet, status, gallery) = grid_panel.run(ui, parts, {"xt": "Seed", "xv": "3, 4", "yt": "Nothing", "yv": ""})
    assert status == "done: 2 cells" and len(client.get("/v1/jobs").json()) == before + 1  # one job, not one a cell
    assert "kekong-grid" in Image.open(sheet).text and sheet.endswith("grid.png")
    assert [caption.split(" · ")[0] for _, caption in gallery] == ["Seed 3", "Seed 4"]
