"""The web UI in a real browser: Debian's chromium, headless, driven by Playwright (no browser
download). Upload a photo, detect the pose, drag a joint, send the pose to a control unit,
generate, and see the image. Screenshots are kept in test-artifacts/ui/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from kekong.io import save_image
from tests.server_helpers import Server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "ui"
# Flags for a closed network: no background connections to Google's hosts at start-up.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it)")


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("ui-server"), ui=True).start()
    yield server
    server.stop()


@pytest.fixture
def page(ui_server):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.set_default_timeout(60_000)
        page.goto(ui_server.url + "/ui/")
        page.wait_for_selector("#generate")
        yield page
        browser.close()


def pose_in_page(page) -> dict:
    return json.loads(page.eval_on_selector("#pose-editor canvas", "c => c.dataset.pose"))


def test_pose_from_photo_drag_a_joint_and_generate(page, astronaut, tmp_path):
    photo = save_image(astronaut, tmp_path / "astronaut.png")
    page.get_by_role("tab", name="Pose editor").click()
    page.set_input_files("#pose-photo input[type=file]", str(photo))
    page.click("#detect-pose")
    page.wait_for_function("() => JSON.parse(document.querySelector('#pose-editor canvas').dataset.pose || "
                           "'{\"people\": []}').people.length === 1")
    before = pose_in_page(page)["people"][0]["pose_keypoints_2d"]
    page.screenshot(path=str(ARTIFACTS / "1-pose-detected.png"), full_page=True)

    canvas = page.locator("#pose-editor canvas")
    box = canvas.bounding_box()
    scale = box["width"] / pose_in_page(page)["canvas_width"]
    nose = (box["x"] + before[0] * scale, box["y"] + before[1] * scale)
    page.mouse.move(*nose)
    page.mouse.down()
    page.mouse.move(nose[0] + 40, nose[1] + 10, steps=5)
    page.mouse.up()
    # the moved pose reaches Python: the export box shows it
    page.wait_for_function(f"() => document.querySelector('#pose-json').innerText.includes('{before[0]:.1f}') "
                           "=== false")
    after = pose_in_page(page)["people"][0]["pose_keypoints_2d"]
    assert after[0] == pytest.approx(before[0] + 40 / scale, abs=2 / scale)
    assert after[3:] == before[3:]  # only the nose moved
    page.screenshot(path=str(ARTIFACTS / "2-joint-dragged.png"), full_page=True)

    page.click("#pose-to-unit")
    page.get_by_role("tab", name="Generate").click()
    page.wait_for_function("() => document.querySelector('#unit0-image img') !== null")
    page.fill("#prompt textarea", "a red star on a white background")
    page.click("#generate")
    page.wait_for_selector("#gallery img")
    assert "done" in page.input_value("#status textarea")
    page.screenshot(path=str(ARTIFACTS / "3-generated.png"), full_page=True)

    page.click("#gallery img")  # picking an image shows its parameters and its provenance check
    page.wait_for_function("() => document.querySelector('#details textarea').value.includes('provenance')")
    details = page.input_value("#details textarea")
    assert "a red star on a white background" in details and "Steps: 20" in details
    page.screenshot(path=str(ARTIFACTS / "4-parameters-and-provenance.png"), full_page=True)
