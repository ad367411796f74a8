"""webuiapi (the Python client most A1111 scripts use) against a live kekong server: every call it
makes for the routes issue 20 added succeeds, and its X/Y/Z plot call (script_name + script_args)
gets A1111's answer. The generations are the shipped model's at 64 px and 2 steps."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import webuiapi  # a dev dependency: installed by make setup
from PIL import Image


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    import uvicorn

    from kekong.server.app import create_app
    from kekong.server.config import ServerConfig
    from tests.server_helpers import free_port

    port = free_port()
    config = ServerConfig(port=port, data_dir=tmp_path_factory.mktemp("webuiapi") / "server", ui=False)
    server = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 120
    while not server.started and time.time() < deadline:
        time.sleep(0.1)
    assert server.started
    yield webuiapi.WebUIApi(host="127.0.0.1", port=port, sampler="Euler", steps=2)
    server.should_exit = True
    thread.join(30)


def test_the_start_up_calls_succeed(api):
    assert "x/y/z plot" in api.get_scripts()["txt2img"]
    assert api.get_cmd_flags()["port"] and "ram" in api.get_memory()
    assert isinstance(api.get_loras(), list) and isinstance(api.get_embeddings(), dict)
    assert api.get_hypernetworks() == [] and api.get_face_restorers() == []
    assert isinstance(api.get_prompt_styles(), list) and api.get_sd_models()[0]["model_name"]
    assert "Euler" in [s["name"] for s in api.get_samplers()] and "sd_model_checkpoint" in api.get_options()
    api.refresh_checkpoints()
    api.interrupt()
    api.skip()


def test_extras_upscale_through_the_client(api):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8))
    assert api.extra_single_image(image, upscaler_1="Lanczos", upscaling_resize=2).image.size == (64, 64)
    batch = api.extra_batch_images([image, image], upscaler_1="Lanczos", upscaling_resize=2)
    assert [i.size for i in batch.images] == [(64, 64), (64, 64)]


def test_an_xyz_plot_through_the_client(api):
    args = [1, "5, 6", [], 0, "", [], 0, "", [], True, True, False, False, 0, False, False]  # Seed: 5, 6; sub images
    result = api.txt2img(prompt="a red star", width=64, height=64, steps=2, seed=3, script_name="X/Y/Z plot",
                         script_args=args)
    assert len(result.images) == 3 and result.images[0].width > 2 * 64
    assert result.info["all_seeds"] == [5, 6] and "Script: X/Y/Z plot" in result.info["infotexts"][0]
    assert "Seed: 5," in api.png_info(result.images[1]).info
