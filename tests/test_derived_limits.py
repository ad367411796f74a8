"""Every size a request derives is bounded before it is allocated, and every rule that needs only
the request is checked by the request model, before any detector or text encoder runs (issue 19,
"checked first"). Each reproducer gets a 4xx / ParameterError naming the field, in under a second,
with memory unchanged."""

from __future__ import annotations

import base64
import io
import struct
import time
import tracemalloc
import zlib
from contextlib import contextmanager
from types import SimpleNamespace

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from kekong import sizes
from kekong.errors import ImageError, ParameterError
from kekong.generation.checks import check_compatible, check_sizes
from kekong.io import load_image, save_image
from kekong.request import build_request
from kekong.server.app import create_app
from kekong.server.config import Limits, ServerConfig
from tests.server_helpers import b64_png
from tests.tiny_models import build_tiny_base

MB = 2**20


@contextmanager
def cheap(seconds: float = 1.0, megabytes: int = 100):
    """The block runs in under `seconds` and allocates (Python and numpy) under `megabytes` at its peak."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert elapsed < seconds, f"took {elapsed:.2f} s"
    assert peak < megabytes * MB, f"peak {peak / MB:.0f} MB"


def png_b64(width: int, height: int) -> str:
    return b64_png(np.full((height, width, 3), 128, np.uint8))


def ztxt_bomb() -> bytes:
    """A 20 kB PNG whose zTXt chunk inflates to 20 MB, past Pillow's MAX_TEXT_CHUNK."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    stream = io.BytesIO()
    Image.new("RGB", (8, 8)).save(stream, "PNG")
    raw = stream.getvalue()
    return raw[:33] + chunk(b"zTXt", b"comment\0\0" + zlib.compress(b"a" * (20 * MB), 9)) + raw[33:]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with TestClient(create_app(ServerConfig(data_dir=tmp_path_factory.mktemp("limits"), ui=False))) as client:
        client.post("/controlnet/detect", json={"controlnet_module": "canny",  # warm: detector modules imported
                                                "controlnet_input_images": [png_b64(64, 64)]})
        yield client


# -- the hires pass --------------------------------------------------------------------------

def test_hires_scale_past_the_side_limit_is_refused_by_the_request_model():
    with cheap(), pytest.raises(ParameterError, match=r"hr_scale: 2048x2048 × 4 makes a 8192x8192 hires pass"):
        build_request(width=2048, height=2048, enable_hr=True, hr_scale=4)
    assert build_request(width=512, height=512, enable_hr=True, hr_scale=4).enable_hr  # 2048²: at the limit


def test_hires_resize_with_a_derived_side_is_bounded():
    with cheap(), pytest.raises(ParameterError, match=r"hr_resize_x: .* makes a 2048x65536 hires pass"):
        build_request(width=64, height=2048, enable_hr=True, hr_resize_x=2048)
    assert sizes.hires_size(64, 2048, 2.0, hr_resize_x=2048) == (65536, 2048)  # (height, width), as A1111 derives
    with pytest.raises(ParameterError, match="hr_resize_y"):
        build_request(width=2048, height=64, enable_hr=True, hr_resize_y=1024)


def test_the_server_bounds_derived_sizes_by_its_narrowed_side():
    limits = Limits(max_side=128)
    limits.check(build_request(width=64, height=64, enable_hr=True, hr_scale=2))  # 128²: allowed
    with pytest.raises(ParameterError, match=r"hr_scale: .* 192x192 hires pass, over 128 px.*this server"):
        limits.check(build_request(width=64, height=64, enable_hr=True, hr_scale=3))
    with pytest.raises(ParameterError, match="seed_resize_from_w: 512 is over 128 px"):
        limits.check(build_request(width=64, height=64, seed_resize_from_w=512, seed_resize_from_h=512))


def test_hires_without_a_size_is_checked_once_the_models_native_size_is_known():
    request = build_request(prompt="x", steps=2, enable_hr=True, hr_scale=4)  # size left to the model
    Limits().check(request)  # used to raise TypeError (None * float)
    sdxl = request.model_copy(update={"width": 1024, "height": 1024})  # what generate() resolves for SDXL
    with pytest.raises(ParameterError, match="hr_scale: 1024x1024 × 4 makes a 4096x4096"):
        check_sizes(sdxl)


def test_a_job_with_hires_and_no_size_runs(client):
    submitted = client.post("/v1/jobs", json={"prompt": "x", "steps": 2, "enable_hr": True})
    assert submitted.status_code == 202, submitted.text
    deadline = time.time() + 120
    while (job := client.get(f"/v1/jobs/{submitted.json()['id']}").json())["status"] in ("queued", "running"):
        assert time.time() < deadline
        time.sleep(0.1)
    assert job["status"] == "done", job
    assert "Hires upscale: 2" in job["images"][0]["infotext"]


def test_batch_times_pixels_is_bounded():
    from kekong.declaration import spec

    assert spec("batch_size").le == 8
    sizes.check_batch(8, 2048, 2048, 2048, 8)
    with pytest.raises(ParameterError, match="batch_size: 9 images of 2048x2048"):
        sizes.check_batch(9, 2048, 2048, 2048, 8)
    with pytest.raises(ParameterError, match=r"batch_size: 2 images of 128x128 \(the hires pass\)"):
        check_sizes(build_request(width=64, height=64, batch_size=2, enable_hr=True), max_side=128, max_batch=1)


# -- detectors and pose maps -----------------------------------------------------------------

@pytest.mark.parametrize("width", [3000, 65535])
def test_a_one_pixel_high_image_is_refused_before_the_detector_scales_it(client, width):
    payload = {"controlnet_module": "canny", "controlnet_input_images": [png_b64(width, 1)]}
    with cheap():
        response = client.post("/controlnet/detect", json=payload)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "controlnet_processor_res (controlnet_input_images[0])" in detail
    assert f"{width}x1 image makes a {width * 512}x512 working image" in detail


def test_the_detector_working_size_is_bounded_in_the_core():
    from kekong.detect import run

    with cheap(), pytest.raises(ParameterError, match="res: processor resolution 512 on a 3000x1 image"):
        run("canny", np.zeros((1, 3000, 3), np.uint8))
    assert run("canny", np.zeros((32, 512, 3), np.uint8), res=512).image.shape == (512, 8192, 3)  # 16:1 fits


@pytest.mark.parametrize("side", [100_000, 8000])
def test_a_pose_canvas_over_the_limit_is_refused(client, side):
    pose = {"people": [], "canvas_width": side, "canvas_height": side}
    with cheap():
        response = client.post("/controlnet/render_openpose_json", json={"pose_json": [pose]})
    assert response.status_code == 422
    assert f"pose_json[0].canvas_width/canvas_height: a {side}x{side} canvas" in response.json()["detail"]
    ok = client.post("/controlnet/render_openpose_json", json={"pose_json": [{**pose, "canvas_width": 64,
                                                                              "canvas_height": 64}]})
    assert ok.status_code == 200


def test_the_dimmed_limbs_match_controlnets_float_arithmetic():
    from kekong.detect.openpose.render import _DIMMED

    values = np.arange(256, dtype=np.uint8)
    assert np.array_equal(_DIMMED[values], (values * 0.6).astype(np.uint8))


# -- images whose metadata inflates ----------------------------------------------------------

def test_a_text_chunk_bomb_is_an_image_error(tmp_path):
    with cheap(), pytest.raises(ImageError, match="metadata is too large"):
        load_image(ztxt_bomb())
    path = tmp_path / "bomb.png"
    path.write_bytes(ztxt_bomb())
    with pytest.raises(ImageError, match=r"bomb\.png"):
        load_image(path)


@pytest.mark.parametrize(("route", "field", "payload"), [
    ("/controlnet/detect", "controlnet_input_images[0]", lambda b: {"controlnet_module": "canny",
                                                                    "controlnet_input_images": [b]}),
    ("/sdapi/v1/img2img", "init_images[0]", lambda b: {"prompt": "x", "init_images": [b]}),
    ("/sdapi/v1/txt2img", "image", lambda b: {"prompt": "x", "alwayson_scripts": {"controlnet": {"args": [
        {"image": b, "module": "none", "model": "kekong-shapes-outline"}]}}}),
    ("/sdapi/v1/interrogate", "image", lambda b: {"image": b, "model": "structure"}),
])
def test_a_text_chunk_bomb_is_refused_on_every_route(client, route, field, payload):
    bomb = base64.b64encode(ztxt_bomb()).decode()
    with cheap():
        response = client.post(route, json=payload(bomb))
    assert response.status_code == 422, response.text
    assert field in response.json()["detail"] and "metadata is too large" in response.json()["detail"]


# -- rules that need only the request --------------------------------------------------------

@pytest.fixture()
def no_work(monkeypatch):
    """Fail the test if a detector or a text encoder runs."""
    import kekong.detect
    from kekong.generation import pipeline

    ran: list[str] = []
    monkeypatch.setattr(kekong.detect, "run", lambda *a, **k: ran.append("detector"))
    monkeypatch.setattr(pipeline, "encode_schedules", lambda *a, **k: ran.append("text encoder"))
    return ran


@pytest.mark.parametrize(("fields", "message"), [
    ({"controls": [{"module": "reference_only", "image": "a.png"}, {"module": "reference_only", "image": "b.png"}]},
     "one reference_only unit per request"),
    ({"controls": [{"module": "reference_only", "image": "a.png", "model": "m"}]}, "reference_only uses no model"),
    ({"controls": [{"module": "ip-adapter_clip_sd15", "image": "a.png", "model": "ip", "mask": "m.png"}]},
     "controls.0: IP-Adapter units take the Balanced control mode, no region mask"),
    ({"controls": [{"module": "ip-adapter_clip_sd15", "image": "a.png", "model": "ip", "hr_option": "Low res only"}]},
     "hr_option Both"),
    ({"controls": [{"module": "ip-adapter_clip_sd15", "image": "a.png"}]}, "an IP-Adapter unit needs model="),
    ({"init_image": "a.png", "controls": [{"module": "inpaint_only"}]}, "control unit 0: an inpaint_only unit"),
    ({"init_image": "a.png", "mask": "m.png", "controls": [{"module": "inpaint_only", "image": "b.png"}]},
     "an inpaint_only unit works on the init image"),
    ({"enable_hr": True, "denoising_strength": 0.01}, "denoising strength 0.01 with 20 hires steps leaves no step"),
])
def test_request_only_rules_are_refused_when_the_request_is_built(no_work, fields, message):
    with cheap(), pytest.raises(ParameterError, match=message):
        build_request(prompt="x", **fields)
    assert no_work == []


def test_the_request_model_reads_no_files(tmp_path, monkeypatch):
    monkeypatch.setenv("KEKONG_MODELS_DIR", str(tmp_path / "nowhere"))
    request = build_request(enable_hr=True, hr_upscaler="4x-NotThere", width=64, height=64)
    assert request.hr_upscaler == "4x-NotThere"  # refused by the compatibility step instead


def test_the_compatibility_step_runs_before_any_detector_or_text_encoder(no_work, tmp_path):
    from kekong.generation.pipeline import generate

    base = str(build_tiny_base(tmp_path / "base"))
    save_image(np.zeros((64, 64, 3), np.uint8), tmp_path / "a.png")
    request = build_request(prompt="x", model=base, steps=2, enable_hr=True, hr_upscaler="4x-NotThere",
                            controls=[{"module": "canny", "image": str(tmp_path / "a.png")}])
    with pytest.raises(ParameterError, match="hr_upscaler: '4x-NotThere' is not available"):
        generate(request)
    assert no_work == []


def test_the_compatibility_step_refuses_what_does_not_fit_the_model():
    t5 = SimpleNamespace(uses_clip=False, name="t5-model", text_encoders=[SimpleNamespace()],
                         scheduler_config={"num_train_timesteps": 1000})
    with pytest.raises(ParameterError, match="clip_skip: clip skip applies to CLIP text encoders; t5-model"):
        check_compatible(build_request(width=64, height=64, clip_skip=2), t5)
    check_compatible(build_request(width=64, height=64), t5)


def test_the_cli_prints_one_error_line_naming_the_field():
    from tests.test_cli import kekong

    done = kekong("generate", "x", "-W", "2048", "-H", "2048", "--hires", "--hr-scale", "4")
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and done.stderr.startswith("error:")
    assert "hr_scale: 2048x2048 × 4 makes a 8192x8192 hires pass" in done.stderr


def test_the_a1111_route_refuses_two_reference_units_before_any_detector(client, monkeypatch):
    import kekong.detect

    ran: list[str] = []
    monkeypatch.setattr(kekong.detect, "run", lambda *a, **k: ran.append("detector"))
    unit = {"image": png_b64(64, 64), "module": "reference_only", "model": "None"}
    with cheap():
        response = client.post("/sdapi/v1/txt2img", json={"prompt": "x", "width": 64, "height": 64, "steps": 2,
                                                          "alwayson_scripts": {"controlnet": {"args": [unit, unit]}}})
    assert response.status_code == 422 and "one reference_only unit per request" in response.json()["detail"]
    assert ran == []
