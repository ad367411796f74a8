"""The Generate tab's LoRA/embedding browser and styles, the gallery captions (seed and each
unit's fidelity score) and the X/Y plot panel's axes."""

from __future__ import annotations

import pytest

from kekong.errors import ParameterError
from kekong.ui import grid_panel, networks
from kekong.ui.gallery import caption


def test_the_browser_lists_the_models_folders_loras_and_embeddings(tmp_path, monkeypatch):
    monkeypatch.setenv("KEKONG_MODELS_DIR", str(tmp_path))
    (tmp_path / "Lora").mkdir()
    (tmp_path / "Lora" / "paper-cut.safetensors").write_bytes(b"")
    (tmp_path / "Lora" / "notes.txt").write_text("not a model")
    (tmp_path / "embeddings").mkdir()
    (tmp_path / "embeddings" / "bad-hands.pt").write_bytes(b"")
    assert networks.network_samples() == [["<lora:paper-cut:1>"], ["bad-hands"]]


def test_a_clicked_card_is_added_to_the_prompt_once():
    assert networks.insert_sample("a red star", ["<lora:paper-cut:1>"]) == "a red star, <lora:paper-cut:1>"
    assert networks.insert("a red star,", "x") == "a red star, x"
    assert networks.insert("", "<lora:a:1>") == "<lora:a:1>"
    assert networks.insert("a, <lora:a:1>", "<lora:a:1>") == "a, <lora:a:1>"


def test_styles_come_from_styles_csv_in_the_data_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("KEKONG_DATA_DIR", str(tmp_path))
    (tmp_path / "styles.csv").write_text('name,prompt,negative_prompt\nPaper,"paper cut of {prompt}",blurry\n'
                                         "Bright,vivid colours,\n")
    assert list(networks.styles()) == ["Paper", "Bright"]
    assert networks.styled("a star", "ugly", ["Paper", "Bright"]) == ("paper cut of a star, vivid colours",
                                                                      "ugly, blurry")
    assert networks.styled("a star", "", []) == ("a star", "")
    with pytest.raises(ParameterError, match="styles: Nope not found; known: Paper, Bright"):
        networks.styled("a star", "", ["Nope"])


def test_captions_carry_the_seed_and_each_units_score():
    item = {"seed": 5, "fidelity": [
        {"unit": 0, "module": "canny", "metric": "edge_f1@2px", "value": 0.9123},
        {"unit": 1, "module": "depth_midas", "metric": "depth_rmse", "value": 0.25, "higher_is_better": False},
        {"unit": 2, "module": "shuffle", "metric": None, "value": None, "reason": "shuffle has no map to compare"}]}
    assert caption(item) == ("seed 5 · unit 1 edge_f1@2px 0.91 · unit 2 depth_rmse 0.25 (lower is better) · "
                             "unit 3 not scored")
    assert caption({"seed": 7, "fidelity": None}) == "seed 7"


def test_the_plot_panel_reads_axes_with_the_grids_own_parser():
    from kekong.generation import grid

    assert grid_panel.axis_names()[:3] == ["Prompt S/R", "Seed", "Steps"]
    [x, y] = grid_panel.axes("Prompt S/R", "red, blue", "Steps", "10-30 (+10)")
    assert x.values == ("red", "blue") and y.values == (10, 20, 30)
    assert len(grid_panel.axes("CFG Scale", "1-2 [3]", "Nothing", "")) == 1
    with pytest.raises(ParameterError, match="pick an X axis"):
        grid_panel.axes("Steps", "  ", "Nothing", "")
    assert "Nothing" not in grid_panel.axis_names()  # the panel's own "Nothing" turns an axis off
    cells = grid.plan({"prompt": "a red star", "batch_size": 2}, [x, y])
    assert [c.request.prompt for c in cells[:2]] == ["a red star", "a blue star"] and cells[2].request.steps == 20
    assert {c.request.seed for c in cells} == {cells[0].request.seed}
