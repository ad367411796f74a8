"""Re-pose (`request.repose`, `kekong repose`, `/v1/jobs` kind repose): a photo warped to an edited pose,
then the areas the warp uncovered inpainted with an openpose unit on the edited skeleton."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from kekong.detect.inpaint import feather_mask
from kekong.detect.openpose import render_json
from kekong.detect.openpose.warp import MODES, warp_pose
from kekong.errors import KekongError, ParameterError
from kekong.generation import pipeline, repose
from kekong.io import image_source, load_image, save_image
from kekong.repose_spec import WARP_MODES
from kekong.request import build_request
from tests.test_cli import kekong
from tests.test_warp import FIGURE, marked, pose_of, raised_right_arm
from tests.tiny_models import build_tiny_base, build_tiny_controlnet


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("repose")
    build_tiny_base(root / "base")
    build_tiny_controlnet(root / "cn", seed=1)
    save_image(marked(FIGURE), root / "figure.png")
    return root


def spec(tiny, **extra):
    return {"image": str(tiny / "figure.png"), "pose": pose_of(raised_right_arm()).to_json(),
            "source_pose": pose_of(FIGURE).to_json(), **extra}


def fields(tiny, **extra):
    return {"prompt": "a figure", "model": str(tiny / "base"), "steps": 4, "sampler": "Euler", "seed": 7,
            "width": 64, "height": 64, "controls": [{"module": "none", "model": str(tiny / "cn")}],
            "repose": spec(tiny, pose_unit=0), **extra}


def test_warp_modes_are_the_warps():
    assert WARP_MODES == MODES


@pytest.mark.parametrize(("extra", "message"), [
    ({"init_image": "x.png"}, "repose makes the init image and mask itself"),
    ({"controls": []}, "repose.pose_unit 0: there are 0 control units"),
    ({"controls": [{"module": "canny", "model": "m"}]}, "the pose unit reads the edited skeleton as a ready map"),
    ({"enable_hr": True}, "hires fix is for txt2img"),
    ({"denoising_strength": 0.1}, "leaves no step to run"),
])
def test_bad_repose_requests_are_refused_before_any_work(tiny, extra, message):
    with pytest.raises(ParameterError, match=message):
        build_request(**fields(tiny, **extra))


def test_a_malformed_pose_is_named():
    with pytest.raises(ValueError, match=r"repose\.pose"):
        build_request(repose={"image": "x.png", "pose": "{not json"})
    with pytest.raises(ValueError, match=r"repose\.warp"):
        build_request(repose={"image": "x.png", "pose": pose_of(FIGURE).to_json(), "warp": "bendy"})


def test_expand_makes_the_inpaint_of_the_warped_photo(tiny):
    from kekong.models.load import load_base

    request = build_request(**fields(tiny, controls=[{"module": "none", "model": str(tiny / "cn")},
                                                     {"module": "canny", "model": str(tiny / "cn")}]))
    plain = repose.expand(request, load_base(request.model))
    assert plain.repose is None and plain.mode == "inpaint"
    warped = warp_pose(marked(FIGURE), pose_of(FIGURE), pose_of(raised_right_arm()), layered=True)  # the spec default
    init = load_image(image_source(plain.init_image))
    assert np.array_equal(init, warped.image)
    mask = load_image(image_source(plain.mask))[..., 0]
    assert (mask > 0).sum() > (warped.mask > 0).sum() and mask[warped.mask > 0].min() != 0  # grown by 8 px
    pose_map = load_image(image_source(plain.controls[0].image))
    assert np.array_equal(pose_map, render_json(pose_of(raised_right_arm()).to_json(), 256, 256))
    assert plain.controls[1].image == plain.init_image  # an extra unit without an image reads the warped photo
    assert repose.expand(plain, None) is plain


def test_the_pose_units_model_defaults_to_the_bases_openpose_or_is_named(tiny):
    from kekong.models.load import load_base

    request = build_request(**fields(tiny, controls=[{"module": "none"}]))
    with pytest.raises(KekongError, match=r"repose: .*openpose.*--pose-model.*--no-pose-unit"):
        repose.expand(request, load_base(None))  # the shipped model has no openpose ControlNet


def test_repose_generates_keeps_the_photo_outside_the_mask_and_replays(tiny):
    from kekong.provenance.replay import replay
    from kekong.provenance.stamp import describe

    request = build_request(**fields(tiny))
    generated = pipeline.generate(request)[0]
    plain = repose.expand(request, generated.base)
    init = load_image(image_source(plain.init_image))
    small = load_image(image_source(plain.mask))
    import cv2

    fitted = cv2.resize(init, (64, 64), interpolation=cv2.INTER_AREA)
    outside = feather_mask(cv2.resize(small[..., 0], (64, 64), interpolation=cv2.INTER_NEAREST), 4) == 0
    assert 0.3 < outside.mean() < 0.95
    assert np.abs(generated.image[outside].astype(int) - fitted[outside]).max() <= 2  # the warped photo, kept
    assert np.abs(generated.image[~outside].astype(int) - fitted[~outside]).mean() > 5  # the uncovered areas repainted
    text, recipe = describe(generated)
    assert "Repose warp: rigid" in text and "Repose mask grow: 8" in text and "Denoising strength: 0.75" in text
    assert 'ControlNet 0: "Module: none, Model: cn' in text
    assert recipe["request"]["repose"]["image"] == "figure.png"  # a name, never the local path
    assert recipe["request"]["repose"]["pose"] == pose_of(raised_right_arm()).to_json()
    assert recipe["request"]["init_image"] is None  # the warp is redone from the photo on replay
    assert [r["field"] for r in recipe["inputs"]] == ["repose.image"]
    recipe["request"]["model"], recipe["request"]["controls"][0]["model"] = str(tiny / "base"), str(tiny / "cn")
    again, _ = replay(recipe, folders=[tiny])
    assert np.array_equal(again.image, generated.image)


def test_cli_repose_writes_the_image_the_warp_and_the_mask(tiny, tmp_path):
    (tmp_path / "from.json").write_text(json.dumps(pose_of(FIGURE).to_json()))
    (tmp_path / "to.json").write_text(json.dumps(pose_of(raised_right_arm()).to_json()))
    cn = str(tiny / "cn")
    done = kekong("repose", str(tiny / "figure.png"), "--to", "to.json", "--from", "from.json", "--prompt", "a figure",
                  "--model", str(tiny / "base"), "--pose-model", cn, "-c", "canny,model=" + cn,
                  "--steps", "4", "--sampler", "Euler", "-W", "64", "-H", "64", "--strength", "0.5",
                  "--warp-out", "warped.png", "--mask-out", "mask.png", "-o", "out.png", "--no-c2pa",
                  "--no-watermark", "--no-score", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert load_image(tmp_path / "out.png").shape == (64, 64, 3)
    warped = warp_pose(marked(FIGURE), pose_of(FIGURE), pose_of(raised_right_arm()), layered=True)
    assert np.array_equal(load_image(tmp_path / "warped.png"), warped.image)
    assert load_image(tmp_path / "mask.png")[20:140, 40:120].any()
    from kekong.provenance.replay import load_recipe

    request = load_recipe(tmp_path / "out.png")["request"]
    assert request["denoising_strength"] == 0.5 and request["repose"]["pose_unit"] == 0
    assert [u["module"] for u in request["controls"]] == ["none", "canny"]


def test_cli_bad_pose_file_is_one_error_line(tiny, tmp_path):
    (tmp_path / "to.json").write_text("{not json")
    done = kekong("repose", str(tiny / "figure.png"), "--to", "to.json", "-o", "out.png", cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --to to.json: pose JSON is malformed"), done.stderr


def test_api_job_of_kind_repose(tmp_path, tiny):
    from fastapi.testclient import TestClient

    from kekong.server.app import create_app
    from kekong.server.config import ServerConfig
    from tests.server_helpers import b64_png

    body = {"prompt": "a figure", "steps": 4, "sampler": "Euler", "seed": 3,
            "repose": {**spec(tiny), "image": b64_png(marked(FIGURE)), "warp": "similarity"}}
    with TestClient(create_app(ServerConfig(data_dir=tmp_path, ui=False))) as client:
        assert "init_image" in client.post("/v1/jobs", json={**body, "init_image": body["repose"]["image"]}).text
        assert client.post("/v1/jobs", json={**body, "repose": {**body["repose"], "image": "/etc/hosts"}}
                           ).status_code == 422  # the API reads no paths
        submitted = client.post("/v1/jobs", json=body)
        assert submitted.status_code == 202, submitted.text
        assert submitted.json()["kind"] == "repose"
        deadline = time.time() + 120
        while (job := client.get(f"/v1/jobs/{submitted.json()['id']}").json())["status"] not in ("done", "failed"):
            assert time.time() < deadline
            time.sleep(0.2)
        assert job["status"] == "done", job["error"]
        assert "Repose warp: similarity" in job["images"][0]["infotext"]
        png = client.get(job["images"][0]["url"])
        assert png.status_code == 200
        (tmp_path / "out.png").write_bytes(png.content)
        from kekong.provenance.replay import load_recipe

        recipe = load_recipe(tmp_path / "out.png")
        assert "/" not in recipe["request"]["repose"]["image"]  # the photo by name, no server path
        assert [r["field"] for r in recipe["inputs"]] == ["repose.image"]


def test_a_recipe_from_before_the_layered_warp_replays_the_plain_warp():
    from kekong.provenance.replay import upgraded

    pose = pose_of(FIGURE).to_json()
    old = {"prompt": "x", "repose": {"image": "photo.png", "pose": pose, "warp": "rigid"}}
    assert upgraded(old)["repose"]["layered"] is False and "layered" not in old["repose"]
    new = {"prompt": "x", "repose": {"image": "photo.png", "pose": pose, "layered": True}}
    assert upgraded(new) is new
    assert upgraded({"prompt": "x", "repose": None}) == {"prompt": "x", "repose": None}
