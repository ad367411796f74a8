"""Fast mode from the web UI and the A1111 routes (issue 28 item 2): an A1111 client asks for it with
kekong's body fields or, sending only A1111's, with override_settings kekong_fast*; it is recorded in
the infotext; the UI sends it only when switched on, and a pasted infotext sets its widgets."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from kekong.server.app import create_app
from kekong.server.config import ServerConfig
from kekong.ui.app import UI

SMALL = {"prompt": "a red star", "width": 64, "height": 64, "steps": 8, "seed": 4, "cfg_scale": 2,
         "sampler_name": "Euler"}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with TestClient(create_app(ServerConfig(data_dir=tmp_path_factory.mktemp("fast-routes"), ui=False))) as client:
        yield client


def txt2img(client, **body) -> tuple[np.ndarray, str]:
    answer = client.post("/sdapi/v1/txt2img", json={**SMALL, **body})
    assert answer.status_code == 200, answer.text
    image = np.array(Image.open(io.BytesIO(base64.b64decode(answer.json()["images"][0]))))
    return image, json.loads(answer.json()["info"])["infotexts"][0]


def test_an_a1111_client_asks_for_fast_mode_by_field_or_by_setting(client):
    exact, text = txt2img(client)
    assert "Fast" not in text  # off by default: the exact result, nothing recorded
    fast, text = txt2img(client, fast=True, fast_interval=2)
    assert "Fast: deep_cache+control_reuse, Fast interval: 2" in text and not np.array_equal(fast, exact)
    by_setting, text = txt2img(client, override_settings={"kekong_fast": True, "kekong_fast_interval": 2})
    assert np.array_equal(by_setting, fast) and "Fast interval: 2" in text
    _, text = txt2img(client, override_settings={"kekong_fast": True, "kekong_fast_parts": ["deep_cache"]})
    assert "Fast: deep_cache, Fast interval: 4" in text
    parts_only, _ = txt2img(client, fast_parts=["deep_cache"])  # parts without fast: still exact
    assert np.array_equal(parts_only, exact)


def test_bad_fast_values_are_refused_by_name(client):
    for body in ({"fast": True, "fast_parts": ["warp_speed"]}, {"fast": True, "fast_interval": 1},
                 {"override_settings": {"kekong_fast": True, "kekong_fast_parts": []}}):
        answer = client.post("/sdapi/v1/txt2img", json={**SMALL, **body})
        assert answer.status_code == 422 and "fast_" in answer.text, answer.text


def test_an_infotext_carries_fast_mode_unless_the_client_says_otherwise(client):
    _, made = txt2img(client, fast=True, fast_interval=3)
    _, text = txt2img(client, infotext=made)
    assert "Fast: deep_cache+control_reuse, Fast interval: 3" in text
    _, text = txt2img(client, infotext=made, fast=False)  # sent: the client's value wins
    assert "Fast" not in text
    _, text = txt2img(client, infotext=made, override_settings={"kekong_fast_interval": 5})
    assert "Fast interval: 5" in text


@pytest.fixture(scope="module")
def ui() -> UI:
    ui = UI(FastAPI())
    ui.blocks()
    return ui


def test_the_ui_sends_fast_mode_only_when_switched_on(ui):
    n = ui.named
    data = {c: c.value for c in ui.inputs()}
    data[n["prompt"]] = "x"
    assert n["fast"].value is False and not {"fast", "fast_parts", "fast_interval"} & set(ui.collect(data))
    assert sorted(n["fast_parts"].value) == ["control_reuse", "deep_cache"] and n["fast_interval"].value == 4
    data[n["fast"]], data[n["fast_parts"]], data[n["fast_interval"]] = True, ["control_reuse"], 3
    assert {k: ui.collect(data)[k] for k in ("fast", "fast_parts", "fast_interval")} == \
        {"fast": True, "fast_parts": ["control_reuse"], "fast_interval": 3}


def test_a_pasted_infotext_sets_the_fast_widgets(ui):
    line = "x\nSteps: 8, Sampler: Euler, CFG scale: 2, Seed: 4, Size: 64x64"
    updates, notes = ui.paster.updates(line + ", Fast: deep_cache, Fast interval: 6")
    by = {id(c): u for c, u in zip(ui.paster.outputs(), updates, strict=True)}
    n = ui.named
    assert [by[id(n[k])]["value"] for k in ("fast", "fast_parts", "fast_interval")] == [True, ["deep_cache"], 6]
    updates, _ = ui.paster.updates(line)  # written only when on: an image without it was made exactly
    by = {id(c): u for c, u in zip(ui.paster.outputs(), updates, strict=True)}
    assert by[id(n["fast"])]["value"] is False
    updates, notes = ui.paster.updates(line + ", Fast: warp_speed")
    by = {id(c): u for c, u in zip(ui.paster.outputs(), updates, strict=True)}
    assert by[id(n["fast_parts"])].get("value", "<skipped>") == "<skipped>" and any("warp_speed" in x for x in notes)
